//! Reading OpenSSH `known_hosts` for the key types recorded for a host.
//!
//! libssh2 does not pick its host-key algorithm from known_hosts: if a server offers ed25519 and
//! RSA keys but only its RSA key is recorded, the handshake negotiates ed25519 and the check
//! reports a mismatch (`reference/tooling.md`, "ssh2 pitfall"). So before the handshake we look up
//! which key types known_hosts holds for `[host]:port` (plain or hashed entries) and prefer them.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha1::Sha1;

/// The name known_hosts uses for a host: `host` for port 22, `[host]:port` otherwise.
pub fn host_pattern_name(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_string()
    } else {
        format!("[{host}]:{port}")
    }
}

/// Key types (`ssh-ed25519`, `ecdsa-sha2-nistp256`, `ssh-rsa`, ...) recorded for the host, in
/// file order, without duplicates.
pub fn key_types_for(known_hosts: &str, host: &str, port: u16) -> Vec<String> {
    let name = host_pattern_name(host, port);
    let mut types: Vec<String> = Vec::new();
    for line in known_hosts.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with('@') {
            continue;
        }
        let mut fields = line.split_whitespace();
        let (Some(patterns), Some(key_type)) = (fields.next(), fields.next()) else {
            continue;
        };
        if patterns.split(',').any(|p| pattern_matches(p, &name)) && !types.iter().any(|t| t == key_type) {
            types.push(key_type.to_string());
        }
    }
    types
}

fn pattern_matches(pattern: &str, name: &str) -> bool {
    if let Some(hashed) = pattern.strip_prefix("|1|") {
        let Some((salt, hash)) = hashed.split_once('|') else {
            return false;
        };
        let b64 = base64::engine::general_purpose::STANDARD;
        let (Ok(salt), Ok(hash)) = (b64.decode(salt), b64.decode(hash)) else {
            return false;
        };
        let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(&salt) else {
            return false;
        };
        mac.update(name.as_bytes());
        return mac.verify_slice(&hash).is_ok();
    }
    pattern == name
}

/// The libssh2 host-key method preference for recorded key types, or `None` to keep its default.
pub fn method_preference(key_types: &[String]) -> Option<String> {
    let mut prefs: Vec<&str> = Vec::new();
    for t in key_types {
        match t.as_str() {
            "ssh-rsa" => prefs.extend(["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"]),
            "ssh-ed25519" | "ecdsa-sha2-nistp256" | "ecdsa-sha2-nistp384" | "ecdsa-sha2-nistp521" => {
                prefs.push(t.as_str())
            }
            _ => {}
        }
    }
    (!prefs.is_empty()).then(|| prefs.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_plain_and_port_entries() {
        let kh = "# c\n[127.0.0.1]:2222 ssh-rsa AAAA\n127.0.0.1 ssh-ed25519 BBBB\n@cert-authority * ssh-rsa X\n";
        assert_eq!(key_types_for(kh, "127.0.0.1", 2222), vec!["ssh-rsa"]);
        assert_eq!(key_types_for(kh, "127.0.0.1", 22), vec!["ssh-ed25519"]);
        assert!(key_types_for(kh, "10.0.0.1", 22).is_empty());
    }

    #[test]
    fn finds_hashed_entries() {
        // `ssh-keygen -H` form of "[127.0.0.1]:2222": HMAC-SHA1 keyed by the salt.
        let salt = [7u8; 20];
        let mut mac = Hmac::<Sha1>::new_from_slice(&salt).unwrap();
        mac.update(b"[127.0.0.1]:2222");
        let b64 = base64::engine::general_purpose::STANDARD;
        let line =
            format!("|1|{}|{} ecdsa-sha2-nistp256 AAAA\n", b64.encode(salt), b64.encode(mac.finalize().into_bytes()));
        assert_eq!(key_types_for(&line, "127.0.0.1", 2222), vec!["ecdsa-sha2-nistp256"]);
        assert!(key_types_for(&line, "127.0.0.1", 2223).is_empty());
    }

    #[test]
    fn rsa_prefers_sha2_signatures() {
        assert_eq!(method_preference(&["ssh-rsa".into()]).unwrap(), "rsa-sha2-512,rsa-sha2-256,ssh-rsa");
        assert_eq!(method_preference(&[]), None);
    }
}
