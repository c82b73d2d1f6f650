//! The library API a sandbox launcher uses: `run_tablet` / `run_nameserver` on listeners
//! given from outside, stopped with a cancellation token.

use std::time::Duration;

use mldb_upgrade::sandbox::zookeeper::ZooKeeperServer;
use mldb_upgrade::sim::{run_nameserver, run_tablet, SimFlags};
use serde_json::json;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use zookeeper_client as zk;

use crate::support::wait_for;

async fn flags_for(listener: &TcpListener, zk: &ZooKeeperServer, root: &str, db: &std::path::Path) -> SimFlags {
    let endpoint = listener.local_addr().expect("addr").to_string();
    SimFlags::parse(
        [
            format!("--endpoint={endpoint}"),
            format!("--zk_cluster={}", zk.connect_string()),
            format!("--zk_root_path={root}"),
            "--zk_session_timeout=2000".to_string(),
            format!("--db_root_path={}", db.display()),
            format!("--recycle_bin_root_path={}", db.join("recycle").display()),
        ],
        db,
    )
    .expect("flags")
}

/// C§1.3 in-process: a stopped tablet leaves its ephemeral node until the session expires,
/// exactly like a killed process; a nameserver started the same way leads and sees it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c1_3_in_process_stop_keeps_the_session_until_timeout() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = ZooKeeperServer::start(&dir.path().join("zk")).expect("zk");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let flags = flags_for(&listener, &server, "/in_process", &dir.path().join("tablet")).await;
    let tablet = flags.endpoint.clone();
    let tablet_stop = CancellationToken::new();
    let tablet_task = tokio::spawn(run_tablet(listener, flags, "0.9.3-c5ffa75".to_string(), tablet_stop.clone()));

    let client = zk::Client::connect(&server.connect_string()).await.expect("client");
    let node = format!("/in_process/nodes/{tablet}");
    wait_for("registration", Duration::from_secs(10), || async { client.check_stat(&node).await.ok().flatten() }).await;

    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let flags = flags_for(&listener, &server, "/in_process", &dir.path().join("ns")).await;
    let ns = flags.endpoint.clone();
    let ns_stop = CancellationToken::new();
    let ns_task = tokio::spawn(run_nameserver(listener, flags, "0.9.3-c5ffa75".to_string(), ns_stop.clone()));
    let http = reqwest::Client::new();
    let tablets = wait_for("nameserver leads", Duration::from_secs(15), || async {
        let reply = http
            .post(format!("http://{ns}/NameServer/ShowTablet"))
            .header("Authorization", "sdefault")
            .body("{}")
            .send()
            .await
            .ok()?;
        let value: serde_json::Value = reply.json().await.ok()?;
        (value["code"] == 0).then_some(value)
    })
    .await;
    assert_eq!(
        tablets["tablets"],
        json!([{"endpoint": tablet, "state": "kHealthy", "age": tablets["tablets"][0]["age"]}])
    );

    tablet_stop.cancel();
    tablet_task.await.expect("join").expect("tablet stops cleanly");
    assert!(client.check_stat(&node).await.expect("stat").is_some(), "session not closed on stop");
    wait_for("session expiry removes the node", Duration::from_secs(10), || async {
        client.check_stat(&node).await.ok().flatten().is_none().then_some(())
    })
    .await;
    ns_stop.cancel();
    ns_task.await.expect("join").expect("nameserver stops cleanly");
}

/// C§1.1 ACL: with `--zk_cert` nodes are created CREATOR_ALL; a client without the digest
/// credential cannot read them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c1_1_zk_cert_makes_nodes_readable_only_with_the_credential() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = ZooKeeperServer::start(&dir.path().join("zk")).expect("zk");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let mut flags = flags_for(&listener, &server, "/secured", &dir.path().join("tablet")).await;
    flags.zk_cert = Some("openmldb:secret".to_string());
    let tablet = flags.endpoint.clone();
    let stop = CancellationToken::new();
    let task = tokio::spawn(run_tablet(listener, flags, "0.9.3-c5ffa75".to_string(), stop.clone()));
    let authed = zk::Client::connector()
        .with_auth("digest", b"openmldb:secret")
        .connect(&server.connect_string())
        .await
        .expect("authed client");
    let node = format!("/secured/nodes/{tablet}");
    let value = wait_for("registration", Duration::from_secs(10), || async {
        authed.get_data(&node).await.ok().map(|(data, _)| data)
    })
    .await;
    assert_eq!(value, format!("startup_{tablet}").into_bytes());
    let anonymous = zk::Client::connect(&server.connect_string()).await.expect("client");
    assert!(matches!(anonymous.get_data(&node).await, Err(zk::Error::NoAuth)));
    stop.cancel();
    task.await.expect("join").expect("clean stop");
}
