//! Snapshots (C§4 kMakingSnapshot / kSnapshotPaused): the tablet's scheduled window
//! (`TabletImpl::SchedMakeSnapshot`, `src/tablet/tablet_impl.cc:2737-2768`), MakeSnapshot
//! (`:2612-2735`) and what the other RPCs answer while a replica is snapshotting or paused.

use std::path::Path;
use std::time::{Duration, Instant};

use chrono::Timelike;
use serde_json::{json, Value};

use crate::support::{wait_for, SimCluster};

/// The current local hour, for `--make_snapshot_time` (`base::GetNowHour` uses
/// `localtime_r`, `src/base/strings.h:181-188`); close to the end of an hour, the next one.
async fn snapshot_hour() -> u32 {
    let now = chrono::Local::now();
    if now.minute() == 59 && now.second() >= 45 {
        tokio::time::sleep(Duration::from_secs(u64::from(61 - now.second()))).await;
    }
    chrono::Local::now().hour()
}

/// A table meta with a schema, so a LoadTable without a meta on disk can make the table.
fn meta(tid: u64, mode: &str, storage: &str) -> Value {
    json!({ "tid": tid, "pid": 0, "name": format!("t{tid}"), "db": "db", "mode": mode, "term": 3,
            "storage_mode": storage, "column_desc": [{ "name": "k", "data_type": "kString" }],
            "column_key": [{ "index_name": "k", "col_name": ["k"] }] })
}

async fn create(cluster: &SimCluster, tablet: &str, tid: u64, mode: &str, storage: &str) {
    let created = cluster.tablet(tablet, "CreateTable", json!({ "table_meta": meta(tid, mode, storage) })).await;
    assert_eq!(created["code"], 0, "{created}");
}

async fn put_rows(cluster: &SimCluster, tablet: &str, tid: u64, rows: usize) {
    for i in 0..rows {
        let put = json!({ "tid": tid, "pid": 0, "pk": format!("k{i}"), "value": format!("v{i}") });
        assert_eq!(cluster.tablet(tablet, "Put", put).await["code"], 0);
    }
}

async fn states(cluster: &SimCluster, tablet: &str) -> Vec<(u64, String)> {
    let reply = cluster.tablet(tablet, "GetTableStatus", json!({})).await;
    reply["all_table_status"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|s| (s["tid"].as_u64().unwrap_or(0), s["state"].as_str().unwrap_or_default().to_string()))
        .collect()
}

async fn manifest(cluster: &SimCluster, tablet: &str, tid: u64, storage: &str) -> Value {
    let reply = cluster.tablet(tablet, "GetManifest", json!({ "tid": tid, "pid": 0, "storage_mode": storage })).await;
    assert_eq!(reply["code"], 0, "{reply}");
    reply["manifest"].clone()
}

/// C§4 kMakingSnapshot via the schedule: in the `--make_snapshot_time` hour, a
/// `--make_snapshot_check_interval` after the start, every loaded replica, leader or
/// follower, memory or disk, goes kTableNormal → kMakingSnapshot → kTableNormal, one at a
/// time (one snapshot thread). Only replicas `--make_snapshot_threshold_offset` entries past
/// their last snapshot get a MANIFEST (`MakeSnapshotInternal`, `:2656-2664`); a disk table's
/// snapshot is a checkpoint directory named by the minute, a memory table's a `.sdb` file
/// (`disk_table_snapshot.cc`, `mem_table_snapshot.cc:743-751`). No row is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c4_scheduled_snapshot_enters_kmakingsnapshot_and_returns() {
    let mut cluster = SimCluster::new("/c4_sched_snapshot");
    let hour = snapshot_hour().await;
    let ssd = format!("--ssd_root_path={}", cluster.path().join("db_ssd").display());
    let window = format!("--make_snapshot_time={hour}");
    let flags = [ssd.as_str(), &window, "--make_snapshot_check_interval=6000", "--make_snapshot_threshold_offset=20"];
    let started = Instant::now();
    let tablet = cluster.start_tablet(&flags).await;
    create(&cluster, &tablet, 21, "kTableLeader", "kMemory").await;
    create(&cluster, &tablet, 22, "kTableLeader", "kSSD").await;
    create(&cluster, &tablet, 23, "kTableFollower", "kMemory").await;
    create(&cluster, &tablet, 24, "kTableLeader", "kMemory").await;
    put_rows(&cluster, &tablet, 21, 30).await;
    put_rows(&cluster, &tablet, 22, 25).await;
    put_rows(&cluster, &tablet, 24, 5).await;
    let entries: Vec<Value> = (1..=25)
        .map(|i| json!({ "term": 3, "log_index": i, "pk": format!("f{i}"), "value": "x", "ts": 1000 + i }))
        .collect();
    let appended = cluster
        .tablet(
            &tablet,
            "AppendEntries",
            json!({ "tid": 23, "pid": 0, "term": 3, "pre_log_index": 0, "entries": entries }),
        )
        .await;
    assert_eq!(appended["log_offset"], 25, "{appended}");
    assert!(started.elapsed() < Duration::from_secs(5), "set up before the first check");
    assert_eq!(manifest(&cluster, &tablet, 21, "kMemory").await, json!({ "offset": 0 }), "no snapshot yet");

    let mut seen: Vec<u64> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let now = states(&cluster, &tablet).await;
        let making: Vec<u64> = now.iter().filter(|s| s.1 == "kMakingSnapshot").map(|s| s.0).collect();
        assert!(making.len() <= 1, "one snapshot at a time: {now:?}");
        for tid in making {
            if !seen.contains(&tid) {
                seen.push(tid);
            }
        }
        if [21, 22, 23].iter().all(|t| seen.contains(t)) && now.iter().all(|s| s.1 == "kTableNormal") {
            break;
        }
        assert!(Instant::now() < deadline, "snapshots seen: {seen:?}, states {now:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Table 24 passes through kMakingSnapshot too, but only for an instant: below the
    // threshold nothing is written.
    assert_eq!(&seen[..3], [21, 22, 23], "in tid order, the leaders and the follower: {seen:?}");

    let memory = manifest(&cluster, &tablet, 21, "kMemory").await;
    assert_eq!(
        (memory["offset"].clone(), memory["count"].clone(), memory["term"].clone()),
        (json!(30), json!(30), json!(3))
    );
    let name = memory["name"].as_str().expect("name");
    assert!(name.len() == 16 && name.ends_with(".sdb"), "{name}");
    let disk = manifest(&cluster, &tablet, 22, "kSSD").await;
    assert_eq!(disk["offset"], 25);
    assert!(disk["name"].as_str().is_some_and(|n| n.len() == 12 && n.chars().all(|c| c.is_ascii_digit())), "{disk}");
    assert_eq!(manifest(&cluster, &tablet, 23, "kMemory").await["offset"], 25, "followers too");
    assert_eq!(manifest(&cluster, &tablet, 24, "kMemory").await, json!({ "offset": 0 }), "5 < threshold 20");
    let db = cluster.path().join(format!("db-{}", tablet.replace(':', "_")));
    assert!(Path::new(&db.join("21_0/snapshot/MANIFEST")).is_file());
    let got = cluster.tablet(&tablet, "Get", json!({ "tid": 21, "pid": 0, "key": "k0" })).await;
    assert_eq!(got["value"], "v0", "rows stay: {got}");
    let status = cluster.table_status(&tablet, 21, 0).await.expect("loaded");
    assert_eq!((status["offset"].clone(), status["record_cnt"].clone()), (json!(30), json!(30)));
}

/// C§4 kMakingSnapshot, RPC by RPC (`src/tablet/tablet_impl.cc`): while a replica makes a
/// snapshot a Put is written (CheckTable, `:1379-1394`, lets kMakingSnapshot through), Get and
/// Scan answer, ChangeRole answers for the role (`:2113-2200`), AddReplica and DelReplica
/// work (`:2202-2327` do not look at the state);
/// PauseSnapshot is 105 (`:3060-3065`), RecoverSnapshot 107 (`:3108-3113`), MakeSnapshot
/// 105 (`:2721-2726`), SendSnapshot 107 (`:2916-2921`), DropTable 106 (`:4217-4222`),
/// LoadTable 101. The snapshot covers the offset at its start: a Put made meanwhile is in the
/// log, not in the MANIFEST. Then, kSnapshotPaused (`:3032-3129`): Put and AddReplica work,
/// MakeSnapshot is 105, SendSnapshot goes ahead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_during_kmakingsnapshot_is_written_and_the_other_rpcs_answer_like_the_source() {
    let mut cluster = SimCluster::new("/c4_making_snapshot");
    let tablet = cluster.start_tablet(&[]).await;
    let target = cluster.start_tablet(&[]).await;
    // 100 000 rows written straight into the replica's files make a snapshot of about 2 s.
    let dir = cluster.path().join(format!("db-{}", tablet.replace(':', "_"))).join("41_0");
    std::fs::create_dir_all(&dir).expect("dir");
    let mut log = String::new();
    for i in 1..=100_000u64 {
        log.push_str(&format!(
            "{{\"term\":3,\"log_index\":{i},\"pk\":\"k{}\",\"value\":\"v{i}\",\"ts\":{i}}}\n",
            i % 1000
        ));
    }
    std::fs::write(dir.join("binlog.jsonl"), log).expect("binlog");
    let load = json!({ "table_meta": meta(41, "kTableLeader", "kMemory") });
    assert_eq!(cluster.tablet(&tablet, "LoadTable", load.clone()).await["code"], 0);
    wait_for("loaded", Duration::from_secs(10), || async {
        (cluster.table_status(&tablet, 41, 0).await?["state"] == "kTableNormal").then_some(())
    })
    .await;

    let task = |op_id: u64, task_type: &str| json!({ "op_id": op_id, "op_type": "kMakeSnapshotOP", "task_type": task_type, "status": "kInited" });
    let snapshot = json!({ "tid": 41, "pid": 0, "task_info": task(1, "kMakeSnapshot") });
    assert_eq!(cluster.tablet(&tablet, "MakeSnapshot", snapshot).await, json!({"code": 0, "msg": "ok"}));
    wait_for("kMakingSnapshot", Duration::from_secs(2), || async {
        (cluster.table_status(&tablet, 41, 0).await?["state"] == "kMakingSnapshot").then_some(())
    })
    .await;
    let tid_pid = json!({ "tid": 41, "pid": 0 });
    let during: Vec<(&str, Value, Value)> = vec![
        ("Put", json!({ "tid": 41, "pid": 0, "pk": "new", "value": "during" }), json!({"code": 0, "msg": "ok"})),
        ("PauseSnapshot", tid_pid.clone(), json!({"code": 105, "msg": "table status is not kNormal"})),
        ("RecoverSnapshot", tid_pid.clone(), json!({"code": 107, "msg": "table status is not kSnapshotPaused"})),
        ("MakeSnapshot", tid_pid.clone(), json!({"code": 105, "msg": "table status is not kNormal"})),
        (
            "SendSnapshot",
            json!({ "tid": 41, "pid": 0, "endpoint": target }),
            json!({"code": 107, "msg": "table status is not kSnapshotPaused"}),
        ),
        ("DropTable", tid_pid.clone(), json!({"code": 106, "msg": "table status is kMakingSnapshot"})),
        ("LoadTable", load.clone(), json!({"code": 101, "msg": "table already exists"})),
        // ChangeRole passes CheckTable (no 104) and answers for the role.
        (
            "ChangeRole",
            json!({ "tid": 41, "pid": 0, "mode": "kTableLeader", "term": 4 }),
            json!({"code": 102, "msg": "table is leader"}),
        ),
        ("AddReplica", json!({ "tid": 41, "pid": 0, "endpoint": target }), json!({"code": 0, "msg": "ok"})),
        ("DelReplica", json!({ "tid": 41, "pid": 0, "endpoint": target }), json!({"code": 0, "msg": "ok"})),
    ];
    for (method, body, expected) in during {
        assert_eq!(cluster.tablet(&tablet, method, body).await, expected, "{method}");
    }
    let got = cluster.tablet(&tablet, "Get", json!({ "tid": 41, "pid": 0, "key": "new" })).await;
    assert_eq!(got["value"], "during", "{got}");
    let scan = cluster.tablet(&tablet, "Scan", json!({ "tid": 41, "pid": 0, "pk": "k7", "limit": 2 })).await;
    assert_eq!(scan["count"], 2, "{scan}");
    assert_eq!(cluster.table_status(&tablet, 41, 0).await.expect("loaded")["state"], "kMakingSnapshot");

    wait_for("back to kTableNormal", Duration::from_secs(10), || async {
        (cluster.table_status(&tablet, 41, 0).await?["state"] == "kTableNormal").then_some(())
    })
    .await;
    let tasks = cluster.tablet(&tablet, "GetTaskStatus", json!({})).await;
    assert_eq!(tasks["task"][0]["status"], "kDone", "{tasks}");
    let manifest = manifest(&cluster, &tablet, 41, "kMemory").await;
    assert_eq!((manifest["offset"].clone(), manifest["count"].clone()), (json!(100_000), json!(100_000)));
    assert_eq!(cluster.table_status(&tablet, 41, 0).await.expect("loaded")["offset"], 100_001);

    // kSnapshotPaused: writes and replica changes go on, snapshots wait.
    let paused = json!({ "tid": 41, "pid": 0, "task_info": task(2, "kPauseSnapshot") });
    assert_eq!(cluster.tablet(&tablet, "PauseSnapshot", paused).await["code"], 0);
    assert_eq!(cluster.tablet(&tablet, "PauseSnapshot", tid_pid.clone()).await["code"], 0, "already paused");
    let put = json!({ "tid": 41, "pid": 0, "pk": "paused", "value": "p" });
    assert_eq!(cluster.tablet(&tablet, "Put", put).await["code"], 0);
    assert_eq!(cluster.tablet(&tablet, "MakeSnapshot", tid_pid.clone()).await["code"], 105);
    let add = json!({ "tid": 41, "pid": 0, "endpoint": target });
    assert_eq!(cluster.tablet(&tablet, "AddReplica", add.clone()).await, json!({"code": 0, "msg": "ok"}));
    assert_eq!(
        cluster.tablet(&tablet, "AddReplica", add).await,
        json!({"code": 119, "msg": "replica endpoint already exists"})
    );
    let send = json!({ "tid": 41, "pid": 0, "endpoint": target, "task_info": task(3, "kSendSnapshot") });
    assert_eq!(cluster.tablet(&tablet, "SendSnapshot", send).await["code"], 0);
    wait_for("snapshot sent", Duration::from_secs(10), || async {
        let tasks = cluster.tablet(&tablet, "GetTaskStatus", json!({})).await;
        let sent = tasks["task"].as_array()?.iter().find(|t| t["op_id"] == 3)?.clone();
        (sent["status"] == "kDone").then_some(())
    })
    .await;
    let target_dir = cluster.path().join(format!("db-{}", target.replace(':', "_"))).join("41_0");
    assert!(target_dir.join("snapshot/MANIFEST").is_file(), "the MANIFEST travels with the files");
    // The log (the snapshot's data in the simulator, 7 MB) went in blocks of
    // --stream_block_size and arrived whole, with the Puts made before the send.
    let sent = std::fs::read_to_string(target_dir.join("binlog.jsonl")).expect("the log travels too");
    assert_eq!(sent.lines().count(), 100_002);
    assert!(sent.contains("\"pk\":\"paused\""), "the Put made while paused is in the sent log");
    assert!(!target_dir.join("binlog.jsonl.tmp").exists());
    assert_eq!(cluster.tablet(&tablet, "RecoverSnapshot", tid_pid.clone()).await["code"], 0);
    assert_eq!(cluster.table_status(&tablet, 41, 0).await.expect("loaded")["state"], "kTableNormal");
}
