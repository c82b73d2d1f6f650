//! The sandbox: releases laid out like OpenMLDB's (O§4.4), start.sh semantics (O§1), and
//! `sandbox up/status/down` with every component on its own loopback address.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use mldb_upgrade::sandbox::{self, is_running};
use serde_json::{json, Value};

use crate::support;

fn curl_post(endpoint: &str, path: &str, body: &str) -> Value {
    let out = Command::new("curl")
        .args(["-s", "-H", "Authorization: foo", "-X", "POST", "-d", body])
        .arg(format!("http://{endpoint}{path}"))
        .output()
        .expect("curl runs");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&out.stdout)))
}

fn curl_get(endpoint: &str, path: &str) -> String {
    let out = Command::new("curl").args(["-s"]).arg(format!("http://{endpoint}{path}")).output().expect("curl runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Pids of live processes started from inside `dir`.
fn leftovers(dir: &Path) -> Vec<u32> {
    sandbox::processes_inside(&dir.canonicalize().unwrap())
}

/// Stops the sandbox even when an assertion fails.
struct Down<'a>(&'a Path);
impl Drop for Down<'_> {
    fn drop(&mut self) {
        let _ = sandbox::down(self.0);
    }
}

fn endpoints(state: &Value, role: &str) -> Vec<String> {
    state["components"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["role"] == role)
        .map(|c| c["endpoint"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn sandbox_up_2_nameservers_3_tablets_then_down_leaves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("sb");
    let d = dir.to_str().unwrap();
    let _down = Down(&dir);
    let out = support::run(&["sandbox", "up", "--dir", d, "--version", "0.9.1", "--fast"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("sandbox 0.9.1 up in"), "{}", out.stdout);
    let state: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("sandbox.json")).unwrap()).unwrap();

    // ShowTablet through the leader, as an operator would with curl (C§2.3).
    let leader = sandbox_leader(&state);
    let tablets = curl_post(&leader, "/NameServer/ShowTablet", "{}");
    let states: Vec<&str> =
        tablets["tablets"].as_array().unwrap().iter().map(|t| t["state"].as_str().unwrap()).collect();
    assert_eq!(states, ["kHealthy", "kHealthy", "kHealthy"], "{tablets}");
    // Every component on its own loopback address.
    let mut hosts: Vec<String> =
        state["components"].as_array().unwrap().iter().map(|c| c["host"].as_str().unwrap().into()).collect();
    hosts.dedup();
    assert_eq!(hosts.len(), 8);
    // Versions: /version on C++ components (C§1.4), GetVersion on the TaskManager (O§4.3).
    let full = mldb_upgrade::sandbox::release::full_version("0.9.1");
    for role in ["tablet", "nameserver", "apiserver"] {
        for ep in endpoints(&state, role) {
            assert_eq!(curl_get(&ep, "/version"), full, "{role} {ep}");
        }
    }
    let api = &endpoints(&state, "apiserver")[0];
    let dbs: Value = serde_json::from_str(&curl_get(api, "/dbs")).unwrap();
    assert_eq!(dbs, json!({"code": 0, "msg": "ok", "dbs": ["demo", "shop"]}));
    // Tables with 1, 2 and 3 replicas.
    let tables = curl_post(&leader, "/NameServer/ShowTable", r#"{"db":"demo"}"#);
    let replicas: Vec<usize> = tables["table_info"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["table_partition"][0]["partition_meta"].as_array().unwrap().len())
        .collect();
    assert_eq!(replicas.iter().copied().collect::<std::collections::BTreeSet<_>>(), [1, 2, 3].into());

    // The active TaskManager answers GetVersion; when it stops, the standby takes over (C§3.8).
    let status = support::run(&["sandbox", "status", "--dir", d]);
    assert_eq!(status.code, 0, "{}", status.stderr);
    let tm_line =
        status.stdout.lines().find(|l| l.contains("taskmanager") && l.contains("leader")).unwrap().to_string();
    let tm_name = tm_line.split_whitespace().next().unwrap();
    let tm_dir = dir.join(tm_name);
    let tm_ep = tm_line.split_whitespace().nth(1).unwrap();
    let version = curl_post(tm_ep, "/openmldb.taskmanager.TaskManagerServer/GetVersion", "{}");
    assert_eq!(version["taskmanagerVersion"], full.as_str());
    assert_eq!(version["batchVersion"], full.as_str());
    let stop = Command::new("bash").arg(tm_dir.join("bin/start.sh")).args(["stop", "taskmanager"]).output().unwrap();
    assert!(String::from_utf8_lossy(&stop.stdout).contains("Stop taskmanager success"));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = support::run(&["sandbox", "status", "--dir", d]);
        if status
            .stdout
            .lines()
            .any(|l| l.contains("taskmanager") && l.contains("leader") && !l.starts_with(&format!(" {tm_name}")))
        {
            break;
        }
        assert!(Instant::now() < deadline, "standby TaskManager did not take over:\n{}", status.stdout);
        std::thread::sleep(Duration::from_millis(300));
    }

    let down = support::run(&["sandbox", "down", "--dir", d]);
    assert_eq!(down.code, 0, "{}", down.stderr);
    assert_eq!(leftovers(&dir), Vec::<u32>::new(), "processes left behind");
    assert!(!is_running(state["zookeeper_pid"].as_u64().unwrap() as u32));
    // A second `up` in the stopped sandbox's directory would start from its ZooKeeper data
    // (its tables clash with the new ones): refused before anything starts.
    let again = support::run(&["sandbox", "up", "--dir", d, "--fast"]);
    assert_eq!(
        again.code, 2,
        "{}
{}",
        again.stdout, again.stderr
    );
    assert!(again.stderr.contains("holds a stopped sandbox") && again.stderr.contains("rm -rf"), "{}", again.stderr);
    assert_eq!(leftovers(&dir), Vec::<u32>::new(), "the refused up started something");
}

fn sandbox_leader(state: &Value) -> String {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let state: sandbox::SandboxState = serde_json::from_value(state.clone()).unwrap();
    rt.block_on(sandbox::nameserver_leader(&state)).expect("a nameserver leader")
}

/// O§1.3 and O§1.8: in mon mode `bin/<c>.pid` holds the mon pid, `.pid.child` the component's;
/// mon restarts a killed component; `start.sh stop` stops both.
#[test]
fn start_sh_mon_mode_pid_files_o1_3() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("sb");
    let d = dir.to_str().unwrap();
    let _down = Down(&dir);
    let out = support::run(&[
        "sandbox",
        "up",
        "--dir",
        d,
        "--fast",
        "--daemon",
        "--nameservers",
        "1",
        "--tablets",
        "1",
        "--apiservers",
        "0",
        "--taskmanagers",
        "0",
    ]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let tablet = dir.join("tablet-1");
    let read = |f: &str| std::fs::read_to_string(tablet.join("bin").join(f)).unwrap().trim().parse::<u32>().unwrap();
    let mon_pid = read("tablet.pid");
    let child_pid = read("tablet.pid.child");
    assert_ne!(mon_pid, child_pid);
    assert!(std::fs::read_link(format!("/proc/{mon_pid}/exe")).unwrap().ends_with("bin/mon"));
    let cmdline = std::fs::read_to_string(format!("/proc/{child_pid}/cmdline")).unwrap();
    assert!(cmdline.starts_with("./bin/openmldb\0--flagfile=./conf/tablet.flags"), "{cmdline:?}");

    // Killing only the component: mon starts it again (from whatever bin/openmldb is on disk).
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child_pid as i32), nix::sys::signal::Signal::SIGKILL).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    // mon rewrites the child pid file: it can be read empty in between.
    let child = || {
        let text = std::fs::read_to_string(tablet.join("bin/tablet.pid.child")).unwrap_or_default();
        text.trim().parse::<u32>().ok()
    };
    while child().is_none_or(|pid| pid == child_pid || !is_running(pid)) {
        assert!(Instant::now() < deadline, "mon did not restart the tablet");
        std::thread::sleep(Duration::from_millis(200));
    }
    let restarted = read("tablet.pid.child");
    assert!(is_running(mon_pid));

    let stop = Command::new("bash").arg(tablet.join("bin/start.sh")).args(["stop", "tablet"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&stop.stdout);
    assert!(stdout.contains("Stop tablet success(mon mode)"), "{stdout}");
    assert_eq!(stop.status.code(), Some(0));
    assert!(!tablet.join("bin/tablet.pid").exists() && !tablet.join("bin/tablet.pid.child").exists());
    let deadline = Instant::now() + Duration::from_secs(10);
    while is_running(mon_pid) || is_running(restarted) {
        assert!(Instant::now() < deadline, "mon {mon_pid} or tablet {restarted} still running after stop");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// O§1.4-1.5: start.sh's exit-0 quirks, and a `--broken` release that fails at start (O§4.4).
#[test]
fn start_sh_quirks_and_broken_release_o1_4() {
    let tmp = tempfile::tempdir().unwrap();
    let out = support::run(&[
        "sandbox",
        "release",
        "--version",
        "0.9.3",
        "--out",
        tmp.path().to_str().unwrap(),
        "--tar",
        "--broken",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let release = tmp.path().join("openmldb-0.9.3-linux");
    for f in ["bin/openmldb", "bin/mon", "bin/start.sh", "conf/tablet.flags.template", "taskmanager/bin/taskmanager.sh"]
    {
        assert!(release.join(f).exists(), "{f} missing");
    }
    assert!(tmp.path().join("openmldb-0.9.3-linux.tar.gz").exists());
    assert!(tmp.path().join("spark-3.2.1-bin-openmldbspark-0.9.3/jars/openmldb-batch-0.9.3.jar").exists());
    // `bin/openmldb --version` reads the release it sits in (O§4.1).
    let version = Command::new(release.join("bin/openmldb")).arg("--version").output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&version.stdout),
        format!("openmldb version {}\n", mldb_upgrade::sandbox::release::full_version("0.9.3"))
    );
    let flags = mldb_upgrade::sandbox::release::templates::render_flags(
        mldb_upgrade::sandbox::release::templates::TABLET_FLAGS,
        &[("endpoint", "127.0.0.1:1".into()), ("zk_cluster", "127.0.0.1:2".into())],
    );
    std::fs::write(release.join("conf/tablet.flags"), flags).unwrap();
    std::fs::write(release.join("conf/sandbox.env"), "SANDBOX_SLEEP_SCALE=0.05\n").unwrap();
    let start_sh = |args: &[&str]| {
        let out = Command::new("bash").arg(release.join("bin/start.sh")).args(args).output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, stdout, _) = start_sh(&["start", "tablet"]);
    assert_eq!(code, Some(0), "a failed start exits 0");
    assert!(stdout.contains("Start tablet failed!"), "{stdout}");
    assert!(!release.join("bin/tablet.pid").exists());
    let log = std::fs::read_to_string(release.join("logs/tablet.log")).unwrap();
    assert!(log.contains("openmldb: fatal: sandbox release 0.9.3 was built with --broken"), "{log}");
    let (code, _, stderr) = start_sh(&["frobnicate", "tablet"]);
    assert_eq!((code, stderr.trim()), (Some(0), "Only support {start|stop|restart}"));
    let (code, stdout, _) = start_sh(&["stop", "tablet"]);
    assert_eq!(code, Some(0));
    assert!(stdout.contains("no tablet to stop (could not find file ./bin/tablet.pid)"), "{stdout}");
    let (code, stdout, _) = start_sh(&["start", "tablets"]);
    assert_eq!(code, Some(1));
    assert!(stdout.starts_with("No component named tablets"), "{stdout}");
    let (code, stdout, _) = start_sh(&["start"]);
    assert_eq!(code, Some(1));
    assert!(stdout.starts_with("Usage: start.sh start/stop/restart <component> [mon]"), "{stdout}");
}

#[test]
fn sandbox_rejects_bad_options_as_input_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let out = support::run(&["sandbox", "up", "--dir", tmp.path().to_str().unwrap(), "--version", "0.9"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("`0.9` is not a release version"), "{}", out.stderr);
    let out = support::run(&["sandbox", "status", "--dir", tmp.path().to_str().unwrap()]);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("no sandbox in"), "{}", out.stderr);
}
