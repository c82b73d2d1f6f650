//! The simulated nameserver: election (C§1.2), the tablet map (C§3.4), table metadata in
//! ZooKeeper (C§1.1), the RPCs of C§2.3 ([`rpc`]) and the op engine of C§3 ([`ops`]).

mod ops;
mod rpc;

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::net::TcpListener;
use tokio::sync::{Mutex, MutexGuard, Notify, RwLock};
use tokio_util::sync::CancellationToken;
use zookeeper_client as zkc;

use super::flags::SimFlags;
use super::http::{self, Authenticator, HttpConfig};
use super::proto::{PartitionMeta, StorageMode, TableInfo, TablePartition, TermPair};
use super::zk::{Zk, ZkError, ZkPaths};
use ops::Op;

pub const INTERNAL_DB: &str = "__INTERNAL_DB";
pub const PRE_AGG_DB: &str = "__PRE_AGG_DB";
pub const INFORMATION_SCHEMA_DB: &str = "INFORMATION_SCHEMA";

/// Databases ShowDatabase never lists (`IsHiddenDb`, C§2.3).
pub fn is_hidden_db(db: &str) -> bool {
    db == INTERNAL_DB || db == PRE_AGG_DB || db == INFORMATION_SCHEMA_DB
}

#[derive(Debug, thiserror::Error)]
pub enum NameServerError {
    #[error(transparent)]
    Zk(#[from] ZkError),
    /// `RegisterName` failed (`--use_name`, [`crate::sim::names`]).
    #[error("Fail to register name: {0}")]
    Name(#[from] crate::sim::names::NameError),
    /// C§1.2: a new leader with fewer tablets than `--system_table_replica_num` exits(1).
    #[error("tablet num {tablets} is less then system table replica num {required}")]
    TooFewTablets { tablets: usize, required: u32 },
    #[error("cannot join the election under {path}: {source}")]
    Election {
        path: String,
        #[source]
        source: zkc::Error,
    },
}

/// Tablet health as the nameserver sees it (`openmldb.type.EndpointState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TabletHealth {
    Healthy,
    Offline,
}

impl TabletHealth {
    pub fn name(self) -> &'static str {
        match self {
            TabletHealth::Healthy => "kHealthy",
            TabletHealth::Offline => "kOffline",
        }
    }
}

#[derive(Debug, Clone)]
pub struct TabletRecord {
    pub health: TabletHealth,
    /// When the state last changed (ShowTablet `age`).
    pub since: Instant,
}

/// Everything the leader keeps in memory.
#[derive(Default)]
pub struct NsState {
    pub tablets: BTreeMap<String, TabletRecord>,
    /// `offline_endpoint_map_`: when each tablet went offline, in ms since the epoch.
    pub offline_since: BTreeMap<String, u64>,
    pub tables: BTreeMap<u32, TableInfo>,
    pub dbs: BTreeSet<String>,
    pub auto_failover: bool,
    /// `task_vec_`: the op queues (C§3.3).
    pub queues: Vec<VecDeque<Op>>,
    /// `done_op_list_`: finished ops, newest last, capped at `--max_op_num`.
    pub done_ops: VecDeque<Op>,
}

impl NsState {
    pub fn is_healthy(&self, endpoint: &str) -> bool {
        self.tablets.get(endpoint).is_some_and(|t| t.health == TabletHealth::Healthy)
    }

    pub fn healthy_tablets(&self) -> Vec<String> {
        self.tablets.iter().filter(|(_, t)| t.health == TabletHealth::Healthy).map(|(e, _)| e.clone()).collect()
    }

    pub fn table(&self, name: &str, db: &str) -> Option<&TableInfo> {
        self.tables.values().find(|t| t.name == name && t.db == db)
    }

    pub fn table_mut(&mut self, name: &str, db: &str) -> Option<&mut TableInfo> {
        self.tables.values_mut().find(|t| t.name == name && t.db == db)
    }
}

/// Milliseconds since the epoch.
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// One nameserver process.
pub struct NameServer {
    pub(crate) flags: SimFlags,
    pub(crate) paths: ZkPaths,
    zk: RwLock<Zk>,
    /// `running_`: true while this process holds the lock and has recovered (C§1.2).
    running: AtomicBool,
    state: Mutex<NsState>,
    /// Wakes the op loop early (a new op, a finished task).
    pub(crate) wake_ops: Notify,
    /// Bumped each time a task's RPC reaches its tablet; a task-status poll that sees it change
    /// stops applying replies gathered before (`task_rpc_version_`, C§3.2).
    pub(crate) task_rpc_version: std::sync::atomic::AtomicU64,
    /// Cancelled when leadership is lost; the leader's background loops stop with it.
    leadership: std::sync::Mutex<Option<CancellationToken>>,
    /// The `/nodes` children seen last time.
    pub(crate) node_values: Mutex<BTreeMap<String, String>>,
    /// `real_ep_map_`: server name → real endpoint, with `--use_name` (NS:1096-1195).
    pub(crate) real_endpoints: crate::sim::names::RealEndpoints,
}

/// How long the nameserver waits for a tablet's reply.
pub(crate) const TABLET_TIMEOUT: Duration = Duration::from_secs(5);

impl NameServer {
    pub(crate) async fn zk(&self) -> Zk {
        self.zk.read().await.clone()
    }

    pub(crate) async fn lock(&self) -> MutexGuard<'_, NsState> {
        self.state.lock().await
    }

    pub(crate) fn is_running(&self) -> bool {
        self.running.load(Ordering::SeqCst)
    }

    pub(crate) fn leadership_token(&self) -> Option<CancellationToken> {
        self.leadership.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Persists a table's metadata and bumps `/table/notify` (C§1.1).
    pub(crate) async fn persist_table(&self, table: &TableInfo) -> Result<(), ZkError> {
        let zk = self.zk().await;
        zk.put_bytes(&self.paths.table_data(table.tid), &crate::sim::pb::encode_table(table)).await?;
        zk.add_to_counter(&self.paths.table_notify(), 1, 1).await?;
        Ok(())
    }

    /// Calls a tablet RPC over HTTP.
    pub(crate) async fn call_tablet(
        &self,
        endpoint: &str,
        method: &str,
        body: &serde_json::Value,
    ) -> Result<serde_json::Value, http::CallError> {
        let real = if self.flags.use_name {
            self.real_endpoints.resolve(&self.zk().await, endpoint).await.unwrap_or_else(|| endpoint.to_string())
        } else {
            endpoint.to_string()
        };
        http::call(&real, &format!("/TabletServer/{method}"), body, TABLET_TIMEOUT).await
    }

    /// `Recover()`: rebuild everything from ZooKeeper (C§1.2, C§3.2, C§3.8).
    async fn recover(&self) -> Result<(), ZkError> {
        let zk = self.zk().await;
        let paths = &self.paths;
        for dir in [paths.nodes(), paths.dbs(), paths.db_table_data(), paths.op_data_dir()] {
            zk.mkdir(&dir).await?;
        }
        zk.create_if_missing(&paths.table_index(), "1").await?;
        zk.create_if_missing(&paths.term(), "1").await?;
        zk.create_if_missing(&paths.op_index(), "0").await?;
        zk.create_if_missing(&paths.table_notify(), "1").await?;
        zk.create_if_missing(&paths.global_variable_notify(), "1").await?;
        // The flag only seeds the node; the ZooKeeper value wins afterwards (C§1.1).
        zk.create_if_missing(&paths.auto_failover(), if self.flags.auto_failover { "true" } else { "false" }).await?;
        let auto_failover = zk.get(&paths.auto_failover()).await?.is_some_and(|v| v.trim() == "true");
        let dbs: BTreeSet<String> = zk.children(&paths.dbs()).await?.into_iter().collect();
        let mut tables = BTreeMap::new();
        for child in zk.children(&paths.db_table_data()).await? {
            if let Some(bytes) = zk.get_bytes(&format!("{}/{child}", paths.db_table_data())).await? {
                match crate::sim::pb::decode_table(&bytes) {
                    Some(table) => {
                        tables.insert(table.tid, table);
                    }
                    // As NameServerImpl::RecoverTableInfo: a node that does not parse is skipped.
                    None => tracing::warn!("parse table info failed! tid[{child}] value size[{}]", bytes.len()),
                }
            }
        }
        let mut tablets = BTreeMap::new();
        let mut node_values = BTreeMap::new();
        for child in zk.children(&paths.nodes()).await? {
            let value = zk.get(&paths.node(&child)).await?.unwrap_or_default();
            tablets.insert(child.clone(), TabletRecord { health: TabletHealth::Healthy, since: Instant::now() });
            node_values.insert(child, value);
        }
        if self.flags.use_name {
            let names: Vec<String> = tablets.keys().cloned().collect();
            self.real_endpoints.refresh(&zk, Some(&names)).await;
        }
        let mut op_infos = Vec::new();
        for child in zk.children(&paths.op_data_dir()).await? {
            if let Some(text) = zk.get(&format!("{}/{child}", paths.op_data_dir())).await? {
                if let Ok(info) = serde_json::from_str::<ops::OpInfo>(&text) {
                    op_infos.push(info);
                }
            }
        }
        let mut state = self.lock().await;
        *state = NsState {
            tablets,
            tables,
            dbs,
            auto_failover,
            queues: (0..self.flags.op_queue_count()).map(|_| VecDeque::new()).collect(),
            ..NsState::default()
        };
        ops::reload_ops(&mut state, op_infos, self.flags.max_op_num);
        drop(state);
        *self.node_values.lock().await = node_values;
        Ok(())
    }

    /// `OnLocked`: recover, create system databases and tables, start the leader's loops.
    async fn on_locked(self: &Arc<Self>) -> Result<(), NameServerError> {
        tracing::info!(endpoint = %self.flags.endpoint, "became the nameserver leader");
        self.recover().await?;
        let tablet_count = self.lock().await.healthy_tablets().len();
        let required = self.flags.system_table_replica_num.max(1);
        if tablet_count < required as usize {
            return Err(NameServerError::TooFewTablets { tablets: tablet_count, required });
        }
        self.create_system_tables().await?;
        let token = CancellationToken::new();
        *self.leadership.lock().unwrap_or_else(|p| p.into_inner()) = Some(token.clone());
        self.running.store(true, Ordering::SeqCst);
        tokio::spawn(ops::process_ops_loop(self.clone(), token.clone()));
        tokio::spawn(ops::update_task_status_loop(self.clone(), token.clone()));
        tokio::spawn(update_table_status_loop(self.clone(), token.clone()));
        tokio::spawn(watch_tablets_loop(self.clone(), token));
        Ok(())
    }

    fn on_lost_lock(&self) {
        tracing::info!(endpoint = %self.flags.endpoint, "became a standby nameserver");
        self.running.store(false, Ordering::SeqCst);
        if let Some(token) = self.leadership.lock().unwrap_or_else(|p| p.into_inner()).take() {
            token.cancel();
        }
    }

    async fn create_database_if_missing(&self, db: &str) -> Result<(), ZkError> {
        let zk = self.zk().await;
        zk.create_if_missing(&self.paths.db(db), "").await?;
        self.lock().await.dbs.insert(db.to_string());
        Ok(())
    }

    /// The system databases and tables of `OnLocked` (C§1.2), one partition each with
    /// `--system_table_replica_num` replicas.
    async fn create_system_tables(&self) -> Result<(), ZkError> {
        self.create_database_if_missing(INTERNAL_DB).await?;
        self.create_database_if_missing(PRE_AGG_DB).await?;
        self.create_database_if_missing(INFORMATION_SCHEMA_DB).await?;
        let mut wanted = vec![(INTERNAL_DB, "USER")];
        if self.flags.system_table_replica_num > 0 {
            wanted.extend([
                (INTERNAL_DB, "JOB_INFO"),
                (INTERNAL_DB, "PRE_AGG_META_INFO"),
                (INFORMATION_SCHEMA_DB, "GLOBAL_VARIABLES"),
                (INFORMATION_SCHEMA_DB, "DEPLOY_RESPONSE_TIME"),
            ]);
        }
        for (db, name) in wanted {
            if self.lock().await.table(name, db).is_some() {
                continue;
            }
            let replicas = self.flags.system_table_replica_num.max(1);
            let (columns, indexes) = system_table_schema(name);
            let created =
                self.create_table_internal(name, db, 1, replicas, StorageMode::kMemory, columns, indexes).await;
            match created {
                Err((code, msg)) => tracing::warn!("cannot create system table {db}.{name}: {code} {msg}"),
                Ok(table) if name == "GLOBAL_VARIABLES" => self.init_global_variables(&table).await,
                Ok(_) => {}
            }
        }
        Ok(())
    }

    /// `InitGlobalVarTable` (`src/nameserver/name_server_impl.cc:10127-10175`): a new
    /// GLOBAL_VARIABLES table gets the four defaults, each an encoded row Put to the leader of
    /// its one partition with the variable's name as the key. The SDK reads them when it
    /// connects (`job_timeout` 20000 here, 60000 when it cannot).
    async fn init_global_variables(&self, table: &TableInfo) {
        use base64::Engine;
        let defaults =
            [("enable_trace", "false"), ("execute_mode", "online"), ("job_timeout", "20000"), ("sync_job", "false")];
        let leader = table.table_partition.first().and_then(|p| p.alive_leader()).map(|m| m.endpoint.clone());
        let Some(leader) = leader else { return };
        for (name, value) in defaults {
            let row = crate::sim::row_codec::encode_strings(&[Some(name), Some(value)]);
            // A bytes field in JSON is base64 (json2pb), as the tablet stores a Put's value.
            let put = serde_json::json!({ "tid": table.tid, "pid": 0, "time": now_ms(),
                "value": base64::engine::general_purpose::STANDARD.encode(row),
                "dimensions": [{ "key": name, "idx": 0 }] });
            match self.call_tablet(&leader, "Put", &put).await {
                Ok(reply) if http::reply_code(&reply) == 0 => {}
                other => tracing::warn!("cannot put the default of {name} into GLOBAL_VARIABLES: {other:?}"),
            }
        }
    }

    /// Creates a table: allocates a tid, places replicas round-robin over the healthy
    /// tablets (leaders spread), creates them on the tablets (every partition's followers
    /// before its leader, as `CreateTableOnTablet` is called for followers first, so the
    /// leader's replicators find them, `src/nameserver/name_server_impl.cc:4010-4017`), and
    /// persists the metadata. Each replica gets the table's `storage_mode`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn create_table_internal(
        &self,
        name: &str,
        db: &str,
        partition_num: u32,
        replica_num: u32,
        storage_mode: StorageMode,
        column_desc: Vec<serde_json::Value>,
        column_key: Vec<serde_json::Value>,
    ) -> Result<TableInfo, (i32, String)> {
        let zk = self.zk().await;
        let state = self.lock().await;
        if state.table(name, db).is_some() {
            return Err((101, "table already exists".to_string()));
        }
        let tablets = state.healthy_tablets();
        if partition_num == 0 || replica_num == 0 || replica_num as usize > tablets.len() {
            return Err((307, "invalid parameter".to_string()));
        }
        let tid =
            zk.add_to_counter(&self.paths.table_index(), 1, 1).await.map_err(|_| (304, "set zk failed".to_string()))?
                as u32;
        let term =
            zk.get(&self.paths.term()).await.ok().flatten().and_then(|t| t.trim().parse::<u64>().ok()).unwrap_or(1);
        let start = tid as usize;
        let mut table = TableInfo {
            name: name.to_string(),
            seg_cnt: Some(8),
            tid,
            partition_num,
            replica_num,
            compress_type: Some("kNoCompress".to_string()),
            column_desc,
            column_key,
            format_version: Some(1),
            db: db.to_string(),
            storage_mode: Some(storage_mode.name().to_string()),
            ..TableInfo::default()
        };
        for pid in 0..partition_num {
            let placed: Vec<String> = (0..replica_num as usize)
                .map(|r| tablets[(start + pid as usize + r) % tablets.len()].clone())
                .collect();
            table.table_partition.push(TablePartition {
                pid,
                partition_meta: placed
                    .iter()
                    .enumerate()
                    .map(|(i, ep)| PartitionMeta {
                        endpoint: ep.clone(),
                        is_leader: i == 0,
                        is_alive: Some(true),
                        ..PartitionMeta::default()
                    })
                    .collect(),
                term_offset: vec![TermPair { term, offset: 0 }],
                ..TablePartition::default()
            });
        }
        drop(state);
        for partition in &table.table_partition {
            let followers: Vec<String> =
                partition.partition_meta.iter().filter(|m| !m.is_leader).map(|m| m.endpoint.clone()).collect();
            let followers_first = partition.partition_meta.iter().filter(|m| !m.is_leader);
            for meta in followers_first.chain(partition.partition_meta.iter().filter(|m| m.is_leader)) {
                let mut table_meta = serde_json::json!({
                    "tid": tid, "pid": partition.pid, "name": name, "db": db, "term": term,
                    "mode": if meta.is_leader { "kTableLeader" } else { "kTableFollower" },
                    "storage_mode": storage_mode.name(),
                });
                if meta.is_leader && !followers.is_empty() {
                    table_meta["replicas"] = serde_json::json!(followers);
                }
                // CreateTableOnTablet copies the schema and the indexes (name_server_impl.cc).
                if !table.column_desc.is_empty() {
                    table_meta["column_desc"] = serde_json::json!(table.column_desc);
                }
                if !table.column_key.is_empty() {
                    table_meta["column_key"] = serde_json::json!(table.column_key);
                }
                let reply = self
                    .call_tablet(&meta.endpoint, "CreateTable", &serde_json::json!({ "table_meta": table_meta }))
                    .await;
                match reply {
                    Ok(r) if http::reply_code(&r) == 0 => {}
                    Ok(r) => {
                        return Err((131, format!("create table failed on {}: {}", meta.endpoint, http::reply_msg(&r))))
                    }
                    Err(e) => return Err((131, format!("create table failed: {e}"))),
                }
            }
        }
        self.persist_table(&table).await.map_err(|_| (304, "set zk failed".to_string()))?;
        self.lock().await.tables.insert(tid, table.clone());
        Ok(table)
    }
}

/// The columns and indexes of a system table, as `SystemTable::GetTableInfo` gives them
/// (`src/nameserver/system_table.h`): every index keeps the latest row per key, except
/// PRE_AGG_META_INFO's, which never expire.
fn system_table_schema(name: &str) -> (Vec<serde_json::Value>, Vec<serde_json::Value>) {
    use serde_json::json;
    // (column, data type) and (index, its columns).
    type Schema<'a> = (&'a [(&'a str, &'a str)], &'a [(&'a str, &'a [&'a str])]);
    let (columns, indexes): Schema = match name {
        "JOB_INFO" => (
            &[
                ("id", "kInt"),
                ("job_type", "kString"),
                ("state", "kString"),
                ("start_time", "kTimestamp"),
                ("end_time", "kTimestamp"),
                ("parameter", "kString"),
                ("cluster", "kString"),
                ("application_id", "kString"),
                ("error", "kString"),
            ],
            &[("id", &["id"])],
        ),
        "PRE_AGG_META_INFO" => (
            &[
                ("aggr_table", "kString"),
                ("aggr_db", "kString"),
                ("base_db", "kString"),
                ("base_table", "kString"),
                ("aggr_func", "kString"),
                ("aggr_col", "kString"),
                ("partition_cols", "kString"),
                ("order_by_col", "kString"),
                ("bucket_size", "kString"),
                ("filter_col", "kString"),
            ],
            &[
                ("aggr_table", &["aggr_table"]),
                (
                    "unique_key",
                    &["base_db", "base_table", "aggr_func", "aggr_col", "partition_cols", "order_by_col", "filter_col"],
                ),
            ],
        ),
        "GLOBAL_VARIABLES" => {
            (&[("Variable_name", "kString"), ("Variable_value", "kString")], &[("Variable_name", &["Variable_name"])])
        }
        "DEPLOY_RESPONSE_TIME" => (
            &[("DEPLOY_NAME", "kString"), ("TIME", "kString"), ("COUNT", "kBigInt"), ("TOTAL", "kString")],
            &[("index", &["DEPLOY_NAME", "TIME"])],
        ),
        "USER" => (
            &[
                ("Host", "kString"),
                ("User", "kString"),
                ("authentication_string", "kString"),
                ("password_last_changed", "kTimestamp"),
                ("password_expired", "kTimestamp"),
                ("Create_user_priv", "kString"),
            ],
            &[("index", &["Host", "User"])],
        ),
        _ => (&[], &[]),
    };
    let ttl = if name == "PRE_AGG_META_INFO" {
        json!({"ttl_type": "kAbsoluteTime", "abs_ttl": 0})
    } else {
        json!({"ttl_type": "kLatestTime", "lat_ttl": 1})
    };
    (
        columns.iter().map(|(name, data_type)| json!({"name": name, "data_type": data_type})).collect(),
        indexes.iter().map(|(index, cols)| json!({"index_name": index, "col_name": cols, "ttl": ttl})).collect(),
    )
}

/// Starts a nameserver on `listener` and runs it until `shutdown` or a fatal error.
///
/// Like `bin/openmldb --role=nameserver`: joins the election, and serves RPCs once the
/// `__INTERNAL_DB.USER` table is known (C§1.2). The ZooKeeper session is never closed, so
/// the election node lingers until the session times out (C§3.8).
pub async fn run_nameserver(
    listener: TcpListener,
    flags: SimFlags,
    version: String,
    shutdown: CancellationToken,
) -> Result<(), NameServerError> {
    let zk = Zk::connect(&flags).await?;
    let paths = ZkPaths::new(&flags.zk_root_path);
    zk.mkdir(&paths.leader()).await?;
    zk.mkdir(&paths.nodes()).await?;
    if flags.registers_name() {
        crate::sim::names::register_name(&zk, &paths, &flags.endpoint, &flags.real_endpoint).await?;
    }
    let ns = Arc::new(NameServer {
        real_endpoints: crate::sim::names::RealEndpoints::new(paths.clone()),
        paths,
        zk: RwLock::new(zk),
        running: AtomicBool::new(false),
        state: Mutex::new(NsState::default()),
        wake_ops: Notify::new(),
        task_rpc_version: std::sync::atomic::AtomicU64::new(0),
        leadership: std::sync::Mutex::new(None),
        node_values: Mutex::new(BTreeMap::new()),
        flags,
    });
    let config = Arc::new(HttpConfig {
        version,
        enable_status_service: ns.flags.enable_status_service,
        authenticator: Authenticator { skip_grant_tables: ns.flags.skip_grant_tables },
        started: Instant::now(),
    });
    let election_stop = shutdown.child_token();
    let election = tokio::spawn(election_loop(ns.clone(), election_stop.clone()));
    // `Init` blocks until the USER table is known before the port opens (C§1.2).
    let user_known = wait_for_user_table(&ns, &shutdown);
    tokio::pin!(user_known);
    let server_stop = shutdown.child_token();
    let mut listener = Some(listener);
    let mut server = None;
    let mut election = election;
    let result = loop {
        tokio::select! {
            _ = shutdown.cancelled() => break Ok(()),
            done = &mut election => {
                break match done {
                    Ok(result) => result,
                    Err(_) => Ok(()),
                };
            }
            _ = &mut user_known, if listener.is_some() => {
                if let Some(listener) = listener.take() {
                    server = Some(tokio::spawn(http::serve(
                        listener, ns.clone(), config.clone(), server_stop.clone(),
                    )));
                }
            }
        }
    };
    election_stop.cancel();
    server_stop.cancel();
    ns.on_lost_lock();
    if let Some(server) = server {
        let _ = server.await;
    }
    result
}

async fn wait_for_user_table(ns: &Arc<NameServer>, shutdown: &CancellationToken) {
    loop {
        if ns.is_running() {
            return;
        }
        let zk = ns.zk().await;
        if let Ok(children) = zk.children(&ns.paths.db_table_data()).await {
            for child in children {
                if let Ok(Some(bytes)) = zk.get_bytes(&format!("{}/{child}", ns.paths.db_table_data())).await {
                    if let Some(table) = crate::sim::pb::decode_table(&bytes) {
                        if table.db == INTERNAL_DB && table.name == "USER" {
                            return;
                        }
                    }
                }
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
}

/// `DistLock` (C§1.2): an EPHEMERAL_SEQUENTIAL `lock_request` node holding the endpoint;
/// leader iff the first sorted child is ours, or holds our endpoint (the stale-own-node
/// quirk). Checks once a second.
async fn election_loop(ns: Arc<NameServer>, stop: CancellationToken) -> Result<(), NameServerError> {
    let prefix = format!("{}/lock_request", ns.paths.leader());
    let mut my_node: Option<String> = None;
    let mut leader = false;
    loop {
        if ns.zk().await.is_dead() {
            // A new session: the old node is gone with the old session.
            if leader {
                ns.on_lost_lock();
                leader = false;
            }
            my_node = None;
            if let Ok(fresh) = Zk::connect(&ns.flags).await {
                *ns.zk.write().await = fresh;
            }
        }
        let zk = ns.zk().await;
        if my_node.is_none() {
            match zk.create(&prefix, &ns.flags.endpoint, zkc::CreateMode::EphemeralSequential).await {
                Ok(path) => my_node = Some(path),
                Err(source) if !zk.is_dead() => {
                    return Err(NameServerError::Election { path: prefix, source });
                }
                Err(_) => {}
            }
        }
        if let (Some(node), Ok(children)) = (&my_node, zk.children(&ns.paths.leader()).await) {
            let my_name = node.rsplit('/').next().unwrap_or_default().to_string();
            if !children.contains(&my_name) {
                my_node = None; // lost with an expired session; re-create next round
            } else if let Some(first) = children.first() {
                let first_value =
                    zk.get(&format!("{}/{first}", ns.paths.leader())).await.ok().flatten().unwrap_or_default();
                let is_first = *first == my_name || first_value == ns.flags.endpoint;
                if is_first && !leader {
                    ns.on_locked().await?;
                    leader = true;
                } else if !is_first && leader {
                    ns.on_lost_lock();
                    leader = false;
                }
            }
        }
        tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

/// Watches `<root>/nodes` (C§3.4): vanished healthy tablets go kOffline and get an offline
/// check; new ones are kHealthy; known ones coming back go kHealthy and `OnTabletOnline`.
async fn watch_tablets_loop(ns: Arc<NameServer>, token: CancellationToken) {
    loop {
        let zk = ns.zk().await;
        let watched = zk.client().list_and_watch_children(&ns.paths.nodes()).await;
        let (children, watcher) = match watched {
            Ok((children, watcher)) => (children, Some(watcher)),
            Err(_) => (Vec::new(), None),
        };
        if watcher.is_some() {
            ns.on_nodes_changed(children).await;
        }
        tokio::select! {
            _ = token.cancelled() => return,
            _ = async {
                match watcher {
                    Some(w) => { w.changed().await; }
                    None => tokio::time::sleep(Duration::from_millis(500)).await,
                }
            } => {}
            // A fallback in case a watch event is lost across a reconnect.
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
    }
}

impl NameServer {
    async fn on_nodes_changed(self: &Arc<Self>, children: Vec<String>) {
        let zk = self.zk().await;
        if self.flags.use_name {
            // UpdateTablets reads every tablet's map/names entry (NS:1109-1119).
            self.real_endpoints.refresh(&zk, Some(&children)).await;
        }
        let mut values = BTreeMap::new();
        for child in &children {
            if let Ok(Some(value)) = zk.get(&self.paths.node(child)).await {
                values.insert(child.clone(), value);
            }
        }
        let mut went_offline = Vec::new();
        let mut came_back = Vec::new();
        {
            let mut state = self.lock().await;
            let known: Vec<String> = state.tablets.keys().cloned().collect();
            for endpoint in known {
                let present = values.contains_key(&endpoint);
                let record = state.tablets.get_mut(&endpoint);
                let Some(record) = record else { continue };
                if !present && record.health == TabletHealth::Healthy {
                    record.health = TabletHealth::Offline;
                    record.since = Instant::now();
                    state.offline_since.insert(endpoint.clone(), now_ms());
                    went_offline.push(endpoint);
                } else if present && record.health == TabletHealth::Offline {
                    record.health = TabletHealth::Healthy;
                    record.since = Instant::now();
                    came_back.push(endpoint);
                }
            }
            let mut first_seen = false;
            for endpoint in values.keys() {
                if !state.tablets.contains_key(endpoint) {
                    state.tablets.insert(
                        endpoint.clone(),
                        TabletRecord { health: TabletHealth::Healthy, since: Instant::now() },
                    );
                    first_seen = true;
                }
            }
            drop(state);
            if first_seen {
                // Only a never-seen tablet bumps /table/notify (C§3.4).
                let _ = zk.add_to_counter(&self.paths.table_notify(), 1, 1).await;
            }
        }
        *self.node_values.lock().await = values;
        for endpoint in went_offline {
            tokio::spawn(ops::on_tablet_offline(self.clone(), endpoint, false));
        }
        for endpoint in came_back {
            tokio::spawn(ops::on_tablet_online(self.clone(), endpoint));
        }
        self.wake_ops.notify_one();
    }
}

/// `UpdateTableStatus` (C§3.7): every `--get_table_status_interval`, copy offsets from every
/// healthy tablet's GetTableStatus into the partition metas.
async fn update_table_status_loop(ns: Arc<NameServer>, token: CancellationToken) {
    loop {
        let tablets = ns.lock().await.healthy_tablets();
        // Each tablet's statuses indexed by (tid, pid) before the lock is taken, as the real one
        // builds its map of replies first (`NameServerImpl::UpdateTableStatus`, keyed
        // `tid_pid_endpoint`, src/nameserver/name_server_impl.cc): under the lock, one lookup per
        // replica. A scan of the tablet's list per replica held the lock for seconds at
        // 15 000 replicas, and every RPC waited behind it.
        let mut reports: HashMap<String, HashMap<(u64, u64), serde_json::Value>> = HashMap::new();
        for endpoint in &tablets {
            if let Ok(mut reply) = ns.call_tablet(endpoint, "GetTableStatus", &serde_json::json!({})).await {
                let list = match reply.get_mut("all_table_status").map(serde_json::Value::take) {
                    Some(serde_json::Value::Array(list)) => list,
                    _ => Vec::new(),
                };
                let by_partition = list
                    .into_iter()
                    .filter_map(|s| {
                        let key = (s.get("tid")?.as_u64()?, s.get("pid")?.as_u64()?);
                        Some((key, s))
                    })
                    .collect();
                reports.insert(endpoint.clone(), by_partition);
            }
        }
        {
            let mut state = ns.lock().await;
            for table in state.tables.values_mut() {
                for partition in table.table_partition.iter_mut() {
                    for meta in partition.partition_meta.iter_mut() {
                        let Some(report) = reports.get(&meta.endpoint) else { continue };
                        match report.get(&(u64::from(table.tid), u64::from(partition.pid))) {
                            Some(status) => {
                                meta.offset = status.get("offset").and_then(|v| v.as_u64());
                                meta.record_cnt = status.get("record_cnt").and_then(|v| v.as_u64());
                                meta.record_byte_size = status.get("record_byte_size").and_then(|v| v.as_u64());
                                meta.diskused = status.get("diskused").and_then(|v| v.as_u64());
                                meta.tablet_has_partition = Some(true);
                            }
                            None => meta.tablet_has_partition = Some(false),
                        }
                    }
                    if let Some(leader) = partition.alive_leader().cloned() {
                        partition.record_cnt = leader.record_cnt;
                        partition.record_byte_size = leader.record_byte_size;
                        partition.diskused = leader.diskused;
                    }
                }
            }
        }
        tokio::select! {
            _ = token.cancelled() => return,
            _ = tokio::time::sleep(ns.flags.get_table_status_interval) => {}
        }
    }
}
