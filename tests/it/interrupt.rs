//! Ctrl-C during a drain: before it exits, the run lifts its fences, puts auto_failover back and
//! releases the lock, so every partition takes writes again at once; `abort` then moves the
//! leaders back. Checked in ZooKeeper, on the nameserver and by writing to every partition.

use std::time::{Duration, Instant};

use mldb_upgrade::sandbox::client::{partition_of, TableName};

use crate::flow::{assert_safe_end_state, state};
use crate::support::{self, Sandbox};

/// What the journal and the nameserver say after the interrupted run.
const AFTER: &str = r#"
let fences = 0;
if zk::exists("/mldb-upgrade/openmldb/fence") { fences = zk::children("/mldb-upgrade/openmldb/fence").len(); }
print("fences " + fences);
print("lock " + zk::exists("/mldb-upgrade/openmldb/lock"));
print("auto_failover " + ns::auto_failover());
print("drained " + upgrade::drained_tablets().len());
"#;

#[test]
fn ctrl_c_during_a_drain_lifts_fences_restores_auto_failover_and_releases_the_lock() {
    // The replicator at its real timing keeps fences up long enough to interrupt one.
    let sb = Sandbox::up(&["--tablets", "3", "--real-replication"]);
    let before = state(&sb);
    let load = sb.load(200);
    std::thread::sleep(Duration::from_secs(2));
    let ep = sb.tablet(1);
    let journal = sb.journal_file();
    let script = support::write(
        &sb.dir,
        "interrupted.rhai",
        &format!(
            r#"journal::begin("drain to interrupt"); upgrade::disable_auto_failover(); upgrade::drain_leaders("{ep}"); sleep("60s");"#
        ),
    );
    let child = std::process::Command::new(support::binary())
        .args(["run", &script, "--cluster", &sb.cluster()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Interrupt as soon as a fence is recorded.
    let deadline = Instant::now() + Duration::from_secs(120);
    while !std::fs::read_to_string(&journal).unwrap_or_default().contains("\"key\":\"fence/") {
        assert!(Instant::now() < deadline, "no fence was ever recorded");
        std::thread::sleep(Duration::from_millis(2));
    }
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGINT).unwrap();
    let output = child.wait_with_output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    eprintln!("{stdout}{stderr}");
    assert_eq!(output.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stdout.contains("the run stopped early: leaving the cluster serving"), "{stdout}");
    assert!(stdout.contains("putting auto_failover back to true"), "{stdout}");
    assert!(stdout.contains(&format!("leaders moved off, not moved back: {ep}")), "{stdout}");
    let out = sb.run(AFTER);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("fences 0\n"), "{}", out.stdout);
    assert!(out.stdout.contains("lock false\n"), "{}", out.stdout);
    assert!(out.stdout.contains("auto_failover true\n"), "{}", out.stdout);
    assert!(out.stdout.contains("drained 1\n"), "the moves made are left for abort: {}", out.stdout);

    // Every partition of every table takes a write now, without waiting for abort.
    let state_file = mldb_upgrade::sandbox::load_state(&sb.dir).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = rt.block_on(support::client(&state_file));
    for table in rt.block_on(client.user_tables()) {
        let partitions = rt.block_on(client.route(&table)).unwrap().partition_num;
        for pid in 0..partitions {
            let key = (0..).map(|i| format!("after-{i}")).find(|k| partition_of(k, partitions) == pid).unwrap();
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                match rt.block_on(client.put(&TableName { db: table.db.clone(), name: table.name.clone() }, &key, "v"))
                {
                    Ok(_) => break,
                    Err(e) => assert!(Instant::now() < deadline, "{table} pid {pid} refuses writes: {e}"),
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
    let (summary, verified) = load.finish();
    assert_eq!(verified["missing"], serde_json::json!([]), "acknowledged writes lost: {summary}");

    // abort moves the leaders back.
    let out = support::run(&["abort", "--cluster", &sb.cluster()]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert_safe_end_state(&before, &state(&sb));
}

/// A second Ctrl-C exits at once (130) and says exactly what it leaves, as journalled: here
/// auto_failover off and a drained tablet, then `abort` undoes them. The nameservers are
/// paused (SIGSTOP) before the first Ctrl-C, so its clean-up hangs on them as on a real
/// cluster whose nameserver stopped answering, and the second one finds it still running.
#[test]
fn a_second_ctrl_c_exits_at_once_naming_what_is_left_and_the_abort_command() {
    let sb = Sandbox::up(&["--tablets", "3"]);
    let before = state(&sb);
    let ep = sb.tablet(1);
    let script = support::write(
        &sb.dir,
        "twice.rhai",
        &format!(
            r#"journal::begin("interrupted twice"); upgrade::disable_auto_failover(); upgrade::drain_leaders("{ep}"); print("drained"); sleep("60s");"#
        ),
    );
    let mut child = std::process::Command::new(support::binary())
        .args(["run", &script, "--cluster", &sb.cluster()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    while !line.starts_with("drained") {
        line.clear();
        assert!(std::io::BufRead::read_line(&mut stdout, &mut line).unwrap() > 0, "the script ended before draining");
    }
    use nix::sys::signal::{kill, Signal};
    let sandbox_state = mldb_upgrade::sandbox::load_state(&sb.dir).unwrap();
    let nameservers: Vec<nix::unistd::Pid> = sandbox_state
        .components
        .iter()
        .filter(|c| c.role.as_str() == "nameserver")
        .map(|c| nix::unistd::Pid::from_raw(mldb_upgrade::sandbox::component_pid(c).unwrap() as i32))
        .collect();
    for ns in &nameservers {
        kill(*ns, Signal::SIGSTOP).unwrap();
    }
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    kill(pid, Signal::SIGINT).unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    kill(pid, Signal::SIGINT).unwrap();
    let output = child.wait_with_output().unwrap();
    for ns in &nameservers {
        kill(*ns, Signal::SIGCONT).unwrap();
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("interrupt: exiting at once, leaving (as journalled on this machine):"), "{stderr}");
    assert!(stderr.contains("  - auto_failover off (it was true)"), "{stderr}");
    assert!(stderr.contains(&format!("  - leaders moved off, not moved back: {ep}")), "{stderr}");
    assert!(stderr.contains(&format!("`mldb-upgrade abort --cluster {}` undoes all of it", sb.cluster())), "{stderr}");
    let out = sb.run(r#"print("auto_failover " + ns::auto_failover());"#);
    assert!(out.stdout.contains("auto_failover false"), "the second Ctrl-C left at once: {}", out.stdout);

    let out = support::run(&["abort", "--cluster", &sb.cluster()]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert_safe_end_state(&before, &state(&sb));
}
