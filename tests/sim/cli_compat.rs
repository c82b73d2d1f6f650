//! C§5 / O§5.8: the simulated `bin/openmldb` speaks OpenMLDB's command-line clients. Golden
//! outputs run the real binary against ZooKeeper + a simulated nameserver and three tablets.
//!
//! Endpoints are masked as labels of the same length (`NS~~...`, `TA~~...` for the tablets
//! in endpoint order), so the layout is checked exactly; times are computed from the RPC
//! values with `TZ=UTC`, tablet ages are captured and their padding checked.

use std::time::Duration;

use serde_json::{json, Value};

use crate::support::{wait_for, SimCluster, SIM};

struct Fixture {
    cluster: SimCluster,
    ns: String,
    /// Tablets sorted by endpoint: labels TA, TB, TC.
    tablets: Vec<String>,
}

/// Three tablets, a leader, db1.t1 (2 partitions × 2 replicas), db1.t2 (1 × 1) and
/// db1.t3 (3 × 1). Placement is round-robin from `tid % 3` over the sorted tablets.
async fn fixture(root: &str) -> Fixture {
    let mut cluster = SimCluster::new(root);
    let mut tablets = Vec::new();
    for _ in 0..3 {
        tablets.push(cluster.start_tablet(&[]).await);
    }
    tablets.sort();
    let ns = cluster.start_leader(&[]).await;
    wait_for("three healthy tablets", Duration::from_secs(20), || async {
        let reply = cluster.ns(&ns, "ShowTablet", json!({})).await;
        let healthy = reply["tablets"].as_array().map(|t| t.iter().filter(|t| t["state"] == "kHealthy").count());
        (healthy == Some(3)).then_some(())
    })
    .await;
    cluster.create_table(&ns, "db1", "t1", 2, 2).await;
    cluster.create_table(&ns, "db1", "t2", 1, 1).await;
    cluster.create_table(&ns, "db1", "t3", 3, 1).await;
    for endpoint in tablets.iter().chain([&ns]) {
        assert_eq!(endpoint.len(), 15, "goldens assume 5-digit ports: {endpoint}");
    }
    let fixture = Fixture { cluster, ns, tablets };
    fixture.wait_offsets_reported().await;
    fixture
}

impl Fixture {
    /// Waits until the nameserver has refreshed every replica's offset (C§3.7).
    async fn wait_offsets_reported(&self) {
        wait_for("offsets in ShowTable", Duration::from_secs(20), || async {
            let reply = self.cluster.ns(&self.ns, "ShowTable", json!({ "db": "db1" })).await;
            let tables = reply["table_info"].as_array().cloned().unwrap_or_default();
            let all = tables.iter().flat_map(|t| t["table_partition"].as_array().cloned().unwrap_or_default());
            let metas: Vec<Value> =
                all.flat_map(|p| p["partition_meta"].as_array().cloned().unwrap_or_default()).collect();
            (!metas.is_empty() && metas.iter().all(|m| m.get("offset").is_some())).then_some(())
        })
        .await;
    }

    fn zk_flags(&self) -> Vec<String> {
        vec![
            format!("--zk_cluster={}", self.cluster.zk.connect_string()),
            format!("--zk_root_path={}", self.cluster.root),
        ]
    }

    /// `tool.py`'s ns_client command line (O§5.2).
    async fn ns_cmd(&self, cmd: &str, db: Option<&str>) -> String {
        let mut args = self.zk_flags();
        args.extend(["--role=ns_client".to_string(), "--interactive=false".to_string(), format!("--cmd={cmd}")]);
        if let Some(db) = db {
            args.push(format!("--database={db}"));
        }
        self.mask(&run(&args).await)
    }

    /// An ns_client command in db1, without the `ns leader:` line.
    async fn db1(&self, cmd: &str) -> String {
        let out = self.ns_cmd(cmd, Some("db1")).await;
        out.strip_prefix("ns leader: NS~~~~~~~~~~~~~\n").unwrap_or_else(|| panic!("no leader line: {out}")).to_string()
    }

    async fn tablet_cmd(&self, index: usize, cmd: &str) -> String {
        let args = [
            "--role=client".to_string(),
            "--interactive=false".to_string(),
            format!("--endpoint={}", self.tablets[index]),
            format!("--cmd={cmd}"),
        ];
        self.mask(&run(&args).await)
    }

    async fn sql(&self, cmd: &str, db: Option<&str>) -> String {
        let mut args = self.zk_flags();
        args.extend(["--role=sql_client".to_string(), "--interactive=false".to_string(), format!("--cmd={cmd}")]);
        if let Some(db) = db {
            args.push(format!("--database={db}"));
        }
        self.mask(&run(&args).await)
    }

    fn label(&self, name: &str) -> String {
        format!("{name:~<15}")
    }

    /// Replaces endpoints by labels of the same length.
    fn mask(&self, text: &str) -> String {
        let mut text = text.replace(&self.ns, &self.label("NS"));
        for (endpoint, name) in self.tablets.iter().zip(["TA", "TB", "TC"]) {
            text = text.replace(endpoint, &self.label(name));
        }
        text
    }

    /// Unmasks a command written with labels.
    fn cmd(&self, cmd: &str) -> String {
        let mut cmd = cmd.to_string();
        for (endpoint, name) in self.tablets.iter().zip(["TA", "TB", "TC"]) {
            cmd = cmd.replace(name, endpoint);
        }
        cmd
    }

    async fn wait_ops(&self) -> Vec<Value> {
        self.cluster.wait_ops_finished(&self.ns, Duration::from_secs(30)).await;
        let reply = self.cluster.ns(&self.ns, "ShowOPStatus", json!({})).await;
        reply["op_status"].as_array().cloned().unwrap_or_default()
    }
}

/// Runs the simulated binary with `TZ=UTC`; every invocation must exit 0 (C§5).
async fn run(args: &[String]) -> String {
    let output = tokio::process::Command::new(SIM)
        .args(args)
        .env("TZ", "UTC")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .expect("run openmldb-sim");
    assert_eq!(output.status.code(), Some(0), "exit code of {args:?}");
    String::from_utf8_lossy(&output.stdout).to_string()
}

/// `strftime("%Y%m%d%H%M%S")` in UTC, computed independently of the crate.
fn utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // civil_from_days (H. Hinnant)
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}{month:02}{day:02}{:02}{:02}{:02}", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// A TPrinter table written from the C§5 rules: `"  "` + left-padded cells, dashes
/// `sum(width + 2) + 2` long, empty cells as `-`.
fn tprinter(rows: &[Vec<String>]) -> String {
    let mut widths = vec![0; rows[0].len()];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |row: &Vec<String>| {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("  {:<w$}", if c.is_empty() { "-" } else { c.as_str() }))
            .collect();
        format!("{}\n", cells.concat())
    };
    let mut out = line(&rows[0]);
    out.push_str(&"-".repeat(widths.iter().map(|w| w + 2).sum::<usize>() + 2));
    out.push('\n');
    for row in &rows[1..] {
        out.push_str(&line(row));
    }
    out
}

const COLUMNS: [&str; 14] = [
    "Table_id",
    "Table_name",
    "Database_name",
    "Storage_type",
    "Rows",
    "Memory_data_size",
    "Disk_data_size",
    "Partition",
    "Partition_unalive",
    "Replica",
    "Offline_path",
    "Offline_format",
    "Offline_symbolic_paths",
    "Warnings",
];

/// A one-line-per-row hybridse TextTable(' ', ' ', '-'): ruler, header, ruler, rows, ruler;
/// each cell `" " + text` padded to `width + 2` and followed by a space.
fn text_table(rows: &[Vec<String>]) -> String {
    let mut widths = vec![0; rows[0].len()];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len() + 2);
        }
    }
    let ruler: String = format!(" {}\n", widths.iter().map(|w| format!("{} ", "-".repeat(*w))).collect::<String>());
    let line = |row: &Vec<String>| {
        format!(" {}\n", row.iter().zip(&widths).map(|(c, w)| format!("{:<w$} ", format!(" {c}"))).collect::<String>())
    };
    let mut out = format!("{ruler}{}{ruler}", line(&rows[0]));
    for row in &rows[1..] {
        out.push_str(&line(row));
    }
    out.push_str(&ruler);
    out
}

fn op_rows(ops: &[Value]) -> Vec<Vec<String>> {
    let mut rows = vec![[
        "op_id",
        "op_type",
        "name",
        "pid",
        "status",
        "start_time",
        "execute_time",
        "end_time",
        "cur_task",
        "for_replica_cluster",
    ]
    .map(str::to_string)
    .to_vec()];
    for op in ops {
        let (start, end) = (op["start_time"].as_u64().unwrap_or(0), op["end_time"].as_u64().unwrap_or(0));
        rows.push(vec![
            op["op_id"].to_string(),
            op["op_type"].as_str().unwrap_or_default().to_string(),
            op["name"].as_str().unwrap_or("-").to_string(),
            op["pid"].to_string(),
            op["status"].as_str().unwrap_or_default().to_string(),
            utc(start),
            format!("{}s", end - start),
            utc(end),
            op["task_type"].as_str().unwrap_or_default().to_string(),
            "no".to_string(),
        ]);
    }
    rows
}

#[test]
fn c5_utc_helper() {
    assert_eq!(utc(0), "19700101000000");
    assert_eq!(utc(1_709_164_800 + 3661), "20240229010101");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c5_show_commands_golden() {
    let f = fixture("/cli_show").await;

    // showns (CLI:668-721): ZooKeeper only.
    assert_eq!(
        f.ns_cmd("showns", None).await,
        "ns leader: NS~~~~~~~~~~~~~\n\
         \x20 endpoint         real_endpoint  role  \n\
         ------------------------------------------\n\
         \x20 NS~~~~~~~~~~~~~  -              leader\n"
    );

    // showtablet (CLI:571-595): ages are volatile; the layout is checked with them.
    let out = f.ns_cmd("showtablet", None).await;
    let ages: Vec<String> =
        out.lines().skip(3).map(|l| l.split_whitespace().last().unwrap_or("").to_string()).collect();
    assert_eq!(ages.len(), 3, "{out}");
    assert!(ages.iter().all(|a| a.ends_with('s') || a.ends_with('m')), "{out}");
    let mut rows = vec![["endpoint", "real_endpoint", "state", "age"].map(str::to_string).to_vec()];
    for (name, age) in ["TA", "TB", "TC"].iter().zip(&ages) {
        rows.push(vec![f.label(name), String::new(), "kHealthy".to_string(), age.clone()]);
    }
    assert_eq!(out, format!("ns leader: NS~~~~~~~~~~~~~\n{}", tprinter(&rows)));
    let width = ages.iter().map(String::len).max().unwrap_or(0).max(3);
    assert_eq!(out.lines().nth(2).map(str::len), Some(17 + 15 + 10 + (width + 2) + 2));

    // showdb (CLI:1340-1358)
    assert_eq!(f.db1("showdb").await, "  #  name\n-----------\n  1  db1 \n");

    // showtable (display.h:218-295): one row per replica.
    let t1 = "  name  tid  pid  endpoint         role      is_alive  offset  record_cnt  memused  diskused\n\
              ----------------------------------------------------------------------------------------------\n\
              \x20 t1    7    0    TB~~~~~~~~~~~~~  leader    yes       0       0           0.000    0.000   \n\
              \x20 t1    7    0    TC~~~~~~~~~~~~~  follower  yes       0       0           0.000    0.000   \n\
              \x20 t1    7    1    TC~~~~~~~~~~~~~  leader    yes       0       0           0.000    0.000   \n\
              \x20 t1    7    1    TA~~~~~~~~~~~~~  follower  yes       0       0           0.000    0.000   \n";
    assert_eq!(f.db1("showtable t1").await, t1);
    let all = f.db1("showtable").await;
    assert!(all.starts_with(t1), "{all}");
    assert_eq!(
        &all[t1.len()..],
        "  t2    8    0    TC~~~~~~~~~~~~~  leader    yes       0       0           0.000    0.000   \n\
         \x20 t3    9    0    TA~~~~~~~~~~~~~  leader    yes       0       0           0.000    0.000   \n\
         \x20 t3    9    1    TB~~~~~~~~~~~~~  leader    yes       0       0           0.000    0.000   \n\
         \x20 t3    9    2    TC~~~~~~~~~~~~~  leader    yes       0       0           0.000    0.000   \n"
    );
    let empty = "  name  tid  pid  endpoint  role  is_alive  offset  record_cnt  memused  diskused\n\
                 -----------------------------------------------------------------------------------\n";
    // Without --database only legacy (db "") tables show; an unknown db silently falls back to "".
    assert_eq!(f.ns_cmd("showtable", None).await, format!("ns leader: NS~~~~~~~~~~~~~\n{empty}"));
    assert_eq!(f.ns_cmd("showtable t1", Some("nosuch")).await, format!("ns leader: NS~~~~~~~~~~~~~\n{empty}"));
    assert_eq!(f.db1("showtable nosuch").await, empty);

    // confget (CLI:916-944), including its "failed to set" error text (sic).
    let conf = "  key            value\n------------------------\n  auto_failover  false\n";
    assert_eq!(f.db1("confget").await, conf);
    assert_eq!(f.db1("confget auto_failover").await, conf);
    assert_eq!(f.db1("confget nosuch").await, "failed to set nosuch. error msg: cannot found key nosuch\n");
    assert_eq!(f.db1("showopstatus").await.lines().count(), 2);
    assert_eq!(f.db1("frobnicate").await, "unsupported cmd\n");

    // gettablestatus (display.h:297-334) on a leader, a follower and an unloaded partition.
    let status_row = |tid: &str, pid: &str, mode: &str, state: &str| {
        let mut rows = vec![[
            "tid",
            "pid",
            "offset",
            "mode",
            "state",
            "enable_expire",
            "ttl",
            "ttl_offset",
            "memused",
            "compress_type",
            "skiplist_height",
        ]
        .map(str::to_string)
        .to_vec()];
        rows.push(
            [tid, pid, "0", mode, state, "false", "0min", "0s", "0.000", "kNoCompress", "0"]
                .map(str::to_string)
                .to_vec(),
        );
        tprinter(&rows)
    };
    assert_eq!(f.tablet_cmd(1, "gettablestatus 7 0").await, status_row("7", "0", "kTableLeader", "kTableNormal"));
    assert_eq!(f.tablet_cmd(0, "gettablestatus 7 1").await, status_row("7", "1", "kTableFollower", "kTableNormal"));
    assert_eq!(
        f.tablet_cmd(0, "gettablestatus 7 0").await,
        "  tid  pid  offset  mode          state            enable_expire  ttl   ttl_offset  memused  compress_type  \
         skiplist_height\n\
         ---------------------------------------------------------------------------------------------------------\
         --------------------\n\
         \x20 0    0    0       kTableLeader  kTableUndefined  false          0min  0s          0.000    kNoCompress    \
         0              \n"
    );
    let listing = f.tablet_cmd(0, "gettablestatus").await;
    let tid_pids: Vec<String> = listing.lines().skip(2).map(|l| l.split_whitespace().take(2).collect()).collect();
    assert_eq!(tid_pids, ["30", "60", "71", "90"], "{listing}");
    assert_eq!(f.tablet_cmd(0, "gettablestatus x 1").await, "Invalid args, tid should be uint32_t\n");
    assert_eq!(f.tablet_cmd(0, "gettablestatus 1").await, "Bad gettablestatus format\n");

    // Failure paths print text and still exit 0.
    assert_eq!(
        run(&["--role=ns_client".into(), "--cmd=showtablet".into()]).await,
        "Start failed! not set endpoint or zk_cluster\n"
    );
    assert_eq!(
        run(&["--role=ns_client".into(), "--endpoint=127.0.0.1:1".into(), "--cmd=showtablet".into()]).await,
        "Fail to show tablets. error msg: \n"
    );
    let refused = run(&["--role=ns_client".into(), "--endpoint=127.0.0.1:1".into(), "--cmd=cancelop 3".into()]).await;
    assert!(refused.starts_with("Cancel op failed, error msg: ReturnCode[1004][E111]Fail to connect"), "{refused}");
    assert_eq!(run(&["--role=client".into(), "--cmd=gettablestatus".into()]).await, "Start failed! not set endpoint\n");
    assert_eq!(
        run(&["--role=sql_client".into(), "--cmd=show table status;".into()]).await,
        "ERROR: Failed to connect to db\n"
    );
    // --endpoint instead of ZooKeeper: no "ns leader" line (tool.py after Connect, O§5.2).
    let args = [
        "--role=ns_client".into(),
        format!("--endpoint={}", f.ns),
        "--interactive=false".into(),
        "--cmd=confget".into(),
    ];
    assert_eq!(run(&args).await, conf);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c5_op_commands_golden() {
    let f = fixture("/cli_ops").await;
    let ok_change =
        "change leader ok. If there are writing operations while changing a leader, it may cause data loss.\n";

    // changeleader (CLI:946-968)
    assert_eq!(f.db1("changeleader t1").await, "Bad format\n");
    assert_eq!(f.db1("changeleader t1 x").await, "Invalid args. pid should be uint32_t\n");
    assert_eq!(f.db1("changeleader nosuch 0").await, "failed to change leader. error msg: table does not exist\n");
    assert_eq!(f.db1("changeleader t1 0").await, "failed to change leader. error msg: leader is alive\n");
    assert_eq!(f.db1("changeleader t2 0 auto").await, "failed to change leader. error msg: no follower\n");
    assert_eq!(
        f.ns_cmd("changeleader t1 0 auto", None).await,
        "ns leader: NS~~~~~~~~~~~~~\nfailed to change leader. error msg: table does not exist\n"
    );
    assert_eq!(f.db1("changeleader t1 0 auto").await, ok_change);
    let ops = f.wait_ops().await;
    assert_eq!(ops.len(), 1, "{ops:?}");
    let (start, end) = (ops[0]["start_time"].as_u64().unwrap_or(0), ops[0]["end_time"].as_u64().unwrap_or(0));
    assert_eq!(
        f.db1("showopstatus t1 0").await,
        format!(
            "  op_id  op_type          name  pid  status  start_time      execute_time  end_time        cur_task  \
             for_replica_cluster\n\
             ----------------------------------------------------------------------------------------------------\
             ----------------------\n\
             \x20 {:<5}  kChangeLeaderOP  t1    0    kDone   {}  {:<12}  {}  -         no                 \n",
            ops[0]["op_id"].to_string(),
            utc(start),
            format!("{}s", end - start),
            utc(end)
        )
    );
    assert_eq!(f.db1("showopstatus t1 1").await.lines().count(), 2);
    assert_eq!(f.db1("showopstatus t1 x").await, "Invalid args. pid should be uint32_t\n");

    // recovertable (CLI:1061-1077): the old leader is now not alive.
    assert_eq!(f.db1("recovertable t1 0").await, "Bad format\n");
    assert_eq!(f.db1(&f.cmd("recovertable t1 9 TB")).await, "Fail to recover table. error msg:pid does not exist\n");
    assert_eq!(f.db1(&f.cmd("recovertable t1 0 TB")).await, "recover table ok\n");
    f.wait_ops().await;
    assert_eq!(
        f.db1(&f.cmd("recovertable t1 0 TB")).await,
        "Fail to recover table. error msg:table is alive, need not recover\n"
    );

    // addreplica / delreplica with pid groups N, A-B, a,b,c (CLI:370-415, 742-785)
    assert_eq!(f.db1(&f.cmd("addreplica t3 x TC")).await, "pid group[x] format error\n");
    assert_eq!(f.db1(&f.cmd("addreplica t3 2-1 TC")).await, "has not valid pid\n");
    assert_eq!(f.db1(&f.cmd("addreplica t3 1-2-3 TC")).await, "pid group[1-2-3] format error\n");
    assert_eq!(f.db1(&f.cmd("addreplica t3 7 TC")).await, "Fail to addreplica. error msg:invalid parameter\n");
    assert_eq!(
        f.db1(&f.cmd("addreplica t3 2 TC")).await,
        "Fail to addreplica. error msg:pid 2 is exist in TC~~~~~~~~~~~~~\n"
    );
    assert_eq!(f.db1(&f.cmd("addreplica t3 0,1 TC")).await, "AddReplica ok\n");
    f.wait_ops().await;
    assert_eq!(
        f.db1(&f.cmd("addreplica t3 0-1 TC")).await,
        "Fail to addreplica. error msg:pid 0 is exist in TC~~~~~~~~~~~~~\n"
    );
    assert_eq!(
        f.db1(&f.cmd("delreplica t3 2 TC")).await,
        "Fail to delreplica. error msg:can not del leader. pid 2 endpoint TC~~~~~~~~~~~~~\n"
    );
    assert_eq!(f.db1(&f.cmd("delreplica t3 0-1 TC")).await, "DelReplica ok\n");
    f.wait_ops().await;
    assert_eq!(
        f.db1(&f.cmd("delreplica t3 1 TC")).await,
        "Fail to delreplica. error msg:pid 1 is not in TC~~~~~~~~~~~~~\n"
    );
    assert_eq!(f.db1("delreplica t3 1").await, "Bad format\n");

    // migrate (CLI:997-1024): t1 pid 1 has leader TC and follower TA.
    assert_eq!(f.db1("migrate a t1 1").await, "Bad format. eg, migrate 127.0.0.1:9991 table1 1-10 127.0.0.1:9992\n");
    assert_eq!(f.db1(&f.cmd("migrate TA t1 1 TA")).await, "migrate error. src_endpoint is same as des_endpoint\n");
    assert_eq!(
        f.db1(&f.cmd("migrate TC t1 1 TB")).await,
        "failed to migrate partition. error msg: cannot migrate leader. name[t1] pid[1]\n"
    );
    assert_eq!(f.db1(&f.cmd("migrate TA t1 1 TB")).await, "partition migrate ok\n");
    f.wait_ops().await;

    // updatetablealive (CLI:2694-2723): `*` means every partition on the endpoint.
    assert_eq!(f.db1(&f.cmd("updatetablealive t1 0 TA maybe")).await, "is_alive should be yes or no\n");
    assert_eq!(f.db1(&f.cmd("updatetablealive t1 x TA no")).await, "Invalid args. pid should be uint32_t\n");
    assert_eq!(
        f.db1(&f.cmd("updatetablealive t1 * TA no")).await,
        "Fail to update table alive. error msg: no pid has update\n"
    );
    assert_eq!(f.db1(&f.cmd("updatetablealive t1 * TB no")).await, "update ok\n");
    let rows = f.db1("showtable t1").await;
    assert_eq!(rows.lines().filter(|l| l.contains("TB~") && l.contains("  no  ")).count(), 2, "{rows}");
    assert_eq!(f.db1(&f.cmd("updatetablealive t1 * TB yes")).await, "update ok\n");

    // cancelop (CLI:523-539): the error shows ReturnCode[312].
    assert_eq!(f.db1("cancelop").await, "bad cancelop format, eg cancelop 1002\n");
    assert_eq!(f.db1("cancelop x").await, "Invalid args. op_id should be uint64_t\n");
    assert_eq!(
        f.db1("cancelop 99999").await,
        "Cancel op failed, error msg: ReturnCode[312]op status is not kDoing or kInited\n"
    );

    // offlineendpoint / recoverendpoint (CLI:970-1059)
    assert_eq!(
        f.db1("offlineendpoint 127.0.0.1:1").await,
        "failed to offline endpoint. error msg: endpoint does not exist\n"
    );
    assert_eq!(f.db1(&f.cmd("offlineendpoint TA 0")).await, "Invalid args. concurrency should be greater than 0\n");
    assert_eq!(f.db1(&f.cmd("offlineendpoint TA x")).await, "Invalid args. concurrency should be uint32_t\n");
    assert_eq!(
        f.db1(&f.cmd("offlineendpoint TA 100")).await,
        "failed to offline endpoint. error msg: invalid parameter\n"
    );
    assert_eq!(
        f.db1("recoverendpoint 127.0.0.1:1").await,
        "failed to recover endpoint. error msg: endpoint does not exist\n"
    );
    assert_eq!(f.db1(&f.cmd("recoverendpoint TA maybe")).await, "Invalid args. need_restore should be true or false\n");
    assert_eq!(f.db1(&f.cmd("recoverendpoint TA true x")).await, "Invalid args. concurrency should be uint32\n");
    assert_eq!(
        f.db1(&f.cmd("recoverendpoint TA false 100")).await,
        "failed to recover endpoint. error msg: invalid parameter\n"
    );
    assert_eq!(f.db1(&f.cmd("recoverendpoint TA")).await, "recover endpoint ok\n");
    f.wait_ops().await;

    // confset (CLI:902-914) and the auto_failover gate.
    assert_eq!(f.db1("confset auto_failover").await, "Bad format\n");
    assert_eq!(
        f.db1("confset auto_failover maybe").await,
        "failed to set auto_failover. error msg: invalid parameter\n"
    );
    assert_eq!(f.db1("confset auto_failover TRUE").await, "set auto_failover ok\n");
    assert_eq!(f.db1("confget").await, "  key            value\n------------------------\n  auto_failover  true \n");
    assert_eq!(f.db1("changeleader t1 0").await, "failed to change leader. error msg: auto_failover is enabled\n");
    assert_eq!(f.db1("confset auto_failover false").await, "set auto_failover ok\n");

    // The whole op list, every row and time computed from ShowOPStatus.
    let ops = f.wait_ops().await;
    assert!(ops.len() >= 6, "{ops:?}");
    // --database=db1 filters ShowOPStatus by db (the system tables' ops are left out).
    let db1_ops: Vec<Value> = ops.into_iter().filter(|op| op["db"] == "db1").collect();
    assert_eq!(f.db1("showopstatus").await, tprinter(&op_rows(&db1_ops)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c5_sql_show_table_status_golden() {
    let f = fixture("/cli_sql").await;
    let header = COLUMNS.map(str::to_string).to_vec();
    let row = |tid: &str, name: &str, db: &str, partitions: &str, replicas: &str| {
        [tid, name, db, "memory", "0", "0", "0", partitions, "0", replicas, "NULL", "NULL", "NULL", ""]
            .map(str::to_string)
            .to_vec()
    };
    // Reverse ShowTable order: db and name descending (sql_cluster_router.cc).
    let user_rows =
        vec![row("9", "t3", "db1", "3", "1"), row("8", "t2", "db1", "1", "1"), row("7", "t1", "db1", "2", "2")];
    let system_rows = vec![
        row("2", "USER", "__INTERNAL_DB", "1", "1"),
        row("4", "PRE_AGG_META_INFO", "__INTERNAL_DB", "1", "1"),
        row("3", "JOB_INFO", "__INTERNAL_DB", "1", "1"),
        // The four defaults the nameserver puts there (`InitGlobalVarTable`): encoded rows of
        // 22 to 27 bytes, 140 bytes in json2pb's base64 form.
        {
            let mut global = row("5", "GLOBAL_VARIABLES", "INFORMATION_SCHEMA", "1", "1");
            (global[4], global[5]) = ("4".to_string(), "140".to_string());
            global
        },
        row("6", "DEPLOY_RESPONSE_TIME", "INFORMATION_SCHEMA", "1", "1"),
    ];
    let all = f.sql("show table status like '%';", None).await;
    assert!(
        all.starts_with(
            " ---------- ---------------------- -------------------- -------------- ------ ------------------ \
             ---------------- ----------- ------------------- --------- -------------- ---------------- \
             ------------------------ ---------- \n  Table_id   Table_name             Database_name        \
             Storage_type   Rows   Memory_data_size   Disk_data_size   Partition   Partition_unalive   Replica   \
             Offline_path   Offline_format   Offline_symbolic_paths   Warnings  \n"
        ),
        "{all}"
    );
    let rows: Vec<Vec<String>> = [vec![header.clone()], user_rows.clone(), system_rows].into_iter().flatten().collect();
    assert_eq!(all, format!("{}\n8 rows in set\n", text_table(&rows)));
    // Without a pattern: the hidden dbs are left out, and --database selects one db.
    let rows: Vec<Vec<String>> = [vec![header], user_rows].into_iter().flatten().collect();
    let expected = format!("{}\n3 rows in set\n", text_table(&rows));
    assert_eq!(f.sql("show table status;", None).await, expected);
    assert_eq!(f.sql("SHOW TABLE STATUS", Some("db1")).await, expected);
    let none = f.sql("show table status like 'nosuch%';", None).await;
    assert!(none.ends_with("\n0 rows in set\n") && none.lines().count() == 5, "{none}");
    let error = f.sql("select 1;", None).await;
    assert!(error.starts_with("Error: "), "{error}");

    // Break t1: TC (follower of pid 0 per metadata) becomes leader on its own, TA drops its
    // replica of pid 1, and TB's replica of t2 is marked not alive.
    let changed = f
        .cluster
        .tablet(&f.tablets[2], "ChangeRole", json!({ "tid": 7, "pid": 0, "mode": "kTableLeader", "term": 99 }))
        .await;
    assert_eq!(changed["code"], 0, "{changed}");
    let dropped = f.cluster.tablet(&f.tablets[0], "DropTable", json!({ "tid": 7, "pid": 1 })).await;
    assert_eq!(dropped["code"], 0, "{dropped}");
    assert_eq!(f.db1(&f.cmd("updatetablealive t2 0 TC no")).await, "update ok\n");
    let out = f.sql("show table status;", None).await;
    let warnings = "[pid=0][leader][TC~~~~~~~~~~~~~]: leader/follower mode inconsistent\n\
                    [pid=1]: real replica number 1 does not match the configured replicanum 2\n\
                    [pid=1][follower][TA~~~~~~~~~~~~~]: state is kNotFound";
    let preview: String = warnings.chars().take(100).collect();
    let expected_errors = format!(
        "ERROR: table db1.t2 is broken, `show table status` to check detail, unalive partition: 1\n\
         ERROR: table db1.t1 is broken, `show table status` to check detail, warning preview: {preview}\n\
         HINT: Use `openmldb_tool inspect` to get full report.\n"
    );
    assert!(out.starts_with(&expected_errors), "{out}");
    let table = &out[expected_errors.len()..];
    let lines: Vec<&str> = table.lines().collect();
    // Multi-line Warnings cell: one line per warning, the other cells blank below the first.
    let t1 = lines.iter().position(|l| l.starts_with("  7 ")).unwrap_or_else(|| panic!("{table}"));
    let warning_lines: Vec<&str> = warnings.lines().collect();
    let column = lines[t1].find("[pid=0]").unwrap_or_else(|| panic!("{table}"));
    for (offset, warning) in warning_lines.iter().enumerate() {
        let line = lines[t1 + offset];
        assert_eq!(line[column..].trim_end(), *warning, "{table}");
        if offset > 0 {
            assert!(line[..column].trim().is_empty(), "{table}");
        }
        assert_eq!(line.len(), lines[0].len(), "every line has the ruler's width:\n{table}");
    }
    let t2 = lines.iter().find(|l| l.starts_with("  8 ")).unwrap_or_else(|| panic!("{table}"));
    assert_eq!(t2.split_whitespace().nth(8), Some("1"), "{table}");
    assert!(table.ends_with("\n3 rows in set\n"), "{table}");
}
