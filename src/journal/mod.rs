//! The run journal: what the tool changed and must be able to undo, kept in ZooKeeper under a
//! path of our own (`/mldb-upgrade/<cluster>`, never inside the cluster's root) so any machine
//! can resume, and mirrored to a local JSON-lines file for the audit trail.
//!
//! Keys:
//! - `auto_failover`: the value found before a run turned it off (`cluster::upgrade::auto_failover`);
//! - `drain/<tablet endpoint>/<tid>-<pid>`: the leader placement recorded before draining that
//!   tablet, one `LeaderMove` per node (`cluster::upgrade::drain`), so that no node grows with
//!   the number of partitions (ZooKeeper refuses nodes over 1 MB, `jute.maxbuffer`) and a move
//!   rewrites only its own record;
//! - `fence/<tid>-<pid>`: a leader fenced ahead of its ChangeLeader (`cluster::upgrade::fence`);
//! - `baseline` and `baseline/<tid>`: the leaders' offsets and rows recorded at pre-flight, one
//!   node per table (`cluster::upgrade::baseline`); the run's own, removed when it finishes;
//! - `values/<key>`: what scripts record with `journal::put` (the stock flow: `backup/<endpoint>`,
//!   `preflight`);
//! - `run`: the steps of the run in progress ([`run`]);
//! - `lock`: the ephemeral lock of the run holding the cluster ([`run`]).

pub mod run;

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::cluster::zk::{CreateFlags, Zk, ZkError};

/// Where journals live in ZooKeeper.
pub const JOURNAL_ROOT: &str = "/mldb-upgrade";

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("journal in ZooKeeper: {0}")]
    Zk(#[from] ZkError),
    #[error("journal entry {key} is unreadable ({reason}); inspect it with `zk::get(\"{path}\")`")]
    Corrupt { key: String, path: String, reason: String },
    #[error(
        "this run lost the cluster's lock while its ZooKeeper session was expired, and {holder} \
         holds it now; this run stops here: let that run finish, or stop it and re-run this command"
    )]
    LockLost { holder: run::LockHolder },
}

/// What the journal holds that a stopped run leaves for `abort`, as this machine's mirror of it
/// replays (every write of a run made here is in it): read without ZooKeeper, so that a second
/// Ctrl-C can say at once what it leaves.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Outstanding {
    /// Fenced leaders, as `db.table pid N on ENDPOINT`.
    pub fences: Vec<String>,
    /// The auto_failover value recorded before a run turned it off (not put back yet).
    pub auto_failover: Option<bool>,
    /// Tablets with recorded leader moves not restored.
    pub drained: Vec<String>,
}

impl Outstanding {
    /// Replays the mirror's put and delete events (JSON lines `{"event","key","value"}`).
    pub fn from_mirror(text: &str) -> Outstanding {
        let mut keys: std::collections::BTreeMap<String, serde_json::Value> = std::collections::BTreeMap::new();
        for line in text.lines() {
            let Ok(event) = serde_json::from_str::<serde_json::Value>(line) else { continue };
            let Some(key) = event["key"].as_str() else { continue };
            match event["event"].as_str() {
                Some("put") => {
                    keys.insert(key.to_string(), event["value"].clone());
                }
                Some("delete") => {
                    keys.remove(key);
                }
                _ => {}
            }
        }
        let mut outstanding = Outstanding::default();
        for (key, value) in &keys {
            if key.starts_with("fence/") {
                outstanding.fences.push(format!(
                    "{}.{} pid {} on {}",
                    value["db"].as_str().unwrap_or("?"),
                    value["table"].as_str().unwrap_or("?"),
                    value["pid"],
                    value["endpoint"].as_str().unwrap_or("?")
                ));
            } else if key == "auto_failover" {
                outstanding.auto_failover = value.as_bool();
            } else if let Some(rest) = key.strip_prefix("drain/") {
                let tablet = rest.split('/').next().unwrap_or(rest).to_string();
                if !outstanding.drained.contains(&tablet) {
                    outstanding.drained.push(tablet);
                }
            }
        }
        outstanding
    }

    /// One line per kind of thing left, for the operator.
    pub fn lines(&self) -> Vec<String> {
        let mut lines = Vec::new();
        if !self.fences.is_empty() {
            lines.push(format!("{} leader(s) fenced (refusing writes): {}", self.fences.len(), self.fences.join(", ")));
        }
        if let Some(value) = self.auto_failover {
            lines.push(format!("auto_failover off (it was {value})"));
        }
        if !self.drained.is_empty() {
            lines.push(format!("leaders moved off, not moved back: {}", self.drained.join(", ")));
        }
        lines
    }
}

pub struct Journal {
    zk: Arc<Zk>,
    base: String,
    mirror: Option<PathBuf>,
    /// The lock this process holds, and the ZooKeeper session it was created in ([`run`]).
    held: std::sync::Mutex<Option<run::HeldLock>>,
}

/// The journal's name for a cluster: its root path without slashes (`/openmldb` → `openmldb`).
pub fn cluster_key(root_path: &str) -> String {
    let key = root_path.trim_matches('/').replace('/', "_");
    if key.is_empty() {
        "root".into()
    } else {
        key
    }
}

impl Journal {
    pub fn new(zk: Arc<Zk>, mirror: Option<PathBuf>) -> Self {
        let base = format!("{JOURNAL_ROOT}/{}", cluster_key(&zk.settings().root_path));
        Journal { zk, base, mirror, held: std::sync::Mutex::new(None) }
    }

    /// The ZooKeeper path of a key.
    pub fn path(&self, key: &str) -> String {
        format!("{}/{key}", self.base)
    }

    fn mirror(&self, event: &str, key: &str, value: &serde_json::Value) {
        let Some(path) = &self.mirror else { return };
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let line = serde_json::json!({
            "at": humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
            "event": event, "key": key, "value": value,
        });
        if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
            let _ = writeln!(f, "{line}");
        }
    }

    /// Writes `value` under `key`, replacing what was there.
    pub async fn put<T: Serialize>(&self, key: &str, value: &T) -> Result<(), JournalError> {
        self.keep_lock().await?;
        let json = serde_json::to_value(value).unwrap_or_default();
        let data = json.to_string();
        let path = self.path(key);
        match self.zk.set(&path, data.as_bytes()).await {
            Ok(_) => {}
            Err(ZkError::NoNode { .. }) => {
                match self.zk.create(&path, data.as_bytes(), CreateFlags::default()).await {
                    // Another task of this run created it meanwhile: write over it.
                    Err(ZkError::NodeExists { .. }) => {
                        self.zk.set(&path, data.as_bytes()).await?;
                    }
                    created => {
                        created?;
                    }
                }
            }
            Err(e) => return Err(e.into()),
        }
        self.mirror("put", key, &json);
        Ok(())
    }

    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, JournalError> {
        let path = self.path(key);
        match self.zk.get(&path).await {
            Ok(data) => serde_json::from_slice(&data).map(Some).map_err(|e| JournalError::Corrupt {
                key: key.into(),
                path,
                reason: e.to_string(),
            }),
            Err(ZkError::NoNode { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Removes `key`; nothing happens when it is absent.
    pub async fn delete(&self, key: &str) -> Result<(), JournalError> {
        self.keep_lock().await?;
        match self.zk.delete(&self.path(key)).await {
            Ok(()) | Err(ZkError::NoNode { .. }) => {
                self.mirror("delete", key, &serde_json::Value::Null);
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The values of every key under `prefix`, by key, read concurrently (a drain of thousands
    /// of partitions is read in one round of pipelined requests).
    pub async fn get_all<T: DeserializeOwned>(&self, prefix: &str) -> Result<Vec<(String, T)>, JournalError> {
        use futures::StreamExt;
        let keys = self.keys(prefix).await?;
        let reads = futures::stream::iter(keys.into_iter().map(|key| async move {
            let value = self.get::<T>(&format!("{prefix}/{key}")).await?;
            Ok::<_, JournalError>(value.map(|v| (key, v)))
        }))
        .buffered(256)
        .collect::<Vec<_>>()
        .await;
        let mut values = Vec::with_capacity(reads.len());
        for read in reads {
            values.extend(read?);
        }
        Ok(values)
    }

    /// Writes several keys, concurrently.
    pub async fn put_all<T: Serialize>(&self, entries: &[(String, T)]) -> Result<(), JournalError> {
        use futures::StreamExt;
        // Collected first, so that no closure is part of this future's type: it can then be
        // spawned (a closure over references is not seen as general enough to be `Send`).
        let puts: Vec<_> = entries.iter().map(|(key, value)| self.put(key, value)).collect();
        let writes = futures::stream::iter(puts).buffer_unordered(256).collect::<Vec<_>>().await;
        writes.into_iter().collect()
    }

    /// Removes `key` and every key under it.
    pub async fn delete_tree(&self, key: &str) -> Result<(), JournalError> {
        use futures::StreamExt;
        let children = self.keys(key).await?;
        let deletes = futures::stream::iter(
            children.iter().map(|child| async move { self.delete(&format!("{key}/{child}")).await }),
        )
        .buffer_unordered(256)
        .collect::<Vec<_>>()
        .await;
        deletes.into_iter().collect::<Result<(), _>>()?;
        self.delete(key).await
    }

    /// Keys under `prefix` (e.g. the tablets with a recorded drain).
    pub async fn keys(&self, prefix: &str) -> Result<Vec<String>, JournalError> {
        match self.zk.children(&self.path(prefix)).await {
            Ok(children) => Ok(children),
            Err(ZkError::NoNode { .. }) => Ok(Vec::new()),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod outstanding_tests {
    use super::Outstanding;

    #[test]
    fn the_mirror_replays_to_what_a_stopped_run_leaves() {
        let mirror = [
            r#"{"at":"t","event":"put","key":"auto_failover","value":true}"#,
            r#"{"at":"t","event":"put","key":"drain/10.0.0.1:9527","value":null}"#,
            r#"{"at":"t","event":"put","key":"drain/10.0.0.1:9527/3-1","value":{"tid":3}}"#,
            r#"{"at":"t","event":"put","key":"fence/3-1","value":{"db":"demo","table":"t","pid":1,"endpoint":"10.0.0.1:9527"}}"#,
            r#"{"at":"t","event":"put","key":"fence/3-2","value":{"db":"demo","table":"t","pid":2,"endpoint":"10.0.0.1:9527"}}"#,
            r#"{"at":"t","event":"delete","key":"fence/3-2","value":null}"#,
            "not json",
        ]
        .join("\n");
        let left = Outstanding::from_mirror(&mirror);
        assert_eq!(left.fences, vec!["demo.t pid 1 on 10.0.0.1:9527"]);
        assert_eq!(left.auto_failover, Some(true));
        assert_eq!(left.drained, vec!["10.0.0.1:9527"]);
        assert_eq!(
            left.lines(),
            vec![
                "1 leader(s) fenced (refusing writes): demo.t pid 1 on 10.0.0.1:9527",
                "auto_failover off (it was true)",
                "leaders moved off, not moved back: 10.0.0.1:9527"
            ]
        );
        let finished = format!("{mirror}\n{}", r#"{"at":"t","event":"delete","key":"auto_failover","value":null}"#);
        assert_eq!(Outstanding::from_mirror(&finished).auto_failover, None);
    }
}
