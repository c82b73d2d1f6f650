//! Topology-aware batches (`--set tablet_batches=topology`, stdlib/rolling.rhai and
//! src/cluster/upgrade/batch.rs): several tablets at a time when every partition keeps an alive
//! replica outside the batch, checked again before each batch.

use std::time::{Duration, Instant};

use mldb_upgrade::sandbox::{self, SandboxState};
use serde_json::{json, Value};

use crate::support::flow::{assert_safe_end_state, line, run_upgrade, state};
use crate::support::{self, Sandbox};

/// The batches a run printed (`  1. a:1, b:2`), each a list of endpoints.
fn printed_batches(stdout: &str) -> Vec<Vec<String>> {
    let Some((_, after)) = stdout.split_once("tablet batches (") else { return Vec::new() };
    after
        .lines()
        .skip(1)
        .map_while(|l| l.strip_prefix("  ").and_then(|l| l.split_once(". ")).map(|(_, eps)| eps.to_string()))
        .map(|eps| eps.split(", ").map(str::to_string).collect())
        .collect()
}

/// One partition as `ns::partitions()` lists it.
#[derive(Debug)]
struct Placement {
    /// `db.table pid N`.
    partition: String,
    leader: String,
    /// Its alive replicas, the leader included.
    alive: Vec<String>,
}

fn placement(sb: &Sandbox) -> Vec<Placement> {
    let out = sb.run(
        r#"
        let by = #{};
        for r in ns::partitions().filter(|r| r.alive) {
            let key = `${r.db}.${r.table} pid ${r.pid}`;
            if by[key] == () { by[key] = #{ leader: "", alive: [] }; }
            by[key].alive.push(r.endpoint);
            if r.leader { by[key].leader = r.endpoint; }
        }
        for k in by.keys() { print(k + "=" + by[k].leader + "|" + by[k].alive.reduce(|s, x| if s == "" { x } else { s + "," + x }, "")); }
        "#,
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let parse = |l: &str| {
        let (partition, rest) = l.split_once('=')?;
        let (leader, alive) = rest.split_once('|')?;
        Some(Placement {
            partition: partition.to_string(),
            leader: leader.to_string(),
            alive: alive.split(',').map(str::to_string).collect(),
        })
    };
    out.stdout.lines().filter_map(parse).collect()
}

fn ns_call(state: &SandboxState, method: &str, body: Value) -> Value {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let answer = rt.block_on(sandbox::ns_call(state, method, body)).unwrap_or_else(|e| panic!("{method}: {e}"));
    assert_eq!(answer["code"], 0, "{method}: {answer}");
    answer
}

/// Waits until the last op of `db.name pid` is kDone.
fn wait_last_op_done(state: &SandboxState, db: &str, name: &str, pid: u32, op_type: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ops = ns_call(state, "ShowOPStatus", json!({"db": db, "name": name, "pid": pid}));
        let last = ops["op_status"].as_array().and_then(|o| o.iter().rev().find(|o| o["op_type"] == op_type).cloned());
        match last.as_ref().and_then(|o| o["status"].as_str()) {
            Some("kDone") => return,
            Some("kFailed" | "kCanceled") => panic!("{op_type} on {db}.{name} pid {pid} failed: {last:?}"),
            _ => {}
        }
        assert!(Instant::now() < deadline, "{op_type} on {db}.{name} pid {pid} not done: {last:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// O§6.1 with batches: 4 tablets under write load go down two at a time; each printed batch
/// leaves an alive replica of every multi-replica partition outside it; every component runs B
/// afterwards with leaders where they were, no temporary replica, auto_failover back on, no
/// failed op, and every acknowledged write is there.
#[test]
fn o6_1_topology_batches_upgrade_two_tablets_at_a_time_under_load_and_lose_no_write() {
    let sb = Sandbox::up(&["--version", "0.9.2", "--tablets", "4"]);
    let rel = tempfile::tempdir().unwrap();
    let release = support::release(rel.path(), "0.9.3", &[]);
    let before = state(&sb);
    let placement = placement(&sb);
    let load = sb.load(100);
    std::thread::sleep(Duration::from_secs(2));
    let out = run_upgrade(&sb, release.to_str().unwrap(), &["--set", "tablet_batches=topology"]);
    let (summary, verified) = load.finish();
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let batches = printed_batches(&out.stdout);
    assert!(batches.iter().any(|b| b.len() > 1), "no batch of several tablets: {batches:?}\n{}", out.stdout);
    let mut all: Vec<String> = batches.iter().flatten().cloned().collect();
    all.sort();
    let mut tablets: Vec<String> = (1..=4).map(|n| sb.tablet(n)).collect();
    tablets.sort();
    assert_eq!(all, tablets, "every tablet in exactly one batch");
    for batch in batches.iter().filter(|b| b.len() > 1) {
        // The batch went down together, and no multi-replica partition had all its replicas in it.
        assert!(out.stdout.contains(&format!("tablets {}: stop", batch.join(", "))), "{}", out.stdout);
        for p in placement.iter().filter(|p| p.alive.len() > 1) {
            assert!(p.alive.iter().any(|ep| !batch.contains(ep)), "batch {batch:?} took every replica of {p:?}");
        }
    }
    assert_eq!(verified["missing"], json!([]), "acknowledged writes lost: {summary}");
    let after = state(&sb);
    assert_eq!(line(&after, "versions"), "versions [\"0.9.3\", \"0.9.3\", \"0.9.3\", \"0.9.3\", \"0.9.3\"]");
    assert_safe_end_state(&before, &after);
}

/// A batch planned when the tablets phase started is checked again before it starts: a replica
/// moved in between so that a partition lives only on the batch's tablets makes the run refuse
/// the batch, naming the partition, with no tablet stopped, leaders unchanged and auto_failover
/// back on. `tablet_batches=replan` then plans again on the new placement and finishes.
#[test]
fn a_batch_is_refused_when_the_placement_changed_between_its_plan_and_its_start() {
    let sb = Sandbox::up(&["--version", "0.9.2", "--tablets", "4"]);
    let sandbox_state = sandbox::load_state(&sb.dir).unwrap();
    let rel = tempfile::tempdir().unwrap();
    let release = support::release(rel.path(), "0.9.3", &[]);
    let release = release.to_str().unwrap();
    // The run plans the batches, then stops at the first tablet's hook, before any tablet changes.
    let stop_at_tablets = "hook_before=[ \"$COMPONENT\" != tablet ] || exit 7";
    let first = run_upgrade(&sb, release, &["--set", "tablet_batches=topology", "--set", stop_at_tablets]);
    assert_ne!(first.code, 0, "{}", first.stdout);
    let batches = printed_batches(&first.stdout);
    let batch = batches.iter().find(|b| b.len() > 1).unwrap_or_else(|| panic!("no shared batch: {}", first.stdout));
    // A 2-replica partition with one replica in the batch and a follower outside it moves that
    // follower into the batch: AddReplicaNS there, DelReplicaNS where it was.
    let moving = placement(&sb)
        .into_iter()
        .find(|p| {
            let outside = p.alive.iter().filter(|ep| !batch.contains(ep)).count();
            p.alive.len() == 2 && outside == 1 && batch.contains(&p.leader)
        })
        .unwrap_or_else(|| panic!("no 2-replica partition led inside batch {batch:?} with a follower outside"));
    let partition = &moving.partition;
    let from = moving.alive.iter().find(|ep| !batch.contains(ep)).unwrap().clone();
    let to = batch.iter().find(|ep| !moving.alive.contains(ep)).unwrap().clone();
    let (table, pid) = partition.split_once(" pid ").unwrap();
    let (db, name) = table.split_once('.').unwrap();
    let pid: u32 = pid.parse().unwrap();
    ns_call(&sandbox_state, "AddReplicaNS", json!({"db": db, "name": name, "pid": pid, "endpoint": to}));
    wait_last_op_done(&sandbox_state, db, name, pid, "kAddReplicaOP");
    ns_call(&sandbox_state, "DelReplicaNS", json!({"db": db, "name": name, "pid": pid, "endpoint": from}));
    wait_last_op_done(&sandbox_state, db, name, pid, "kDelReplicaOP");
    let moved = state(&sb);
    // The resumed run keeps its batches, checks the first again and refuses it.
    let refused = run_upgrade(&sb, release, &["--set", "tablet_batches=topology"]);
    assert_ne!(refused.code, 0, "{}", refused.stdout);
    eprintln!("{}", refused.stderr);
    assert!(refused.stderr.contains("may no longer go down together"), "{}", refused.stderr);
    assert!(refused.stderr.contains(&format!("{partition}: all 2 alive replicas")), "{}", refused.stderr);
    assert!(refused.stderr.contains("--set tablet_batches=replan"), "{}", refused.stderr);
    let after_refusal = state(&sb);
    assert_eq!(
        line(&after_refusal, "versions"),
        "versions [\"0.9.2\", \"0.9.2\", \"0.9.2\", \"0.9.2\", \"0.9.3\"]",
        "only the nameserver (listed last) upgraded"
    );
    assert_eq!(line(&after_refusal, "leaders"), line(&moved, "leaders"));
    assert_eq!(line(&after_refusal, "auto_failover"), "auto_failover true");
    // Planned again on the placement now, the run finishes.
    let replanned = run_upgrade(&sb, release, &["--set", "tablet_batches=replan"]);
    assert_eq!(replanned.code, 0, "{}\n{}", replanned.stdout, replanned.stderr);
    for b in printed_batches(&replanned.stdout) {
        assert!(!(b.contains(&moving.leader) && b.contains(&to)), "{b:?} holds both replicas of {partition}");
    }
    let after = state(&sb);
    assert_eq!(line(&after, "versions"), "versions [\"0.9.3\", \"0.9.3\", \"0.9.3\", \"0.9.3\", \"0.9.3\"]");
    assert_safe_end_state(&moved, &after);
}
