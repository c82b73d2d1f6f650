//! A real OpenSSH server on 127.0.0.1 for tests (`reference/tooling.md`, "sshd (no systemd)").
//!
//! Generated host and client keys, key-only auth, no PAM; started by absolute path with `-D -e`
//! so the child we hold is sshd itself. Killed and waited on when dropped, even on panic.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mldb_upgrade::sandbox::zookeeper::free_loopback_port;

pub struct Sshd {
    child: Option<Child>,
    /// The loopback address it listens on (127.0.0.1 unless started with [`Sshd::start_on`]).
    pub address: String,
    pub port: u16,
    pub dir: tempfile::TempDir,
    /// Private key the test client logs in with.
    pub client_key: PathBuf,
    /// A known_hosts file holding exactly this server's host key.
    pub known_hosts: PathBuf,
    /// The user to log in as (the user running the tests).
    pub user: String,
}

fn keygen(path: &Path, kind: &str) {
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", kind, "-N", "", "-C", "mldb-upgrade-test", "-f"])
        .arg(path)
        .stdin(Stdio::null())
        .status()
        .expect("ssh-keygen runs (apt-get install openssh-client)");
    assert!(status.success(), "ssh-keygen -t {kind} failed");
}

/// Returns `<type> <base64>` of a public key file.
pub fn public_key_fields(pub_file: &Path) -> String {
    let text = std::fs::read_to_string(pub_file).expect("public key readable");
    text.split_whitespace().take(2).collect::<Vec<_>>().join(" ")
}

pub fn current_user() -> String {
    let out = Command::new("id").arg("-un").output().expect("id runs");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

impl Sshd {
    /// Starts sshd with an ed25519 host key.
    pub fn start() -> Sshd {
        Self::start_with_host_keys(&["ed25519"])
    }

    /// Starts sshd offering one host key per given type (`ed25519`, `ecdsa`, `rsa`); known_hosts
    /// holds the first one only.
    pub fn start_with_host_keys(kinds: &[&str]) -> Sshd {
        Self::start_with(kinds, "127.0.0.1")
    }

    /// Starts sshd (ed25519 host key) on another loopback address, e.g. `127.0.0.3`.
    pub fn start_on(address: &str) -> Sshd {
        Self::start_with(&["ed25519"], address)
    }

    fn start_with(kinds: &[&str], address: &str) -> Sshd {
        let sshd_bin = Path::new("/usr/sbin/sshd");
        assert!(sshd_bin.exists(), "/usr/sbin/sshd missing: run `make deps` (openssh-server)");
        std::fs::create_dir_all("/run/sshd").expect("create /run/sshd");
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        let mut host_keys = Vec::new();
        for kind in kinds {
            let path = d.join(format!("host_{kind}"));
            keygen(&path, kind);
            host_keys.push(path);
        }
        let client_key = d.join("client_key");
        keygen(&client_key, "ed25519");
        let authorized = d.join("authorized_keys");
        std::fs::copy(d.join("client_key.pub"), &authorized).expect("authorized_keys");
        let port = free_loopback_port().expect("free port");
        let mut config = format!(
            "Port {port}\nListenAddress {address}\nPidFile {pid}\nAuthorizedKeysFile {auth}\n\
             PermitRootLogin prohibit-password\nPasswordAuthentication no\n\
             KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\nLogLevel ERROR\nSubsystem sftp internal-sftp\n",
            pid = d.join("sshd.pid").display(),
            auth = authorized.display()
        );
        for key in &host_keys {
            config.push_str(&format!("HostKey {}\n", key.display()));
        }
        let config_path = d.join("sshd_config");
        std::fs::write(&config_path, config).expect("write sshd_config");
        let log = std::fs::File::create(d.join("sshd.log")).expect("sshd.log");
        let child = Command::new(sshd_bin)
            .args(["-D", "-e", "-f"])
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start sshd");
        let known_hosts = d.join("known_hosts");
        let first_pub = host_keys[0].with_extension("pub");
        std::fs::write(&known_hosts, format!("[{address}]:{port} {}\n", public_key_fields(&first_pub)))
            .expect("write known_hosts");
        let mut sshd = Sshd {
            child: Some(child),
            address: address.to_string(),
            port,
            dir,
            client_key,
            known_hosts,
            user: current_user(),
        };
        sshd.wait_listening();
        sshd
    }

    fn wait_listening(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect((self.address.as_str(), self.port)).is_ok() {
                return;
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                let log = std::fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default();
                panic!("sshd exited with {status}: {log}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("sshd did not listen on {}:{} within 10s", self.address, self.port);
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
