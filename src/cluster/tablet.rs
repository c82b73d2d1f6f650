//! TabletServer RPCs over HTTP+JSON (C§2.4): GetTableStatus, GetTermPair, GetManifest, ChangeRole,
//! LoadTable, DropTable, and AddReplica/DelReplica on a leader.

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::names::ServerNames;
use super::ns::TableInfo;
use super::rpc::{self, openmldb_enum, RpcClient, RpcError};

openmldb_enum! {
    /// `TableStatus.mode` (C§4, `tablet.proto` TableMode). Unset reads as the first value,
    /// kTableLeader (C§4).
    #[derive(Default)]
    pub enum TableMode { #[default] Leader = "kTableLeader" / 1, Follower = "kTableFollower" / 2 }
}

openmldb_enum! {
    /// `TableStatus.state` (C§4, `tablet.proto` TableState). Unset reads as kTableUndefined.
    #[derive(Default)]
    pub enum TableState {
        #[default] Undefined = "kTableUndefined" / 0, Normal = "kTableNormal" / 1, Loading = "kTableLoading" / 2,
        MakingSnapshot = "kMakingSnapshot" / 3, SnapshotPaused = "kSnapshotPaused" / 4
    }
}

/// `TableStatus` (C§2.4): one loaded partition replica on a tablet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableStatus {
    #[serde(default)]
    pub tid: u32,
    #[serde(default)]
    pub pid: u32,
    #[serde(default)]
    pub offset: u64,
    #[serde(default)]
    pub mode: TableMode,
    #[serde(default)]
    pub state: TableState,
    #[serde(default)]
    pub record_cnt: u64,
    #[serde(default)]
    pub name: String,
}

impl TableState {
    /// Whether the replica is loaded and serving: kTableNormal, or one of the states a loaded
    /// replica passes through on its own. kMakingSnapshot is the scheduled snapshot
    /// (`TabletImpl::MakeSnapshotInternal`, tablet_impl.cc:2651), during which Put, Get and
    /// ChangeRole are served as in kTableNormal (`CheckTable` does not look at it); kSnapshotPaused
    /// is a leader between PauseSnapshot and RecoverSnapshot of an AddReplica or ReAddReplica
    /// chain (tablet_impl.cc:3053-3112, C§3.1). kTableUndefined and kTableLoading are not loaded.
    pub fn is_loaded(&self) -> bool {
        matches!(self, TableState::Normal | TableState::MakingSnapshot | TableState::SnapshotPaused)
    }
}

impl TableStatus {
    /// See [`TableState::is_loaded`].
    pub fn is_loaded(&self) -> bool {
        self.state.is_loaded()
    }
    pub fn is_leader(&self) -> bool {
        self.mode == TableMode::Leader
    }
}

/// `GetTermPairResponse` (C§2.4, `TabletImpl::GetTermPair` tablet_impl.cc:3844-3892): a loaded
/// replica's leader term and log offset; for a replica that is not loaded, the term and offset
/// of its snapshot (`has_table` false).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TermPair {
    #[serde(default)]
    pub term: u64,
    #[serde(default)]
    pub offset: u64,
    #[serde(default)]
    pub has_table: bool,
    #[serde(default)]
    pub is_leader: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum TabletError {
    #[error("{0}")]
    Rpc(#[from] RpcError),
    #[error("tablet {endpoint} refused {method}: code {code} \"{msg}\"")]
    Refused { endpoint: String, method: String, code: i64, msg: String },
    #[error("cannot read the reply of {method} from {endpoint}: {reason}")]
    BadReply { endpoint: String, method: String, reason: String },
}

impl TabletError {
    /// The tablet's return code, when it answered with one.
    pub fn code(&self) -> Option<i64> {
        match self {
            TabletError::Refused { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// Calls tablets directly.
#[derive(Clone)]
pub struct TabletClient {
    rpc: RpcClient,
    names: Arc<ServerNames>,
}

impl TabletClient {
    pub fn new(rpc: RpcClient, names: Arc<ServerNames>) -> Self {
        TabletClient { rpc, names }
    }

    async fn call(&self, endpoint: &str, method: &str, body: Value) -> Result<Value, TabletError> {
        let reply = self.rpc.call(endpoint, "TabletServer", method, &body).await?;
        if rpc::code(&reply) != 0 {
            return Err(TabletError::Refused {
                endpoint: endpoint.into(),
                method: method.into(),
                code: rpc::code(&reply),
                msg: rpc::msg(&reply),
            });
        }
        Ok(reply)
    }

    /// GetTableStatus with `body` as the filter: the statuses the tablet lists (never an error
    /// for an unknown tid/pid, C§2.4).
    async fn get_table_status(&self, endpoint: &str, body: Value) -> Result<Vec<TableStatus>, TabletError> {
        let method = "GetTableStatus";
        let mut reply = self.call(endpoint, method, body).await?;
        let list = reply.get_mut("all_table_status").map(Value::take).unwrap_or(json!([]));
        serde_json::from_value(list).map_err(|e| TabletError::BadReply {
            endpoint: endpoint.into(),
            method: method.into(),
            reason: e.to_string(),
        })
    }

    /// Every loaded partition on `endpoint`.
    pub async fn table_status(&self, endpoint: &str) -> Result<Vec<TableStatus>, TabletError> {
        self.get_table_status(endpoint, json!({})).await
    }

    /// Every loaded partition on `endpoint`, by (tid, pid).
    pub async fn loaded_partitions(&self, endpoint: &str) -> Result<HashMap<(u32, u32), TableStatus>, TabletError> {
        Ok(self.table_status(endpoint).await?.into_iter().map(|s| ((s.tid, s.pid), s)).collect())
    }

    /// One partition's status, `None` when it is not loaded there.
    pub async fn partition_status(
        &self,
        endpoint: &str,
        tid: u32,
        pid: u32,
    ) -> Result<Option<TableStatus>, TabletError> {
        let list = self.get_table_status(endpoint, json!({"tid": tid, "pid": pid})).await?;
        Ok(list.into_iter().find(|s| s.tid == tid && s.pid == pid))
    }

    /// The offset of a replica that is loaded on its tablet (fresher than the copy
    /// ShowTable has); `None` when it is not, or the tablet does not answer.
    pub async fn loaded_offset(&self, endpoint: &str, tid: u32, pid: u32) -> Option<u64> {
        let status = self.partition_status(endpoint, tid, pid).await.ok().flatten()?;
        status.is_loaded().then_some(status.offset)
    }

    /// [`TabletClient::loaded_offset`], with an error when the tablet does not answer (its
    /// request already retried): it crashed or is cut off, so a wait on it can end at once.
    pub async fn answered_offset(&self, endpoint: &str, tid: u32, pid: u32) -> Result<Option<u64>, String> {
        match self.partition_status(endpoint, tid, pid).await {
            Ok(status) => Ok(status.filter(|s| s.is_loaded()).map(|s| s.offset)),
            Err(e) => Err(format!("{endpoint} does not answer ({e}); is it running?")),
        }
    }

    /// LoadTable as follower, from the root path of the table's storage mode (C§2.4; a disk
    /// table asked for as kMemory is looked for under the memory root, O§5.7). Loading runs in
    /// the background: the replica is kTableLoading until its snapshot and binlog are replayed.
    pub async fn load_table_as_follower(&self, endpoint: &str, table: &TableInfo, pid: u32) -> Result<(), TabletError> {
        let meta = json!({
            "name": table.name, "db": table.db, "tid": table.tid, "pid": pid,
            "mode": TableMode::Follower, "storage_mode": table.storage_mode,
        });
        self.call(endpoint, "LoadTable", json!({"table_meta": meta})).await.map(|_| ())
    }

    /// GetTermPair (C§2.4): whether the partition is loaded, its role, term and offset. The
    /// storage mode says where an unloaded replica's snapshot is (tablet_impl.cc:3856-3859).
    pub async fn term_pair(&self, endpoint: &str, table: &TableInfo, pid: u32) -> Result<TermPair, TabletError> {
        let body = json!({"tid": table.tid, "pid": pid, "storage_mode": table.storage_mode});
        let reply = self.call(endpoint, "GetTermPair", body).await?;
        serde_json::from_value(reply).map_err(|e| TabletError::BadReply {
            endpoint: endpoint.into(),
            method: "GetTermPair".into(),
            reason: e.to_string(),
        })
    }

    /// ChangeRole (C§2.4) to follower: the replica refuses writes from now on (code 103 "table
    /// is follower") and stops replicating to its followers (the tablet drops its replicate
    /// nodes). Code 0 "table is follower" when it already is one.
    pub async fn change_role_to_follower(&self, endpoint: &str, tid: u32, pid: u32) -> Result<(), TabletError> {
        let body = json!({"tid": tid, "pid": pid, "mode": TableMode::Follower, "term": 0});
        self.call(endpoint, "ChangeRole", body).await.map(|_| ())
    }

    /// DropTable (`TabletImpl::DropTable`, `src/tablet/tablet_impl.cc:4195-4230`): the replica
    /// is unloaded and its directory moved to the recycle bin of its storage mode. The reply is
    /// given before the work is done, and without a recycle-bin root the replica stays loaded:
    /// the caller checks with `partition_status`.
    pub async fn drop_table(&self, endpoint: &str, tid: u32, pid: u32) -> Result<(), TabletError> {
        self.call(endpoint, "DropTable", json!({"tid": tid, "pid": pid})).await.map(|_| ())
    }

    /// DelReplica on a leader's tablet (`TabletImpl::DelReplica`): it stops replicating to
    /// `follower` (its replicate node goes). Code 0 "replica does not exist" when it had none.
    pub async fn del_replicate_node(
        &self,
        leader: &str,
        tid: u32,
        pid: u32,
        follower: &str,
    ) -> Result<(), TabletError> {
        self.replicate_node_call(leader, "DelReplica", tid, pid, follower).await
    }

    /// AddReplica on a leader's tablet without a task (`TabletImpl::AddReplica`,
    /// tablet_impl.cc:2202-2269): the leader starts a replicate node for `follower` at once,
    /// which first asks the follower for its offset with its term (the follower takes the term,
    /// `:2364-2374`) and then sends it the log from there (`replicate_node.cc:154-173`). Code
    /// 119 "replica endpoint already exists" when it has one; 103 on a follower.
    pub async fn add_replicate_node(
        &self,
        leader: &str,
        tid: u32,
        pid: u32,
        follower: &str,
    ) -> Result<(), TabletError> {
        self.replicate_node_call(leader, "AddReplica", tid, pid, follower).await
    }

    /// AddReplica or DelReplica without a task, naming `follower` as the leader knows it:
    /// replicate nodes go by the name a use_name leader was given (tablet_impl.cc:2234-2242).
    async fn replicate_node_call(
        &self,
        leader: &str,
        method: &str,
        tid: u32,
        pid: u32,
        follower: &str,
    ) -> Result<(), TabletError> {
        let follower = self.names.name(follower).await;
        self.call(leader, method, json!({"tid": tid, "pid": pid, "endpoint": follower})).await.map(|_| ())
    }

    /// The offset of the snapshot a replica keeps (GetManifest, tablet_impl.cc:3983-4021: its
    /// `snapshot/MANIFEST` under the root of the table's storage mode; 0 without a snapshot).
    /// A leader's binlog before that offset may be deleted already.
    pub async fn manifest_offset(&self, endpoint: &str, table: &TableInfo, pid: u32) -> Result<u64, TabletError> {
        let body = json!({"tid": table.tid, "pid": pid, "storage_mode": table.storage_mode});
        let reply = self.call(endpoint, "GetManifest", body).await?;
        Ok(reply["manifest"]["offset"].as_u64().unwrap_or(0))
    }

    /// ChangeRole (C§2.4) to leader with `term`, replicating to `followers`. Code 102 "table is
    /// leader" when it already leads.
    pub async fn change_role_to_leader(
        &self,
        endpoint: &str,
        tid: u32,
        pid: u32,
        term: u64,
        followers: &[String],
    ) -> Result<(), TabletError> {
        // A use_name tablet resolves the names it is given (tablet_impl.cc:2137-2142).
        let followers = self.names.names(followers).await;
        let body = json!({"tid": tid, "pid": pid, "mode": TableMode::Leader, "term": term, "replicas": followers});
        self.call(endpoint, "ChangeRole", body).await.map(|_| ())
    }
}
