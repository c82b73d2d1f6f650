//! Storage modes (C§2.4 `TableMeta.storage_mode`, C§4): kMemory, kSSD and kHDD replicas each
//! under the root of their mode, and what CreateTable, LoadTable, DropTable and the
//! nameserver's replica ops do with them (`src/tablet/tablet_impl.cc`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};

use crate::support::{wait_for, SimCluster};

/// Flags giving a tablet SSD and/or HDD roots (and their recycle bins) under `dir`.
fn disk_flags(dir: &Path, ssd: bool, hdd: bool) -> Vec<String> {
    let mut flags = Vec::new();
    for (on, mode) in [(ssd, "ssd"), (hdd, "hdd")] {
        if on {
            flags.push(format!("--{mode}_root_path={}", dir.join(format!("db_{mode}")).display()));
            flags.push(format!("--recycle_bin_{mode}_root_path={}", dir.join(format!("recycle_{mode}")).display()));
        }
    }
    flags
}

fn refs(flags: &[String]) -> Vec<&str> {
    flags.iter().map(String::as_str).collect()
}

fn meta(tid: u64, mode: &str, storage: &str) -> Value {
    json!({ "tid": tid, "pid": 0, "name": format!("t{tid}"), "db": "db", "mode": mode, "term": 1,
            "storage_mode": storage })
}

async fn put_rows(cluster: &SimCluster, tablet: &str, tid: u64, rows: usize) {
    for i in 0..rows {
        let put = json!({ "tid": tid, "pid": 0, "pk": format!("k{i}"), "value": format!("v{i}") });
        assert_eq!(cluster.tablet(tablet, "Put", put).await["code"], 0);
    }
}

async fn wait_normal(cluster: &SimCluster, tablet: &str, tid: u64) -> Value {
    wait_for(&format!("tid {tid} loaded on {tablet}"), Duration::from_secs(10), || async {
        let status = cluster.table_status(tablet, tid, 0).await?;
        (status["state"] == "kTableNormal").then_some(status)
    })
    .await
}

fn rows_on_disk(dir: &Path) -> usize {
    std::fs::read_to_string(dir.join("binlog.jsonl")).map(|t| t.lines().count()).unwrap_or(0)
}

fn db_root(cluster: &SimCluster, tablet: &str) -> PathBuf {
    cluster.path().join(format!("db-{}", tablet.replace(':', "_")))
}

/// C§4 + `TabletImpl::ChooseDBRootPath` (`src/tablet/tablet_impl.cc:4770-4786`): a replica
/// lives in `<root of its storage mode>/<tid>_<pid>`; GetTableStatus reports the mode, and
/// for disk tables their snapshot and binlog paths instead of the memory figures
/// (`:2497-2584`). LoadTable of a disk table reads that root; the table appears only when the
/// task pool runs `LoadDiskTableInternal` (`:3197-3200`), then loads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c4_load_table_disk_modes_use_their_own_root_path() {
    let mut cluster = SimCluster::new("/c4_roots");
    let shared = cluster.path().join("disks");
    let disks = disk_flags(&shared, true, true);
    let first = cluster.start_tablet(&refs(&disks)).await;
    for (tid, storage) in [(7, "kSSD"), (8, "kHDD"), (9, "kMemory")] {
        let created =
            cluster.tablet(&first, "CreateTable", json!({ "table_meta": meta(tid, "kTableLeader", storage) })).await;
        assert_eq!(created["code"], 0, "{created}");
        put_rows(&cluster, &first, tid, 5).await;
    }
    let memory_root = db_root(&cluster, &first);
    assert_eq!(rows_on_disk(&shared.join("db_ssd/7_0")), 5);
    assert_eq!(rows_on_disk(&shared.join("db_hdd/8_0")), 5);
    assert_eq!(rows_on_disk(&memory_root.join("9_0")), 5);
    assert!(!memory_root.join("7_0").exists() && !shared.join("db_ssd/8_0").exists());

    let ssd = cluster.table_status(&first, 7, 0).await.expect("loaded");
    assert_eq!(ssd["storage_mode"], "kSSD");
    let ssd_dir = std::path::absolute(shared.join("db_ssd/7_0")).expect("absolute");
    assert_eq!(ssd["snapshot_path"], format!("{}/", ssd_dir.join("snapshot").display()));
    assert_eq!(ssd["binlog_path"], format!("{}/", ssd_dir.join("binlog").display()));
    assert!(ssd.get("record_byte_size").is_none() && ssd.get("is_expire").is_none(), "{ssd}");
    let memory = cluster.table_status(&first, 9, 0).await.expect("loaded");
    assert_eq!(memory["storage_mode"], "kMemory");
    assert!(memory.get("snapshot_path").is_none() && memory["record_byte_size"].as_u64() > Some(0), "{memory}");

    // A second tablet with the same disk roots loads the replicas the first one wrote.
    let second = cluster.start_tablet(&refs(&disks)).await;
    let load = json!({ "table_meta": { "tid": 7, "pid": 0, "name": "t7", "storage_mode": "kSSD" },
                       "task_info": { "op_id": 1, "op_type": "kReLoadTableOP", "task_type": "kLoadTable",
                                      "status": "kInited" } });
    assert_eq!(cluster.tablet(&second, "LoadTable", load).await, json!({"code": 0, "msg": "ok"}));
    assert_eq!(cluster.table_status(&second, 7, 0).await, None, "not there until the task pool runs");
    let loaded = wait_normal(&cluster, &second, 7).await;
    assert_eq!((loaded["storage_mode"].clone(), loaded["offset"].clone()), (json!("kSSD"), json!(5)));
    let tasks = cluster.tablet(&second, "GetTaskStatus", json!({})).await;
    assert_eq!(tasks["task"][0]["status"], "kDone", "{tasks}");
    let load = json!({ "table_meta": { "tid": 8, "pid": 0, "name": "t8", "storage_mode": "kHDD" } });
    assert_eq!(cluster.tablet(&second, "LoadTable", load).await["code"], 0);
    assert_eq!(wait_normal(&cluster, &second, 8).await["record_cnt"], 5);
    let got = cluster.tablet(&second, "Get", json!({ "tid": 8, "pid": 0, "key": "k3" })).await;
    assert_eq!(got["value"], "v3", "{got}");
}

/// LoadTable with the wrong storage mode (`TabletImpl::LoadTable`,
/// `src/tablet/tablet_impl.cc:3131-3210`): the root is chosen by the mode in the request, and
/// a missing table directory is only a warning (`:3163-3167`): the merged meta is written
/// there, but with nothing on disk it has no index (`Table::InitColumnDesc`,
/// `src/storage/table.cc:106-117`), so kMemory for a table whose files sit under the SSD root
/// answers 131 "fail to init table" (`:3186-3190`) and leaves that meta behind; a disk mode
/// with nothing under its root answers ok and fails its task (`:3342-3345`). Given a schema,
/// the wrong mode loads an *empty* table. A mode whose root flag is not set answers 138 before
/// anything else is checked, and its task fails; CreateTable answers 138 too (`:3540-3547`).
/// DropTable of a disk table without a recycle bin for its mode answers ok but its task
/// fails and the table stays (`DeleteTableInternal`, `:3426-3430`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_table_with_the_wrong_storage_mode_fails_or_loads_an_empty_table_from_that_root() {
    let mut cluster = SimCluster::new("/c4_wrong_mode");
    let shared = cluster.path().join("disks");
    let ssd_only = disk_flags(&shared, true, false);
    let writer = cluster.start_tablet(&refs(&ssd_only)).await;
    let created =
        cluster.tablet(&writer, "CreateTable", json!({ "table_meta": meta(11, "kTableLeader", "kSSD") })).await;
    assert_eq!(created["code"], 0, "{created}");
    put_rows(&cluster, &writer, 11, 3).await;

    let reader = cluster.start_tablet(&refs(&ssd_only)).await;
    let task = |op_id: u64| {
        json!({ "op_id": op_id, "op_type": "kReLoadTableOP", "task_type": "kLoadTable",
                                    "status": "kInited" })
    };
    let wrong = json!({ "table_meta": { "tid": 11, "pid": 0, "name": "t11", "storage_mode": "kMemory" },
                        "task_info": task(1) });
    assert_eq!(cluster.tablet(&reader, "LoadTable", wrong).await, json!({"code": 131, "msg": "fail to init table"}));
    assert!(db_root(&cluster, &reader).join("11_0/table_meta.json").is_file(), "the meta is written first");
    assert_eq!(cluster.table_status(&reader, 11, 0).await, None);
    // kSSD with nothing under the SSD root for tid 12: ok, then the load task fails.
    let missing = json!({ "table_meta": { "tid": 12, "pid": 0, "name": "t12", "storage_mode": "kSSD" },
                          "task_info": task(2) });
    assert_eq!(cluster.tablet(&reader, "LoadTable", missing).await["code"], 0);
    wait_for("the disk load task failed", Duration::from_secs(5), || async {
        let tasks = cluster.tablet(&reader, "GetTaskStatus", json!({})).await;
        let statuses: Vec<Value> = tasks["task"].as_array()?.iter().map(|t| t["status"].clone()).collect();
        (statuses == [json!("kFailed"), json!("kFailed")]).then_some(())
    })
    .await;
    assert_eq!(cluster.table_status(&reader, 12, 0).await, None, "never listed");
    // With a schema in the request the wrong mode makes an empty memory table.
    let schema = json!({ "tid": 11, "pid": 0, "name": "t11", "storage_mode": "kMemory",
                         "column_desc": [{ "name": "k", "data_type": "kString" }],
                         "column_key": [{ "index_name": "k", "col_name": ["k"] }] });
    assert_eq!(cluster.tablet(&reader, "LoadTable", json!({ "table_meta": schema })).await["code"], 0);
    let empty = wait_normal(&cluster, &reader, 11).await;
    assert_eq!(
        (empty["storage_mode"].clone(), empty["offset"].clone(), empty["record_cnt"].clone()),
        (json!("kMemory"), json!(0), json!(0))
    );
    assert_eq!(rows_on_disk(&shared.join("db_ssd/11_0")), 3, "the SSD files are untouched");

    // No --hdd_root_path: 138 first (even for a loaded tid), and the task fails.
    let hdd = json!({ "table_meta": { "tid": 11, "pid": 0, "name": "t11", "storage_mode": "kHDD" },
                      "task_info": task(3) });
    assert_eq!(
        cluster.tablet(&reader, "LoadTable", hdd).await,
        json!({"code": 138, "msg": "fail to get table db root path"})
    );
    let tasks = cluster.tablet(&reader, "GetTaskStatus", json!({})).await;
    assert_eq!(tasks["task"][2]["status"], "kFailed", "{tasks}");
    let hdd_table = json!({ "table_meta": meta(12, "kTableLeader", "kHDD") });
    assert_eq!(
        cluster.tablet(&reader, "CreateTable", hdd_table).await,
        json!({"code": 138, "msg": "fail to find db root path"})
    );
    let ssd = json!({ "table_meta": { "tid": 11, "pid": 0, "name": "t11", "storage_mode": "kSSD" } });
    assert_eq!(cluster.tablet(&reader, "LoadTable", ssd.clone()).await["code"], 101, "loaded as kMemory already");

    // Dropped, the memory replica goes to the recycle bin; then the right mode loads the rows.
    assert_eq!(cluster.tablet(&reader, "DropTable", json!({ "tid": 11, "pid": 0 })).await["code"], 0);
    let recycle = cluster.path().join(format!("recycle-{}", reader.replace(':', "_")));
    let recycled: Vec<String> = std::fs::read_dir(&recycle)
        .expect("recycle bin")
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().to_string()))
        .collect();
    assert!(recycled.len() == 1 && recycled[0].starts_with("11_0_") && recycled[0].len() == "11_0_".len() + 14);
    assert_eq!(cluster.tablet(&reader, "LoadTable", ssd).await["code"], 0);
    assert_eq!(wait_normal(&cluster, &reader, 11).await["offset"], 3);

    // A tablet with an SSD root but no SSD recycle bin cannot drop an SSD replica.
    let no_bin = [format!("--ssd_root_path={}", cluster.path().join("other_ssd").display())];
    let keeper = cluster.start_tablet(&refs(&no_bin)).await;
    let created =
        cluster.tablet(&keeper, "CreateTable", json!({ "table_meta": meta(13, "kTableLeader", "kSSD") })).await;
    assert_eq!(created["code"], 0, "{created}");
    let drop = json!({ "tid": 13, "pid": 0, "task_info": { "op_id": 3, "op_type": "kDelReplicaOP",
                                                          "task_type": "kDropTable", "status": "kInited" } });
    assert_eq!(cluster.tablet(&keeper, "DropTable", drop).await["code"], 0);
    let tasks = cluster.tablet(&keeper, "GetTaskStatus", json!({})).await;
    assert_eq!(tasks["task"][0]["status"], "kFailed", "{tasks}");
    assert!(cluster.table_status(&keeper, 13, 0).await.is_some(), "still loaded");
}

/// The nameserver passes the table's storage mode on (CreateTable, and the LoadTable of
/// AddReplica's chain, `src/nameserver/name_server_impl.cc:4557-4558,10227-10242`): an SSD
/// table's new replica is sent to and loaded from the new tablet's SSD root, and RecoverTable
/// asks GetTermPair under that root.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c3_1_add_replica_of_an_ssd_table_loads_it_under_the_ssd_root() {
    let mut cluster = SimCluster::new("/c3_1_ssd");
    let mut tablets = Vec::new();
    for i in 0..3 {
        let flags = disk_flags(&cluster.path().join(format!("disks-{i}")), true, false);
        tablets.push((cluster.start_tablet(&refs(&flags)).await, i));
    }
    let ns = cluster.start_leader(&[]).await;
    assert_eq!(cluster.ns(&ns, "CreateDatabase", json!({ "db": "db" })).await["code"], 0);
    let table_info = json!({ "name": "s", "db": "db", "partition_num": 1, "replica_num": 2, "storage_mode": "kSSD" });
    let created = cluster.ns(&ns, "CreateTable", json!({ "table_info": table_info })).await;
    assert_eq!(created["code"], 0, "{created}");
    let shown = cluster.ns(&ns, "ShowTable", json!({ "name": "s", "db": "db" })).await;
    assert_eq!(shown["table_info"][0]["storage_mode"], "kSSD", "{shown}");
    let tid = shown["table_info"][0]["tid"].as_u64().expect("tid");
    let parts = cluster.partitions(&ns, "db", "s").await;
    let leader = parts[0].1.iter().find(|m| m.1).expect("leader").0.clone();
    put_rows(&cluster, &leader, tid, 4).await;
    let (spare, spare_index) =
        tablets.iter().find(|(t, _)| parts[0].1.iter().all(|m| &m.0 != t)).cloned().expect("a spare tablet");

    let added = cluster.ns(&ns, "AddReplicaNS", json!({ "name": "s", "db": "db", "pid": 0, "endpoint": spare })).await;
    assert_eq!(added["code"], 0, "{added}");
    let ops = cluster.wait_ops_finished(&ns, Duration::from_secs(30)).await;
    assert!(ops.iter().all(|o| o.4 == "kDone"), "{ops:?}");
    let status = wait_for("the new replica caught up", Duration::from_secs(10), || async {
        let status = cluster.table_status(&spare, tid, 0).await?;
        (status["offset"] == 4).then_some(status)
    })
    .await;
    assert_eq!((status["storage_mode"].clone(), status["mode"].clone()), (json!("kSSD"), json!("kTableFollower")));
    let ssd_dir = cluster.path().join(format!("disks-{spare_index}/db_ssd/{tid}_0"));
    assert!(ssd_dir.join("table_meta.json").is_file(), "sent to the SSD root");
    assert!(!db_root(&cluster, &spare).join(format!("{tid}_0")).exists(), "nothing under --db_root_path");
    let term_pair =
        cluster.tablet(&spare, "GetTermPair", json!({ "tid": tid + 100, "pid": 0, "storage_mode": "kHDD" })).await;
    assert_eq!(term_pair["code"], 138, "no HDD root: {term_pair}");
}
