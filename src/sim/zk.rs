//! ZooKeeper access shared by the simulated nameserver and tablet (C§1).
//!
//! Sessions are *detached*: dropping the client (process exit, in-process shutdown) does not
//! close the session, because real OpenMLDB never calls `zookeeper_close`, so its ephemeral
//! nodes linger until the session times out (C§1.3, C§3.8).

use std::time::Duration;

use zookeeper_client as zk;

use super::flags::SimFlags;

#[derive(Debug, thiserror::Error)]
pub enum ZkError {
    #[error("cannot connect to ZooKeeper {cluster}: {source}")]
    Connect {
        cluster: String,
        #[source]
        source: zk::Error,
    },
    #[error("ZooKeeper {op} {path}: {source}")]
    Op {
        op: &'static str,
        path: String,
        #[source]
        source: zk::Error,
    },
    #[error("ZooKeeper node {path} holds {value:?}, not a number")]
    NotANumber { path: String, value: String },
}

/// The node paths of C§1.1 under one root.
#[derive(Debug, Clone)]
pub struct ZkPaths {
    pub root: String,
}

impl ZkPaths {
    pub fn new(root: &str) -> Self {
        let root = root.trim_end_matches('/');
        ZkPaths { root: if root.is_empty() { String::new() } else { root.to_string() } }
    }
    pub fn leader(&self) -> String {
        format!("{}/leader", self.root)
    }
    pub fn nodes(&self) -> String {
        format!("{}/nodes", self.root)
    }
    pub fn node(&self, endpoint: &str) -> String {
        format!("{}/nodes/{endpoint}", self.root)
    }
    /// `map/names`: server name → real endpoint, with `--use_name` (C§1.1).
    pub fn names(&self) -> String {
        format!("{}/map/names", self.root)
    }
    pub fn name(&self, name: &str) -> String {
        format!("{}/map/names/{name}", self.root)
    }
    pub fn auto_failover(&self) -> String {
        format!("{}/config/auto_failover", self.root)
    }
    pub fn table_index(&self) -> String {
        format!("{}/table/table_index", self.root)
    }
    pub fn term(&self) -> String {
        format!("{}/table/term", self.root)
    }
    pub fn table_notify(&self) -> String {
        format!("{}/table/notify", self.root)
    }
    pub fn global_variable_notify(&self) -> String {
        format!("{}/notify/global_variable", self.root)
    }
    pub fn db_table_data(&self) -> String {
        format!("{}/table/db_table_data", self.root)
    }
    pub fn table_data(&self, tid: u32) -> String {
        format!("{}/table/db_table_data/{tid}", self.root)
    }
    pub fn dbs(&self) -> String {
        format!("{}/db", self.root)
    }
    pub fn db(&self, name: &str) -> String {
        format!("{}/db/{name}", self.root)
    }
    pub fn op_index(&self) -> String {
        format!("{}/op/op_index", self.root)
    }
    pub fn op_data_dir(&self) -> String {
        format!("{}/op/op_data", self.root)
    }
    pub fn op_data(&self, op_id: u64) -> String {
        format!("{}/op/op_data/{op_id}", self.root)
    }
}

/// A ZooKeeper session with the ACL policy of `--zk_cert`.
#[derive(Debug, Clone)]
pub struct Zk {
    client: zk::Client,
    /// With `--zk_cert`, nodes are created `CREATOR_ALL_ACL` (C§1.1 "ACL").
    secured: bool,
}

fn op_err<'a>(op: &'static str, path: &'a str) -> impl FnOnce(zk::Error) -> ZkError + 'a {
    move |source| ZkError::Op { op, path: path.to_string(), source }
}

impl Zk {
    /// Opens a detached session with the timeout and digest credential of the flags.
    pub async fn connect(flags: &SimFlags) -> Result<Zk, ZkError> {
        let mut connector = zk::Client::connector()
            .with_session_timeout(flags.zk_session_timeout)
            .with_connection_timeout(Duration::from_secs(5))
            .with_detached();
        if let Some(cert) = &flags.zk_cert {
            connector = connector.with_auth("digest", cert.as_bytes());
        }
        let client = connector
            .connect(&flags.zk_cluster)
            .await
            .map_err(|source| ZkError::Connect { cluster: flags.zk_cluster.clone(), source })?;
        Ok(Zk { client, secured: flags.zk_cert.is_some() })
    }

    pub fn client(&self) -> &zk::Client {
        &self.client
    }

    /// True once the session is expired or closed: the owner must open a new one.
    pub fn is_dead(&self) -> bool {
        matches!(
            self.client.state(),
            zk::SessionState::Expired | zk::SessionState::Closed | zk::SessionState::AuthFailed
        )
    }

    fn acls(&self) -> zk::Acls<'static> {
        if self.secured {
            zk::Acls::creator_all()
        } else {
            zk::Acls::anyone_all()
        }
    }

    /// Creates `path` and its parents (persistent, empty) when missing.
    pub async fn mkdir(&self, path: &str) -> Result<(), ZkError> {
        let options = zk::CreateMode::Persistent.with_acls(self.acls());
        match self.client.mkdir(path, &options).await {
            Ok(()) | Err(zk::Error::NodeExists) => Ok(()),
            Err(source) => Err(ZkError::Op { op: "mkdir", path: path.to_string(), source }),
        }
    }

    fn parent(path: &str) -> Option<&str> {
        path.rsplit_once('/').map(|(p, _)| p).filter(|p| !p.is_empty())
    }

    /// Creates a node (parents made persistent as needed, like `ZkClient::CreateNode`).
    pub async fn create(&self, path: &str, value: &str, mode: zk::CreateMode) -> Result<String, zk::Error> {
        self.create_bytes(path, value.as_bytes(), mode).await
    }

    async fn create_bytes(&self, path: &str, value: &[u8], mode: zk::CreateMode) -> Result<String, zk::Error> {
        if let Some(parent) = Self::parent(path) {
            let options = zk::CreateMode::Persistent.with_acls(self.acls());
            match self.client.mkdir(parent, &options).await {
                Ok(()) | Err(zk::Error::NodeExists) => {}
                Err(e) => return Err(e),
            }
        }
        let options = mode.with_acls(self.acls());
        let (_stat, sequence) = self.client.create(path, value, &options).await?;
        Ok(if matches!(mode, zk::CreateMode::EphemeralSequential | zk::CreateMode::PersistentSequential) {
            format!("{path}{sequence}")
        } else {
            path.to_string()
        })
    }

    /// Creates a persistent node with `value` unless it exists; true when created.
    pub async fn create_if_missing(&self, path: &str, value: &str) -> Result<bool, ZkError> {
        match self.create(path, value, zk::CreateMode::Persistent).await {
            Ok(_) => Ok(true),
            Err(zk::Error::NodeExists) => Ok(false),
            Err(source) => Err(ZkError::Op { op: "create", path: path.to_string(), source }),
        }
    }

    /// Writes `value`, creating the node when missing.
    pub async fn put(&self, path: &str, value: &str) -> Result<(), ZkError> {
        self.put_bytes(path, value.as_bytes()).await
    }

    /// Writes `value` (binary, e.g. a protobuf message), creating the node when missing.
    pub async fn put_bytes(&self, path: &str, value: &[u8]) -> Result<(), ZkError> {
        match self.client.set_data(path, value, None).await {
            Ok(_) => Ok(()),
            Err(zk::Error::NoNode) => match self.create_bytes(path, value, zk::CreateMode::Persistent).await {
                Ok(_) => Ok(()),
                Err(zk::Error::NodeExists) => {
                    self.client.set_data(path, value, None).await.map(|_| ()).map_err(op_err("set", path))
                }
                Err(source) => Err(ZkError::Op { op: "create", path: path.to_string(), source }),
            },
            Err(source) => Err(ZkError::Op { op: "set", path: path.to_string(), source }),
        }
    }

    /// The node's value as text; `None` when the node does not exist.
    pub async fn get(&self, path: &str) -> Result<Option<String>, ZkError> {
        Ok(self.get_bytes(path).await?.map(|data| String::from_utf8_lossy(&data).to_string()))
    }

    /// The node's value; `None` when the node does not exist.
    pub async fn get_bytes(&self, path: &str) -> Result<Option<Vec<u8>>, ZkError> {
        match self.client.get_data(path).await {
            Ok((data, _)) => Ok(Some(data)),
            Err(zk::Error::NoNode) => Ok(None),
            Err(source) => Err(ZkError::Op { op: "get", path: path.to_string(), source }),
        }
    }

    /// Children of `path`, sorted; empty when the node does not exist.
    pub async fn children(&self, path: &str) -> Result<Vec<String>, ZkError> {
        match self.client.list_children(path).await {
            Ok(mut children) => {
                children.sort();
                Ok(children)
            }
            Err(zk::Error::NoNode) => Ok(Vec::new()),
            Err(source) => Err(ZkError::Op { op: "list", path: path.to_string(), source }),
        }
    }

    /// Deletes a node; a missing node is fine.
    pub async fn delete(&self, path: &str) -> Result<(), ZkError> {
        match self.client.delete(path, None).await {
            Ok(()) | Err(zk::Error::NoNode) => Ok(()),
            Err(source) => Err(ZkError::Op { op: "delete", path: path.to_string(), source }),
        }
    }

    /// Adds `by` to a decimal counter node (compare-and-set on the version) and returns the
    /// new value; a missing node counts from `initial`.
    pub async fn add_to_counter(&self, path: &str, by: u64, initial: u64) -> Result<u64, ZkError> {
        loop {
            match self.client.get_data(path).await {
                Ok((data, stat)) => {
                    let text = String::from_utf8_lossy(&data).trim().to_string();
                    let current: u64 = if text.is_empty() {
                        initial
                    } else {
                        text.parse().map_err(|_| ZkError::NotANumber { path: path.to_string(), value: text.clone() })?
                    };
                    let next = current + by;
                    match self.client.set_data(path, next.to_string().as_bytes(), Some(stat.version)).await {
                        Ok(_) => return Ok(next),
                        Err(zk::Error::BadVersion) => continue,
                        Err(source) => return Err(ZkError::Op { op: "set", path: path.to_string(), source }),
                    }
                }
                Err(zk::Error::NoNode) => {
                    self.create_if_missing(path, &initial.to_string()).await?;
                }
                Err(source) => return Err(ZkError::Op { op: "get", path: path.to_string(), source }),
            }
        }
    }
}
