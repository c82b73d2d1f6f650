//! Component control: the OpenMLDB processes on their hosts. Four parts:
//!
//! - [`probe`]: what runs (pid files, `/proc`, ports, ZooKeeper registration, versions);
//! - [`lifecycle`]: stop and start, judged by our own checks;
//! - [`install`]: stage a release, back up, swap directories in, roll back;
//! - [`properties`]: a TaskManager's `conf/taskmanager.properties`, read as Java reads it and
//!   edited one checked definition at a time.
//!
//! Process control goes through each install's own `bin/start.sh` (O§1), but success is judged
//! by our own checks, never by its exit code or output: start.sh exits 0 on a failed start,
//! stop waits a fixed 3 s and never escalates (O§1.4, O§1.5). So `stop` waits until every
//! recorded process is really gone (SIGKILL after a grace period, the mon first so it cannot
//! restart the child, O§1.8) and the port is free; `start` waits until the process is alive,
//! answers its version and is registered in ZooKeeper (O§8, C§1.3, C§1.4).
//!
//! Every command runs through [`SshClient::exec`] with its arguments quoted by `shlex`; in
//! dry-run mode the functions that change something report the commands they would run and
//! do nothing. Every wait has a timeout and names what it waited for.

pub mod backup;
pub mod install;
pub mod lifecycle;
pub mod probe;
pub mod properties;
pub mod records;
pub mod staging;
pub mod status;
pub mod taskmanagers;

use std::time::Duration;

use serde::Serialize;

use crate::cluster::topology::Role;
use crate::cluster::zk::ZkError;
use crate::cluster::Cluster;
use crate::config::{ClusterConfig, Component};
use crate::interrupt::Interrupt;
use crate::journal::Journal;
use crate::ssh::{ExecOutput, SshClient, SshError};

pub use install::{parse_taskmanager_jar, parse_version_output};

/// What a plan shows for a version it can only read once the release is staged on the host.
pub const NOT_READ_YET: &str = "(read on the host once staged)";

/// How often waits poll.
const POLL: Duration = Duration::from_millis(200);
/// Time limit of one short command (reading a pid file, `--version`, a liveness probe).
const SHORT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum ComponentError {
    #[error("no component with endpoint {endpoint} in {config}; known endpoints: {known}")]
    UnknownEndpoint { endpoint: String, config: String, known: String },
    #[error("{function} works on {expected} only, but {endpoint} is a {role}")]
    WrongRole { function: &'static str, endpoint: String, role: Role, expected: &'static str },
    #[error("{step} for {endpoint} on {host}: {source}")]
    Ssh {
        step: String,
        endpoint: String,
        host: String,
        #[source]
        source: SshError,
    },
    #[error("{step} for {endpoint}: {source}")]
    Zk {
        step: String,
        endpoint: String,
        #[source]
        source: ZkError,
    },
    #[error("{step} for {endpoint} on {host} failed: `{command}` exited with {exit_code}\n```\n{output}\n```\n{next}")]
    Command {
        step: String,
        endpoint: String,
        host: String,
        command: String,
        exit_code: i32,
        output: String,
        next: String,
    },
    #[error("{step} for {endpoint} on {host}: waited {waited:?} for {what}, in vain. {next}")]
    Timeout { step: String, endpoint: String, host: String, what: String, waited: Duration, next: String },
    #[error(
        "{role} {endpoint} did not start on {host}: {reason}.\nstart.sh said:\n```\n{start_sh}\n```\n{logs}{next}"
    )]
    StartFailed {
        role: Role,
        endpoint: String,
        host: String,
        reason: String,
        start_sh: String,
        /// The tails of its log files, each fenced under `last lines of <file> on <host>:`.
        logs: String,
        next: String,
    },
    #[error("{step} for {endpoint}: {host} has {free_kib} KiB free under {dir} but needs {needed_kib} KiB. {next}")]
    NoSpace { step: String, endpoint: String, host: String, dir: String, free_kib: u64, needed_kib: u64, next: String },
    #[error("{step} for {endpoint}: {path} on {host} is not a usable release: {reason}")]
    BadRelease { step: String, endpoint: String, host: String, path: String, reason: String },
    #[error(
        "{step} for {endpoint}: it is still running on {host} (pid {pid}); stop it first with \
         component::stop(\"{endpoint}\") so nothing runs from a half-replaced directory"
    )]
    StillRunning { step: String, endpoint: String, host: String, pid: u32 },
    #[error(
        "{role} {endpoint} on {host} is DOWN: {tried}\nOnce the cause is fixed, start it with `{by_hand}`, or run \
         `mldb-upgrade abort`, which starts what a run left stopped"
    )]
    Down { role: Role, endpoint: String, host: String, tried: String, by_hand: String },
    #[error("{step} for {endpoint}: interrupted by Ctrl-C")]
    Interrupted { step: String, endpoint: String },
    #[error("{step} for {endpoint}: {reason}")]
    Other { step: String, endpoint: String, reason: String },
}

type Result<T> = std::result::Result<T, ComponentError>;

/// Which install directories a backup or install covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parts {
    pub bin: bool,
    pub taskmanager: bool,
}

impl Parts {
    /// What the documented procedure replaces for a role: `bin/`, plus `taskmanager/` for a
    /// TaskManager (O§6.1).
    pub fn default_for(role: Role) -> Parts {
        Parts { bin: true, taskmanager: role == Role::Taskmanager }
    }

    /// `"bin"`, `"taskmanager"` or both separated by `,` or `+`.
    pub fn parse(text: &str) -> std::result::Result<Parts, String> {
        let mut parts = Parts { bin: false, taskmanager: false };
        for word in text.split([',', '+', ' ']).map(str::trim).filter(|w| !w.is_empty()) {
            match word.trim_end_matches('/') {
                "bin" => parts.bin = true,
                "taskmanager" => parts.taskmanager = true,
                other => {
                    return Err(format!(
                        "unknown part `{other}`: expected \"bin\", \"taskmanager\" or \"bin,taskmanager\""
                    ))
                }
            }
        }
        if !parts.bin && !parts.taskmanager {
            return Err("nothing to copy: give \"bin\", \"taskmanager\" or \"bin,taskmanager\"".into());
        }
        Ok(parts)
    }

    pub fn dirs(self) -> Vec<&'static str> {
        let mut dirs = Vec::new();
        if self.bin {
            dirs.push("bin");
        }
        if self.taskmanager {
            dirs.push("taskmanager");
        }
        dirs
    }
}

/// Time limits of `stop`.
#[derive(Debug, Clone, Copy)]
pub struct StopOptions {
    /// How long processes get after start.sh's SIGTERM before SIGKILL.
    pub grace: Duration,
    /// How long to wait for the processes to go after SIGKILL, and for the port to be free.
    pub timeout: Duration,
}

impl Default for StopOptions {
    fn default() -> Self {
        StopOptions { grace: Duration::from_secs(30), timeout: Duration::from_secs(60) }
    }
}

/// What `stop` did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StopReport {
    pub endpoint: String,
    pub host: String,
    /// The mon's pid (mon mode) and the component's, as found in the pid files.
    pub mon_pid: Option<u32>,
    pub pid: Option<u32>,
    /// Pids that were alive and are gone now.
    pub stopped: Vec<u32>,
    pub killed: bool,
    #[serde(rename = "duration_ms", serialize_with = "as_millis")]
    pub duration: Duration,
    pub dry_run: bool,
}

/// What `start` found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StartReport {
    pub endpoint: String,
    pub host: String,
    pub pid: Option<u32>,
    pub mon_pid: Option<u32>,
    /// The running version; empty for a standby TaskManager (it does not serve RPCs).
    pub version: String,
    /// Registered in ZooKeeper (tablet node, nameserver election node, TaskManager leader).
    pub registered: bool,
    pub already_running: bool,
    #[serde(rename = "duration_ms", serialize_with = "as_millis")]
    pub duration: Duration,
    pub dry_run: bool,
}

/// What `start_again` did: the start, and the backup it came from when the installed version
/// did not start.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StartAgainReport {
    #[serde(flatten)]
    pub started: StartReport,
    pub from_backup: Option<String>,
}

/// What `backup`, `install`, `install_spark` and `rollback_install` did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct InstallReport {
    pub endpoint: String,
    pub host: String,
    /// The backup directory (backup), the release directory (install), the Spark directory
    /// (install_spark) or the backup restored from (rollback_install).
    pub path: String,
    /// Directories copied or replaced, relative to the install root (or Spark's home).
    pub dirs: Vec<String>,
    /// The version now installed (or, for backup, the version backed up).
    pub version: String,
    /// Where the replaced directory was kept (install_spark only).
    pub previous: Option<String>,
    /// Parts left as they were because they already held the version (install and
    /// rollback_install: a shared directory done with another component, or a resumed run).
    pub skipped: Vec<String>,
    /// Components that run from the same directory (install and rollback_install).
    pub shared_with: Vec<String>,
    pub dry_run: bool,
}

/// A duration as whole milliseconds, the unit scripts see.
fn as_millis<S: serde::Serializer>(duration: &Duration, serializer: S) -> std::result::Result<S::Ok, S::Error> {
    serializer.serialize_u64(duration.as_millis() as u64)
}

/// Runs the component primitives against one cluster.
pub struct Control<'a> {
    pub config: &'a ClusterConfig,
    pub ssh: &'a SshClient,
    /// The servers (and ZooKeeper) of the cluster, for registration and version checks.
    pub cluster: &'a Cluster,
    pub interrupt: &'a Interrupt,
    pub dry_run: bool,
    /// User-facing progress and dry-run lines.
    pub say: &'a (dyn Fn(&str) + Send + Sync),
    /// Where stops, backups and replaced Spark distributions are recorded ([`records`]).
    pub journal: Option<&'a Journal>,
    /// Staged releases and dry-run plans, kept for the whole run ([`staging`]).
    pub memory: &'a staging::StagingMemory,
}

fn q(text: &str) -> String {
    shlex::try_quote(text).map(|c| c.into_owned()).unwrap_or_else(|_| format!("'{}'", text.replace('\0', "")))
}

/// The last `lines` lines of a command's output, without terminal colour codes (start.sh
/// colours its messages).
fn fenced_tail(text: &str, lines: usize) -> String {
    let plain = strip_colours(text);
    let all: Vec<&str> = plain.trim_end().lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// `text` without ANSI escape sequences (`ESC [ ... m` and the like).
fn strip_colours(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            chars.next();
            // Parameters and intermediates, then one final byte in @..~.
            for c in chars.by_ref() {
                if ('@'..='~').contains(&c) {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The error of an ssh call made for `step` on `c`'s host.
fn ssh_error<'a>(c: &'a Component, step: &'a str) -> impl FnOnce(SshError) -> ComponentError + 'a {
    move |source| ComponentError::Ssh {
        step: step.to_string(),
        endpoint: c.endpoint.to_string(),
        host: c.host.clone(),
        source,
    }
}

fn join(dir: &str, rel: &str) -> String {
    if rel.starts_with('/') {
        rel.to_string()
    } else {
        format!("{}/{}", dir.trim_end_matches('/'), rel.trim_start_matches("./"))
    }
}

impl<'a> Control<'a> {
    /// The component at `endpoint`, or an error listing the known ones.
    pub fn component(&self, endpoint: &str) -> Result<&'a Component> {
        self.config.component(endpoint).ok_or_else(|| ComponentError::UnknownEndpoint {
            endpoint: endpoint.to_string(),
            config: self.config.path.display().to_string(),
            known: self
                .config
                .components
                .iter()
                .map(|c| format!("{} ({})", c.endpoint, c.role))
                .collect::<Vec<_>>()
                .join(", "),
        })
    }

    async fn exec(&self, c: &Component, step: &str, command: &str, timeout: Duration) -> Result<ExecOutput> {
        self.ssh.exec(&c.host, command, timeout, self.interrupt).await.map_err(ssh_error(c, step))
    }

    /// Runs `command`, which must exit 0.
    async fn run(&self, c: &Component, step: &str, command: &str, timeout: Duration, next: &str) -> Result<ExecOutput> {
        let out = self.exec(c, step, command, timeout).await?;
        if out.exit_code != 0 {
            return Err(ComponentError::Command {
                step: step.to_string(),
                endpoint: c.endpoint.to_string(),
                host: c.host.clone(),
                command: command.to_string(),
                exit_code: out.exit_code,
                output: fenced_tail(&format!("{}{}", out.stdout, out.stderr), 20),
                next: next.to_string(),
            });
        }
        Ok(out)
    }

    /// Runs a changing command, or in dry-run says what it would run.
    async fn change(&self, c: &Component, step: &str, command: &str, timeout: Duration, next: &str) -> Result<()> {
        if self.dry_run {
            (self.say)(&format!("[dry-run] {}: would run `{command}`", c.host));
            return Ok(());
        }
        self.run(c, step, command, timeout, next).await.map(|_| ())
    }

    /// One pause between two looks while `step` waits on `c`; Ctrl-C ends it.
    async fn sleep(&self, c: &Component, step: &str) -> Result<()> {
        tokio::select! {
            _ = tokio::time::sleep(POLL) => Ok(()),
            _ = self.interrupt.raised() => Err(ComponentError::Interrupted {
                step: step.to_string(),
                endpoint: c.endpoint.to_string(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_parse() {
        assert_eq!(Parts::parse("bin").unwrap(), Parts { bin: true, taskmanager: false });
        assert_eq!(Parts::parse("bin,taskmanager/").unwrap(), Parts { bin: true, taskmanager: true });
        assert!(Parts::parse("conf").is_err());
        assert!(Parts::parse("").is_err());
        assert_eq!(Parts::default_for(Role::Taskmanager), Parts { bin: true, taskmanager: true });
    }

    #[test]
    fn join_keeps_absolute_paths() {
        assert_eq!(join("/srv/tablet", "./logs"), "/srv/tablet/logs");
        assert_eq!(join("/srv/tablet", "/var/log"), "/var/log");
    }
}
