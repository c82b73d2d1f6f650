//! C§2: transport (URL forms, auth, HTTP statuses) and the nameserver RPCs' error codes.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::{json, Value};

use crate::support::{wait_for, SimCluster};

/// Sends raw HTTP/1.1 requests on one connection and returns everything the server sent.
fn raw_exchange(endpoint: &str, requests: &[String]) -> String {
    let mut stream = TcpStream::connect(endpoint).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    let mut received = Vec::new();
    for request in requests {
        if stream.write_all(request.as_bytes()).is_err() {
            break;
        }
        let mut buf = [0u8; 4096];
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => received.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&received).to_string()
}

fn post(path: &str, auth: Option<&str>, body: &str) -> String {
    let auth = auth.map(|a| format!("Authorization: {a}\r\n")).unwrap_or_default();
    format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// C§2.1: the first request of a connection must carry `Authorization`; without it the
/// socket is closed with no HTTP response. Built-in pages need none. With
/// `--skip_grant_tables=false` only `sdefault` and the root user pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c2_1_authorization_is_checked_once_per_connection() {
    let mut cluster = SimCluster::new("/c2_1_auth");
    let open = cluster.start_tablet(&[]).await;
    let strict = cluster.start_tablet(&["--skip_grant_tables=false"]).await;
    let status = "/TabletServer/GetTableStatus";

    // No header: closed without a byte of response.
    assert_eq!(raw_exchange(&open, &[post(status, None, "{}")]), "");
    // Any value passes with skip_grant_tables=true (default); later requests need none.
    let both = raw_exchange(&open, &[post(status, Some("foo"), "{}"), post(status, None, "{}")]);
    assert_eq!(both.matches("HTTP/1.1 200").count(), 2, "{both}");
    // Built-in pages need no credential.
    let health = raw_exchange(&open, &["GET /health HTTP/1.1\r\nHost: x\r\n\r\n".to_string()]);
    assert!(health.starts_with("HTTP/1.1 200") && health.ends_with("OK"), "{health}");

    assert_eq!(raw_exchange(&strict, &[post(status, Some("foo"), "{}")]), "");
    assert_eq!(raw_exchange(&strict, &[post(status, Some("uroot:1abc"), "{}")]), "");
    let root = format!("uroot:{}", mldb_upgrade::sim::http::password_hash(""));
    assert!(raw_exchange(&strict, &[post(status, Some(&root), "{}")]).starts_with("HTTP/1.1 200"));
    assert!(raw_exchange(&strict, &[post(status, Some("sdefault"), "{}")]).starts_with("HTTP/1.1 200"));
}

/// C§2.1: both URL forms, GET or POST; a missing required field is HTTP 400 with brpc's
/// text; an unknown method is 404; replies omit unset fields and print enums by name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c2_1_url_forms_http_400_on_missing_required_field_and_404_on_unknown_method() {
    let mut cluster = SimCluster::new("/c2_1_transport");
    let tablet = cluster.start_tablet(&[]).await;
    let ns = cluster.start_leader(&[]).await;
    let http = cluster.http.clone();
    for path in ["/NameServer/ShowTablet", "/openmldb.nameserver.NameServer/ShowTablet"] {
        let reply: Value = http
            .get(format!("http://{ns}{path}"))
            .header("Authorization", "x")
            .send()
            .await
            .expect("GET")
            .json()
            .await
            .expect("json");
        assert_eq!(reply["tablets"][0]["endpoint"], tablet.as_str(), "{path}");
    }
    let reply = cluster.post(&tablet, "/openmldb.api.TabletServer/GetTableStatus", json!({})).await;
    assert!(reply["all_table_status"].as_array().is_some_and(|a| !a.is_empty()), "system tables: {reply}");
    let first = &reply["all_table_status"][0];
    assert!(first["mode"] == "kTableLeader" || first["mode"] == "kTableFollower", "{first}");
    assert_eq!(first["state"], "kTableNormal");
    assert!(reply.get("msg").is_none(), "GetTableStatus sets no msg: {reply}");

    let missing = http
        .post(format!("http://{ns}/NameServer/ChangeLeader"))
        .header("Authorization", "x")
        .body(r#"{"name":"t"}"#)
        .send()
        .await
        .expect("post");
    assert_eq!(missing.status().as_u16(), 400);
    assert_eq!(
        missing.text().await.expect("text"),
        "Fail to parse http body as openmldb.nameserver.ChangeLeaderRequest, Missing required field: pid"
    );
    let unknown = http
        .post(format!("http://{ns}/NameServer/NoSuchMethod"))
        .header("Authorization", "x")
        .body("{}")
        .send()
        .await
        .expect("post");
    assert_eq!(unknown.status().as_u16(), 404);
    let wrong_service = http
        .post(format!("http://{ns}/TabletServer/GetTableStatus"))
        .header("Authorization", "x")
        .body("{}")
        .send()
        .await
        .expect("post");
    assert_eq!(wrong_service.status().as_u16(), 404);
}

/// C§2.3: every nameserver RPC's documented preconditions, table-driven, with
/// auto_failover off and then on (the AF-off RPCs answer 301).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c2_3_nameserver_rpc_error_codes() {
    let mut cluster = SimCluster::new("/c2_3_codes");
    let t1 = cluster.start_tablet(&[]).await;
    let t2 = cluster.start_tablet(&[]).await;
    let t3 = cluster.start_tablet(&[]).await;
    let ns = cluster.start_leader(&[]).await;
    cluster.create_table(&ns, "db1", "t2", 2, 2).await;
    cluster.create_table(&ns, "db1", "t1", 1, 1).await;
    let parts = cluster.partitions(&ns, "db1", "t2").await;
    let leader0 = parts[0].1.iter().find(|m| m.1).expect("leader").0.clone();
    let follower0 = parts[0].1.iter().find(|m| !m.1).expect("follower").0.clone();
    let outsider0 = [&t1, &t2, &t3].into_iter().find(|e| !parts[0].1.iter().any(|m| &m.0 == *e)).expect("free");
    let single = cluster.partitions(&ns, "db1", "t1").await[0].1[0].0.clone();
    let not_t1 = [&t1, &t2, &t3].into_iter().find(|e| **e != single).expect("tablet without t1");
    let ghost = "127.0.0.1:1";
    let exist_msg = format!("pid 0 is exist in {follower0}");
    let not_in_msg = format!("pid 0 is not in {outsider0}");
    let del_leader_msg = format!("can not del leader. pid 0 endpoint {leader0}");

    let cases: Vec<(&str, Value, i64, &str)> = vec![
        ("ChangeLeader", json!({"name":"nope","db":"db1","pid":0}), 100, "table does not exist"),
        ("ChangeLeader", json!({"name":"t2","db":"db1","pid":5}), 308, "pid does not exist"),
        ("ChangeLeader", json!({"name":"t1","db":"db1","pid":0}), 134, "no follower"),
        ("ChangeLeader", json!({"name":"t2","db":"db1","pid":0}), 309, "leader is alive"),
        ("ChangeLeader", json!({"name":"t2","db":"db1","pid":0,"candidate_leader":outsider0}), 305, "create op failed"),
        ("AddReplicaNS", json!({"name":"t2","db":"db1","pid":0,"endpoint":ghost}), 303, "tablet is not healthy"),
        ("AddReplicaNS", json!({"name":"nope","db":"db1","pid":0,"endpoint":outsider0}), 100, "table does not exist"),
        ("AddReplicaNS", json!({"name":"t2","db":"db1","pid":9,"endpoint":outsider0}), 307, "invalid parameter"),
        ("AddReplicaNS", json!({"name":"t2","db":"db1","pid":0,"endpoint":follower0}), 317, &exist_msg),
        ("DelReplicaNS", json!({"name":"nope","db":"db1","pid":0,"endpoint":follower0}), 100, "table does not exist"),
        ("DelReplicaNS", json!({"name":"t2","db":"db1","pid":0,"endpoint":ghost}), 303, "tablet is not healthy"),
        (
            "DelReplicaNS",
            json!({"name":"t2","db":"db1","pid":7,"endpoint":follower0}),
            307,
            "max pid is greater than partition size",
        ),
        ("DelReplicaNS", json!({"name":"t2","db":"db1","pid":0,"endpoint":outsider0}), 308, &not_in_msg),
        ("DelReplicaNS", json!({"name":"t2","db":"db1","pid":0,"endpoint":leader0}), 102, &del_leader_msg),
        (
            "Migrate",
            json!({"src_endpoint":ghost,"name":"t2","db":"db1","pid":[0],"des_endpoint":outsider0}),
            318,
            "src_endpoint does not exist or not healthy",
        ),
        (
            "Migrate",
            json!({"src_endpoint":follower0,"name":"t2","db":"db1","pid":[0],"des_endpoint":ghost}),
            319,
            "des_endpoint does not exist or not healthy",
        ),
        (
            "Migrate",
            json!({"src_endpoint":follower0,"name":"nope","db":"db1","pid":[0],"des_endpoint":outsider0}),
            100,
            "table does not exist",
        ),
        (
            "Migrate",
            json!({"src_endpoint":leader0,"name":"t2","db":"db1","pid":[0],"des_endpoint":outsider0}),
            320,
            "cannot migrate leader. name[t2] pid[0]",
        ),
        ("RecoverTable", json!({"name":"t2","db":"db1","pid":0,"endpoint":ghost}), 302, "endpoint does not exist"),
        ("RecoverTable", json!({"name":"nope","db":"db1","pid":0,"endpoint":follower0}), 100, "table does not exist"),
        (
            "RecoverTable",
            json!({"name":"t2","db":"db1","pid":0,"endpoint":follower0}),
            311,
            "table is alive, need not recover",
        ),
        ("RecoverTable", json!({"name":"t2","db":"db1","pid":0,"endpoint":outsider0}), 308, "pid does not exist"),
        ("RecoverEndpoint", json!({"endpoint":follower0,"concurrency":9}), 307, "invalid parameter"),
        ("RecoverEndpoint", json!({"endpoint":ghost}), 302, "endpoint does not exist"),
        ("OfflineEndpoint", json!({"endpoint":follower0,"concurrency":9}), 307, "invalid parameter"),
        ("OfflineEndpoint", json!({"endpoint":ghost}), 302, "endpoint does not exist"),
        (
            "UpdateTableAliveStatus",
            json!({"name":"t2","db":"db1","endpoint":ghost,"is_alive":false}),
            302,
            "endpoint does not exist",
        ),
        (
            "UpdateTableAliveStatus",
            json!({"name":"nope","db":"db1","endpoint":follower0,"is_alive":false}),
            100,
            "table does not exist",
        ),
        (
            "UpdateTableAliveStatus",
            json!({"name":"t1","db":"db1","endpoint":not_t1,"pid":0,"is_alive":false}),
            321,
            "no pid has update",
        ),
        ("ConfSet", json!({"conf":{"key":"auto_failover","value":"maybe"}}), 307, "invalid parameter"),
        ("ConfSet", json!({"conf":{"key":"other","value":"true"}}), 307, "invalid parameter"),
        ("CancelOP", json!({"op_id":12345}), 312, "op status is not kDoing or kInited"),
        ("DeleteOP", json!({"status":"kDoing"}), 307, "cannot delete the Inited OP"),
        ("DeleteOP", json!({"op_id":12345}), 136, "op id does not exist"),
        ("UseDatabase", json!({"db":"nope"}), 802, "database not found"),
        ("CreateDatabase", json!({"db":"db1"}), 801, "database already exists"),
    ];
    for (method, body, code, msg) in &cases {
        let reply = cluster.ns(&ns, method, body.clone()).await;
        assert_eq!(reply["code"], *code, "{method} {body}: {reply}");
        assert_eq!(reply["msg"], *msg, "{method} {body}: {reply}");
    }
    assert!(cluster.ops(&ns).await.is_empty(), "no case created an op");

    // ShowTable/ShowOPStatus never fail; ConfGet returns exactly auto_failover.
    let none = cluster.ns(&ns, "ShowTable", json!({"name":"nope","db":"db1"})).await;
    assert_eq!(none, json!({"code":0,"msg":"ok"}));
    let conf = cluster.ns(&ns, "ConfGet", json!({})).await;
    assert_eq!(conf["conf"], json!([{"key":"auto_failover","value":"false"}]));
    let dbs = cluster.ns(&ns, "ShowDatabase", json!({})).await;
    assert_eq!(dbs["db"], json!(["db1"]), "internal databases are hidden");
    let all = cluster.ns(&ns, "ShowTable", json!({"show_all": true})).await;
    let names: Vec<&str> =
        all["table_info"].as_array().expect("tables").iter().filter_map(|t| t["name"].as_str()).collect();
    assert!(names.contains(&"USER") && names.contains(&"t1"), "{names:?}");

    // auto_failover on: the AF-off RPCs answer 301; the flag value is lower-cased in ZK.
    let set = cluster.ns(&ns, "ConfSet", json!({"conf":{"key":"auto_failover","value":"TRUE"}})).await;
    assert_eq!(set["code"], 0);
    let client = cluster.zk_client().await;
    let (value, _) = client.get_data("/c2_3_codes/config/auto_failover").await.expect("node");
    assert_eq!(value, b"true");
    for (method, body) in [
        ("ChangeLeader", json!({"name":"t2","db":"db1","pid":0,"candidate_leader":"auto"})),
        ("Migrate", json!({"src_endpoint":follower0,"name":"t2","db":"db1","pid":[0],"des_endpoint":outsider0})),
        ("RecoverTable", json!({"name":"t2","db":"db1","pid":0,"endpoint":follower0})),
        ("RecoverEndpoint", json!({"endpoint":follower0})),
        ("OfflineEndpoint", json!({"endpoint":follower0})),
        ("UpdateTableAliveStatus", json!({"name":"t2","db":"db1","endpoint":follower0,"is_alive":false})),
        ("SetTablePartition", json!({"name":"t2","db":"db1","table_partition":{"pid":0}})),
        ("CancelOP", json!({"op_id":1})),
    ] {
        let reply = cluster.ns(&ns, method, body).await;
        assert_eq!(reply, json!({"code":301,"msg":"auto_failover is enabled"}), "{method}");
    }
    // AddReplicaNS has no auto_failover check: it creates an op in queue 0 and succeeds.
    let added = cluster.ns(&ns, "AddReplicaNS", json!({"name":"t2","db":"db1","pid":1,"endpoint":outsider0})).await;
    let parts1 = cluster.partitions(&ns, "db1", "t2").await;
    let expected = if parts1[1].1.iter().any(|m| m.0 == *outsider0) { 317 } else { 0 };
    assert_eq!(added["code"], expected, "{added}");
    if expected == 0 {
        let ops = cluster.wait_ops_finished(&ns, Duration::from_secs(20)).await;
        assert_eq!(ops.last().map(|o| (o.1.as_str(), o.4.as_str())), Some(("kAddReplicaOP", "kDone")), "{ops:?}");
        wait_for("new replica alive", Duration::from_secs(5), || async {
            let parts = cluster.partitions(&ns, "db1", "t2").await;
            parts[1].1.iter().any(|m| m.0 == *outsider0 && !m.1 && m.2).then_some(())
        })
        .await;
    }
}

/// C§2.3: GetTablePartition and SetTablePartition, the raw metadata edit
/// (`name_server_impl.cc:2040-2116`). Get copies one partition (a pid the table lacks answers ok
/// without one); Set replaces the partition of its pid with the request's as it is, flags and
/// all, leaves the other partitions alone, and changes nothing for a pid the table lacks. A
/// partition meta without its required fields fails like any json2pb parse.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c2_3_table_partition_is_read_and_replaced_raw() {
    let mut cluster = SimCluster::new("/c2_3_partition");
    cluster.start_tablet(&[]).await;
    cluster.start_tablet(&[]).await;
    let ns = cluster.start_leader(&[]).await;
    cluster.create_table(&ns, "db1", "t2", 2, 2).await;
    let before = cluster.partitions(&ns, "db1", "t2").await;
    let got = cluster.ns(&ns, "GetTablePartition", json!({"name":"t2","db":"db1","pid":1})).await;
    assert_eq!(got["code"], 0, "{got}");
    assert_eq!(got["table_partition"]["pid"], 1, "{got}");
    let absent = cluster.ns(&ns, "GetTablePartition", json!({"name":"t2","db":"db1","pid":7})).await;
    assert_eq!(absent, json!({"code":0,"msg":"ok"}));
    let nope = cluster.ns(&ns, "GetTablePartition", json!({"name":"nope","db":"db1","pid":0})).await;
    assert_eq!(nope["code"], 100, "{nope}");

    // The follower flagged leader and dead: written as given, two leaders and all.
    let mut partition = got["table_partition"].clone();
    let follower = before[1].1.iter().find(|m| !m.1).expect("follower").0.clone();
    for meta in partition["partition_meta"].as_array_mut().expect("metas") {
        if meta["endpoint"] == follower.as_str() {
            meta["is_leader"] = json!(true);
            meta["is_alive"] = json!(false);
        }
    }
    let set = cluster.ns(&ns, "SetTablePartition", json!({"name":"t2","db":"db1","table_partition":partition})).await;
    assert_eq!(set, json!({"code":0,"msg":"ok"}));
    let after = cluster.partitions(&ns, "db1", "t2").await;
    assert_eq!(after[0], before[0], "pid 0 is left alone");
    let edited = after[1].1.iter().find(|m| m.0 == follower).expect("still listed");
    assert_eq!((edited.1, edited.2), (true, false), "{after:?}");
    assert_eq!(after[1].1.iter().filter(|m| m.1).count(), 2, "{after:?}");

    // A replica removed from the list is gone from the metadata.
    let mut fewer =
        cluster.ns(&ns, "GetTablePartition", json!({"name":"t2","db":"db1","pid":1})).await["table_partition"].clone();
    fewer["partition_meta"].as_array_mut().expect("metas").retain(|m| m["endpoint"] != follower.as_str());
    let set = cluster.ns(&ns, "SetTablePartition", json!({"name":"t2","db":"db1","table_partition":fewer})).await;
    assert_eq!(set["code"], 0, "{set}");
    let after = cluster.partitions(&ns, "db1", "t2").await;
    assert!(!after[1].1.iter().any(|m| m.0 == follower) && after[1].1.len() == 1, "{after:?}");

    // A pid the table lacks: ok, nothing changes.
    let set = cluster.ns(&ns, "SetTablePartition", json!({"name":"t2","db":"db1","table_partition":{"pid":9}})).await;
    assert_eq!(set["code"], 0, "{set}");
    assert_eq!(cluster.partitions(&ns, "db1", "t2").await, after);
    // A meta without `is_leader` (required) fails to parse: brpc's HTTP 400.
    let bad = json!({"name":"t2","db":"db1","table_partition":{"pid":1,"partition_meta":[{"endpoint":follower}]}});
    let reply = mldb_upgrade::sim::http::call(&ns, "/NameServer/SetTablePartition", &bad, Duration::from_secs(5)).await;
    let refused = format!("{reply:?}");
    assert!(reply.is_err() && refused.contains("Missing required field: is_leader"), "{refused}");
    assert_eq!(cluster.partitions(&ns, "db1", "t2").await, after);
}
