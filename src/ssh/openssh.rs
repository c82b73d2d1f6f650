//! The `openssh` transport: the system's `ssh`, through one multiplexed master connection per
//! host (the `openssh` crate, `ssh -M` with a control socket). Everything the cluster config
//! leaves unset comes from the operator's ssh config (`~/.ssh/config`, or `ssh_config`), so
//! `ProxyJump`, agents, certificates, `ControlMaster` and known_hosts behave as in their shell.
//! Host keys are checked strictly (`StrictHostKeyChecking=yes`), as the `ssh2` transport does.
//!
//! Commands run as `ssh host command` runs them (the remote user's shell, `-c`), like `ssh2`'s
//! `exec` channel. Files are moved with `cat` over the same connection. Errors are the same
//! [`SshError`]s as `ssh2`'s: the master's log (ssh's own messages) says which.

use std::path::Path;
use std::process::Stdio as StdStdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use openssh::{KnownHosts, Session, SessionBuilder, Stdio};
use tokio::io::AsyncWriteExt;

use super::{ExecOutput, PathKind, Result, SshError};
use crate::config::HostAccess;
use crate::interrupt::Interrupt;

/// A master connection exits after this long without a command, even when this process was
/// killed and could not close it.
const IDLE_EXIT: usize = 600;

/// The connection to one host, opened on first use and opened again when it was lost.
pub(super) struct Connection {
    access: HostAccess,
    session: tokio::sync::Mutex<Option<Arc<Session>>>,
}

impl Connection {
    pub(super) fn new(access: HostAccess) -> Self {
        Connection { access, session: tokio::sync::Mutex::new(None) }
    }

    fn io(&self, context: impl Into<String>, source: std::io::Error) -> SshError {
        SshError::Io { host: self.access.host.clone(), context: context.into(), source }
    }

    /// The open master connection, checked (`ssh -O check`) before it is used: one that exited
    /// (idle, or the network dropped it) is opened again before a command starts, never after.
    async fn session(&self) -> Result<Arc<Session>> {
        let mut cached = self.session.lock().await;
        if let Some(session) = cached.as_ref() {
            if session.check().await.is_ok() {
                return Ok(session.clone());
            }
            tracing::debug!(host = %self.access.host, "the ssh master connection is gone; opening it again");
        }
        let session = Arc::new(self.open().await?);
        *cached = Some(session.clone());
        Ok(session)
    }

    async fn open(&self) -> Result<Session> {
        let a = &self.access;
        let mut builder = SessionBuilder::default();
        builder
            .known_hosts_check(KnownHosts::Strict)
            .connect_timeout(a.connect_timeout.max(Duration::from_secs(1)))
            .control_persist(openssh::ControlPersist::IdleFor(
                std::num::NonZeroUsize::new(IDLE_EXIT).expect("non-zero"),
            ))
            .control_directory(std::env::temp_dir());
        let explicit = &a.explicit;
        if let Some(user) = &explicit.user {
            builder.user(user.clone());
        }
        if let Some(port) = explicit.port {
            builder.port(port);
        }
        if let Some(key) = explicit.identity_files.first() {
            builder.keyfile(key);
        }
        if let Some(known_hosts) = &explicit.known_hosts {
            builder.user_known_hosts_file(known_hosts);
        }
        if let Some(config) = &explicit.ssh_config {
            builder.config_file(config);
        }
        let started = Instant::now();
        let session = builder.connect(&a.host).await.map_err(|e| self.connect_error(e))?;
        tracing::debug!(host = %a.host, elapsed = ?started.elapsed(), "ssh master connection open");
        Ok(session)
    }

    /// What ssh said when the master connection failed, as the same errors `ssh2` gives.
    fn connect_error(&self, error: openssh::Error) -> SshError {
        let a = &self.access;
        let said = error_text(&error);
        let known_hosts = a.explicit.known_hosts.clone().unwrap_or_else(|| a.known_hosts.clone());
        let word_after = |marker: &str| {
            said.split(marker).nth(1).and_then(|rest| rest.split_whitespace().next()).map(str::to_string)
        };
        let fingerprint = said.split_whitespace().find(|w| w.starts_with("SHA256:")).map(str::to_string);
        let port = a.explicit.port.or_else(|| self.configured_port()).unwrap_or(a.port);
        // As known_hosts names it.
        let name = if port == 22 { a.host.clone() } else { format!("[{}]:{port}", a.host) };
        if said.contains("REMOTE HOST IDENTIFICATION HAS CHANGED") {
            return SshError::HostKeyChanged {
                name,
                key_type: word_after("The fingerprint for the ").unwrap_or_else(|| "its".into()),
                fingerprint: fingerprint.unwrap_or_else(|| "(ssh did not show it)".into()),
                known_hosts,
            };
        }
        if said.contains("host key is known for") || said.contains("Host key verification failed") {
            let key_type =
                word_after("No ").filter(|_| said.contains("host key is known")).unwrap_or_else(|| "a".into());
            return SshError::HostKeyUnknown {
                host: a.host.clone(),
                port,
                name,
                fingerprint: fingerprint
                    .or_else(|| scanned_fingerprint(&a.host, port, &key_type))
                    .unwrap_or_else(|| "(ssh-keyscan shows it)".into()),
                key_type,
                known_hosts,
            };
        }
        if let Some(rest) = said.split("Permission denied (").nth(1) {
            // The key files the config names, else what the ssh config offers; and the methods
            // the server accepts, as ssh reports them.
            let mut tried: Vec<String> = a.explicit.identity_files.iter().map(|f| f.display().to_string()).collect();
            if tried.is_empty() {
                tried.push("the keys and agent of the ssh config".into());
            }
            let methods = rest.split(')').next().unwrap_or_default();
            return SshError::Auth {
                host: a.host.clone(),
                user: a.explicit.user.clone().unwrap_or_else(|| "the user of the ssh config".into()),
                tried: format!("{} (the server accepts: {methods})", tried.join(", ")),
            };
        }
        let kind = match &error {
            openssh::Error::Connect(e) | openssh::Error::Master(e) => e.kind(),
            _ => std::io::ErrorKind::Other,
        };
        SshError::Connect { host: a.host.clone(), port, source: std::io::Error::new(kind, said.trim().to_string()) }
    }

    /// The port the ssh config gives this host (`ssh -G`), for messages.
    fn configured_port(&self) -> Option<u16> {
        let mut command = std::process::Command::new("ssh");
        if let Some(config) = &self.access.explicit.ssh_config {
            command.arg("-F").arg(config);
        }
        let out =
            command.arg("-G").arg(&self.access.host).stdin(StdStdio::null()).stderr(StdStdio::null()).output().ok()?;
        String::from_utf8_lossy(&out.stdout).lines().find_map(|l| l.strip_prefix("port ")?.trim().parse().ok())
    }

    pub(super) async fn exec(&self, command: &str, timeout: Duration, stop: &Interrupt) -> Result<ExecOutput> {
        let started = Instant::now();
        let host = &self.access.host;
        let run = async {
            let session = self.session().await?;
            let output = session
                .raw_command(command)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .output()
                .await
                .map_err(|e| self.io(format!("running `{command}`"), std::io::Error::other(error_text(&e))))?;
            let exit_code = output.status.code().unwrap_or(-1);
            // 255 is also what ssh exits with when the connection broke.
            if exit_code == 255 && session.check().await.is_err() {
                return Err(self.io(
                    format!("running `{command}`"),
                    std::io::Error::other("the ssh connection was lost; the command may have run"),
                ));
            }
            Ok(ExecOutput {
                host: host.clone(),
                command: command.to_string(),
                exit_code,
                stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
                duration: started.elapsed(),
            })
        };
        tokio::select! {
            result = run => result,
            _ = tokio::time::sleep(timeout) => {
                Err(SshError::Timeout { host: host.clone(), command: command.to_string(), after: timeout })
            }
            _ = stop.raised() => Err(SshError::Interrupted { host: host.clone(), command: command.to_string() }),
        }
    }

    /// Copies a local file to `remote` (`cat > remote` over the connection, then its mode, as
    /// `ssh2`'s upload keeps it); returns its size.
    pub(super) async fn upload(&self, local: &Path, remote: &str) -> Result<u64> {
        use std::os::unix::fs::PermissionsExt;
        let context = format!("uploading {} to {remote}", local.display());
        let mut file = tokio::fs::File::open(local).await.map_err(|e| self.io(context.clone(), e))?;
        let mode = file.metadata().await.map_err(|e| self.io(context.clone(), e))?.permissions().mode() & 0o7777;
        let session = self.session().await?;
        let mut child = session
            .raw_command(format!("cat > {target} && chmod {mode:o} {target}", target = quote(remote)))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .await
            .map_err(|e| self.io(context.clone(), std::io::Error::other(error_text(&e))))?;
        let mut stdin = child.stdin().take().ok_or_else(|| self.io(context.clone(), no_pipe()))?;
        let copied = tokio::io::copy(&mut file, &mut stdin).await.map_err(|e| self.io(context.clone(), e))?;
        stdin.shutdown().await.map_err(|e| self.io(context.clone(), e))?;
        drop(stdin);
        let output = child
            .wait_with_output()
            .await
            .map_err(|e| self.io(context.clone(), std::io::Error::other(error_text(&e))))?;
        if !output.status.success() {
            let said = String::from_utf8_lossy(&output.stderr).trim().to_string();
            return Err(self.io(context, std::io::Error::other(said)));
        }
        Ok(copied)
    }

    /// Copies `remote` to a local file (`cat remote` over the connection); returns its size.
    pub(super) async fn download(&self, remote: &str, local: &Path) -> Result<u64> {
        let context = format!("downloading {remote} to {}", local.display());
        let session = self.session().await?;
        let mut child = session
            .raw_command(format!("cat {}", quote(remote)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .await
            .map_err(|e| self.io(context.clone(), std::io::Error::other(error_text(&e))))?;
        let mut stdout = child.stdout().take().ok_or_else(|| self.io(context.clone(), no_pipe()))?;
        let mut file = tokio::fs::File::create(local).await.map_err(|e| self.io(context.clone(), e))?;
        let copied = tokio::io::copy(&mut stdout, &mut file).await.map_err(|e| self.io(context.clone(), e))?;
        file.flush().await.map_err(|e| self.io(context.clone(), e))?;
        drop(stdout);
        let output = child
            .wait_with_output()
            .await
            .map_err(|e| self.io(context.clone(), std::io::Error::other(error_text(&e))))?;
        if !output.status.success() {
            let _ = tokio::fs::remove_file(local).await;
            let said = String::from_utf8_lossy(&output.stderr).trim().to_string();
            return Err(self.io(context, std::io::Error::other(said)));
        }
        Ok(copied)
    }

    /// What is at `path` (symlinks followed), as `test` sees it.
    pub(super) async fn path_kind(&self, path: &str) -> Result<PathKind> {
        let p = quote(path);
        let probe = format!(
            "if [ -d {p} ]; then echo dir; elif [ -f {p} ]; then echo file; elif [ -e {p} ]; then echo other; else echo missing; fi"
        );
        let out =
            self.exec(&probe, self.access.connect_timeout.max(Duration::from_secs(10)), &Interrupt::new()).await?;
        Ok(match out.stdout.trim() {
            "dir" => PathKind::Dir,
            "file" => PathKind::File,
            "other" => PathKind::Other,
            _ => PathKind::Missing,
        })
    }
}

/// The error with its causes: for a failed master connection, ssh's own messages.
fn error_text(error: &openssh::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text = format!("{text}: {cause}");
        source = cause.source();
    }
    text
}

fn no_pipe() -> std::io::Error {
    std::io::Error::other("ssh gave no pipe")
}

/// `path` quoted for the remote shell.
fn quote(path: &str) -> String {
    shlex::try_quote(path).map(|q| q.into_owned()).unwrap_or_else(|_| format!("'{}'", path.replace('\'', "'\\''")))
}

/// The SHA-256 fingerprint of the host's `key_type` key as `ssh-keyscan` sees it (for an
/// unknown host key, which ssh does not print); `None` when it cannot be read.
fn scanned_fingerprint(host: &str, port: u16, key_type: &str) -> Option<String> {
    let kind = key_type.to_ascii_lowercase();
    let scan = std::process::Command::new("ssh-keyscan")
        .args(["-T", "5", "-p", &port.to_string(), "-t", &kind, host])
        .stdin(StdStdio::null())
        .stderr(StdStdio::null())
        .output()
        .ok()?;
    let mut keygen = std::process::Command::new("ssh-keygen")
        .args(["-l", "-f", "-"])
        .stdin(StdStdio::piped())
        .stdout(StdStdio::piped())
        .stderr(StdStdio::null())
        .spawn()
        .ok()?;
    std::io::Write::write_all(keygen.stdin.as_mut()?, &scan.stdout).ok()?;
    drop(keygen.stdin.take());
    let listed = keygen.wait_with_output().ok()?;
    String::from_utf8_lossy(&listed.stdout).split_whitespace().find(|w| w.starts_with("SHA256:")).map(str::to_string)
}
