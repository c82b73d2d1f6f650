//! The documented checks, enforced (O§6.1): a cluster made to violate one is refused before
//! the first change, or the run stops at the step that finds it, naming the partition.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use mldb_upgrade::sandbox::client::{partition_of, TableName};
use mldb_upgrade::sandbox::{self, SandboxState};
use serde_json::{json, Value};

use crate::flow::{line, run_upgrade, state, upgrade_args};
use crate::support::{self, Sandbox};

#[test]
fn a_partition_with_more_replicas_than_replica_num_is_refused_before_any_change() {
    let sb = Sandbox::up(&["--tablets", "3"]);
    let sandbox_state = sandbox::load_state(&sb.dir).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    // demo.double pid 0 gets a third replica, as a temporary replica left behind would be.
    let shown =
        rt.block_on(sandbox::ns_call(&sandbox_state, "ShowTable", json!({"db": "demo", "name": "double"}))).unwrap();
    let metas: Vec<String> = shown["table_info"][0]["table_partition"][0]["partition_meta"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["endpoint"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(metas.len(), 2, "{shown}");
    let extra = (1..=3).map(|n| sb.tablet(n)).find(|t| !metas.contains(t)).unwrap();
    let added = rt
        .block_on(sandbox::ns_call(
            &sandbox_state,
            "AddReplicaNS",
            json!({"db": "demo", "name": "double", "pid": 0, "endpoint": extra}),
        ))
        .unwrap();
    assert_eq!(added["code"], 0, "{added}");
    let done = sb.run(
        r#"wait::ops_done(0, "60s"); print(ns::partitions().filter(|r| r.table == "double" && r.pid == 0).len());"#,
    );
    assert_eq!(done.stdout.trim(), "3", "{}", done.stderr);
    std::thread::sleep(Duration::from_millis(500));

    let before = state(&sb);
    let rel = tempfile::tempdir().unwrap();
    let release = support::release(rel.path(), "0.9.3", &[]);
    let out = run_upgrade(&sb, release.to_str().unwrap(), &[]);
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("do not have their table's replica_num replicas"), "{}", out.stderr);
    assert!(out.stderr.contains("demo.double pid 0 has 3 replicas, replica_num is 2"), "{}", out.stderr);
    let after = state(&sb);
    assert_eq!(line(&after, "versions"), line(&before, "versions"), "nothing may change");
    assert_eq!(line(&after, "auto_failover"), "auto_failover true");
    assert_eq!(line(&after, "leaders"), line(&before, "leaders"));
}

// ---------------------------------------------------------------------------------------------
// Clusters made to violate a check during a run. A `hook_before` holds the run before its first
// tablet (auto_failover is off by then) while the test breaks something, so what the check
// finds was made after pre-flight recorded the run's op index and baseline.

/// A `hook_before` that holds the run before its first tablet until [`Pause::release`].
struct Pause {
    dir: PathBuf,
    script: PathBuf,
}

impl Pause {
    fn new(sb: &Sandbox) -> Pause {
        let dir = sb.dir.join(format!("pause{}", support::unique()));
        std::fs::create_dir_all(&dir).unwrap();
        let d = dir.display();
        // Gives up after 110 s (ssh::exec allows 120 s), which fails the run.
        let text = format!(
            "[ \"$COMPONENT\" = tablet ] || exit 0\n[ -e '{d}/go' ] && exit 0\necho \"$ENDPOINT\" > '{d}/paused'\n\
             i=0\nwhile [ ! -e '{d}/go' ]; do sleep 0.1; i=$((i+1)); [ $i -lt 1100 ] || exit 1; done\n"
        );
        let script = PathBuf::from(support::write(&dir, "pause.sh", &text));
        Pause { dir, script }
    }

    /// The `--set` for the stock flow.
    fn setting(&self) -> String {
        format!("hook_before=sh {}", self.script.display())
    }

    /// Waits until the run holds before a tablet; returns that tablet.
    fn wait_reached(&self) -> String {
        let paused = self.dir.join("paused");
        wait_until("the run to reach its first tablet", Duration::from_secs(240), || {
            std::fs::read_to_string(&paused).ok().map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
        })
    }

    fn release(&self) {
        std::fs::write(self.dir.join("go"), "").unwrap();
    }
}

impl Drop for Pause {
    fn drop(&mut self) {
        // A failed assertion must not leave the run waiting.
        let _ = std::fs::write(self.dir.join("go"), "");
    }
}

/// The stock upgrade with `extra` settings, run in the background.
fn spawn_upgrade(sb: &Sandbox, release: &str, extra: &[String]) -> std::thread::JoinHandle<support::Run> {
    let mut args = upgrade_args(sb, release);
    for e in extra {
        args.push("--set".into());
        args.push(e.clone());
    }
    std::thread::spawn(move || support::run(&args.iter().map(String::as_str).collect::<Vec<_>>()))
}

fn wait_until<T>(what: &str, timeout: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn ns_call(state: &SandboxState, method: &str, body: Value) -> Value {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(sandbox::ns_call(state, method, body)).unwrap_or_else(|e| panic!("{method}: {e}"))
}

fn tablet_call(endpoint: &str, method: &str, body: Value) -> Value {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(mldb_upgrade::sim::http::call(
        endpoint,
        &format!("/TabletServer/{method}"),
        &body,
        Duration::from_secs(10),
    ))
    .unwrap_or_else(|e| panic!("{method} on {endpoint}: {e}"))
}

/// One partition as the nameserver has it: tid, leader (alive), followers.
fn partition(state: &SandboxState, db: &str, name: &str, pid: u32) -> (u64, String, Vec<String>) {
    let shown = ns_call(state, "ShowTable", json!({"db": db, "name": name}));
    let table = &shown["table_info"][0];
    let metas = table["table_partition"].as_array().unwrap().iter().find(|p| p["pid"] == pid).unwrap()
        ["partition_meta"]
        .as_array()
        .unwrap()
        .clone();
    let alive_leader = |m: &&Value| m["is_leader"] == true && m["is_alive"] != false;
    let leader = metas.iter().find(alive_leader).map(|m| m["endpoint"].as_str().unwrap().to_string()).unwrap();
    let followers =
        metas.iter().filter(|m| m["is_leader"] != true).map(|m| m["endpoint"].as_str().unwrap().to_string());
    (table["tid"].as_u64().unwrap(), leader, followers.collect())
}

/// The offset a tablet reports for a loaded replica.
fn replica_offset(endpoint: &str, tid: u64, pid: u32) -> u64 {
    let status = tablet_call(endpoint, "GetTableStatus", json!({"tid": tid, "pid": pid}));
    status["all_table_status"][0]["offset"].as_u64().unwrap_or(0)
}

/// Makes the nameserver fail an AddReplica op on `db.name pid` and returns its op id: the
/// tablet that is to get the replica already has the partition loaded (out of band), so it
/// refuses the snapshot (SendData 101 "table already exists") and the op fails at
/// kSendSnapshot (C§3.2, as in tests/sim c3_3). The leader, paused for the snapshot that never
/// came, is resumed (RecoverSnapshot) as an operator would after looking at the op.
fn fail_an_add_replica(sb: &Sandbox, state: &SandboxState, db: &str, name: &str, pid: u32) -> u64 {
    let (tid, leader, followers) = partition(state, db, name, pid);
    let outsider = (1..=3).map(|n| sb.tablet(n)).find(|t| *t != leader && !followers.contains(t)).unwrap();
    let meta = json!({"tid": tid, "pid": pid, "name": name, "db": db, "mode": "kTableFollower",
                      "column_key": [{"index_name": "k", "col_name": ["k"]}]});
    let loaded = tablet_call(&outsider, "LoadTable", json!({"table_meta": meta}));
    assert_eq!(loaded["code"], 0, "{loaded}");
    let added = ns_call(state, "AddReplicaNS", json!({"db": db, "name": name, "pid": pid, "endpoint": outsider}));
    assert_eq!(added["code"], 0, "{added}");
    let op_id = wait_until("the AddReplica op to fail", Duration::from_secs(60), || {
        let ops = ns_call(state, "ShowOPStatus", json!({"db": db, "name": name, "pid": pid}));
        let op = ops["op_status"].as_array()?.iter().rev().find(|o| o["op_type"] == "kAddReplicaOP")?.clone();
        match op["status"].as_str() {
            Some("kFailed") => op["op_id"].as_u64(),
            Some("kDone") => panic!("the AddReplica op was meant to fail: {op}"),
            _ => None,
        }
    });
    let resumed = tablet_call(&leader, "RecoverSnapshot", json!({"tid": tid, "pid": pid}));
    assert_eq!(resumed["code"], 0, "{resumed}");
    op_id
}

/// A failed op from before the run is noted and never stops it; one created during the run
/// stops it at the tablet's check, naming the op, with the tablet upgraded, its leaders back and
/// auto_failover on. Doing what the message says (delete the op) and re-running finishes.
#[test]
fn a_failed_op_during_the_run_stops_it_at_the_tablet_check_and_one_from_before_is_only_noted() {
    let sb = Sandbox::up(&["--tablets", "3"]);
    let sandbox_state = sandbox::load_state(&sb.dir).unwrap();
    let old_op = fail_an_add_replica(&sb, &sandbox_state, "demo", "double", 0);
    let before = state(&sb);
    assert_eq!(line(&before, "failed_ops"), "failed_ops 1");

    let rel = tempfile::tempdir().unwrap();
    let release = support::release(rel.path(), "0.9.3", &[]);
    let release = release.to_str().unwrap().to_string();
    let pause = Pause::new(&sb);
    let run = spawn_upgrade(&sb, &release, &[pause.setting()]);
    let first = pause.wait_reached();
    let new_op = fail_an_add_replica(&sb, &sandbox_state, "demo", "double", 1);
    pause.release();
    let out = run.join().unwrap();

    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains(&format!("note: 1 failed op(s) from before this run (not checked again): #{old_op} kAddReplicaOP demo.double pid 0 kFailed")),
        "{}",
        out.stdout
    );
    assert!(out.stderr.contains(&format!("after upgrading {first} the cluster is not healthy")), "{}", out.stderr);
    assert!(
        out.stderr.contains(&format!("1 failed ops: #{new_op} kAddReplicaOP demo.double pid 1 kFailed")),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains(&format!("#{old_op} ")), "the op from before the run counts: {}", out.stderr);
    assert!(out.stderr.contains("delete the op (DeleteOP"), "{}", out.stderr);
    let after = state(&sb);
    // Stopped after the first tablet (listed first, the nameserver last): it and the nameserver
    // run B, the other tablets A; its leaders are back.
    let versions = line(&after, "versions");
    assert_eq!(versions, "versions [\"0.9.3\", \"0.9.2\", \"0.9.2\", \"0.9.3\"]", "{after}");
    assert_eq!(line(&after, "leaders"), line(&before, "leaders"));
    assert_eq!(line(&after, "replicas"), line(&before, "replicas"));
    assert_eq!(line(&after, "auto_failover"), "auto_failover true");
    assert_eq!(line(&after, "failed_ops"), "failed_ops 2");
    let step = sb.run(&format!(
        r#"print(journal::done("tablet {first}: verify")); print(journal::done("tablet {first}: restore leaders"));"#
    ));
    assert_eq!(step.stdout.trim(), "false\ntrue", "{}", step.stderr);
    // The baseline stays for the re-run, one journal node per table, and goes with the run.
    let baseline =
        r#"let b = "/mldb-upgrade/openmldb/baseline"; print(if zk::exists(b) { zk::children(b).len() } else { 0 });"#;
    let tables = sb.run(
        "print(ns::partitions().map(|r| r.tid).reduce(|s, t| if s.contains(t) { s } else { s + [t] }, []).len());",
    );
    assert_eq!(sb.run(baseline).stdout, tables.stdout, "{}", tables.stderr);

    // What to do: the op deleted, the same command finishes the run; the old op still only noted.
    let deleted = ns_call(&sandbox_state, "DeleteOP", json!({"op_id": new_op}));
    assert_eq!(deleted["code"], 0, "{deleted}");
    let again = run_upgrade(&sb, &release, &["--set", &pause.setting()]);
    assert_eq!(again.code, 0, "{}\n{}", again.stdout, again.stderr);
    let end = state(&sb);
    assert_eq!(line(&end, "versions"), "versions [\"0.9.3\", \"0.9.3\", \"0.9.3\", \"0.9.3\"]");
    assert_eq!(line(&end, "leaders"), line(&before, "leaders"));
    assert_eq!(line(&end, "replicas"), line(&before, "replicas"));
    assert_eq!(line(&end, "auto_failover"), "auto_failover true");
    assert_eq!(line(&end, "failed_ops"), "failed_ops 1");
    assert_eq!(line(&end, "run"), "run ");
    assert_eq!(sb.run(baseline).stdout.trim(), "0");
}

/// A component that runs but reports "unknown" (a build that never set its version, C§1.4)
/// passes its start and stops the run at the final verification, named; everything else is
/// upgraded and the run stays open for a re-run.
#[test]
fn a_component_reporting_unknown_fails_the_final_verification_naming_it() {
    let sb = Sandbox::up(&["--tablets", "2", "--apiservers", "1"]);
    let before = state(&sb);
    let rel = tempfile::tempdir().unwrap();
    let release = support::release(rel.path(), "0.9.3", &["--unknown-version", "apiserver"]);
    // The plan reads the baseline it would record and records nothing.
    let mut plan = upgrade_args(&sb, release.to_str().unwrap());
    plan[0] = "plan".into();
    let plan = support::run(&plan.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(plan.code, 0, "{}\n{}", plan.stdout, plan.stderr);
    assert!(plan.stdout.contains("[dry-run] would record the leader offsets of "), "{}", plan.stdout);
    let out = run_upgrade(&sb, release.to_str().unwrap(), &[]);

    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    let apiserver = sandbox::load_state(&sb.dir)
        .unwrap()
        .components
        .iter()
        .find(|c| c.role.as_str() == "apiserver")
        .unwrap()
        .endpoint
        .clone();
    assert!(out.stderr.contains("not every component runs 0.9.3-"), "{}", out.stderr);
    assert!(out.stderr.contains(&format!("  - apiserver {apiserver} reports unknown")), "{}", out.stderr);
    assert_eq!(out.stderr.matches(" reports ").count(), 1, "only the apiserver is wrong: {}", out.stderr);
    assert!(out.stderr.contains("what to do: look at each one's log"), "{}", out.stderr);
    let after = state(&sb);
    assert_eq!(line(&after, "versions"), "versions [\"0.9.3\", \"0.9.3\", \"0.9.3\", \"unknown\"]", "{after}");
    assert_eq!(line(&after, "leaders"), line(&before, "leaders"));
    assert_eq!(line(&after, "auto_failover"), "auto_failover true");
    assert_eq!(line(&after, "healthy"), "healthy true");
    let step = sb.run(&format!(
        r#"print(journal::done("apiserver {apiserver}: start")); print(journal::done("final verification"));"#
    ));
    assert_eq!(
        step.stdout.trim(),
        "true\nfalse",
        "the apiserver started, the final verification is not done: {}",
        step.stderr
    );
}

/// A leader that lacks acknowledged writes (a lagging replica made leader by an explicit
/// ChangeLeader, which OpenMLDB allows, C§3.5) is caught after the tablet, naming the
/// partition, the leader and both offsets.
#[test]
fn a_leader_offset_below_the_pre_flight_one_stops_the_run_naming_the_partition() {
    let sb = Sandbox::up(&["--tablets", "3"]);
    let sandbox_state = sandbox::load_state(&sb.dir).unwrap();
    let (db, name) = ("demo", "double");
    let first = sb.tablet(1);
    // A partition away from the first tablet, so its drain does not touch it.
    let pid = (0..4u32).find(|p| {
        let (_, leader, followers) = partition(&sandbox_state, db, name, *p);
        leader != first && !followers.contains(&first)
    });
    let pid = pid.expect("a demo.double partition without a replica on the first tablet");
    let (tid, leader, followers) = partition(&sandbox_state, db, name, pid);
    let stale = followers[0].clone();
    // The leader stops replicating to its follower (the DelReplica of an op's task, sent
    // directly): the nameserver still has the follower alive, but it misses what follows.
    let stopped = tablet_call(&leader, "DelReplica", json!({"tid": tid, "pid": pid, "endpoint": stale}));
    assert_eq!(stopped["code"], 0, "{stopped}");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = rt.block_on(support::client(&sandbox_state));
    let table = TableName { db: db.into(), name: name.into() };
    let keys: Vec<String> = (0..).map(|i| format!("k{i}")).filter(|k| partition_of(k, 4) == pid).take(20).collect();
    for k in &keys {
        rt.block_on(client.put(&table, k, "acknowledged")).unwrap_or_else(|e| panic!("put {k}: {e}"));
    }
    drop(client);
    let (high, low) = (replica_offset(&leader, tid, pid), replica_offset(&stale, tid, pid));
    assert!(high >= low + 20, "the follower was to miss the writes: leader {high}, follower {low}");

    let rel = tempfile::tempdir().unwrap();
    let release = support::release(rel.path(), "0.9.3", &[]);
    let pause = Pause::new(&sb);
    let run = spawn_upgrade(&sb, release.to_str().unwrap(), &[pause.setting()]);
    assert_eq!(pause.wait_reached(), first);
    // Pre-flight recorded `high`; now the lagging replica leads.
    let changed =
        ns_call(&sandbox_state, "ChangeLeader", json!({"db": db, "name": name, "pid": pid, "candidate_leader": stale}));
    assert_eq!(changed["code"], 0, "{changed}");
    wait_until("the lagging replica to lead", Duration::from_secs(60), || {
        (partition(&sandbox_state, db, name, pid).1 == stale).then_some(())
    });
    pause.release();
    let out = run.join().unwrap();

    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stderr.contains(&format!("after upgrading {first} the cluster is not healthy")), "{}", out.stderr);
    let expected = format!(
        "{db}.{name} pid {pid}: its leader {stale} is at offset {low}, below the {high} its leader had at pre-flight"
    );
    assert!(out.stderr.contains(&expected), "{expected}\n{}", out.stderr);
    assert!(out.stderr.contains("partitions whose leader lost acknowledged writes"), "{}", out.stderr);
    assert!(out.stderr.contains("what to do: stop writes to the table"), "{}", out.stderr);
    // The cluster really is as the check says: the lagging replica leads without the rows.
    let (_, now_leader, _) = partition(&sandbox_state, db, name, pid);
    assert_eq!(now_leader, stale);
    assert_eq!(replica_offset(&stale, tid, pid), low);
    let client = rt.block_on(support::client(&sandbox_state));
    let row = rt.block_on(client.get(&table, &keys[keys.len() - 1])).unwrap();
    assert!(row.is_none(), "the last acknowledged row was to be missing from the leader: {row:?}");
    let after = state(&sb);
    assert_eq!(line(&after, "auto_failover"), "auto_failover true");
    let step = sb.run(&format!(r#"print(journal::done("tablet {first}: verify"));"#));
    assert_eq!(step.stdout.trim(), "false", "{}", step.stderr);
}

/// A drain's AddReplica of a temporary replica cut off after the copy reached the target and
/// the leader began replicating to it (here made by hand: the target already holds the
/// partition, so the op fails at kSendSnapshot, as after a nameserver that lost its leadership
/// mid-op) leaves a copy the nameserver does not list. The next drain sends the temporary
/// replica to the same tablet, removes the copy first (DelReplica on the leader, DropTable on
/// the target), and adds it; restore then removes it, leaving the partition as it was.
#[test]
fn a_temporary_replica_cut_off_mid_add_is_dropped_and_added_again_by_the_next_drain() {
    let sb = Sandbox::up(&["--tablets", "3"]);
    let sandbox_state = sandbox::load_state(&sb.dir).unwrap();
    let t1 = sb.tablet(1);
    let drain = format!(r#"upgrade::with_auto_failover_off(|| upgrade::drain_leaders("{t1}"));"#);
    let dir = tempfile::tempdir().unwrap();
    let script = support::write(dir.path(), "drain.rhai", &drain);
    let plan = support::run(&["run", &script, "--cluster", &sb.cluster(), "--dry-run"]);
    assert_eq!(plan.code, 0, "{}", plan.stderr);
    // "[dry-run] would move leader of demo.single pid 2: <t1> -> <target> (temporary replica)"
    let temp =
        plan.stdout.lines().find(|l| l.ends_with("(temporary replica)")).expect("a single-replica partition on t1");
    let words: Vec<&str> = temp.split_whitespace().collect();
    let (db, name) = words[5].split_once('.').unwrap();
    let pid: u32 = words[7].trim_end_matches(':').parse().unwrap();
    let target = words[10].to_string();
    let (tid, leader, followers) = partition(&sandbox_state, db, name, pid);
    assert_eq!((leader.as_str(), followers.len()), (t1.as_str(), 0));

    let meta = json!({"tid": tid, "pid": pid, "name": name, "db": db, "mode": "kTableFollower",
                      "column_key": [{"index_name": "k", "col_name": ["k"]}]});
    let loaded = tablet_call(&target, "LoadTable", json!({"table_meta": meta}));
    assert_eq!(loaded["code"], 0, "{loaded}");
    // The op's kAddReplica task ran too: the leader replicates to the copy.
    let added = tablet_call(&t1, "AddReplica", json!({"tid": tid, "pid": pid, "endpoint": target}));
    assert_eq!(added["code"], 0, "{added}");
    let first = sb.run(&drain);
    assert_eq!(first.code, 1, "{}\n{}", first.stdout, first.stderr);
    assert!(first.stderr.contains(&format!("kAddReplicaOP {db}.{name} pid {pid} kFailed")), "{}", first.stderr);

    let second = sb.run(&drain);
    assert_eq!(second.code, 0, "{}\n{}", second.stdout, second.stderr);
    let said = format!("{target} holds a copy the nameserver does not list, left by this run's interrupted AddReplica");
    assert!(second.stderr.contains(&said), "{}", second.stderr);
    let (_, leader, followers) = partition(&sandbox_state, db, name, pid);
    assert_eq!((leader.as_str(), followers), (target.as_str(), vec![t1.clone()]));

    let restore = sb.run(&format!(r#"upgrade::with_auto_failover_off(|| upgrade::restore_leaders("{t1}"));"#));
    assert_eq!(restore.code, 0, "{}\n{}", restore.stdout, restore.stderr);
    let (_, leader, followers) = partition(&sandbox_state, db, name, pid);
    assert_eq!((leader.as_str(), followers.len()), (t1.as_str(), 0));
    let loaded = tablet_call(&target, "GetTableStatus", json!({"tid": tid, "pid": pid}));
    assert!(
        loaded["all_table_status"].as_array().is_none_or(|a| a.is_empty()),
        "the temporary replica stayed: {loaded}"
    );
}

/// The release is staged on every host at once: a host where it cannot be staged is named in
/// the error, and the hosts that got it keep their copy (marked complete) for the next run.
#[test]
fn staging_on_every_host_names_the_host_that_failed_and_the_others_keep_their_copy() {
    let sb = Sandbox::up(&["--tablets", "3"]);
    let release = support::release(&sb.dir.join("rel"), "0.9.3", &[]);
    let bad_host = sb.tablet(2).split(':').next().unwrap().to_string();
    let cluster = std::fs::read_to_string(sb.cluster()).unwrap();
    let bad_dir = format!("staging_dir = \"{}\"", sb.dir.join("hosts").join(&bad_host).join("staging").display());
    assert!(cluster.contains(&bad_dir), "{cluster}");
    // A staging directory below a regular file cannot be made.
    std::fs::write(sb.cluster(), cluster.replace(&bad_dir, "staging_dir = \"/dev/null/staging\"")).unwrap();
    let out = sb.run(&format!(r#"release::stage("{}");"#, release.display()));
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains(&format!("on {bad_host}")) && out.stderr.contains("/dev/null/staging"),
        "{}",
        out.stderr
    );
    let hosts =
        std::fs::read_dir(sb.dir.join("hosts")).unwrap().flatten().map(|e| e.file_name().into_string().unwrap());
    let mut staged = Vec::new();
    for host in hosts.filter(|h| *h != bad_host) {
        let copies = std::fs::read_dir(sb.dir.join("hosts").join(&host).join("staging")).unwrap().flatten();
        let complete = copies.filter(|c| c.path().join(".complete").is_file()).count();
        staged.push(format!("{host}: {complete}"));
    }
    assert_eq!(staged.len(), 3, "1 nameserver and 2 more tablets: {staged:?}");
    assert!(staged.iter().all(|s| s.ends_with(": 1")), "{staged:?}");
}
