//! Test support: the real binary, a real ZooKeeper and a real sshd, all on 127.0.0.1.

pub mod flow;
pub mod sshd;
pub mod tmux;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use mldb_upgrade::sandbox::zookeeper::ZooKeeperServer;

/// The `mldb-upgrade` binary under test.
pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_mldb-upgrade"))
}

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// What a run of the binary printed and returned.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs the binary with `args` in `cwd`, with no stdin.
pub fn run_in(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(binary());
    cmd.args(args).current_dir(cwd).stdin(Stdio::null()).env_remove("MLDB_CLUSTER").env("NO_COLOR", "1");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run mldb-upgrade");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

pub fn run(args: &[&str]) -> Run {
    run_in(&repo(), args, &[])
}

/// A ZooKeeper server in its own temp dir, stopped when dropped.
pub struct TestZk {
    pub server: ZooKeeperServer,
    /// Holds the data directory until the server is gone (fields drop in order).
    _dir: tempfile::TempDir,
}

impl TestZk {
    pub fn start() -> TestZk {
        let dir = tempfile::tempdir().expect("tempdir");
        let server = ZooKeeperServer::start(dir.path()).expect("ZooKeeper starts (make deps installs it)");
        TestZk { server, _dir: dir }
    }
    pub fn addr(&self) -> String {
        self.server.connect_string()
    }
}

/// Writes `text` to `dir/name` and returns the path as a string.
pub fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write test file");
    path.display().to_string()
}

/// A fast sandbox (real ZooKeeper, simulated OpenMLDB) for a test, stopped when dropped. Small
/// unless `extra` asks for more: 1 nameserver, 3 tablets, no apiserver, no taskmanager.
pub struct Sandbox {
    pub dir: PathBuf,
    _tmp: tempfile::TempDir,
}

impl Sandbox {
    pub fn up(extra: &[&str]) -> Sandbox {
        let mut args: Vec<&str> = vec!["--nameservers", "1", "--apiservers", "0", "--taskmanagers", "0"];
        for flag in extra.chunks(2) {
            if let Some(i) = args.iter().position(|a| *a == flag[0]) {
                args.drain(i..i + 2);
            }
        }
        Self::up_exactly(&[args.as_slice(), extra].concat())
    }

    pub fn up_exactly(options: &[&str]) -> Sandbox {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("sb");
        let mut args = vec!["sandbox", "up", "--dir", dir.to_str().expect("utf-8 path"), "--fast"];
        args.extend_from_slice(options);
        let out = run(&args);
        let sb = Sandbox { dir, _tmp: tmp };
        assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
        sb
    }

    pub fn cluster(&self) -> String {
        self.dir.join("cluster.toml").display().to_string()
    }

    /// An upgrader on this sandbox with its own ZooKeeper session, as one run of the tool has;
    /// call it inside a tokio runtime.
    pub fn upgrader(&self) -> mldb_upgrade::cluster::upgrade::Upgrader {
        let config = mldb_upgrade::config::ClusterConfig::load(Path::new(&self.cluster())).expect("cluster.toml");
        let zk = std::sync::Arc::new(mldb_upgrade::cluster::zk::Zk::new(config.zk.clone()));
        mldb_upgrade::cluster::upgrade::Upgrader::for_cluster(&config, zk)
    }

    pub fn tablet(&self, n: usize) -> String {
        let state = mldb_upgrade::sandbox::load_state(&self.dir).expect("sandbox.json");
        state.components.iter().filter(|c| c.role.as_str() == "tablet").nth(n - 1).expect("tablet").endpoint.clone()
    }

    /// Runs script text with `mldb-upgrade run --cluster` plus `args`.
    pub fn run_with(&self, script: &str, args: &[&str]) -> Run {
        let file = write(&self.dir, &format!("t{}.rhai", unique()), script);
        let mut all = vec!["run", file.as_str(), "--cluster"];
        let cluster = self.cluster();
        all.push(&cluster);
        all.extend_from_slice(args);
        run(&all)
    }

    pub fn run(&self, script: &str) -> Run {
        self.run_with(script, &[])
    }

    /// Starts `mldb-upgrade run` on script text in the background.
    pub fn spawn(&self, script: &str) -> std::process::Child {
        let file = write(&self.dir, &format!("bg{}.rhai", unique()), script);
        Command::new(binary())
            .args(["run", &file, "--cluster", &self.cluster()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn mldb-upgrade")
    }

    /// Starts `mldb-upgrade sandbox load` on every table in the background, retrying refused
    /// writes for up to 10 s as an application would; stopped (SIGINT) by [`Load::finish`] or
    /// killed when dropped.
    pub fn load(&self, rate: u32) -> Load {
        let report = self.dir.join(format!("load{}.jsonl", unique()));
        let child = Command::new(binary())
            .args(["sandbox", "load", "--dir", &self.dir.display().to_string(), "--rate", &rate.to_string()])
            .args(["--duration", "30m", "--retry-for", "10s", "--report", &report.display().to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn mldb-upgrade sandbox load");
        Load { child: Some(child), report }
    }

    /// The local mirror of the run journal.
    pub fn journal_file(&self) -> PathBuf {
        self.dir.join(".mldb-upgrade/journal.jsonl")
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = mldb_upgrade::sandbox::down(&self.dir);
    }
}

/// A client of a sandbox's cluster, routing like the SDK.
pub async fn client(state: &mldb_upgrade::sandbox::SandboxState) -> mldb_upgrade::sandbox::client::Client {
    let options = mldb_upgrade::sandbox::client::ClientOptions {
        zk_cluster: state.zk_cluster.clone(),
        zk_root_path: state.zk_root_path.clone(),
        zk_cert: None,
    };
    mldb_upgrade::sandbox::client::Client::connect(options).await.expect("connect to the sandbox")
}

/// A name no other file in the test has.
pub fn unique() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or_default()
}

/// Builds a sandbox release with the real binary; returns the release directory.
pub fn release(out: &Path, version: &str, extra: &[&str]) -> PathBuf {
    let mut args = vec!["sandbox", "release", "--version", version, "--out", out.to_str().expect("utf-8 path")];
    args.extend_from_slice(extra);
    let r = run(&args);
    assert_eq!(r.code, 0, "{}", r.stderr);
    out.join(format!("openmldb-{version}-linux"))
}

/// A background `sandbox load`.
pub struct Load {
    child: Option<std::process::Child>,
    pub report: PathBuf,
}

impl Load {
    /// Stops the load, then reads every acknowledged row back (`sandbox verify --json`).
    /// Returns the load's summary line and the verify report.
    pub fn finish(mut self) -> (String, serde_json::Value) {
        let child = self.child.take().expect("load running");
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).expect("SIGINT the load");
        let out = child.wait_with_output().expect("wait for the load");
        let summary = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert!(out.status.success(), "load failed: {summary}\n{}", String::from_utf8_lossy(&out.stderr));
        let verify = run(&["sandbox", "verify", "--json", "--report", &self.report.display().to_string()]);
        let report = serde_json::from_str(&verify.stdout)
            .unwrap_or_else(|e| panic!("verify --json: {e}\n{}\n{}", verify.stdout, verify.stderr));
        (summary, report)
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
