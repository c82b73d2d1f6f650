//! Local rehearsal clusters: a real ZooKeeper plus simulated OpenMLDB components on loopback
//! addresses (127.0.0.2, .3, ...), so each looks like a separate host. Two layouts:
//!
//! - `separate` (default): every component installed from its own directory, configured the way
//!   `sbin/deploy.sh` would (O§2.4), started through its own `bin/start.sh` (O§1); the
//!   `cluster.toml` lists the components.
//! - `deploy` ([`deploy`]): the cluster OpenMLDB's own `sbin/deploy-all.sh` and `sbin/start-*.sh`
//!   lay out from a `conf/hosts`, with a host's nameserver, apiserver and taskmanager sharing
//!   `$OPENMLDB_HOME`; the `cluster.toml` imports that `conf/hosts`.
//!
//! Either way `up` judges success by its own checks, creates tables with 1, 2 and 3 replicas
//! (with `--storage-modes mixed` also SSD and HDD ones, [`sandbox_tables`]) and writes
//! `cluster.toml`; with `--ssh` ([`sshd`]) the tool reaches every host through a real
//! sshd instead of running commands locally. `sandbox down` stops everything it started.
//!
//! Processes started by `up` outlive the command: the sandbox's `sandbox.json` lists the
//! components, and `down` stops them by their pid files (only processes of the sandbox: a pid
//! file may point at a reused pid) and then by a sweep of every process whose executable or
//! working directory lies inside the sandbox directory, so nothing is left behind whatever
//! started it (an upgrade, a test, an operator).
//!
//! Deviations from a real deployment, all sandbox-only: ports are free ports picked on each
//! loopback address instead of the defaults; `--fast` shrinks OpenMLDB's timing flags and
//! start.sh's fixed waits (`conf/sandbox.env`) so rehearsals run in seconds; each host stages
//! releases in its own directory under `<sandbox>/hosts/`, as separate machines would.
//! `--snapshot-window` sets real snapshot flags to values no one would run in production
//! ([`snapshot_window_flags`]), so that a snapshot window falls into a rehearsal.
//! `--spark-master yarn` configures the TaskManagers for YARN with a stand-in HDFS command over a
//! local directory ([`hdfs`]).

pub mod client;
mod deploy;
pub mod faults;
pub mod hdfs;
pub mod load;
mod options;
pub mod release;
mod separate;
pub mod sshd;
mod status;
pub mod zookeeper;

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::cluster::topology::Role;
pub use crate::process::{is_running, stop_pid};
use options::{fast_flags, tablet_fast_flags, tablet_option_flags};
pub use options::{sandbox_tables, snapshot_window_flags, SandboxTable, StorageModes};
pub use status::{component_pid, down, processes_inside, status, ComponentStatus};
use zookeeper::ZooKeeperServer;

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("{0}")]
    ZooKeeper(#[from] zookeeper::ZooKeeperError),
    #[error("{0}")]
    Release(#[from] release::ReleaseError),
    #[error("sandbox directory {dir}: {source}")]
    Io {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("a sandbox is already running in {dir} (ZooKeeper pid {pid}); run `mldb-upgrade sandbox down --dir {dir}` first")]
    AlreadyRunning { dir: PathBuf, pid: u32 },
    #[error("{dir} holds a stopped sandbox, whose ZooKeeper data (tables, ops, journal) a new one would start from: remove it (`rm -rf {dir}`) or give another --dir")]
    Stopped { dir: PathBuf },
    #[error("no sandbox in {dir} (no sandbox.json); start one with `mldb-upgrade sandbox up --dir {dir}`")]
    NotFound { dir: PathBuf },
    #[error("{what} did not {condition} within {waited:?}; the last lines of {log}:\n{tail}\nThe sandbox is half up: run `mldb-upgrade sandbox down --dir {dir}`")]
    NotReady { what: String, condition: String, waited: Duration, log: PathBuf, tail: String, dir: PathBuf },
    #[error("setting up tables failed: {0}")]
    Tables(String),
    #[error("sbin/{script} failed ({status}); the last lines of {log}:\n{tail}")]
    Deploy { script: String, status: String, tail: String, log: PathBuf },
    #[error("{0}")]
    Sshd(#[from] sshd::SshdError),
    #[error("bad sandbox option: {0}")]
    Option(String),
    #[error("fault not injected: {0}")]
    Fault(String),
}

/// How a sandbox's components are laid out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    /// Every component in its own directory on its own address, installed by the sandbox.
    #[default]
    Separate,
    /// As OpenMLDB's `sbin/deploy-all.sh` lays a cluster out from `conf/hosts`: nameserver,
    /// apiserver and taskmanager of a host share one directory ([`deploy`]).
    Deploy,
}

/// How to build a sandbox.
#[derive(Debug, Clone)]
pub struct UpOptions {
    pub version: String,
    pub nameservers: usize,
    pub tablets: usize,
    pub apiservers: usize,
    pub taskmanagers: usize,
    /// Start components in daemon mode (`bin/start.sh start <role> mon`).
    pub daemon: bool,
    /// Shrink timing flags and start.sh waits (for tests and demos).
    pub fast: bool,
    pub auto_failover: bool,
    pub layout: Layout,
    /// Start an sshd on every sandbox address and reach the hosts through it ([`sshd`]).
    pub ssh: bool,
    pub storage_modes: StorageModes,
    /// Make the tablets' scheduled snapshot window fire this long after each tablet starts
    /// ([`snapshot_window_flags`]).
    pub snapshot_window: Option<Duration>,
    /// Nameservers and tablets start with `--use_name=true`: no `--endpoint`, a `--port`, and a
    /// server name in `data/name.txt` ([`crate::sim::names`]).
    pub use_name: bool,
    /// Keep the replicator at OpenMLDB's compiled-in defaults (`binlog_notify_on_put=false`,
    /// 100 ms `binlog_sync_wait_time`, ...) even with `--fast`.
    pub real_replication: bool,
    /// The TaskManagers' `spark.master`; YARN with a stand-in HDFS ([`hdfs`]).
    pub spark_master: hdfs::SparkMaster,
}

impl Default for UpOptions {
    fn default() -> Self {
        UpOptions {
            version: "0.9.2".into(),
            nameservers: 2,
            tablets: 3,
            apiservers: 1,
            taskmanagers: 2,
            daemon: false,
            fast: false,
            auto_failover: true,
            layout: Layout::Separate,
            ssh: false,
            storage_modes: StorageModes::Memory,
            snapshot_window: None,
            use_name: false,
            real_replication: false,
            spark_master: hdfs::SparkMaster::Local,
        }
    }
}

/// One component of a sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxComponent {
    pub role: Role,
    /// `tablet-1`, also the install directory's name.
    pub name: String,
    pub endpoint: String,
    pub host: String,
    pub dir: PathBuf,
}

impl SandboxComponent {
    /// The start.sh component name (O§1.1).
    pub fn start_sh_name(&self) -> &'static str {
        self.role.as_str()
    }
    fn log_file(&self) -> PathBuf {
        match self.role {
            Role::Taskmanager => self.dir.join("taskmanager/bin/logs/taskmanager.log"),
            // glog's log: it has the reason a server exits (src/base/glog_wrapper.h).
            role => self.dir.join(format!("logs/{role}.INFO")),
        }
    }
}

/// What a sandbox is, as kept in `DIR/sandbox.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SandboxState {
    pub dir: PathBuf,
    pub zk_cluster: String,
    pub zk_root_path: String,
    pub zookeeper_pid: u32,
    pub version: String,
    pub daemon: bool,
    pub components: Vec<SandboxComponent>,
    pub cluster_toml: PathBuf,
    pub releases: PathBuf,
    #[serde(default)]
    pub layout: Layout,
    /// `$OPENMLDB_HOME` of a deploy layout.
    #[serde(default)]
    pub home: Option<PathBuf>,
    /// The sandbox's sshd (`--ssh`).
    #[serde(default)]
    pub sshd: Option<SshdState>,
    /// The stand-in HDFS of `--spark-master yarn` (`<sandbox>/hdfs`).
    #[serde(default)]
    pub hdfs: Option<PathBuf>,
}

/// The sandbox's sshd, as `sandbox down` and the cluster config need it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SshdState {
    pub pid: u32,
    pub port: u16,
    pub user: String,
    pub client_key: PathBuf,
    pub known_hosts: PathBuf,
}

const STATE_FILE: &str = "sandbox.json";
const ROOT_PATH: &str = "/openmldb";

pub(super) fn io_err(dir: &Path) -> impl FnOnce(std::io::Error) -> SandboxError + '_ {
    move |source| SandboxError::Io { dir: dir.to_path_buf(), source }
}

/// Reads `DIR/sandbox.json`.
pub fn load_state(dir: &Path) -> Result<SandboxState, SandboxError> {
    let text =
        std::fs::read_to_string(dir.join(STATE_FILE)).map_err(|_| SandboxError::NotFound { dir: dir.to_path_buf() })?;
    serde_json::from_str(&text)
        .map_err(|e| SandboxError::Io { dir: dir.to_path_buf(), source: std::io::Error::other(e) })
}

pub(crate) fn save_state(state: &SandboxState) -> Result<(), SandboxError> {
    let text = serde_json::to_string_pretty(state).unwrap_or_default();
    std::fs::write(state.dir.join(STATE_FILE), text).map_err(io_err(&state.dir))
}

/// Free ports picked for one sandbox. Each stays bound until every port is picked, so no two
/// components (nor the sandbox's sshd) are given the same one; they are released together,
/// just before the processes that use them start.
#[derive(Default)]
pub(super) struct Ports {
    held: Vec<TcpListener>,
}

impl Ports {
    /// A free port on `address` (`0.0.0.0` for one free on every address).
    pub fn on(&mut self, address: &str) -> std::io::Result<u16> {
        let listener = TcpListener::bind((address, 0))?;
        let port = listener.local_addr()?.port();
        self.held.push(listener);
        Ok(port)
    }
}

/// Copies a directory tree, keeping file modes.
pub fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
            std::fs::set_permissions(&target, std::fs::Permissions::from_mode(entry.metadata()?.permissions().mode()))?;
        }
    }
    Ok(())
}

/// Starts a sandbox in `dir`.
pub async fn up(dir: &Path, options: &UpOptions) -> Result<SandboxState, SandboxError> {
    if options.nameservers == 0 || options.tablets == 0 {
        return Err(SandboxError::Option("a sandbox needs at least one nameserver and one tablet".into()));
    }
    if options.use_name && options.layout == Layout::Deploy {
        return Err(SandboxError::Option(
            "--use-name needs --layout separate: sbin/deploy.sh writes --endpoint into every flags file".into(),
        ));
    }
    if options.nameservers + options.tablets + options.apiservers + options.taskmanagers > 250 {
        return Err(SandboxError::Option("at most 250 components (one loopback address each)".into()));
    }
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let dir = dir.canonicalize().map_err(io_err(dir))?;
    if let Ok(state) = load_state(&dir) {
        if is_running(state.zookeeper_pid) {
            return Err(SandboxError::AlreadyRunning { dir, pid: state.zookeeper_pid });
        }
        return Err(SandboxError::Stopped { dir });
    }
    let releases = dir.join("releases");
    let release = release::build(&options.version, &releases, &release::Faults::default(), false)?;

    let zk = ZooKeeperServer::start(&dir.join("zookeeper"))?;
    let zk_cluster = zk.connect_string();
    let zookeeper_pid = zk.detach().unwrap_or_default();

    let mut ports = Ports::default();
    let (components, home) = match options.layout {
        Layout::Separate => (separate::plan(&dir, options, &mut ports)?, None),
        Layout::Deploy => {
            let layout = deploy::plan(&dir, options, &mut ports)?;
            (layout.components, Some(layout.home))
        }
    };
    // The sandbox's sshd listens on every sandbox address at one port.
    let sshd_port = if options.ssh { Some(ports.on("0.0.0.0").map_err(io_err(&dir))?) } else { None };
    drop(ports);
    let mut state = SandboxState {
        cluster_toml: dir.join("cluster.toml"),
        dir: dir.clone(),
        zk_cluster: zk_cluster.clone(),
        zk_root_path: ROOT_PATH.into(),
        zookeeper_pid,
        version: options.version.clone(),
        daemon: options.daemon,
        components,
        releases,
        layout: options.layout,
        home: home.clone(),
        sshd: None,
        hdfs: None,
    };
    save_state(&state)?;
    if let Some(port) = sshd_port {
        let mut addresses: Vec<String> = state.components.iter().map(|c| c.host.clone()).collect();
        addresses.dedup();
        let sshd = sshd::start(&dir, &addresses, port)?;
        state.sshd = Some(SshdState {
            pid: sshd.pid,
            port: sshd.port,
            user: sshd.user,
            client_key: sshd.client_key,
            known_hosts: sshd.known_hosts,
        });
        save_state(&state)?;
    }
    match &home {
        None => {
            for component in &state.components {
                separate::install(component, &release, &state, options)?;
            }
        }
        Some(home) => {
            let layout = deploy::Layout { home: home.clone(), components: state.components.clone() };
            deploy::lay_out(&dir, &layout, &release, &zk_cluster, ROOT_PATH, options).await?;
        }
    }
    if options.spark_master == hdfs::SparkMaster::Yarn {
        let stand_in = hdfs::Hdfs::new(&dir);
        let set = stand_in.set_up(&release)?;
        // Like sbin/deploy.sh's edits: earlier lines commented out, the setting appended (the
        // last definition wins, O§2.4). A deploy layout's TaskManagers may share one file.
        let mut files: Vec<PathBuf> = state
            .components
            .iter()
            .filter(|c| c.role == Role::Taskmanager)
            .map(|c| c.dir.join("conf/taskmanager.properties"))
            .collect();
        files.dedup();
        for file in files {
            let text = std::fs::read_to_string(&file).map_err(io_err(&file))?;
            let text = set.iter().fold(text, |t, (key, value)| deploy::exchange(&t, key, value));
            std::fs::write(&file, text).map_err(io_err(&file))?;
        }
        state.hdfs = Some(stand_in.dir);
        save_state(&state)?;
    }
    write_cluster_toml(&state, options.fast)?;

    let of = |role: Role| state.components.iter().filter(move |c| c.role == role).cloned().collect::<Vec<_>>();
    // Tablets first: a nameserver that wins the election with too few tablets exits (C§1.2).
    start_role(&state, Role::Tablet, options.daemon).await?;
    for tablet in of(Role::Tablet) {
        wait_for(&state, &tablet, "register in ZooKeeper", || async {
            zk_has_node(&state, &format!("nodes/{}", server_name(&tablet))).await
        })
        .await?;
    }
    start_role(&state, Role::Nameserver, options.daemon).await?;
    let first_ns = of(Role::Nameserver)[0].clone();
    let tablets: Vec<String> = of(Role::Tablet).iter().map(|t| t.endpoint.clone()).collect();
    wait_for(&state, &first_ns, "elect a leader that sees every tablet healthy", || {
        leader_sees_tablets(&state, tablets.clone())
    })
    .await?;
    create_tables(&state, options.tablets, options.storage_modes).await?;
    start_role(&state, Role::Apiserver, options.daemon).await?;
    start_role(&state, Role::Taskmanager, options.daemon).await?;
    for api in of(Role::Apiserver) {
        let endpoint = api.endpoint.clone();
        wait_for(&state, &api, "answer /health", || {
            let endpoint = endpoint.clone();
            async move { http_get(&endpoint, "/health").await.is_some_and(|body| body.trim() == "OK") }
        })
        .await?;
    }
    if let Some(tm) = of(Role::Taskmanager).first() {
        wait_for(&state, tm, "become the active TaskManager", || zk_has_node(&state, "taskmanager/leader")).await?;
    }
    Ok(state)
}

/// Starts every component of `role`: the deploy layout through the release's
/// `sbin/start-<role>s.sh`, the separate layout through each install's `bin/start.sh`.
async fn start_role(state: &SandboxState, role: Role, daemon: bool) -> Result<(), SandboxError> {
    match &state.home {
        Some(home) => {
            let mon: &[&str] = if daemon { &["mon"] } else { &[] };
            deploy::run_sbin(&state.dir, home, deploy::start_script(role), mon).await
        }
        None => {
            let components: Vec<SandboxComponent> =
                state.components.iter().filter(|c| c.role == role).cloned().collect();
            start_all(&components, daemon).await;
            Ok(())
        }
    }
}

fn write_cluster_toml(state: &SandboxState, fast: bool) -> Result<(), SandboxError> {
    // The tool's own session: its lock outlives a killed run by this long.
    let session = if fast { "4s" } else { "10s" };
    let mut text = match &state.home {
        None => format!(
            "# Written by `mldb-upgrade sandbox up`: each component in its own directory on its own address.\n\
             zk_cluster = \"{}\"\nzk_root_path = \"{}\"\n",
            state.zk_cluster, state.zk_root_path
        ),
        // ZooKeeper, the components, their directories and the TaskManagers' SPARK_HOME come
        // from conf/hosts and the conf/openmldb-env.sh beside it, as the sbin scripts read them.
        Some(home) => format!(
            "# Written by `mldb-upgrade sandbox up --layout deploy`: the cluster sbin/deploy-all.sh laid out.\n\
             hosts = \"{}\"\ndaemon = {}\n",
            home.join("conf/hosts").display(),
            state.daemon
        ),
    };
    text.push_str(&format!("zk_session_timeout = \"{session}\"\n\n[ssh]\n"));
    match &state.sshd {
        None => text.push_str("# Every host of the sandbox is this machine.\ntransport = \"local\"\n"),
        Some(sshd) => text.push_str(&format!(
            "# Every host through the sandbox's sshd, strict host keys.\ntransport = \"ssh2\"\nuser = \"{}\"\n\
             port = {}\nidentity_file = \"{}\"\nknown_hosts = \"{}\"\nconnect_timeout = \"5s\"\n",
            sshd.user,
            sshd.port,
            sshd.client_key.display(),
            sshd.known_hosts.display()
        )),
    }
    // Each host stages releases in a directory of its own, as separate machines would.
    let mut hosts: Vec<&str> = state.components.iter().map(|c| c.host.as_str()).collect();
    hosts.dedup();
    for host in hosts {
        text.push_str(&format!(
            "\n[ssh.host.\"{host}\"]\nstaging_dir = \"{}\"\n",
            state.dir.join("hosts").join(host).join("staging").display()
        ));
    }
    if state.home.is_none() {
        for c in &state.components {
            text.push_str(&format!(
                "\n[[component]]\nrole = \"{}\"\nendpoint = \"{}\"\nhost = \"{}\"\ndir = \"{}\"\ndaemon = {}\n",
                c.role,
                c.endpoint,
                c.host,
                c.dir.display(),
                state.daemon
            ));
        }
    }
    std::fs::write(&state.cluster_toml, text).map_err(io_err(&state.dir))
}

/// Runs `bin/start.sh <op> <role> [mon]` in a component's install dir and returns its output.
/// The exit code is not trusted (O§1.4): callers check the component themselves.
pub async fn start_sh(c: &SandboxComponent, op: &str, daemon: bool) -> String {
    let mut cmd = tokio::process::Command::new("bash");
    cmd.arg(c.dir.join("bin/start.sh")).arg(op).arg(c.start_sh_name());
    if daemon {
        cmd.arg("mon");
    }
    // Own process group: a Ctrl-C meant for mldb-upgrade must not reach the components.
    cmd.current_dir(&c.dir).stdin(std::process::Stdio::null()).process_group(0);
    match cmd.output().await {
        Ok(out) => format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
        Err(e) => format!("cannot run start.sh: {e}"),
    }
}

async fn start_all(components: &[SandboxComponent], daemon: bool) {
    let runs = components.iter().map(|c| start_sh(c, "start", daemon));
    for (c, out) in components.iter().zip(futures::future::join_all(runs).await) {
        tracing::debug!(component = %c.name, "start.sh: {out}");
    }
}

async fn wait_for<F, Fut>(
    state: &SandboxState,
    c: &SandboxComponent,
    condition: &str,
    mut check: F,
) -> Result<(), SandboxError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let waited = Duration::from_secs(60);
    let deadline = Instant::now() + waited;
    while Instant::now() < deadline {
        if check().await {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let log = c.log_file();
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    Err(SandboxError::NotReady {
        what: format!("{} ({})", c.name, c.endpoint),
        condition: condition.to_string(),
        waited,
        tail: lines[lines.len().saturating_sub(10)..].join("\n"),
        log,
        dir: state.dir.clone(),
    })
}

async fn zk_client(state: &SandboxState) -> Option<crate::cluster::zk::Zk> {
    let settings = crate::config::ZkSettings {
        cluster: state.zk_cluster.clone(),
        root_path: state.zk_root_path.clone(),
        cert: None,
        session_timeout: Duration::from_secs(10),
        connect_timeout: Duration::from_secs(3),
    };
    Some(crate::cluster::zk::Zk::new(settings))
}

async fn zk_has_node(state: &SandboxState, path: &str) -> bool {
    let Some(zk) = zk_client(state).await else { return false };
    matches!(zk.stat(path).await, Ok(Some(_)))
}

/// What ZooKeeper and the nameserver call a component: the name in its `data/name.txt` when it
/// runs with `--use_name` (written at its first start, [`crate::sim::names`]), else its endpoint.
pub fn server_name(c: &SandboxComponent) -> String {
    std::fs::read_to_string(c.dir.join("data/name.txt"))
        .ok()
        .and_then(|text| text.lines().next().map(str::to_string))
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| c.endpoint.clone())
}

/// The nameserver leader's endpoint, from ZooKeeper (C§1.2); a server name (`--use-name`) is
/// mapped to its real endpoint through `map/names`.
pub async fn nameserver_leader(state: &SandboxState) -> Option<String> {
    let zk = zk_client(state).await?;
    let children = zk.children("leader").await.ok()?;
    let first = children.first()?;
    let value = String::from_utf8(zk.get(&format!("leader/{first}")).await.ok()?).ok()?;
    match zk.get(&format!("map/names/{value}")).await {
        Ok(real) if !real.is_empty() => String::from_utf8(real).ok(),
        _ => Some(value),
    }
}

/// The real endpoint of a ShowTablet row: `real_endpoint` on a `use_name` cluster, else
/// `endpoint` (C§2.2).
pub fn tablet_row_endpoint(row: &Value) -> Option<&str> {
    row["real_endpoint"].as_str().filter(|r| *r != "-").or_else(|| row["endpoint"].as_str())
}

/// Calls a nameserver RPC on the leader.
pub async fn ns_call(state: &SandboxState, method: &str, body: Value) -> Result<Value, String> {
    let leader = nameserver_leader(state).await.ok_or("no nameserver leader in ZooKeeper")?;
    crate::sim::http::call(&leader, &format!("/NameServer/{method}"), &body, Duration::from_secs(10))
        .await
        .map_err(|e| e.to_string())
}

async fn leader_sees_tablets(state: &SandboxState, tablets: Vec<String>) -> bool {
    let Ok(reply) = ns_call(state, "ShowTablet", json!({})).await else { return false };
    if crate::sim::http::reply_code(&reply) != 0 {
        return false;
    }
    let healthy: Vec<&str> = reply["tablets"]
        .as_array()
        .map(|ts| ts.iter().filter(|t| t["state"] == "kHealthy").filter_map(tablet_row_endpoint).collect())
        .unwrap_or_default();
    tablets.iter().all(|t| healthy.contains(&t.as_str()))
}

async fn create_tables(state: &SandboxState, tablets: usize, storage_modes: StorageModes) -> Result<(), SandboxError> {
    for SandboxTable { db, name, partitions, replicas, storage_mode } in sandbox_tables(tablets, storage_modes) {
        let reply = ns_call(state, "CreateDatabase", json!({"db": db, "if_not_exists": true}))
            .await
            .map_err(SandboxError::Tables)?;
        let code = crate::sim::http::reply_code(&reply);
        if code != 0 && code != 801 {
            return Err(SandboxError::Tables(format!("CreateDatabase {db}: {reply}")));
        }
        // A schema as `CREATE TABLE t (row_key string, row_value string, INDEX(KEY=row_key))`
        // gives it (an absolute TTL of 0: rows never expire); `sandbox load` writes such rows.
        let table_info = json!({"name": name, "db": db, "partition_num": partitions, "replica_num": replicas,
                                "storage_mode": storage_mode,
                                "column_desc": [{"name": "row_key", "data_type": "kString"},
                                                {"name": "row_value", "data_type": "kString"}],
                                "column_key": [{"index_name": "row_key", "col_name": ["row_key"],
                                                "ttl": {"ttl_type": "kAbsoluteTime", "abs_ttl": 0}}]});
        let reply =
            ns_call(state, "CreateTable", json!({"table_info": table_info})).await.map_err(SandboxError::Tables)?;
        if crate::sim::http::reply_code(&reply) != 0 {
            return Err(SandboxError::Tables(format!("CreateTable {db}.{name}: {reply}")));
        }
    }
    Ok(())
}

/// A plain HTTP GET; `None` when the server does not answer 200.
pub async fn http_get(endpoint: &str, path: &str) -> Option<String> {
    crate::cluster::rpc::RpcClient::new(None, Duration::from_secs(3)).get_text(endpoint, path).await.ok()
}
