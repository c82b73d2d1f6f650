//! The `ssh2` and `openssh` transports against a real OpenSSH server: host keys, login, exec,
//! files, timeouts. Every test runs through both and expects the same results and errors; the
//! `openssh` ones also reach a host through a jump host.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use mldb_upgrade::config::ClusterConfig;
use mldb_upgrade::interrupt::Interrupt;
use mldb_upgrade::ssh::{PathKind, SshClient, SshError};

use crate::support::sshd::{public_key_fields, Sshd};

/// Both transports; `openssh` reads an empty ssh config (`ssh_config`), so that the user's own
/// `~/.ssh/config` cannot change what these tests see.
const TRANSPORTS: [&str; 2] = ["ssh2", "openssh"];

fn ssh_client(transport: &str, sshd: &Sshd, known_hosts: &Path, key: &Path) -> SshClient {
    let mut text = format!(
        "zk_cluster = \"127.0.0.1:2181\"\n[ssh]\ntransport = \"{transport}\"\nuser = \"{}\"\nport = {}\n\
         identity_file = \"{}\"\nknown_hosts = \"{}\"\nconnect_timeout = \"5s\"\n",
        sshd.user,
        sshd.port,
        key.display(),
        known_hosts.display()
    );
    if transport == "openssh" {
        let empty = sshd.dir.path().join("ssh_config_empty");
        std::fs::write(&empty, "").unwrap();
        text.push_str(&format!("ssh_config = \"{}\"\n", empty.display()));
    }
    let config = ClusterConfig::parse(&sshd.dir.path().join("cluster.toml"), &text, &std::collections::HashMap::new())
        .expect("config parses");
    SshClient::new(Some(Arc::new(config)))
}

#[tokio::test]
async fn exec_returns_exit_code_stdout_and_stderr() {
    for transport in TRANSPORTS {
        let sshd = Sshd::start();
        let r = ssh_client(transport, &sshd, &sshd.known_hosts, &sshd.client_key);
        let out = r
            .exec("127.0.0.1", "echo out; echo err >&2; exit 7", Duration::from_secs(20), &Interrupt::new())
            .await
            .unwrap();
        assert_eq!(out.exit_code, 7);
        assert_eq!(out.stdout, "out\n");
        assert_eq!(out.stderr, "err\n");
        // The session is reused for the next call.
        let big = r
            .exec("127.0.0.1", "seq 1 200000 >&2; echo done", Duration::from_secs(20), &Interrupt::new())
            .await
            .unwrap();
        assert_eq!(big.stdout, "done\n");
        assert_eq!(big.stderr.lines().count(), 200000, "stderr larger than the channel window is read fully");
    }
}

#[tokio::test]
async fn changed_host_key_is_refused_with_fingerprint_and_fix() {
    for transport in TRANSPORTS {
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
        let r = ssh_client(transport, &sshd, &kh, &sshd.client_key);
        let err = r.exec("127.0.0.1", "true", Duration::from_secs(10), &Interrupt::new()).await.unwrap_err();
        assert!(matches!(err, SshError::HostKeyChanged { .. }), "{transport}: {err}");
        let text = err.to_string();
        assert!(text.contains(&format!("HOST KEY CHANGED for [127.0.0.1]:{}", sshd.port)), "{transport}: {text}");
        assert!(text.contains("ED25519 key SHA256:"), "{transport}: {text}");
        assert!(
            text.contains(&format!("ssh-keygen -R '[127.0.0.1]:{}' -f {}", sshd.port, kh.display())),
            "{transport}: {text}"
        );
    }
}

#[tokio::test]
async fn unknown_host_key_is_refused_with_keyscan_advice() {
    for transport in TRANSPORTS {
        let sshd = Sshd::start();
        let kh = sshd.dir.path().join("known_hosts_empty");
        std::fs::write(&kh, "").unwrap();
        let r = ssh_client(transport, &sshd, &kh, &sshd.client_key);
        let err = r.exec("127.0.0.1", "true", Duration::from_secs(10), &Interrupt::new()).await.unwrap_err();
        assert!(matches!(err, SshError::HostKeyUnknown { .. }), "{transport}: {err}");
        assert!(
            err.to_string().contains(&format!("ssh-keyscan -p {} 127.0.0.1 >> {}", sshd.port, kh.display())),
            "{err}"
        );
    }
}

/// libssh2 must negotiate the key type known_hosts holds (`reference/tooling.md`, ssh2 pitfall).
#[tokio::test]
async fn host_key_type_follows_known_hosts() {
    for transport in TRANSPORTS {
        let sshd = Sshd::start_with_host_keys(&["rsa", "ed25519"]);
        let r = ssh_client(transport, &sshd, &sshd.known_hosts, &sshd.client_key);
        let out = r.exec("127.0.0.1", "echo ok", Duration::from_secs(20), &Interrupt::new()).await.unwrap();
        assert_eq!(out.stdout, "ok\n");
    }
}

#[tokio::test]
async fn wrong_key_fails_login_naming_what_was_tried() {
    for transport in TRANSPORTS {
        let sshd = Sshd::start();
        let stranger = sshd.dir.path().join("stranger");
        std::process::Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(&stranger)
            .status()
            .unwrap();
        let r = ssh_client(transport, &sshd, &sshd.known_hosts, &stranger);
        let err = r.exec("127.0.0.1", "true", Duration::from_secs(10), &Interrupt::new()).await.unwrap_err();
        assert!(matches!(err, SshError::Auth { .. }), "{transport}: {err}");
        assert!(err.to_string().contains(&stranger.display().to_string()), "{transport}: {err}");
    }
}

#[tokio::test]
async fn upload_download_and_path_kind() {
    for transport in TRANSPORTS {
        let sshd = Sshd::start();
        let r = ssh_client(transport, &sshd, &sshd.known_hosts, &sshd.client_key);
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
}

#[tokio::test]
async fn exec_times_out_with_the_host_and_command() {
    for transport in TRANSPORTS {
        let sshd = Sshd::start();
        let r = ssh_client(transport, &sshd, &sshd.known_hosts, &sshd.client_key);
        let err = r.exec("127.0.0.1", "sleep 30", Duration::from_millis(700), &Interrupt::new()).await.unwrap_err();
        assert!(matches!(err, SshError::Timeout { .. }), "{transport}: {err}");
        assert!(err.to_string().contains("on 127.0.0.1 running `sleep 30`"), "{transport}: {err}");
        // A fresh session works afterwards.
        let ok = r.exec("127.0.0.1", "echo again", Duration::from_secs(10), &Interrupt::new()).await.unwrap();
        assert_eq!(ok.stdout, "again\n");
    }
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
    for transport in TRANSPORTS {
        let cluster = crate::support::write(
            dir.path(),
            "c.toml",
            &format!(
                "zk_cluster = \"127.0.0.1:2181\"\n[ssh]\ntransport = \"{transport}\"\nport = {port}\nidentity_file = \"{}\"\nknown_hosts = \"{}\"\n",
                sshd.client_key.display(),
                sshd.known_hosts.display()
            ),
        );
        let script = crate::support::write(dir.path(), "s.rhai", "ssh::exec(\"127.0.0.1\", \"true\");\n");
        let out = crate::support::run(&["run", &script, "--cluster", &cluster]);
        assert_eq!(out.code, 1, "{transport}: {}", out.stderr);
        assert!(
            out.stderr.contains(&format!("cannot connect to 127.0.0.1:{port} over ssh")),
            "{transport}: {}",
            out.stderr
        );
    }
}

/// Every `ssh::` function, printed in a form that does not depend on timing.
const EVERY_SSH_FUNCTION: &str = r#"
let h = setting("host");
let dir = setting("dir");
let r = ssh::exec(h, "echo out; echo err >&2; exit 3");
print(`exec: exit ${r.exit_code} ok ${r.ok} stdout ${r.stdout.len()}:${r.stdout} stderr ${r.stderr} dry_run ${r.dry_run}`);
let o = ssh::exec(h, "printf '%s' \"$0\" >/dev/null; echo with-options", #{timeout: "20s"});
print(`exec with options: ${o.exit_code} ${o.stdout}`);
try {
    ssh::exec(h, "sleep 5", #{timeout: "700ms"});
    print("timeout: none");
} catch (e) {
    print(`timeout: ${e}`);
}
let q = ssh::query(h, "echo query; exit 0");
print(`query: ${q.exit_code} ${q.stdout}`);
print(`upload: ${ssh::upload(h, dir + "/payload.sh", dir + "/remote.sh")}`);
print(`run uploaded: ${ssh::exec(h, dir + "/remote.sh").stdout}`);
print(`download: ${ssh::download(h, dir + "/remote.sh", dir + "/back.sh")}`);
print(`path_kind: ${ssh::path_kind(h, dir)} ${ssh::path_kind(h, dir + "/remote.sh")} ${ssh::path_kind(h, dir + "/nothing")}`);
print(`exists: ${ssh::exists(h, dir + "/remote.sh")} ${ssh::exists(h, dir + "/nothing")}`);
try {
    ssh::download(h, dir + "/nothing", dir + "/nothing.back");
    print("download missing: none");
} catch (e) {
    print("download missing: refused");
}
"#;

/// Runs [`EVERY_SSH_FUNCTION`] against `host` with `cluster_toml`; returns its stdout (the
/// working directory's path replaced by `DIR`).
fn run_every_ssh_function(cluster_toml: &str, host: &str) -> String {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().to_str().unwrap().to_string();
    let payload = work.path().join("payload.sh");
    std::fs::write(&payload, "#!/bin/sh\necho payload\n").unwrap();
    std::fs::set_permissions(&payload, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let cluster = crate::support::write(work.path(), "cluster.toml", cluster_toml);
    let script = crate::support::write(work.path(), "every.rhai", EVERY_SSH_FUNCTION);
    let host_set = format!("host={host}");
    let dir_set = format!("dir={dir}");
    let out = crate::support::run(&["run", &script, "--cluster", &cluster, "--set", &host_set, "--set", &dir_set]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(std::fs::read_to_string(work.path().join("back.sh")).unwrap(), "#!/bin/sh\necho payload\n");
    out.stdout.replace(&dir, "DIR")
}

/// issue: every `ssh::` function gives the same results through `ssh2` and `openssh`.
#[test]
fn every_ssh_function_gives_the_same_results_through_both_transports() {
    let sshd = Sshd::start();
    let mut results = Vec::new();
    for transport in TRANSPORTS {
        let mut toml = format!(
            "zk_cluster = \"127.0.0.1:2181\"\n[ssh]\ntransport = \"{transport}\"\nuser = \"{}\"\nport = {}\n\
             identity_file = \"{}\"\nknown_hosts = \"{}\"\n",
            sshd.user,
            sshd.port,
            sshd.client_key.display(),
            sshd.known_hosts.display()
        );
        if transport == "openssh" {
            let empty = sshd.dir.path().join("ssh_config_empty");
            std::fs::write(&empty, "").unwrap();
            toml.push_str(&format!("ssh_config = \"{}\"\n", empty.display()));
        }
        results.push(run_every_ssh_function(&toml, "127.0.0.1"));
    }
    for expected in [
        "exec: exit 3 ok false stdout 4:out\n stderr err\n dry_run false",
        "exec with options: 0 with-options",
        "timed out after 700ms on 127.0.0.1 running `sleep 5`",
        "query: 0 query",
        "upload: 23",
        "run uploaded: payload",
        "download: 23",
        "path_kind: dir file missing",
        "exists: true false",
        "download missing: refused",
    ] {
        assert!(results[0].contains(expected), "ssh2 output lacks {expected:?}:\n{}", results[0]);
    }
    assert_eq!(results[0], results[1], "ssh2 and openssh differ");
}

/// issue: a host reachable only through a jump host, by the name the operator's ssh config
/// gives it (`Host inner` with `ProxyJump jump`); the cluster config names nothing but the
/// transport and that ssh config. With the jump host down, the same host cannot be reached.
#[test]
fn openssh_reaches_a_host_behind_a_jump_host_through_the_ssh_config() {
    let jump = Sshd::start_on("127.0.0.3");
    let inner = Sshd::start_on("127.0.0.4");
    // Outside the jump host's directory, which goes when it is stopped.
    let config_dir = tempfile::tempdir().unwrap();
    let ssh_config = config_dir.path().join("ssh_config");
    let entry = |name: &str, sshd: &Sshd, extra: &str| {
        format!(
            "Host {name}\n  HostName {}\n  Port {}\n  User {}\n  IdentityFile {}\n  IdentitiesOnly yes\n  \
             UserKnownHostsFile {}\n  StrictHostKeyChecking yes\n{extra}",
            sshd.address,
            sshd.port,
            sshd.user,
            sshd.client_key.display(),
            sshd.known_hosts.display()
        )
    };
    let config_text = format!("{}{}", entry("jump", &jump, ""), entry("inner", &inner, "  ProxyJump jump\n"));
    std::fs::write(&ssh_config, config_text).unwrap();
    let toml = format!(
        "zk_cluster = \"127.0.0.1:2181\"\n[ssh]\ntransport = \"openssh\"\nssh_config = \"{}\"\n",
        ssh_config.display()
    );
    let through_jump = run_every_ssh_function(&toml, "inner");
    for expected in
        ["exec: exit 3 ok false", "timed out after 700ms on inner running `sleep 5`", "run uploaded: payload"]
    {
        assert!(through_jump.contains(expected), "lacks {expected:?}:\n{through_jump}");
    }
    // The command ran on the inner host's sshd: its connection came in through the jump host's
    // forwarding, to 127.0.0.4.
    let work = tempfile::tempdir().unwrap();
    let cluster = crate::support::write(work.path(), "cluster.toml", &toml);
    let script = crate::support::write(
        work.path(),
        "where.rhai",
        "print(ssh::exec(\"inner\", \"echo $SSH_CONNECTION\").stdout);\n",
    );
    let out = crate::support::run(&["run", &script, "--cluster", &cluster]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains(&format!("127.0.0.4 {}", inner.port)), "{}", out.stdout);

    drop(jump);
    let out = crate::support::run(&["run", &script, "--cluster", &cluster]);
    assert_eq!(out.code, 1, "inner was reached without the jump host:\n{}", out.stdout);
    // The port is the one the ssh config gives `inner`.
    assert!(out.stderr.contains(&format!("cannot connect to inner:{} over ssh", inner.port)), "{}", out.stderr);
}
