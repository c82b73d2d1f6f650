//! The replicator's timing (`src/replica/replicate_node.cc`, `src/replica/log_replicator.cc`,
//! flags `src/flags.cc:90-98`), seen from a recording follower: a leader tablet (the real
//! simulator process) replicates to an in-test `TabletServer` that answers AppendEntries and
//! notes when each request came and what it carried.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mldb_upgrade::sim::http::{self, Authenticator, HttpConfig, RpcError, RpcFuture, RpcService};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::support::{wait_for, SimCluster};

/// One AppendEntries the follower received.
#[derive(Debug, Clone)]
struct Received {
    at: Instant,
    term: u64,
    pre_log_index: u64,
    /// log_index of each entry.
    entries: Vec<u64>,
    /// Answered with code 0.
    accepted: bool,
}

#[derive(Default)]
struct Recorder {
    received: Vec<Received>,
    offset: u64,
    /// Codes to answer the next data requests (entries present) with, in order.
    refuse: Vec<i64>,
}

/// A follower `TabletServer` that only answers AppendEntries.
struct Follower(Mutex<Recorder>);

impl RpcService for Follower {
    fn short_name(&self) -> &'static str {
        "TabletServer"
    }

    fn full_name(&self) -> &'static str {
        "openmldb.api.TabletServer"
    }

    fn call(self: Arc<Self>, method: String, body: Value, _attachment: Vec<u8>) -> RpcFuture {
        Box::pin(async move {
            if method != "AppendEntries" {
                return Err(RpcError::NoMethod(method));
            }
            let mut recorder = self.0.lock().expect("recorder");
            let entries: Vec<u64> = body["entries"]
                .as_array()
                .map(|es| es.iter().filter_map(|e| e["log_index"].as_u64()).collect())
                .unwrap_or_default();
            let refused =
                if entries.is_empty() || recorder.refuse.is_empty() { None } else { Some(recorder.refuse.remove(0)) };
            recorder.received.push(Received {
                at: Instant::now(),
                term: body["term"].as_u64().unwrap_or(0),
                pre_log_index: body["pre_log_index"].as_u64().unwrap_or(0),
                entries: entries.clone(),
                accepted: refused.is_none(),
            });
            if let Some(code) = refused {
                return Ok(json!({ "code": code, "msg": "refused by the test" }));
            }
            for index in entries {
                if index == recorder.offset + 1 {
                    recorder.offset = index;
                }
            }
            Ok(json!({ "code": 0, "msg": "ok", "log_offset": recorder.offset }))
        })
    }
}

impl Follower {
    fn received(&self) -> Vec<Received> {
        self.0.lock().expect("recorder").received.clone()
    }

    /// The data requests (with entries) so far.
    fn batches(&self) -> Vec<Received> {
        self.received().into_iter().filter(|r| !r.entries.is_empty()).collect()
    }

    fn refuse_next(&self, codes: &[i64]) {
        self.0.lock().expect("recorder").refuse.extend_from_slice(codes);
    }
}

/// Starts a recording follower; returns its endpoint.
async fn follower(stop: &CancellationToken) -> (String, Arc<Follower>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let endpoint = listener.local_addr().expect("addr").to_string();
    let follower = Arc::new(Follower(Mutex::new(Recorder::default())));
    let config = Arc::new(HttpConfig {
        version: "0.9.2".to_string(),
        enable_status_service: false,
        authenticator: Authenticator { skip_grant_tables: true },
        started: Instant::now(),
    });
    tokio::spawn(http::serve(listener, follower.clone(), config, stop.clone()));
    (endpoint, follower)
}

const TID: u64 = 31;

/// A leader tablet started with `flags`, leading tid 31 pid 0 (term 5) with `follower` as
/// its only replica; returns once the node's first contact reached the follower.
async fn leader(cluster: &mut SimCluster, flags: &[&str], endpoint: &str, follower: &Follower) -> String {
    let leader = cluster.start_tablet(flags).await;
    let meta = json!({ "tid": TID, "pid": 0, "name": "t", "db": "db", "mode": "kTableLeader", "term": 5,
                       "replicas": [endpoint], "storage_mode": "kMemory" });
    let created = cluster.tablet(&leader, "CreateTable", json!({ "table_meta": meta })).await;
    assert_eq!(created["code"], 0, "{created}");
    wait_for("first contact", Duration::from_secs(5), || async { (!follower.received().is_empty()).then_some(()) })
        .await;
    leader
}

async fn put(cluster: &SimCluster, leader: &str, key: &str) {
    let reply = cluster.tablet(leader, "Put", json!({ "tid": TID, "pid": 0, "pk": key, "value": key })).await;
    assert_eq!(reply["code"], 0, "{reply}");
}

/// When the follower accepted entry `index`.
async fn arrival(follower: &Follower, index: u64) -> Instant {
    wait_for(&format!("entry {index} replicated"), Duration::from_secs(10), || async {
        follower.batches().iter().find(|b| b.accepted && b.entries.contains(&index)).map(|b| b.at)
    })
    .await
}

/// `ReplicateNode::MatchLogOffset` (`replicate_node.cc:99-108,154-173`): a node's first
/// request carries the leader's term, `pre_log_index` 0 and no entries. `SyncData`
/// (`:110-142`): with `--binlog_notify_on_put=false` (the default, `src/flags.cc:91`) a node
/// that has sent everything looks again only after `--binlog_sync_wait_time`, so an entry
/// written right after a send waits that long.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replication_with_notify_off_waits_binlog_sync_wait_time() {
    let stop = CancellationToken::new();
    let (endpoint, follower) = follower(&stop).await;
    let mut cluster = SimCluster::new("/replicator_wait");
    let leader = leader(&mut cluster, &["--binlog_sync_wait_time=1500"], &endpoint, &follower).await;
    let first = follower.received()[0].clone();
    assert_eq!((first.term, first.pre_log_index, first.entries.len()), (5, 0, 0), "{first:?}");

    put(&cluster, &leader, "k1").await;
    let sent = arrival(&follower, 1).await;
    // The node has just sent entry 1 and waits again: entry 2 goes a wait time later.
    put(&cluster, &leader, "k2").await;
    let next = arrival(&follower, 2).await;
    let gap = next - sent;
    assert!(gap >= Duration::from_millis(1300) && gap < Duration::from_millis(2600), "{gap:?}");
    let batches = follower.batches();
    assert_eq!(
        batches.iter().map(|b| (b.pre_log_index, b.entries.clone())).collect::<Vec<_>>(),
        [(0, vec![1]), (1, vec![2])]
    );
    stop.cancel();
}

/// `TabletImpl::Put` notifies the replicator with `--binlog_notify_on_put`
/// (`src/tablet/tablet_impl.cc:861-865`, `LogReplicator::Notify`): the waiting node sends at
/// once, whatever `--binlog_sync_wait_time` says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replication_with_notify_on_put_sends_at_once() {
    let stop = CancellationToken::new();
    let (endpoint, follower) = follower(&stop).await;
    let mut cluster = SimCluster::new("/replicator_notify");
    let flags = ["--binlog_notify_on_put=true", "--binlog_sync_wait_time=10000"];
    let leader = leader(&mut cluster, &flags, &endpoint, &follower).await;
    for (index, key) in [(1, "k1"), (2, "k2"), (3, "k3")] {
        let written = Instant::now();
        put(&cluster, &leader, key).await;
        let lag = arrival(&follower, index).await - written;
        assert!(lag < Duration::from_millis(1500), "entry {index} took {lag:?}");
    }
    stop.cancel();
}

/// `ReplicateNode::SyncData` (`replicate_node.cc:209-210`): at most
/// `--binlog_sync_batch_size` entries per request, and the next request goes at once while
/// entries wait (`:117-130` only waits when everything is sent).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replication_sends_batches_of_binlog_sync_batch_size_back_to_back() {
    let stop = CancellationToken::new();
    let (endpoint, follower) = follower(&stop).await;
    let mut cluster = SimCluster::new("/replicator_batch");
    let flags = ["--binlog_sync_batch_size=4", "--binlog_sync_wait_time=2000"];
    let leader = leader(&mut cluster, &flags, &endpoint, &follower).await;
    put(&cluster, &leader, "k0").await;
    arrival(&follower, 1).await;
    // The node waits 2 s now: ten entries pile up.
    for i in 1..=10 {
        put(&cluster, &leader, &format!("k{i}")).await;
    }
    arrival(&follower, 11).await;
    let batches: Vec<Received> = follower.batches().into_iter().skip(1).collect();
    let shape: Vec<(u64, Vec<u64>)> = batches.iter().map(|b| (b.pre_log_index, b.entries.clone())).collect();
    assert_eq!(shape, [(1, vec![2, 3, 4, 5]), (5, vec![6, 7, 8, 9]), (9, vec![10, 11])]);
    let spread = batches[2].at - batches[0].at;
    assert!(spread < Duration::from_millis(500), "back to back, not a wait apart: {spread:?}");
    stop.cancel();
}

/// A failed send is cached and sent again unchanged after `--binlog_coffee_time`
/// (`replicate_node.cc:113-116,186-201,285-291`); entries written meanwhile follow in the
/// next request. A first contact that fails is retried every
/// `--binlog_match_logoffset_interval` (`:99-108`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replication_resends_a_failed_batch_unchanged_after_binlog_coffee_time() {
    let stop = CancellationToken::new();
    let (endpoint, follower) = follower(&stop).await;
    let mut cluster = SimCluster::new("/replicator_coffee");
    let flags = ["--binlog_notify_on_put=true", "--binlog_coffee_time=1200"];
    let leader = leader(&mut cluster, &flags, &endpoint, &follower).await;
    follower.refuse_next(&[122]);
    put(&cluster, &leader, "k1").await;
    let refused =
        wait_for("the refused request", Duration::from_secs(5), || async { follower.batches().first().cloned() }).await;
    put(&cluster, &leader, "k2").await;
    let resent = arrival(&follower, 1).await;
    arrival(&follower, 2).await;
    let batches = follower.batches();
    assert_eq!((batches[0].entries.clone(), batches[0].accepted), (vec![1], false));
    assert_eq!((batches[1].pre_log_index, batches[1].entries.clone()), (0, vec![1]), "the same request again");
    assert_eq!((batches[2].pre_log_index, batches[2].entries.clone()), (1, vec![2]));
    let pause = resent - refused.at;
    assert!(pause >= Duration::from_millis(1100) && pause < Duration::from_millis(2500), "{pause:?}");
    stop.cancel();
}

/// ChangeRole(follower) stops every node the way `LogReplicator::DelAllReplicateNode` does
/// (`src/tablet/tablet_impl.cc:2180-2191`, `log_replicator.cc:417-437`): entries not sent by
/// then are never sent. ChangeRole(leader) starts fresh nodes that first ask the follower's
/// offset with the new term.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn change_role_to_follower_drops_the_nodes_and_their_unsent_entries() {
    let stop = CancellationToken::new();
    let (endpoint, follower) = follower(&stop).await;
    let mut cluster = SimCluster::new("/replicator_demote");
    let leader = leader(&mut cluster, &["--binlog_sync_wait_time=1500"], &endpoint, &follower).await;
    put(&cluster, &leader, "k1").await;
    arrival(&follower, 1).await;
    put(&cluster, &leader, "k2").await;
    let demoted =
        cluster.tablet(&leader, "ChangeRole", json!({ "tid": TID, "pid": 0, "mode": "kTableFollower" })).await;
    assert_eq!(demoted["code"], 0, "{demoted}");
    let requests = follower.received().len();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(follower.received().len(), requests, "no request after the demotion");
    assert!(follower.batches().iter().all(|b| !b.entries.contains(&2)), "entry 2 was never sent");

    let promoted = cluster
        .tablet(
            &leader,
            "ChangeRole",
            json!({ "tid": TID, "pid": 0, "mode": "kTableLeader", "term": 6,
                                              "replicas": [endpoint] }),
        )
        .await;
    assert_eq!(promoted["code"], 0, "{promoted}");
    arrival(&follower, 2).await;
    let after: Vec<Received> = follower.received().into_iter().skip(requests).collect();
    assert_eq!((after[0].term, after[0].pre_log_index, after[0].entries.len()), (6, 0, 0), "{after:?}");
    assert_eq!((after[1].pre_log_index, after[1].entries.clone()), (1, vec![2]), "from the follower's offset");
    stop.cancel();
}
