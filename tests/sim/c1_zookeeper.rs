//! C§1: election, registration, version reporting.

use std::time::Duration;

use serde_json::json;

use crate::support::{wait_for, SimCluster, SIM};

/// C§1.2: the first sorted `lock_request` child leads; a standby answers 300 to every RPC;
/// C§3.8: after the leader dies the standby takes over once the old session expires.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c1_2_standby_answers_300_and_takes_over_after_session_timeout() {
    let mut cluster = SimCluster::new("/c1_2_election");
    let tablet = cluster.start_tablet(&[]).await;
    let first = cluster.start_nameserver(&[]).await;
    wait_for("first nameserver leads", Duration::from_secs(10), || async {
        (cluster.ns(&first, "ShowTablet", json!({})).await["code"] == 0).then_some(())
    })
    .await;
    let second = cluster.start_nameserver(&[]).await;

    let client = cluster.zk_client().await;
    let mut children = client.list_children("/c1_2_election/leader").await.expect("leader children");
    children.sort();
    assert_eq!(children.len(), 2, "{children:?}");
    assert!(children.iter().all(|c| c.starts_with("lock_request") && c.len() == "lock_request".len() + 10));
    assert_eq!(cluster.zk_leader().await.as_deref(), Some(first.as_str()));

    for method in ["ShowTablet", "ShowTable", "ConfGet", "ShowOPStatus", "ShowDatabase"] {
        let reply = cluster.ns(&second, method, json!({})).await;
        assert_eq!(reply, json!({ "code": 300, "msg": "nameserver is not leader" }), "{method}");
    }
    let tablets = cluster.ns(&first, "ShowTablet", json!({})).await;
    assert_eq!(tablets["tablets"][0]["endpoint"], tablet.as_str());
    assert_eq!(tablets["tablets"][0]["state"], "kHealthy");

    // SIGTERM does not close the session: the lock node outlives the process (C§3.8).
    let exit = cluster.terminate(&first).expect("leader exits");
    assert!(exit.success(), "{exit:?}");
    assert_eq!(cluster.zk_leader().await.as_deref(), Some(first.as_str()), "old lock node lingers");
    let took_over = std::time::Instant::now();
    wait_for("standby becomes leader", Duration::from_secs(15), || async {
        (cluster.ns(&second, "ShowTablet", json!({})).await["code"] == 0).then_some(())
    })
    .await;
    assert!(took_over.elapsed() >= Duration::from_millis(500), "takeover waited for the session timeout");
    assert_eq!(cluster.zk_leader().await.as_deref(), Some(second.as_str()));
    let tablets = cluster.ns(&second, "ShowTablet", json!({})).await;
    assert_eq!(tablets["tablets"][0]["state"], "kHealthy");
}

/// C§1.2: a nameserver restarted before its old session expired leads again at once through
/// its own stale lock node (the same endpoint value).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c1_2_restarted_leader_reclaims_lock_through_stale_own_node() {
    let mut cluster = SimCluster::new("/c1_2_stale");
    cluster.start_tablet(&[]).await;
    let ns = cluster.start_leader(&["--zk_session_timeout=8000"]).await;
    let standby = cluster.start_nameserver(&["--zk_session_timeout=8000"]).await;
    cluster.terminate(&ns);
    cluster.spawn("nameserver", &ns, &["--zk_session_timeout=8000"]);
    // Well within the 8 s session timeout of the old node.
    wait_for("restarted nameserver leads via its stale node", Duration::from_secs(6), || async {
        let reply = cluster
            .http
            .post(format!("http://{ns}/NameServer/ShowTablet"))
            .header("Authorization", "x")
            .body("{}")
            .send()
            .await
            .ok()?;
        let value: serde_json::Value = reply.json().await.ok()?;
        (value["code"] == 0).then_some(())
    })
    .await;
    let client = cluster.zk_client().await;
    let children = client.list_children("/c1_2_stale/leader").await.expect("children");
    assert_eq!(children.len(), 3, "stale node, standby node, new node: {children:?}");
    assert_eq!(cluster.ns(&standby, "ShowTablet", json!({})).await["code"], 300);
}

/// C§1.3: a tablet registers `startup_<endpoint>`; restarted before the old session expired
/// it finds its node, opens its port anyway, and exits 1; after expiry it registers again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c1_3_fast_tablet_restart_exits_because_node_still_exists() {
    let mut cluster = SimCluster::new("/c1_3_fast_restart");
    let tablet = cluster.start_tablet(&["--zk_session_timeout=6000"]).await;
    let client = cluster.zk_client().await;
    let node = format!("/c1_3_fast_restart/nodes/{tablet}");
    let (value, stat) = client.get_data(&node).await.expect("node");
    assert_eq!(String::from_utf8_lossy(&value), format!("startup_{tablet}"));
    assert_ne!(stat.ephemeral_owner, 0, "registration node is ephemeral");

    let exit = cluster.terminate(&tablet).expect("tablet exits on SIGTERM");
    assert!(exit.success());
    assert!(client.check_stat(&node).await.expect("stat").is_some(), "node outlives the process");

    let process = cluster.spawn("tablet", &tablet, &["--zk_session_timeout=6000"]);
    let status = process.child.wait().expect("second tablet exits");
    assert_eq!(status.code(), Some(1));
    let log = process.log_text();
    assert!(log.contains("already registered"), "{log}");
    assert!(log.contains("start tablet on endpoint"), "port opened before registration: {log}");

    wait_for("old session expires", Duration::from_secs(15), || async {
        client.check_stat(&node).await.ok().flatten().is_none().then_some(())
    })
    .await;
    cluster.restart_tablet(&tablet, &["--zk_session_timeout=6000"]).await;
}

/// C§1.4 / O§4.1: `--version` prints the installed release's version (from `openmldb.version`
/// next to the executable) and the servers report it on `/version` and `/status`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c1_4_version_comes_from_the_installed_release() {
    let mut cluster = SimCluster::new("/c1_4_version");
    let bin = cluster.path().join("release/bin");
    std::fs::create_dir_all(&bin).expect("bin dir");
    let installed = bin.join("openmldb");
    if std::fs::hard_link(SIM, &installed).is_err() {
        std::fs::copy(SIM, &installed).expect("copy binary");
    }
    let output = std::process::Command::new(&installed).arg("--version").output().expect("run --version");
    assert!(output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.starts_with("openmldb version ") && text.trim().ends_with("-0000000"), "{text}");

    std::fs::write(bin.join("openmldb.version"), "0.9.3-c5ffa75\n").expect("version file");
    let output = std::process::Command::new(&installed).arg("--version").output().expect("run --version");
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "openmldb version 0.9.3-c5ffa75");

    // Launched the way start.sh does it: from the install root with a flagfile.
    let root = cluster.path().join("release");
    std::fs::create_dir_all(root.join("conf")).expect("conf");
    let endpoint = format!("127.0.0.1:{}", crate::support::free_port());
    let mut flagfile = format!(
        "--role=tablet\n--endpoint={endpoint}\n--db_root_path=./db\n--recycle_bin_root_path=./recycle\n# a comment\n\n"
    );
    flagfile.push_str("--some_flag_we_do_not_know=1\n");
    for flag in cluster.common_flags() {
        if !flag.starts_with("--enable_status_service") {
            flagfile.push_str(&format!("{flag}\n"));
        }
    }
    std::fs::write(root.join("conf/tablet.flags"), flagfile).expect("flagfile");
    let mut child = crate::support::SimProcess {
        child: std::process::Command::new(&installed)
            .current_dir(&root)
            .args(["--flagfile=./conf/tablet.flags", "--enable_status_service=true"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn"),
        log: root.join("none"),
    };
    let http = cluster.http.clone();
    let status = wait_for("/status answers", Duration::from_secs(10), || async {
        http.get(format!("http://{endpoint}/status")).send().await.ok()?.text().await.ok()
    })
    .await;
    assert!(status.contains("version: 0.9.3-c5ffa75\n"), "{status}");
    let version = http.get(format!("http://{endpoint}/version")).send().await.expect("version").text().await;
    assert_eq!(version.expect("text"), "0.9.3-c5ffa75");
    let health = http.get(format!("http://{endpoint}/health")).send().await.expect("health").text().await;
    assert_eq!(health.expect("text"), "OK");
    assert!(root.join("db").is_dir(), "relative db_root_path resolves against the install root");
    child.terminate();

    // Without --enable_status_service the page is disabled like OpenMLDB's brpc patch.
    let plain = cluster.start_tablet(&["--enable_status_service=false"]).await;
    let reply = http.get(format!("http://{plain}/status")).send().await.expect("status");
    assert_eq!(reply.status().as_u16(), 404);
}

/// C§1.2: a nameserver that wins the election while fewer tablets than
/// `--system_table_replica_num` are registered exits 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c1_2_leader_without_enough_tablets_exits() {
    let mut cluster = SimCluster::new("/c1_2_too_few");
    cluster.start_tablet(&[]).await;
    let endpoint = format!("127.0.0.1:{}", crate::support::free_port());
    let process = cluster.spawn("nameserver", &endpoint, &["--system_table_replica_num=2"]);
    let status = process.child.wait().expect("nameserver exits");
    assert_eq!(status.code(), Some(1));
    let log = process.log_text();
    assert!(log.contains("tablet num 1 is less then system table replica num 2"), "{log}");
}

/// C§1.3, `TabletImpl::CheckZkClient` and `ZkClient::Register` (zk_client.cc:178-199): after
/// ZooKeeper was down longer than the session timeout, a tablet reconnects with a new session;
/// its old node lingers until the restarted server expires the old session, so registering
/// fails (ZNODEEXISTS) and is retried every keep-alive interval until it succeeds. The
/// nameserver then sees the tablet healthy again, and the nameserver leader lock is held again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c1_3_after_a_zookeeper_outage_tablets_register_again_once_their_old_node_expires() {
    let mut cluster = SimCluster::new("/c1_3_outage");
    let tablet = cluster.start_tablet(&[]).await;
    let ns = cluster.start_leader(&[]).await;
    let port = cluster.zk.port();
    let dir = cluster.zk.dir().to_path_buf();
    cluster.zk.stop();
    // Longer than the 2 s session timeout of the fast flags: the clients give their sessions up.
    tokio::time::sleep(Duration::from_secs(5)).await;
    cluster.zk = mldb_upgrade::sandbox::zookeeper::ZooKeeperServer::start_on(&dir, Some(port)).expect("restarts");

    let node = format!("/c1_3_outage/nodes/{tablet}");
    let client = cluster.zk_client().await;
    wait_for("the tablet registers again with a new session", Duration::from_secs(30), || async {
        let (value, stat) = client.get_data(&node).await.ok()?;
        (String::from_utf8_lossy(&value) == tablet.as_str() && stat.ephemeral_owner != 0).then_some(())
    })
    .await;
    wait_for("the nameserver leads and lists the tablet healthy", Duration::from_secs(30), || async {
        let tablets = cluster.ns(&ns, "ShowTablet", json!({})).await;
        (tablets["tablets"][0]["state"] == "kHealthy").then_some(())
    })
    .await;
    assert_eq!(cluster.zk_leader().await.as_deref(), Some(ns.as_str()));
    let log = std::fs::read_to_string(cluster.glog_dir(&tablet).join("tablet.INFO")).unwrap_or_default();
    assert!(log.contains("reconnect zk"), "{log}");
    assert!(log.contains(&format!("register self with endpoint {tablet} ok")), "{log}");
}
