//! The simulated tablet: partition replicas, the nameserver's task map, ZooKeeper
//! registration (C§1.3, C§2.4, C§4).
//!
//! A replica's metadata and log live under the root of its storage mode,
//! `<root>/<tid>_<pid>/` (`--db_root_path` for kMemory, `--ssd_root_path` for kSSD,
//! `--hdd_root_path` for kHDD; `storage`), as JSON (`table_meta.json`, `binlog.jsonl`, and
//! `snapshot/MANIFEST` once snapshotted), so a restarted tablet can `LoadTable` them back; a
//! restarted tablet itself comes up with no table loaded (C§1.3).
//!
//! Data plane (`data`): `Put` appends to a leader replica's log, `Get`/`Scan` read any
//! loaded replica's log (C§2.5 codes from `CheckTable`). Replication (`replication`) follows
//! the real replicator's timing flags (`--binlog_notify_on_put`, `--binlog_sync_wait_time`,
//! `--binlog_sync_batch_size`, `--binlog_coffee_time`). Snapshots (`snapshot`) run in the
//! `--make_snapshot_time` hour and hold a replica in kMakingSnapshot meanwhile.
//!
//! Start (`TabletImpl::Init`, `src/tablet/tablet_impl.cc:178-331`): a `--make_snapshot_time`
//! outside 0..=23 or an empty `--db_root_path` stops the tablet ("fail to init tablet"); the
//! roots given for each storage mode and, with `--recycle_bin_enabled`, their recycle bins are
//! created; a missing `--ssd_root_path` or `--hdd_root_path` is only a warning in the log.
//!
//! Log: when its ZooKeeper session has expired, the keep-alive check writes `TabletImpl::
//! CheckZkClient`'s `reconnect zk` (WARNING) and `reconnect zk ok` (INFO), and while its node is
//! not registered yet (the old session's node still there) `register zk` and the failed or done
//! `register self with endpoint ...`, to the process's glog files only (`super::glog`); warnings
//! it already printed to stderr stay there too.

mod data;
mod file_transfer;
mod log;
mod query;
mod replication;
mod snapshot;
mod storage;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use zookeeper_client as zkc;

pub use log::{LogEntry, ReplicaLog};
pub use snapshot::{snapshot_duration, Manifest, SNAPSHOT_MIN, SNAPSHOT_ROWS_PER_SECOND};
pub use storage::{load_duration, BINLOG_FILE, LOAD_ROWS_PER_SECOND};

use super::flags::SimFlags;
use super::glog::{glog, Severity};
use super::http::{self, Authenticator, HttpConfig, RpcError, RpcFuture, RpcService};
use super::proto::{ok, Body, StorageMode, TableMode, TableState, TableStatus, TaskInfo, TaskStatus};
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
    /// A root directory of `--db_root_path`, `--ssd_root_path`, `--hdd_root_path` or a
    /// recycle bin that cannot be created (`TabletImpl::Init`'s "fail to create ... path").
    #[error("fail to create {flag} {path}: {source}")]
    DbRoot {
        flag: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A flag `TabletImpl::Init` refuses ("db_root_path is required", "make_snapshot_time[24]
    /// is illegal.").
    #[error("{0}")]
    BadFlag(String),
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
    /// Unset reads as kMemory (the proto default).
    #[serde(default)]
    pub storage_mode: Option<StorageMode>,
    #[serde(default)]
    pub column_desc: Vec<Value>,
    #[serde(default)]
    pub column_key: Vec<Value>,
    /// The simulator's stand-in for `column_key_size() > 0`, without which a table does not
    /// initialise (`Table::InitColumnDesc`, `src/storage/table.cc:106-117`). Tables the
    /// simulator creates need no schema, so every CreateTable meta counts as indexed; a meta
    /// LoadTable writes where none was, from a request without `column_key`, does not.
    #[serde(default = "indexed")]
    pub has_index: bool,
}

fn indexed() -> bool {
    true
}

impl ReplicaMeta {
    pub fn mode_of_storage(&self) -> StorageMode {
        self.storage_mode.unwrap_or(StorageMode::kMemory)
    }
}

/// A loaded partition replica.
#[derive(Debug)]
pub struct Replica {
    pub meta: ReplicaMeta,
    /// The replicator's term (`LogReplicator::term_`), which GetTermPair, Put and the
    /// replication nodes use. It is not the meta's: `CreateTableInternal` sets it only for a
    /// leader (`src/tablet/tablet_impl.cc:4159-4161`), so a replica created or loaded as a
    /// follower answers term 0 (`src/replica/log_replicator.cc:59`) until a leader's first
    /// AppendEntries without entries raises it (`:2364-2374`) or ChangeRole makes it lead.
    pub term: u64,
    pub state: TableState,
    pub log: ReplicaLog,
    /// `<root of its storage mode>/<tid>_<pid>`.
    pub dir: PathBuf,
    /// Offset of the last snapshot (its MANIFEST), 0 without one.
    pub snapshot_offset: u64,
    /// When a MakeSnapshot with a task last succeeded (`Table::SetMakeSnapshotTime`).
    last_make_snapshot: Option<Instant>,
    /// The running replication nodes of a leader, by follower endpoint.
    nodes: BTreeMap<String, CancellationToken>,
    /// Wakes the nodes waiting for entries (`LogReplicator::Notify`).
    notify: Arc<Notify>,
    /// Told of every entry written, so that an idle node needs no timer (see `replicate`).
    appended: Arc<Notify>,
}

impl Replica {
    fn new(meta: ReplicaMeta, state: TableState, dir: PathBuf) -> Replica {
        let term = if meta.mode.unwrap_or(TableMode::kTableLeader) == TableMode::kTableLeader { meta.term } else { 0 };
        Replica {
            meta,
            term,
            state,
            log: ReplicaLog::default(),
            dir,
            snapshot_offset: 0,
            last_make_snapshot: None,
            nodes: BTreeMap::new(),
            notify: Arc::new(Notify::new()),
            appended: Arc::new(Notify::new()),
        }
    }

    fn mode(&self) -> TableMode {
        self.meta.mode.unwrap_or(TableMode::kTableLeader)
    }

    /// `TableStatus` as `TabletImpl::GetTableStatus` fills it (C§2.4,
    /// `src/tablet/tablet_impl.cc:2497-2584`): memory tables report their memory figures,
    /// disk tables their snapshot and binlog paths instead.
    fn status(&self) -> TableStatus {
        let storage = self.meta.mode_of_storage();
        let memory = storage == StorageMode::kMemory;
        let rows = self.log.len() as u64;
        let dir = std::path::absolute(&self.dir).unwrap_or_else(|_| self.dir.clone());
        let path = |sub: &str| (!memory).then(|| format!("{}/", dir.join(sub).display()));
        TableStatus {
            tid: self.meta.tid,
            pid: self.meta.pid,
            offset: self.log.offset(),
            mode: self.mode(),
            state: self.state,
            is_expire: memory.then_some(false),
            time_offset: 0,
            record_cnt: rows,
            idx_cnt: memory.then_some(rows),
            name: self.meta.name.clone(),
            record_byte_size: memory.then_some(self.log.value_bytes()),
            record_idx_byte_size: memory.then_some(0),
            record_pk_cnt: memory.then_some(self.log.key_count() as u64),
            compress_type: "kNoCompress".to_string(),
            skiplist_height: memory.then_some(0),
            diskused: 0,
            storage_mode: storage,
            snapshot_path: path(snapshot::SNAPSHOT_DIR),
            binlog_path: path("binlog"),
        }
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.del_all_replicate_nodes();
    }
}

#[derive(Debug, Default)]
struct TabletState {
    replicas: BTreeMap<(u32, u32), Replica>,
    /// The nameserver's tasks, kept until `DeleteOPTask`, lost on restart (C§4).
    tasks: Vec<TaskInfo>,
    /// SendSnapshot runs, `<endpoint>_<tid>_<pid>` (`sync_snapshot_set_`).
    sending: HashSet<String>,
    /// Files being received by SendData, `<tid>_<pid>_<file name>` (`file_receiver_map_`).
    receivers: HashMap<String, file_transfer::FileReceiver>,
}

/// The tablet service and its state.
pub struct Tablet {
    flags: SimFlags,
    roots: storage::Roots,
    state: Mutex<TabletState>,
    /// Connections to peer tablets, for replication.
    peers: http::ConnectionPool,
    /// The single snapshot thread (`--snapshot_pool_size` 1): one snapshot at a time.
    snapshot_pool: tokio::sync::Mutex<()>,
    shutdown: CancellationToken,
    /// Peer names → real endpoints, with `--use_name` ([`crate::sim::names`]).
    real_endpoints: crate::sim::names::RealEndpoints,
    /// A ZooKeeper session for reading `map/names`, opened on first need.
    names_zk: tokio::sync::OnceCell<Zk>,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

impl Tablet {
    pub fn new(flags: SimFlags, shutdown: CancellationToken) -> Arc<Tablet> {
        let real_endpoints = crate::sim::names::RealEndpoints::new(ZkPaths::new(&flags.zk_root_path));
        Arc::new(Tablet {
            roots: storage::Roots::new(&flags),
            flags,
            state: Mutex::new(TabletState::default()),
            peers: http::ConnectionPool::new(),
            snapshot_pool: tokio::sync::Mutex::new(()),
            shutdown,
            real_endpoints,
            names_zk: tokio::sync::OnceCell::new(),
        })
    }

    /// Where to reach the peer `endpoint`: itself, or with `--use_name` the real endpoint its
    /// name maps to (the name itself when it maps to nothing yet; the call then fails like a
    /// call to a tablet that is down, and is retried).
    pub(super) async fn peer_address(&self, endpoint: &str) -> String {
        if !self.flags.use_name {
            return endpoint.to_string();
        }
        if let Some(real) = self.real_endpoints.known(endpoint).await {
            return real;
        }
        let zk = self.names_zk.get_or_try_init(|| Zk::connect(&self.flags)).await;
        match zk {
            Ok(zk) => self.real_endpoints.resolve(zk, endpoint).await.unwrap_or_else(|| endpoint.to_string()),
            Err(_) => endpoint.to_string(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, TabletState> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Registers an NS task as kDoing (`AddOPTask`); false when the same task is already known.
    /// The request's `task_info`, registered as running before anything else is checked, as
    /// the tablet's RPCs do: code -1 "add task failed" when the tablet has it already.
    fn take_task(state: &mut TabletState, body: &Body<'_>) -> Result<Option<TaskInfo>, Value> {
        let task = body.message("task_info", "openmldb.api.TaskInfo").and_then(|t| TaskInfo::from_body(&t));
        if let Some(task) = &task {
            if !Self::add_task(state, task) {
                return Err(super::proto::general(-1, "add task failed"));
            }
        }
        Ok(task)
    }

    fn add_task(state: &mut TabletState, task: &TaskInfo) -> bool {
        if state.tasks.iter().any(|t| t.op_id == task.op_id && t.task_type == task.task_type) {
            return false;
        }
        let mut task = task.clone();
        task.status = TaskStatus::kDoing;
        state.tasks.push(task);
        true
    }

    /// `SetTaskStatus`.
    fn finish_task_locked(state: &mut TabletState, task: Option<&TaskInfo>, status: TaskStatus) {
        if let Some(task) = task {
            for t in state.tasks.iter_mut() {
                if t.op_id == task.op_id && t.task_type == task.task_type {
                    t.status = status;
                }
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
}

impl RpcService for Tablet {
    fn short_name(&self) -> &'static str {
        "TabletServer"
    }

    fn full_name(&self) -> &'static str {
        "openmldb.api.TabletServer"
    }

    fn call(self: Arc<Self>, method: String, body: Value, attachment: Vec<u8>) -> RpcFuture {
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
                "PauseSnapshot" | "RecoverSnapshot" | "MakeSnapshot" | "DeleteBinlog" => {
                    let request = Body::new(&body, "openmldb.api.GeneralRequest");
                    request.require(&["tid", "pid"])?;
                    match method.as_str() {
                        "MakeSnapshot" => self.make_snapshot(&request),
                        "DeleteBinlog" => self.delete_binlog(&request),
                        _ => self.pause_snapshot(&request, method == "PauseSnapshot"),
                    }
                }
                "SendSnapshot" => {
                    let request = Body::new(&body, "openmldb.api.SendSnapshotRequest");
                    request.require(&["tid", "pid", "endpoint"])?;
                    self.send_snapshot(&request)
                }
                "SendData" => {
                    let request = Body::new(&body, "openmldb.api.SendDataRequest");
                    request.require(&["tid", "pid", "file_name", "block_id"])?;
                    self.send_data(&request, &attachment)
                }
                "CheckFile" => self.check_file(&Body::new(&body, "openmldb.api.CheckFileRequest")),
                "Put" => self.put(&Body::new(&body, "openmldb.api.PutRequest")),
                "Query" => self.query(&Body::new(&body, "openmldb.api.QueryRequest")).await,
                "Get" => self.get(&Body::new(&body, "openmldb.api.GetRequest")),
                "Scan" => self.scan(&Body::new(&body, "openmldb.api.ScanRequest")),
                _ => return Err(RpcError::NoMethod(method)),
            };
            Ok(reply)
        })
    }
}

/// Creates the root directories `TabletImpl::Init` creates (`src/tablet/tablet_impl.cc:237-303`)
/// after checking the flags it checks.
fn init_roots(flags: &SimFlags) -> Result<(), TabletError> {
    if !(0..=23).contains(&flags.make_snapshot_time) {
        return Err(TabletError::BadFlag(format!("make_snapshot_time[{}] is illegal.", flags.make_snapshot_time)));
    }
    if flags.db_root_path.is_empty() {
        return Err(TabletError::BadFlag("db_root_path is required".to_string()));
    }
    let create = |flag: &'static str, paths: &[PathBuf]| -> Result<(), TabletError> {
        for path in paths {
            std::fs::create_dir_all(path).map_err(|source| TabletError::DbRoot { flag, path: path.clone(), source })?;
        }
        Ok(())
    };
    create("db root path", &flags.db_root_path)?;
    for (flag, paths) in [("ssd root path", &flags.ssd_root_path), ("hdd root path", &flags.hdd_root_path)] {
        if paths.is_empty() {
            glog!(Severity::Warning, "{} is not set", flag.replace(' ', "_"));
        }
        create(flag, paths)?;
    }
    if flags.recycle_bin_enabled {
        let bins = [
            ("recycle_bin_root_path", true, &flags.recycle_bin_root_path),
            ("recycle_bin_ssd_root_path", !flags.ssd_root_path.is_empty(), &flags.recycle_bin_ssd_root_path),
            ("recycle_bin_hdd_root_path", !flags.hdd_root_path.is_empty(), &flags.recycle_bin_hdd_root_path),
        ];
        for (flag, wanted, paths) in bins {
            if !wanted {
                continue;
            }
            if paths.is_empty() {
                // Such a table cannot be dropped: DropTable's task fails (see `storage`).
                glog!(Severity::Error, "{flag} is not configured. Deleted table is not recycled.");
            }
            create("recycle bin root path", paths)?;
        }
    }
    Ok(())
}

/// Starts a tablet on `listener` and runs it until `shutdown` (C§1.3 `StartTablet`): the
/// checks and directories of `TabletImpl::Init`, the snapshot schedule, HTTP, then ZooKeeper
/// registration; a still-registered endpoint is an error (the binary exits 1). The ZooKeeper
/// session is never closed.
pub async fn run_tablet(
    listener: TcpListener,
    flags: SimFlags,
    version: String,
    shutdown: CancellationToken,
) -> Result<(), TabletError> {
    init_roots(&flags)?;
    let tablet = Tablet::new(flags.clone(), shutdown.clone());
    tokio::spawn(tablet.clone().sched_make_snapshot());
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
    if flags.registers_name() {
        // RegisterZK: RegisterName before Register (tablet_impl.cc:386-419).
        crate::sim::names::register_name(&zk, &paths, &flags.endpoint, &flags.real_endpoint)
            .await
            .map_err(|e| TabletError::BadFlag(format!("Fail to register name: {e}")))?;
    }
    register(flags, &zk, true).await?;
    zk.create_if_missing(&paths.table_notify(), "1").await?;
    zk.create_if_missing(&paths.global_variable_notify(), "1").await?;
    // CheckZkClient every zk_keep_alive_check_interval (tablet_impl.cc CheckZkClient): after an
    // expired session, reconnect and re-register with the plain endpoint value (C§1.3); while
    // not registered, register again. `ZkClient::Register` fails on an existing node (the
    // ephemeral node of the old session, which lingers until the server expires that session:
    // zk_client.cc:192-199), so registration is retried every interval until that node is gone.
    let mut registered = true;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = tokio::time::sleep(flags.zk_keep_alive_check_interval) => {}
        }
        if zk.is_dead() {
            // `TabletImpl::CheckZkClient`'s log lines go to glog only; stderr stays as it was.
            glog!(Severity::Warning, "reconnect zk");
            registered = false;
            if let Ok(fresh) = Zk::connect(flags).await {
                zk = fresh;
                registered = register_again(flags, &zk).await;
                if registered {
                    glog!(Severity::Info, "reconnect zk ok");
                }
            }
        } else if !registered {
            glog!(Severity::Warning, "register zk");
            registered = register_again(flags, &zk).await;
            if registered {
                glog!(Severity::Info, "register zk ok");
            }
        }
    }
}

/// `ZkClient::Register(false)`: whether the node was created.
async fn register_again(flags: &SimFlags, zk: &Zk) -> bool {
    match register(flags, zk, false).await {
        Ok(()) => {
            glog!(Severity::Info, "register self with endpoint {} ok", flags.endpoint);
            true
        }
        Err(TabletError::AlreadyRegistered { .. }) => {
            // ZNODEEXISTS is -110 in the C client.
            glog!(Severity::Warning, "fail to register self with endpoint {}, err from zk -110", flags.endpoint);
            false
        }
        Err(e) => {
            tracing::warn!("re-registration failed: {e}");
            false
        }
    }
}
