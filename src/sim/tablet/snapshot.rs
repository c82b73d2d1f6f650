//! Snapshots: the scheduled window (`TabletImpl::SchedMakeSnapshot`), MakeSnapshot, and the
//! replica-op RPCs around them (PauseSnapshot, RecoverSnapshot, SendSnapshot).
//!
//! Once the tablet has run `--make_snapshot_check_interval` it checks the *local* hour
//! (`base::GetNowHour`, `localtime_r`, `src/base/strings.h:181-188`); in hour
//! `--make_snapshot_time` it snapshots every loaded replica, leaders and followers alike, one
//! after the other on the single snapshot thread (`--snapshot_pool_size` 1), skipping tid 0
//! pid 0 and replicas the nameserver had snapshotted (MakeSnapshot with a task) within
//! `--make_snapshot_offline_interval`; the next check then comes an hour later, otherwise
//! after the interval (`src/tablet/tablet_impl.cc:2737-2768`). `MakeSnapshotInternal`
//! (`:2612-2686`) skips a replica that is not kTableNormal, else holds it in kMakingSnapshot
//! while it works and returns it to kTableNormal. Unless the nameserver asked for an end
//! offset, nothing is written when the log has not grown `--make_snapshot_threshold_offset`
//! entries past the last snapshot; the state still flips to kMakingSnapshot and back.
//!
//! In the simulator a snapshot writes only `snapshot/MANIFEST` (offset, name, count, term):
//! the log keeps every entry, so no row is lost and loading still replays all of them. It
//! takes [`snapshot_duration`]: a memory table rewrites its rows (`MemTableSnapshot`), a disk
//! table takes a RocksDB checkpoint of hard links (`DiskTableSnapshot::MakeSnapshot`), which
//! does not grow with the data and refuses an end offset.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Timelike;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::storage::{read_manifest, BINLOG_FILE, META_FILE};
use super::{file_transfer, Tablet, TabletState};
use crate::sim::glog::{glog, Severity};
use crate::sim::http;
use crate::sim::proto::{general, ok, Body, StorageMode, TableMode, TableState, TaskInfo, TaskStatus};

pub(super) const SNAPSHOT_DIR: &str = "snapshot";
pub(super) const MANIFEST_FILE: &str = "MANIFEST";

/// The shortest snapshot, so kMakingSnapshot is observable.
pub const SNAPSHOT_MIN: Duration = Duration::from_millis(200);
/// How fast a memory table's snapshot goes through its rows.
pub const SNAPSHOT_ROWS_PER_SECOND: u64 = 50_000;

/// How long a snapshot of `rows` rows keeps a replica in kMakingSnapshot: [`SNAPSHOT_MIN`]
/// plus, for a memory table, the rows at [`SNAPSHOT_ROWS_PER_SECOND`].
pub fn snapshot_duration(mode: StorageMode, rows: usize) -> Duration {
    match mode {
        StorageMode::kMemory => {
            SNAPSHOT_MIN + Duration::from_micros(rows as u64 * 1_000_000 / SNAPSHOT_ROWS_PER_SECOND)
        }
        _ => SNAPSHOT_MIN,
    }
}

/// `openmldb.api.Manifest` (`src/proto/tablet.proto:168-173`), kept as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub offset: u64,
    pub name: String,
    pub count: u64,
    pub term: u64,
}

impl Tablet {
    /// `SchedMakeSnapshot`, run from the tablet's start until it stops.
    pub(super) async fn sched_make_snapshot(self: Arc<Self>) {
        let interval = self.flags.make_snapshot_check_interval;
        let mut delay = interval;
        loop {
            tokio::select! {
                _ = self.shutdown.cancelled() => return,
                _ = tokio::time::sleep(delay) => {}
            }
            if i64::from(chrono::Local::now().hour()) != self.flags.make_snapshot_time {
                delay = interval;
                continue;
            }
            let _pool = self.snapshot_pool.lock().await;
            let due: Vec<(u32, u32)> = {
                let state = self.lock();
                state
                    .replicas
                    .iter()
                    .filter(|(key, _)| **key != (0, 0))
                    .filter(|(_, r)| {
                        r.last_make_snapshot.is_none_or(|t| t.elapsed() > self.flags.make_snapshot_offline_interval)
                    })
                    .map(|(key, _)| *key)
                    .collect()
            };
            for (tid, pid) in due {
                self.make_snapshot_internal(tid, pid, 0, None).await;
            }
            // An hour later, so one window snapshots once.
            delay = interval + Duration::from_secs(3600);
        }
    }

    /// `MakeSnapshotInternal`: must run holding `snapshot_pool`.
    async fn make_snapshot_internal(&self, tid: u32, pid: u32, end_offset: u64, task: Option<TaskInfo>) {
        let plan = {
            let mut state = self.lock();
            let Some(replica) = state.replicas.get_mut(&(tid, pid)).filter(|r| r.state == TableState::kTableNormal)
            else {
                Self::finish_task_locked(&mut state, task.as_ref(), TaskStatus::kFailed);
                return;
            };
            replica.state = TableState::kMakingSnapshot;
            let current = replica.log.offset();
            let previous = read_manifest(&replica.dir);
            let snapshot = previous.as_ref().map(|m| m.offset).unwrap_or(0);
            let storage = replica.meta.mode_of_storage();
            let name_time = super::storage::now_time();
            let name_time = &name_time[..name_time.len() - 2];
            if end_offset == 0 && current < snapshot + self.flags.make_snapshot_threshold_offset {
                // "offset can't reach the threshold": nothing written, still a success.
                None
            } else if storage == StorageMode::kMemory {
                if end_offset > 0 && end_offset <= snapshot {
                    Some(Err(()))
                } else {
                    let target = if end_offset > 0 { end_offset.min(current) } else { current };
                    let rows = replica.log.entries().iter().take_while(|e| e.log_index <= target).count();
                    let term = if replica.log.count_after(snapshot) > 0 && target > snapshot {
                        replica.log.term_at(target)
                    } else {
                        previous.as_ref().map(|m| m.term).unwrap_or(replica.term)
                    };
                    let manifest =
                        Manifest { offset: target, name: format!("{name_time}.sdb"), count: rows as u64, term };
                    Some(Ok((manifest, snapshot_duration(storage, rows), replica.dir.clone())))
                }
            } else if end_offset > 0 {
                Some(Err(()))
            } else {
                let manifest = Manifest {
                    offset: current,
                    name: name_time.to_string(),
                    count: replica.log.len() as u64,
                    term: replica.term,
                };
                Some(Ok((manifest, snapshot_duration(storage, replica.log.len()), replica.dir.clone())))
            }
        };
        let done = match plan {
            None => true,
            Some(Err(())) => false,
            Some(Ok((manifest, duration, dir))) => {
                tokio::time::sleep(duration).await;
                let written = std::fs::create_dir_all(dir.join(SNAPSHOT_DIR)).and_then(|_| {
                    let text = serde_json::to_string_pretty(&manifest).map_err(std::io::Error::other)?;
                    std::fs::write(dir.join(SNAPSHOT_DIR).join(MANIFEST_FILE), text)
                });
                if written.is_ok() {
                    if let Some(replica) = self.lock().replicas.get_mut(&(tid, pid)) {
                        replica.snapshot_offset = manifest.offset;
                    }
                }
                written.is_ok()
            }
        };
        let mut state = self.lock();
        if let Some(replica) = state.replicas.get_mut(&(tid, pid)) {
            replica.state = TableState::kTableNormal;
            if done && task.is_some() {
                replica.last_make_snapshot = Some(Instant::now());
            }
        }
        let status = if done { TaskStatus::kDone } else { TaskStatus::kFailed };
        Self::finish_task_locked(&mut state, task.as_ref(), status);
    }

    /// MakeSnapshot (`TabletImpl::MakeSnapshot`, `src/tablet/tablet_impl.cc:2688-2735`): the
    /// task first; 111 when the replica is not loaded (its snapshot object is checked first),
    /// 105 unless kTableNormal; the snapshot itself runs on the snapshot thread.
    pub(super) fn make_snapshot(self: &Arc<Self>, body: &Body<'_>) -> Value {
        let (tid, pid) = Self::tid_pid(body);
        let end_offset = body.u64("offset").unwrap_or(0);
        let mut state = self.lock();
        let task = match Self::take_task(&mut state, body) {
            Ok(task) => task,
            Err(reply) => return reply,
        };
        let reply = match state.replicas.get(&(tid, pid)) {
            None => general(111, "snapshot does not exist"),
            Some(r) if r.state != TableState::kTableNormal => general(105, "table status is not kNormal"),
            Some(_) => {
                let tablet = self.clone();
                tokio::spawn(async move {
                    let _pool = tablet.snapshot_pool.lock().await;
                    tablet.make_snapshot_internal(tid, pid, end_offset, task).await;
                });
                return ok();
            }
        };
        Self::finish_task_locked(&mut state, task.as_ref(), TaskStatus::kFailed);
        reply
    }

    /// PauseSnapshot / RecoverSnapshot (`src/tablet/tablet_impl.cc:3032-3129`): the task
    /// first; pausing needs kTableNormal (105 otherwise, e.g. kMakingSnapshot or loading) and
    /// is a no-op when already paused; recovering needs kSnapshotPaused (107) and is a no-op
    /// when normal. In kSnapshotPaused the data RPCs, ChangeRole, AddReplica and DelReplica
    /// answer as usual; only snapshots (105, or skipped by the schedule) wait for it.
    pub(super) fn pause_snapshot(&self, body: &Body<'_>, pause: bool) -> Value {
        let (tid, pid) = Self::tid_pid(body);
        let mut state = self.lock();
        let task = match Self::take_task(&mut state, body) {
            Ok(task) => task,
            Err(reply) => return reply,
        };
        let reply = match state.replicas.get_mut(&(tid, pid)) {
            None => general(100, "table does not exist"),
            Some(replica) => match (pause, replica.state) {
                (true, TableState::kSnapshotPaused) | (false, TableState::kTableNormal) => ok(),
                (true, TableState::kTableNormal) => {
                    replica.state = TableState::kSnapshotPaused;
                    ok()
                }
                (false, TableState::kSnapshotPaused) => {
                    replica.state = TableState::kTableNormal;
                    ok()
                }
                (true, _) => general(105, "table status is not kNormal"),
                (false, _) => general(107, "table status is not kSnapshotPaused"),
            },
        };
        let status = if http::reply_code(&reply) == 0 { TaskStatus::kDone } else { TaskStatus::kFailed };
        Self::finish_task_locked(&mut state, task.as_ref(), status);
        reply
    }

    /// SendSnapshot (`TabletImpl::SendSnapshot`, `src/tablet/tablet_impl.cc:2886-2938`): the
    /// task first; 100, 103 on a follower, 107 unless kSnapshotPaused, 128 while a send of
    /// the same partition to the same endpoint runs. In the background the replica's files go
    /// to the target through [`file_transfer::FileSender`] with the table's storage mode
    /// (`SendSnapshotInternal`, `:2940-3030`): the meta on disk, and only when the replica has
    /// a snapshot (a MANIFEST) the snapshot's data and then the MANIFEST. The simulator's log
    /// stands in for the snapshot's data file; without a snapshot the target gets only the
    /// meta, and the replicator sends it every entry once AddReplica starts it.
    pub(super) fn send_snapshot(self: &Arc<Self>, body: &Body<'_>) -> Value {
        let (tid, pid) = Self::tid_pid(body);
        let endpoint = body.str("endpoint").unwrap_or_default();
        let mut state = self.lock();
        let task = match Self::take_task(&mut state, body) {
            Ok(task) => task,
            Err(reply) => return reply,
        };
        let key = format!("{endpoint}_{tid}_{pid}");
        let failed = |state: &mut TabletState, reply: Value| {
            Self::finish_task_locked(state, task.as_ref(), TaskStatus::kFailed);
            reply
        };
        let files = match state.replicas.get(&(tid, pid)) {
            None => return failed(&mut state, general(100, "table does not exist")),
            Some(r) if r.mode() == TableMode::kTableFollower => {
                return failed(&mut state, general(103, "table is follower"))
            }
            Some(r) if r.state != TableState::kSnapshotPaused => {
                return failed(&mut state, general(107, "table status is not kSnapshotPaused"))
            }
            Some(r) => {
                // A file that cannot be read fails the send, as `GetFileSize` does.
                let meta = std::fs::read(r.dir.join(META_FILE)).ok();
                let manifest = std::fs::read(r.dir.join(SNAPSHOT_DIR).join(MANIFEST_FILE)).ok();
                let mut files = vec![(META_FILE, meta)];
                if let Some(manifest) = manifest {
                    let data = r.log.to_jsonl().into_bytes();
                    // An empty log is a snapshot without a data file.
                    if !data.is_empty() {
                        files.push((BINLOG_FILE, Some(data)));
                    }
                    files.push((MANIFEST_FILE, Some(manifest)));
                }
                (files, r.meta.mode_of_storage())
            }
        };
        if !state.sending.insert(key.clone()) {
            return failed(&mut state, general(128, "snapshot is sending"));
        }
        drop(state);
        let tablet = self.clone();
        tokio::spawn(async move {
            let (files, storage) = files;
            let address = tablet.peer_address(&endpoint).await;
            let timing = file_transfer::SendTiming::from_flags(&tablet.flags);
            let mut sender = file_transfer::FileSender::new(tid, pid, storage, &address, timing);
            let mut status = TaskStatus::kDone;
            for (file_name, data) in files {
                let sent = match data {
                    Some(data) => sender.send_file(file_name, &data).await,
                    None => Err("get size failed".to_string()),
                };
                if let Err(failure) = sent {
                    glog!(Severity::Warning, "send {file_name} failed. tid[{tid}] pid[{pid}]: {failure}");
                    status = TaskStatus::kFailed;
                    break;
                }
            }
            if status == TaskStatus::kDone {
                glog!(Severity::Info, "send snapshot success. endpoint {endpoint} tid {tid} pid {pid}");
            }
            let mut state = tablet.lock();
            Self::finish_task_locked(&mut state, task.as_ref(), status);
            state.sending.remove(&key);
        });
        ok()
    }
}
