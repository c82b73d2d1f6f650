//! Leader→follower replication, modelled on the real `LogReplicator` and `ReplicateNode`
//! (`src/replica/log_replicator.cc`, `src/replica/replicate_node.cc`), and the RPCs that
//! change who replicates to whom (ChangeRole, AddReplica, DelReplica) or receive the log
//! (AppendEntries).
//!
//! A leader replica runs one worker ("node") per follower. A node first asks the follower
//! for its offset (AppendEntries without entries), retrying every
//! `--binlog_match_logoffset_interval` (`ReplicateNode::MatchLogOffset`, `:99-108`). Then it
//! loops (`ReplicateNode::SyncData`, `:110-142` and `:175-297`): while it has sent everything
//! it waits for a notification or `--binlog_sync_wait_time`, whichever comes first; a Put
//! notifies only with `--binlog_notify_on_put` (`TabletImpl::Put`,
//! `src/tablet/tablet_impl.cc:861-865`), so by default new entries wait for the next wake-up.
//! With entries to send it sends at most `--binlog_sync_batch_size` of them and goes on at
//! once while more are waiting. A failed send (an error reply such as 122 from a follower
//! with a newer term, or no reply) is kept and sent again as it was after
//! `--binlog_coffee_time`. A successful send moves the node past the last entry it sent.
//! Simplified: an idle node does not wake on a timer; it sleeps until an entry is written and
//! then until its next `--binlog_sync_wait_time` tick, which sends each entry when a polling
//! node would (`replicate`).
//!
//! Nodes are created for the `replicas` of a leader's meta when it is created or loaded
//! (`StartSyncing`), by ChangeRole(leader) and by AddReplica; DelReplica stops one, and
//! ChangeRole(follower) and DropTable stop all (`LogReplicator::DelAllReplicateNode`,
//! `log_replicator.cc:417-437`): what they had not sent is never sent (a request already on
//! the wire still lands).

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::log::LogEntry;
use super::storage::{append_log, persist_meta};
use super::{Replica, Tablet};
use crate::sim::http;
use crate::sim::proto::{general, ok, Body, TableMode, TaskStatus};

impl Replica {
    /// `LogReplicator::DelAllReplicateNode`.
    pub(super) fn del_all_replicate_nodes(&mut self) {
        for (_, node) in std::mem::take(&mut self.nodes) {
            node.cancel();
        }
    }

    /// `LogReplicator::Notify`: wakes the nodes that wait for entries.
    pub(super) fn notify_nodes(&self) {
        self.notify.notify_waiters();
    }
}

impl Tablet {
    /// `StartSyncing`: a leader's nodes for the followers its meta lists.
    pub(super) fn start_replicate_nodes(self: &Arc<Self>, replica: &mut Replica) {
        if replica.mode() != TableMode::kTableLeader {
            return;
        }
        for follower in replica.meta.replicas.clone() {
            if self.add_replicate_node(replica, &follower) != 0 {
                break;
            }
        }
    }

    /// `LogReplicator::AddReplicateNode`: 1 when the endpoint has a node already, else 0 and a
    /// running node.
    fn add_replicate_node(self: &Arc<Self>, replica: &mut Replica, endpoint: &str) -> i32 {
        if replica.nodes.contains_key(endpoint) {
            return 1;
        }
        let stop = self.shutdown.child_token();
        replica.nodes.insert(endpoint.to_string(), stop.clone());
        if !replica.meta.replicas.iter().any(|r| r == endpoint) {
            replica.meta.replicas.push(endpoint.to_string());
        }
        let (tid, pid) = (replica.meta.tid, replica.meta.pid);
        let wake = Wake { notify: replica.notify.clone(), appended: replica.appended.clone() };
        tokio::spawn(replicate(self.clone(), tid, pid, endpoint.to_string(), stop, wake));
        0
    }

    /// ChangeRole (C§2.4, `TabletImpl::ChangeRole`, `src/tablet/tablet_impl.cc:2113-2200`).
    /// To leader: 102 when it leads already; takes the term and starts nodes for `replicas`
    /// (stopping at the first one that has a node). To follower: code 0 "table is follower"
    /// when it follows already; otherwise every node stops.
    pub(super) fn change_role(self: &Arc<Self>, body: &Body<'_>) -> Value {
        let (tid, pid) = Self::tid_pid(body);
        let mode = body.enum_name("mode", TableMode::ALL).and_then(|m| TableMode::from_name(&m));
        let mut state = self.lock();
        let replica = match Self::check_table(&mut state, tid, pid, false) {
            Ok(replica) => replica,
            Err(error) => return error,
        };
        if mode == Some(TableMode::kTableLeader) {
            if replica.mode() == TableMode::kTableLeader {
                return general(102, "table is leader");
            }
            replica.meta.mode = Some(TableMode::kTableLeader);
            replica.meta.term = body.u64("term").unwrap_or(replica.meta.term);
            replica.term = replica.meta.term;
            replica.meta.replicas.clear();
            for follower in body.str_list("replicas") {
                if self.add_replicate_node(replica, &follower) != 0 {
                    break;
                }
            }
        } else {
            if replica.mode() == TableMode::kTableFollower {
                return general(0, "table is follower");
            }
            replica.del_all_replicate_nodes();
            replica.meta.mode = Some(TableMode::kTableFollower);
            replica.meta.replicas.clear();
        }
        if persist_meta(&replica.dir, &replica.meta).is_err() {
            return general(127, "write data failed");
        }
        ok()
    }

    /// AddReplica (`TabletImpl::AddReplica`, `src/tablet/tablet_impl.cc:2202-2269`): the task
    /// first; 100, 103 on a follower; a node for `endpoint`, or 119 "replica endpoint already
    /// exists" when it has one (the task still counts as done). The table's state is not
    /// checked: a paused or snapshotting leader takes the replica.
    pub(super) fn add_replica(self: &Arc<Self>, body: &Body<'_>) -> Value {
        self.replica_change(body, true)
    }

    /// DelReplica (`TabletImpl::DelReplica`, `src/tablet/tablet_impl.cc:2271-2327`): like
    /// AddReplica; stopping a node that does not exist is code 0 "replica does not exist".
    pub(super) fn del_replica(self: &Arc<Self>, body: &Body<'_>) -> Value {
        self.replica_change(body, false)
    }

    fn replica_change(self: &Arc<Self>, body: &Body<'_>, add: bool) -> Value {
        let (tid, pid) = Self::tid_pid(body);
        let endpoint = body.str("endpoint").unwrap_or_default();
        let mut state = self.lock();
        let task = match Self::take_task(&mut state, body) {
            Ok(task) => task,
            Err(reply) => return reply,
        };
        let reply = match state.replicas.get_mut(&(tid, pid)) {
            None => Err(general(100, "table does not exist")),
            Some(r) if r.mode() == TableMode::kTableFollower => Err(general(103, "table is follower")),
            Some(replica) if add => match self.add_replicate_node(replica, &endpoint) {
                0 => Ok(ok()),
                _ => Ok(general(119, "replica endpoint already exists")),
            },
            Some(replica) => {
                replica.meta.replicas.retain(|r| r != &endpoint);
                match replica.nodes.remove(&endpoint) {
                    Some(node) => {
                        node.cancel();
                        Ok(ok())
                    }
                    None => Ok(general(0, "replica does not exist")),
                }
            }
        };
        let (status, reply) = match reply {
            Ok(reply) => (TaskStatus::kDone, reply),
            Err(reply) => (TaskStatus::kFailed, reply),
        };
        if let Some(replica) = state.replicas.get(&(tid, pid)) {
            let _ = persist_meta(&replica.dir, &replica.meta);
        }
        Self::finish_task_locked(&mut state, task.as_ref(), status);
        reply
    }

    /// AppendEntries (`TabletImpl::AppendEntries`, `src/tablet/tablet_impl.cc:2329-2398`): 100,
    /// 104 while loading, 102 on a leader, 122 for a request of an older term. Without entries
    /// and with `pre_log_index` 0 it is a node's first contact or the nameserver's
    /// FollowOfNoOne (C§2.4): it answers the offset and takes a newer term; requests with
    /// entries never change the term. Entries at or below the offset are skipped.
    pub(super) fn append_entries(&self, body: &Body<'_>) -> Value {
        let (tid, pid) = Self::tid_pid(body);
        let term = body.u64("term").unwrap_or(0);
        let entries: Vec<LogEntry> =
            body.raw("entries").and_then(|v| serde_json::from_value(v.clone()).ok()).unwrap_or_default();
        let mut state = self.lock();
        let replica = match Self::check_table(&mut state, tid, pid, false) {
            Ok(replica) => replica,
            Err(error) => return error,
        };
        if replica.mode() == TableMode::kTableLeader {
            return general(102, "table is leader");
        }
        if term < replica.term {
            return general(122, "fail to append entries to replicator");
        }
        // Only the probe without entries takes a newer term (`:2364-2374`).
        let probe = entries.is_empty() && body.u64("pre_log_index").unwrap_or(0) == 0;
        if probe && term > replica.term {
            replica.term = term;
        }
        let appended = replica.log.append(&entries);
        if !appended.is_empty() && append_log(&replica.dir, &appended).is_err() {
            return general(122, "fail to append entries to replicator");
        }
        json!({ "code": 0, "msg": "ok", "log_offset": replica.log.offset() })
    }
}

/// Sleeps `pause` unless `stop` comes first; false when stopped.
async fn pause(stop: &CancellationToken, pause: Duration) -> bool {
    tokio::select! {
        _ = stop.cancelled() => false,
        _ = tokio::time::sleep(pause) => true,
    }
}

/// What wakes a node that has sent everything.
struct Wake {
    /// `LogReplicator::Notify` (a Put with `--binlog_notify_on_put`): at once.
    notify: Arc<Notify>,
    /// Any entry written: at the node's next `--binlog_sync_wait_time` tick.
    appended: Arc<Notify>,
}

/// One node: a leader replica's replication to one follower, until `stop`.
///
/// A real idle node wakes every `--binlog_sync_wait_time` to look for entries. The simulator's
/// node sleeps until an entry is written instead and then waits for its next tick, counted
/// from when it started: entries reach the follower exactly when a polling node would send
/// them, and thousands of idle replicas cost no CPU.
async fn replicate(tablet: Arc<Tablet>, tid: u32, pid: u32, follower: String, stop: CancellationToken, wake: Wake) {
    let started = tokio::time::Instant::now();
    let next_tick = |period: Duration| {
        let period_ns = period.as_nanos().max(1);
        let into = started.elapsed().as_nanos() % period_ns;
        Duration::from_nanos((period_ns - into) as u64)
    };
    let flags = &tablet.flags;
    let path = "/TabletServer/AppendEntries";
    let term = || tablet.lock().replicas.get(&(tid, pid)).map(|r| r.term);
    // MatchLogOffset: the follower's offset is where sending starts.
    let mut last_sync = loop {
        let Some(term) = term() else { return };
        let request = json!({ "tid": tid, "pid": pid, "term": term, "pre_log_index": 0 });
        let address = tablet.peer_address(&follower).await;
        match tablet.peers.call(&address, path, &request, flags.request_timeout).await {
            Ok(reply) if http::reply_code(&reply) == 0 => {
                break reply.get("log_offset").and_then(Value::as_u64).unwrap_or(0);
            }
            _ if !pause(&stop, flags.binlog_match_logoffset_interval).await => return,
            _ => {}
        }
    };
    // SyncData: a failed request is kept and sent again as it was.
    let mut cached: Option<(Value, u64)> = None;
    let mut coffee = false;
    loop {
        if coffee {
            if !pause(&stop, flags.binlog_coffee_time).await {
                return;
            }
            coffee = false;
        }
        // Everything sent: wait for a Put's notification or the sync wait time.
        loop {
            let notified = wake.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let appended = wake.appended.notified();
            tokio::pin!(appended);
            appended.as_mut().enable();
            let leader_offset = match tablet.lock().replicas.get(&(tid, pid)) {
                Some(replica) => replica.log.offset(),
                None => return,
            };
            if last_sync < leader_offset {
                break;
            }
            // Biased: a Put with --binlog_notify_on_put tells both, and the notification wins.
            tokio::select! {
                biased;
                _ = stop.cancelled() => return,
                _ = &mut notified => {}
                _ = &mut appended => {
                    if !pause(&stop, next_tick(flags.binlog_sync_wait_time)).await {
                        return;
                    }
                }
            }
        }
        if stop.is_cancelled() {
            return;
        }
        let (request, last) = match cached.take() {
            Some((request, last)) if last > last_sync => (request, last),
            // A kept request the follower has already got is dropped, without a pause.
            Some(_) => continue,
            None => {
                let batch = {
                    let state = tablet.lock();
                    let Some(replica) = state.replicas.get(&(tid, pid)) else { return };
                    let entries = replica.log.entries_after(last_sync, flags.binlog_sync_batch_size.max(1));
                    entries.last().map(|e| e.log_index).map(|last| (replica.term, entries, last))
                };
                let Some((term, entries, last)) = batch else { continue };
                let request = json!({ "tid": tid, "pid": pid, "term": term, "pre_log_index": last_sync,
                                      "entries": entries });
                (request, last)
            }
        };
        let address = tablet.peer_address(&follower).await;
        match tablet.peers.call(&address, path, &request, flags.request_timeout).await {
            Ok(reply) if http::reply_code(&reply) == 0 => last_sync = last,
            _ => {
                cached = Some((request, last));
                coffee = true;
            }
        }
    }
}
