//! C§3.5 with data: asynchronous replication, and what a live leader change loses.

use std::time::Duration;

use mldb_upgrade::sandbox::client::{Client, ClientOptions, TableName};
use serde_json::{json, Value};

use crate::support::{wait_for, SimCluster};

/// C§3.5: followers lag the leader (`--binlog_notify_on_put=false`, its default, and
/// `--binlog_sync_wait_time=3000`: a node that has sent everything looks for new entries only
/// every 3 s, `src/replica/replicate_node.cc:117-130`); `changeleader t 0 auto`
/// on the live leader picks a follower by offset, and exactly the entries the followers had
/// not received are lost: the new leader does not have them, the old leader (still
/// kTableLeader on its tablet) keeps them and even accepts more writes, and RecoverTable
/// re-adds it with a drop (its log reaches past the new term's start) so they are gone
/// everywhere. The offsets in ShowTable are the tablets' real ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c3_5_change_leader_to_a_lagging_follower_loses_exactly_the_missing_entries() {
    let mut cluster = SimCluster::new("/c3_5_lag");
    let lag = ["--binlog_sync_wait_time=3000"];
    for _ in 0..3 {
        cluster.start_tablet(&lag).await;
    }
    let ns = cluster.start_leader(&[]).await;
    cluster.create_table(&ns, "db", "t", 1, 3).await;
    let tid = cluster.tid(&ns, "db", "t").await;
    let parts = cluster.partitions(&ns, "db", "t").await;
    let old_leader = parts[0].1.iter().find(|m| m.1).expect("leader").0.clone();
    let followers: Vec<String> = parts[0].1.iter().filter(|m| !m.1).map(|m| m.0.clone()).collect();
    let put = |key: String| json!({ "tid": tid, "pid": 0, "pk": key, "value": format!("v-{key}") });

    for i in 0..10 {
        assert_eq!(cluster.tablet(&old_leader, "Put", put(format!("a{i}"))).await["code"], 0);
    }
    for follower in &followers {
        wait_for("followers replicated the first batch", Duration::from_secs(10), || async {
            let status = cluster.table_status(follower, tid, 0).await?;
            (status["offset"] == 10).then_some(())
        })
        .await;
    }
    // The second batch is acknowledged by the leader but not sent yet: the nodes have just
    // sent the first one and wait up to 3 s before they look again.
    for i in 0..5 {
        assert_eq!(cluster.tablet(&old_leader, "Put", put(format!("b{i}"))).await["code"], 0);
    }
    let changed =
        cluster.ns(&ns, "ChangeLeader", json!({"name": "t", "db": "db", "pid": 0, "candidate_leader": "auto"})).await;
    assert_eq!(changed["code"], 0, "{changed}");
    let ops = cluster.wait_ops_finished(&ns, Duration::from_secs(10)).await;
    assert!(ops.iter().all(|o| o.4 == "kDone"), "{ops:?}");
    let after = cluster.partitions(&ns, "db", "t").await;
    let new_leader = after[0].1.iter().find(|m| m.1 && m.2).expect("alive leader").0.clone();
    assert!(followers.contains(&new_leader));

    // Long after the lag: the old leader's second batch never reached the new term.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    for follower in &followers {
        assert_eq!(cluster.table_status(follower, tid, 0).await.expect("loaded")["offset"], 10, "{follower}");
    }
    let old_status = cluster.table_status(&old_leader, tid, 0).await.expect("loaded");
    assert_eq!((old_status["offset"].clone(), old_status["mode"].clone()), (json!(15), json!("kTableLeader")));
    // The stale leader still takes writes: the C§3.5 / C§6 item 6 hazard.
    assert_eq!(cluster.tablet(&old_leader, "Put", put("c0".to_string())).await["code"], 0);

    // ShowTable shows the real offsets (status refresh, C§3.7).
    wait_for("ShowTable offsets", Duration::from_secs(5), || async {
        let table = cluster.ns(&ns, "ShowTable", json!({"name": "t", "db": "db"})).await;
        let metas = table["table_info"][0]["table_partition"][0]["partition_meta"].as_array()?.clone();
        let offset_of = |ep: &str| metas.iter().find(|m| m["endpoint"] == ep).and_then(|m| m["offset"].as_u64());
        (offset_of(&old_leader) == Some(16) && offset_of(&new_leader) == Some(10)).then_some(())
    })
    .await;

    let client = Client::connect(ClientOptions {
        zk_cluster: cluster.zk_cluster(),
        zk_root_path: "/c3_5_lag".to_string(),
        zk_cert: None,
    })
    .await
    .expect("client");
    let table = TableName { db: "db".to_string(), name: "t".to_string() };
    for i in 0..10 {
        let row = client.get(&table, &format!("a{i}")).await.expect("read").expect("first batch kept");
        assert_eq!(row.value, format!("v-a{i}"));
    }
    for key in ["b0", "b1", "b2", "b3", "b4", "c0"] {
        assert_eq!(client.get(&table, key).await.expect("read"), None, "{key} is lost");
    }

    // RecoverTable demotes the old leader and drops what it alone had (WithDrop).
    let recovered =
        cluster.ns(&ns, "RecoverTable", json!({"name": "t", "db": "db", "pid": 0, "endpoint": old_leader})).await;
    assert_eq!(recovered["code"], 0, "{recovered}");
    let ops = cluster.wait_ops_finished(&ns, Duration::from_secs(30)).await;
    assert!(ops.iter().any(|o| o.1 == "kReAddReplicaWithDropOP"), "{ops:?}");
    assert!(ops.iter().all(|o| o.4 == "kDone"), "{ops:?}");
    let status = cluster.table_status(&old_leader, tid, 0).await.expect("loaded again");
    assert_eq!((status["offset"].clone(), status["mode"].clone()), (json!(10), json!("kTableFollower")));
    let gone = cluster.tablet(&old_leader, "Get", json!({ "tid": tid, "pid": 0, "key": "b0" })).await;
    assert_eq!(gone["code"], 109, "{gone}");

    // New writes reach every replica, the re-added one included.
    assert!(client.put(&table, "d0", "v-d0").await.is_ok());
    for replica in [&old_leader, &followers[0], &followers[1]] {
        wait_for("new write replicated", Duration::from_secs(10), || async {
            let got: Value = cluster.tablet(replica, "Get", json!({ "tid": tid, "pid": 0, "key": "d0" })).await;
            (got["code"] == 0).then_some(())
        })
        .await;
    }
}

/// The replicator's term (C§2.4 GetTermPair, `tablet_impl.cc:3844-3892`): a follower answers
/// the term its leader's first AppendEntries without entries gave it; restarted, its replica
/// unloaded answers its snapshot's (0/0 without one); loaded again as a follower it answers 0
/// (`CreateTableInternal` sets the term of a leader only, `:4159-4161`), so RecoverTable finds
/// no matching term and drops and re-sends it (kReAddReplicaWithDropOP, `MatchTermOffset`,
/// `name_server_impl.cc:6708-6712`); the new node's probe gives it the term again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c2_4_a_reloaded_follower_answers_term_0_until_its_leader_probes_it() {
    let mut cluster = SimCluster::new("/c2_4_term");
    for _ in 0..2 {
        cluster.start_tablet(&[]).await;
    }
    let ns = cluster.start_leader(&[]).await;
    let (tid, leader, follower) = cluster.one_partition_on_two_replicas(&ns).await;
    for i in 0..5 {
        let put = json!({ "tid": tid, "pid": 0, "pk": format!("k{i}"), "value": "v" });
        assert_eq!(cluster.tablet(&leader, "Put", put).await["code"], 0);
    }
    wait_for("the follower replicated", Duration::from_secs(10), || async {
        (term_pair(&cluster, &follower, tid).await == (true, Some(1), Some(5))).then_some(())
    })
    .await;

    cluster.restart_tablet_after_expiry(&follower).await;
    assert_eq!(
        term_pair(&cluster, &follower, tid).await,
        (false, Some(0), Some(0)),
        "an unloaded replica without a snapshot"
    );
    let meta = json!({ "name": "t", "db": "db", "tid": tid, "pid": 0, "mode": "kTableFollower" });
    assert_eq!(cluster.tablet(&follower, "LoadTable", json!({ "table_meta": meta })).await["code"], 0);
    wait_for("the follower loaded", Duration::from_secs(10), || async {
        let status = cluster.table_status(&follower, tid, 0).await?;
        (status["state"] == "kTableNormal").then_some(())
    })
    .await;
    assert_eq!(
        term_pair(&cluster, &follower, tid).await,
        (true, Some(0), Some(5)),
        "loaded as a follower, no leader has probed it"
    );

    let dead = json!({ "name": "t", "db": "db", "pid": 0, "endpoint": follower, "is_alive": false });
    assert_eq!(cluster.ns(&ns, "UpdateTableAliveStatus", dead).await["code"], 0);
    let recovered =
        cluster.ns(&ns, "RecoverTable", json!({ "name": "t", "db": "db", "pid": 0, "endpoint": follower })).await;
    assert_eq!(recovered["code"], 0, "{recovered}");
    let ops = cluster.wait_ops_finished(&ns, Duration::from_secs(60)).await;
    assert!(ops.iter().any(|o| o.1 == "kReAddReplicaWithDropOP"), "{ops:?}");
    assert!(ops.iter().all(|o| o.4 == "kDone"), "{ops:?}");
    wait_for("the re-added follower probed", Duration::from_secs(10), || async {
        (term_pair(&cluster, &follower, tid).await == (true, Some(1), Some(5))).then_some(())
    })
    .await;
}

/// GetTermPair of pid 0: (has_table, term, offset).
async fn term_pair(cluster: &SimCluster, tablet: &str, tid: u64) -> (bool, Option<u64>, Option<u64>) {
    let reply = cluster.tablet(tablet, "GetTermPair", json!({ "tid": tid, "pid": 0 })).await;
    (reply["has_table"].as_bool().unwrap_or(false), reply["term"].as_u64(), reply["offset"].as_u64())
}
