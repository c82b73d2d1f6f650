//! A data client that routes like an OpenMLDB SDK: it finds the nameserver leader in
//! ZooKeeper (C§1.2), reads every table's partitions from `ShowTable`, sends each key to the
//! leader of its partition (the meta with `is_leader && is_alive`, C§3.6), and refreshes its
//! routing when `<root>/table/notify` changes (a ZooKeeper watch, C§1.1) or after a failed
//! call, as the SDK's `RefreshCatalog` does.
//!
//! Keys go to partition `hash64(key) % partition_num`, OpenMLDB's MurmurHash64A with seed
//! `0xe17a1465` made non-negative (`src/base/hash.h`, `src/catalog/sdk_catalog.cc`), so a key
//! lands on the same pid as with the real SDK. Rows are written with the key as the only
//! dimension (`idx` 0) and the value as a string; there is no schema encoding.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::sync::RwLock;
use zookeeper_client as zkc;

use crate::cluster::zk::{Zk, ZkError};
use crate::config::{Secret, ZkSettings};
use crate::sim::http::{self, CallError, ConnectionPool};
use crate::sim::proto::TableInfo;

/// Databases that hold OpenMLDB's own tables; `ShowDatabase` hides them (C§2.3).
pub const INTERNAL_DATABASES: &[&str] = &["__INTERNAL_DB", "__PRE_AGG_DB", "INFORMATION_SCHEMA"];

/// How long one call to a tablet or the nameserver may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);
/// After a failed call the routing is re-read at most this often (a notify change always
/// triggers a refresh).
const ERROR_REFRESH_INTERVAL: Duration = Duration::from_millis(100);

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(transparent)]
    Zk(#[from] ZkError),
    #[error("no nameserver leader registered under {root}/leader")]
    NoNameserver { root: String },
    #[error("nameserver {endpoint}: {method} answered code {code}: {msg}")]
    Nameserver { endpoint: String, method: &'static str, code: i64, msg: String },
    #[error("table {db}.{name} does not exist")]
    TableNotFound { db: String, name: String },
    #[error("table {db}.{name} partition {pid} has no alive leader")]
    NoLeader { db: String, name: String, pid: u32 },
    #[error("tablet {endpoint}: {method} of {db}.{name} pid {pid} answered code {code}: {msg}")]
    Tablet { endpoint: String, method: &'static str, db: String, name: String, pid: u32, code: i64, msg: String },
    #[error(transparent)]
    Call(#[from] CallError),
}

/// Where to find the cluster.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    pub zk_cluster: String,
    pub zk_root_path: String,
    /// `user:password` for ZooKeeper digest auth, the cluster's `--zk_cert`.
    pub zk_cert: Option<String>,
}

impl ClientOptions {
    fn zk_settings(&self) -> ZkSettings {
        ZkSettings {
            cluster: self.zk_cluster.clone(),
            root_path: self.zk_root_path.clone(),
            cert: self.zk_cert.clone().map(Secret::new),
            session_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
        }
    }
}

/// A user table as the client sees it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct TableName {
    pub db: String,
    pub name: String,
}

impl std::fmt::Display for TableName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.db, self.name)
    }
}

/// One table's routing: its id and the alive leader of each partition.
#[derive(Debug, Clone)]
pub struct TableRoute {
    pub tid: u32,
    pub partition_num: u32,
    /// Indexed by pid; `None` when the partition has no alive leader.
    pub leaders: Vec<Option<String>>,
}

/// What an acknowledged write went to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteAck {
    pub pid: u32,
    pub endpoint: String,
}

/// A row read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub key: String,
    pub ts: u64,
    pub value: String,
}

#[derive(Debug, Default)]
struct Routing {
    nameserver: Option<String>,
    tables: HashMap<TableName, TableRoute>,
    refreshed: Option<Instant>,
}

/// A routing data client; cheap to share behind an `Arc`.
pub struct Client {
    options: ClientOptions,
    zk: Zk,
    pool: ConnectionPool,
    routing: RwLock<Routing>,
    /// Set by the `table/notify` watch: the routing must be re-read.
    notified: Arc<AtomicBool>,
    /// Set after a failed call: the routing should be re-read soon.
    failed: AtomicBool,
    watch: tokio::task::JoinHandle<()>,
}

impl Drop for Client {
    fn drop(&mut self) {
        self.watch.abort();
    }
}

/// OpenMLDB's `hash64`: MurmurHash64A with seed `0xe17a1465`, as a non-negative i64
/// (`src/base/hash.h`).
pub fn hash64(key: &[u8]) -> i64 {
    const M: u64 = 0xc6a4_a793_5bd1_e995;
    const R: u32 = 47;
    let seed: u64 = 0xe17a_1465;
    let mut h: u64 = seed ^ (key.len() as u64).wrapping_mul(M);
    let mut chunks = key.chunks_exact(8);
    for chunk in &mut chunks {
        let mut k = u64::from_le_bytes(chunk.try_into().unwrap_or([0; 8]));
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h ^= k;
        h = h.wrapping_mul(M);
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        for (i, byte) in tail.iter().enumerate() {
            h ^= (*byte as u64) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> R;
    h = h.wrapping_mul(M);
    h ^= h >> R;
    // "convert to signed integer as same as java client"
    let signed = h as i64;
    if signed < 0 {
        signed.wrapping_neg()
    } else {
        signed
    }
}

/// The partition of `key` in a table of `partition_num` partitions, as the SDK computes it.
pub fn partition_of(key: &str, partition_num: u32) -> u32 {
    if partition_num == 0 {
        return 0;
    }
    (hash64(key.as_bytes()).rem_euclid(partition_num as i64)) as u32
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

impl Client {
    /// Connects to ZooKeeper, reads the routing once and starts watching `table/notify`.
    pub async fn connect(options: ClientOptions) -> Result<Client, ClientError> {
        let zk = Zk::new(options.zk_settings());
        let notified = Arc::new(AtomicBool::new(false));
        let watch = tokio::spawn(watch_notify(options.clone(), notified.clone()));
        let client = Client {
            options,
            zk,
            pool: ConnectionPool::new(),
            routing: RwLock::new(Routing::default()),
            notified,
            failed: AtomicBool::new(false),
            watch,
        };
        client.refresh().await?;
        Ok(client)
    }

    pub fn options(&self) -> &ClientOptions {
        &self.options
    }

    /// The nameserver leader: value of the first sorted child of `<root>/leader` (C§1.2).
    async fn discover_nameserver(&self) -> Result<String, ClientError> {
        let children = self.zk.children("leader").await?;
        let no_leader = || ClientError::NoNameserver { root: self.options.zk_root_path.clone() };
        let first = children.first().ok_or_else(no_leader)?;
        let value = self.zk.get(&format!("leader/{first}")).await?;
        let endpoint = String::from_utf8_lossy(&value).trim().to_string();
        if endpoint.is_empty() {
            return Err(no_leader());
        }
        Ok(self.address_of(&endpoint).await)
    }

    /// Calls a nameserver method, re-discovering the leader once on code 300 or a failed call.
    pub async fn nameserver(&self, method: &'static str, body: &Value) -> Result<Value, ClientError> {
        let cached = self.routing.read().await.nameserver.clone();
        let mut endpoint = match cached {
            Some(endpoint) => endpoint,
            None => self.discover_nameserver().await?,
        };
        for attempt in 0..2 {
            let path = format!("/NameServer/{method}");
            let result = self.pool.call(&endpoint, &path, body, CALL_TIMEOUT).await;
            let retry = match &result {
                Ok(reply) => http::reply_code(reply) == 300,
                Err(_) => true,
            };
            if !retry || attempt == 1 {
                let reply = result?;
                let code = http::reply_code(&reply);
                if code != 0 {
                    return Err(ClientError::Nameserver { endpoint, method, code, msg: http::reply_msg(&reply) });
                }
                self.routing.write().await.nameserver = Some(endpoint);
                return Ok(reply);
            }
            endpoint = self.discover_nameserver().await?;
        }
        unreachable!("the loop returns on its second attempt")
    }

    /// Re-reads every table's partitions from the nameserver.
    pub async fn refresh(&self) -> Result<(), ClientError> {
        // Cleared first: a notify that arrives while reading triggers another refresh.
        self.notified.store(false, Ordering::SeqCst);
        self.failed.store(false, Ordering::SeqCst);
        let reply = self.nameserver("ShowTable", &json!({ "show_all": true })).await;
        let reply = match reply {
            Ok(reply) => reply,
            Err(e) => {
                self.failed.store(true, Ordering::SeqCst);
                return Err(e);
            }
        };
        let infos: Vec<TableInfo> = reply
            .get("table_info")
            .and_then(Value::as_array)
            .map(|items| items.iter().filter_map(|v| serde_json::from_value(v.clone()).ok()).collect())
            .unwrap_or_default();
        let mut tables = HashMap::new();
        let mut addresses: HashMap<String, String> = HashMap::new();
        for info in infos {
            let partition_num = info.partition_num.max(info.table_partition.len() as u32);
            let mut leaders = vec![None; partition_num as usize];
            for partition in &info.table_partition {
                if let Some(slot) = leaders.get_mut(partition.pid as usize) {
                    let Some(leader) = partition.alive_leader().map(|m| m.endpoint.clone()) else { continue };
                    if !addresses.contains_key(&leader) {
                        let address = self.address_of(&leader).await;
                        addresses.insert(leader.clone(), address);
                    }
                    *slot = addresses.get(&leader).cloned();
                }
            }
            tables.insert(
                TableName { db: info.db.clone(), name: info.name.clone() },
                TableRoute { tid: info.tid, partition_num, leaders },
            );
        }
        let mut routing = self.routing.write().await;
        routing.tables = tables;
        routing.refreshed = Some(Instant::now());
        Ok(())
    }

    /// Where to reach the server the nameserver calls `endpoint`: on a `use_name` cluster,
    /// `map/sdkendpoints/<name>`, else `map/names/<name>`, as the SDK looks it up
    /// (`GetRealEndpointFromZk`, src/sdk/db_sdk.cc:523-543); the endpoint itself otherwise.
    async fn address_of(&self, endpoint: &str) -> String {
        for dir in ["map/sdkendpoints", "map/names"] {
            if let Ok(value) = self.zk.get(&format!("{dir}/{endpoint}")).await {
                let value = String::from_utf8_lossy(&value).trim().to_string();
                if !value.is_empty() {
                    return value;
                }
            }
        }
        endpoint.to_string()
    }

    /// Refreshes when the notify node changed, or after a failure once the last refresh is
    /// old enough.
    async fn refresh_if_needed(&self) {
        let notified = self.notified.load(Ordering::SeqCst);
        let failed = self.failed.load(Ordering::SeqCst);
        if !notified && !failed {
            return;
        }
        let recent = self.routing.read().await.refreshed.is_some_and(|t| t.elapsed() < ERROR_REFRESH_INTERVAL);
        if notified || !recent {
            let _ = self.refresh().await;
        }
    }

    /// User tables (outside the internal databases), sorted.
    pub async fn user_tables(&self) -> Vec<TableName> {
        self.refresh_if_needed().await;
        let routing = self.routing.read().await;
        let mut tables: Vec<TableName> =
            routing.tables.keys().filter(|t| !INTERNAL_DATABASES.contains(&t.db.as_str())).cloned().collect();
        tables.sort();
        tables
    }

    /// The current routing of one table.
    pub async fn route(&self, table: &TableName) -> Result<TableRoute, ClientError> {
        self.refresh_if_needed().await;
        if let Some(route) = self.routing.read().await.tables.get(table) {
            return Ok(route.clone());
        }
        self.refresh().await?;
        self.routing
            .read()
            .await
            .tables
            .get(table)
            .cloned()
            .ok_or_else(|| ClientError::TableNotFound { db: table.db.clone(), name: table.name.clone() })
    }

    /// The pid and leader endpoint a key is sent to.
    pub async fn locate(&self, table: &TableName, key: &str) -> Result<(u32, u32, Option<String>), ClientError> {
        let route = self.route(table).await?;
        let pid = partition_of(key, route.partition_num);
        Ok((route.tid, pid, route.leaders.get(pid as usize).cloned().flatten()))
    }

    async fn call_leader(
        &self,
        table: &TableName,
        key: &str,
        method: &'static str,
        body: impl FnOnce(u32, u32) -> Value,
    ) -> Result<(u32, String, Value), ClientError> {
        let (tid, pid, leader) = self.locate(table, key).await?;
        let Some(endpoint) = leader else {
            self.failed.store(true, Ordering::SeqCst);
            return Err(ClientError::NoLeader { db: table.db.clone(), name: table.name.clone(), pid });
        };
        let reply =
            match self.pool.call(&endpoint, &format!("/TabletServer/{method}"), &body(tid, pid), CALL_TIMEOUT).await {
                Ok(reply) => reply,
                Err(e) => {
                    self.failed.store(true, Ordering::SeqCst);
                    return Err(e.into());
                }
            };
        Ok((pid, endpoint, reply))
    }

    fn tablet_error(
        &self,
        table: &TableName,
        endpoint: String,
        method: &'static str,
        pid: u32,
        reply: &Value,
    ) -> ClientError {
        ClientError::Tablet {
            endpoint,
            method,
            db: table.db.clone(),
            name: table.name.clone(),
            pid,
            code: http::reply_code(reply),
            msg: http::reply_msg(reply),
        }
    }

    /// Writes one row (`Put`, key as dimension 0, time = now) to the key's partition leader.
    pub async fn put(&self, table: &TableName, key: &str, value: &str) -> Result<WriteAck, ClientError> {
        let (pid, endpoint, reply) = self
            .call_leader(table, key, "Put", |tid, pid| {
                json!({ "tid": tid, "pid": pid, "pk": key, "time": now_ms(), "value": value,
                        "dimensions": [{ "key": key, "idx": 0 }] })
            })
            .await?;
        if http::reply_code(&reply) != 0 {
            self.failed.store(true, Ordering::SeqCst);
            return Err(self.tablet_error(table, endpoint, "Put", pid, &reply));
        }
        Ok(WriteAck { pid, endpoint })
    }

    /// Reads the newest row of `key` from its partition leader; `None` when the key is not
    /// there (code 109).
    pub async fn get(&self, table: &TableName, key: &str) -> Result<Option<Row>, ClientError> {
        let (pid, endpoint, reply) =
            self.call_leader(table, key, "Get", |tid, pid| json!({ "tid": tid, "pid": pid, "key": key })).await?;
        match http::reply_code(&reply) {
            0 => Ok(Some(Row {
                key: key.to_string(),
                ts: reply.get("ts").and_then(Value::as_u64).unwrap_or(0),
                value: reply.get("value").and_then(Value::as_str).unwrap_or_default().to_string(),
            })),
            109 => Ok(None),
            _ => {
                self.failed.store(true, Ordering::SeqCst);
                Err(self.tablet_error(table, endpoint, "Get", pid, &reply))
            }
        }
    }

    /// Reads up to `limit` rows of `key` (0: all), newest first.
    pub async fn scan(&self, table: &TableName, key: &str, limit: u32) -> Result<Vec<Row>, ClientError> {
        let (pid, endpoint, reply) = self
            .call_leader(table, key, "Scan", |tid, pid| json!({ "tid": tid, "pid": pid, "pk": key, "limit": limit }))
            .await?;
        if http::reply_code(&reply) != 0 {
            self.failed.store(true, Ordering::SeqCst);
            return Err(self.tablet_error(table, endpoint, "Scan", pid, &reply));
        }
        Ok(reply
            .get("pairs")
            .and_then(Value::as_array)
            .map(|pairs| {
                pairs
                    .iter()
                    .map(|p| Row {
                        key: key.to_string(),
                        ts: p.get("ts").and_then(Value::as_u64).unwrap_or(0),
                        value: p.get("value").and_then(Value::as_str).unwrap_or_default().to_string(),
                    })
                    .collect()
            })
            .unwrap_or_default())
    }
}

/// Watches `<root>/table/notify` and flags every change (C§1.1: the NS bumps it on each
/// table-metadata change). Reconnects after a lost session.
async fn watch_notify(options: ClientOptions, notified: Arc<AtomicBool>) {
    let path = crate::cluster::zk::resolve_path(&options.zk_root_path, "table/notify");
    loop {
        let mut connector = zkc::Client::connector().with_session_timeout(Duration::from_secs(10));
        if let Some(cert) = &options.zk_cert {
            connector = connector.with_auth("digest", cert.as_bytes());
        }
        if let Ok(Ok(client)) =
            tokio::time::timeout(Duration::from_secs(5), connector.connect(&options.zk_cluster)).await
        {
            while let Ok((_, watcher)) = client.check_and_watch_stat(&path).await {
                watcher.changed().await;
                notified.store(true, Ordering::SeqCst);
            }
        }
        notified.store(true, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values printed by OpenMLDB's own `src/base/hash.h` (`hash64`, and `% 8` as the SDK
    /// computes a pid), compiled with g++.
    #[test]
    fn hash64_matches_openmldb() {
        let golden: &[(&str, i64, u32)] = &[
            ("", 7207201254813729732, 4),
            ("a", 584566915021039271, 7),
            ("key1", 4010863117771081158, 6),
            ("12345678", 1123327355903392148, 4),
            ("123456789abcdefgh", 9136034272948241383, 7),
            ("card0|17", 688752405915044585, 1),
        ];
        for (key, hash, pid) in golden {
            assert_eq!(hash64(key.as_bytes()), *hash, "{key:?}");
            assert_eq!(partition_of(key, 8), *pid, "{key:?}");
        }
    }
}
