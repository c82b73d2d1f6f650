//! The ssh2 transport against a real OpenSSH server: host keys, login, exec, files.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use mldb_upgrade::config::ClusterConfig;
use mldb_upgrade::interrupt::Interrupt;
use mldb_upgrade::ssh::{PathKind, SshClient, SshError};

use crate::support::sshd::{public_key_fields, Sshd};

fn ssh_client(sshd: &Sshd, known_hosts: &Path, key: &Path) -> SshClient {
    let text = format!(
        "zk_cluster = \"127.0.0.1:2181\"\n[ssh]\ntransport = \"ssh2\"\nuser = \"{}\"\nport = {}\n\
         identity_file = \"{}\"\nknown_hosts = \"{}\"\nconnect_timeout = \"5s\"\n",
        sshd.user,
        sshd.port,
        key.display(),
        known_hosts.display()
    );
    let config = ClusterConfig::parse(&sshd.dir.path().join("cluster.toml"), &text, &std::collections::HashMap::new())
        .expect("config parses");
    SshClient::new(Some(Arc::new(config)))
}

#[tokio::test]
async fn exec_returns_exit_code_stdout_and_stderr() {
    let sshd = Sshd::start();
    let r = ssh_client(&sshd, &sshd.known_hosts, &sshd.client_key);
    let out = r
        .exec("127.0.0.1", "echo out; echo err >&2; exit 7", Duration::from_secs(20), &Interrupt::new())
        .await
        .unwrap();
    assert_eq!(out.exit_code, 7);
    assert_eq!(out.stdout, "out\n");
    assert_eq!(out.stderr, "err\n");
    // The session is reused for the next call.
    let big =
        r.exec("127.0.0.1", "seq 1 200000 >&2; echo done", Duration::from_secs(20), &Interrupt::new()).await.unwrap();
    assert_eq!(big.stdout, "done\n");
    assert_eq!(big.stderr.lines().count(), 200000, "stderr larger than the channel window is read fully");
}

#[tokio::test]
async fn changed_host_key_is_refused_with_fingerprint_and_fix() {
    let sshd = Sshd::start();
    // known_hosts records a different ed25519 key for this host and port.
    let other = sshd.dir.path().join("other_host");
    let status = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&other)
        .status()
        .unwrap();
    assert!(status.success());
    let kh = sshd.dir.path().join("known_hosts_changed");
    std::fs::write(&kh, format!("[127.0.0.1]:{} {}\n", sshd.port, public_key_fields(&other.with_extension("pub"))))
        .unwrap();
    let r = ssh_client(&sshd, &kh, &sshd.client_key);
    let err = r.exec("127.0.0.1", "true", Duration::from_secs(10), &Interrupt::new()).await.unwrap_err();
    assert!(matches!(err, SshError::HostKeyChanged { .. }), "{err}");
    let text = err.to_string();
    assert!(text.contains(&format!("HOST KEY CHANGED for [127.0.0.1]:{}", sshd.port)), "{text}");
    assert!(text.contains("ED25519 key SHA256:"), "{text}");
    assert!(text.contains(&format!("ssh-keygen -R '[127.0.0.1]:{}' -f {}", sshd.port, kh.display())), "{text}");
}

#[tokio::test]
async fn unknown_host_key_is_refused_with_keyscan_advice() {
    let sshd = Sshd::start();
    let kh = sshd.dir.path().join("known_hosts_empty");
    std::fs::write(&kh, "").unwrap();
    let r = ssh_client(&sshd, &kh, &sshd.client_key);
    let err = r.exec("127.0.0.1", "true", Duration::from_secs(10), &Interrupt::new()).await.unwrap_err();
    assert!(matches!(err, SshError::HostKeyUnknown { .. }), "{err}");
    assert!(err.to_string().contains(&format!("ssh-keyscan -p {} 127.0.0.1 >> {}", sshd.port, kh.display())), "{err}");
}

/// libssh2 must negotiate the key type known_hosts holds (`reference/tooling.md`, ssh2 pitfall).
#[tokio::test]
async fn host_key_type_follows_known_hosts() {
    let sshd = Sshd::start_with_host_keys(&["rsa", "ed25519"]);
    let r = ssh_client(&sshd, &sshd.known_hosts, &sshd.client_key);
    let out = r.exec("127.0.0.1", "echo ok", Duration::from_secs(20), &Interrupt::new()).await.unwrap();
    assert_eq!(out.stdout, "ok\n");
}

#[tokio::test]
async fn wrong_key_fails_login_naming_what_was_tried() {
    let sshd = Sshd::start();
    let stranger = sshd.dir.path().join("stranger");
    std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&stranger)
        .status()
        .unwrap();
    let r = ssh_client(&sshd, &sshd.known_hosts, &stranger);
    let err = r.exec("127.0.0.1", "true", Duration::from_secs(10), &Interrupt::new()).await.unwrap_err();
    assert!(matches!(err, SshError::Auth { .. }), "{err}");
    assert!(err.to_string().contains(&stranger.display().to_string()), "{err}");
}

#[tokio::test]
async fn upload_download_and_path_kind() {
    let sshd = Sshd::start();
    let r = ssh_client(&sshd, &sshd.known_hosts, &sshd.client_key);
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("payload.sh");
    std::fs::write(&src, "#!/bin/sh\necho payload\n").unwrap();
    std::fs::set_permissions(&src, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let remote = work.path().join("remote.sh");
    let remote = remote.to_str().unwrap();
    assert_eq!(r.upload("127.0.0.1", &src, remote).await.unwrap(), 23);
    let ran = r.exec("127.0.0.1", remote, Duration::from_secs(10), &Interrupt::new()).await.unwrap();
    assert_eq!(ran.stdout, "payload\n", "uploaded file keeps its mode");
    let back = work.path().join("back.sh");
    assert_eq!(r.download("127.0.0.1", remote, &back).await.unwrap(), 23);
    assert_eq!(std::fs::read_to_string(&back).unwrap(), "#!/bin/sh\necho payload\n");
    assert_eq!(r.path_kind("127.0.0.1", remote).await.unwrap(), PathKind::File);
    assert_eq!(r.path_kind("127.0.0.1", work.path().to_str().unwrap()).await.unwrap(), PathKind::Dir);
    assert_eq!(r.path_kind("127.0.0.1", "/nonexistent/x").await.unwrap(), PathKind::Missing);
}

#[tokio::test]
async fn exec_times_out_with_the_host_and_command() {
    let sshd = Sshd::start();
    let r = ssh_client(&sshd, &sshd.known_hosts, &sshd.client_key);
    let err = r.exec("127.0.0.1", "sleep 30", Duration::from_millis(700), &Interrupt::new()).await.unwrap_err();
    assert!(matches!(err, SshError::Timeout { .. }), "{err}");
    assert!(err.to_string().contains("on 127.0.0.1 running `sleep 30`"), "{err}");
    // A fresh session works afterwards.
    let ok = r.exec("127.0.0.1", "echo again", Duration::from_secs(10), &Interrupt::new()).await.unwrap();
    assert_eq!(ok.stdout, "again\n");
}

#[tokio::test]
async fn local_transport_runs_commands_and_times_out() {
    let r = SshClient::new(None);
    let out = r.exec("127.0.0.1", "echo local; exit 3", Duration::from_secs(10), &Interrupt::new()).await.unwrap();
    assert_eq!((out.exit_code, out.stdout.as_str()), (3, "local\n"));
    let err = r.exec("localhost", "sleep 30", Duration::from_millis(300), &Interrupt::new()).await.unwrap_err();
    assert!(matches!(err, SshError::Timeout { .. }), "{err}");
}

#[test]
fn unreachable_host_is_an_operation_failure() {
    let sshd = Sshd::start();
    let port = mldb_upgrade::sandbox::zookeeper::free_loopback_port().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cluster = crate::support::write(
        dir.path(),
        "c.toml",
        &format!(
            "zk_cluster = \"127.0.0.1:2181\"\n[ssh]\ntransport = \"ssh2\"\nport = {port}\nidentity_file = \"{}\"\nknown_hosts = \"{}\"\n",
            sshd.client_key.display(),
            sshd.known_hosts.display()
        ),
    );
    let script = crate::support::write(dir.path(), "s.rhai", "ssh::exec(\"127.0.0.1\", \"true\");\n");
    let out = crate::support::run(&["run", &script, "--cluster", &cluster]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains(&format!("cannot connect to 127.0.0.1:{port} over ssh")), "{}", out.stderr);
}
