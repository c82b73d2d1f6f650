//! C§2.4/C§2.5: the tablet's data RPCs (Put, Get, Scan) and their error codes.

use std::time::Duration;

use serde_json::json;

use crate::support::{wait_for, SimCluster};

/// C§2.5 codes through `CheckTable`: Put on a follower is 103 while Get and Scan answer from
/// the follower's data (`TB` Get/Scan do not check the leader); a partition that is not
/// loaded is 100 for all three; a loading one is 104; Scan with st < et is 117, a missing
/// key 109, a Put without a key 115.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c2_4_put_get_scan_error_codes_on_followers_and_unloaded_tables() {
    let mut cluster = SimCluster::new("/c2_4_data");
    cluster.start_tablet(&[]).await;
    cluster.start_tablet(&[]).await;
    let ns = cluster.start_leader(&[]).await;
    let (tid, leader, follower) = cluster.one_partition_on_two_replicas(&ns).await;

    let put = |key: &str, ts: u64| {
        json!({ "tid": tid, "pid": 0, "pk": key, "time": ts, "value": format!("{{\"v\":\"{key}\"}}"),
                "dimensions": [{ "key": key, "idx": 0 }] })
    };
    for ts in [10, 20, 30] {
        assert_eq!(cluster.tablet(&leader, "Put", put("k1", ts)).await, json!({"code": 0, "msg": "ok"}));
    }
    let refused = cluster.tablet(&follower, "Put", put("k1", 40)).await;
    assert_eq!(refused, json!({"code": 103, "msg": "table is follower"}));
    let no_key = cluster.tablet(&leader, "Put", json!({ "tid": tid, "pid": 0, "value": "x" })).await;
    assert_eq!(no_key["code"], 115, "{no_key}");

    let got = cluster.tablet(&leader, "Get", json!({ "tid": tid, "pid": 0, "key": "k1" })).await;
    assert_eq!(got, json!({"code": 0, "msg": "ok", "key": "k1", "ts": 30, "value": "{\"v\":\"k1\"}"}));
    let exact = cluster.tablet(&leader, "Get", json!({ "tid": tid, "pid": 0, "key": "k1", "ts": 20 })).await;
    assert_eq!(exact["ts"], 20);
    let missing = cluster.tablet(&leader, "Get", json!({ "tid": tid, "pid": 0, "key": "nope" })).await;
    assert_eq!(missing, json!({"code": 109, "msg": "key not found"}));
    // The follower serves reads once replication reached it.
    wait_for("follower has the rows", Duration::from_secs(5), || async {
        let got = cluster.tablet(&follower, "Get", json!({ "tid": tid, "pid": 0, "key": "k1" })).await;
        (got["code"] == 0 && got["ts"] == 30).then_some(())
    })
    .await;

    let scan = cluster.tablet(&leader, "Scan", json!({ "tid": tid, "pid": 0, "pk": "k1", "st": 30, "et": 10 })).await;
    assert_eq!(scan["code"], 0, "{scan}");
    assert_eq!(scan["count"], 2);
    assert_eq!(scan["pairs"], json!([{"ts": 30, "value": "{\"v\":\"k1\"}"}, {"ts": 20, "value": "{\"v\":\"k1\"}"}]));
    let limited = cluster.tablet(&follower, "Scan", json!({ "tid": tid, "pid": 0, "pk": "k1", "limit": 1 })).await;
    assert_eq!(limited["count"], 1, "{limited}");
    let backwards =
        cluster.tablet(&leader, "Scan", json!({ "tid": tid, "pid": 0, "pk": "k1", "st": 1, "et": 2 })).await;
    assert_eq!(backwards, json!({"code": 117, "msg": "starttime less than endtime"}));

    // A partition not loaded here: 100 everywhere.
    let absent = tid + 100;
    for (method, body) in [
        ("Put", json!({ "tid": absent, "pid": 0, "pk": "k", "value": "v" })),
        ("Get", json!({ "tid": absent, "pid": 0, "key": "k" })),
        ("Scan", json!({ "tid": absent, "pid": 0, "pk": "k" })),
    ] {
        let reply = cluster.tablet(&leader, method, body).await;
        assert_eq!(reply, json!({"code": 100, "msg": "table does not exist"}), "{method}");
    }

    // A table being loaded: 104 until kTableNormal, then it serves its (empty) data.
    // Nothing on disk for it: the request brings the schema (an index), else it cannot load.
    let meta = json!({ "tid": absent, "pid": 0, "name": "manual", "db": "db", "mode": "kTableLeader",
                       "storage_mode": "kMemory", "column_desc": [{ "name": "k", "data_type": "kString" }],
                       "column_key": [{ "index_name": "k", "col_name": ["k"] }] });
    assert_eq!(cluster.tablet(&leader, "LoadTable", json!({ "table_meta": meta })).await["code"], 0);
    for (method, body) in [
        ("Put", json!({ "tid": absent, "pid": 0, "pk": "k", "value": "v" })),
        ("Get", json!({ "tid": absent, "pid": 0, "key": "k" })),
        ("Scan", json!({ "tid": absent, "pid": 0, "pk": "k" })),
    ] {
        let reply = cluster.tablet(&leader, method, body).await;
        assert_eq!(reply, json!({"code": 104, "msg": "table is loading"}), "{method}");
    }
    wait_for("manual table loaded", Duration::from_secs(5), || async {
        let status = cluster.table_status(&leader, absent, 0).await?;
        (status["state"] == "kTableNormal").then_some(())
    })
    .await;
    let put = json!({ "tid": absent, "pid": 0, "pk": "k", "value": "v" });
    assert_eq!(cluster.tablet(&leader, "Put", put).await["code"], 0);
}
