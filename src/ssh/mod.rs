//! Running commands and moving files on the hosts of a cluster.
//!
//! Three transports behind one API: `ssh2` (libssh2, strict known_hosts checking, agent or
//! key-file auth), `openssh` (the system's `ssh` with the operator's ssh config, multiplexed) and
//! `local` (this machine). Which one a host uses comes from the cluster config
//! ([`crate::config::HostAccess`]). Every call has a timeout and honours the [`Interrupt`].

pub mod known_hosts;
mod libssh2;
mod local;
mod openssh;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::config::{ClusterConfig, HostAccess, TransportKind};
use crate::interrupt::Interrupt;

/// What a finished command left behind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    pub host: String,
    pub command: String,
    pub exit_code: i32,
    pub stdout: String,
    pub stderr: String,
    pub duration: Duration,
}

impl ExecOutput {
    /// The output of a command that was not run (in `--dry-run`): exit code 0, nothing printed.
    pub fn not_run(host: &str, command: &str) -> Self {
        ExecOutput {
            host: host.to_string(),
            command: command.to_string(),
            exit_code: 0,
            stdout: String::new(),
            stderr: String::new(),
            duration: Duration::ZERO,
        }
    }
}

/// What is at a path on a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathKind {
    Missing,
    File,
    Dir,
    Other,
}

impl PathKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PathKind::Missing => "missing",
            PathKind::File => "file",
            PathKind::Dir => "dir",
            PathKind::Other => "other",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SshError {
    #[error("cannot connect to {host}:{port} over ssh: {source}")]
    Connect {
        host: String,
        port: u16,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "host key of {name} is not in {known_hosts}: the server offers {key_type} key {fingerprint}. \
         Verify that fingerprint with the host's administrator, then record it: \
         ssh-keyscan -p {port} {host} >> {known_hosts}"
    )]
    HostKeyUnknown {
        host: String,
        port: u16,
        name: String,
        key_type: String,
        fingerprint: String,
        known_hosts: PathBuf,
    },
    #[error(
        "HOST KEY CHANGED for {name}: the server offers {key_type} key {fingerprint}, which does not \
         match {known_hosts}. Refusing to connect. If the host was legitimately reinstalled, remove \
         the old entry with `ssh-keygen -R '{name}' -f {known_hosts}` and record the new key"
    )]
    HostKeyChanged { name: String, key_type: String, fingerprint: String, known_hosts: PathBuf },
    #[error("ssh login as {user}@{host} failed; tried: {tried}. Check the user and identity_file in the cluster config, or the host's authorized_keys")]
    Auth { host: String, user: String, tried: String },
    #[error("timed out after {after:?} on {host} running `{command}`; the command may still be running there")]
    Timeout { host: String, command: String, after: Duration },
    #[error("interrupted while running `{command}` on {host}; it may still be running there")]
    Interrupted { host: String, command: String },
    #[error("ssh to {host}: {context}: {source}")]
    Ssh {
        host: String,
        context: String,
        #[source]
        source: ssh2::Error,
    },
    #[error("{host}: {context}: {source}")]
    Io {
        host: String,
        context: String,
        #[source]
        source: std::io::Error,
    },
}

/// What the transports return.
type Result<T, E = SshError> = std::result::Result<T, E>;

/// Access to every host of a cluster, with ssh sessions kept open between calls.
pub struct SshClient {
    config: Option<Arc<ClusterConfig>>,
    sessions: Mutex<HashMap<String, Arc<Mutex<libssh2::Connection>>>>,
    masters: Mutex<HashMap<String, Arc<openssh::Connection>>>,
}

impl SshClient {
    /// Without a config every host is reached with the built-in defaults.
    pub fn new(config: Option<Arc<ClusterConfig>>) -> Self {
        SshClient { config, sessions: Mutex::new(HashMap::new()), masters: Mutex::new(HashMap::new()) }
    }

    /// The ssh settings that apply to `host`.
    pub fn access(&self, host: &str) -> HostAccess {
        match &self.config {
            Some(c) => c.host_access(host),
            None => HostAccess {
                host: host.to_string(),
                transport: if host == "localhost" || host == "127.0.0.1" {
                    TransportKind::Local
                } else {
                    TransportKind::Ssh2
                },
                user: std::env::var("USER").unwrap_or_else(|_| "root".into()),
                port: 22,
                identity_files: Vec::new(),
                known_hosts: std::env::var("HOME")
                    .map(|h| PathBuf::from(h).join(".ssh/known_hosts"))
                    .unwrap_or_default(),
                agent: true,
                connect_timeout: Duration::from_secs(10),
                login_shell: false,
                staging_dir: crate::config::DEFAULT_STAGING_DIR.to_string(),
                explicit: Default::default(),
            },
        }
    }

    fn connection(&self, access: &HostAccess) -> Arc<Mutex<libssh2::Connection>> {
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        sessions
            .entry(access.host.clone())
            .or_insert_with(|| Arc::new(Mutex::new(libssh2::Connection::new(access.clone()))))
            .clone()
    }

    fn master(&self, access: &HostAccess) -> Arc<openssh::Connection> {
        let mut masters = self.masters.lock().unwrap_or_else(|p| p.into_inner());
        masters.entry(access.host.clone()).or_insert_with(|| Arc::new(openssh::Connection::new(access.clone()))).clone()
    }

    /// Runs `command` under `sh -c` on `host`.
    pub async fn exec(
        &self,
        host: &str,
        command: &str,
        timeout: Duration,
        interrupt: &Interrupt,
    ) -> Result<ExecOutput, SshError> {
        let access = self.access(host);
        tracing::debug!(host, command, ?timeout, transport = ?access.transport, "exec");
        match access.transport {
            TransportKind::Local | TransportKind::Auto => local::exec(host, command, timeout, interrupt).await,
            TransportKind::Ssh2 => {
                let conn = self.connection(&access);
                let (command, interrupt) = (command.to_string(), interrupt.clone());
                blocking(host, move || {
                    let mut conn = conn.lock().unwrap_or_else(|p| p.into_inner());
                    conn.exec(&command, timeout, &interrupt)
                })
                .await
            }
            TransportKind::Openssh => self.master(&access).exec(command, timeout, interrupt).await,
        }
    }

    /// Copies a local file to `remote` on `host`; returns the bytes copied.
    pub async fn upload(&self, host: &str, local: &Path, remote: &str) -> Result<u64, SshError> {
        let access = self.access(host);
        match access.transport {
            TransportKind::Local | TransportKind::Auto => local::copy(host, local, Path::new(remote)).await,
            TransportKind::Ssh2 => {
                let conn = self.connection(&access);
                let (local, remote) = (local.to_path_buf(), remote.to_string());
                blocking(host, move || conn.lock().unwrap_or_else(|p| p.into_inner()).upload(&local, &remote)).await
            }
            TransportKind::Openssh => self.master(&access).upload(local, remote).await,
        }
    }

    /// Copies `remote` on `host` to a local file; returns the bytes copied.
    pub async fn download(&self, host: &str, remote: &str, local: &Path) -> Result<u64, SshError> {
        let access = self.access(host);
        match access.transport {
            TransportKind::Local | TransportKind::Auto => local::copy(host, Path::new(remote), local).await,
            TransportKind::Ssh2 => {
                let conn = self.connection(&access);
                let (local, remote) = (local.to_path_buf(), remote.to_string());
                blocking(host, move || conn.lock().unwrap_or_else(|p| p.into_inner()).download(&remote, &local)).await
            }
            TransportKind::Openssh => self.master(&access).download(remote, local).await,
        }
    }

    /// What is at `path` on `host` (symlinks followed).
    pub async fn path_kind(&self, host: &str, path: &str) -> Result<PathKind, SshError> {
        let access = self.access(host);
        match access.transport {
            TransportKind::Local | TransportKind::Auto => Ok(local::path_kind(Path::new(path))),
            TransportKind::Ssh2 => {
                let conn = self.connection(&access);
                let path = path.to_string();
                blocking(host, move || conn.lock().unwrap_or_else(|p| p.into_inner()).path_kind(&path)).await
            }
            TransportKind::Openssh => self.master(&access).path_kind(path).await,
        }
    }
}

async fn blocking<T: Send + 'static>(
    host: &str,
    f: impl FnOnce() -> Result<T, SshError> + Send + 'static,
) -> Result<T, SshError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| SshError::Io {
        host: host.to_string(),
        context: "ssh worker thread failed".into(),
        source: std::io::Error::other(e.to_string()),
    })?
}
