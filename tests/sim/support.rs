//! A simulated cluster for tests: its own ZooKeeper, `openmldb-sim` processes on loopback
//! ports, cleaned up on drop (kill + wait).

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use mldb_upgrade::sandbox::zookeeper::ZooKeeperServer;
use serde_json::{json, Value};
use zookeeper_client as zk;

pub const SIM: &str = env!("CARGO_BIN_EXE_openmldb-sim");

/// Shrunk timings (C§7) so failover happens within seconds.
pub const FAST: &[&str] = &[
    "--zk_session_timeout=2000",
    "--tablet_heartbeat_timeout=2000",
    "--tablet_offline_check_interval=200",
    "--get_task_status_interval=200",
    "--get_table_status_interval=200",
    "--name_server_task_wait_time=100",
    "--zk_keep_alive_check_interval=1000",
    "--stream_close_wait_time_ms=100",
    "--retry_send_file_wait_time_ms=300",
];

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

/// One running `openmldb-sim` process.
pub struct SimProcess {
    pub child: Child,
    pub log: PathBuf,
}

impl SimProcess {
    /// SIGTERM (like `start.sh stop`), then wait.
    pub fn terminate(&mut self) -> Option<ExitStatus> {
        let _ = Command::new("kill").arg(self.child.id().to_string()).status();
        self.child.wait().ok()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for SimProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct SimCluster {
    pub zk: ZooKeeperServer,
    pub dir: tempfile::TempDir,
    pub root: String,
    pub procs: BTreeMap<String, SimProcess>,
    pub http: reqwest::Client,
    starts: u32,
}

impl SimCluster {
    pub fn new(root: &str) -> SimCluster {
        let dir = tempfile::tempdir().expect("tempdir");
        let zk = ZooKeeperServer::start(&dir.path().join("zk")).expect("ZooKeeper starts");
        SimCluster {
            zk,
            dir,
            root: root.to_string(),
            procs: BTreeMap::new(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .pool_max_idle_per_host(0)
                .build()
                .expect("client"),
            starts: 0,
        }
    }

    pub fn common_flags(&self) -> Vec<String> {
        let mut flags = vec![
            format!("--zk_cluster={}", self.zk.connect_string()),
            format!("--zk_root_path={}", self.root),
            "--enable_status_service=true".to_string(),
        ];
        flags.extend(FAST.iter().map(|s| s.to_string()));
        flags
    }

    /// Spawns `openmldb-sim` with the given role on `endpoint` and returns at once.
    pub fn spawn(&mut self, role: &str, endpoint: &str, extra: &[&str]) -> &mut SimProcess {
        self.starts += 1;
        let log = self.dir.path().join(format!("{role}-{}-{}.log", endpoint.replace(':', "_"), self.starts));
        let out = std::fs::File::create(&log).expect("log file");
        let err = out.try_clone().expect("log file");
        let db = self.dir.path().join(format!("db-{}", endpoint.replace(':', "_")));
        // Not the default /tmp/recycle, which every test's tablets would share.
        let recycle = self.dir.path().join(format!("recycle-{}", endpoint.replace(':', "_")));
        let mut command = Command::new(SIM);
        command
            .arg(format!("--role={role}"))
            .arg(format!("--endpoint={endpoint}"))
            .arg(format!("--db_root_path={}", db.display()))
            .arg(format!("--recycle_bin_root_path={}", recycle.display()))
            .arg(format!("--openmldb_log_dir={}", self.glog_dir(endpoint).display()))
            .args(self.common_flags())
            .args(extra)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        let child = command.spawn().expect("spawn openmldb-sim");
        self.procs.insert(endpoint.to_string(), SimProcess { child, log });
        self.procs.get_mut(endpoint).expect("just inserted")
    }

    /// Where a process spawned on `endpoint` keeps its glog files (`--openmldb_log_dir`).
    pub fn glog_dir(&self, endpoint: &str) -> PathBuf {
        self.dir.path().join(format!("logs-{}", endpoint.replace(':', "_")))
    }

    /// Starts a tablet and waits until ZooKeeper shows it registered.
    pub async fn start_tablet(&mut self, extra: &[&str]) -> String {
        let endpoint = format!("127.0.0.1:{}", free_port());
        self.spawn("tablet", &endpoint, extra);
        let path = format!("{}/nodes/{endpoint}", self.root);
        let client = self.zk_client().await;
        wait_for(&format!("tablet {endpoint} registered"), Duration::from_secs(15), || async {
            client.check_stat(&path).await.ok().flatten().map(|_| ())
        })
        .await;
        endpoint
    }

    pub async fn restart_tablet(&mut self, endpoint: &str, extra: &[&str]) {
        self.spawn("tablet", endpoint, extra);
        let path = format!("{}/nodes/{endpoint}", self.root);
        let client = self.zk_client().await;
        wait_for(&format!("tablet {endpoint} registered again"), Duration::from_secs(15), || async {
            match client.get_data(&path).await {
                Ok((data, _)) if String::from_utf8_lossy(&data).starts_with("startup_") => Some(()),
                _ => None,
            }
        })
        .await;
    }

    /// Stops a tablet, waits for its ZooKeeper session to expire (its node to go, C§1.3) and
    /// starts it again: it comes back with no table loaded.
    pub async fn restart_tablet_after_expiry(&mut self, endpoint: &str) {
        self.terminate(endpoint);
        let node = format!("{}/nodes/{endpoint}", self.root);
        let zk = self.zk_client().await;
        wait_for("old session expired", Duration::from_secs(10), || async {
            zk.check_stat(&node).await.ok().flatten().is_none().then_some(())
        })
        .await;
        self.restart_tablet(endpoint, &[]).await;
    }

    /// Creates `db.t` with one partition on two replicas; returns its tid, leader and follower.
    pub async fn one_partition_on_two_replicas(&self, ns: &str) -> (u64, String, String) {
        self.create_table(ns, "db", "t", 1, 2).await;
        let tid = self.tid(ns, "db", "t").await;
        let parts = self.partitions(ns, "db", "t").await;
        let leader = parts[0].1.iter().find(|m| m.1).expect("leader").0.clone();
        let follower = parts[0].1.iter().find(|m| !m.1).expect("follower").0.clone();
        (tid, leader, follower)
    }

    /// Starts a nameserver and waits until its port answers `/health`.
    pub async fn start_nameserver(&mut self, extra: &[&str]) -> String {
        let endpoint = format!("127.0.0.1:{}", free_port());
        self.spawn("nameserver", &endpoint, extra);
        let http = self.http.clone();
        let url = format!("http://{endpoint}/health");
        wait_for(&format!("nameserver {endpoint} serving"), Duration::from_secs(20), || async {
            http.get(&url).send().await.ok().filter(|r| r.status().is_success()).map(|_| ())
        })
        .await;
        endpoint
    }

    /// Starts a nameserver and waits until it answers RPCs as the leader.
    pub async fn start_leader(&mut self, extra: &[&str]) -> String {
        let ns = self.start_nameserver(extra).await;
        self.wait_leader(&ns).await;
        ns
    }

    /// Waits until `ns` answers ShowTablet with code 0 (it leads and has recovered).
    pub async fn wait_leader(&self, ns: &str) {
        wait_for(&format!("{ns} leads"), Duration::from_secs(20), || async {
            (self.ns(ns, "ShowTablet", json!({})).await["code"] == 0).then_some(())
        })
        .await;
    }

    pub fn terminate(&mut self, endpoint: &str) -> Option<ExitStatus> {
        self.procs.get_mut(endpoint).and_then(SimProcess::terminate)
    }

    /// SIGKILL, then wait: a crash, no draining.
    pub fn kill(&mut self, endpoint: &str) {
        if let Some(process) = self.procs.get_mut(endpoint) {
            let _ = process.child.kill();
            let _ = process.child.wait();
        }
    }

    /// The table id of `db.name`.
    pub async fn tid(&self, ns: &str, db: &str, name: &str) -> u64 {
        let reply = self.ns(ns, "ShowTable", json!({ "name": name, "db": db })).await;
        reply["table_info"][0]["tid"].as_u64().expect("tid")
    }

    /// One replica's `TableStatus` on a tablet, if loaded there.
    pub async fn table_status(&self, tablet: &str, tid: u64, pid: u64) -> Option<Value> {
        let reply = self.tablet(tablet, "GetTableStatus", json!({ "tid": tid, "pid": pid })).await;
        reply["all_table_status"].get(0).cloned()
    }

    /// The ZooKeeper connect string, for library clients.
    pub fn zk_cluster(&self) -> String {
        self.zk.connect_string()
    }

    pub async fn zk_client(&self) -> zk::Client {
        zk::Client::connect(&self.zk.connect_string()).await.expect("zk client")
    }

    /// POSTs a JSON body to `http://<endpoint>/<path>` and returns the JSON reply.
    pub async fn post(&self, endpoint: &str, path: &str, body: Value) -> Value {
        let reply = self
            .http
            .post(format!("http://{endpoint}{path}"))
            .header("Authorization", "foo")
            .json(&body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{path} on {endpoint}: {e}"));
        let status = reply.status();
        let text = reply.text().await.expect("body");
        assert!(status.is_success(), "{path} on {endpoint}: HTTP {status}: {text}");
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("{path}: not JSON: {text}"))
    }

    pub async fn ns(&self, ns: &str, method: &str, body: Value) -> Value {
        self.post(ns, &format!("/NameServer/{method}"), body).await
    }

    pub async fn tablet(&self, tablet: &str, method: &str, body: Value) -> Value {
        self.post(tablet, &format!("/TabletServer/{method}"), body).await
    }

    /// Creates database `db` and table `db.name`.
    pub async fn create_table(&self, ns: &str, db: &str, name: &str, partitions: u32, replicas: u32) {
        let created = self.ns(ns, "CreateDatabase", json!({ "db": db, "if_not_exists": true })).await;
        assert_eq!(created["code"], 0, "{created}");
        let table_info = json!({ "name": name, "db": db, "partition_num": partitions, "replica_num": replicas });
        let created = self.ns(ns, "CreateTable", json!({ "table_info": table_info })).await;
        assert_eq!(created["code"], 0, "{created}");
    }

    /// The partitions of one table as `(pid, [(endpoint, is_leader, is_alive)])`.
    pub async fn partitions(&self, ns: &str, db: &str, name: &str) -> Vec<(u64, Vec<(String, bool, bool)>)> {
        let reply = self.ns(ns, "ShowTable", json!({ "name": name, "db": db })).await;
        let table = &reply["table_info"][0];
        table["table_partition"]
            .as_array()
            .expect("partitions")
            .iter()
            .map(|p| {
                let metas = p["partition_meta"]
                    .as_array()
                    .expect("metas")
                    .iter()
                    .map(|m| {
                        (
                            m["endpoint"].as_str().unwrap_or_default().to_string(),
                            m["is_leader"].as_bool().unwrap_or(false),
                            m["is_alive"].as_bool().unwrap_or(true),
                        )
                    })
                    .collect();
                (p["pid"].as_u64().unwrap_or(0), metas)
            })
            .collect()
    }

    /// All ops as `(op_id, op_type, name, pid, status)`.
    pub async fn ops(&self, ns: &str) -> Vec<(u64, String, String, u64, String)> {
        let reply = self.ns(ns, "ShowOPStatus", json!({})).await;
        assert_eq!(reply["code"], 0, "{reply}");
        reply["op_status"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|o| {
                (
                    o["op_id"].as_u64().unwrap_or(0),
                    o["op_type"].as_str().unwrap_or_default().to_string(),
                    o["name"].as_str().unwrap_or_default().to_string(),
                    o["pid"].as_u64().unwrap_or(0),
                    o["status"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect()
    }

    /// Waits until no op is kInited/kDoing and returns all ops.
    pub async fn wait_ops_finished(&self, ns: &str, timeout: Duration) -> Vec<(u64, String, String, u64, String)> {
        wait_for("all ops finished", timeout, || async {
            let ops = self.ops(ns).await;
            (!ops.is_empty() && ops.iter().all(|o| o.4 != "kInited" && o.4 != "kDoing")).then_some(ops)
        })
        .await
    }

    /// The nameserver leader per ZooKeeper: value of the first sorted `leader` child (C§1.2).
    pub async fn zk_leader(&self) -> Option<String> {
        let client = self.zk_client().await;
        let leader_dir = format!("{}/leader", self.root);
        let mut children = client.list_children(&leader_dir).await.ok()?;
        children.sort();
        let first = children.first()?;
        let (data, _) = client.get_data(&format!("{leader_dir}/{first}")).await.ok()?;
        Some(String::from_utf8_lossy(&data).to_string())
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// Polls `check` every 100 ms until it yields a value; panics naming `what` on timeout.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
