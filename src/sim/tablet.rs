//! The simulated tablet: partition replicas, the nameserver's task map, ZooKeeper
//! registration (C§1.3, C§2.4, C§4).
//!
//! A replica's metadata and log live under `--db_root_path/<tid>_<pid>/` as JSON
//! (`table_meta.json`, `binlog.jsonl`), so a restarted tablet can `LoadTable` them back; a
//! restarted tablet itself comes up with no table loaded (C§1.3).
//!
//! Data plane: `Put` appends to a leader replica's log, `Get`/`Scan` read any loaded
//! replica's log (C§2.5 codes from `CheckTable`), and per-follower workers replicate the log
//! with `AppendEntries` after `--sim_replication_delay_ms` (see the `sim` module docs).
//!
//! Log: when its ZooKeeper session has expired, the keep-alive check writes `TabletImpl::
//! CheckZkClient`'s `reconnect zk` (WARNING) and `reconnect zk ok` (INFO) to the process's glog
//! files only (`super::glog`); warnings it already printed to stderr stay there too.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use zookeeper_client as zkc;

use super::flags::SimFlags;
use super::glog::{glog, Severity};
use super::http::{self, Authenticator, HttpConfig, RpcError, RpcFuture, RpcService};
use super::proto::{general, ok, Body, TableMode, TableState, TableStatus, TaskInfo, TaskStatus};
use super::zk::{Zk, ZkError, ZkPaths};

#[derive(Debug, thiserror::Error)]
pub enum TabletError {
    #[error(transparent)]
    Zk(#[from] ZkError),
    /// The fast-restart case of C§1.3: the previous process's ephemeral node still exists.
    #[error(
        "tablet {endpoint} is already registered in ZooKeeper ({path} exists); its old session has not expired yet"
    )]
    AlreadyRegistered { endpoint: String, path: String },
    #[error("cannot register {path} in ZooKeeper: {source}")]
    Register {
        path: String,
        #[source]
        source: zkc::Error,
    },
    #[error("cannot create db_root_path {path}: {source}")]
    DbRoot {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// One binlog entry (`openmldb.api.LogEntry`): the offset of a replica is the `log_index` of
/// its last entry (C§2.4 `TableStatus.offset`, C§4).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogEntry {
    pub term: u64,
    pub log_index: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pk: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ts: Option<u64>,
    /// When a leader wrote the entry, for the replication lag; entries read from disk or
    /// received from a leader have none and are due at once.
    #[serde(skip)]
    pub written: Option<Instant>,
}

/// A replica's binlog, which is also its table: entries in offset order plus an index of each
/// key's entries (oldest first) for Get and Scan.
#[derive(Debug, Clone, Default)]
pub struct ReplicaLog {
    entries: Vec<LogEntry>,
    keys: HashMap<String, Vec<usize>>,
    value_bytes: u64,
}

impl ReplicaLog {
    pub fn from_entries(entries: Vec<LogEntry>) -> Self {
        let mut log = ReplicaLog::default();
        for entry in entries {
            log.push(entry);
        }
        log
    }

    /// Parses a `binlog.jsonl` file; a torn last line (a process killed mid-write) is ignored.
    pub fn from_jsonl(text: &str) -> Self {
        let mut log = ReplicaLog::default();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            match serde_json::from_str::<LogEntry>(line) {
                Ok(entry) if entry.log_index == log.offset() + 1 => log.push(entry),
                _ => break,
            }
        }
        log
    }

    pub fn to_jsonl(&self) -> String {
        entries_jsonl(&self.entries)
    }

    pub fn entries(&self) -> &[LogEntry] {
        &self.entries
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Index of the last entry; 0 for an empty log.
    pub fn offset(&self) -> u64 {
        self.entries.last().map(|e| e.log_index).unwrap_or(0)
    }

    pub fn key_count(&self) -> usize {
        self.keys.len()
    }

    pub fn value_bytes(&self) -> u64 {
        self.value_bytes
    }

    fn position_after(&self, offset: u64) -> usize {
        self.entries.partition_point(|e| e.log_index <= offset)
    }

    /// Entries after `offset`, at most `limit`, for a follower that has everything up to it.
    pub fn entries_after(&self, offset: u64, limit: usize) -> Vec<LogEntry> {
        let start = self.position_after(offset);
        self.entries[start..].iter().take(limit).cloned().collect()
    }

    fn push(&mut self, entry: LogEntry) {
        if let Some(pk) = &entry.pk {
            self.keys.entry(pk.clone()).or_default().push(self.entries.len());
        }
        self.value_bytes += entry.value.as_ref().map(|v| v.len() as u64).unwrap_or(0);
        self.entries.push(entry);
    }

    /// Appends the entries that continue the log and returns them; entries at or below the
    /// current offset are skipped (as the real replicator does, C§2.4 AppendEntries).
    pub fn append(&mut self, entries: &[LogEntry]) -> Vec<LogEntry> {
        let mut appended = Vec::new();
        for entry in entries {
            if entry.log_index == self.offset() + 1 {
                let mut entry = entry.clone();
                entry.written = None;
                appended.push(entry.clone());
                self.push(entry);
            }
        }
        appended
    }

    /// Appends a new entry written on this (leader) replica and returns it.
    pub fn write(&mut self, term: u64, pk: String, value: Option<String>, ts: u64) -> LogEntry {
        let entry = LogEntry {
            term,
            log_index: self.offset() + 1,
            pk: Some(pk),
            value,
            ts: Some(ts),
            written: Some(Instant::now()),
        };
        self.push(entry.clone());
        entry
    }

    /// The newest entry of `key`, or the newest one with exactly `ts` when `ts` > 0.
    pub fn get(&self, key: &str, ts: u64) -> Option<&LogEntry> {
        let positions = self.keys.get(key)?;
        positions.iter().rev().map(|&i| &self.entries[i]).find(|e| ts == 0 || e.ts == Some(ts))
    }

    /// Entries of `key` with `et < ts <= st` (`st` 0: no upper bound), newest first, at most
    /// `limit` (0: no limit).
    pub fn scan(&self, key: &str, st: u64, et: u64, limit: usize) -> Vec<&LogEntry> {
        let Some(positions) = self.keys.get(key) else { return Vec::new() };
        let mut rows: Vec<&LogEntry> = positions
            .iter()
            .map(|&i| &self.entries[i])
            .filter(|e| {
                let ts = e.ts.unwrap_or(0);
                ts > et && (st == 0 || ts <= st)
            })
            .collect();
        rows.sort_by(|a, b| b.ts.cmp(&a.ts).then(b.log_index.cmp(&a.log_index)));
        if limit > 0 {
            rows.truncate(limit);
        }
        rows
    }
}

fn entries_jsonl(entries: &[LogEntry]) -> String {
    let mut text = String::new();
    for entry in entries {
        if let Ok(line) = serde_json::to_string(entry) {
            text.push_str(&line);
            text.push('\n');
        }
    }
    text
}

/// `TableMeta` as the tablet keeps it in `table_meta.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ReplicaMeta {
    pub tid: u32,
    pub pid: u32,
    pub name: String,
    #[serde(default)]
    pub db: String,
    pub mode: Option<TableMode>,
    #[serde(default)]
    pub term: u64,
    /// Follower endpoints, when this replica leads.
    #[serde(default)]
    pub replicas: Vec<String>,
    #[serde(default)]
    pub storage_mode: Option<String>,
    #[serde(default)]
    pub column_desc: Vec<Value>,
    #[serde(default)]
    pub column_key: Vec<Value>,
}

/// A loaded partition replica.
#[derive(Debug, Clone)]
pub struct Replica {
    pub meta: ReplicaMeta,
    pub state: TableState,
    pub log: ReplicaLog,
}

impl Replica {
    fn mode(&self) -> TableMode {
        self.meta.mode.unwrap_or(TableMode::kTableLeader)
    }

    fn status(&self) -> TableStatus {
        TableStatus {
            tid: self.meta.tid,
            pid: self.meta.pid,
            offset: self.log.offset(),
            mode: self.mode(),
            state: self.state,
            is_expire: false,
            time_offset: 0,
            record_cnt: self.log.len() as u64,
            idx_cnt: self.log.len() as u64,
            name: self.meta.name.clone(),
            record_byte_size: self.log.value_bytes(),
            record_idx_byte_size: 0,
            record_pk_cnt: self.log.key_count() as u64,
            compress_type: "kNoCompress".to_string(),
            skiplist_height: 0,
            diskused: 0,
            storage_mode: self.meta.storage_mode.clone().unwrap_or_else(|| "kMemory".to_string()),
        }
    }
}

#[derive(Debug, Default)]
struct TabletState {
    replicas: BTreeMap<(u32, u32), Replica>,
    /// The nameserver's tasks, kept until `DeleteOPTask`, lost on restart (C§4).
    tasks: Vec<TaskInfo>,
    /// Running replication workers: (tid, pid, follower endpoint).
    replicators: HashSet<(u32, u32, String)>,
}

/// The tablet service and its state.
pub struct Tablet {
    flags: SimFlags,
    state: Mutex<TabletState>,
    /// Connections to peer tablets, for replication.
    peers: http::ConnectionPool,
    shutdown: CancellationToken,
}

/// How long loading a table takes in the background (kTableUndefined → kTableLoading →
/// kTableNormal, C§2.4): `LOAD_STEP` before loading starts, then `LOAD_STEP` plus the replay
/// of the log at `LOAD_ROWS_PER_SECOND`. Short, but observable and growing with the data.
const LOAD_STEP: Duration = Duration::from_millis(100);
pub const LOAD_ROWS_PER_SECOND: u64 = 100_000;
const PEER_TIMEOUT: Duration = Duration::from_secs(5);
/// Replication calls give up sooner, so a dead follower does not hold its worker long.
const REPLICATION_TIMEOUT: Duration = Duration::from_secs(1);
/// Pause of a replication worker after a failed call.
const REPLICATION_RETRY: Duration = Duration::from_millis(200);
/// Entries per AppendEntries call.
const REPLICATION_BATCH: usize = 1000;

/// Time to replay `rows` log entries when loading a table.
pub fn load_duration(rows: usize) -> Duration {
    LOAD_STEP * 2 + Duration::from_micros(rows as u64 * 1_000_000 / LOAD_ROWS_PER_SECOND)
}

/// The replica's log (and table data), one JSON entry per line.
pub const BINLOG_FILE: &str = "binlog.jsonl";
const META_FILE: &str = "table_meta.json";

fn replica_dir(root: &Path, tid: u32, pid: u32) -> PathBuf {
    root.join(format!("{tid}_{pid}"))
}

impl Tablet {
    pub fn new(flags: SimFlags, shutdown: CancellationToken) -> Arc<Tablet> {
        Arc::new(Tablet {
            flags,
            state: Mutex::new(TabletState::default()),
            peers: http::ConnectionPool::new(),
            shutdown,
        })
    }

    fn lock(&self) -> MutexGuard<'_, TabletState> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn dir(&self, tid: u32, pid: u32) -> PathBuf {
        replica_dir(&self.flags.db_root_path, tid, pid)
    }

    fn persist_meta(&self, meta: &ReplicaMeta) -> std::io::Result<()> {
        let dir = self.dir(meta.tid, meta.pid);
        std::fs::create_dir_all(&dir)?;
        let text = serde_json::to_string_pretty(meta).map_err(std::io::Error::other)?;
        std::fs::write(dir.join(META_FILE), text)
    }

    fn persist_log(&self, tid: u32, pid: u32, log: &ReplicaLog) -> std::io::Result<()> {
        let dir = self.dir(tid, pid);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join(BINLOG_FILE), log.to_jsonl())
    }

    /// Appends entries to the replica's `binlog.jsonl`; called under the state lock so lines
    /// stay in offset order.
    fn append_log(&self, tid: u32, pid: u32, entries: &[LogEntry]) -> std::io::Result<()> {
        use std::io::Write;
        let dir = self.dir(tid, pid);
        std::fs::create_dir_all(&dir)?;
        let mut file = std::fs::OpenOptions::new().create(true).append(true).open(dir.join(BINLOG_FILE))?;
        file.write_all(entries_jsonl(entries).as_bytes())
    }

    fn read_disk_meta(&self, tid: u32, pid: u32) -> Option<ReplicaMeta> {
        let text = std::fs::read_to_string(self.dir(tid, pid).join(META_FILE)).ok()?;
        serde_json::from_str(&text).ok()
    }

    fn read_disk_log(&self, tid: u32, pid: u32) -> ReplicaLog {
        std::fs::read_to_string(self.dir(tid, pid).join(BINLOG_FILE))
            .map(|text| ReplicaLog::from_jsonl(&text))
            .unwrap_or_default()
    }

    /// Registers an NS task as kDoing; false when the same task is already known.
    fn add_task(state: &mut TabletState, task: &TaskInfo) -> bool {
        if state.tasks.iter().any(|t| t.op_id == task.op_id && t.task_type == task.task_type) {
            return false;
        }
        let mut task = task.clone();
        task.status = TaskStatus::kDoing;
        state.tasks.push(task);
        true
    }

    fn finish_task(&self, task: Option<&TaskInfo>, status: TaskStatus) {
        let Some(task) = task else { return };
        let mut state = self.lock();
        for t in state.tasks.iter_mut() {
            if t.op_id == task.op_id && t.task_type == task.task_type && t.status == TaskStatus::kDoing {
                t.status = status;
            }
        }
    }

    fn tid_pid(body: &Body<'_>) -> (u32, u32) {
        (body.u32("tid").unwrap_or(0), body.u32("pid").unwrap_or(0))
    }

    fn get_table_status(&self, body: &Body<'_>) -> Value {
        let tid = body.u32("tid");
        let pid = body.u32("pid");
        let state = self.lock();
        let all: Vec<TableStatus> = state
            .replicas
            .values()
            .filter(|r| tid.is_none_or(|t| t == r.meta.tid) && pid.is_none_or(|p| p == r.meta.pid))
            .map(Replica::status)
            .collect();
        // always code 0 and no msg (C§2.4)
        let mut reply = json!({ "code": 0 });
        if !all.is_empty() {
            reply["all_table_status"] = json!(all);
        }
        reply
    }

    fn meta_from_body(meta: &Body<'_>) -> ReplicaMeta {
        ReplicaMeta {
            tid: meta.u32("tid").unwrap_or(0),
            pid: meta.u32("pid").unwrap_or(0),
            name: meta.str("name").unwrap_or_default(),
            db: meta.str("db").unwrap_or_default(),
            mode: meta.enum_name("mode", TableMode::ALL).and_then(|m| TableMode::from_name(&m)),
            term: meta.u64("term").unwrap_or(0),
            replicas: meta.str_list("replicas"),
            storage_mode: meta.enum_name("storage_mode", &[("kUnknown", 0), ("kMemory", 1), ("kSSD", 2), ("kHDD", 3)]),
            column_desc: meta.raw("column_desc").and_then(Value::as_array).cloned().unwrap_or_default(),
            column_key: meta.raw("column_key").and_then(Value::as_array).cloned().unwrap_or_default(),
        }
    }

    /// LoadTable (C§2.4): validate, merge over the on-disk meta, answer at once, load in the
    /// background.
    fn load_table(self: &Arc<Self>, body: &Body<'_>) -> Value {
        let table_meta = body.message("table_meta", "openmldb.api.TableMeta");
        let task = body.message("task_info", "openmldb.api.TaskInfo").and_then(|t| TaskInfo::from_body(&t));
        let Some(table_meta) = table_meta else {
            return general(129, "table meta is illegal");
        };
        let requested = Self::meta_from_body(&table_meta);
        if requested.name.is_empty() || requested.tid == 0 || requested.storage_mode.as_deref() == Some("kUnknown") {
            return general(129, "table meta is illegal");
        }
        let (tid, pid) = (requested.tid, requested.pid);
        // Unset fields, including mode, come from the on-disk meta (C§2.4).
        let mut meta = self.read_disk_meta(tid, pid).unwrap_or_default();
        meta.tid = tid;
        meta.pid = pid;
        meta.name = requested.name.clone();
        if table_meta.has("db") {
            meta.db = requested.db.clone();
        }
        if requested.mode.is_some() {
            meta.mode = requested.mode;
        }
        if table_meta.has("term") {
            meta.term = requested.term;
        }
        if table_meta.has("replicas") {
            meta.replicas = requested.replicas.clone();
        }
        if requested.storage_mode.is_some() {
            meta.storage_mode = requested.storage_mode.clone();
        }
        if !requested.column_desc.is_empty() {
            meta.column_desc = requested.column_desc.clone();
            meta.column_key = requested.column_key.clone();
        }
        {
            let mut state = self.lock();
            if state.replicas.contains_key(&(tid, pid)) {
                return general(101, "table already exists");
            }
            if let Some(task) = &task {
                if !Self::add_task(&mut state, task) {
                    return general(-1, "add task failed");
                }
            }
            if self.persist_meta(&meta).is_err() {
                self.finish_task_locked(&mut state, task.as_ref(), TaskStatus::kFailed);
                return general(127, "write data failed");
            }
            state
                .replicas
                .insert((tid, pid), Replica { meta, state: TableState::kTableUndefined, log: ReplicaLog::default() });
        }
        let tablet = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(LOAD_STEP).await;
            let log = tablet.read_disk_log(tid, pid);
            {
                let mut state = tablet.lock();
                match state.replicas.get_mut(&(tid, pid)) {
                    Some(replica) => replica.state = TableState::kTableLoading,
                    None => return,
                }
            }
            // Replaying the log takes time in proportion to its rows.
            tokio::time::sleep(load_duration(log.len()) - LOAD_STEP).await;
            {
                let mut state = tablet.lock();
                if let Some(replica) = state.replicas.get_mut(&(tid, pid)) {
                    replica.log = log;
                    replica.state = TableState::kTableNormal;
                }
            }
            tablet.start_replicators(tid, pid);
            tablet.finish_task(task.as_ref(), TaskStatus::kDone);
        });
        ok()
    }

    fn finish_task_locked(&self, state: &mut TabletState, task: Option<&TaskInfo>, status: TaskStatus) {
        if let Some(task) = task {
            for t in state.tasks.iter_mut() {
                if t.op_id == task.op_id && t.task_type == task.task_type {
                    t.status = status;
                }
            }
        }
    }

    /// CreateTable: what the nameserver's CreateTable sends; the replica is normal at once.
    fn create_table(self: &Arc<Self>, body: &Body<'_>) -> Value {
        let Some(table_meta) = body.message("table_meta", "openmldb.api.TableMeta") else {
            return general(129, "table meta is illegal");
        };
        let meta = Self::meta_from_body(&table_meta);
        if meta.name.is_empty() || meta.tid == 0 {
            return general(129, "table meta is illegal");
        }
        let mut state = self.lock();
        let key = (meta.tid, meta.pid);
        if state.replicas.contains_key(&key) {
            return general(101, "table already exists");
        }
        let log = ReplicaLog::default();
        if self.persist_meta(&meta).is_err() || self.persist_log(meta.tid, meta.pid, &log).is_err() {
            return general(127, "write data failed");
        }
        state.replicas.insert(key, Replica { meta, state: TableState::kTableNormal, log });
        drop(state);
        self.start_replicators(key.0, key.1);
        ok()
    }

    fn drop_table(&self, body: &Body<'_>) -> Value {
        let (tid, pid) = Self::tid_pid(body);
        let task = body.message("task_info", "openmldb.api.TaskInfo").and_then(|t| TaskInfo::from_body(&t));
        let mut state = self.lock();
        if state.replicas.remove(&(tid, pid)).is_none() {
            return general(100, "table does not exist");
        }
        if let Some(task) = &task {
            Self::add_task(&mut state, task);
        }
        // Real OpenMLDB moves the directory to the recycle bin; the simulator deletes it.
        let _ = std::fs::remove_dir_all(self.dir(tid, pid));
        self.finish_task_locked(&mut state, task.as_ref(), TaskStatus::kDone);
        ok()
    }

    fn change_role(self: &Arc<Self>, body: &Body<'_>) -> Value {
        let (tid, pid) = Self::tid_pid(body);
        let mode = body.enum_name("mode", TableMode::ALL).and_then(|m| TableMode::from_name(&m));
        let mut state = self.lock();
        let Some(replica) = state.replicas.get_mut(&(tid, pid)) else {
            return general(100, "table does not exist");
        };
        if replica.state == TableState::kTableLoading || replica.state == TableState::kTableUndefined {
            return general(104, "table is loading");
        }
        match mode {
            Some(TableMode::kTableLeader) => {
                if replica.mode() == TableMode::kTableLeader {
                    return general(102, "table is leader");
                }
                replica.meta.mode = Some(TableMode::kTableLeader);
                replica.meta.term = body.u64("term").unwrap_or(replica.meta.term);
                replica.meta.replicas = body.str_list("replicas");
            }
            Some(TableMode::kTableFollower) | None => {
                if replica.mode() == TableMode::kTableFollower {
                    return general(0, "table is follower");
                }
                replica.meta.mode = Some(TableMode::kTableFollower);
                replica.meta.replicas.clear();
            }
        }
        let meta = replica.meta.clone();
        drop(state);
        if self.persist_meta(&meta).is_err() {
            return general(127, "write data failed");
        }
        self.start_replicators(tid, pid);
        ok()
    }

    /// AppendEntries; with no entries and `pre_log_index` 0 it is the nameserver's
    /// FollowOfNoOne (C§2.4): raise the term and report the offset.
    fn append_entries(&self, body: &Body<'_>) -> Value {
        let (tid, pid) = Self::tid_pid(body);
        let term = body.u64("term").unwrap_or(0);
        let entries: Vec<LogEntry> =
            body.raw("entries").and_then(|v| serde_json::from_value(v.clone()).ok()).unwrap_or_default();
        let mut state = self.lock();
        let Some(replica) = state.replicas.get_mut(&(tid, pid)) else {
            return general(100, "table does not exist");
        };
        if replica.mode() == TableMode::kTableLeader {
            return general(102, "table is leader");
        }
        if replica.state == TableState::kTableLoading || replica.state == TableState::kTableUndefined {
            return general(104, "table is loading");
        }
        if term < replica.meta.term {
            return json!({ "code": 122, "msg": "term is older", "term": replica.meta.term,
                           "log_offset": replica.log.offset() });
        }
        let raised = term > replica.meta.term;
        replica.meta.term = term;
        let appended = replica.log.append(&entries);
        let offset = replica.log.offset();
        let meta = replica.meta.clone();
        if !appended.is_empty() && self.append_log(tid, pid, &appended).is_err() {
            return general(127, "write data failed");
        }
        drop(state);
        if raised {
            let _ = self.persist_meta(&meta);
        }
        json!({ "code": 0, "msg": "ok", "log_offset": offset, "term": term })
    }

    fn get_term_pair(&self, body: &Body<'_>) -> Value {
        let (tid, pid) = Self::tid_pid(body);
        let state = self.lock();
        if let Some(replica) = state.replicas.get(&(tid, pid)) {
            return json!({ "code": 0, "msg": "ok", "has_table": true,
                           "is_leader": replica.mode() == TableMode::kTableLeader,
                           "term": replica.meta.term, "offset": replica.log.offset() });
        }
        drop(state);
        // Not loaded: term and offset come from what is on disk (C§2.4).
        let term = self.read_disk_meta(tid, pid).map(|m| m.term).unwrap_or(0);
        let offset = self.read_disk_log(tid, pid).offset();
        json!({ "code": 0, "msg": "ok", "has_table": false, "term": term, "offset": offset })
    }

    fn get_task_status(&self) -> Value {
        let state = self.lock();
        let mut reply = json!({ "code": 0, "msg": "ok" });
        if !state.tasks.is_empty() {
            reply["task"] = json!(state.tasks);
        }
        reply
    }

    fn delete_op_task(&self, body: &Body<'_>) -> Value {
        let op_ids = body.u64_list("op_id");
        self.lock().tasks.retain(|t| !op_ids.contains(&t.op_id));
        ok()
    }

    fn cancel_op(&self, body: &Body<'_>) -> Value {
        if let Some(op_id) = body.u64("op_id") {
            for task in self.lock().tasks.iter_mut().filter(|t| t.op_id == op_id) {
                if matches!(task.status, TaskStatus::kInited | TaskStatus::kDoing) {
                    task.status = TaskStatus::kCanceled;
                }
            }
        }
        ok()
    }

    /// Shared front of the leader-only replica calls (AddReplica, DelReplica).
    fn leader_replica_check(state: &TabletState, tid: u32, pid: u32) -> Option<Value> {
        match state.replicas.get(&(tid, pid)) {
            None => Some(general(100, "table does not exist")),
            Some(r) if r.mode() == TableMode::kTableFollower => Some(general(103, "table is follower")),
            Some(r) if r.state == TableState::kTableLoading => Some(general(104, "table is loading")),
            Some(_) => None,
        }
    }

    fn add_replica(self: &Arc<Self>, body: &Body<'_>) -> Value {
        let (tid, pid) = Self::tid_pid(body);
        let endpoint = body.str("endpoint").unwrap_or_default();
        let task = body.message("task_info", "openmldb.api.TaskInfo").and_then(|t| TaskInfo::from_body(&t));
        let mut state = self.lock();
        if let Some(error) = Self::leader_replica_check(&state, tid, pid) {
            return error;
        }
        if let Some(task) = &task {
            if !Self::add_task(&mut state, task) {
                return general(-1, "add task failed");
            }
        }
        let Some(replica) = state.replicas.get_mut(&(tid, pid)) else {
            return general(100, "table does not exist");
        };
        if !replica.meta.replicas.contains(&endpoint) {
            replica.meta.replicas.push(endpoint.clone());
        }
        let meta = replica.meta.clone();
        self.finish_task_locked(&mut state, task.as_ref(), TaskStatus::kDone);
        drop(state);
        let _ = self.persist_meta(&meta);
        // The replicator catches the new follower up in the background.
        self.start_replicators(tid, pid);
        ok()
    }

    fn del_replica(&self, body: &Body<'_>) -> Value {
        let (tid, pid) = Self::tid_pid(body);
        let endpoint = body.str("endpoint").unwrap_or_default();
        let task = body.message("task_info", "openmldb.api.TaskInfo").and_then(|t| TaskInfo::from_body(&t));
        let mut state = self.lock();
        if let Some(error) = Self::leader_replica_check(&state, tid, pid) {
            return error;
        }
        if let Some(task) = &task {
            if !Self::add_task(&mut state, task) {
                return general(-1, "add task failed");
            }
        }
        let Some(replica) = state.replicas.get_mut(&(tid, pid)) else {
            return general(100, "table does not exist");
        };
        replica.meta.replicas.retain(|r| r != &endpoint);
        let meta = replica.meta.clone();
        self.finish_task_locked(&mut state, task.as_ref(), TaskStatus::kDone);
        drop(state);
        let _ = self.persist_meta(&meta);
        ok()
    }

    fn pause_snapshot(&self, body: &Body<'_>, pause: bool) -> Value {
        let (tid, pid) = Self::tid_pid(body);
        let task = body.message("task_info", "openmldb.api.TaskInfo").and_then(|t| TaskInfo::from_body(&t));
        let mut state = self.lock();
        let Some(replica) = state.replicas.get_mut(&(tid, pid)) else {
            return general(100, "table does not exist");
        };
        if pause {
            match replica.state {
                TableState::kTableNormal => replica.state = TableState::kSnapshotPaused,
                TableState::kSnapshotPaused => {}
                _ => return general(105, "table status is not kNormal"),
            }
        } else {
            match replica.state {
                TableState::kSnapshotPaused => replica.state = TableState::kTableNormal,
                TableState::kTableNormal => {}
                _ => return general(107, "table status is not kSnapshotPaused"),
            }
        }
        if let Some(task) = &task {
            if !Self::add_task(&mut state, task) {
                return general(-1, "add task failed");
            }
        }
        self.finish_task_locked(&mut state, task.as_ref(), TaskStatus::kDone);
        ok()
    }

    /// SendSnapshot: ship `table_meta.json` and the log to the target tablet (`SendData`).
    fn send_snapshot(self: &Arc<Self>, body: &Body<'_>) -> Value {
        let (tid, pid) = Self::tid_pid(body);
        let endpoint = body.str("endpoint").unwrap_or_default();
        let task = body.message("task_info", "openmldb.api.TaskInfo").and_then(|t| TaskInfo::from_body(&t));
        let mut state = self.lock();
        let Some(replica) = state.replicas.get(&(tid, pid)) else {
            return general(100, "table does not exist");
        };
        let mut meta = replica.meta.clone();
        meta.mode = Some(TableMode::kTableFollower);
        meta.replicas.clear();
        let log = replica.log.clone();
        if let Some(task) = &task {
            if !Self::add_task(&mut state, task) {
                return general(-1, "add task failed");
            }
        }
        drop(state);
        let tablet = self.clone();
        tokio::spawn(async move {
            let mut status = TaskStatus::kDone;
            for (file_name, data) in
                [(META_FILE, serde_json::to_string(&meta).unwrap_or_default()), (BINLOG_FILE, log.to_jsonl())]
            {
                let request = json!({ "tid": tid, "pid": pid, "file_name": file_name, "data": data });
                match http::call(&endpoint, "/TabletServer/SendData", &request, PEER_TIMEOUT).await {
                    Ok(reply) if http::reply_code(&reply) == 0 => {}
                    _ => status = TaskStatus::kFailed,
                }
            }
            tablet.finish_task(task.as_ref(), status);
        });
        ok()
    }

    /// SendData: receive one snapshot file for a partition that is not loaded here.
    fn send_data(&self, body: &Body<'_>) -> Value {
        let (tid, pid) = Self::tid_pid(body);
        let file_name = body.str("file_name").unwrap_or_default();
        if file_name != META_FILE && file_name != BINLOG_FILE {
            return general(-1, "unknown file");
        }
        if self.lock().replicas.contains_key(&(tid, pid)) {
            return general(101, "table already exists");
        }
        let dir = self.dir(tid, pid);
        let written = std::fs::create_dir_all(&dir)
            .and_then(|_| std::fs::write(dir.join(file_name), body.str("data").unwrap_or_default()));
        match written {
            Ok(()) => ok(),
            Err(_) => general(127, "write data failed"),
        }
    }

    fn get_manifest(&self, body: &Body<'_>) -> Value {
        let (tid, pid) = Self::tid_pid(body);
        let term = self.lock().replicas.get(&(tid, pid)).map(|r| r.meta.term).unwrap_or(0);
        // The simulator never makes snapshots, so the manifest offset is always 0.
        json!({ "code": 0, "msg": "ok", "manifest": { "offset": 0, "name": "", "count": 0, "term": term } })
    }

    /// `CheckTable` in front of the data RPCs (`TB` CheckTable, codes C§2.5): 100 when the
    /// partition is not loaded here, 103 for a follower when only a leader may answer (Put),
    /// 104 while the table loads.
    fn check_table(state: &mut TabletState, tid: u32, pid: u32, leader_only: bool) -> Result<&mut Replica, Value> {
        let Some(replica) = state.replicas.get_mut(&(tid, pid)) else {
            return Err(general(100, "table does not exist"));
        };
        if leader_only && replica.mode() == TableMode::kTableFollower {
            return Err(general(103, "table is follower"));
        }
        if matches!(replica.state, TableState::kTableLoading | TableState::kTableUndefined) {
            return Err(general(104, "table is loading"));
        }
        Ok(replica)
    }

    /// Put (`tablet.proto` PutRequest): only a replica in leader mode takes writes. It does
    /// not ask anyone whether it is still the partition's leader: a leader replaced by a live
    /// ChangeLeader keeps accepting writes that are then lost (C§3.5, C§6 item 6). The entry
    /// is in the leader's log when the reply goes out; followers get it asynchronously.
    fn put(&self, body: &Body<'_>) -> Value {
        let (tid, pid) = Self::tid_pid(body);
        let key = body
            .raw("dimensions")
            .and_then(Value::as_array)
            .and_then(|dims| dims.first())
            .and_then(|d| d.get("key"))
            .and_then(Value::as_str)
            .map(str::to_string)
            .or_else(|| body.str("pk"));
        let ts = body.u64("time").filter(|t| *t > 0).unwrap_or_else(now_ms);
        let value = body.str("value");
        let mut state = self.lock();
        let replica = match Self::check_table(&mut state, tid, pid, true) {
            Ok(replica) => replica,
            Err(error) => return error,
        };
        let Some(key) = key.filter(|k| !k.is_empty()) else {
            return general(115, "invalid dimension parameter");
        };
        let term = replica.meta.term;
        let entry = replica.log.write(term, key, value, ts);
        if self.append_log(tid, pid, &[entry]).is_err() {
            return general(127, "write data failed");
        }
        ok()
    }

    /// Get (`tablet.proto` GetRequest): any loaded replica answers, a follower from its own
    /// (possibly lagging) data, like `TB` Get, which does not check the leader.
    fn get(&self, body: &Body<'_>) -> Value {
        let (tid, pid) = Self::tid_pid(body);
        let key = body.str("key").unwrap_or_default();
        let ts = body.u64("ts").unwrap_or(0);
        let mut state = self.lock();
        let replica = match Self::check_table(&mut state, tid, pid, false) {
            Ok(replica) => replica,
            Err(error) => return error,
        };
        match replica.log.get(&key, ts) {
            Some(entry) => json!({ "code": 0, "msg": "ok", "key": key, "ts": entry.ts.unwrap_or(0),
                                   "value": entry.value.clone().unwrap_or_default() }),
            None => general(109, "key not found"),
        }
    }

    /// Scan (`tablet.proto` ScanRequest): rows of `pk` with `et < ts <= st`, newest first.
    fn scan(&self, body: &Body<'_>) -> Value {
        let (tid, pid) = Self::tid_pid(body);
        let st = body.u64("st").unwrap_or(0);
        let et = body.u64("et").unwrap_or(0);
        if st < et {
            return general(117, "starttime less than endtime");
        }
        let key = body.str("pk").unwrap_or_default();
        let limit = body.u32("limit").unwrap_or(0) as usize;
        let mut state = self.lock();
        let replica = match Self::check_table(&mut state, tid, pid, false) {
            Ok(replica) => replica,
            Err(error) => return error,
        };
        let pairs: Vec<Value> = replica
            .log
            .scan(&key, st, et, limit)
            .into_iter()
            .map(|e| json!({ "ts": e.ts.unwrap_or(0), "value": e.value.clone().unwrap_or_default() }))
            .collect();
        let mut reply = json!({ "code": 0, "msg": "ok", "count": pairs.len(), "is_finish": true });
        if !pairs.is_empty() {
            reply["pairs"] = Value::Array(pairs);
        }
        reply
    }

    /// Starts a replication worker for each follower of a leader replica that has none yet.
    fn start_replicators(self: &Arc<Self>, tid: u32, pid: u32) {
        let mut state = self.lock();
        let Some(replica) = state.replicas.get(&(tid, pid)) else { return };
        if replica.mode() != TableMode::kTableLeader {
            return;
        }
        for follower in replica.meta.replicas.clone() {
            if state.replicators.insert((tid, pid, follower.clone())) {
                tokio::spawn(replicate(self.clone(), tid, pid, follower));
            }
        }
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// One leader→follower replication stream (the real `LogReplicator`'s per-follower worker):
/// an entry is sent once it is `--sim_replication_delay_ms` old; the follower's reply says
/// how far it got. The worker ends when the replica stops leading or drops the follower. A
/// leader whose term is older than the follower's is refused (code 122), so a replaced
/// leader's extra entries never reach the new term's replicas (C§3.5).
async fn replicate(tablet: Arc<Tablet>, tid: u32, pid: u32, follower: String) {
    let delay = tablet.flags.sim_replication_delay;
    let tick = delay.clamp(Duration::from_millis(5), Duration::from_millis(50));
    let mut acked: Option<u64> = None;
    loop {
        let (term, entries) = {
            let mut state = tablet.lock();
            let leading = state
                .replicas
                .get(&(tid, pid))
                .filter(|r| r.mode() == TableMode::kTableLeader && r.meta.replicas.contains(&follower));
            let Some(replica) = leading else {
                state.replicators.remove(&(tid, pid, follower.clone()));
                return;
            };
            let now = Instant::now();
            let entries = match acked {
                // First contact (or after an error): an empty call reports the follower's offset.
                None => Some(Vec::new()),
                Some(acked) => {
                    let due: Vec<LogEntry> = replica
                        .log
                        .entries_after(acked, REPLICATION_BATCH)
                        .into_iter()
                        .take_while(|e| e.written.is_none_or(|w| w + delay <= now))
                        .collect();
                    (!due.is_empty()).then_some(due)
                }
            };
            (replica.meta.term, entries)
        };
        let pause = match entries {
            None => tick,
            Some(entries) => {
                let request = json!({ "tid": tid, "pid": pid, "term": term,
                                      "pre_log_index": acked.unwrap_or(0), "entries": entries });
                match tablet.peers.call(&follower, "/TabletServer/AppendEntries", &request, REPLICATION_TIMEOUT).await {
                    Ok(reply) if http::reply_code(&reply) == 0 => {
                        acked = reply.get("log_offset").and_then(Value::as_u64);
                        Duration::ZERO
                    }
                    _ => {
                        acked = None;
                        REPLICATION_RETRY
                    }
                }
            }
        };
        if !pause.is_zero() {
            tokio::select! {
                _ = tablet.shutdown.cancelled() => return,
                _ = tokio::time::sleep(pause) => {}
            }
        } else if tablet.shutdown.is_cancelled() {
            return;
        }
    }
}

impl RpcService for Tablet {
    fn short_name(&self) -> &'static str {
        "TabletServer"
    }

    fn full_name(&self) -> &'static str {
        "openmldb.api.TabletServer"
    }

    fn call(self: Arc<Self>, method: String, body: Value) -> RpcFuture {
        Box::pin(async move {
            let reply = match method.as_str() {
                "GetTableStatus" => self.get_table_status(&Body::new(&body, "openmldb.api.GetTableStatusRequest")),
                "LoadTable" => self.load_table(&Body::new(&body, "openmldb.api.LoadTableRequest")),
                "CreateTable" => self.create_table(&Body::new(&body, "openmldb.api.CreateTableRequest")),
                "DropTable" => self.drop_table(&Body::new(&body, "openmldb.api.DropTableRequest")),
                "ChangeRole" => self.change_role(&Body::new(&body, "openmldb.api.ChangeRoleRequest")),
                "AppendEntries" => self.append_entries(&Body::new(&body, "openmldb.api.AppendEntriesRequest")),
                "GetTermPair" => self.get_term_pair(&Body::new(&body, "openmldb.api.GetTermPairRequest")),
                "GetManifest" => self.get_manifest(&Body::new(&body, "openmldb.api.GetManifestRequest")),
                "GetTaskStatus" => self.get_task_status(),
                "DeleteOPTask" => self.delete_op_task(&Body::new(&body, "openmldb.api.DeleteTaskRequest")),
                "CancelOP" => self.cancel_op(&Body::new(&body, "openmldb.api.CancelOPRequest")),
                "AddReplica" => self.add_replica(&Body::new(&body, "openmldb.api.ReplicaRequest")),
                "DelReplica" => self.del_replica(&Body::new(&body, "openmldb.api.ReplicaRequest")),
                "PauseSnapshot" | "RecoverSnapshot" => {
                    let request = Body::new(&body, "openmldb.api.GeneralRequest");
                    request.require(&["tid", "pid"])?;
                    self.pause_snapshot(&request, method == "PauseSnapshot")
                }
                "SendSnapshot" => {
                    let request = Body::new(&body, "openmldb.api.SendSnapshotRequest");
                    request.require(&["tid", "pid", "endpoint"])?;
                    self.send_snapshot(&request)
                }
                "SendData" => self.send_data(&Body::new(&body, "openmldb.api.SendDataRequest")),
                "Put" => self.put(&Body::new(&body, "openmldb.api.PutRequest")),
                "Get" => self.get(&Body::new(&body, "openmldb.api.GetRequest")),
                "Scan" => self.scan(&Body::new(&body, "openmldb.api.ScanRequest")),
                "DeleteBinlog" => {
                    // The simulator keeps one log file that doubles as the snapshot, so there
                    // is no separate binlog to delete (see the `sim` module docs).
                    ok()
                }
                _ => return Err(RpcError::NoMethod(method)),
            };
            Ok(reply)
        })
    }
}

/// Starts a tablet on `listener` and runs it until `shutdown` (C§1.3 `StartTablet`):
/// HTTP first, then ZooKeeper registration; a still-registered endpoint is an error (the
/// binary exits 1). The ZooKeeper session is never closed.
pub async fn run_tablet(
    listener: TcpListener,
    flags: SimFlags,
    version: String,
    shutdown: CancellationToken,
) -> Result<(), TabletError> {
    std::fs::create_dir_all(&flags.db_root_path)
        .map_err(|source| TabletError::DbRoot { path: flags.db_root_path.clone(), source })?;
    let tablet = Tablet::new(flags.clone(), shutdown.clone());
    let config = Arc::new(HttpConfig {
        version,
        enable_status_service: flags.enable_status_service,
        authenticator: Authenticator { skip_grant_tables: flags.skip_grant_tables },
        started: Instant::now(),
    });
    let server_stop = shutdown.child_token();
    let server = tokio::spawn(http::serve(listener, tablet.clone(), config, server_stop.clone()));
    let result = register_and_keep_alive(&flags, shutdown.clone()).await;
    server_stop.cancel();
    let _ = server.await;
    result
}

async fn register(flags: &SimFlags, zk: &Zk, startup: bool) -> Result<(), TabletError> {
    let paths = ZkPaths::new(&flags.zk_root_path);
    let path = paths.node(&flags.endpoint);
    let value = if startup { format!("startup_{}", flags.endpoint) } else { flags.endpoint.clone() };
    match zk.create(&path, &value, zkc::CreateMode::Ephemeral).await {
        Ok(_) => Ok(()),
        Err(zkc::Error::NodeExists) => Err(TabletError::AlreadyRegistered { endpoint: flags.endpoint.clone(), path }),
        Err(source) => Err(TabletError::Register { path, source }),
    }
}

async fn register_and_keep_alive(flags: &SimFlags, shutdown: CancellationToken) -> Result<(), TabletError> {
    let paths = ZkPaths::new(&flags.zk_root_path);
    let mut zk = Zk::connect(flags).await?;
    register(flags, &zk, true).await?;
    zk.create_if_missing(&paths.table_notify(), "1").await?;
    zk.create_if_missing(&paths.global_variable_notify(), "1").await?;
    // CheckZkClient every zk_keep_alive_check_interval: after an expired session, reconnect
    // and re-register with the plain endpoint value (C§1.3).
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = tokio::time::sleep(flags.zk_keep_alive_check_interval) => {}
        }
        if zk.is_dead() {
            // `TabletImpl::CheckZkClient`'s log lines go to glog only; stderr stays as it was.
            glog!(Severity::Warning, "reconnect zk");
            if let Ok(fresh) = Zk::connect(flags).await {
                zk = fresh;
                match register(flags, &zk, false).await {
                    Ok(()) | Err(TabletError::AlreadyRegistered { .. }) => glog!(Severity::Info, "reconnect zk ok"),
                    Err(e) => tracing::warn!("re-registration failed: {e}"),
                }
            }
        }
    }
}
