//! The OpenMLDB side: topology types, ZooKeeper, the NameServer and TabletServer RPCs, waits,
//! component control, the upgrade operations and the status report. Async, no Rhai in here.
//!
//! - [`topology`]: roles and endpoints (plain types, no I/O).
//! - [`zk`]: ZooKeeper reads (and the journal's writes).
//! - [`rpc`]: the one HTTP+JSON client every call to a server goes through.
//! - [`ns`], [`tablet`]: typed NameServer and TabletServer RPCs.
//! - [`wait`]: a condition plus a timeout, and the waits built on it.
//! - [`component`]: processes on hosts: probing, stop/start, install.
//! - [`upgrade`]: the operations an upgrade is made of, one file each.
//! - [`status`]: what `mldb-upgrade status` reports.

pub mod component;
pub mod names;
pub mod ns;
pub mod rpc;
pub mod status;
pub mod tablet;
pub mod topology;
pub mod upgrade;
pub mod wait;
pub mod zk;

use std::sync::Arc;
use std::time::Duration;

use ns::NsClient;
use rpc::{RpcClient, RpcError};
use tablet::TabletClient;
use topology::Role;
use zk::Zk;

use crate::config::ClusterConfig;

/// Time limit of one RPC to a server.
const RPC_TIMEOUT: Duration = Duration::from_secs(10);
/// Time limit of a version probe: a server that is starting should not hold a wait up.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// The servers of one OpenMLDB cluster as the tool reaches them: the nameserver leader (found in
/// ZooKeeper) and the tablets, over HTTP+JSON (C§2.1).
#[derive(Clone)]
pub struct Cluster {
    pub ns: Arc<NsClient>,
    pub tablets: TabletClient,
    /// For version probes: one attempt, a short timeout.
    probe: RpcClient,
    /// The tablets the cluster config lists, when there is one: a tablet the nameserver still
    /// shows that is not among them was scaled in earlier ([`upgrade::verify`]).
    pub configured_tablets: Option<Vec<String>>,
}

impl Cluster {
    pub fn new(zk: Arc<Zk>, rpc: RpcClient) -> Self {
        let probe = rpc.clone().with_timeout(PROBE_TIMEOUT).with_attempts(1);
        let ns = Arc::new(NsClient::new(zk, rpc.clone()));
        Cluster { tablets: TabletClient::new(rpc.clone(), ns.names().clone()), ns, probe, configured_tablets: None }
    }

    /// The cluster `config` describes, over `zk`, with its credentials (C§2.1).
    pub fn for_config(config: &ClusterConfig, zk: Arc<Zk>) -> Self {
        let mut cluster = Cluster::new(zk, RpcClient::new(config.credentials.as_ref(), RPC_TIMEOUT));
        cluster.configured_tablets = Some(config.components_of(Role::Tablet).map(|c| c.endpoint.to_string()).collect());
        cluster
    }

    pub fn zk(&self) -> &Arc<Zk> {
        self.ns.zk()
    }

    /// The version a running server reports: brpc's built-in `GET /version` for a nameserver,
    /// tablet or apiserver (C§1.4), `GetVersion`'s `taskmanagerVersion` for a TaskManager (O§4.3;
    /// only the active one answers, C§3.8).
    pub async fn running_version(&self, role: Role, endpoint: &str) -> Result<String, RpcError> {
        if role == Role::Taskmanager {
            let (service, method, field) =
                ("openmldb.taskmanager.TaskManagerServer", "GetVersion", "taskmanagerVersion");
            let reply = self.probe.call(endpoint, service, method, &serde_json::json!({})).await?;
            return reply[field].as_str().map(str::to_string).ok_or_else(|| RpcError::Incomplete {
                endpoint: endpoint.to_string(),
                method: method.to_string(),
                field: field.to_string(),
                body: reply.to_string(),
            });
        }
        Ok(self.probe.get_text(endpoint, "/version").await?.trim().to_string())
    }
}
