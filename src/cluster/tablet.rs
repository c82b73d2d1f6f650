//! TabletServer RPCs over HTTP+JSON (C§2.4): GetTableStatus, GetTermPair, ChangeRole and LoadTable.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::rpc::{self, RpcClient, RpcError};

/// `TableStatus` (C§2.4): one loaded partition replica on a tablet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableStatus {
    #[serde(default)]
    pub tid: u32,
    #[serde(default)]
    pub pid: u32,
    #[serde(default)]
    pub offset: u64,
    /// `kTableLeader` / `kTableFollower`; unset reads as leader (C§4).
    #[serde(default = "leader_mode")]
    pub mode: String,
    /// `kTableUndefined`, `kTableNormal`, `kTableLoading`, ...
    #[serde(default)]
    pub state: String,
    #[serde(default)]
    pub record_cnt: u64,
    #[serde(default)]
    pub name: String,
}

fn leader_mode() -> String {
    "kTableLeader".into()
}

impl TableStatus {
    pub fn is_normal(&self) -> bool {
        self.state == "kTableNormal"
    }
    pub fn is_leader(&self) -> bool {
        self.mode == "kTableLeader"
    }
}

/// `GetTermPairResponse` (C§2.4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TermPair {
    #[serde(default)]
    pub has_table: bool,
    #[serde(default)]
    pub is_leader: bool,
    #[serde(default)]
    pub term: u64,
    #[serde(default)]
    pub offset: u64,
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
}

impl TabletClient {
    pub fn new(rpc: RpcClient) -> Self {
        TabletClient { rpc }
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

    /// Every loaded partition on `endpoint` (never an error for unknown tid/pid, C§2.4).
    pub async fn table_status(&self, endpoint: &str) -> Result<Vec<TableStatus>, TabletError> {
        let reply = self.call(endpoint, "GetTableStatus", json!({})).await?;
        serde_json::from_value(reply.get("all_table_status").cloned().unwrap_or(json!([]))).map_err(|e| {
            TabletError::BadReply { endpoint: endpoint.into(), method: "GetTableStatus".into(), reason: e.to_string() }
        })
    }

    /// One partition's status, `None` when it is not loaded there.
    pub async fn partition_status(
        &self,
        endpoint: &str,
        tid: u32,
        pid: u32,
    ) -> Result<Option<TableStatus>, TabletError> {
        let reply = self.call(endpoint, "GetTableStatus", json!({"tid": tid, "pid": pid})).await?;
        let list: Vec<TableStatus> =
            serde_json::from_value(reply.get("all_table_status").cloned().unwrap_or(json!([]))).map_err(|e| {
                TabletError::BadReply {
                    endpoint: endpoint.into(),
                    method: "GetTableStatus".into(),
                    reason: e.to_string(),
                }
            })?;
        Ok(list.into_iter().find(|s| s.tid == tid && s.pid == pid))
    }

    /// LoadTable as leader (recover data: the freshest replica is loaded first, C§6 bug 1).
    pub async fn load_table_as_leader(
        &self,
        endpoint: &str,
        db: &str,
        name: &str,
        tid: u32,
        pid: u32,
    ) -> Result<(), TabletError> {
        let meta =
            json!({"name": name, "db": db, "tid": tid, "pid": pid, "mode": "kTableLeader", "storage_mode": "kMemory"});
        self.call(endpoint, "LoadTable", json!({"table_meta": meta})).await.map(|_| ())
    }

    /// GetTermPair (C§2.4): whether the partition is loaded, its role, term and offset.
    pub async fn term_pair(&self, endpoint: &str, tid: u32, pid: u32) -> Result<TermPair, TabletError> {
        let reply = self.call(endpoint, "GetTermPair", json!({"tid": tid, "pid": pid})).await?;
        serde_json::from_value(reply).map_err(|e| TabletError::BadReply {
            endpoint: endpoint.into(),
            method: "GetTermPair".into(),
            reason: e.to_string(),
        })
    }

    /// ChangeRole (C§2.4) to follower: the replica refuses writes from now on (code 103 "table
    /// is follower") and stops replicating to its followers (the tablet drops its replicate
    /// nodes). Code 0 "table is follower" when it already is one.
    pub async fn demote(&self, endpoint: &str, tid: u32, pid: u32) -> Result<(), TabletError> {
        let body = json!({"tid": tid, "pid": pid, "mode": "kTableFollower", "term": 0});
        self.call(endpoint, "ChangeRole", body).await.map(|_| ())
    }

    /// ChangeRole (C§2.4) to leader with `term`, replicating to `followers`. Code 102 "table is
    /// leader" when it already leads.
    pub async fn promote(
        &self,
        endpoint: &str,
        tid: u32,
        pid: u32,
        term: u64,
        followers: &[String],
    ) -> Result<(), TabletError> {
        let body = json!({"tid": tid, "pid": pid, "mode": "kTableLeader", "term": term, "replicas": followers});
        self.call(endpoint, "ChangeRole", body).await.map(|_| ())
    }

    /// The running version (`GET /version`, C§1.4).
    pub async fn version(&self, endpoint: &str) -> Result<String, RpcError> {
        Ok(self.rpc.get_text(endpoint, "/version").await?.trim().to_string())
    }
}
