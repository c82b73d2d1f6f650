//! ZooKeeper access for discovery and for the tool's own bookkeeping.
//!
//! Paths that do not start with `/` are relative to the cluster's `zk_root_path`
//! (`leader` → `/openmldb/leader`, C§1.1). The connection is opened on first use, with digest
//! auth when `zk_cert` is set, and reopened after the session expires.

use std::time::Duration;

use tokio::sync::Mutex;
use zookeeper_client as zkc;

use crate::config::ZkSettings;

#[derive(Debug, thiserror::Error)]
pub enum ZkError {
    #[error(
        "cannot reach ZooKeeper at {cluster} (gave up after {waited:.1?}): {reason}. Check that ZooKeeper is \
         running and that zk_cluster in the cluster config is right"
    )]
    Unreachable { cluster: String, waited: Duration, reason: String },
    #[error("ZooKeeper node {path} does not exist")]
    NoNode { path: String },
    #[error("ZooKeeper node {path} already exists")]
    NodeExists { path: String },
    #[error("ZooKeeper refused access to {path}: set zk_cert in the cluster config to the cluster's --zk_cert")]
    NoAuth { path: String },
    #[error("ZooKeeper node {path} has children; delete them first")]
    NotEmpty { path: String },
    #[error("ZooKeeper {operation} {path} failed: {source}")]
    Other {
        operation: &'static str,
        path: String,
        #[source]
        source: zkc::Error,
    },
}

/// Metadata of a node, as `zk::stat` shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NodeStat {
    pub version: i32,
    pub children: i32,
    pub data_length: i32,
    /// Session id of the owner for ephemeral nodes, 0 for persistent ones.
    pub ephemeral_owner: i64,
    pub ctime_ms: i64,
    pub mtime_ms: i64,
}

impl From<&zkc::Stat> for NodeStat {
    fn from(s: &zkc::Stat) -> Self {
        NodeStat {
            version: s.version,
            children: s.num_children,
            data_length: s.data_length,
            ephemeral_owner: s.ephemeral_owner,
            ctime_ms: s.ctime,
            mtime_ms: s.mtime,
        }
    }
}

/// How to create a node.
#[derive(Debug, Clone, Copy, Default)]
pub struct CreateFlags {
    pub ephemeral: bool,
    pub sequential: bool,
}

/// A lazily connected ZooKeeper client bound to one cluster's settings.
pub struct Zk {
    settings: ZkSettings,
    client: Mutex<Option<zkc::Client>>,
    /// How many sessions this client has opened: it changes when an expired session was
    /// replaced, and with it every ephemeral node of the old session is gone.
    sessions: std::sync::atomic::AtomicU64,
}

impl Zk {
    pub fn new(settings: ZkSettings) -> Self {
        Zk { settings, client: Mutex::new(None), sessions: std::sync::atomic::AtomicU64::new(0) }
    }

    pub fn settings(&self) -> &ZkSettings {
        &self.settings
    }

    /// Absolute path for `path`, relative ones taken under the root path.
    pub fn resolve(&self, path: &str) -> String {
        resolve_path(&self.settings.root_path, path)
    }

    async fn client(&self) -> Result<zkc::Client, ZkError> {
        let mut slot = self.client.lock().await;
        if let Some(client) = slot.as_ref() {
            if !matches!(
                client.state(),
                zkc::SessionState::Expired | zkc::SessionState::Closed | zkc::SessionState::AuthFailed
            ) {
                return Ok(client.clone());
            }
        }
        let s = &self.settings;
        let mut connector =
            zkc::Client::connector().with_session_timeout(s.session_timeout).with_connection_timeout(s.connect_timeout);
        if let Some(cert) = &s.cert {
            connector = connector.with_auth("digest", cert.expose().as_bytes());
        }
        let started = std::time::Instant::now();
        let unreachable =
            |reason: String| ZkError::Unreachable { cluster: s.cluster.clone(), waited: started.elapsed(), reason };
        let client = tokio::time::timeout(s.connect_timeout + Duration::from_secs(1), connector.connect(&s.cluster))
            .await
            .map_err(|_| unreachable("no answer".into()))?
            .map_err(|e| unreachable(e.to_string()))?;
        *slot = Some(client.clone());
        self.sessions.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(client)
    }

    /// Connects, or replaces an expired session; nothing is sent when the session is alive.
    pub async fn connect(&self) -> Result<(), ZkError> {
        self.client().await.map(|_| ())
    }

    /// The number of the current session (1 for the first): ephemeral nodes created under an
    /// earlier number are gone.
    pub fn session_number(&self) -> u64 {
        self.sessions.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Runs `op` on the client; when the session expired or the connection broke under it,
    /// once more on a new session (ZooKeeper back after an outage). For requests that are the
    /// same when applied twice: reads, set, delete.
    async fn retried<T, F, Fut>(&self, mut op: F) -> Result<T, ZkError>
    where
        F: FnMut(zkc::Client) -> Fut,
        Fut: std::future::Future<Output = Result<T, ZkError>>,
    {
        match op(self.client().await?).await {
            Err(ZkError::Other {
                source: zkc::Error::SessionExpired | zkc::Error::ConnectionLoss | zkc::Error::ClientClosed,
                ..
            }) => op(self.client().await?).await,
            result => result,
        }
    }

    fn map_err<'a>(operation: &'static str, path: &'a str) -> impl FnOnce(zkc::Error) -> ZkError + 'a {
        move |e| match e {
            zkc::Error::NoNode => ZkError::NoNode { path: path.to_string() },
            zkc::Error::NodeExists => ZkError::NodeExists { path: path.to_string() },
            zkc::Error::NoAuth => ZkError::NoAuth { path: path.to_string() },
            zkc::Error::NotEmpty => ZkError::NotEmpty { path: path.to_string() },
            source => ZkError::Other { operation, path: path.to_string(), source },
        }
    }

    /// Children of `path`, sorted as OpenMLDB sorts them (C§1.2).
    pub async fn children(&self, path: &str) -> Result<Vec<String>, ZkError> {
        let path = self.resolve(path);
        let mut children = self
            .retried(|client| {
                let path = path.clone();
                async move { client.list_children(&path).await.map_err(Self::map_err("list", &path)) }
            })
            .await?;
        children.sort();
        Ok(children)
    }

    /// Data of `path`.
    pub async fn get(&self, path: &str) -> Result<Vec<u8>, ZkError> {
        let path = self.resolve(path);
        let (data, _) = self
            .retried(|client| {
                let path = path.clone();
                async move { client.get_data(&path).await.map_err(Self::map_err("get", &path)) }
            })
            .await?;
        Ok(data)
    }

    /// Metadata of `path`, or `None` when it does not exist.
    pub async fn stat(&self, path: &str) -> Result<Option<NodeStat>, ZkError> {
        let path = self.resolve(path);
        let stat = self
            .retried(|client| {
                let path = path.clone();
                async move { client.check_stat(&path).await.map_err(Self::map_err("stat", &path)) }
            })
            .await?;
        Ok(stat.as_ref().map(NodeStat::from))
    }

    /// Creates `path` (parents too, persistent) and returns the path created (with its sequence
    /// number for sequential nodes).
    pub async fn create(&self, path: &str, data: &[u8], flags: CreateFlags) -> Result<String, ZkError> {
        let path = self.resolve(path);
        let client = self.client().await?;
        let acls = if self.settings.cert.is_some() { zkc::Acls::creator_all() } else { zkc::Acls::anyone_all() };
        if let Some((parent, _)) = path.rsplit_once('/') {
            if !parent.is_empty() {
                let options = zkc::CreateMode::Persistent.with_acls(acls);
                match client.mkdir(parent, &options).await {
                    Ok(()) | Err(zkc::Error::NodeExists) => {}
                    Err(e) => return Err(Self::map_err("create", parent)(e)),
                }
            }
        }
        let mode = match (flags.ephemeral, flags.sequential) {
            (false, false) => zkc::CreateMode::Persistent,
            (false, true) => zkc::CreateMode::PersistentSequential,
            (true, false) => zkc::CreateMode::Ephemeral,
            (true, true) => zkc::CreateMode::EphemeralSequential,
        };
        let (_, sequence) =
            client.create(&path, data, &mode.with_acls(acls)).await.map_err(Self::map_err("create", &path))?;
        Ok(if flags.sequential { format!("{path}{sequence}") } else { path })
    }

    /// Replaces the data of `path`; returns the new version.
    pub async fn set(&self, path: &str, data: &[u8]) -> Result<i32, ZkError> {
        let path = self.resolve(path);
        let stat = self
            .retried(|client| {
                let path = path.clone();
                async move { client.set_data(&path, data, None).await.map_err(Self::map_err("set", &path)) }
            })
            .await?;
        Ok(stat.version)
    }

    /// Deletes `path` (which must have no children).
    pub async fn delete(&self, path: &str) -> Result<(), ZkError> {
        let path = self.resolve(path);
        self.retried(|client| {
            let path = path.clone();
            async move { client.delete(&path, None).await.map_err(Self::map_err("delete", &path)) }
        })
        .await
    }
}

/// Joins a relative path to the root path; absolute paths are kept.
pub fn resolve_path(root: &str, path: &str) -> String {
    if path.starts_with('/') {
        return path.to_string();
    }
    let root = root.trim_end_matches('/');
    let path = path.trim_end_matches('/');
    if path.is_empty() {
        return if root.is_empty() { "/".into() } else { root.to_string() };
    }
    format!("{root}/{path}")
}

#[cfg(test)]
mod tests {
    use super::resolve_path;

    #[test]
    fn relative_paths_live_under_root_c1_1() {
        assert_eq!(resolve_path("/openmldb", "leader"), "/openmldb/leader");
        assert_eq!(resolve_path("/openmldb", "/zookeeper"), "/zookeeper");
        assert_eq!(resolve_path("/openmldb", ""), "/openmldb");
        assert_eq!(resolve_path("/", "nodes"), "/nodes");
    }
}
