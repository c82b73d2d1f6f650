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
