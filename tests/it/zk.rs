//! `zk::` primitives against a real ZooKeeper.

use crate::support::{self, TestZk};

fn cluster(dir: &std::path::Path, zk: &TestZk, extra: &str) -> String {
    support::write(
        dir,
        "cluster.toml",
        &format!("zk_cluster = \"{}\"\nzk_root_path = \"/cl\"\n{extra}\n[ssh]\ntransport = \"local\"\n", zk.addr()),
    )
}

#[test]
fn create_get_set_stat_children_delete() {
    let zk = TestZk::start();
    let dir = tempfile::tempdir().unwrap();
    let cluster = cluster(dir.path(), &zk, "");
    let script = support::write(
        dir.path(),
        "z.rhai",
        r#"
        zk::create("config/auto_failover", "true");
        print(zk::get("/cl/config/auto_failover"));
        print(zk::set("config/auto_failover", "false"));
        let s = zk::stat("config/auto_failover");
        print(`${s.version} ${s.data_length} ${s.ephemeral_owner}`);
        let a = zk::create("leader/lock_request", "127.0.0.1:7527", #{ephemeral: true, sequential: true});
        let b = zk::create("leader/lock_request", "127.0.0.1:7528", #{ephemeral: true, sequential: true});
        print(zk::children("leader").len());
        print(a < b);
        print(zk::stat("leader/" + zk::children("leader")[0]).ephemeral_owner != 0);
        print(zk::exists("nodes"));
        print(zk::stat("nodes") == ());
        zk::delete("config/auto_failover");
        print(zk::exists("config/auto_failover"));
        try { zk::get("config/auto_failover"); } catch (e) { print(e); }
        "#,
    );
    let out = support::run(&["run", &script, "--cluster", &cluster]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        out.stdout,
        "true\n1\n1 5 0\n2\ntrue\ntrue\nfalse\ntrue\nfalse\nZooKeeper node /cl/config/auto_failover does not exist\n"
    );
}

#[test]
fn digest_auth_from_zk_cert() {
    let zk = TestZk::start();
    let dir = tempfile::tempdir().unwrap();
    let with_cert = cluster(dir.path(), &zk, "zk_cert = \"openmldb:secret\"");
    let write = support::write(dir.path(), "w.rhai", "zk::create(\"guarded\", \"v\"); print(zk::get(\"guarded\"));");
    let out = support::run(&["run", &write, "--cluster", &with_cert]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout, "v\n");
    let other = tempfile::tempdir().unwrap();
    let without = cluster(other.path(), &zk, "");
    let read = support::write(other.path(), "r.rhai", "zk::get(\"guarded\");");
    let out = support::run(&["run", &read, "--cluster", &without]);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("ZooKeeper refused access to /cl/guarded: set zk_cert"), "{}", out.stderr);
}

#[test]
fn zk_without_cluster_says_to_pass_one() {
    let dir = tempfile::tempdir().unwrap();
    let script = support::write(dir.path(), "z.rhai", "zk::children(\"nodes\");");
    let out = support::run(&["run", &script]);
    // Found before the script runs: bad input.
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("(zk::children at "), "{}", out.stderr);
    assert!(out.stderr.contains("pass --cluster FILE"), "{}", out.stderr);
}

/// The drain journal of a tablet leading 20 000 partitions: one node per move, each far below
/// ZooKeeper's 1 MB node limit (`jute.maxbuffer`), read back in full, a re-recorded
/// (interrupted) drain keeps the first placement, and a restore removes it all.
#[test]
fn the_drain_journal_of_20000_moves_keeps_every_node_small() {
    use mldb_upgrade::cluster::upgrade::{LeaderMove, MoveState, Upgrader};
    use std::time::{Duration, Instant};

    let server = TestZk::start();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let settings = mldb_upgrade::config::ZkSettings {
        cluster: server.addr(),
        root_path: "/big".into(),
        cert: None,
        session_timeout: Duration::from_secs(10),
        connect_timeout: Duration::from_secs(5),
    };
    let zk = std::sync::Arc::new(mldb_upgrade::cluster::zk::Zk::new(settings));
    let journal = std::sync::Arc::new(mldb_upgrade::journal::Journal::new(zk.clone(), None));
    let rpc = mldb_upgrade::cluster::rpc::RpcClient::new(None, Duration::from_secs(1));
    let upgrader = Upgrader::new(mldb_upgrade::cluster::Cluster::new(zk.clone(), rpc), journal.clone());
    let tablet = "10.0.0.1:10921";
    let planned = |to: &str| -> Vec<LeaderMove> {
        (0..20_000u32)
            .map(|i| LeaderMove {
                db: "db".into(),
                table: format!("t{}", i / 1000),
                tid: 1 + i / 1000,
                pid: i % 1000,
                from: tablet.into(),
                to: to.into(),
                temp_replica: i % 7 == 0,
                state: MoveState::Planned,
                stall_ms: None,
                fence_attempts: 0,
            })
            .collect()
    };
    let first = planned("10.0.0.2:10921");
    let started = Instant::now();
    let recorded = rt.block_on(upgrader.record_moves(tablet, &first)).unwrap();
    let wrote = started.elapsed();
    assert_eq!(recorded.len(), 20_000);
    let started = Instant::now();
    let read = rt.block_on(upgrader.recorded_moves(tablet)).unwrap();
    let read_in = started.elapsed();
    assert_eq!(read, first, "read back as recorded, by (tid, pid)");
    // An interrupted drain planned again elsewhere keeps the placement recorded first.
    let again = rt.block_on(upgrader.record_moves(tablet, &planned("10.0.0.3:10921"))).unwrap();
    assert!(again.iter().all(|m| m.to == "10.0.0.2:10921"));
    // Every node is small: the largest holds one move.
    let base = journal.path(&format!("drain/{tablet}"));
    let children = rt.block_on(zk.children(&base)).unwrap();
    assert_eq!(children.len(), 20_000);
    let largest = rt.block_on(async {
        let mut largest = 0;
        for child in children.iter().step_by(97) {
            largest = largest.max(zk.stat(&format!("{base}/{child}")).await.unwrap().unwrap().data_length);
        }
        largest
    });
    assert!(largest > 0 && largest < 1024, "largest node {largest} bytes");
    assert_eq!(rt.block_on(upgrader.drained_tablets()).unwrap(), vec![tablet.to_string()]);
    let started = Instant::now();
    rt.block_on(journal.delete_tree(&format!("drain/{tablet}"))).unwrap();
    eprintln!(
        "20000 moves: recorded in {wrote:?}, read in {read_in:?}, removed in {:?}; largest node {largest} bytes",
        started.elapsed()
    );
    assert!(rt.block_on(upgrader.drained_tablets()).unwrap().is_empty());
    assert!(rt.block_on(upgrader.recorded_moves(tablet)).unwrap().is_empty());
}
