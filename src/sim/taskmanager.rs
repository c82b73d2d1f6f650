//! The TaskManager stand-in, started by `taskmanager/bin/taskmanager.sh` from inside
//! `taskmanager/bin` (O§1.2), configured by `../conf/taskmanager.properties` (which start.sh
//! copies over from the install's `conf/` on every start).
//!
//! Like the real one (`TaskManagerServer.java`, `FailoverWatcher.java`, C§1.1, C§3.8): it
//! validates its config and exits 1 on a bad one (O§3.4), then competes for the EPHEMERAL
//! `<root>/taskmanager/leader` node holding `host:port`; a standby waits without serving until
//! the node is gone; the active one serves
//! `/openmldb.taskmanager.TaskManagerServer/GetVersion` with `taskmanagerVersion` and
//! `batchVersion` (O§4.3).
//!
//! Versions come from the install, so replacing files changes them: `taskmanagerVersion` is
//! the content of `../lib/openmldb-taskmanager-<ver>.jar` and `batchVersion` that of
//! `<spark home>/jars/openmldb-batch-<ver>.jar` (placeholder files in sandbox releases whose
//! names carry the version as the real jars' do). Simplification: no offline jobs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hyper::StatusCode;
use serde_json::json;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use zookeeper_client as zk;

use super::flags::SimFlags;
use super::rest::{self, Handler, Reply};
use super::zk::Zk;

/// The keys the stand-in reads, after validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskManagerConfig {
    pub host: String,
    pub port: u16,
    pub zk_cluster: String,
    pub zk_root_path: String,
    pub zk_session_timeout: Duration,
    pub zk_cert: Option<String>,
    pub spark_home: PathBuf,
    pub spark_master: String,
}

/// Java `.properties`: `key=value` or `key: value`, `#`/`!` comments.
pub fn parse_properties(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('!'))
        .filter_map(|l| {
            let at = l.find(['=', ':'])?;
            Some((l[..at].trim().to_string(), l[at + 1..].trim().to_string()))
        })
        .collect()
}

impl TaskManagerConfig {
    /// Validates like `TaskManagerConfig.java` does for the keys that matter (O§3.4).
    pub fn from_properties(p: &BTreeMap<String, String>, spark_home_env: Option<String>) -> Result<Self, String> {
        let get = |k: &str| p.get(k).map(String::as_str).filter(|v| !v.is_empty());
        let port: u16 =
            get("server.port").unwrap_or("9902").parse().map_err(|_| "server.port is not a port".to_string())?;
        let zk_cluster = get("zookeeper.cluster").ok_or("zookeeper.cluster is not set")?.to_string();
        let master = get("spark.master").unwrap_or("local[*]").to_string();
        let valid_master = master.starts_with("local")
            || ["yarn", "yarn-cluster", "yarn-client", "k8s", "kubernetes"].contains(&master.as_str());
        if !valid_master {
            return Err(format!(
                "spark.master should be local, yarn, yarn-cluster, yarn-client, k8s or kubernetes, not {master}"
            ));
        }
        let yarn = master.starts_with("yarn");
        if yarn && get("spark.yarn.jars").is_some_and(|j| j.starts_with("file://")) {
            return Err("spark.yarn.jars should not use local filesystem for yarn mode".into());
        }
        if (yarn || master.starts_with("k8s")) && get("offline.data.prefix").unwrap_or("file://").starts_with("file://")
        {
            return Err("offline.data.prefix should not use local filesystem for yarn or k8s mode".into());
        }
        let spark_home = get("spark.home")
            .map(str::to_string)
            .or(spark_home_env.filter(|s| !s.is_empty()))
            .ok_or("spark.home is not set and SPARK_HOME is empty")?;
        let timeout_ms: u64 = get("zookeeper.session_timeout").unwrap_or("5000").parse().unwrap_or(5000);
        Ok(TaskManagerConfig {
            host: get("server.host").unwrap_or("0.0.0.0").to_string(),
            port,
            zk_cluster,
            zk_root_path: get("zookeeper.root_path").unwrap_or("/openmldb").to_string(),
            zk_session_timeout: Duration::from_millis(timeout_ms),
            zk_cert: get("zookeeper.cert").map(str::to_string),
            spark_home: PathBuf::from(spark_home),
            spark_master: master,
        })
    }
}

/// Content of the first file in `dir` named `<prefix><version>.jar`.
pub fn jar_version(dir: &Path, prefix: &str) -> Option<String> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(prefix) && n.ends_with(".jar"))
        })
        .collect();
    names.sort();
    let path = names.first()?;
    let content = std::fs::read_to_string(path).ok()?;
    Some(content.trim().to_string())
}

/// Runs the TaskManager from `taskmanager/bin` (the working directory) until SIGTERM.
pub async fn run_taskmanager(bin_dir: &Path, shutdown: CancellationToken) -> Result<(), String> {
    let properties_path = bin_dir.join("../conf/taskmanager.properties");
    let text = std::fs::read_to_string(&properties_path)
        .map_err(|e| format!("cannot read {}: {e}", properties_path.display()))?;
    let config = TaskManagerConfig::from_properties(&parse_properties(&text), std::env::var("SPARK_HOME").ok())?;
    let tm_version = jar_version(&bin_dir.join("../lib"), "openmldb-taskmanager-")
        .ok_or("no openmldb-taskmanager-*.jar in ../lib")?;
    let flags = SimFlags {
        zk_cluster: config.zk_cluster.clone(),
        zk_root_path: config.zk_root_path.clone(),
        zk_session_timeout: config.zk_session_timeout,
        zk_cert: config.zk_cert.clone(),
        ..SimFlags::default()
    };
    let zk = Zk::connect(&flags).await.map_err(|e| e.to_string())?;
    let dir = format!("{}/taskmanager", config.zk_root_path);
    let leader = format!("{dir}/leader");
    let me = format!("{}:{}", config.host, config.port);
    eprintln!("The server runs and prepares for leader election");
    loop {
        match zk.create(&leader, &me, zk::CreateMode::Ephemeral).await {
            Ok(_) => break,
            Err(zk::Error::NodeExists) => {
                // Standby: wait for the active one to go (FailoverWatcher.blockUntilActive).
                tokio::select! {
                    _ = shutdown.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                }
            }
            Err(e) => return Err(format!("cannot register {leader}: {e}")),
        }
    }
    eprintln!("The server becomes active master and prepare to do business logic");
    let listener = TcpListener::bind((config.host.as_str(), config.port))
        .await
        .map_err(|e| format!("cannot listen on {me}: {e}"))?;
    let spark_jars = config.spark_home.join("jars");
    let handler: Handler = Arc::new(move |_method, path, _body| {
        let (tm_version, spark_jars) = (tm_version.clone(), spark_jars.clone());
        Box::pin(async move {
            match path.trim_end_matches('/') {
                "/openmldb.taskmanager.TaskManagerServer/GetVersion" | "/TaskManagerServer/GetVersion" => {
                    let batch = jar_version(&spark_jars, "openmldb-batch-").unwrap_or_else(|| "unknown".into());
                    Reply::json(&json!({
                        "code": 0, "msg": "ok", "taskmanagerVersion": tm_version, "batchVersion": batch
                    }))
                }
                other => Reply::text(StatusCode::NOT_FOUND, format!("Fail to find method on `{other}'")),
            }
        })
    });
    eprintln!("Start TaskManager on {}", config.port);
    rest::serve(listener, handler, shutdown).await;
    drop(zk);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(text: &str) -> BTreeMap<String, String> {
        parse_properties(text)
    }

    #[test]
    fn reads_template_keys_o3_4() {
        let p =
            props("# c\nserver.host=127.0.0.8\nserver.port = 9902\nzookeeper.cluster=127.0.0.1:2181\nspark.home=/s\n");
        let c = TaskManagerConfig::from_properties(&p, None).unwrap();
        assert_eq!((c.host.as_str(), c.port, c.spark_master.as_str()), ("127.0.0.8", 9902, "local[*]"));
        assert_eq!(c.spark_home, PathBuf::from("/s"));
    }

    #[test]
    fn rejects_invalid_config_like_the_real_one_o3_4() {
        let base = "zookeeper.cluster=z:1\nspark.home=/s\n";
        assert!(TaskManagerConfig::from_properties(&props(&format!("{base}spark.master=mesos")), None).is_err());
        let yarn = format!("{base}spark.master=yarn\nspark.yarn.jars=file:///x/*\noffline.data.prefix=hdfs:///o\n");
        assert!(TaskManagerConfig::from_properties(&props(&yarn), None).unwrap_err().contains("spark.yarn.jars"));
        assert!(TaskManagerConfig::from_properties(&props("zookeeper.cluster=z:1\n"), None).is_err());
        assert!(
            TaskManagerConfig::from_properties(&props("zookeeper.cluster=z:1\n"), Some("/env/spark".into())).is_ok()
        );
    }
}
