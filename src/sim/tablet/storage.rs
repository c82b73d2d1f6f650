//! Where a replica's files live and the RPCs that create, load, drop and ship them.
//!
//! Each storage mode has its own roots: kMemory `--db_root_path`, kSSD `--ssd_root_path`,
//! kHDD `--hdd_root_path` (`TabletImpl::Init`, `src/tablet/tablet_impl.cc:190-192`). A
//! replica lives in `<root>/<tid>_<pid>/` (`TabletImpl::GetDBPath`, `:5685`), the root picked
//! by `TabletImpl::ChooseDBRootPath` (`:4770-4786`): the only one, or with several a
//! MurmurHash2 of `"<tid><pid>"` modulo their number. A mode without a root has no path, and
//! every RPC that needs one answers 138.
//!
//! Files (JSON, not protobuf text): `table_meta.json`, `binlog.jsonl` (the log, which is also
//! the data) and `snapshot/MANIFEST` once a snapshot was made (see `super::snapshot`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use super::log::{entries_jsonl, LogEntry, ReplicaLog};
use super::snapshot::{Manifest, MANIFEST_FILE, SNAPSHOT_DIR};
use super::{Replica, ReplicaMeta, Tablet, TabletState};
use crate::sim::flags::SimFlags;
use crate::sim::proto::{general, ok, Body, StorageMode, TableMode, TableState, TaskStatus};

/// The replica's log (and table data), one JSON entry per line.
pub const BINLOG_FILE: &str = "binlog.jsonl";
pub(super) const META_FILE: &str = "table_meta.json";

/// How long loading a table takes in the background (C§2.4): `LOAD_STEP` before the task
/// pool runs it, then `LOAD_STEP` plus the replay at `LOAD_ROWS_PER_SECOND`. Short, but
/// observable and growing with the data.
pub(super) const LOAD_STEP: Duration = Duration::from_millis(100);
pub const LOAD_ROWS_PER_SECOND: u64 = 100_000;

/// Time to replay `rows` log entries when loading a table: a memory table replays its whole
/// snapshot and binlog, a disk table only the binlog past its snapshot (its data is on disk
/// already, `TabletImpl::LoadDiskTableInternal`, `src/tablet/tablet_impl.cc:3303-3407`).
pub fn load_duration(rows: usize) -> Duration {
    LOAD_STEP * 2 + Duration::from_micros(rows as u64 * 1_000_000 / LOAD_ROWS_PER_SECOND)
}

/// `SEED` of `src/tablet/tablet_impl.cc:134`, for picking one of several roots.
const ROOT_SEED: u32 = 0xe17a_1465;

/// MurmurHash2 (32 bit), the hash `src/base/hash.h` implements.
fn murmur2(data: &[u8], seed: u32) -> u32 {
    const M: u32 = 0x5bd1_e995;
    let mut h = seed ^ data.len() as u32;
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> 24;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M) ^ k;
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        for (i, byte) in tail.iter().enumerate().rev() {
            h ^= (*byte as u32) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^ (h >> 15)
}

fn choose(paths: &[PathBuf], tid: u32, pid: u32) -> Option<PathBuf> {
    match paths.len() {
        0 => None,
        1 => Some(paths[0].clone()),
        n => {
            let key = format!("{tid}{pid}");
            Some(paths[murmur2(key.as_bytes(), ROOT_SEED) as usize % n].clone())
        }
    }
}

/// The roots of each storage mode, from the flags.
pub(super) struct Roots {
    db: [Vec<PathBuf>; 3],
    recycle: [Vec<PathBuf>; 3],
}

fn index(mode: StorageMode) -> Option<usize> {
    match mode {
        StorageMode::kMemory => Some(0),
        StorageMode::kSSD => Some(1),
        StorageMode::kHDD => Some(2),
        StorageMode::kUnknown => None,
    }
}

impl Roots {
    pub fn new(flags: &SimFlags) -> Roots {
        Roots {
            db: [flags.db_root_path.clone(), flags.ssd_root_path.clone(), flags.hdd_root_path.clone()],
            recycle: [
                flags.recycle_bin_root_path.clone(),
                flags.recycle_bin_ssd_root_path.clone(),
                flags.recycle_bin_hdd_root_path.clone(),
            ],
        }
    }

    /// `ChooseDBRootPath`.
    pub fn db_root(&self, tid: u32, pid: u32, mode: StorageMode) -> Option<PathBuf> {
        choose(&self.db[index(mode)?], tid, pid)
    }

    /// `ChooseRecycleBinRootPath` (`src/tablet/tablet_impl.cc:4788-4801`).
    pub fn recycle_root(&self, tid: u32, pid: u32, mode: StorageMode) -> Option<PathBuf> {
        choose(&self.recycle[index(mode)?], tid, pid)
    }

    /// The replica's directory, `<root>/<tid>_<pid>`.
    pub fn dir(&self, tid: u32, pid: u32, mode: StorageMode) -> Option<PathBuf> {
        Some(self.db_root(tid, pid, mode)?.join(format!("{tid}_{pid}")))
    }
}

/// `base::GetNowTime()`: local time as `%Y%m%d%H%M%S` (`src/base/strings.h:173-179`).
pub(super) fn now_time() -> String {
    chrono::Local::now().format("%Y%m%d%H%M%S").to_string()
}

pub(super) fn persist_meta(dir: &Path, meta: &ReplicaMeta) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let text = serde_json::to_string_pretty(meta).map_err(std::io::Error::other)?;
    std::fs::write(dir.join(META_FILE), text)
}

fn persist_log(dir: &Path, log: &ReplicaLog) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join(BINLOG_FILE), log.to_jsonl())
}

/// Appends entries to a replica's `binlog.jsonl`; called under the state lock so lines stay
/// in offset order.
pub(super) fn append_log(dir: &Path, entries: &[LogEntry]) -> std::io::Result<()> {
    use std::io::Write;
    std::fs::create_dir_all(dir)?;
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(dir.join(BINLOG_FILE))?;
    file.write_all(entries_jsonl(entries).as_bytes())
}

pub(super) fn read_meta(dir: &Path) -> Option<ReplicaMeta> {
    let text = std::fs::read_to_string(dir.join(META_FILE)).ok()?;
    serde_json::from_str(&text).ok()
}

pub(super) fn read_log(dir: &Path) -> ReplicaLog {
    std::fs::read_to_string(dir.join(BINLOG_FILE)).map(|text| ReplicaLog::from_jsonl(&text)).unwrap_or_default()
}

pub(super) fn read_manifest(dir: &Path) -> Option<Manifest> {
    let text = std::fs::read_to_string(dir.join(SNAPSHOT_DIR).join(MANIFEST_FILE)).ok()?;
    serde_json::from_str(&text).ok()
}

const STORAGE_MODES: &[(&str, i64)] = StorageMode::ALL;

/// The `storage_mode` of a request (`kMemory` when absent, its proto default).
pub(super) fn request_mode(body: &Body<'_>) -> StorageMode {
    body.enum_name("storage_mode", STORAGE_MODES)
        .and_then(|m| StorageMode::from_name(&m))
        .unwrap_or(StorageMode::kMemory)
}

/// `SchemaAdapter::CheckTableMeta` (`src/schema/schema_adapter.cc:514-537`), code 129.
fn check_table_meta(meta: &ReplicaMeta) -> Result<(), Value> {
    if meta.name.is_empty() {
        return Err(general(129, "table name is empty"));
    }
    if meta.tid == 0 {
        return Err(general(129, "tid <= 0, invalid tid"));
    }
    if meta.storage_mode == Some(StorageMode::kUnknown) {
        return Err(general(129, "storage_mode is unknown"));
    }
    Ok(())
}

impl Tablet {
    pub(super) fn meta_from_body(meta: &Body<'_>) -> ReplicaMeta {
        ReplicaMeta {
            tid: meta.u32("tid").unwrap_or(0),
            pid: meta.u32("pid").unwrap_or(0),
            name: meta.str("name").unwrap_or_default(),
            db: meta.str("db").unwrap_or_default(),
            mode: meta.enum_name("mode", TableMode::ALL).and_then(|m| TableMode::from_name(&m)),
            term: meta.u64("term").unwrap_or(0),
            replicas: meta.str_list("replicas"),
            storage_mode: meta.enum_name("storage_mode", STORAGE_MODES).and_then(|m| StorageMode::from_name(&m)),
            column_desc: meta.raw("column_desc").and_then(Value::as_array).cloned().unwrap_or_default(),
            column_key: meta.raw("column_key").and_then(Value::as_array).cloned().unwrap_or_default(),
            has_index: meta.raw("column_key").and_then(Value::as_array).is_some_and(|keys| !keys.is_empty()),
        }
    }

    /// LoadTable (C§2.4, `TabletImpl::LoadTable`, `src/tablet/tablet_impl.cc:3131-3210`): the
    /// task first, then CheckTableMeta (129), the root of the *requested* storage mode (138;
    /// kMemory when the request has none), 101 when loaded; the request is merged over the
    /// meta on disk there (replicas only from the request, `UpdateTableMeta`, `:4045-4069`) and
    /// written back (127), even where no table directory was (only a warning, `:3163-3167`).
    /// A meta without an index (none on disk and no `column_key` in the request, as with a
    /// wrong storage mode: the files sit under another root) cannot make a table
    /// (`Table::InitColumnDesc`): a memory table answers 131 "fail to init table"
    /// (`:3186-3190`), a disk table answers ok and its load task fails (`:3342-3345`); with a
    /// schema in the request an empty table loads.
    ///
    /// A memory table exists at once in kTableUndefined and loads in the background
    /// (`LoadTableInternal`, `:3212-3301`); a disk table appears only when the task pool runs
    /// `LoadDiskTableInternal` (`:3303-3407`), which creates it and fails the task if it exists.
    pub(super) fn load_table(self: &Arc<Self>, body: &Body<'_>) -> Value {
        let mut state = self.lock();
        let task = match Self::take_task(&mut state, body) {
            Ok(task) => task,
            Err(reply) => return reply,
        };
        let failed = |state: &mut TabletState, reply: Value| {
            Self::finish_task_locked(state, task.as_ref(), TaskStatus::kFailed);
            reply
        };
        let table_meta = body.message("table_meta", "openmldb.api.TableMeta");
        let requested = table_meta.as_ref().map(Self::meta_from_body).unwrap_or_default();
        if let Err(reply) = check_table_meta(&requested) {
            return failed(&mut state, reply);
        }
        let (tid, pid) = (requested.tid, requested.pid);
        let Some(dir) = self.roots.dir(tid, pid, requested.storage_mode.unwrap_or(StorageMode::kMemory)) else {
            return failed(&mut state, general(138, "fail to get table db root path"));
        };
        if state.replicas.contains_key(&(tid, pid)) {
            return failed(&mut state, general(101, "table already exists"));
        }
        let meta = merge_meta(read_meta(&dir), requested, table_meta.as_ref());
        if persist_meta(&dir, &meta).is_err() {
            return failed(&mut state, general(127, "write data failed"));
        }
        let disk = meta.mode_of_storage() != StorageMode::kMemory;
        if !disk {
            if !meta.has_index {
                return failed(&mut state, general(131, "fail to init table"));
            }
            state.replicas.insert((tid, pid), Replica::new(meta.clone(), TableState::kTableUndefined, dir.clone()));
        }
        drop(state);
        let tablet = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(LOAD_STEP).await;
            let log = read_log(&dir);
            let replay = if disk {
                let snapshot = read_manifest(&dir).map(|m| m.offset).unwrap_or(0);
                let mut state = tablet.lock();
                if !meta.has_index || state.replicas.contains_key(&(tid, pid)) {
                    Self::finish_task_locked(&mut state, task.as_ref(), TaskStatus::kFailed);
                    return;
                }
                state.replicas.insert((tid, pid), Replica::new(meta, TableState::kTableLoading, dir.clone()));
                log.count_after(snapshot)
            } else {
                let mut state = tablet.lock();
                match state.replicas.get_mut(&(tid, pid)) {
                    Some(replica) => replica.state = TableState::kTableLoading,
                    None => return,
                }
                log.len()
            };
            tokio::time::sleep(load_duration(replay) - LOAD_STEP).await;
            {
                let mut state = tablet.lock();
                let Some(replica) = state.replicas.get_mut(&(tid, pid)) else { return };
                replica.log = log;
                replica.snapshot_offset = read_manifest(&dir).map(|m| m.offset).unwrap_or(0);
                replica.state = TableState::kTableNormal;
                // StartSyncing: the followers of the loaded meta get their workers now.
                tablet.start_replicate_nodes(replica);
                Self::finish_task_locked(&mut state, task.as_ref(), TaskStatus::kDone);
            }
        });
        ok()
    }

    /// CreateTable (`TabletImpl::CreateTable`, `src/tablet/tablet_impl.cc:3510-3586`): 129,
    /// 101, 138 for a storage mode without a root ("fail to find db root path"), 127; the
    /// replica is kTableNormal at once and a leader starts replicating to its `replicas`.
    pub(super) fn create_table(self: &Arc<Self>, body: &Body<'_>) -> Value {
        let mut meta =
            body.message("table_meta", "openmldb.api.TableMeta").map(|m| Self::meta_from_body(&m)).unwrap_or_default();
        // The simulator's tables need no schema (see `ReplicaMeta::has_index`).
        meta.has_index = true;
        if let Err(reply) = check_table_meta(&meta) {
            return reply;
        }
        let mut state = self.lock();
        let key = (meta.tid, meta.pid);
        if state.replicas.contains_key(&key) {
            return general(101, "table already exists");
        }
        let Some(dir) = self.roots.dir(meta.tid, meta.pid, meta.mode_of_storage()) else {
            return general(138, "fail to find db root path");
        };
        let log = ReplicaLog::default();
        if persist_meta(&dir, &meta).is_err() || persist_log(&dir, &log).is_err() {
            return general(127, "write data failed");
        }
        let _ = std::fs::remove_dir_all(dir.join(SNAPSHOT_DIR));
        let mut replica = Replica::new(meta, TableState::kTableNormal, dir);
        self.start_replicate_nodes(&mut replica);
        state.replicas.insert(key, replica);
        ok()
    }

    /// DropTable (`TabletImpl::DropTable`, `src/tablet/tablet_impl.cc:4195-4230`): the task
    /// first, 100, 106 while the replica makes a snapshot; then `DeleteTableInternal`
    /// (`:3409-3508`): without a recycle-bin root for the table's storage mode the task fails
    /// and the replica stays loaded; otherwise it is unloaded, its replicators stopped, and its
    /// directory moved to `<recycle root>/<tid>_<pid>_<local time>` (removed with
    /// `--recycle_bin_enabled=false`).
    pub(super) fn drop_table(&self, body: &Body<'_>) -> Value {
        let (tid, pid) = Self::tid_pid(body);
        let mut state = self.lock();
        let task = match Self::take_task(&mut state, body) {
            Ok(task) => task,
            Err(reply) => return reply,
        };
        let (storage, making) = match state.replicas.get(&(tid, pid)) {
            None => {
                Self::finish_task_locked(&mut state, task.as_ref(), TaskStatus::kFailed);
                return general(100, "table does not exist");
            }
            Some(r) => (r.meta.mode_of_storage(), r.state == TableState::kMakingSnapshot),
        };
        if making {
            Self::finish_task_locked(&mut state, task.as_ref(), TaskStatus::kFailed);
            return general(106, "table status is kMakingSnapshot");
        }
        let (Some(dir), Some(recycle)) =
            (self.roots.dir(tid, pid, storage), self.roots.recycle_root(tid, pid, storage))
        else {
            // The RPC has answered ok by then; only the task tells.
            Self::finish_task_locked(&mut state, task.as_ref(), TaskStatus::kFailed);
            return ok();
        };
        if let Some(mut replica) = state.replicas.remove(&(tid, pid)) {
            replica.del_all_replicate_nodes();
        }
        if dir.exists() {
            if self.flags.recycle_bin_enabled {
                let _ = std::fs::create_dir_all(&recycle);
                let _ = std::fs::rename(&dir, recycle.join(format!("{tid}_{pid}_{}", now_time())));
            } else {
                let _ = std::fs::remove_dir_all(&dir);
            }
        }
        Self::finish_task_locked(&mut state, task.as_ref(), TaskStatus::kDone);
        ok()
    }

    /// GetManifest (`TabletImpl::GetManifest`, `src/tablet/tablet_impl.cc:3983-4021`): the
    /// snapshot manifest under the root of the request's storage mode (138 without one);
    /// only `offset: 0` when there is no snapshot.
    pub(super) fn get_manifest(&self, body: &Body<'_>) -> Value {
        let (tid, pid) = Self::tid_pid(body);
        let Some(dir) = self.roots.dir(tid, pid, request_mode(body)) else {
            return general(138, "fail to get db root path");
        };
        let manifest = match read_manifest(&dir) {
            Some(m) => json!(m),
            None => json!({ "offset": 0 }),
        };
        json!({ "code": 0, "msg": "ok", "manifest": manifest })
    }

    /// GetTermPair (C§2.4, `src/tablet/tablet_impl.cc:3844-3892`). A loaded replica answers
    /// its replicator's term (0 for a follower no leader has probed yet) and its log's offset.
    /// One that is not loaded is looked up under the root of the request's storage mode (138
    /// without one) and answers its snapshot manifest's term and offset, both 0 without a
    /// snapshot (`GetSnapshotOffset`, `:3754-3785`): its binlog does not count.
    pub(super) fn get_term_pair(&self, body: &Body<'_>) -> Value {
        let (tid, pid) = Self::tid_pid(body);
        let state = self.lock();
        if let Some(replica) = state.replicas.get(&(tid, pid)) {
            return json!({ "code": 0, "msg": "ok", "has_table": true,
                           "is_leader": replica.mode() == TableMode::kTableLeader,
                           "term": replica.term, "offset": replica.log.offset() });
        }
        drop(state);
        let Some(dir) = self.roots.dir(tid, pid, request_mode(body)) else {
            return json!({ "code": 138, "msg": "fail to get db root path", "has_table": false });
        };
        let (term, offset) = read_manifest(&dir).map(|m| (m.term, m.offset)).unwrap_or((0, 0));
        json!({ "code": 0, "msg": "table does not exist", "has_table": false, "term": term, "offset": offset })
    }

    /// DeleteBinlog (`src/tablet/tablet_impl.cc:3894-3935`): 138 when the request's storage
    /// mode has no root. The simulator's one log file doubles as the snapshot, so there is no
    /// separate binlog to delete (see the `sim` module docs).
    pub(super) fn delete_binlog(&self, body: &Body<'_>) -> Value {
        let (tid, pid) = Self::tid_pid(body);
        match self.roots.dir(tid, pid, request_mode(body)) {
            Some(_) => ok(),
            None => general(138, "fail to get db root path"),
        }
    }
}

/// The request's meta merged over the one on disk the way `UpdateTableMeta` merges them:
/// set fields of the request win, the disk's replicas are dropped.
fn merge_meta(disk: Option<ReplicaMeta>, requested: ReplicaMeta, body: Option<&Body<'_>>) -> ReplicaMeta {
    let has = |field: &str| body.is_some_and(|b| b.has(field));
    let mut meta = disk.unwrap_or_default();
    meta.replicas.clear();
    meta.tid = requested.tid;
    meta.pid = requested.pid;
    meta.name = requested.name.clone();
    if has("db") {
        meta.db = requested.db.clone();
    }
    if requested.mode.is_some() {
        meta.mode = requested.mode;
    }
    if has("term") {
        meta.term = requested.term;
    }
    if has("replicas") {
        meta.replicas = requested.replicas.clone();
    }
    if requested.storage_mode.is_some() {
        meta.storage_mode = requested.storage_mode;
    }
    if !requested.column_desc.is_empty() {
        meta.column_desc = requested.column_desc;
    }
    if !requested.column_key.is_empty() {
        meta.column_key = requested.column_key;
        meta.has_index = true;
    }
    meta
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_agrees_with_openmldb_base_hash() {
        // Values printed by `openmldb::base::hash` (src/base/hash.h) compiled from the source.
        for (key, seed, expected) in [
            ("", 1, 0x5bd1_5e36),
            ("a", 0, 0x9268_5f5e),
            ("12", 0, 0xc3ae_102d),
            ("123", 1, 0x96b4_bed1),
            ("1234", ROOT_SEED, 0xc31c_b023),
            ("12345", ROOT_SEED, 0xfe3c_3beb),
            ("71", ROOT_SEED, 0x7283_582b),
        ] {
            assert_eq!(murmur2(key.as_bytes(), seed), expected, "{key:?} seed {seed:#x}");
        }
    }

    #[test]
    fn one_root_is_always_chosen_and_several_are_spread() {
        let one = vec![PathBuf::from("/a")];
        assert_eq!(choose(&one, 7, 3), Some(PathBuf::from("/a")));
        assert_eq!(choose(&[], 7, 3), None);
        let two = vec![PathBuf::from("/a"), PathBuf::from("/b")];
        let picked: std::collections::BTreeSet<PathBuf> = (1..40).filter_map(|tid| choose(&two, tid, 0)).collect();
        assert_eq!(picked.len(), 2, "both disks get replicas");
    }
}
