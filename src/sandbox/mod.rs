//! Local rehearsal clusters: a real ZooKeeper plus simulated OpenMLDB components, each on its own
//! loopback address, laid out like a real deployment. `sandbox up` starts one in a directory and
//! writes `cluster.toml` for the tool; `sandbox down` stops everything it started.
//!
//! Processes started by `sandbox up` outlive the command, so their pids are kept in files in the
//! sandbox directory and `down` stops them by pid, waiting until they are really gone.

pub mod client;
pub mod load;
pub mod zookeeper;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use zookeeper::ZooKeeperServer;

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("{0}")]
    ZooKeeper(#[from] zookeeper::ZooKeeperError),
    #[error("sandbox directory {dir}: {source}")]
    Io {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("a sandbox is already running in {dir} (ZooKeeper pid {pid}); run `mldb-upgrade sandbox down --dir {dir}` first")]
    AlreadyRunning { dir: PathBuf, pid: u32 },
    #[error("no sandbox in {dir} (no zookeeper.pid); start one with `mldb-upgrade sandbox up --dir {dir}`")]
    NotFound { dir: PathBuf },
}

/// What `sandbox up` started.
#[derive(Debug, Clone)]
pub struct SandboxInfo {
    pub dir: PathBuf,
    pub zk_cluster: String,
    pub zookeeper_pid: u32,
    pub cluster_toml: PathBuf,
}

const ZK_PID_FILE: &str = "zookeeper.pid";
const ZK_ADDR_FILE: &str = "zookeeper.addr";

/// Starts a sandbox in `dir`.
pub fn up(dir: &Path) -> Result<SandboxInfo, SandboxError> {
    let io = |source| SandboxError::Io { dir: dir.to_path_buf(), source };
    std::fs::create_dir_all(dir).map_err(io)?;
    let dir = dir.canonicalize().map_err(io)?;
    if let Some(pid) = read_pid(&dir.join(ZK_PID_FILE)).filter(|p| is_running(*p)) {
        return Err(SandboxError::AlreadyRunning { dir, pid });
    }
    let zk = ZooKeeperServer::start(&dir.join("zookeeper"))?;
    let zk_cluster = zk.connect_string();
    let zookeeper_pid = zk.detach().unwrap_or_default();
    std::fs::write(dir.join(ZK_PID_FILE), zookeeper_pid.to_string()).map_err(io)?;
    std::fs::write(dir.join(ZK_ADDR_FILE), &zk_cluster).map_err(io)?;
    let cluster_toml = dir.join("cluster.toml");
    std::fs::write(
        &cluster_toml,
        format!(
            "# Written by `mldb-upgrade sandbox up`. Every host of the sandbox is this machine.\n\
             zk_cluster = \"{zk_cluster}\"\nzk_root_path = \"/openmldb\"\n\n[ssh]\ntransport = \"local\"\n"
        ),
    )
    .map_err(io)?;
    Ok(SandboxInfo { dir, zk_cluster, zookeeper_pid, cluster_toml })
}

/// Stops everything `up` started in `dir`.
pub fn down(dir: &Path) -> Result<Vec<u32>, SandboxError> {
    let pid_file = dir.join(ZK_PID_FILE);
    let Some(pid) = read_pid(&pid_file) else {
        return Err(SandboxError::NotFound { dir: dir.to_path_buf() });
    };
    stop_pid(pid, Duration::from_secs(10));
    let _ = std::fs::remove_file(&pid_file);
    Ok(vec![pid])
}

/// The ZooKeeper address and whether it runs.
pub fn status(dir: &Path) -> Result<(String, u32, bool), SandboxError> {
    let pid = read_pid(&dir.join(ZK_PID_FILE)).ok_or_else(|| SandboxError::NotFound { dir: dir.to_path_buf() })?;
    let addr = std::fs::read_to_string(dir.join(ZK_ADDR_FILE)).unwrap_or_default();
    Ok((addr.trim().to_string(), pid, is_running(pid)))
}

fn read_pid(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// True when `pid` is a live process. A zombie counts as gone: on machines whose init does not
/// reap orphans, `kill -0` still succeeds on one (`reference/tooling.md`, "Other pitfalls").
pub fn is_running(pid: u32) -> bool {
    let Ok(raw) = i32::try_from(pid) else {
        return false;
    };
    if kill(Pid::from_raw(raw), None).is_err() {
        return false;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next()) != Some("Z"),
        Err(_) => false,
    }
}

/// Sends SIGTERM, waits up to `grace`, then SIGKILL, and waits until the process is gone.
pub fn stop_pid(pid: u32, grace: Duration) {
    let Ok(raw) = i32::try_from(pid) else { return };
    let target = Pid::from_raw(raw);
    let _ = kill(target, Signal::SIGTERM);
    let deadline = Instant::now() + grace;
    while is_running(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    if is_running(pid) {
        let _ = kill(target, Signal::SIGKILL);
        let deadline = Instant::now() + Duration::from_secs(5);
        while is_running(pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
