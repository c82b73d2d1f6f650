//! A run of a stock or site script, made resumable: each step is recorded as started before it
//! runs and as done after; re-running the same command skips what is done. One run at a time per
//! cluster: an ephemeral lock node names the holder (host, pid, start time, command).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::{Journal, JournalError};
use crate::cluster::zk::{CreateFlags, ZkError};

/// Keys a run records for itself alone, removed with its record: the baseline of the upgrade
/// checks (`cluster::upgrade::baseline::KEY`).
pub const RUN_SCOPED: [&str; 1] = ["baseline"];

/// Who holds the lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockHolder {
    pub host: String,
    pub pid: u32,
    pub started: String,
    pub command: String,
}

impl LockHolder {
    /// True when the holder is a process of this host that no longer runs: its lock goes when
    /// its ZooKeeper session expires. A holder on another host is taken to run as long as its
    /// lock (an ephemeral node) exists.
    pub fn is_gone(&self) -> bool {
        self.host == hostname() && !crate::process::is_running(self.pid)
    }

    /// True when the holder is this process.
    pub fn is_me(&self) -> bool {
        self.host == hostname() && self.pid == std::process::id()
    }
}

impl std::fmt::Display for LockHolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "pid {} on {} since {} ({})", self.pid, self.host, self.started, self.command)
    }
}

/// Where a step stands. A step that failed or was interrupted stays `started` and runs again
/// when the command is re-run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StepState {
    Started,
    Done,
}

impl StepState {
    pub fn as_str(self) -> &'static str {
        match self {
            StepState::Started => "started",
            StepState::Done => "done",
        }
    }
}

impl std::fmt::Display for StepState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// The state of one step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepRecord {
    pub state: StepState,
    pub at: String,
    #[serde(default)]
    pub duration_ms: u64,
}

/// A run in progress, kept in the journal under `run`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRecord {
    /// What identifies "the same command": the script and its settings.
    pub name: String,
    pub started: String,
    pub steps: BTreeMap<String, StepRecord>,
    /// Step names in the order they first ran.
    #[serde(default)]
    pub order: Vec<String>,
}

impl RunRecord {
    /// True when this run already finished `step`.
    pub fn is_done(&self, step: &str) -> bool {
        self.steps.get(step).is_some_and(|s| s.state == StepState::Done)
    }

    /// The step running now (or that was running when the run stopped): the latest started and
    /// not done.
    pub fn current_step(&self) -> Option<&str> {
        self.order
            .iter()
            .rev()
            .find(|s| self.steps.get(*s).is_some_and(|r| r.state == StepState::Started))
            .map(String::as_str)
    }

    /// How many steps this run finished.
    pub fn done_count(&self) -> usize {
        self.steps.values().filter(|s| s.state == StepState::Done).count()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{0}")]
    Journal(#[from] JournalError),
    #[error(
        "another upgrade holds the lock of this cluster: {holder}. Wait for it to finish, or if it \
         is gone, its ZooKeeper session expires within the session timeout"
    )]
    Locked { holder: LockHolder },
    #[error(
        "an unfinished run `{unfinished}` is recorded for this cluster (started {started}); re-run \
         that same command to resume it, or `mldb-upgrade abort --cluster ...` to unwind it"
    )]
    OtherRunUnfinished { unfinished: String, started: String },
}

pub fn now() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

/// The lock as this process took it: its node's data and the ZooKeeper session it lives in.
#[derive(Debug, Clone)]
pub(super) struct HeldLock {
    data: Vec<u8>,
    session: u64,
}

impl Journal {
    /// The current lock holder, if any.
    pub async fn lock_holder(&self) -> Result<Option<LockHolder>, JournalError> {
        self.get("lock").await
    }

    /// Takes the cluster's lock (an ephemeral node that lives as long as this process's
    /// ZooKeeper session). A holder that is this host's dead process is waited out.
    pub async fn lock(&self, command: &str, wait_for_stale: Duration) -> Result<LockHolder, RunError> {
        let me = LockHolder { host: hostname(), pid: std::process::id(), started: now(), command: command.to_string() };
        let data = serde_json::to_vec(&me).unwrap_or_default();
        let deadline = std::time::Instant::now() + wait_for_stale;
        loop {
            match self.zk.create(&self.path("lock"), &data, CreateFlags { ephemeral: true, sequential: false }).await {
                Ok(_) => {
                    self.hold(data);
                    return Ok(me);
                }
                Err(ZkError::NodeExists { .. }) => {
                    let Some(holder) = self.lock_holder().await? else { continue };
                    if holder.is_me() {
                        self.hold(data);
                        return Ok(holder);
                    }
                    // A killed run on this host: its session ends within the session timeout.
                    if holder.is_gone() && std::time::Instant::now() < deadline {
                        tokio::time::sleep(Duration::from_millis(250)).await;
                        continue;
                    }
                    return Err(RunError::Locked { holder });
                }
                Err(e) => return Err(JournalError::Zk(e).into()),
            }
        }
    }

    /// Releases the lock if this process holds it (at exit; the ephemeral node would otherwise
    /// linger until the session closes).
    pub async fn unlock(&self) -> Result<(), JournalError> {
        if let Some(holder) = self.lock_holder().await? {
            if holder.pid == std::process::id() && holder.host == hostname() {
                self.delete("lock").await?;
            }
        }
        *self.held.lock().unwrap_or_else(|e| e.into_inner()) = None;
        Ok(())
    }

    /// True when this process took the cluster's lock and has not let go of it.
    pub fn took_lock(&self) -> bool {
        self.held.lock().unwrap_or_else(|e| e.into_inner()).is_some()
    }

    fn hold(&self, data: Vec<u8>) {
        *self.held.lock().unwrap_or_else(|e| e.into_inner()) =
            Some(HeldLock { data, session: self.zk.session_number() });
    }

    /// Before a write: when the ZooKeeper session the lock lived in expired (a ZooKeeper outage
    /// longer than the session timeout), the lock went with it; it is taken again, or the run
    /// stops if another run took it meanwhile.
    pub(super) async fn keep_lock(&self) -> Result<(), JournalError> {
        let Some(held) = self.held.lock().unwrap_or_else(|e| e.into_inner()).clone() else { return Ok(()) };
        // An expired session is replaced here, before the write (no request when it is alive).
        self.zk.connect().await?;
        if held.session == self.zk.session_number() {
            return Ok(());
        }
        match self.zk.create(&self.path("lock"), &held.data, CreateFlags { ephemeral: true, sequential: false }).await {
            Ok(_) => tracing::warn!(
                "the ZooKeeper session of this run expired, and the cluster's lock with it; the lock is taken again"
            ),
            Err(ZkError::NodeExists { .. }) => match self.get::<LockHolder>("lock").await? {
                Some(holder) if holder.is_me() => {}
                Some(holder) => return Err(JournalError::LockLost { holder }),
                None => return Box::pin(self.keep_lock()).await,
            },
            Err(e) => return Err(e.into()),
        }
        self.hold(held.data);
        Ok(())
    }

    /// Starts or resumes the run `name`.
    pub async fn begin_run(&self, name: &str) -> Result<RunRecord, RunError> {
        match self.get::<RunRecord>("run").await? {
            Some(run) if run.name == name => Ok(run),
            Some(run) => Err(RunError::OtherRunUnfinished { unfinished: run.name, started: run.started }),
            None => {
                let run =
                    RunRecord { name: name.to_string(), started: now(), steps: BTreeMap::new(), order: Vec::new() };
                self.put("run", &run).await?;
                Ok(run)
            }
        }
    }

    pub async fn current_run(&self) -> Result<Option<RunRecord>, JournalError> {
        self.get("run").await
    }

    /// Records a step's state.
    pub async fn record_step(
        &self,
        step: &str,
        state: StepState,
        duration: Duration,
    ) -> Result<RunRecord, JournalError> {
        let mut run: RunRecord = self.get("run").await?.unwrap_or_else(|| RunRecord {
            name: "(unnamed)".into(),
            started: now(),
            steps: BTreeMap::new(),
            order: Vec::new(),
        });
        if !run.order.iter().any(|s| s == step) {
            run.order.push(step.to_string());
        }
        run.steps.insert(step.to_string(), StepRecord { state, at: now(), duration_ms: duration.as_millis() as u64 });
        self.put("run", &run).await?;
        Ok(run)
    }

    /// Ends the run: its record and what it recorded for itself only ([`RUN_SCOPED`]) are
    /// removed (the local mirror keeps the history).
    pub async fn finish_run(&self) -> Result<(), JournalError> {
        for key in RUN_SCOPED {
            self.delete_tree(key).await?;
        }
        self.delete("run").await
    }
}
