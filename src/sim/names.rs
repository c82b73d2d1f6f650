//! Server names (`--use_name=true`, C§1.1), as `bin/openmldb` starts with them.
//!
//! * `GetRealEndpoint` (src/cmd/openmldb.cc:105-132): only when `--endpoint` is empty and
//!   `--port` > 0. The real endpoint is `<local ip>:<port>`, and with `--use_name` the server's
//!   endpoint becomes its name, read from `<data_dir>/name.txt` or written there on the first
//!   start (src/base/server_name.h:30-78: a decimal id and a newline). The server binds the real
//!   endpoint. With an explicit `--endpoint`, the endpoint is used as it is.
//! * `RegisterName` (src/zk/zk_client.cc:202-283): a name already used by a nameserver lock or
//!   a tablet node whose `map/names/<name>` holds another endpoint is a duplicate and the process
//!   exits; otherwise the persistent `<root>/map/names/<name>` is set to the real endpoint.
//! * Servers call each other by name and resolve it to the real endpoint: the nameserver from
//!   `map/names` on every `nodes` change (name_server_impl.cc:1096-1195), a tablet from the map
//!   the nameserver pushes (UpdateRealEndpointMap, tablet_impl.cc:5403-5446); an unknown name is
//!   code 155 "name not found in real_ep_map".
//!
//! Simplifications: the local ip is `--sim_local_ip` when given (a sandbox gives each
//! component its own 127.0.0.0/8 address), else what `GetLocalIp` finds (the first address of
//! the host name, src/base/ip.h:28-43). A tablet reads `map/names` itself when it meets a name it
//! does not know, instead of waiting for the nameserver's push.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::Mutex;

use super::zk::{Zk, ZkError, ZkPaths};

#[derive(Debug, thiserror::Error)]
pub enum NameError {
    #[error("cannot read or write {path}: {source}")]
    NameFile {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("fail to get local ip")]
    LocalIp,
    #[error("server name:{0} duplicate")]
    Duplicate(String),
    #[error("{0}")]
    Zk(#[from] ZkError),
}

/// The server's name: the first line of `<data_dir>/name.txt`, written with a new id when
/// missing (`GetNameFromTxt`).
pub fn server_name(data_dir: &Path) -> Result<String, NameError> {
    let path = data_dir.join("name.txt");
    let err = |source| NameError::NameFile { path: path.display().to_string(), source };
    if let Ok(text) = std::fs::read_to_string(&path) {
        return Ok(text.lines().next().unwrap_or_default().to_string());
    }
    std::fs::create_dir_all(data_dir).map_err(err)?;
    let name = next_id().to_string();
    std::fs::write(&path, format!("{name}\n")).map_err(err)?;
    Ok(name)
}

/// `IdGenerator::Next` (src/base/id_generator.h:37-48): microseconds shifted past a 12-bit
/// sequence, always positive.
fn next_id() -> i64 {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let micros =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_micros() as i64).unwrap_or(0);
    let seq = (SEQ.fetch_add(1, Ordering::Relaxed) & 0xFFF) as i64;
    ((micros << 12) | seq).abs()
}

/// `GetLocalIp`: the first address the host name resolves to.
pub fn local_ip() -> Result<String, NameError> {
    let host = nix::unistd::gethostname().map_err(|_| NameError::LocalIp)?;
    let host = host.to_string_lossy();
    use std::net::ToSocketAddrs;
    let addr =
        (host.as_ref(), 0).to_socket_addrs().map_err(|_| NameError::LocalIp)?.next().ok_or(NameError::LocalIp)?;
    Ok(addr.ip().to_string())
}

/// `RegisterName`: refuses a duplicate, then points `map/names/<name>` at `real_endpoint`.
pub async fn register_name(zk: &Zk, paths: &ZkPaths, name: &str, real_endpoint: &str) -> Result<(), NameError> {
    let names_root = paths.names();
    zk.mkdir(&names_root).await?;
    let mut in_use = Vec::new();
    for child in zk.children(&paths.leader()).await.unwrap_or_default() {
        if let Ok(Some(value)) = zk.get(&format!("{}/{child}", paths.leader())).await {
            in_use.push(value);
        }
    }
    in_use.extend(zk.children(&paths.nodes()).await.unwrap_or_default());
    let node = paths.name(name);
    if in_use.iter().any(|n| n == name) {
        if let Some(registered) = zk.get(&node).await? {
            if registered == real_endpoint {
                return Ok(());
            }
            return Err(NameError::Duplicate(name.to_string()));
        }
    }
    zk.put(&node, real_endpoint).await?;
    Ok(())
}

/// A name → real endpoint map read from `map/names`, as a server keeps it.
pub struct RealEndpoints {
    paths: ZkPaths,
    map: Mutex<BTreeMap<String, String>>,
}

impl RealEndpoints {
    pub fn new(paths: ZkPaths) -> Self {
        RealEndpoints { paths, map: Mutex::new(BTreeMap::new()) }
    }

    /// Reads the names of `names` (all of `map/names` when `None`); a name that cannot be
    /// read is left out.
    pub async fn refresh(&self, zk: &Zk, names: Option<&[String]>) {
        let all;
        let names = match names {
            Some(names) => names,
            None => {
                all = zk.children(&self.paths.names()).await.unwrap_or_default();
                &all
            }
        };
        let mut fresh = BTreeMap::new();
        for name in names {
            if let Ok(Some(real)) = zk.get(&self.paths.name(name)).await {
                if !real.is_empty() {
                    fresh.insert(name.clone(), real);
                }
            }
        }
        self.map.lock().await.extend(fresh);
    }

    /// The real endpoint of `name`, reading `map/names` again once when it is not known.
    pub async fn resolve(&self, zk: &Zk, name: &str) -> Option<String> {
        if let Some(real) = self.map.lock().await.get(name) {
            return Some(real.clone());
        }
        self.refresh(zk, Some(&[name.to_string()])).await;
        self.map.lock().await.get(name).cloned()
    }

    /// The real endpoint of `name` if known, without reading ZooKeeper.
    pub async fn known(&self, name: &str) -> Option<String> {
        self.map.lock().await.get(name).cloned()
    }
}
