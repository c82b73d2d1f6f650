//! C§3.4 and C§3.5 under write load: what `sandbox load` + `sandbox verify` see when a
//! leader's tablet dies, and when its leaders are moved away first.

use std::collections::BTreeSet;
use std::time::Duration;

use mldb_upgrade::sandbox::load::{run_load, verify, LoadOptions, VerifyOptions, VerifyReport};
use serde_json::json;

use crate::support::SimCluster;

const LOAD_RATE: u32 = 200;
const LOAD_TIME: Duration = Duration::from_secs(20);

/// Three tablets, one nameserver, two user tables of 4 partitions × 3 replicas; returns the
/// tablets and the nameserver.
async fn loaded_cluster(cluster: &mut SimCluster, auto_failover: bool) -> (Vec<String>, String) {
    let mut tablets = Vec::new();
    for _ in 0..3 {
        tablets.push(cluster.start_tablet(&[]).await);
    }
    let ns = cluster.start_leader(&[&format!("--auto_failover={auto_failover}")]).await;
    cluster.create_table(&ns, "db", "t1", 4, 3).await;
    cluster.create_table(&ns, "db", "t2", 4, 3).await;
    (tablets, ns)
}

/// `(table, pid)` of every partition `tablet` leads.
async fn led_by(cluster: &SimCluster, ns: &str, tablet: &str) -> BTreeSet<(String, u32)> {
    let mut led = BTreeSet::new();
    for table in ["t1", "t2"] {
        for (pid, metas) in cluster.partitions(ns, "db", table).await {
            if metas.iter().any(|m| m.0 == tablet && m.1 && m.2) {
                led.insert((table.to_string(), pid as u32));
            }
        }
    }
    led
}

fn load_options(cluster: &SimCluster, root: &str) -> LoadOptions {
    LoadOptions::new(&cluster.zk_cluster(), root, LOAD_RATE, LOAD_TIME, &cluster.path().join("load.jsonl"))
}

/// Every lost row was acknowledged by `tablet`: only writes it took alone can be lost.
fn assert_missing_only_from(report: &VerifyReport, tablet: &str) {
    for row in &report.missing {
        assert_eq!(row.endpoint, tablet, "a row acknowledged elsewhere is missing: {row:?}");
    }
}

/// C§3.4 (auto_failover on): a leader's tablet killed without draining. Writes to the
/// partitions it led fail until the nameserver notices (session timeout + heartbeat timeout)
/// and moves their leaders; verify reports an outage on exactly those partitions, and none
/// on the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c3_4_killed_leader_tablet_shows_an_outage_on_its_partitions() {
    let root = "/c3_4_load_kill";
    let mut cluster = SimCluster::new(root);
    let (tablets, ns) = loaded_cluster(&mut cluster, true).await;
    let victim = tablets[0].clone();
    let victim_led = led_by(&cluster, &ns, &victim).await;
    assert!(!victim_led.is_empty(), "the victim leads some partitions");

    let options = load_options(&cluster, root);
    let report_path = options.report.clone();
    let load = tokio::spawn(run_load(options));
    tokio::time::sleep(Duration::from_secs(5)).await;
    cluster.kill(&victim);
    let summary = load.await.expect("load task").expect("load runs");
    assert!(summary.acknowledged > 0 && summary.failed > 0, "{summary}");

    let report = verify(&report_path, VerifyOptions::default()).await.expect("verify");
    println!("{report}");
    let with_outage: BTreeSet<(String, u32)> = report.outages().map(|p| (p.table.clone(), p.pid)).collect();
    assert_eq!(with_outage, victim_led, "outages exactly where the victim led");
    for partition in report.outages() {
        assert!(partition.recovered, "{partition:?}");
        // At least the session timeout plus the heartbeat timeout (2 s + 2 s, FAST flags).
        assert!(partition.longest_outage_ms >= 3000, "{partition:?}");
        assert!(partition.longest_outage_ms < 15000, "{partition:?}");
    }
    assert_missing_only_from(&report, &victim);
    let json: serde_json::Value = serde_json::from_str(&report.to_json()).expect("JSON report");
    assert_eq!(json["failed"], report.failures.len());
}

/// C§3.5 (auto_failover off): the victim's leaders are moved first (`changeleader auto`
/// per partition, then RecoverTable of the old leader, as openmldb_ops pre-upgrade does),
/// then the tablet is killed. With three replicas per partition no write fails; the only
/// rows that can be lost are writes the old leader took alone during the switch (C§6 item 6).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c3_5_graceful_leader_moves_before_a_kill_show_no_outage() {
    let root = "/c3_5_load_graceful";
    let mut cluster = SimCluster::new(root);
    let (tablets, ns) = loaded_cluster(&mut cluster, false).await;
    let victim = tablets[0].clone();
    let victim_led = led_by(&cluster, &ns, &victim).await;
    assert!(!victim_led.is_empty(), "the victim leads some partitions");

    let options = load_options(&cluster, root);
    let report_path = options.report.clone();
    let load = tokio::spawn(run_load(options));
    tokio::time::sleep(Duration::from_secs(3)).await;
    for (table, pid) in &victim_led {
        let request = json!({"name": table, "db": "db", "pid": pid, "candidate_leader": "auto"});
        let changed = cluster.ns(&ns, "ChangeLeader", request).await;
        assert_eq!(changed["code"], 0, "{changed}");
    }
    let ops = cluster.wait_ops_finished(&ns, Duration::from_secs(20)).await;
    assert!(ops.iter().all(|o| o.4 == "kDone"), "{ops:?}");
    for (table, pid) in &victim_led {
        let request = json!({"name": table, "db": "db", "pid": pid, "endpoint": victim});
        let recovered = cluster.ns(&ns, "RecoverTable", request).await;
        assert_eq!(recovered["code"], 0, "{recovered}");
    }
    let ops = cluster.wait_ops_finished(&ns, Duration::from_secs(30)).await;
    assert!(ops.iter().all(|o| o.4 == "kDone"), "{ops:?}");
    assert!(led_by(&cluster, &ns, &victim).await.is_empty(), "the victim leads nothing");
    cluster.kill(&victim);
    let summary = load.await.expect("load task").expect("load runs");
    assert!(summary.acknowledged > 0, "{summary}");

    let report = verify(&report_path, VerifyOptions::default()).await.expect("verify");
    println!("{report}");
    assert_eq!(report.failures, vec![], "no write failed");
    assert!(report.partitions.iter().all(|p| p.longest_outage_ms == 0), "no outage");
    assert_missing_only_from(&report, &victim);
}
