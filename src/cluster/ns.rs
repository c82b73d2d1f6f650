//! The NameServer over HTTP+JSON (C§2.2-2.3): typed requests and replies, the leader found in
//! ZooKeeper (first sorted child of `<root>/leader`, its value the endpoint, mapped through
//! `<root>/map/names` for `use_name` clusters, C§1.2) and looked up again after code 300
//! ("nameserver is not leader") or a connection error. On a `use_name` cluster the replies'
//! server names are turned into real endpoints and requests carry names
//! ([`super::names::ServerNames`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::Mutex;

use super::names::ServerNames;
use super::rpc::{self, openmldb_enum, RpcClient, RpcError};
use super::zk::{Zk, ZkError};

/// `PartitionMeta` (C§2.2); absent `is_alive` means true.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionMeta {
    pub endpoint: String,
    #[serde(default)]
    pub is_leader: bool,
    #[serde(default = "yes")]
    pub is_alive: bool,
    /// The offset the nameserver last copied from the tablet (C§3.7); absent until reported.
    #[serde(default)]
    pub offset: Option<u64>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TablePartition {
    pub pid: u32,
    #[serde(default)]
    pub partition_meta: Vec<PartitionMeta>,
    /// The partition's history (`TablePartition.term_offset`, C§2.2): each leader term and the
    /// offset of its first entry, in the order the nameserver recorded them.
    #[serde(default)]
    pub term_offset: Vec<TermStart>,
}

/// `openmldb.nameserver.TermPair`: a term and the offset of its first entry (a ChangeLeader
/// records its new term from the new leader's offset `+ 1`, `NameServerImpl::UpdateLeaderInfo`,
/// `src/nameserver/name_server_impl.cc:7550-7552`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TermStart {
    pub term: u64,
    #[serde(default)]
    pub offset: u64,
}

impl TablePartition {
    /// The replica clients route to: leader and alive (C§3.6).
    pub fn alive_leader(&self) -> Option<&PartitionMeta> {
        self.partition_meta.iter().find(|m| m.is_leader && m.is_alive)
    }
    pub fn meta(&self, endpoint: &str) -> Option<&PartitionMeta> {
        self.partition_meta.iter().find(|m| m.endpoint == endpoint)
    }
}

openmldb_enum! {
    /// `TableInfo.storage_mode` (`common.proto` StorageMode): where a table keeps its data, and so
    /// which root path a tablet loads it from. Unset means kMemory (the proto2 default).
    #[derive(Default)]
    pub enum StorageMode { #[default] Memory = "kMemory" / 1, Ssd = "kSSD" / 2, Hdd = "kHDD" / 3 }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableInfo {
    pub name: String,
    #[serde(default)]
    pub db: String,
    #[serde(default)]
    pub tid: u32,
    #[serde(default)]
    pub storage_mode: StorageMode,
    /// Replicas per partition, the leader included (`TableInfo.replica_num`, C§2.2); 0 when
    /// the nameserver does not say.
    #[serde(default)]
    pub replica_num: u32,
    #[serde(default)]
    pub table_partition: Vec<TablePartition>,
    /// The indexes (`TableInfo.column_key`, field 10, C§2.2), each with its TTL.
    #[serde(default)]
    pub column_key: Vec<ColumnKey>,
}

impl TableInfo {
    /// `db.name`, as messages name a table.
    pub fn full_name(&self) -> String {
        format!("{}.{}", self.db, self.name)
    }

    /// The first index whose TTL makes the tablets delete rows, described as
    /// `index k: kAbsoluteTime 10min`; `None` when no live index expires rows. A deleted index
    /// (`flag` 1) is left out.
    pub fn expiring_ttl(&self) -> Option<String> {
        self.column_key.iter().filter(|k| k.flag == 0).find_map(|k| {
            let ttl = k.ttl.as_ref()?;
            ttl.expires().then(|| format!("index {}: {ttl}", k.index_name))
        })
    }
}

openmldb_enum! {
    /// `TTLSt.ttl_type` (`common.proto:61-65`, `type.proto:50-56` TTLType). Unset means
    /// kAbsoluteTime (the proto2 default).
    #[derive(Default)]
    pub enum TtlType {
        #[default] Absolute = "kAbsoluteTime" / 1, Relative = "kRelativeTime" / 2, Latest = "kLatestTime" / 3,
        AbsAndLat = "kAbsAndLat" / 4, AbsOrLat = "kAbsOrLat" / 5
    }
}

/// `TTLSt` (`common.proto:61-65`): `abs_ttl` in minutes, `lat_ttl` in rows kept per key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TtlSt {
    #[serde(default)]
    pub ttl_type: TtlType,
    #[serde(default)]
    pub abs_ttl: u64,
    #[serde(default)]
    pub lat_ttl: u64,
}

impl TtlSt {
    /// Whether the tablets garbage-collect rows of an index with this TTL, as
    /// `storage::TTLSt::NeedGc` decides (`src/storage/schema.h:81-96`): a limit of 0 means none,
    /// kAbsAndLat needs both limits, kAbsOrLat either. The storage layer reads kRelativeTime
    /// (and any type it does not know) as kAbsoluteTime (`ConvertTTLType`, schema.h:50-63).
    pub fn expires(&self) -> bool {
        match self.ttl_type {
            TtlType::Latest => self.lat_ttl != 0,
            TtlType::AbsAndLat => self.abs_ttl != 0 && self.lat_ttl != 0,
            TtlType::AbsOrLat => self.abs_ttl != 0 || self.lat_ttl != 0,
            TtlType::Absolute | TtlType::Relative | TtlType::Other(_) => self.abs_ttl != 0,
        }
    }
}

impl std::fmt::Display for TtlSt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.ttl_type {
            TtlType::Latest => write!(f, "{} {}", self.ttl_type, self.lat_ttl),
            TtlType::AbsAndLat | TtlType::AbsOrLat => {
                write!(f, "{} {}min, {}", self.ttl_type, self.abs_ttl, self.lat_ttl)
            }
            _ => write!(f, "{} {}min", self.ttl_type, self.abs_ttl),
        }
    }
}

/// `ColumnKey` (`common.proto:73-80`): one index of a table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnKey {
    #[serde(default)]
    pub index_name: String,
    /// 1 when the index was deleted.
    #[serde(default)]
    pub flag: u32,
    #[serde(default)]
    pub ttl: Option<TtlSt>,
}

/// One partition of a table, as ops, waits and messages name it: `demo.double pid 3`.
#[derive(Debug, Clone, Copy)]
pub struct Partition<'a> {
    pub table: &'a TableInfo,
    pub pid: u32,
}

impl<'a> Partition<'a> {
    pub fn new(table: &'a TableInfo, pid: u32) -> Self {
        Partition { table, pid }
    }
    pub fn db(&self) -> &'a str {
        &self.table.db
    }
    pub fn name(&self) -> &'a str {
        &self.table.name
    }
    pub fn tid(&self) -> u32 {
        self.table.tid
    }
}

impl std::fmt::Display for Partition<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{} pid {}", self.table.db, self.table.name, self.pid)
    }
}

openmldb_enum! {
    /// `TabletStatus.state` (C§2.2): an `EndpointState` name.
    pub enum TabletState { Offline = "kOffline" / 1, Healthy = "kHealthy" / 2 }
}

/// `TabletStatus` (C§2.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TabletStatus {
    /// The real endpoint (what the nameserver lists, mapped from the server name on a
    /// `use_name` cluster).
    pub endpoint: String,
    /// The server name on a `use_name` cluster (`endpoint` as the nameserver lists it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub state: TabletState,
    /// Milliseconds since the nameserver last saw the tablet's state change.
    #[serde(default)]
    pub age: u64,
}

impl TabletStatus {
    pub fn is_healthy(&self) -> bool {
        self.state == TabletState::Healthy
    }
}

openmldb_enum! {
    /// `OPStatus.status` (C§2.2): a `TaskStatus` name (`tablet.proto`).
    pub enum OpState {
        Inited = "kInited" / 1, Doing = "kDoing" / 2, Done = "kDone" / 3, Failed = "kFailed" / 4, Canceled = "kCanceled" / 5
    }
}

/// ShowTable's reply (C§2.3), read without a JSON tree in between: at 50 000 replicas the tree
/// takes several times the memory of the tables.
#[derive(Debug, Deserialize)]
struct ShowTableReply {
    #[serde(default)]
    code: i64,
    #[serde(default)]
    msg: String,
    #[serde(default)]
    table_info: Vec<TableInfo>,
}

impl rpc::Coded for ShowTableReply {
    fn code(&self) -> i64 {
        self.code
    }
    fn msg(&self) -> String {
        self.msg.clone()
    }
}

/// `OPStatus` (C§2.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpStatus {
    pub op_id: u64,
    pub op_type: String,
    pub status: OpState,
    #[serde(default)]
    pub task_type: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub pid: Option<u32>,
    #[serde(default)]
    pub db: String,
}

impl OpStatus {
    pub fn is_finished(&self) -> bool {
        matches!(self.status, OpState::Done | OpState::Failed | OpState::Canceled)
    }
    /// kFailed and kCanceled both mean the op did not do its job.
    pub fn is_failure(&self) -> bool {
        matches!(self.status, OpState::Failed | OpState::Canceled)
    }
}

impl std::fmt::Display for OpStatus {
    /// `#12 kChangeLeaderOP demo.t pid 3 kDoing`, as waits and reports name an op.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "#{} {} {}.{}", self.op_id, self.op_type, self.db, self.name)?;
        if let Some(pid) = self.pid {
            write!(f, " pid {pid}")?;
        }
        write!(f, " {}", self.status)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum NsError {
    #[error("{0}")]
    Zk(#[from] ZkError),
    #[error("no nameserver leader is registered in ZooKeeper under {root}/leader; start a nameserver or wait for the election")]
    NoLeader { root: String },
    #[error("nameserver {endpoint} refused {method}: code {code} \"{msg}\"")]
    Refused { endpoint: String, method: String, code: i64, msg: String },
    #[error("{0}")]
    Rpc(#[from] RpcError),
    #[error("no nameserver leader answered {method} within {waited:?} (last: {last})")]
    LeaderLost { method: String, waited: Duration, last: String },
    #[error("cannot read the reply of {method}: {reason}")]
    BadReply { method: String, reason: String },
}

impl NsError {
    /// The OpenMLDB return code, when the nameserver answered with one (C§2.5).
    pub fn code(&self) -> Option<i64> {
        match self {
            NsError::Refused { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// True when a changing request may have been carried out without an answer coming back.
    pub fn is_outcome_unknown(&self) -> bool {
        matches!(self, NsError::Rpc(e) if e.is_outcome_unknown())
    }
}

/// Code 300: "nameserver is not leader" (C§2.5).
pub const NOT_LEADER: i64 = 300;

/// A NameServer client that follows the leader.
pub struct NsClient {
    zk: Arc<Zk>,
    rpc: RpcClient,
    names: Arc<ServerNames>,
    leader: Mutex<Option<String>>,
    /// How long to keep looking for a leader after losing it (covers an NS failover, C§3.8).
    pub failover_timeout: Duration,
    /// This process's writes of one partition's replica metadata (UpdateTableAliveStatus, and
    /// GetTablePartition + SetTablePartition) one at a time, by partition: SetTablePartition
    /// writes back the whole partition as read, so another replica's alive flag written in
    /// between would be undone. Locked by a hash of (db, table, pid).
    partition_writes: Arc<[Mutex<()>]>,
}

/// Stripes of [`NsClient`]'s partition metadata locks.
const PARTITION_WRITE_STRIPES: usize = 64;

impl NsClient {
    pub fn new(zk: Arc<Zk>, rpc: RpcClient) -> Self {
        let names = Arc::new(ServerNames::new(zk.clone()));
        let partition_writes = (0..PARTITION_WRITE_STRIPES).map(|_| Mutex::new(())).collect();
        NsClient {
            zk,
            rpc,
            names,
            leader: Mutex::new(None),
            failover_timeout: Duration::from_secs(60),
            partition_writes,
        }
    }

    /// The lock of one partition's metadata writes ([`NsClient::partition_writes`]).
    fn partition_write_lock(&self, db: &str, name: &str, pid: u32) -> &Mutex<()> {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        (db, name, pid).hash(&mut hasher);
        &self.partition_writes[hasher.finish() as usize % self.partition_writes.len()]
    }

    pub fn zk(&self) -> &Arc<Zk> {
        &self.zk
    }

    /// The cluster's server names (identity on a cluster without them).
    pub fn names(&self) -> &Arc<ServerNames> {
        &self.names
    }

    /// Replicas' server names turned into real endpoints.
    async fn with_real_endpoints(&self, mut tables: Vec<TableInfo>) -> Vec<TableInfo> {
        for table in &mut tables {
            for p in &mut table.table_partition {
                for m in &mut p.partition_meta {
                    m.endpoint = self.names.real(&m.endpoint).await;
                }
            }
        }
        tables
    }

    /// The current leader's endpoint, from ZooKeeper.
    pub async fn discover_leader(&self) -> Result<String, NsError> {
        let children = match self.zk.children("leader").await {
            Ok(c) => c,
            Err(ZkError::NoNode { .. }) => Vec::new(),
            Err(e) => return Err(e.into()),
        };
        let Some(first) = children.first() else {
            return Err(NsError::NoLeader { root: self.zk.settings().root_path.clone() });
        };
        let name = String::from_utf8_lossy(&self.zk.get(&format!("leader/{first}")).await?).into_owned();
        // use_name clusters register a server name; map it to the real endpoint (C§1.2).
        Ok(self.names.real(&name).await)
    }

    /// Calls a NameServer method on the leader; app errors (code != 0) become `Refused`. A
    /// leader that cannot be reached is looked up again and the call repeated: for reads and
    /// for changes that may be repeated.
    pub async fn call(&self, method: &str, body: Value) -> Result<Value, NsError> {
        self.call_with(method, body, false).await
    }

    /// Calls a NameServer method that creates an op, which must not be submitted twice: a
    /// request that got no answer is [`NsError::is_outcome_unknown`] for the caller to
    /// reconcile (ops since the op index it read before, C§3.2) instead of being sent again.
    pub async fn call_change(&self, method: &str, body: Value) -> Result<Value, NsError> {
        self.call_with(method, body, true).await
    }

    /// Like [`NsClient::call`], the reply read straight into `T` (see [`rpc::RpcClient::call_as`]).
    async fn call_as<T: serde::de::DeserializeOwned + rpc::Coded>(
        &self,
        method: &str,
        body: Value,
    ) -> Result<T, NsError> {
        self.call_with(method, body, false).await
    }

    async fn call_with<T: serde::de::DeserializeOwned + rpc::Coded>(
        &self,
        method: &str,
        body: Value,
        creates_op: bool,
    ) -> Result<T, NsError> {
        let started = Instant::now();
        let mut delay = Duration::from_millis(100);
        loop {
            let leader = {
                let mut cached = self.leader.lock().await;
                match cached.clone() {
                    Some(l) => l,
                    None => {
                        let l = self.discover_leader().await;
                        match l {
                            Ok(l) => {
                                *cached = Some(l.clone());
                                l
                            }
                            Err(e) if started.elapsed() < self.failover_timeout => {
                                tracing::debug!("waiting for a nameserver leader: {e}");
                                drop(cached);
                                tokio::time::sleep(delay).await;
                                delay = (delay * 2).min(Duration::from_secs(1));
                                continue;
                            }
                            Err(e) => return Err(e),
                        }
                    }
                }
            };
            let reply: Result<T, _> = if creates_op {
                self.rpc.call_change_as(&leader, "NameServer", method, &body).await
            } else {
                self.rpc.call_as(&leader, "NameServer", method, &body).await
            };
            let last = match reply {
                Ok(reply) if reply.code() == NOT_LEADER => format!("{leader} is not leader any more"),
                Ok(reply) if reply.code() != 0 => {
                    return Err(NsError::Refused {
                        endpoint: leader,
                        method: method.into(),
                        code: reply.code(),
                        msg: reply.msg(),
                    })
                }
                Ok(reply) => return Ok(reply),
                Err(e) if e.is_transport() => e.to_string(),
                Err(e) => return Err(e.into()),
            };
            *self.leader.lock().await = None;
            if started.elapsed() >= self.failover_timeout {
                return Err(NsError::LeaderLost { method: method.into(), waited: self.failover_timeout, last });
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(1));
        }
    }

    fn parse<T: serde::de::DeserializeOwned>(method: &str, value: Value) -> Result<T, NsError> {
        serde_json::from_value(value).map_err(|e| NsError::BadReply { method: method.into(), reason: e.to_string() })
    }

    pub async fn show_tablet(&self) -> Result<Vec<TabletStatus>, NsError> {
        let reply = self.call("ShowTablet", json!({})).await?;
        let mut tablets: Vec<TabletStatus> =
            Self::parse("ShowTablet", reply.get("tablets").cloned().unwrap_or(json!([])))?;
        for t in &mut tablets {
            let real = self.names.real(&t.endpoint).await;
            if real != t.endpoint {
                t.name = Some(std::mem::replace(&mut t.endpoint, real));
            }
        }
        Ok(tablets)
    }

    /// Every table of every database, internal ones included (`show_all`, C§2.3).
    pub async fn show_all_tables(&self) -> Result<Vec<TableInfo>, NsError> {
        let reply: ShowTableReply = self.call_as("ShowTable", json!({"show_all": true})).await?;
        Ok(self.with_real_endpoints(reply.table_info).await)
    }

    pub async fn show_table(&self, db: &str, name: &str) -> Result<Option<TableInfo>, NsError> {
        let reply: ShowTableReply = self.call_as("ShowTable", json!({"db": db, "name": name})).await?;
        let table = reply.table_info.into_iter().find(|t| t.db == db && t.name == name);
        Ok(self.with_real_endpoints(table.into_iter().collect()).await.pop())
    }

    /// Ops the leader knows about, optionally filtered (each present field filters, C§2.3).
    pub async fn show_op_status(
        &self,
        db: Option<&str>,
        name: Option<&str>,
        pid: Option<u32>,
    ) -> Result<Vec<OpStatus>, NsError> {
        let mut body = json!({});
        if let Some(db) = db {
            body["db"] = json!(db);
        }
        if let Some(name) = name {
            body["name"] = json!(name);
        }
        if let Some(pid) = pid {
            body["pid"] = json!(pid);
        }
        let reply = self.call("ShowOPStatus", body).await?;
        Self::parse("ShowOPStatus", reply.get("op_status").cloned().unwrap_or(json!([])))
    }

    /// Ops created after op `since` for one partition (op ids grow, C§3.2).
    pub async fn ops_since(&self, since: u64, db: &str, name: &str, pid: u32) -> Result<Vec<OpStatus>, NsError> {
        let ops = self.show_op_status(Some(db), Some(name), Some(pid)).await?;
        Ok(ops.into_iter().filter(|o| o.op_id > since).collect())
    }

    /// One partition of a table as the nameserver has it now; `None` when the table or the
    /// partition is gone.
    pub async fn partition(&self, db: &str, name: &str, pid: u32) -> Result<Option<TablePartition>, NsError> {
        Ok(self.show_table(db, name).await?.and_then(|t| t.table_partition.into_iter().find(|p| p.pid == pid)))
    }

    /// The last op id handed out (`<root>/op/op_index`, C§1.1); ops created later have larger ids.
    pub async fn op_index(&self) -> Result<u64, NsError> {
        match self.zk.get("op/op_index").await {
            Ok(data) => Ok(String::from_utf8_lossy(&data).trim().parse().unwrap_or(0)),
            Err(ZkError::NoNode { .. }) => Ok(0),
            Err(e) => Err(e.into()),
        }
    }

    /// The in-memory auto_failover value of the leader (ConfGet, C§2.3).
    pub async fn auto_failover(&self) -> Result<bool, NsError> {
        let reply = self.call("ConfGet", json!({})).await?;
        let conf = reply.get("conf").and_then(Value::as_array).cloned().unwrap_or_default();
        Ok(conf.iter().any(|p| p["key"] == "auto_failover" && p["value"] == "true"))
    }

    pub async fn set_auto_failover(&self, on: bool) -> Result<(), NsError> {
        self.call("ConfSet", json!({"conf": {"key": "auto_failover", "value": on.to_string()}})).await.map(|_| ())
    }

    /// ChangeLeader with an explicit candidate, which works on a live leader (C§3.5).
    pub async fn change_leader(&self, db: &str, name: &str, pid: u32, candidate: &str) -> Result<(), NsError> {
        let candidate = self.names.name(candidate).await;
        let body = json!({"db": db, "name": name, "pid": pid, "candidate_leader": candidate});
        self.call_change("ChangeLeader", body).await.map(|_| ())
    }

    pub async fn recover_table(&self, db: &str, name: &str, pid: u32, endpoint: &str) -> Result<(), NsError> {
        let endpoint = self.names.name(endpoint).await;
        self.call_change("RecoverTable", json!({"db": db, "name": name, "pid": pid, "endpoint": endpoint}))
            .await
            .map(|_| ())
    }

    /// RecoverEndpoint (C§3.4): a RecoverTable op for every replica on `endpoint` that is not
    /// alive, spread over `concurrency` queues (at most `name_server_task_max_concurrency`, 8).
    pub async fn recover_endpoint(&self, endpoint: &str, need_restore: bool, concurrency: u32) -> Result<(), NsError> {
        let endpoint = self.names.name(endpoint).await;
        self.call_change(
            "RecoverEndpoint",
            json!({"endpoint": endpoint, "need_restore": need_restore, "concurrency": concurrency}),
        )
        .await
        .map(|_| ())
    }

    pub async fn add_replica(&self, db: &str, name: &str, pid: u32, endpoint: &str) -> Result<(), NsError> {
        let endpoint = self.names.name(endpoint).await;
        self.call_change("AddReplicaNS", json!({"db": db, "name": name, "pid": pid, "endpoint": endpoint}))
            .await
            .map(|_| ())
    }

    pub async fn del_replica(&self, db: &str, name: &str, pid: u32, endpoint: &str) -> Result<(), NsError> {
        let endpoint = self.names.name(endpoint).await;
        self.call_change("DelReplicaNS", json!({"db": db, "name": name, "pid": pid, "endpoint": endpoint}))
            .await
            .map(|_| ())
    }

    pub async fn update_table_alive(
        &self,
        db: &str,
        name: &str,
        pid: u32,
        endpoint: &str,
        alive: bool,
    ) -> Result<(), NsError> {
        let endpoint = self.names.name(endpoint).await;
        let body = json!({"db": db, "name": name, "pid": pid, "endpoint": endpoint, "is_alive": alive});
        let _writing = self.partition_write_lock(db, name, pid).lock().await;
        self.call("UpdateTableAliveStatus", body).await.map(|_| ())
    }

    /// Marks the replica on `endpoint` an alive follower: what RecoverTable's last task
    /// (UpdatePartitionStatus, C§3.1) writes, without an op. See [`NsClient::edit_partition`].
    pub async fn mark_alive_follower(&self, db: &str, name: &str, pid: u32, endpoint: &str) -> Result<(), NsError> {
        let endpoint = self.names.name(endpoint).await;
        let edited = self
            .edit_partition(db, name, pid, |metas| {
                let meta = metas.iter_mut().find(|m| m.get("endpoint").and_then(Value::as_str) == Some(&endpoint));
                meta.map(|meta| {
                    meta["is_leader"] = json!(false);
                    meta["is_alive"] = json!(true);
                })
                .is_some()
            })
            .await?;
        if !edited {
            return Err(NsError::BadReply {
                method: "GetTablePartition".into(),
                reason: format!("{db}.{name} pid {pid} has no replica on {endpoint}"),
            });
        }
        Ok(())
    }

    /// Removes the replica on `endpoint` from the partition's metadata: what DelReplica's
    /// kDelTableInfo task writes (C§3.1), without an op, and also for a replica flagged leader,
    /// which DelReplicaNS refuses (102). Returns false when it was not there. See
    /// [`NsClient::edit_partition`].
    pub async fn remove_replica_meta(&self, db: &str, name: &str, pid: u32, endpoint: &str) -> Result<bool, NsError> {
        let endpoint = self.names.name(endpoint).await;
        self.edit_partition(db, name, pid, |metas| {
            let before = metas.len();
            metas.retain(|m| m.get("endpoint").and_then(Value::as_str) != Some(&endpoint));
            metas.len() != before
        })
        .await
    }

    /// GetTablePartition, `edit` of its replicas' metadata as the nameserver holds it (every
    /// field kept), then SetTablePartition when `edit` says it changed something: the raw
    /// metadata edit of C§2.3 (`name_server_impl.cc:2040-2116`). SetTablePartition writes the
    /// partition as given, without any check, and is refused while auto_failover is on (301).
    /// The two calls are not one transaction: this process's other metadata writes of the
    /// partition wait ([`NsClient::partition_writes`]), and the caller makes sure no op of the
    /// partition runs meanwhile (auto_failover off, its ops finished); other partitions are
    /// safe, as SetTablePartition replaces its pid only, under the nameserver's lock.
    async fn edit_partition(
        &self,
        db: &str,
        name: &str,
        pid: u32,
        edit: impl FnOnce(&mut Vec<Value>) -> bool,
    ) -> Result<bool, NsError> {
        let _writing = self.partition_write_lock(db, name, pid).lock().await;
        let reply = self.call("GetTablePartition", json!({"db": db, "name": name, "pid": pid})).await?;
        let Some(mut partition) = reply.get("table_partition").cloned() else {
            return Err(NsError::BadReply {
                method: "GetTablePartition".into(),
                reason: format!("{db}.{name} has no pid {pid}"),
            });
        };
        let mut metas: Vec<Value> =
            partition.get("partition_meta").and_then(Value::as_array).cloned().unwrap_or_default();
        if !edit(&mut metas) {
            return Ok(false);
        }
        partition["partition_meta"] = json!(metas);
        self.call("SetTablePartition", json!({"db": db, "name": name, "table_partition": partition})).await?;
        Ok(true)
    }
}
