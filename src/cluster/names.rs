//! Server names (`--use_name=true`, C§1.1, O§3): such a cluster's nameserver, ZooKeeper nodes
//! and tablet RPCs know each server by a name (an id kept in `<data_dir>/name.txt`), and
//! `<root>/map/names/<name>` holds its real `ip:port` (`ZkClient::RegisterName`,
//! src/zk/zk_client.cc:202-283). ShowTablet lists names (with `real_endpoint`), ShowTable's
//! replicas are names, the NS leader lock and `nodes/<name>` hold names, and a tablet resolves
//! the names in ChangeRole/AddReplica requests itself (tablet_impl.cc:2137-2142).
//!
//! The tool works with real endpoints everywhere (the cluster config lists `host:port`, and
//! that is what it dials): [`ServerNames`] turns the names the nameserver sends into real
//! endpoints as replies are read, and real endpoints back into names for requests and ZooKeeper
//! paths. On a cluster without names the map is empty and both directions are the identity.
//! A server started with an explicit `--endpoint` registers an empty value
//! (src/cmd/openmldb.cc:105-132); it is known by its endpoint, as without names.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::RwLock;

use super::zk::{Zk, ZkError};

/// How often a lookup that finds nothing may read `map/names` again (a server started for the
/// first time registers its name then).
const RELOAD_AT_MOST_EVERY: Duration = Duration::from_secs(2);

#[derive(Default)]
struct NameMap {
    to_real: HashMap<String, String>,
    to_name: HashMap<String, String>,
    read_at: Option<Instant>,
}

/// The `map/names` of one cluster, read from ZooKeeper on first use.
pub struct ServerNames {
    zk: Arc<Zk>,
    map: RwLock<NameMap>,
}

impl ServerNames {
    pub fn new(zk: Arc<Zk>) -> Self {
        ServerNames { zk, map: RwLock::new(NameMap::default()) }
    }

    /// Reads `map/names` again (no node: a cluster without names).
    async fn reload(&self) -> Result<(), ZkError> {
        let children = match self.zk.children("map/names").await {
            Ok(children) => children,
            Err(ZkError::NoNode { .. }) => Vec::new(),
            Err(e) => return Err(e),
        };
        let mut fresh = NameMap { read_at: Some(Instant::now()), ..NameMap::default() };
        for name in children {
            let real = match self.zk.get(&format!("map/names/{name}")).await {
                Ok(value) => String::from_utf8_lossy(&value).trim().to_string(),
                Err(ZkError::NoNode { .. }) => continue,
                Err(e) => return Err(e),
            };
            if !real.is_empty() && real != name {
                fresh.to_name.insert(real.clone(), name.clone());
                fresh.to_real.insert(name, real);
            }
        }
        *self.map.write().await = fresh;
        Ok(())
    }

    /// Looks `key` up in one direction, reading the map again when it misses and was read long
    /// enough ago. A ZooKeeper error leaves the key as it is (the caller's next call fails
    /// with a clearer error).
    async fn lookup(&self, key: &str, to_real: bool) -> String {
        let pick = |map: &NameMap| if to_real { map.to_real.get(key).cloned() } else { map.to_name.get(key).cloned() };
        {
            let map = self.map.read().await;
            if let Some(found) = pick(&map) {
                return found;
            }
            if map.read_at.is_some_and(|at| at.elapsed() < RELOAD_AT_MOST_EVERY) {
                return key.to_string();
            }
        }
        if let Err(e) = self.reload().await {
            tracing::debug!("cannot read map/names: {e}");
        }
        pick(&*self.map.read().await).unwrap_or_else(|| key.to_string())
    }

    /// The real endpoint of a server the nameserver names `endpoint_or_name`.
    pub async fn real(&self, endpoint_or_name: &str) -> String {
        self.lookup(endpoint_or_name, true).await
    }

    /// The name a server with the real `endpoint` is known by (the endpoint itself without
    /// names).
    pub async fn name(&self, endpoint: &str) -> String {
        self.lookup(endpoint, false).await
    }

    /// Names of several endpoints, in order.
    pub async fn names(&self, endpoints: &[String]) -> Vec<String> {
        let mut names = Vec::with_capacity(endpoints.len());
        for ep in endpoints {
            names.push(self.name(ep).await);
        }
        names
    }

    /// Whether any server of the cluster is known by a name.
    pub async fn in_use(&self) -> bool {
        if self.map.read().await.read_at.is_none() {
            let _ = self.reload().await;
        }
        !self.map.read().await.to_real.is_empty()
    }
}
