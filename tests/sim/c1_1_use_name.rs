//! C§1.1 with `--use_name=true`: servers started without `--endpoint` are known by the name in
//! `<data_dir>/name.txt` (src/cmd/openmldb.cc:105-132, src/base/server_name.h), registered in
//! `map/names` (src/zk/zk_client.cc:202-283); the nameserver lists names with their
//! `real_endpoint` (name_server_impl.cc:1354-1381) and tablets replicate to each other by name.

use std::time::Duration;

use serde_json::json;

use crate::support::{free_port, wait_for, SimCluster};

/// Spawns a named server on a fresh port of 127.0.0.1 with `data_dir`; returns its real
/// endpoint (the key of its process in the cluster).
fn spawn_named(cluster: &mut SimCluster, role: &str, data_dir: &std::path::Path) -> String {
    let port = free_port();
    let real = format!("127.0.0.1:{port}");
    let args = [
        "--endpoint=".to_string(),
        "--use_name=true".to_string(),
        format!("--port={port}"),
        "--sim_local_ip=127.0.0.1".to_string(),
        format!("--data_dir={}", data_dir.display()),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    cluster.spawn(role, &real, &args);
    real
}

async fn name_of(cluster: &SimCluster, real: &str) -> Option<String> {
    let client = cluster.zk_client().await;
    let root = format!("{}/map/names", cluster.root);
    for name in client.list_children(&root).await.ok()? {
        let (value, _) = client.get_data(&format!("{root}/{name}")).await.ok()?;
        if String::from_utf8_lossy(&value) == real {
            return Some(name);
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c1_1_use_name_servers_register_names_and_replicate_by_name() {
    let mut cluster = SimCluster::new("/c1_1_use_name");
    let dirs: Vec<_> = (0..3).map(|i| cluster.dir.path().join(format!("data-{i}"))).collect();
    let t1 = spawn_named(&mut cluster, "tablet", &dirs[0]);
    let t2 = spawn_named(&mut cluster, "tablet", &dirs[1]);
    let mut names = Vec::new();
    for real in [&t1, &t2] {
        let name = wait_for(&format!("{real} in map/names"), Duration::from_secs(15), || name_of(&cluster, real)).await;
        // The name is the first line of name.txt, a decimal id.
        assert!(name.parse::<i64>().is_ok(), "{name}");
        names.push(name);
    }
    let written = std::fs::read_to_string(dirs[0].join("name.txt")).unwrap();
    assert_eq!(written, format!("{}\n", names[0]));
    let client = cluster.zk_client().await;
    for name in &names {
        let (value, _) = client.get_data(&format!("{}/nodes/{name}", cluster.root)).await.expect("node by name");
        assert_eq!(String::from_utf8_lossy(&value), format!("startup_{name}"));
    }

    let ns = spawn_named(&mut cluster, "nameserver", &dirs[2]);
    let ns_name = wait_for("nameserver name", Duration::from_secs(15), || name_of(&cluster, &ns)).await;
    cluster.wait_leader(&ns).await;
    assert_eq!(cluster.zk_leader().await.as_deref(), Some(ns_name.as_str()), "the lock holds the name");
    let tablets = cluster.ns(&ns, "ShowTablet", json!({})).await;
    let listed: Vec<(String, String)> = tablets["tablets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["endpoint"].as_str().unwrap().to_string(), t["real_endpoint"].as_str().unwrap().to_string()))
        .collect();
    assert!(listed.contains(&(names[0].clone(), t1.clone())), "{tablets}");
    assert!(listed.contains(&(names[1].clone(), t2.clone())), "{tablets}");

    // Replicas are named; the leader replicates to its follower by name.
    cluster.create_table(&ns, "db", "t", 1, 2).await;
    let partitions = cluster.partitions(&ns, "db", "t").await;
    let metas = &partitions[0].1;
    let leader_name = metas.iter().find(|m| m.1).unwrap().0.clone();
    let follower_name = metas.iter().find(|m| !m.1).unwrap().0.clone();
    assert!(names.contains(&leader_name) && names.contains(&follower_name), "{metas:?}");
    let real_of = |name: &str| if name == names[0] { t1.clone() } else { t2.clone() };
    let tid = cluster.tid(&ns, "db", "t").await;
    let put = cluster
        .tablet(&real_of(&leader_name), "Put", json!({"tid": tid, "pid": 0, "pk": "k", "time": 1, "value": "v"}))
        .await;
    assert_eq!(put["code"], 0, "{put}");
    let follower = real_of(&follower_name);
    wait_for("the follower receives the row", Duration::from_secs(15), || async {
        let s = cluster.table_status(&follower, tid, 0).await?;
        (s["offset"].as_u64() == Some(1)).then_some(())
    })
    .await;

    // A second server with the same name.txt while the first runs is a duplicate and exits.
    let copy = cluster.dir.path().join("data-copy");
    std::fs::create_dir_all(&copy).unwrap();
    std::fs::copy(dirs[0].join("name.txt"), copy.join("name.txt")).unwrap();
    let dup = spawn_named(&mut cluster, "tablet", &copy);
    let process = cluster.procs.get_mut(&dup).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = process.child.try_wait().unwrap() {
            break status;
        }
        assert!(std::time::Instant::now() < deadline, "the duplicate kept running: {}", process.log_text());
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(!status.success(), "{status:?}");
    assert!(process.log_text().contains(&format!("server name:{} duplicate", names[0])), "{}", process.log_text());
}
