//! A real OpenSSH server for a sandbox (`sandbox up --ssh`), so the tool reaches every sandbox
//! host (127.0.0.2, .3, ...) the way it reaches a real cluster: over ssh with key
//! authentication and strict host-key checking, no `local` shortcut.
//!
//! One `sshd` listens on every sandbox address at one port (recipe: `reference/tooling.md`,
//! "sshd (no systemd)": started by absolute path with `-D -e`, `/run/sshd` present, no PAM).
//! Its keys, config, `known_hosts` (one `[address]:port` line per host) and log live in
//! `<sandbox>/ssh/`. It outlives `sandbox up`; `sandbox down` stops it by its pid.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The sshd binary (Debian's openssh-server).
pub const SSHD: &str = "/usr/sbin/sshd";

#[derive(Debug, thiserror::Error)]
pub enum SshdError {
    #[error("{SSHD} is missing: install openssh-server (`make deps` does)")]
    NotInstalled,
    #[error("setting up sshd in {dir}: {reason}")]
    Setup { dir: PathBuf, reason: String },
    #[error("sshd did not listen on {address}:{port} within {waited:?}; see {log}")]
    NotReady { address: String, port: u16, waited: Duration, log: PathBuf },
}

/// A started sandbox sshd and what a client needs to log in.
#[derive(Debug, Clone)]
pub struct SandboxSshd {
    pub pid: u32,
    pub port: u16,
    pub user: String,
    pub client_key: PathBuf,
    pub known_hosts: PathBuf,
    /// The host key, to check what a client sees.
    pub host_key: PathBuf,
}

fn keygen(path: &Path) -> Result<(), String> {
    let _ = std::fs::remove_file(path);
    let _ = std::fs::remove_file(path.with_extension("pub"));
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "mldb-upgrade-sandbox", "-f"])
        .arg(path)
        .stdin(Stdio::null())
        .status()
        .map_err(|e| format!("cannot run ssh-keygen (install openssh-client): {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("ssh-keygen -f {} failed with {status}", path.display()))
    }
}

/// The user the sandbox's sshd lets in: the one running the sandbox.
fn current_user() -> String {
    std::env::var("USER").ok().filter(|u| !u.is_empty()).unwrap_or_else(|| {
        Command::new("id")
            .arg("-un")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_else(|_| "root".into())
    })
}

/// Starts sshd for a sandbox in `dir` (its `ssh/` subdirectory), listening on `addresses` at
/// `port` (one the caller picked free on all of them).
pub fn start(dir: &Path, addresses: &[String], port: u16) -> Result<SandboxSshd, SshdError> {
    if !Path::new(SSHD).exists() {
        return Err(SshdError::NotInstalled);
    }
    let d = dir.join("ssh");
    let setup = |reason: String| SshdError::Setup { dir: d.clone(), reason };
    std::fs::create_dir_all(&d).map_err(|e| setup(e.to_string()))?;
    std::fs::create_dir_all("/run/sshd").map_err(|e| setup(format!("cannot create /run/sshd: {e}")))?;
    let host_key = d.join("host_key");
    let client_key = d.join("client_key");
    keygen(&host_key).map_err(setup)?;
    keygen(&client_key).map_err(setup)?;
    let authorized = d.join("authorized_keys");
    std::fs::copy(client_key.with_extension("pub"), &authorized).map_err(|e| setup(e.to_string()))?;
    let mut config = format!(
        "Port {port}\nHostKey {host}\nPidFile {pid}\nAuthorizedKeysFile {auth}\nPermitRootLogin prohibit-password\n\
         PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\nLogLevel ERROR\n\
         Subsystem sftp internal-sftp\nMaxStartups 100\nMaxSessions 100\n",
        host = host_key.display(),
        pid = d.join("sshd.pid").display(),
        auth = authorized.display()
    );
    for address in addresses {
        config.push_str(&format!("ListenAddress {address}\n"));
    }
    let config_path = d.join("sshd_config");
    std::fs::write(&config_path, config).map_err(|e| setup(e.to_string()))?;
    let key_fields = std::fs::read_to_string(host_key.with_extension("pub")).map_err(|e| setup(e.to_string()))?;
    let key_fields: String = key_fields.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
    let known_hosts = d.join("known_hosts");
    let lines: String = addresses.iter().map(|a| format!("[{a}]:{port} {key_fields}\n")).collect();
    std::fs::write(&known_hosts, lines).map_err(|e| setup(e.to_string()))?;
    let log_path = d.join("sshd.log");
    let log = std::fs::File::create(&log_path).map_err(|e| setup(e.to_string()))?;
    let child = Command::new(SSHD)
        .args(["-D", "-e", "-f"])
        .arg(&config_path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .process_group(0)
        .spawn()
        .map_err(|e| setup(format!("cannot start {SSHD}: {e}")))?;
    // Detached: it outlives `sandbox up`; `sandbox down` stops it by pid.
    let pid = child.id();
    drop(child);
    let waited = Duration::from_secs(10);
    let deadline = Instant::now() + waited;
    for address in addresses {
        while std::net::TcpStream::connect((address.as_str(), port)).is_err() {
            if Instant::now() >= deadline || !crate::process::is_running(pid) {
                crate::process::stop_pid(pid, Duration::from_secs(2));
                return Err(SshdError::NotReady { address: address.clone(), port, waited, log: log_path });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    Ok(SandboxSshd { pid, port, user: current_user(), client_key, known_hosts, host_key })
}
