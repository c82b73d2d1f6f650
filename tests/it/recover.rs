//! Recover data (O§5.7) on partitions whose leader's tablet is gone: the freshest replica by
//! (term, offset) leads, the nameserver agrees, a tie never depends on metadata order, and no
//! acknowledged row is lost. Each test checks the nameserver's and the tablets' real state.

use std::time::{Duration, Instant};

use mldb_upgrade::sandbox::client::{partition_of, TableName};
use mldb_upgrade::sandbox::{self, SandboxState};
use serde_json::{json, Value};

use crate::support::{self, Sandbox};

/// The nameserver's view of one table: per pid, (endpoint, is_leader, is_alive).
type Placement = Vec<(u32, Vec<(String, bool, bool)>)>;

fn placement(state: &SandboxState, db: &str, name: &str) -> Placement {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let reply = rt.block_on(sandbox::ns_call(state, "ShowTable", json!({"db": db, "name": name}))).unwrap();
    let table = &reply["table_info"][0];
    table["table_partition"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let metas = p["partition_meta"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| {
                    (
                        m["endpoint"].as_str().unwrap().to_string(),
                        m["is_leader"].as_bool().unwrap_or(false),
                        m["is_alive"].as_bool().unwrap_or(true),
                    )
                })
                .collect();
            (p["pid"].as_u64().unwrap() as u32, metas)
        })
        .collect()
}

fn alive_leader(placement: &Placement, pid: u32) -> Option<String> {
    let (_, metas) = placement.iter().find(|(p, _)| *p == pid)?;
    metas.iter().find(|(_, leader, alive)| *leader && *alive).map(|(ep, _, _)| ep.clone())
}

fn tablet_registered(state: &SandboxState, endpoint: &str) -> bool {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let reply = rt.block_on(sandbox::ns_call(state, "ShowTablet", json!({}))).unwrap();
    reply["tablets"].as_array().unwrap().iter().any(|t| t["endpoint"] == endpoint && t["state"] == "kHealthy")
}

fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Stops a tablet with its start.sh and waits until the nameserver shows it offline.
fn stop_tablet(sb: &Sandbox, state: &SandboxState, endpoint: &str) {
    let c = state.components.iter().find(|c| c.endpoint == endpoint).unwrap();
    tokio::runtime::Runtime::new().unwrap().block_on(sandbox::start_sh(c, "stop", false));
    // Its ephemeral node expires with the session (C§1.3).
    let out = sb.run(&format!(
        r#"let t = 0; while zk::exists("nodes/{endpoint}") {{ sleep("200ms"); t += 1; if t > 150 {{ throw "node never expired"; }} }}"#
    ));
    assert_eq!(out.code, 0, "{}", out.stderr);
}

fn start_tablet(state: &SandboxState, endpoint: &str) {
    let c = state.components.iter().find(|c| c.endpoint == endpoint).unwrap();
    tokio::runtime::Runtime::new().unwrap().block_on(sandbox::start_sh(c, "start", false));
    wait_for(&format!("{endpoint} to register"), Duration::from_secs(60), || tablet_registered(state, endpoint));
}

/// Keys of `table` (of `partitions` partitions) that land in `pid`.
fn keys_in(pid: u32, partitions: u32, count: usize) -> Vec<String> {
    (0..).map(|i| format!("k{i}")).filter(|k| partition_of(k, partitions) == pid).take(count).collect()
}

/// Recovers `db.name` after its leader tablet dies, with one follower behind on partition
/// `behind` and level on partition `level`; checks who leads and that every row is there.
fn recover_picks_the_freshest_replica(db: &str, name: &str, extra: &[&str]) {
    let mut args = vec!["--no-auto-failover"];
    args.extend_from_slice(extra);
    let sb = Sandbox::up(&args);
    let state = sandbox::load_state(&sb.dir).unwrap();
    let before = placement(&state, db, name);
    let partitions = before.len() as u32;
    // A tablet leading two partitions whose three replicas are on three tablets.
    let leader_of = |pid: u32| alive_leader(&before, pid).unwrap();
    let mut by_leader: std::collections::BTreeMap<String, Vec<u32>> = Default::default();
    for (pid, metas) in &before {
        if metas.len() == 3 {
            by_leader.entry(leader_of(*pid)).or_default().push(*pid);
        }
    }
    let (a, pids) = by_leader.iter().find(|(_, pids)| pids.len() >= 2).expect("a tablet leading two partitions");
    let (behind, level) = (pids[0], pids[1]);
    let mut others: Vec<String> = before
        .iter()
        .find(|(p, _)| *p == behind)
        .unwrap()
        .1
        .iter()
        .map(|(ep, _, _)| ep.clone())
        .filter(|ep| ep != a)
        .collect();
    others.sort();
    // The follower that falls behind is the smaller endpoint, so that neither metadata order
    // nor endpoint order could pick the fresher one by luck.
    let (short, fresh) = (others[0].clone(), others[1].clone());
    let table = TableName { db: db.into(), name: name.into() };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = rt.block_on(support::client(&state));
    let put_all = |keys: &[String], tag: &str| {
        for k in keys {
            rt.block_on(client.put(&table, k, &format!("{tag}-{k}"))).unwrap_or_else(|e| panic!("put {k}: {e}"));
        }
    };
    let early = keys_in(behind, partitions, 20);
    put_all(&early, "early");
    put_all(&keys_in(level, partitions, 20), "level");
    // The short follower misses the late writes to `behind`.
    stop_tablet(&sb, &state, &short);
    let late: Vec<String> = keys_in(behind, partitions, 50).split_off(20);
    put_all(&late, "late");
    // Every acknowledged late write reaches the fresh follower before the leader goes.
    std::thread::sleep(Duration::from_secs(2));
    start_tablet(&state, &short);
    stop_tablet(&sb, &state, a);
    drop(client);

    let out = sb.run(
        r#"let r = upgrade::recover_data(); print("recovered " + r.keys().len());
           for p in ns::partitions() { if p.leader && p.alive { print(`leader ${p.db}.${p.table}/${p.pid} ${p.endpoint}`); } }"#,
    );
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let after = placement(&state, db, name);
    assert_eq!(alive_leader(&after, behind).as_deref(), Some(fresh.as_str()), "{}\n{after:?}", out.stdout);
    // A tie (both followers hold every row of `level`) goes to the first endpoint.
    assert_eq!(alive_leader(&after, level).as_deref(), Some(short.as_str()), "{}\n{after:?}", out.stdout);
    // Both followers are alive and hold every acknowledged row; the dead tablet's replicas
    // are left to the operator.
    for pid in [behind, level] {
        let metas = &after.iter().find(|(p, _)| *p == pid).unwrap().1;
        for (ep, leader, alive) in metas {
            if ep != a {
                assert!(*alive, "{db}.{name} pid {pid} on {ep} (leader {leader}) is not alive: {after:?}");
            }
        }
    }
    let client = rt.block_on(support::client(&state));
    for k in early.iter().chain(&late) {
        let row = rt.block_on(client.get(&table, k)).unwrap_or_else(|e| panic!("get {k}: {e}"));
        assert!(row.is_some(), "{db}.{name}: acknowledged row {k} lost after recover data\n{}", out.stdout);
    }
    // The follower that was short was rebuilt from the new leader: it has the late rows too.
    let status = rt
        .block_on(mldb_upgrade::sim::http::call(
            &short,
            "/TabletServer/GetTableStatus",
            &json!({"tid": table_tid(&state, db, name), "pid": behind}),
            Duration::from_secs(5),
        ))
        .unwrap();
    let offsets: Vec<u64> =
        status["all_table_status"].as_array().unwrap().iter().filter_map(|s| s["offset"].as_u64()).collect();
    assert_eq!(offsets.len(), 1, "{status}");
    assert!(offsets[0] >= 50, "{short} holds {} entries of pid {behind}, 50 were written: {status}", offsets[0]);
}

fn table_tid(state: &SandboxState, db: &str, name: &str) -> u64 {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let reply: Value = rt.block_on(sandbox::ns_call(state, "ShowTable", json!({"db": db, "name": name}))).unwrap();
    reply["table_info"][0]["tid"].as_u64().unwrap()
}

#[test]
fn o5_7_recover_data_without_a_leader_lets_the_freshest_replica_lead_and_the_nameserver_agree() {
    recover_picks_the_freshest_replica("demo", "triple", &[]);
}

/// The same on SSD and HDD tables: every replica is loaded from the root path of its storage
/// mode (a replica asked for as kMemory would be looked for under the memory root and fail or
/// come up empty, O§5.7), so no row is lost.
#[test]
fn o5_7_recover_data_loads_ssd_replicas_from_the_ssd_root() {
    recover_picks_the_freshest_replica("disk", "ssd_triple", &["--storage-modes", "mixed"]);
}

#[test]
fn o5_7_recover_data_loads_hdd_replicas_from_the_hdd_root() {
    recover_picks_the_freshest_replica("disk", "hdd_triple", &["--storage-modes", "mixed"]);
}

/// Writes one row per key to `table`, each acknowledged.
fn put_rows(rt: &tokio::runtime::Runtime, state: &SandboxState, table: &TableName, keys: &[String]) {
    let client = rt.block_on(support::client(state));
    for k in keys {
        rt.block_on(client.put(table, k, &format!("v-{k}"))).unwrap_or_else(|e| panic!("put {k}: {e}"));
    }
}

/// Reads back every key of `table` written by [`put_rows`]: none may be missing.
fn assert_rows_present(rt: &tokio::runtime::Runtime, state: &SandboxState, table: &TableName, keys: &[String]) {
    let client = rt.block_on(support::client(state));
    for k in keys {
        let row = rt.block_on(client.get(table, k)).unwrap_or_else(|e| panic!("get {k}: {e}"));
        assert!(row.is_some(), "{}.{}: acknowledged row {k} lost", table.db, table.name);
    }
}

/// The ops of `db.name` pid `pid` the nameserver shows: (op_id, op_type, status, task_type).
fn partition_ops(state: &SandboxState, db: &str, name: &str, pid: u32) -> Vec<(u64, String, String, String)> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let reply = rt.block_on(sandbox::ns_call(state, "ShowOPStatus", json!({"db": db, "name": name, "pid": pid})));
    let field = |o: &Value, k: &str| o[k].as_str().unwrap_or_default().to_string();
    reply
        .ok()
        .and_then(|r| r["op_status"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .map(|o| (o["op_id"].as_u64().unwrap_or(0), field(o, "op_type"), field(o, "status"), field(o, "task_type")))
        .collect()
}

/// An AddReplica sent while the partition's leader is making its scheduled snapshot fails at
/// its first task, PauseSnapshot (a replica not kTableNormal is refused, tablet_impl.cc:
/// 3058-3063). The drain sends it again once the snapshot is over: the temporary replica of the
/// single-replica partition is added, leads, and the restore moves the leader home and deletes
/// it, every row still there. The leader is kept snapshotting (MakeSnapshot back to back) until
/// the nameserver shows the refused op.
#[test]
fn c4_an_add_replica_refused_by_a_leader_making_its_snapshot_is_sent_again_once_it_is_over() {
    // The snapshot hour two hours on: no scheduled snapshot fires, and every MakeSnapshot
    // writes one (threshold 0), holding the replica in kMakingSnapshot for a while.
    let sb = Sandbox::up(&["--snapshot-window", "2h"]);
    let state = sandbox::load_state(&sb.dir).unwrap();
    let (db, name) = ("demo", "single");
    let before = placement(&state, db, name);
    let partitions = before.len() as u32;
    let pid = before[0].0;
    let leader = alive_leader(&before, pid).unwrap();
    let tid = table_tid(&state, db, name);
    let table = TableName { db: db.into(), name: name.into() };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let keys = keys_in(pid, partitions, 30);
    put_rows(&rt, &state, &table, &keys);
    let last_op_before = partition_ops(&state, db, name, pid).iter().map(|o| o.0).max().unwrap_or(0);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let snapshotter = {
        let (stop, state, leader) = (stop.clone(), state.clone(), leader.clone());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().unwrap();
            let deadline = Instant::now() + Duration::from_secs(120);
            let mut refused = None;
            let mut sent = 0u64;
            while refused.is_none() && !stop.load(std::sync::atomic::Ordering::SeqCst) && Instant::now() < deadline {
                let body = json!({"tid": tid, "pid": pid});
                let call =
                    mldb_upgrade::sim::http::call(&leader, "/TabletServer/MakeSnapshot", &body, Duration::from_secs(2));
                let _ = rt.block_on(call);
                sent += 1;
                if sent.is_multiple_of(20) {
                    refused = partition_ops(&state, "demo", "single", pid)
                        .into_iter()
                        .find(|o| o.0 > last_op_before && o.2 == "kFailed" && o.3 == "kPauseSnapshot");
                }
            }
            // The refusal of the last attempt, if the loop stopped before it looked.
            refused.or_else(|| {
                partition_ops(&state, "demo", "single", pid)
                    .into_iter()
                    .find(|o| o.0 > last_op_before && o.2 == "kFailed" && o.3 == "kPauseSnapshot")
            })
        })
    };
    // A PauseSnapshot can still fall between two snapshots (the next MakeSnapshot comes a few
    // ms after one ends): the drain and restore are run again until one was refused.
    let mut out;
    let mut attempts = 0;
    loop {
        attempts += 1;
        out = sb.run(&format!(
            r#"upgrade::with_auto_failover_off(|| {{
                   let d = upgrade::drain_leaders("{leader}");
                   print(`drained ${{d.moves.len()}}`);
                   for p in ns::partitions() {{
                       if p.db == "{db}" && p.table == "{name}" && p.pid == {pid} && p.leader && p.alive {{ print(`interim ${{p.endpoint}}`); }}
                   }}
                   upgrade::restore_leaders("{leader}");
               }});"#
        ));
        assert_eq!(out.code, 0, "attempt {attempts}: {}\n{}", out.stdout, out.stderr);
        if out.stderr.contains("failed at PauseSnapshot") || attempts == 5 {
            break;
        }
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let refused = snapshotter.join().unwrap();
    let refused = refused.unwrap_or_else(|| {
        panic!(
            "no op of {db}.{name} pid {pid} was refused at PauseSnapshot: {:?}",
            partition_ops(&state, db, name, pid)
        )
    });
    assert!(out.stderr.contains("failed at PauseSnapshot"), "the retry is not reported: {}", out.stderr);
    // The temporary replica led meanwhile (the AddReplica sent again did its job).
    let interim = out.stdout.lines().find_map(|l| l.strip_prefix("interim ")).unwrap_or_default();
    assert!(!interim.is_empty() && interim != leader, "{}", out.stdout);
    let ops = partition_ops(&state, db, name, pid);
    assert!(
        ops.iter().any(|o| o.0 > refused.0 && o.1 == "kAddReplicaOP" && o.2 == "kDone"),
        "no AddReplica after #{} finished: {ops:?}",
        refused.0
    );
    assert!(ops.iter().all(|o| o.2 != "kInited" && o.2 != "kDoing"), "{ops:?}");
    // Home again, single replica, every row there.
    let after = placement(&state, db, name);
    assert_eq!(alive_leader(&after, pid).as_deref(), Some(leader.as_str()), "{after:?}");
    assert_eq!(after.iter().find(|(p, _)| *p == pid).unwrap().1.len(), 1, "temporary replica left: {after:?}");
    assert_rows_present(&rt, &state, &table, &keys);
}

/// After a drained tablet restarts, recover data leaves its follower replicas unloaded for
/// RecoverTable, which weighs their own snapshots (C§3.1, `RecoverEndpointTable`): a replica
/// loaded first would answer term 0 and be dropped and sent again (kReAddReplicaWithDropOP).
/// Without snapshots (the sandbox makes none) each is kReAddReplicaOP; none is dropped, every
/// replica ends alive and loaded, and the cluster verifies healthy.
#[test]
fn c3_1_recover_data_rebuilds_a_restarted_tablets_followers_without_dropping_them() {
    let sb = Sandbox::up(&[]);
    let state = sandbox::load_state(&sb.dir).unwrap();
    let tablet = state.components.iter().find(|c| c.role.as_str() == "tablet").unwrap().endpoint.clone();
    let out = sb.run(&format!(r#"upgrade::disable_auto_failover(); upgrade::drain_leaders("{tablet}");"#));
    assert_eq!(out.code, 0, "{}", out.stderr);
    stop_tablet(&sb, &state, &tablet);
    start_tablet(&state, &tablet);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let op_index = |state: &SandboxState| {
        let reply = rt.block_on(sandbox::ns_call(state, "ShowOPStatus", json!({}))).unwrap();
        reply["op_status"].as_array().unwrap().iter().filter_map(|o| o["op_id"].as_u64()).max().unwrap_or(0)
    };
    let since = op_index(&state);
    let out = sb.run(r#"let r = upgrade::recover_data(#{ down_leaders: "wait" }); print(`recovered ${r}`);"#);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let reply = rt.block_on(sandbox::ns_call(&state, "ShowOPStatus", json!({}))).unwrap();
    let out = sb.run(&format!(
        r#"upgrade::restore_leaders("{tablet}"); upgrade::restore_auto_failover();
           let v = upgrade::verify(0); print(`healthy ${{v.healthy}} ${{v.summary}}`);"#
    ));
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("healthy true"), "{}", out.stdout);
    let children: Vec<(String, String)> = reply["op_status"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| {
            o["op_id"].as_u64().unwrap_or(0) > since && o["op_type"].as_str().unwrap_or("").starts_with("kReAdd")
        })
        .map(|o| (o["op_type"].as_str().unwrap().to_string(), o["status"].as_str().unwrap_or("").to_string()))
        .collect();
    assert!(children.len() >= 3, "recover data rebuilt fewer than 3 replicas: {children:?}");
    assert!(
        children.iter().all(|(t, s)| t == "kReAddReplicaOP" && s == "kDone"),
        "a replica without a snapshot was rebuilt otherwise than by kReAddReplicaOP: {children:?}"
    );
}

/// recover_data(#{down_leaders: "wait"}) (the stock flow's, and abort's) leaves every partition
/// whose leader's tablet is down as it is, naming that tablet: a follower made leader now would
/// lose what the dead leader acknowledged and had not replicated (replication is asynchronous).
/// Once the tablet runs again the same call recovers them from it, and every row is there. A
/// misspelt option is refused before anything changes.
#[test]
fn o5_7_recover_data_waiting_for_a_down_leader_leaves_its_partitions_until_it_is_back() {
    let sb = Sandbox::up(&["--no-auto-failover"]);
    let state = sandbox::load_state(&sb.dir).unwrap();
    let (db, name) = ("demo", "triple");
    let before = placement(&state, db, name);
    let partitions = before.len() as u32;
    let (pid, _) = before.iter().find(|(_, m)| m.len() == 3).unwrap().clone();
    let leader = alive_leader(&before, pid).unwrap();
    let table = TableName { db: db.into(), name: name.into() };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let keys = keys_in(pid, partitions, 30);
    put_rows(&rt, &state, &table, &keys);

    let typo = sb.run(r#"upgrade::recover_data(#{ down_leaders: "wiat" });"#);
    assert_ne!(typo.code, 0, "{}", typo.stdout);
    assert!(typo.stderr.contains("wiat") && typo.stderr.contains("wait"), "{}", typo.stderr);
    assert_eq!(placement(&state, db, name), before, "a refused call changed the cluster");

    stop_tablet(&sb, &state, &leader);
    let led_before: Vec<u32> = before
        .iter()
        .filter(|(p, _)| alive_leader(&before, *p).as_deref() == Some(leader.as_str()))
        .map(|(p, _)| *p)
        .collect();
    let out = sb.run(r#"upgrade::recover_data(#{ down_leaders: "wait" });"#);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains(&format!("tablet {leader} is down and leads")),
        "the down leader is not named: {}",
        out.stderr
    );
    let during = placement(&state, db, name);
    for p in &led_before {
        assert_eq!(
            alive_leader(&during, *p).as_deref(),
            Some(leader.as_str()),
            "pid {p} was led by a follower: {during:?}"
        );
    }

    start_tablet(&state, &leader);
    let out =
        sb.run(r#"upgrade::recover_data(#{ down_leaders: "wait" }); print(`healthy ${upgrade::verify(0).healthy}`);"#);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let after = placement(&state, db, name);
    for p in &led_before {
        assert_eq!(alive_leader(&after, *p).as_deref(), Some(leader.as_str()), "pid {p}: {after:?}\n{}", out.stderr);
    }
    let metas = &after.iter().find(|(p, _)| *p == pid).unwrap().1;
    assert!(metas.iter().all(|(_, _, alive)| *alive), "{db}.{name} pid {pid}: {metas:?}");
    assert_rows_present(&rt, &state, &table, &keys);
}

/// The stock flow's drain (`readd_followers: false`, the tablet stops next) records the term
/// each of the tablet's followers answers, the term of the leader that probed it. After the
/// restart, recover data attaches every follower whose recorded term is still its partition's
/// last straight to its leader (the tablet RPCs of kReAddReplicaSimplifyOP without the op,
/// C§3.1): loaded from its own data and caught up with the rows written while it was down.
/// The replaced leaders are attached too, and their leader flag, which only RecoverTable's last
/// task clears, is cleared by editing the metadata (SetTablePartition, C§2.3). A partition whose
/// leader changed after the record (a newer term) is rebuilt by RecoverTable from the leader;
/// every replica ends alive. A follower an earlier, killed recover data left half attached
/// (marked not alive, its leader's node for it deleted) is attached all the same. The restore
/// after it runs no op but the ChangeLeaders home: the interim leaders are attached the same
/// way. The cluster verifies healthy.
#[test]
fn c3_1_recover_data_attaches_followers_whose_term_is_still_the_last_and_rebuilds_the_rest() {
    let sb = Sandbox::up(&[]);
    let state = sandbox::load_state(&sb.dir).unwrap();
    let tablet = state.components.iter().find(|c| c.role.as_str() == "tablet").unwrap().endpoint.clone();
    let (db, name) = ("demo", "triple");
    let before = placement(&state, db, name);
    let led: Vec<u32> = before
        .iter()
        .map(|(pid, _)| *pid)
        .filter(|pid| alive_leader(&before, *pid).as_deref() == Some(&tablet))
        .collect();
    assert!(!led.is_empty(), "{tablet} leads no partition of {db}.{name}: {before:?}");
    let out = sb.run(&format!(
        r#"upgrade::disable_auto_failover(); upgrade::drain_leaders("{tablet}", #{{ readd_followers: false }});"#
    ));
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let drained = placement(&state, db, name);
    let followed: Vec<u32> = drained
        .iter()
        .filter(|(pid, metas)| {
            metas.iter().any(|(ep, leader, _)| ep == &tablet && !leader)
                && alive_leader(&drained, *pid).is_some_and(|l| l != tablet)
        })
        .map(|(pid, _)| *pid)
        .collect();
    assert!(followed.len() >= 2, "{tablet} follows fewer than 2 partitions of {db}.{name}: {drained:?}");
    // A newer term on one of them after the record: its follower there must not be attached.
    let moved = followed[0];
    let other = drained
        .iter()
        .find(|(p, _)| *p == moved)
        .unwrap()
        .1
        .iter()
        .find(|(ep, leader, _)| ep != &tablet && !leader)
        .unwrap()
        .0
        .clone();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let changed = rt
        .block_on(sandbox::ns_call(
            &state,
            "ChangeLeader",
            json!({"db": db, "name": name, "pid": moved, "candidate_leader": other}),
        ))
        .unwrap();
    assert_eq!(changed["code"], 0, "{changed}");
    let out = sb.run(r#"wait::ops_done(0, "60s");"#);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    stop_tablet(&sb, &state, &tablet);
    let table = TableName { db: db.into(), name: name.into() };
    let partitions = drained.len() as u32;
    let keys: Vec<String> = followed.iter().flat_map(|pid| keys_in(*pid, partitions, 5)).collect();
    put_rows(&rt, &state, &table, &keys);
    start_tablet(&state, &tablet);
    // An earlier recover data killed in the middle of an attach, after it marked the follower of
    // followed[1] not alive and deleted its leader's node for it (reattach_follower's first two
    // calls): this one attaches it all the same.
    let half_attached = followed[1];
    rt.block_on(async {
        let upgrader = sb.upgrader();
        let (ns, tablets) = (&upgrader.cluster.ns, &upgrader.cluster.tablets);
        let tid = ns.show_table(db, name).await.unwrap().expect("the table").tid;
        let leader = alive_leader(&drained, half_attached).expect("a leader");
        ns.update_table_alive(db, name, half_attached, &tablet, false).await.unwrap();
        tablets.del_replicate_node(&leader, tid, half_attached, &tablet).await.unwrap();
    });
    let half = placement(&state, db, name);
    let metas = &half.iter().find(|(p, _)| *p == half_attached).unwrap().1;
    assert!(metas.iter().any(|(ep, _, alive)| ep == &tablet && !alive), "{metas:?}");
    let op_index = || {
        let reply = rt.block_on(sandbox::ns_call(&state, "ShowOPStatus", json!({}))).unwrap();
        reply["op_status"].as_array().unwrap().clone()
    };
    let since = op_index().iter().filter_map(|o| o["op_id"].as_u64()).max().unwrap_or(0);
    let out = sb.run(r#"upgrade::recover_data(#{ down_leaders: "wait" });"#);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let children: Vec<(u32, String)> = op_index()
        .iter()
        .filter(|o| {
            o["op_id"].as_u64().unwrap_or(0) > since
                && o["name"] == name
                && o["op_type"].as_str().unwrap_or("").starts_with("kReAdd")
        })
        .filter_map(|o| Some((o["pid"].as_u64()? as u32, o["op_type"].as_str()?.to_string())))
        .collect();
    let rebuilt: Vec<u32> = children.iter().map(|(pid, _)| *pid).collect();
    assert!(
        children.contains(&(moved, "kReAddReplicaOP".to_string())),
        "pid {moved} got a newer term and was not rebuilt by RecoverTable from the leader: {children:?}\n{}",
        out.stderr
    );
    // The replaced leaders are attached too, without RecoverTable: their leader flag is cleared
    // by a metadata edit (SetTablePartition), as RecoverTable's last task would clear it.
    let recovered = placement(&state, db, name);
    for pid in &led {
        assert!(
            !rebuilt.contains(pid),
            "the replaced leader of pid {pid} was rebuilt by RecoverTable, not attached: {children:?}\n{}",
            out.stderr
        );
        let metas = &recovered.iter().find(|(p, _)| p == pid).unwrap().1;
        assert!(
            metas.iter().any(|(ep, leader, alive)| ep == &tablet && !leader && *alive),
            "the replaced leader of pid {pid} on {tablet} is not an alive follower: {metas:?}"
        );
    }
    for pid in &followed[1..] {
        assert!(
            !rebuilt.contains(pid),
            "the follower of pid {pid} was rebuilt by RecoverTable, not attached: {rebuilt:?}\n{}",
            out.stderr
        );
    }
    // Attached and caught up: the rows written while it was down are on the restarted tablet.
    let tid = table_tid(&state, db, name);
    let status_on = |ep: &str, pid: u32| {
        let request = json!({"tid": tid, "pid": pid});
        let call = mldb_upgrade::sim::http::call(ep, "/TabletServer/GetTableStatus", &request, Duration::from_secs(5));
        rt.block_on(call).unwrap()
    };
    for pid in &followed[1..] {
        let status = status_on(&tablet, *pid);
        let of_leader = status_on(&alive_leader(&placement(&state, db, name), *pid).unwrap(), *pid);
        let offset = |s: &Value| s["all_table_status"][0]["offset"].as_u64().unwrap_or(0);
        assert!(
            offset(&status) >= 5 && offset(&status) == offset(&of_leader),
            "pid {pid}: {status} vs the leader's {of_leader}"
        );
        assert_eq!(status["all_table_status"][0]["mode"], "kTableFollower", "{status}");
    }
    for pid in &led {
        let status = status_on(&tablet, *pid);
        let of_leader = status_on(&alive_leader(&recovered, *pid).unwrap(), *pid);
        let offset = |s: &Value| s["all_table_status"][0]["offset"].as_u64().unwrap_or(0);
        assert_eq!(offset(&status), offset(&of_leader), "pid {pid}: {status} vs the leader's {of_leader}");
    }
    // Restore: the leaders go home by ChangeLeader, and the interim leaders they replace are
    // attached to them directly, again without RecoverTable.
    let since = op_index().iter().filter_map(|o| o["op_id"].as_u64()).max().unwrap_or(0);
    let out = sb.run(&format!(
        r#"upgrade::restore_leaders("{tablet}"); upgrade::restore_auto_failover();
           let v = upgrade::verify(0); print(`healthy ${{v.healthy}} ${{v.summary}}`);"#
    ));
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("healthy true"), "{}", out.stdout);
    let restore_ops: Vec<(u64, String)> = op_index()
        .iter()
        .filter(|o| o["op_id"].as_u64().unwrap_or(0) > since && o["name"] == name)
        .filter_map(|o| Some((o["pid"].as_u64()?, o["op_type"].as_str()?.to_string())))
        .collect();
    assert!(
        !restore_ops.is_empty() && restore_ops.iter().all(|(_, op)| op == "kChangeLeaderOP"),
        "the restore ran other ops than ChangeLeader: {restore_ops:?}\n{}",
        out.stderr
    );
    let after = placement(&state, db, name);
    assert!(after.iter().all(|(_, metas)| metas.iter().all(|(_, _, alive)| *alive)), "{after:?}");
    for pid in &led {
        assert_eq!(alive_leader(&after, *pid).as_deref(), Some(tablet.as_str()), "pid {pid}: {after:?}");
        let metas = &after.iter().find(|(p, _)| p == pid).unwrap().1;
        assert_eq!(metas.iter().filter(|(_, leader, _)| *leader).count(), 1, "pid {pid}: {metas:?}");
    }
    assert_rows_present(&rt, &state, &table, &keys);
}

/// A nameserver without GetTablePartition and SetTablePartition (a build that lacks them,
/// `--sim_missing_methods`): recover data and restore fall back to the nameserver's ops. A
/// replaced leader attached before the metadata write failed has its leader's new node deleted
/// again, so that RecoverTable's short op does not fail on a node that exists (119); a
/// temporary replica is re-added and deleted by RecoverTable and DelReplica. The tablet leads
/// what it led, no replica is left behind or dead, and the cluster verifies healthy.
#[test]
fn without_set_table_partition_recover_data_and_restore_fall_back_to_the_ops() {
    let sb = Sandbox::up(&[]);
    let state = sandbox::load_state(&sb.dir).unwrap();
    let ns = state.components.iter().find(|c| c.role.as_str() == "nameserver").unwrap();
    let flags = ns.dir.join("conf/nameserver.flags");
    let mut text = std::fs::read_to_string(&flags).unwrap();
    text.push_str("\n--sim_missing_methods=GetTablePartition,SetTablePartition\n");
    std::fs::write(&flags, text).unwrap();
    let tablet = sb.tablet(1);
    let out = sb.run(&format!(
        r#"let ep = "{tablet}";
        let ns_ep = "{}";
        component::stop(ns_ep);
        component::start(ns_ep);
        wait::nameserver_leader("60s");
        let led = ns::partitions().filter(|r| r.endpoint == ep && r.leader && r.alive).len();
        let count = ns::partitions().len();
        let since = ns::op_index();
        upgrade::with_auto_failover_off(|| {{
            upgrade::drain_leaders(ep, #{{ readd_followers: false }});
            component::stop(ep);
            component::start(ep);
            upgrade::recover_data(#{{ down_leaders: "wait" }});
            upgrade::restore_leaders(ep);
        }});
        print(`ops ${{ns::ops().filter(|o| o.op_id > since).map(|o| o.op_type)}}`);
        print(`led ${{led}} -> ${{ns::partitions().filter(|r| r.endpoint == ep && r.leader && r.alive).len()}}`);
        print(`replicas ${{count}} -> ${{ns::partitions().len()}}`);
        print(`not alive ${{ns::partitions().filter(|r| !r.alive).len()}}`);
        print(`healthy ${{upgrade::verify(since).healthy}}`);"#,
        ns.endpoint
    ));
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let o = &out.stdout;
    let ops = o.lines().find(|l| l.starts_with("ops ")).unwrap();
    assert!(ops.contains("kReAddReplicaSimplifyOP"), "the replaced leaders were not re-added by RecoverTable: {o}");
    assert!(ops.contains("kDelReplicaOP"), "the temporary replica was not deleted by DelReplica: {o}");
    let pair = |prefix: &str| -> (String, String) {
        let line = o.lines().find(|l| l.starts_with(prefix)).unwrap();
        let mut sides = line[prefix.len()..].split(" -> ");
        (sides.next().unwrap().to_string(), sides.next().unwrap().to_string())
    };
    let (led_before, led_after) = pair("led ");
    assert!(led_before != "0" && led_before == led_after, "{o}");
    let (replicas_before, replicas_after) = pair("replicas ");
    assert_eq!(replicas_before, replicas_after, "temporary replicas left behind: {o}");
    assert!(o.contains("not alive 0\n"), "{o}");
    assert!(o.contains("healthy true"), "{o}\n{}", out.stderr);
    assert!(out.stderr.contains("cannot remove the temporary replica"), "{}", out.stderr);
}
