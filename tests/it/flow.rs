//! The stock upgrade flow end to end on sandboxes (scripts/upgrade.rhai, scripts/rollback.rhai):
//! each test checks the cluster's real state afterwards.

use std::path::Path;
use std::time::Duration;

pub(crate) use crate::support::flow::{
    assert_safe_end_state, kill_upgrade_at, line, run_rollback, run_upgrade, spawn_upgrade, state, upgrade_args,
};
use crate::support::{self, Sandbox};

/// Full A→B under write load: every component reports B; leaders where they were; no
/// temporary replicas; auto_failover as before; no failed ops; the run is finished; no
/// acknowledged write lost and no failed write on tables with 2 or more replicas. The run ends
/// with its timing table and the same numbers in the audit log.
#[test]
fn full_upgrade_a_to_b_under_load_restores_placement_and_loses_no_write() {
    let sb = Sandbox::up_exactly(&[
        "--version",
        "0.9.2",
        "--nameservers",
        "2",
        "--tablets",
        "3",
        "--apiservers",
        "1",
        "--taskmanagers",
        "2",
    ]);
    let rel = tempfile::tempdir().unwrap();
    let release = support::release(rel.path(), "0.9.3", &["--tar"]);
    let spark = rel.path().join("spark-3.2.1-bin-openmldbspark-0.9.3");
    let before = state(&sb);
    assert!(line(&before, "versions").contains("\"0.9.2\""), "{before}");
    let tarball = release.with_file_name("openmldb-0.9.3-linux.tar.gz");
    let load = sb.load(100);
    std::thread::sleep(Duration::from_secs(2));
    let spark_release = format!("spark_release={}", spark.display());
    let out = run_upgrade(&sb, tarball.to_str().unwrap(), &["--set", &spark_release, "--log-format", "json"]);
    let (summary, verified) = load.finish();
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    eprintln!("load: {summary}");
    let acknowledged = verified["acknowledged"].as_u64().unwrap();
    assert!(acknowledged > 1000, "{summary}");
    assert_eq!(verified["missing"], serde_json::json!([]), "acknowledged writes lost: {summary}");
    let multi_replica_failures: Vec<&serde_json::Value> = verified["failures"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| !(f["db"] == "demo" && f["table"] == "single"))
        .collect();
    assert!(multi_replica_failures.is_empty(), "failed writes on multi-replica tables: {multi_replica_failures:?}");
    assert!(out.stdout.contains("upgrade to 0.9.3-"), "{}", out.stdout);
    // The first tablet's temporary replicas (demo.single has a partition on every tablet) were
    // added while the standby nameserver restarted, before that tablet's drain began.
    let first = sb.tablet(1);
    let added = out.stderr.find(&format!("for the drain of {first} ahead of it"));
    let drain = out.stderr.find(&format!("tablet {first}: drain leaders"));
    assert!(
        added.is_some() && drain.is_some() && added < drain,
        "the first tablet's temporary replicas were not added ahead of its drain:\n{}",
        out.stderr
    );
    // A restarted nameserver waits out its stale lock node, so only one leader runs ops (C§1.2).
    assert!(out.stdout.contains("/leader/lock_request"), "{}", out.stdout);
    assert!(
        out.stdout.contains("to expire before starting: a nameserver started now would take the leader lock"),
        "{}",
        out.stdout
    );
    let after = state(&sb);
    assert_eq!(
        line(&after, "versions"),
        "versions [\"0.9.3\", \"0.9.3\", \"0.9.3\", \"0.9.3\", \"0.9.3\", \"0.9.3\", \"0.9.3\", \"0.9.3\"]"
    );
    assert_safe_end_state(&before, &after);
    assert_timing_reported(
        &out.stdout,
        &out.stderr,
        &[("nameserver", 2), ("tablet", 3), ("apiserver", 1), ("taskmanager", 2)],
    );
    // The Spark distribution was replaced first (O§6.1): the batch version is B too.
    let spark_jar = sb.dir.join("taskmanager-1/spark/jars/openmldb-batch-0.9.3.jar");
    assert!(spark_jar.exists(), "{}", spark_jar.display());
}

/// Seconds as the timing table prints them (`12.3s`).
fn secs(cell: &str) -> Option<f64> {
    cell.strip_suffix('s')?.parse().ok()
}

/// The timing table at the end of a run: a row per phase and per component (`components`: how
/// many of each role), each adding up (waiting on OpenMLDB + own work = total, waiting ≤ total),
/// a lower bound above 0 and below the run time, the ratio printed as run time / lower bound,
/// and the same numbers in the audit event (`--log-format json`).
fn assert_timing_reported(stdout: &str, stderr: &str, components: &[(&str, usize)]) {
    let table: Vec<&str> = stdout
        .lines()
        .skip_while(|l| *l != "where the run's time went:")
        .skip(2)
        .take_while(|l| !l.starts_with("OpenMLDB: "))
        .collect();
    assert!(!table.is_empty(), "no timing table: {stdout}");
    eprintln!("{}", stdout[stdout.find("where the run's time went:").unwrap()..].trim_end());
    let mut run = None;
    for row in &table {
        // The first three times of a row: total, waiting on OpenMLDB, own work.
        let times: Vec<f64> = row.split_whitespace().filter_map(secs).collect();
        let (total, waiting, own) = (times[0], times[1], times[2]);
        assert!(waiting <= total, "{row}");
        assert!((waiting + own - total).abs() <= 0.11, "{row}");
        if row.starts_with(" run ") {
            run = Some((total, times[3]));
        }
    }
    for (role, n) in components {
        let rows = table.iter().filter(|r| r.starts_with(&format!("   {role} "))).count();
        assert_eq!(rows, *n, "{role} rows: {table:#?}");
        assert!(table.iter().any(|r| r.starts_with(&format!(" {role}s "))), "no {role}s phase: {table:#?}");
    }
    let (run_time, lower_bound) = run.unwrap_or_else(|| panic!("no run row: {table:#?}"));
    assert!(lower_bound > 0.0 && lower_bound <= run_time, "lower bound {lower_bound}, run {run_time}");
    let ratio_line = stdout.lines().find(|l| l.starts_with("run time / lower bound = ")).expect("no ratio line");
    let shown: Vec<&str> = ratio_line.trim_start_matches("run time / lower bound = ").split(" = ").collect();
    let ratio: f64 = shown[1].trim_end_matches('×').parse().unwrap();
    assert_eq!(shown[0], format!("{run_time:.1}s / {lower_bound:.1}s"), "{ratio_line}");
    // Both printed to 0.1 s: their quotient is the ratio up to that rounding.
    let slack = 0.005 + ratio * (0.05 / run_time + 0.05 / lower_bound);
    assert!((run_time / lower_bound - ratio).abs() <= slack, "{ratio_line}");
    // The audit event carries the same, in milliseconds, and the whole report.
    let event: serde_json::Value = stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|e| e["target"] == "audit" && e["fields"]["message"] == "timing")
        .unwrap_or_else(|| panic!("no timing event in the audit log: {stderr}"));
    let fields = &event["fields"];
    let (run_ms, bound_ms) = (fields["run_ms"].as_u64().unwrap(), fields["lower_bound_ms"].as_u64().unwrap());
    assert!((run_ms as f64 / 1000.0 - run_time).abs() <= 0.051, "{fields}");
    assert!((bound_ms as f64 / 1000.0 - lower_bound).abs() <= 0.051, "{fields}");
    assert!((fields["ratio"].as_f64().unwrap() - run_ms as f64 / bound_ms as f64).abs() < 1e-9, "{fields}");
    let report: serde_json::Value = serde_json::from_str(fields["report"].as_str().unwrap()).unwrap();
    for row in report["rows"].as_array().unwrap().iter().filter(|r| r["component"].is_string()) {
        let bound = &row["lower_bound"];
        assert!(bound["total_ms"].as_u64().unwrap() <= row["total_ms"].as_u64().unwrap(), "{row}");
        if row["phase"] == "tablets" {
            // Every tablet was stopped and started and had leaders moved off it and back.
            for part in ["stop_ms", "start_ms", "change_leader_out_ms", "change_leader_back_ms"] {
                assert!(bound[part].as_u64().unwrap() > 0, "{part}: {row}");
            }
        }
    }
}

/// kill -9 of the orchestrator during a drain, after a stop, after an install and during a
/// restore; each re-run of the same command resumes, and the last one converges to the same
/// end state as an uninterrupted run. A second run is refused while one holds the lock.
#[test]
fn killed_runs_resume_to_the_same_end_state_and_a_second_run_is_refused() {
    let sb = Sandbox::up(&["--tablets", "2"]);
    let rel = tempfile::tempdir().unwrap();
    let release = support::release(rel.path(), "0.9.3", &[]);
    let release = release.to_str().unwrap();
    let before = state(&sb);
    let tablet = sb.tablet(1);
    let spawn = || spawn_upgrade(&sb, release);
    let mut offset = 0;
    let kill_points = [
        (format!("tablet {tablet}: drain leaders"), "started"),
        (format!("tablet {tablet}: stop"), "done"),
        (format!("tablet {tablet}: install bin"), "done"),
        (format!("tablet {tablet}: restore leaders"), "started"),
    ];
    for (i, (step, state)) in kill_points.iter().enumerate() {
        let mut run = spawn();
        if i == 1 {
            // While this run holds the lock, another one is refused, naming the holder.
            run.wait_step(offset, &format!("tablet {tablet}: drain leaders"), "started", Duration::from_secs(60));
            let second = run_upgrade(&sb, release, &[]);
            assert_eq!(second.code, 1, "{}", second.stderr);
            assert!(second.stderr.contains("another upgrade holds the lock of this cluster: pid"), "{}", second.stderr);
            assert!(second.stderr.contains(&format!("pid {}", run.child.id())), "{}", second.stderr);
        }
        offset = run.wait_step(offset, step, state, Duration::from_secs(180));
        run.kill();
    }
    let last = run_upgrade(&sb, release, &[]);
    assert_eq!(last.code, 0, "{}\n{}", last.stdout, last.stderr);
    assert!(last.stdout.contains("resuming `upgrade to 0.9.3 from "), "{}", last.stdout);
    assert!(last.stdout.contains("done in an earlier run, skipped"), "{}", last.stdout);
    let after = state(&sb);
    assert_eq!(line(&after, "versions"), "versions [\"0.9.3\", \"0.9.3\", \"0.9.3\"]");
    assert_safe_end_state(&before, &after);
}

/// A broken release B: the run stops at the first component with a clear message and leaves
/// the cluster serving; rollback returns everything to A and the cluster is healthy.
#[test]
fn broken_release_stops_at_first_component_and_rollback_returns_to_a() {
    let sb = Sandbox::up(&["--nameservers", "2", "--tablets", "2"]);
    let rel = tempfile::tempdir().unwrap();
    let release = support::release(rel.path(), "0.9.3", &["--broken"]);
    let before = state(&sb);
    let out = run_upgrade(&sb, release.to_str().unwrap(), &[]);
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("sandbox release 0.9.3 was built with --broken"),
        "the log tail is shown: {}",
        out.stderr
    );
    assert!(out.stdout.contains(": start: FAILED after"), "{}", out.stdout);
    // Only the first nameserver (a standby) was touched.
    let touched = out.stdout.lines().filter(|l| l.contains(": install bin: done")).count();
    assert_eq!(touched, 1, "{}", out.stdout);
    let rollback = run_rollback(&sb);
    assert_eq!(rollback.code, 0, "{}\n{}", rollback.stdout, rollback.stderr);
    assert!(rollback.stdout.contains("after rollback the cluster is healthy"), "{}", rollback.stdout);
    let after = state(&sb);
    assert_eq!(line(&after, "versions"), line(&before, "versions"));
    assert_eq!(line(&after, "leaders"), line(&before, "leaders"));
    assert_eq!(line(&after, "auto_failover"), "auto_failover true");
    assert_eq!(line(&after, "healthy"), "healthy true");
    assert_eq!(line(&after, "run"), "run ");
}

/// A sandbox in daemon (`mon`) mode upgrades correctly (O§1.3, O§1.8).
#[test]
fn mon_mode_cluster_upgrades() {
    let sb = Sandbox::up_exactly(&[
        "--daemon",
        "--nameservers",
        "1",
        "--tablets",
        "2",
        "--apiservers",
        "1",
        "--taskmanagers",
        "1",
    ]);
    // The config says otherwise: mon mode is taken from what runs (bin/<role>.pid.child).
    let toml = std::fs::read_to_string(sb.cluster()).unwrap();
    assert!(toml.contains("daemon = true"), "{toml}");
    std::fs::write(sb.cluster(), toml.replace("daemon = true", "daemon = false")).unwrap();
    let rel = tempfile::tempdir().unwrap();
    let release = support::release(rel.path(), "0.9.3", &[]);
    let before = state(&sb);
    let out = run_upgrade(&sb, release.to_str().unwrap(), &[]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("runs under mon although the cluster config says daemon = false"), "{}", out.stdout);
    let after = state(&sb);
    assert_eq!(line(&after, "versions"), "versions [\"0.9.3\", \"0.9.3\", \"0.9.3\", \"0.9.3\", \"0.9.3\"]");
    assert_eq!(line(&after, "leaders"), line(&before, "leaders"));
    assert_eq!(line(&after, "healthy"), "healthy true");
    // Every component runs under a mon again, as it ran: bin/<role>.pid is a mon, .pid.child
    // the component.
    for c in mldb_upgrade::sandbox::load_state(&sb.dir).unwrap().components {
        let pid_file = c.dir.join(format!("bin/{}.pid", c.role.as_str()));
        let mon: u32 = std::fs::read_to_string(&pid_file).unwrap().trim().parse().unwrap();
        assert!(std::fs::read_link(format!("/proc/{mon}/exe")).unwrap().ends_with("bin/mon"), "{}", c.name);
        assert!(mldb_upgrade::sandbox::is_running(mon), "{}", c.name);
    }
}

/// `abort` after a run killed mid-drain: leaders back where they were, no temporary replica,
/// auto_failover as before, no run recorded, and nothing upgraded.
#[test]
fn abort_unwinds_a_run_killed_during_a_drain() {
    let sb = Sandbox::up(&["--tablets", "2"]);
    let rel = tempfile::tempdir().unwrap();
    let release = support::release(rel.path(), "0.9.3", &[]);
    let before = state(&sb);
    let tablet = sb.tablet(1);
    kill_upgrade_at(&sb, release.to_str().unwrap(), &format!("tablet {tablet}: drain leaders"), "started");
    // A follower no move touched, marked not alive meanwhile (as the nameserver's own failover
    // does when a tablet's session expires while auto_failover is on): abort re-adds it too.
    let follower = sb.tablet(2);
    let dead = sb.run(&format!(
        r#"let f = ns::partitions().filter(|r| r.db == "demo" && r.table == "double" && !r.leader && r.endpoint == "{follower}");
           print(f[0].pid);"#
    ));
    let pid: u32 = dead.stdout.trim().parse().unwrap_or_else(|_| panic!("{}\n{}", dead.stdout, dead.stderr));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let marked = rt.block_on(async {
        let client = support::client(&mldb_upgrade::sandbox::load_state(&sb.dir).unwrap()).await;
        let body =
            serde_json::json!({"db": "demo", "name": "double", "pid": pid, "endpoint": follower, "is_alive": false});
        client.nameserver("UpdateTableAliveStatus", &body).await.unwrap()
    });
    assert_eq!(marked["code"], 0, "{marked}");
    let out = support::run(&["abort", "--cluster", &sb.cluster()]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("auto_failover restored to true"), "{}", out.stdout);
    assert!(out.stdout.contains("re-adding 1 replica(s) not alive on healthy tablets"), "{}", out.stdout);
    let after = state(&sb);
    assert_safe_end_state(&before, &after);
    // The nameserver was upgraded before the kill; the tablets stay at A.
    assert_eq!(line(&before, "versions"), "versions [\"0.9.2\", \"0.9.2\", \"0.9.2\"]");
    assert_eq!(line(&after, "versions"), "versions [\"0.9.2\", \"0.9.2\", \"0.9.3\"]", "abort upgraded something");
    let status = support::run(&["status", "--cluster", &sb.cluster()]);
    assert!(status.stdout.contains("lock        free"), "{}", status.stdout);
    assert!(!status.stdout.contains("drained, leaders not restored"), "{}", status.stdout);
}

/// `abort` after a run killed while a tablet was stopped: abort starts the tablet again,
/// recovers its data and restores its leaders; nothing stays down or drained.
#[test]
fn abort_after_a_kill_while_a_tablet_was_stopped_starts_it_and_restores_everything() {
    let sb = Sandbox::up(&["--tablets", "2"]);
    let rel = tempfile::tempdir().unwrap();
    let release = support::release(rel.path(), "0.9.3", &[]);
    let before = state(&sb);
    let tablet = sb.tablet(1);
    kill_upgrade_at(&sb, release.to_str().unwrap(), &format!("tablet {tablet}: stop"), "done");
    let status = support::run(&["status", "--cluster", &sb.cluster()]);
    assert!(status.stdout.contains(&format!("{tablet} stopped since")), "{}", status.stdout);
    let out = support::run(&["abort", "--cluster", &sb.cluster()]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains(&format!("starting tablet {tablet} on ")), "{}", out.stdout);
    assert!(out.stdout.contains(&format!("restoring leaders of {tablet}")), "{}", out.stdout);
    assert!(!out.stdout.contains("Some(") && !out.stdout.contains("Ok("), "debug formatting: {}", out.stdout);
    let after = state(&sb);
    assert_safe_end_state(&before, &after);
    // The kill came before the install: the tablet runs A again; the nameserver was upgraded.
    assert_eq!(line(&after, "versions"), "versions [\"0.9.2\", \"0.9.2\", \"0.9.3\"]");
    let status = support::run(&["status", "--cluster", &sb.cluster()]);
    assert!(!status.stdout.contains("stopped since"), "{}", status.stdout);
}

/// While a run holds the cluster, `status` says it is running and where, with fences its own,
/// and `plan` warns that the lock is taken and plans from the journal's unfinished run, with no
/// raw map in its output.
#[test]
fn status_and_plan_during_a_live_run_tell_the_truth() {
    let sb = Sandbox::up(&["--tablets", "2"]);
    let rel = tempfile::tempdir().unwrap();
    let release = support::release(rel.path(), "0.9.3", &[]);
    let before = state(&sb);
    let tablet = sb.tablet(1);
    let mut run = spawn_upgrade(&sb, release.to_str().unwrap());
    run.wait_step(0, &format!("tablet {tablet}: drain leaders"), "started", Duration::from_secs(180));
    let status = support::run(&["status", "--cluster", &sb.cluster()]);
    assert_eq!(status.code, 0, "{}", status.stderr);
    assert!(status.stdout.contains(&format!("lock        held by pid {} on ", run.child.id())), "{}", status.stdout);
    assert!(status.stdout.contains(": running"), "{}", status.stdout);
    assert!(status.stdout.contains("(in progress)"), "{}", status.stdout);
    assert!(!status.stdout.contains("fenced by a stopped run"), "{}", status.stdout);
    let mut plan_args = upgrade_args(&sb, release.to_str().unwrap());
    plan_args[0] = "plan".into();
    let plan = support::run(&plan_args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(plan.code, 0, "{}\n{}", plan.stdout, plan.stderr);
    assert!(
        plan.stdout.contains(&format!("NOTE: the cluster's upgrade lock is held by pid {}", run.child.id())),
        "{}",
        plan.stdout
    );
    assert!(plan.stdout.contains("it continues the unfinished run"), "{}", plan.stdout);
    assert!(plan.stdout.contains("(done in the unfinished run, skipped)"), "{}", plan.stdout);
    assert!(!plan.stdout.contains("#{"), "a raw map in the plan: {}", plan.stdout);
    run.kill();
    let out = support::run(&["abort", "--cluster", &sb.cluster()]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let after = state(&sb);
    if line(&after, "healthy") != "healthy true" {
        // What abort did and what the nameserver holds about the system tables (a run under
        // heavy load once left one of their replicas on the drained tablet not alive).
        let held = sb.run(
            r#"for o in ns::ops() { if o.db != "demo" && o.db != "shop" { print(o); } }
               for p in ns::partitions() { if p.db != "demo" && p.db != "shop" { print(p); } }"#,
        );
        eprintln!("abort said:\n{}\n{}\nsystem tables:\n{}{}", out.stdout, out.stderr, held.stdout, held.stderr);
    }
    assert_safe_end_state(&before, &after);
}

/// The rollback returns what the upgrade changed, the Spark distribution included, and its plan
/// shows the versions it returns to.
#[test]
fn rollback_returns_spark_and_the_plan_shows_the_versions() {
    let sb = Sandbox::up(&["--tablets", "2", "--taskmanagers", "1"]);
    let rel = tempfile::tempdir().unwrap();
    let release = support::release(rel.path(), "0.9.3", &[]);
    let spark = rel.path().join("spark-3.2.1-bin-openmldbspark-0.9.3");
    let before = state(&sb);
    let jars = sb.dir.join("taskmanager-1/spark/jars");
    assert!(jars.join("openmldb-batch-0.9.2.jar").exists(), "{}", jars.display());
    let out = run_upgrade(&sb, release.to_str().unwrap(), &["--set", &format!("spark_release={}", spark.display())]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(jars.join("openmldb-batch-0.9.3.jar").exists(), "{}", jars.display());
    let rollback = support::repo().join("scripts/rollback.rhai").display().to_string();
    let plan = support::run(&["plan", &rollback, "--cluster", &sb.cluster()]);
    assert_eq!(plan.code, 0, "{}\n{}", plan.stdout, plan.stderr);
    assert!(plan.stdout.contains("put back spark openmldb-batch 0.9.2"), "{}", plan.stdout);
    let tm_row = plan.stdout.lines().find(|l| l.trim_start().starts_with("taskmanager ")).unwrap_or_default();
    assert!(tm_row.contains("0.9.3") && tm_row.contains("0.9.2"), "the plan shows what it returns to: {}", plan.stdout);
    let out = support::run(&["run", &rollback, "--cluster", &sb.cluster()]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(jars.join("openmldb-batch-0.9.2.jar").exists(), "Spark was not put back: {}", jars.display());
    assert!(!jars.join("openmldb-batch-0.9.3.jar").exists(), "{}", jars.display());
    let after = state(&sb);
    assert_eq!(line(&after, "versions"), line(&before, "versions"));
    assert_safe_end_state(&before, &after);
}

/// confirm=true asks before each phase on a terminal; "n" stops the run before the phase, with
/// nothing of it changed.
#[test]
fn confirm_asks_on_a_terminal_and_no_stops_before_the_phase() {
    use crate::support::tmux::{shell_quote, Tmux};
    let sb = Sandbox::up(&["--tablets", "2"]);
    let rel = tempfile::tempdir().unwrap();
    let release = support::release(rel.path(), "0.9.3", &[]);
    let before = state(&sb);
    let args: Vec<String> =
        upgrade_args(&sb, release.to_str().unwrap()).iter().map(|a| shell_quote(Path::new(a))).collect();
    // The shell prints the exit code: tmux does not always collect it before the pane closes.
    let command =
        format!("{} {} --set confirm=true; echo exit code $?", shell_quote(&support::binary()), args.join(" "));
    let tmux = Tmux::start(&command, &[("NO_COLOR", "1".into())]);
    let question = "upgrade the nameservers now? [y/N]";
    tmux.wait_for("the question", Duration::from_secs(60), |s| s.contains(question));
    tmux.line("n");
    tmux.wait_for("the run to end", Duration::from_secs(60), |s| s.contains("exit code "));
    let transcript = tmux.transcript();
    assert!(transcript.contains("exit code 1"), "{transcript}");
    assert!(transcript.contains("stopped before the nameservers: the operator answered no"), "{transcript}");
    assert!(!transcript.contains(": stop ..."), "something was stopped: {transcript}");
    // The run is recorded (pre-flight done); nothing else changed. abort drops the record.
    let out = support::run(&["abort", "--cluster", &sb.cluster()]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(state(&sb), before);
}
