//! The stock upgrade A→B under write load on the table shapes real clusters have: memory, SSD
//! and HDD tables, a scheduled snapshot window firing during the run, server names
//! (`--use_name`), and the real replicator's timing at 500 writes/s. Each test checks the
//! cluster's real state afterwards: versions, leader placement, replicas, auto_failover, ops,
//! health, and every acknowledged row read back.

use std::time::Duration;

use serde_json::Value;

use crate::flow::{line, run_upgrade, state};
use crate::support::flow::{assert_safe_end_state, assert_safe_end_state_with_failed_ops_redone};
use crate::support::{self, Sandbox};

/// What one upgrade under load left.
struct Upgraded {
    out: support::Run,
    summary: String,
    verified: Value,
}

/// Brings up a 0.9.2 sandbox with `options`, upgrades it to 0.9.3 while `sandbox load` writes
/// `rate` rows/s, and checks the end state every shape must reach.
fn upgrade_under_load(options: &[&str], rate: u32) -> (Sandbox, Upgraded) {
    let sb = sandbox_with(options);
    let up = upgrade_under_load_on(&sb, rate);
    (sb, up)
}

fn sandbox_with(options: &[&str]) -> Sandbox {
    let mut args = vec!["--version", "0.9.2", "--tablets", "3"];
    args.extend_from_slice(options);
    Sandbox::up(&args)
}

fn upgrade_under_load_on(sb: &Sandbox, rate: u32) -> Upgraded {
    upgrade_under_load_checked(sb, rate, assert_safe_end_state)
}

/// [`upgrade_under_load_on`], the end state checked by `check_end_state(before, after)`.
fn upgrade_under_load_checked(sb: &Sandbox, rate: u32, check_end_state: fn(&str, &str)) -> Upgraded {
    let rel = tempfile::tempdir().unwrap();
    let release = support::release(rel.path(), "0.9.3", &[]);
    let before = state(sb);
    let load = sb.load(rate);
    std::thread::sleep(Duration::from_secs(2));
    let out = run_upgrade(sb, release.to_str().unwrap(), &[]);
    let (summary, verified) = load.finish();
    eprintln!("load: {summary}");
    for l in out.stderr.lines().filter(|l| l.contains("were refused for at most")) {
        eprintln!("{l}");
    }
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(verified["missing"], serde_json::json!([]), "acknowledged writes lost: {summary}");
    let after = state(sb);
    assert!(line(&after, "versions").split('"').filter(|v| v.starts_with("0.9")).all(|v| v == "0.9.3"), "{after}");
    check_end_state(&before, &after);
    Upgraded { out, summary, verified }
}

/// Acknowledged rows per table, from the verify report.
fn acknowledged_in(verified: &Value, db: &str) -> u64 {
    verified["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["db"] == db)
        .map(|p| p["acknowledged"].as_u64().unwrap_or(0))
        .sum()
}

/// The longest a write to one partition waited for a retry to be acknowledged, in ms.
fn longest_client_stall(verified: &Value) -> u64 {
    verified["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["longest_retry_ms"].as_u64().unwrap_or(0))
        .max()
        .unwrap_or(0)
}

/// The longest stall the tool logged for a leader switch, in ms.
fn longest_switch_stall(stderr: &str) -> u64 {
    stderr
        .lines()
        .filter_map(|l| l.split("refused for at most ").nth(1))
        .filter_map(|rest| rest.split(" ms").next()?.parse().ok())
        .max()
        .unwrap_or(0)
}

#[test]
fn c4_memory_ssd_and_hdd_tables_single_and_multi_replica_upgrade_under_load() {
    let (sb, up) = upgrade_under_load(&["--storage-modes", "mixed"], 100);
    // The disk tables were written to, and their data lives under the disk roots.
    assert!(acknowledged_in(&up.verified, "disk") > 100, "{}", up.summary);
    let out = sb.run(
        r#"for t in ["ssd_single", "ssd_triple", "hdd_single", "hdd_double", "hdd_triple"] {
               print(t + " " + ns::partitions().filter(|r| r.db == "disk" && r.table == t && r.leader && r.alive).len());
           }"#,
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    for t in ["ssd_single", "ssd_triple", "hdd_single", "hdd_double", "hdd_triple"] {
        assert!(!out.stdout.contains(&format!("{t} 0")), "{t} has a partition without a leader: {}", out.stdout);
    }
}

#[test]
fn c4_a_scheduled_snapshot_window_firing_during_drains_and_restores() {
    let sb = sandbox_with(&["--snapshot-window", "20s"]);
    // Watches every tablet's replica states while the upgrade runs.
    let state = mldb_upgrade::sandbox::load_state(&sb.dir).unwrap();
    let tablets: Vec<String> =
        state.components.iter().filter(|c| c.role.as_str() == "tablet").map(|c| c.endpoint.clone()).collect();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().unwrap();
            let mut snapshotting = std::collections::BTreeSet::new();
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                for t in &tablets {
                    let body = serde_json::json!({});
                    let reply = rt.block_on(mldb_upgrade::sim::http::call(
                        t,
                        "/TabletServer/GetTableStatus",
                        &body,
                        Duration::from_secs(2),
                    ));
                    for s in reply.ok().and_then(|r| r["all_table_status"].as_array().cloned()).unwrap_or_default() {
                        if s["state"] == "kMakingSnapshot" {
                            snapshotting.insert(format!("{t} {}-{}", s["tid"], s["pid"]));
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            snapshotting
        })
    };
    // An op sent while its leader snapshots is refused at PauseSnapshot and sent again: the
    // refused one stays on the nameserver's list, redone.
    let up = upgrade_under_load_checked(&sb, 100, assert_safe_end_state_with_failed_ops_redone);
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let snapshotting = watcher.join().unwrap();
    assert!(up.verified["acknowledged"].as_u64().unwrap() > 1000, "{}", up.summary);
    eprintln!("replicas seen in kMakingSnapshot during the run: {}", snapshotting.len());
    assert!(snapshotting.len() >= 3, "the snapshot window never fired during the run: {snapshotting:?}");
}

#[test]
fn c1_1_a_use_name_cluster_upgrades_under_load() {
    let (sb, up) = upgrade_under_load(&["--use-name"], 100);
    assert!(up.verified["acknowledged"].as_u64().unwrap() > 1000, "{}", up.summary);
    // The nameserver knows the tablets by name; the tool shows their real endpoints.
    let out = sb.run(r#"for t in ns::tablets() { print(t.name + " " + t.endpoint); }"#);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", out.stdout);
    for l in lines {
        let (name, endpoint) = l.split_once(' ').unwrap();
        assert!(!name.contains(':') && endpoint.contains(':'), "{l}");
    }
}

#[test]
fn realistic_replication_at_500_writes_per_second_measures_the_write_stall() {
    let (_sb, up) = upgrade_under_load(&["--real-replication"], 500);
    let acknowledged = up.verified["acknowledged"].as_u64().unwrap();
    assert!(acknowledged > 10_000, "{}", up.summary);
    let switch = longest_switch_stall(&up.out.stderr);
    let client = longest_client_stall(&up.verified);
    assert!(switch > 0, "no switch stall logged:\n{}", up.out.stderr);
    eprintln!("RESULT longest switch stall {switch} ms; longest client retry {client} ms; {}", up.summary);
}
