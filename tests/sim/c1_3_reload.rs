//! C§1.3 with data: a restarted tablet comes up empty and gets its rows back from its
//! `db_root_path` through LoadTable.

use std::time::Duration;

use mldb_upgrade::sandbox::client::{Client, ClientOptions, TableName};
use serde_json::json;

use crate::support::{wait_for, SimCluster};

/// C§1.3 + C§2.4 LoadTable: after a restart the tablet has no table loaded; a direct
/// LoadTable goes kTableLoading → kTableNormal in the background and brings back every row
/// (offset and record_cnt as before the restart).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c1_3_restarted_tablet_reloads_its_rows_with_load_table() {
    let mut cluster = SimCluster::new("/c1_3_reload");
    let tablet = cluster.start_tablet(&[]).await;
    let ns = cluster.start_leader(&[]).await;
    cluster.create_table(&ns, "db", "t", 2, 1).await;
    let tid = cluster.tid(&ns, "db", "t").await;
    let client = Client::connect(ClientOptions {
        zk_cluster: cluster.zk_cluster(),
        zk_root_path: "/c1_3_reload".to_string(),
        zk_cert: None,
    })
    .await
    .expect("client");
    let table = TableName { db: "db".to_string(), name: "t".to_string() };
    for i in 0..400 {
        client.put(&table, &format!("key{i}"), &format!("value{i}")).await.expect("put");
    }
    let mut before = Vec::new();
    for pid in 0..2 {
        let status = cluster.table_status(&tablet, tid, pid).await.expect("loaded");
        before.push((status["offset"].as_u64().expect("offset"), status["record_cnt"].as_u64().expect("count")));
    }
    assert_eq!(before.iter().map(|b| b.1).sum::<u64>(), 400);
    assert!(before.iter().all(|b| b.0 == b.1 && b.1 > 0), "both partitions got rows: {before:?}");

    cluster.restart_tablet_after_expiry(&tablet).await;
    assert_eq!(cluster.tablet(&tablet, "GetTableStatus", json!({})).await, json!({"code": 0}), "comes up empty");

    for pid in 0..2 {
        let meta = json!({ "tid": tid, "pid": pid, "name": "t", "db": "db", "storage_mode": "kMemory" });
        let loaded = cluster.tablet(&tablet, "LoadTable", json!({ "table_meta": meta })).await;
        assert_eq!(loaded["code"], 0, "{loaded}");
    }
    let state = cluster.table_status(&tablet, tid, 0).await.expect("created by LoadTable")["state"].clone();
    assert!(state == "kTableUndefined" || state == "kTableLoading", "loads in the background: {state}");
    for pid in 0..2u64 {
        let status = wait_for("loaded", Duration::from_secs(5), || async {
            let status = cluster.table_status(&tablet, tid, pid).await?;
            (status["state"] == "kTableNormal").then_some(status)
        })
        .await;
        // The mode comes from the on-disk meta (C§2.4): still the leader.
        assert_eq!(status["mode"], "kTableLeader");
        let after = (status["offset"].as_u64().expect("offset"), status["record_cnt"].as_u64().expect("count"));
        assert_eq!(after, before[pid as usize], "pid {pid}");
    }
    for i in (0..400).step_by(37) {
        let row = client.get(&table, &format!("key{i}")).await.expect("read").expect("row is back");
        assert_eq!(row.value, format!("value{i}"));
    }
}
