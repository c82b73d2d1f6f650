//! C§3: the op engine, ChangeLeader, auto_failover branches, nameserver failover.

use std::time::Duration;

use serde_json::{json, Value};

use crate::support::{wait_for, SimCluster};

fn leaders(metas: &[(String, bool, bool)]) -> Vec<(String, bool)> {
    metas.iter().filter(|m| m.1).map(|m| (m.0.clone(), m.2)).collect()
}

async fn tablet_mode(cluster: &SimCluster, tablet: &str, tid: u64, pid: u64) -> Option<(String, String)> {
    let reply = cluster.tablet(tablet, "GetTableStatus", json!({ "tid": tid, "pid": pid })).await;
    let status = reply["all_table_status"].get(0)?;
    Some((status["mode"].as_str()?.to_string(), status["state"].as_str()?.to_string()))
}

async fn tid_of(cluster: &SimCluster, ns: &str, db: &str, name: &str) -> u64 {
    let reply = cluster.ns(ns, "ShowTable", json!({ "name": name, "db": db })).await;
    reply["table_info"][0]["tid"].as_u64().expect("tid")
}

/// C§3.5: `changeleader t p auto` on a live leader works (without a candidate it is 309),
/// leaves the old leader `is_leader` with `is_alive=false` and still kTableLeader on its
/// tablet, bumps the term by 2 and appends a TermPair; RecoverTable on the old leader then
/// demotes it and re-adds it as an alive follower.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c3_5_live_leader_change_leaves_two_leader_rows_until_recover_table() {
    let mut cluster = SimCluster::new("/c3_5_change_leader");
    for _ in 0..3 {
        cluster.start_tablet(&[]).await;
    }
    let ns = cluster.start_leader(&[]).await;
    cluster.create_table(&ns, "db", "t", 1, 3).await;
    let tid = tid_of(&cluster, &ns, "db", "t").await;
    let before = cluster.partitions(&ns, "db", "t").await;
    let old_leader = leaders(&before[0].1)[0].0.clone();
    let client = cluster.zk_client().await;
    let term_before: u64 =
        String::from_utf8_lossy(&client.get_data("/c3_5_change_leader/table/term").await.expect("term").0)
            .parse()
            .expect("number");

    let refused = cluster.ns(&ns, "ChangeLeader", json!({"name":"t","db":"db","pid":0})).await;
    assert_eq!(refused["code"], 309, "{refused}");
    let changed =
        cluster.ns(&ns, "ChangeLeader", json!({"name":"t","db":"db","pid":0,"candidate_leader":"auto"})).await;
    assert_eq!(changed, json!({"code":0,"msg":"ok"}));
    let ops = cluster.wait_ops_finished(&ns, Duration::from_secs(15)).await;
    assert_eq!(ops.len(), 1);
    assert_eq!((ops[0].1.as_str(), ops[0].4.as_str()), ("kChangeLeaderOP", "kDone"));

    let after = cluster.partitions(&ns, "db", "t").await;
    let rows = leaders(&after[0].1);
    assert_eq!(rows.len(), 2, "two leader rows: {after:?}");
    assert!(rows.contains(&(old_leader.clone(), false)), "old leader kept is_leader, not alive: {rows:?}");
    let new_leader = rows.iter().find(|r| r.1).expect("alive new leader").0.clone();
    assert_ne!(new_leader, old_leader);
    assert_eq!(tablet_mode(&cluster, &old_leader, tid, 0).await.expect("loaded").0, "kTableLeader", "not demoted");
    assert_eq!(tablet_mode(&cluster, &new_leader, tid, 0).await.expect("loaded").0, "kTableLeader");
    let term_after: u64 =
        String::from_utf8_lossy(&client.get_data("/c3_5_change_leader/table/term").await.expect("term").0)
            .parse()
            .expect("number");
    assert_eq!(term_after, term_before + 2);
    let table = cluster.ns(&ns, "ShowTable", json!({"name":"t","db":"db"})).await;
    let term_offset = &table["table_info"][0]["table_partition"][0]["term_offset"];
    assert_eq!(term_offset.as_array().map(Vec::len), Some(2), "{term_offset}");
    assert_eq!(term_offset[1]["term"], term_after);

    let recovered = cluster.ns(&ns, "RecoverTable", json!({"name":"t","db":"db","pid":0,"endpoint":old_leader})).await;
    assert_eq!(recovered["code"], 0, "{recovered}");
    let ops = cluster.wait_ops_finished(&ns, Duration::from_secs(20)).await;
    let kinds: Vec<&str> = ops.iter().map(|o| o.1.as_str()).collect();
    assert_eq!(kinds[..2], ["kChangeLeaderOP", "kRecoverTableOP"], "{ops:?}");
    assert!(kinds[2].starts_with("kReAddReplica"), "a child op follows its parent: {ops:?}");
    assert!(ops.iter().all(|o| o.4 == "kDone"), "{ops:?}");
    let last = cluster.partitions(&ns, "db", "t").await;
    assert_eq!(leaders(&last[0].1), vec![(new_leader.clone(), true)]);
    assert!(last[0].1.iter().all(|m| m.2), "every replica alive: {last:?}");
    assert_eq!(tablet_mode(&cluster, &old_leader, tid, 0).await.expect("loaded").0, "kTableFollower");
}

/// C§3.4, auto_failover on: a restarted tablet (new `startup_` registration) gets offline
/// ops then RecoverTable ops (with children) per partition, and ends with every replica
/// alive and loaded again; leadership is not moved back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c3_4_auto_failover_on_tablet_restart_runs_offline_then_recover_ops() {
    let mut cluster = SimCluster::new("/c3_4_auto_on");
    let mut tablets = Vec::new();
    for _ in 0..3 {
        tablets.push(cluster.start_tablet(&[]).await);
    }
    let ns = cluster.start_leader(&["--auto_failover=true"]).await;
    cluster.create_table(&ns, "db", "t", 3, 3).await;
    let tid = tid_of(&cluster, &ns, "db", "t").await;
    let victim = tablets[0].clone();
    let victim_led: Vec<u64> = cluster
        .partitions(&ns, "db", "t")
        .await
        .iter()
        .filter(|p| p.1.iter().any(|m| m.0 == victim && m.1))
        .map(|p| p.0)
        .collect();
    assert_eq!(victim_led.len(), 1, "leaders are spread");

    cluster.terminate(&victim);
    wait_for("victim offline in ShowTablet", Duration::from_secs(10), || async {
        let reply = cluster.ns(&ns, "ShowTablet", json!({})).await;
        reply["tablets"]
            .as_array()?
            .iter()
            .any(|t| t["endpoint"] == victim.as_str() && t["state"] == "kOffline")
            .then_some(())
    })
    .await;
    cluster.restart_tablet(&victim, &[]).await;
    wait_for("victim healthy again", Duration::from_secs(10), || async {
        let reply = cluster.ns(&ns, "ShowTablet", json!({})).await;
        reply["tablets"]
            .as_array()?
            .iter()
            .any(|t| t["endpoint"] == victim.as_str() && t["state"] == "kHealthy")
            .then_some(())
    })
    .await;
    let ops = wait_for("recovery ops finished", Duration::from_secs(40), || async {
        let ops = cluster.ops(&ns).await;
        let recovers = ops.iter().filter(|o| o.2 == "t" && o.1 == "kRecoverTableOP").count();
        (recovers == 3 && ops.iter().all(|o| o.4 == "kDone")).then_some(ops)
    })
    .await;
    for pid in 0..3u64 {
        let of_pid: Vec<&(u64, String, String, u64, String)> =
            ops.iter().filter(|o| o.2 == "t" && o.3 == pid).collect();
        let offline = of_pid
            .iter()
            .find(|o| o.1 == "kOfflineReplicaOP" || o.1 == "kChangeLeaderOP")
            .unwrap_or_else(|| panic!("pid {pid}: no offline op in {of_pid:?}"));
        let recover = of_pid.iter().find(|o| o.1 == "kRecoverTableOP").expect("recover op");
        assert!(offline.0 < recover.0, "offline then recover for pid {pid}: {of_pid:?}");
        let expected_offline = if victim_led.contains(&pid) { "kChangeLeaderOP" } else { "kOfflineReplicaOP" };
        assert_eq!(offline.1, expected_offline, "pid {pid}");
        assert!(of_pid.iter().any(|o| o.0 > recover.0 && o.1.starts_with("kReAddReplica")), "child op: {of_pid:?}");
    }
    wait_for("every replica alive, victim a follower everywhere", Duration::from_secs(10), || async {
        let parts = cluster.partitions(&ns, "db", "t").await;
        let all_alive = parts.iter().all(|p| p.1.iter().all(|m| m.2));
        let one_leader = parts.iter().all(|p| leaders(&p.1).len() == 1);
        let victim_follows = parts.iter().all(|p| p.1.iter().any(|m| m.0 == victim && !m.1));
        (all_alive && one_leader && victim_follows).then_some(())
    })
    .await;
    for pid in 0..3 {
        let (mode, state) = tablet_mode(&cluster, &victim, tid, pid).await.expect("reloaded");
        assert_eq!((mode.as_str(), state.as_str()), ("kTableFollower", "kTableNormal"));
    }
}

/// C§3.4, auto_failover off: a lost tablet only shows kOffline; metadata keeps it alive, no
/// op is created, and after a restart nothing is recovered (its tables stay unloaded).
/// C§3.5: ChangeLeader with a candidate answers OK without an op when no alive follower is
/// on a healthy tablet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c3_4_auto_failover_off_tablet_loss_changes_nothing() {
    let mut cluster = SimCluster::new("/c3_4_auto_off");
    let a = cluster.start_tablet(&[]).await;
    let b = cluster.start_tablet(&[]).await;
    let ns = cluster.start_leader(&[]).await;
    cluster.create_table(&ns, "db", "t", 2, 2).await;
    let tid = tid_of(&cluster, &ns, "db", "t").await;
    let before = cluster.partitions(&ns, "db", "t").await;

    cluster.terminate(&b);
    wait_for("b offline", Duration::from_secs(10), || async {
        let reply = cluster.ns(&ns, "ShowTablet", json!({})).await;
        reply["tablets"]
            .as_array()?
            .iter()
            .any(|t| t["endpoint"] == b.as_str() && t["state"] == "kOffline")
            .then_some(())
    })
    .await;
    // Past tablet_heartbeat_timeout (2 s) with a margin.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(cluster.ops(&ns).await.is_empty());
    let during = cluster.partitions(&ns, "db", "t").await;
    assert_eq!(during, before, "metadata untouched, replicas on b still alive");

    let led_by_a = before.iter().find(|p| leaders(&p.1)[0].0 == a).expect("a leads one partition").0;
    let reply =
        cluster.ns(&ns, "ChangeLeader", json!({"name":"t","db":"db","pid":led_by_a,"candidate_leader":"auto"})).await;
    assert_eq!(reply, json!({"code":0,"msg":"ok"}));
    assert!(cluster.ops(&ns).await.is_empty(), "ChangeLeader created no op");

    cluster.restart_tablet(&b, &[]).await;
    wait_for("b healthy", Duration::from_secs(10), || async {
        let reply = cluster.ns(&ns, "ShowTablet", json!({})).await;
        reply["tablets"]
            .as_array()?
            .iter()
            .any(|t| t["endpoint"] == b.as_str() && t["state"] == "kHealthy")
            .then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(cluster.ops(&ns).await.is_empty(), "no recovery without auto_failover");
    let empty: Value = cluster.tablet(&b, "GetTableStatus", json!({})).await;
    assert_eq!(empty, json!({"code":0}), "a restarted tablet has no table loaded");
    assert!(tablet_mode(&cluster, &a, tid, 0).await.is_some());
}

/// C§3.2 / C§3.8: ops live in `op/op_data/<id>` while unfinished; a new leader reloads them
/// and finishes them; ops that succeeded on the old leader are gone from ShowOPStatus.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c3_2_unfinished_ops_resume_on_the_new_nameserver_leader() {
    let mut cluster = SimCluster::new("/c3_2_resume");
    let mut tablets = Vec::new();
    for _ in 0..3 {
        tablets.push(cluster.start_tablet(&[]).await);
    }
    // The first leader never polls tablet tasks, so its tablet tasks stay kDoing.
    let old = cluster.start_leader(&["--get_task_status_interval=600000"]).await;
    let standby = cluster.start_nameserver(&[]).await;
    assert_eq!(cluster.zk_leader().await.as_deref(), Some(old.as_str()));
    cluster.create_table(&old, "db", "t", 1, 2).await;

    // An all-local op finishes on the old leader.
    let changed =
        cluster.ns(&old, "ChangeLeader", json!({"name":"t","db":"db","pid":0,"candidate_leader":"auto"})).await;
    assert_eq!(changed["code"], 0);
    let done = cluster.wait_ops_finished(&old, Duration::from_secs(10)).await;
    assert_eq!(done.len(), 1);
    let first_op = done[0].0;

    let parts = cluster.partitions(&old, "db", "t").await;
    let outsider = tablets.iter().find(|t| !parts[0].1.iter().any(|m| &m.0 == *t)).expect("free tablet").clone();
    let added = cluster.ns(&old, "AddReplicaNS", json!({"name":"t","db":"db","pid":0,"endpoint":outsider})).await;
    assert_eq!(added["code"], 0, "{added}");
    let op_id = wait_for("AddReplica op running", Duration::from_secs(10), || async {
        let ops = cluster.ops(&old).await;
        ops.iter().find(|o| o.1 == "kAddReplicaOP" && o.4 == "kDoing").map(|o| o.0)
    })
    .await;
    let client = cluster.zk_client().await;
    let (persisted, _) = client.get_data(&format!("/c3_2_resume/op/op_data/{op_id}")).await.expect("op data in ZK");
    let persisted: Value = serde_json::from_slice(&persisted).expect("JSON OPInfo");
    assert_eq!(persisted["op_type"], "kAddReplicaOP");
    assert_eq!(persisted["task_status"], "kDoing");
    assert!(client.check_stat(&format!("/c3_2_resume/op/op_data/{first_op}")).await.expect("stat").is_none());

    cluster.terminate(&old);
    let ops = wait_for("op finished on the new leader", Duration::from_secs(30), || async {
        let reply = cluster.ns(&standby, "ShowOPStatus", json!({})).await;
        if reply["code"] != 0 {
            return None;
        }
        let ops = cluster.ops(&standby).await;
        ops.iter().any(|o| o.0 == op_id && o.4 == "kDone").then_some(ops)
    })
    .await;
    assert!(!ops.iter().any(|o| o.0 == first_op), "done ops lived only in the old leader's memory: {ops:?}");
    let parts = cluster.partitions(&standby, "db", "t").await;
    assert!(parts[0].1.iter().any(|m| m.0 == outsider && !m.1 && m.2), "{parts:?}");
    assert!(client.check_stat(&format!("/c3_2_resume/op/op_data/{op_id}")).await.expect("stat").is_none());
}

/// C§3.3: ops of one queue run one after another; AddReplica always uses queue 0; failed
/// ops stay in ZooKeeper and in ShowOPStatus as kFailed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c3_3_failed_op_is_kept_and_queue_continues() {
    let mut cluster = SimCluster::new("/c3_3_queues");
    let mut tablets = Vec::new();
    for _ in 0..3 {
        tablets.push(cluster.start_tablet(&[]).await);
    }
    let ns = cluster.start_leader(&[]).await;
    cluster.create_table(&ns, "db", "t", 2, 2).await;
    let parts = cluster.partitions(&ns, "db", "t").await;
    // A tablet that already loaded the partition out of band refuses the snapshot
    // (SendData: 101 "table already exists"), so AddReplica fails at kSendSnapshot.
    let outsider = tablets.iter().find(|t| !parts[1].1.iter().any(|m| &m.0 == *t)).expect("free").clone();
    let tid = tid_of(&cluster, &ns, "db", "t").await;
    let loaded = cluster
        .tablet(
            &outsider,
            "LoadTable",
            // Nothing on disk there: the schema comes with the request (an index, `Table::InitColumnDesc`).
            json!({"table_meta":{"tid":tid,"pid":1,"name":"t","mode":"kTableFollower",
                                 "column_key":[{"index_name":"k","col_name":["k"]}]}}),
        )
        .await;
    assert_eq!(loaded["code"], 0);
    let added = cluster.ns(&ns, "AddReplicaNS", json!({"name":"t","db":"db","pid":1,"endpoint":outsider})).await;
    assert_eq!(added["code"], 0);
    let ops = cluster.wait_ops_finished(&ns, Duration::from_secs(20)).await;
    let failed = ops.iter().find(|o| o.1 == "kAddReplicaOP").expect("add replica op");
    assert_eq!(failed.4, "kFailed", "{ops:?}");
    let reply = cluster.ns(&ns, "ShowOPStatus", json!({"op_id": failed.0})).await;
    assert_eq!(reply["op_status"][0]["task_type"], "kSendSnapshot", "{reply}");
    let client = cluster.zk_client().await;
    assert!(client.check_stat(&format!("/c3_3_queues/op/op_data/{}", failed.0)).await.expect("stat").is_some());

    // The queue is free again: a later op on queue 0 runs to the end.
    let pid0_outsider = tablets.iter().find(|t| !parts[0].1.iter().any(|m| &m.0 == *t)).expect("free").clone();
    let added = cluster.ns(&ns, "AddReplicaNS", json!({"name":"t","db":"db","pid":0,"endpoint":pid0_outsider})).await;
    assert_eq!(added["code"], 0);
    let ops = wait_for("second AddReplica done", Duration::from_secs(20), || async {
        let ops = cluster.ops(&ns).await;
        (ops.iter().filter(|o| o.1 == "kAddReplicaOP").count() == 2
            && ops.iter().all(|o| o.4 != "kDoing" && o.4 != "kInited"))
        .then_some(ops)
    })
    .await;
    assert_eq!(ops.last().map(|o| o.4.as_str()), Some("kDone"), "{ops:?}");
    let deleted = cluster.ns(&ns, "DeleteOP", json!({"op_id": failed.0})).await;
    assert_eq!(deleted["code"], 0);
    assert!(client.check_stat(&format!("/c3_3_queues/op/op_data/{}", failed.0)).await.expect("stat").is_none());
}

/// C§3.1: Migrate moves a follower (AddReplica-like chain, then DelReplica, UpdateTableInfo,
/// DropTable at the source); DelReplicaNS removes a follower's meta and drops its table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c3_1_migrate_and_del_replica_chains() {
    let mut cluster = SimCluster::new("/c3_1_chains");
    let mut tablets = Vec::new();
    for _ in 0..3 {
        tablets.push(cluster.start_tablet(&[]).await);
    }
    let ns = cluster.start_leader(&[]).await;
    cluster.create_table(&ns, "db", "t", 1, 2).await;
    let tid = tid_of(&cluster, &ns, "db", "t").await;
    let parts = cluster.partitions(&ns, "db", "t").await;
    let follower = parts[0].1.iter().find(|m| !m.1).expect("follower").0.clone();
    let outsider = tablets.iter().find(|t| !parts[0].1.iter().any(|m| &m.0 == *t)).expect("free").clone();

    let migrated = cluster
        .ns(&ns, "Migrate", json!({"src_endpoint":follower,"name":"t","db":"db","pid":[0],"des_endpoint":outsider}))
        .await;
    assert_eq!(migrated, json!({"code":0,"msg":"ok"}));
    let ops = cluster.wait_ops_finished(&ns, Duration::from_secs(20)).await;
    assert_eq!(ops.iter().map(|o| (o.1.as_str(), o.4.as_str())).collect::<Vec<_>>(), vec![("kMigrateOP", "kDone")]);
    let parts = cluster.partitions(&ns, "db", "t").await;
    let endpoints: Vec<&str> = parts[0].1.iter().map(|m| m.0.as_str()).collect();
    assert!(endpoints.contains(&outsider.as_str()) && !endpoints.contains(&follower.as_str()), "{parts:?}");
    assert!(parts[0].1.iter().all(|m| m.2));
    assert!(tablet_mode(&cluster, &follower, tid, 0).await.is_none(), "dropped at the source");
    assert_eq!(tablet_mode(&cluster, &outsider, tid, 0).await.expect("loaded").0, "kTableFollower");

    let deleted = cluster.ns(&ns, "DelReplicaNS", json!({"name":"t","db":"db","pid":0,"endpoint":outsider})).await;
    assert_eq!(deleted["code"], 0, "{deleted}");
    let ops = cluster.wait_ops_finished(&ns, Duration::from_secs(20)).await;
    assert_eq!(ops.last().map(|o| (o.1.as_str(), o.4.as_str())), Some(("kDelReplicaOP", "kDone")));
    let parts = cluster.partitions(&ns, "db", "t").await;
    assert_eq!(parts[0].1.len(), 1, "{parts:?}");
    assert!(tablet_mode(&cluster, &outsider, tid, 0).await.is_none());
}

/// C§3.2: a tablet task whose tablet restarted (and so lost its task map) fails the op.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c3_2_task_lost_by_a_restarted_tablet_fails_the_op() {
    let mut cluster = SimCluster::new("/c3_2_lost_task");
    let mut tablets = Vec::new();
    for _ in 0..3 {
        tablets.push(cluster.start_tablet(&[]).await);
    }
    // Slow polling leaves the task kDoing long enough to restart its tablet underneath.
    let ns = cluster.start_leader(&["--get_task_status_interval=4000"]).await;
    cluster.create_table(&ns, "db", "t", 1, 2).await;
    let parts = cluster.partitions(&ns, "db", "t").await;
    let leader = leaders(&parts[0].1)[0].0.clone();
    let outsider = tablets.iter().find(|t| !parts[0].1.iter().any(|m| &m.0 == *t)).expect("free").clone();
    let added = cluster.ns(&ns, "AddReplicaNS", json!({"name":"t","db":"db","pid":0,"endpoint":outsider})).await;
    assert_eq!(added["code"], 0);
    // The first task (kPauseSnapshot) runs on the leader's tablet: restart it quickly
    // enough (session timeout 2 s) that the nameserver may not even notice the outage.
    wait_for("PauseSnapshot sent", Duration::from_secs(5), || async {
        let reply = cluster.tablet(&leader, "GetTaskStatus", json!({})).await;
        reply["task"].as_array().is_some_and(|t| !t.is_empty()).then_some(())
    })
    .await;
    cluster.terminate(&leader);
    let client = cluster.zk_client().await;
    let node = format!("/c3_2_lost_task/nodes/{leader}");
    wait_for("old registration expired", Duration::from_secs(10), || async {
        client.check_stat(&node).await.ok().flatten().is_none().then_some(())
    })
    .await;
    cluster.restart_tablet(&leader, &[]).await;
    let ops = cluster.wait_ops_finished(&ns, Duration::from_secs(40)).await;
    let op = ops.iter().find(|o| o.1 == "kAddReplicaOP").expect("op");
    assert_eq!(op.4, "kFailed", "{ops:?}");
}

/// C§3.4: RecoverEndpoint with `need_restore` on a replaced leader recovers it, gives it the
/// leadership back (ChangeLeader with it as candidate) and then recovers the interim leader
/// through the `OFFLINE_LEADER_ENDPOINT` placeholder, resolved when that op runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c3_4_recover_endpoint_need_restore_returns_leadership_and_recovers_the_interim_leader() {
    let mut cluster = SimCluster::new("/c3_4_need_restore");
    for _ in 0..2 {
        cluster.start_tablet(&[]).await;
    }
    let ns = cluster.start_leader(&[]).await;
    cluster.create_table(&ns, "db", "t", 1, 2).await;
    let tid = tid_of(&cluster, &ns, "db", "t").await;
    let before = cluster.partitions(&ns, "db", "t").await;
    let home = leaders(&before[0].1)[0].0.clone();
    let changed =
        cluster.ns(&ns, "ChangeLeader", json!({"name":"t","db":"db","pid":0,"candidate_leader":"auto"})).await;
    assert_eq!(changed["code"], 0, "{changed}");
    cluster.wait_ops_finished(&ns, Duration::from_secs(15)).await;
    let interim = leaders(&cluster.partitions(&ns, "db", "t").await[0].1)
        .into_iter()
        .find(|r| r.1)
        .expect("alive interim leader")
        .0;
    assert_ne!(interim, home);

    let reply =
        cluster.ns(&ns, "RecoverEndpoint", json!({"endpoint": home, "need_restore": true, "concurrency": 2})).await;
    assert_eq!(reply["code"], 0, "{reply}");
    let ops = cluster.wait_ops_finished(&ns, Duration::from_secs(30)).await;
    let of_t: Vec<_> = ops.iter().skip(1).filter(|o| o.2 == "t").collect();
    let kinds: Vec<&str> = of_t.iter().filter(|o| !o.1.starts_with("kReAddReplica")).map(|o| o.1.as_str()).collect();
    assert_eq!(kinds, ["kRecoverTableOP", "kChangeLeaderOP", "kRecoverTableOP"], "{ops:?}");
    assert!(of_t.iter().all(|o| o.4 == "kDone"), "{ops:?}");
    // The hazard of need_restore: an alive single-replica leader on the endpoint (here the
    // internal tables) also gets the ChangeLeader, which fails at SelectLeader (FollowOfNoOne
    // to a leader, C§3.5), and the placeholder RecoverTable, which finds no dead leader.
    let mut checked = 0;
    for system in ["JOB_INFO", "GLOBAL_VARIABLES"] {
        let status: Vec<(&str, &str)> =
            ops.iter().filter(|o| o.2 == system).map(|o| (o.1.as_str(), o.4.as_str())).collect();
        if status.is_empty() {
            continue; // not led from that tablet
        }
        checked += 1;
        assert_eq!(
            status,
            [("kRecoverTableOP", "kDone"), ("kChangeLeaderOP", "kFailed"), ("kRecoverTableOP", "kFailed")],
            "{ops:?}"
        );
    }
    assert!(checked > 0, "no internal table led from {home}: {ops:?}");
    let last = cluster.partitions(&ns, "db", "t").await;
    assert_eq!(leaders(&last[0].1), vec![(home.clone(), true)], "leadership is back home: {last:?}");
    assert!(last[0].1.iter().all(|m| m.2), "every replica alive: {last:?}");
    assert_eq!(tablet_mode(&cluster, &interim, tid, 0).await.expect("loaded").0, "kTableFollower");
    assert_eq!(tablet_mode(&cluster, &home, tid, 0).await.expect("loaded").0, "kTableLeader");
}
