//! OpenMLDB's own Python SDK (`openmldb` 0.9.2 from PyPI, its native C++ client unmodified)
//! against the sandbox: it reads the tables from ZooKeeper (binary `TableInfo`), speaks
//! baidu_std to the nameserver and the tablets, and its writes are read back with the tool's
//! own client. `make sdk` (run by `make test`) installs it into `.venv-sdk`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::support::{self, Sandbox};

/// The Python with the SDK; `None` (the test is skipped, said so) where the SDK's native
/// library cannot load: it is built for Linux x86-64 only.
fn sdk_python() -> Option<PathBuf> {
    if !(cfg!(target_os = "linux") && cfg!(target_arch = "x86_64")) {
        eprintln!("skipped: OpenMLDB's SDK is built for Linux x86-64 only");
        return None;
    }
    let python = std::env::var_os("MLDB_SDK_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| support::repo().join(".venv-sdk/bin/python"));
    assert!(python.exists(), "no {}: run `make sdk` (`make test` does) to install OpenMLDB's SDK", python.display());
    Some(python)
}

fn zk_of(sb: &Sandbox) -> String {
    mldb_upgrade::sandbox::load_state(&sb.dir).unwrap().zk_cluster
}

/// Runs Python `code` with the SDK connected as `c` (a DB-API connection); its stdout.
fn with_sdk(python: &Path, sb: &Sandbox, code: &str) -> String {
    let program = format!(
        "import openmldb.dbapi\nc = openmldb.dbapi.connect(zk={:?}, zkPath='/openmldb')\ncur = c.cursor()\n{code}\n",
        zk_of(sb)
    );
    let out = std::process::Command::new(python).args(["-c", &program]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    stdout
}

/// `sandbox load --client sdk` for `duration`; the load report.
fn sdk_load(python: &Path, sb: &Sandbox, report: &Path, duration: &str) -> std::process::Child {
    std::process::Command::new(support::binary())
        .args(["sandbox", "load", "--dir", sb.dir.to_str().unwrap(), "--client", "sdk", "--rate", "60"])
        .args(["--duration", duration, "--report", report.to_str().unwrap(), "--python", python.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

fn verified(report: &Path) -> serde_json::Value {
    let out = support::run(&["sandbox", "verify", "--report", report.to_str().unwrap(), "--json"]);
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}\n{}", out.stdout, out.stderr))
}

/// Acknowledged writes of the report to `db.table` partition `pid` issued at or after `from_ms`.
fn acks(report: &Path, table: &str, pid: Option<u64>, from_ms: u64) -> usize {
    std::fs::read_to_string(report)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|l| {
            l["event"] == "ack" && format!("{}.{}", l["db"].as_str().unwrap(), l["table"].as_str().unwrap()) == table
        })
        .filter(|l| pid.is_none_or(|p| l["pid"].as_u64() == Some(p)) && l["at_ms"].as_u64().unwrap() >= from_ms)
        .count()
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
}

/// issue 18: the SDK connects, `SHOW`s the sandbox's databases, tables and global variables, its
/// INSERTs into 1-, 2- and 3-replica tables are all read back with the tool's client, and its
/// DROP TABLE drops the table.
#[test]
fn the_real_sdk_shows_the_sandbox_and_its_writes_to_every_replica_count_are_read_back() {
    let Some(python) = sdk_python() else { return };
    let sb = Sandbox::up(&["--tablets", "3"]);
    let shown = with_sdk(
        &python,
        &sb,
        "cur.execute('SHOW DATABASES'); print(sorted(r[0] for r in cur.fetchall()))\n\
         cur.execute('USE demo'); cur.execute('SHOW TABLES'); print(sorted(r[0] for r in cur.fetchall()))",
    );
    assert_eq!(shown, "['demo', 'shop']\n['double', 'single', 'triple']\n");
    // At connect the SDK read GLOBAL_VARIABLES with a Query to the tablet leading it, which
    // answered the rows the nameserver put there (`InitGlobalVarTable`): job_timeout 20000;
    // without them the SDK falls back to 60000.
    let variables = with_sdk(
        &python,
        &sb,
        "cur.execute('SHOW SESSION VARIABLES'); print(dict(cur.fetchall())['job_timeout'])\n\
         cur.execute('SHOW GLOBAL VARIABLES'); print(sorted(cur.fetchall()))",
    );
    assert_eq!(
        variables,
        "20000\n[('enable_trace', 'false'), ('execute_mode', 'online'), ('job_timeout', '20000'), \
         ('sync_job', 'false')]\n"
    );

    let work = tempfile::tempdir().unwrap();
    let report = work.path().join("sdk.jsonl");
    let load = sdk_load(&python, &sb, &report, "3s").wait_with_output().unwrap();
    assert!(load.status.success(), "{}", String::from_utf8_lossy(&load.stderr));
    let verified = verified(&report);
    assert_eq!(
        (&verified["missing"], &verified["failed"]),
        (&serde_json::json!([]), &serde_json::json!(0)),
        "{verified}"
    );
    for table in ["demo.single", "demo.double", "demo.triple"] {
        assert!(acks(&report, table, None, 0) > 5, "too few SDK writes to {table}: {verified}");
    }

    // DROP TABLE: the SDK asks PRE_AGG_META_INFO for the table's pre-aggregates (a Query), then
    // the nameserver's DropTable; the table is gone from the cluster, not only from the SDK.
    let dropped = with_sdk(
        &python,
        &sb,
        "cur.execute('DROP TABLE demo.single')\n\
         cur.execute('USE demo'); cur.execute('SHOW TABLES'); print(sorted(r[0] for r in cur.fetchall()))",
    );
    assert_eq!(dropped, "['double', 'triple']\n");
    let left = sb.run(r#"print(ns::partitions().filter(|r| r.db == "demo" && r.table == "single").len());"#);
    assert_eq!(left.stdout.trim(), "0", "{}\n{}", left.stdout, left.stderr);
}

/// issue 18: leader changes while the SDK writes (the tool's drain and restore of a tablet):
/// it follows each new leader (ZooKeeper's table notify), no acknowledged write is lost, and
/// the moved partition takes writes again.
#[test]
fn the_real_sdk_follows_a_leader_change_while_it_writes() {
    let Some(python) = sdk_python() else { return };
    let sb = Sandbox::up(&["--tablets", "3"]);
    let work = tempfile::tempdir().unwrap();
    let report = work.path().join("sdk.jsonl");
    let load = sdk_load(&python, &sb, &report, "25s");
    // Writes are flowing to demo.triple partition 0.
    let deadline = Instant::now() + Duration::from_secs(30);
    while acks(&report, "demo.triple", Some(0), 0) == 0 {
        assert!(Instant::now() < deadline, "the SDK never wrote to demo.triple 0");
        std::thread::sleep(Duration::from_millis(200));
    }
    // The tool's own moves (fenced, caught-up follower), out and back: a bare ChangeLeader
    // right after a write can lose it, as replication is asynchronous.
    let moved = sb.run(
        r#"
        let led = ns::partitions().filter(|r| r.db == "demo" && r.table == "triple" && r.pid == 0 && r.leader);
        let tablet = led[0].endpoint;
        upgrade::with_auto_failover_off(|| {
            upgrade::drain_leaders(tablet);
            upgrade::restore_leaders(tablet);
        });
        print("moved the leaders of " + tablet + " away and back");
        "#,
    );
    assert_eq!(moved.code, 0, "{}\n{}", moved.stdout, moved.stderr);
    let after_move = now_ms();
    let load = load.wait_with_output().unwrap();
    assert!(load.status.success(), "{}", String::from_utf8_lossy(&load.stderr));
    let verified = verified(&report);
    assert_eq!(verified["missing"], serde_json::json!([]), "acknowledged writes lost: {verified}");
    assert!(
        acks(&report, "demo.triple", Some(0), after_move) > 0,
        "no SDK write reached demo.triple 0 after its leader moved ({}): {verified}",
        moved.stdout
    );
}
