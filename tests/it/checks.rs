//! The documented checks, enforced (O§6.1): a cluster made to violate one is refused before
//! the first change, or the run stops at the step that finds it, naming the partition.

use std::time::Duration;

use mldb_upgrade::sandbox;
use serde_json::json;

use crate::flow::{line, run_upgrade, state};
use crate::support::{self, Sandbox};

#[test]
fn a_partition_with_more_replicas_than_replica_num_is_refused_before_any_change() {
    let sb = Sandbox::up(&["--tablets", "3"]);
    let sandbox_state = sandbox::load_state(&sb.dir).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    // demo.double pid 0 gets a third replica, as a temporary replica left behind would be.
    let shown =
        rt.block_on(sandbox::ns_call(&sandbox_state, "ShowTable", json!({"db": "demo", "name": "double"}))).unwrap();
    let metas: Vec<String> = shown["table_info"][0]["table_partition"][0]["partition_meta"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["endpoint"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(metas.len(), 2, "{shown}");
    let extra = (1..=3).map(|n| sb.tablet(n)).find(|t| !metas.contains(t)).unwrap();
    let added = rt
        .block_on(sandbox::ns_call(
            &sandbox_state,
            "AddReplicaNS",
            json!({"db": "demo", "name": "double", "pid": 0, "endpoint": extra}),
        ))
        .unwrap();
    assert_eq!(added["code"], 0, "{added}");
    let done = sb.run(
        r#"wait::ops_done(0, "60s"); print(ns::partitions().filter(|r| r.table == "double" && r.pid == 0).len());"#,
    );
    assert_eq!(done.stdout.trim(), "3", "{}", done.stderr);
    std::thread::sleep(Duration::from_millis(500));

    let before = state(&sb);
    let rel = tempfile::tempdir().unwrap();
    let release = support::release(rel.path(), "0.9.3", &[]);
    let out = run_upgrade(&sb, release.to_str().unwrap(), &[]);
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("do not have their table's replica_num replicas"), "{}", out.stderr);
    assert!(out.stderr.contains("demo.double pid 0 has 3 replicas, replica_num is 2"), "{}", out.stderr);
    let after = state(&sb);
    assert_eq!(line(&after, "versions"), line(&before, "versions"), "nothing may change");
    assert_eq!(line(&after, "auto_failover"), "auto_failover true");
    assert_eq!(line(&after, "leaders"), line(&before, "leaders"));
}
