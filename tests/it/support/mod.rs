//! Test support: the real binary, a real ZooKeeper and a real sshd, all on 127.0.0.1.

pub mod sshd;

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
