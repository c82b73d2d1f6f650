//! The domain operations an upgrade is made of: drain leaders from a tablet, restore them, recover
//! data, guard auto_failover, verify the cluster. Built on the NameServer and TabletServer RPCs
//! (C§2) and fixing the hazards of `tools/openmldb_ops.py` (O§5.11, C§6):
//!
//! - every move is journalled before it is made, so a killed run can be finished or undone;
//! - a leader only moves to a replica that has caught up (offsets compared on the tablets),
//!   and the old leader is fenced first (demoted on its tablet, then the candidate's offset
//!   checked against its final one), so no acknowledged write is lost to the switch (C§6
//!   hazards 5 and 6); writes refused during the switch are the client's to retry;
//! - ops are tracked by op id (ids above the `op_index` read before the call), and kFailed and
//!   kCanceled are failures; every wait has a timeout and polls adaptively;
//! - partitions move concurrently, bounded by a semaphore; the nameserver's queues
//!   (`pid % concurrency`, AddReplica in queue 0, C§3.3) decide the real parallelism;
//! - the temporary replica of a single-replica partition goes to the healthy tablet with the
//!   fewest replicas, counts updated as choices are made (O§5.11 item 17);
//! - restoring moves leadership back to exactly the recorded placement, only once the
//!   returning replica is loaded, alive and caught up, and deletes temporary replicas; a re-run
//!   finishes a partial run.
//!
//! Why per-partition ChangeLeader + RecoverTable and not the bulk OfflineEndpoint /
//! RecoverEndpoint(need_restore): the bulk ops choose leaders themselves (any follower with the
//! max offset, C§3.4), mark the tablet's replicas dead, and RecoverEndpoint's restore does not
//! wait for the returning replica to catch up; per-partition ops let us check offsets first,
//! record each move, and stay within the queues anyway. Above all, a bulk op switches leaders
//! when the nameserver gets to it, so the old leader cannot be fenced just before its own
//! switch: a tablet-wide fence would refuse writes to every partition it leads for the whole
//! drain.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, Semaphore};

use super::health::{wait_until, wait_until_polling, Check, WaitError};
use super::nameserver::{NameServerClient, NsError, OpStatus, TableInfo, TablePartition};
use super::tablet::{TabletClient, TabletError};
use crate::journal::{Journal, JournalError};

/// What to do with a single-replica partition whose tablet is about to stop (O§6.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SingleReplicaPolicy {
    /// Add a temporary replica elsewhere and move the leader to it.
    AddReplica,
    /// Leave it: the partition is unavailable while the tablet is down.
    AllowUnavailable,
}

impl std::str::FromStr for SingleReplicaPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "add_replica" => Ok(SingleReplicaPolicy::AddReplica),
            "allow_unavailable" => Ok(SingleReplicaPolicy::AllowUnavailable),
            other => Err(format!("single-replica policy `{other}`: expected add_replica or allow_unavailable")),
        }
    }
}

/// Knobs of drain and restore.
#[derive(Debug, Clone)]
pub struct MoveSettings {
    pub single_replica: SingleReplicaPolicy,
    /// How far (in log entries) a follower may lag and still take over; 0 means equal offsets.
    pub offset_delta: u64,
    /// How long to wait for a replica to catch up before giving up on that partition.
    pub catchup_timeout: Duration,
    /// How long one nameserver op may take.
    pub op_timeout: Duration,
    /// Partitions handled at once.
    pub concurrency: usize,
}

impl Default for MoveSettings {
    fn default() -> Self {
        MoveSettings {
            single_replica: SingleReplicaPolicy::AddReplica,
            offset_delta: 0,
            catchup_timeout: Duration::from_secs(120),
            op_timeout: Duration::from_secs(600),
            concurrency: 16,
        }
    }
}

/// One leader moved off a tablet, as recorded in the journal before it is made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaderMove {
    pub db: String,
    pub table: String,
    pub tid: u32,
    pub pid: u32,
    /// The tablet the leader was on (and returns to).
    pub from: String,
    /// The replica that leads while `from` is away.
    pub to: String,
    /// Set when `to` is a temporary replica added for a single-replica partition.
    pub temp_replica: bool,
    /// `planned`, `moved`, or `restored`.
    pub state: String,
}

/// A partition that stays on the drained tablet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skipped {
    pub db: String,
    pub table: String,
    pub pid: u32,
    pub reason: String,
}

/// What drain or restore did.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct MoveReport {
    pub tablet: String,
    pub moves: Vec<LeaderMove>,
    pub skipped: Vec<Skipped>,
    pub duration_ms: u64,
    pub dry_run: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum UpgradeError {
    #[error("{0}")]
    Ns(#[from] NsError),
    #[error("{0}")]
    Tablet(#[from] TabletError),
    #[error("{0}")]
    Journal(#[from] JournalError),
    #[error("{0}")]
    Wait(#[from] WaitError),
    #[error("auto_failover is on: the nameserver refuses leader moves while it is (code 301, C§2.3). Run the moves inside upgrade::with_auto_failover_off(...)")]
    AutoFailoverOn,
    #[error("{endpoint} is not a tablet the nameserver knows; known tablets: {known}")]
    UnknownTablet { endpoint: String, known: String },
    #[error("{db}.{table} pid {pid}: {reason}")]
    Partition { db: String, table: String, pid: u32, reason: String },
    #[error("{failed} of {total} partitions could not be moved:\n{details}\nMoves already made are in the journal; run upgrade::restore_leaders(\"{tablet}\") to undo them, or fix the cause and drain again")]
    Incomplete { tablet: String, failed: usize, total: usize, details: String },
}

/// Where a set of ops stands: an error naming the first kFailed/kCanceled op, waiting while
/// any is unfinished (listing them), done otherwise.
fn ops_progress(ops: &[OpStatus]) -> Result<Check<()>, String> {
    if let Some(bad) = ops.iter().find(|o| o.is_failure()) {
        return Err(format!(
            "op #{} {} of pid {} is {} at task {}; see `ns::ops()` and the nameserver log",
            bad.op_id,
            bad.op_type,
            bad.pid.unwrap_or_default(),
            bad.status,
            bad.task_type
        ));
    }
    let pending: Vec<String> =
        ops.iter().filter(|o| !o.is_finished()).map(|o| format!("#{} {} {}", o.op_id, o.op_type, o.status)).collect();
    Ok(if pending.is_empty() { Check::Done(()) } else { Check::Waiting(pending.join(", ")) })
}

fn partition_err(db: &str, table: &str, pid: u32, reason: impl Into<String>) -> UpgradeError {
    UpgradeError::Partition { db: db.into(), table: table.into(), pid, reason: reason.into() }
}

/// The upgrade operations of one cluster.
pub struct Upgrader {
    pub ns: Arc<NameServerClient>,
    pub tablets: TabletClient,
    pub journal: Arc<Journal>,
}

fn drain_key(tablet: &str) -> String {
    format!("drain/{tablet}")
}

fn fence_key(tid: u32, pid: u32) -> String {
    format!("fence/{tid}-{pid}")
}

/// The longest pause between two looks at a partition's ops.
const OP_POLL_MAX: Duration = Duration::from_millis(200);

/// RecoverEndpoint's `concurrency`: `name_server_task_max_concurrency`'s default (C§3.3, C§7).
const RECOVER_ENDPOINT_CONCURRENCY: u32 = 8;

/// How many times a fence is tried before the move of that partition is given up.
const FENCE_ATTEMPTS: u32 = 10;
/// How long after fencing the candidate may take to receive replication calls already sent.
const FENCE_SETTLE: Duration = Duration::from_millis(500);

/// A leader replica demoted on its tablet ahead of a ChangeLeader, journalled before the
/// demotion so that a killed run can lift it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Fence {
    pub db: String,
    pub table: String,
    pub tid: u32,
    pub pid: u32,
    /// The fenced leader.
    pub endpoint: String,
    /// Its term, to lead again with.
    pub term: u64,
    /// Its followers, to replicate to again.
    pub followers: Vec<String>,
}

impl Upgrader {
    pub fn new(ns: Arc<NameServerClient>, tablets: TabletClient, journal: Arc<Journal>) -> Self {
        Upgrader { ns, tablets, journal }
    }

    /// The upgrader of the cluster `config` describes, over `zk`; the journal is mirrored
    /// next to the config file (`.mldb-upgrade/journal.jsonl`).
    pub fn for_cluster(config: &crate::config::ClusterConfig, zk: Arc<crate::cluster::zk::Zk>) -> Self {
        let rpc = super::rpc::RpcClient::new(config.credentials.as_ref(), Duration::from_secs(10));
        let mirror = config.path.parent().map(|d| d.join(".mldb-upgrade/journal.jsonl"));
        Upgrader::new(
            Arc::new(NameServerClient::new(zk.clone(), rpc.clone())),
            TabletClient::new(rpc),
            Arc::new(Journal::new(zk, mirror)),
        )
    }

    // ------------------------------------------------------------------ auto_failover guard

    /// Turns auto_failover off, first recording the value found (or keeping the value recorded
    /// by an earlier run that never restored it). Returns the original value.
    pub async fn disable_auto_failover(&self) -> Result<bool, UpgradeError> {
        let original = match self.journal.get::<bool>("auto_failover").await? {
            Some(recorded) => recorded,
            None => self.ns.auto_failover().await?,
        };
        self.journal.put("auto_failover", &original).await?;
        if self.ns.auto_failover().await? {
            self.ns.set_auto_failover(false).await?;
        }
        Ok(original)
    }

    /// Puts auto_failover back to the recorded value and forgets the record; `None` when
    /// nothing was recorded (nothing to restore).
    pub async fn restore_auto_failover(&self) -> Result<Option<bool>, UpgradeError> {
        let Some(original) = self.journal.get::<bool>("auto_failover").await? else {
            return Ok(None);
        };
        if self.ns.auto_failover().await? != original {
            self.ns.set_auto_failover(original).await?;
        }
        self.journal.delete("auto_failover").await?;
        Ok(Some(original))
    }

    // ------------------------------------------------------------------ ops

    /// Ops created after `since` for one partition (op ids grow, C§3.2).
    async fn ops_since(&self, since: u64, db: &str, table: &str, pid: u32) -> Result<Vec<OpStatus>, NsError> {
        let ops = self.ns.show_op_status(Some(db), Some(table), Some(pid)).await?;
        Ok(ops.into_iter().filter(|o| o.op_id > since).collect())
    }

    /// Waits until every op created after `since` on the partition has finished; fails on
    /// kFailed/kCanceled. `expect_op` says an op must appear (else the call made none).
    async fn wait_partition_ops(
        &self,
        since: u64,
        db: &str,
        table: &str,
        pid: u32,
        what: &str,
        timeout: Duration,
    ) -> Result<Vec<OpStatus>, UpgradeError> {
        let label = format!("{what} on {db}.{table} pid {pid} (ops after #{since})");
        // The partition's next op is submitted as soon as this one is seen done, so the
        // nameserver's queues (C§3.3) never sit idle for long.
        let ops = wait_until_polling(&label, timeout, OP_POLL_MAX, || async {
            let ops = self.ops_since(since, db, table, pid).await.map_err(|e| e.to_string())?;
            Ok(match ops_progress(&ops)? {
                Check::Done(()) => Check::Done(ops),
                Check::Waiting(pending) => Check::Waiting(pending),
            })
        })
        .await?;
        Ok(ops)
    }

    /// The current offset of a replica, asked of its tablet (fresher than ShowTable's copy).
    async fn replica_offset(&self, endpoint: &str, tid: u32, pid: u32) -> Option<u64> {
        self.tablets
            .partition_status(endpoint, tid, pid)
            .await
            .ok()
            .flatten()
            .filter(|s| s.is_normal())
            .map(|s| s.offset)
    }

    /// Waits until `follower` has caught up with `leader` (within `delta`), C§3.5.
    async fn wait_caught_up(
        &self,
        table: &TableInfo,
        pid: u32,
        leader: &str,
        follower: &str,
        delta: u64,
        timeout: Duration,
    ) -> Result<(), UpgradeError> {
        let what = format!("{follower} to catch up with leader {leader} on {}.{} pid {pid}", table.db, table.name);
        wait_until(&what, timeout, || async {
            let lead = self.replica_offset(leader, table.tid, pid).await;
            let follow = self.replica_offset(follower, table.tid, pid).await;
            Ok(match (lead, follow) {
                (Some(l), Some(f)) if f + delta >= l => {
                    if f < l {
                        tracing::warn!(
                            "{follower} takes over {}.{} pid {pid} {} entries behind (offset_delta {delta})",
                            table.db,
                            table.name,
                            l - f
                        );
                    }
                    Check::Done(())
                }
                (l, f) => Check::Waiting(format!("leader offset {l:?}, follower offset {f:?}")),
            })
        })
        .await?;
        Ok(())
    }

    /// Moves the leader of `pid` from `old_leader` to `candidate` without losing an
    /// acknowledged write, then demotes the old leader through RecoverTable (C§3.5).
    ///
    /// A live ChangeLeader alone loses writes: the old leader keeps acknowledging writes from
    /// clients with stale routing after the followers' term was raised, and an explicit
    /// candidate is taken even when it lags (C§6 hazards 5 and 6). So the old leader is fenced
    /// first (see [`Upgrader::fence_leader`]); writes that reach it during the switch are
    /// refused with code 103 and the client retries them on the new leader once its routing
    /// follows `table/notify`.
    async fn move_leader(
        &self,
        table: &TableInfo,
        pid: u32,
        old_leader: &str,
        candidate: &str,
        settings: &MoveSettings,
    ) -> Result<(), UpgradeError> {
        self.switch_leader(table, pid, old_leader, candidate, settings).await?;
        self.demote(table, pid, old_leader, settings).await
    }

    /// The first half of [`Upgrader::move_leader`]: fence, then ChangeLeader. The old leader
    /// is left marked dead in the nameserver (and a follower on its tablet) until
    /// [`Upgrader::demote`] or [`Upgrader::demote_replaced`] re-adds it as a follower.
    async fn switch_leader(
        &self,
        table: &TableInfo,
        pid: u32,
        old_leader: &str,
        candidate: &str,
        settings: &MoveSettings,
    ) -> Result<(), UpgradeError> {
        let (db, name) = (table.db.as_str(), table.name.as_str());
        let fence = self.fence_leader(table, pid, old_leader, candidate, settings).await?;
        if let Err(e) = self.change_leader(table, pid, candidate, settings).await {
            // The old leader leads again if the nameserver still says it does.
            if let Err(unfence) = self.heal_fence(&fence).await {
                tracing::warn!("{db}.{name} pid {pid}: could not lift the fence on {old_leader}: {unfence}");
            }
            return Err(e);
        }
        self.journal.delete(&fence_key(table.tid, pid)).await?;
        Ok(())
    }

    /// RecoverTable of a replaced leader: it becomes an alive follower (C§3.5).
    async fn demote(
        &self,
        table: &TableInfo,
        pid: u32,
        old_leader: &str,
        settings: &MoveSettings,
    ) -> Result<(), UpgradeError> {
        let (db, name) = (table.db.as_str(), table.name.as_str());
        let since = self.ns.op_index().await?;
        match self.ns.recover_table(db, name, pid, old_leader).await {
            Ok(()) => {
                self.wait_partition_ops(since, db, name, pid, "RecoverTable", settings.op_timeout).await?;
            }
            // 311: the old leader is already alive as a follower (a re-run).
            Err(e) if e.code() == Some(311) => {}
            Err(e) => return Err(e.into()),
        }
        Ok(())
    }

    /// Re-adds as followers the replicas on `endpoint` that leader switches left marked dead;
    /// `switched` names those partitions as (tid, pid). When they are all the dead replicas
    /// the endpoint has, one RecoverEndpoint spreads their RecoverTable ops over 8 queues
    /// instead of the 2 that per-partition RecoverTable shares (C§3.3, C§3.4); when it has
    /// other dead replicas, which are not ours to touch, each of ours gets its own RecoverTable.
    /// Either way the op is the same RecoverTable, and the replicas were fenced before the
    /// switch, so no write reaches them meanwhile.
    async fn demote_replaced(
        &self,
        endpoint: &str,
        switched: &BTreeSet<(u32, u32)>,
        settings: &MoveSettings,
    ) -> Result<(), UpgradeError> {
        let (ours, others) = self.dead_replicas(endpoint, switched).await?;
        if ours.len() > 1 && others == 0 {
            let since = self.ns.op_index().await?;
            match self.ns.recover_endpoint(endpoint, false, RECOVER_ENDPOINT_CONCURRENCY).await {
                Ok(()) => {
                    let mut by_table: BTreeMap<u32, (TableInfo, BTreeSet<u32>)> = BTreeMap::new();
                    for (table, pid) in &ours {
                        by_table.entry(table.tid).or_insert_with(|| (table.clone(), BTreeSet::new())).1.insert(*pid);
                    }
                    let waits =
                        by_table.values().map(|(table, pids)| self.wait_table_ops(since, table, pids, settings));
                    for result in futures::future::join_all(waits).await {
                        result?;
                    }
                }
                Err(e) => {
                    tracing::warn!("RecoverEndpoint {endpoint} refused ({e}); recovering its replicas one by one")
                }
            }
        }
        // Whatever is still dead (all of it when RecoverEndpoint was not used).
        let (ours, _) = self.dead_replicas(endpoint, switched).await?;
        let semaphore = Semaphore::new(settings.concurrency.max(1));
        let results = futures::future::join_all(ours.iter().map(|(table, pid)| async {
            let _permit = semaphore.acquire().await;
            self.demote(table, *pid, endpoint, settings).await
        }))
        .await;
        results.into_iter().collect()
    }

    /// The replicas on `endpoint` marked dead: those of the `switched` partitions, and how many
    /// others.
    async fn dead_replicas(
        &self,
        endpoint: &str,
        switched: &BTreeSet<(u32, u32)>,
    ) -> Result<(Vec<(TableInfo, u32)>, usize), UpgradeError> {
        let mut ours = Vec::new();
        let mut others = 0;
        for table in self.ns.show_all_tables().await? {
            for p in &table.table_partition {
                if p.meta(endpoint).is_some_and(|m| !m.is_alive) {
                    if switched.contains(&(table.tid, p.pid)) {
                        ours.push((table.clone(), p.pid));
                    } else {
                        others += 1;
                    }
                }
            }
        }
        Ok((ours, others))
    }

    /// Waits until every op created after `since` on the `pids` of `table` has finished; fails
    /// on kFailed/kCanceled.
    async fn wait_table_ops(
        &self,
        since: u64,
        table: &TableInfo,
        pids: &BTreeSet<u32>,
        settings: &MoveSettings,
    ) -> Result<(), UpgradeError> {
        let (db, name) = (table.db.as_str(), table.name.as_str());
        let label = format!("RecoverTable ops of {} partitions of {db}.{name} (ops after #{since})", pids.len());
        wait_until_polling(&label, settings.op_timeout, OP_POLL_MAX, || async {
            let ops = self.ns.show_op_status(Some(db), Some(name), None).await.map_err(|e| e.to_string())?;
            let ops: Vec<OpStatus> =
                ops.into_iter().filter(|o| o.op_id > since && o.pid.is_some_and(|p| pids.contains(&p))).collect();
            ops_progress(&ops)
        })
        .await?;
        Ok(())
    }

    /// ChangeLeader to `candidate` and its op (C§3.5).
    async fn change_leader(
        &self,
        table: &TableInfo,
        pid: u32,
        candidate: &str,
        settings: &MoveSettings,
    ) -> Result<(), UpgradeError> {
        let (db, name) = (table.db.as_str(), table.name.as_str());
        let since = self.ns.op_index().await?;
        self.ns.change_leader(db, name, pid, candidate).await?;
        let ops = self.wait_partition_ops(since, db, name, pid, "ChangeLeader", settings.op_timeout).await?;
        // ChangeLeader answers OK without an op when no follower is on a healthy tablet (C§3.5).
        if !ops.iter().any(|o| o.op_type == "kChangeLeaderOP") {
            let led = self.partition(table, pid).await?.alive_leader().map(|m| m.endpoint.clone());
            if led.as_deref() != Some(candidate) {
                return Err(partition_err(db, name, pid, format!("the nameserver created no ChangeLeader op for {candidate} (no alive follower on a healthy tablet?)")));
            }
        }
        Ok(())
    }

    /// Stops `leader` from acknowledging writes for `pid` and checks that `candidate` holds
    /// every entry it acknowledged (within `offset_delta`).
    ///
    /// The fence is ChangeRole(follower) on the leader's tablet, the call RecoverTable itself
    /// makes (C§2.4, C§3.5). It also stops the leader's replication, so entries written just
    /// before it may never reach the candidate: when the candidate is short, the leader is
    /// promoted again with its own term and the fence is retried once the candidate has caught
    /// up. The fence is journalled before it is made; [`Upgrader::heal_fences`] lifts one a
    /// killed run left behind.
    pub async fn fence_leader(
        &self,
        table: &TableInfo,
        pid: u32,
        leader: &str,
        candidate: &str,
        settings: &MoveSettings,
    ) -> Result<Fence, UpgradeError> {
        let (db, name, tid) = (table.db.as_str(), table.name.as_str(), table.tid);
        let followers: Vec<String> = self
            .partition(table, pid)
            .await?
            .partition_meta
            .iter()
            .filter(|m| !m.is_leader)
            .map(|m| m.endpoint.clone())
            .collect();
        let term = self.tablets.term_pair(leader, tid, pid).await?.term;
        let fence = Fence { db: db.into(), table: name.into(), tid, pid, endpoint: leader.into(), term, followers };
        self.journal.put(&fence_key(tid, pid), &fence).await?;
        let fenced = async {
            for attempt in 1..=FENCE_ATTEMPTS {
                self.wait_caught_up(table, pid, leader, candidate, settings.offset_delta, settings.catchup_timeout)
                    .await?;
                self.tablets.demote(leader, tid, pid).await?;
                // The leader's offset is final now; replication calls already sent may still land.
                let caught_up =
                    self.wait_caught_up(table, pid, leader, candidate, settings.offset_delta, FENCE_SETTLE).await;
                if caught_up.is_ok() {
                    return Ok(());
                }
                tracing::debug!("{db}.{name} pid {pid}: {candidate} was short after fencing {leader} (attempt {attempt}); leading again and retrying");
                self.lead_again(&fence).await?;
            }
            Err(partition_err(
                db,
                name,
                pid,
                format!("{candidate} kept falling behind the writes to {leader} ({FENCE_ATTEMPTS} attempts); the leader is unchanged. Lower the write rate or allow a lag with offset_delta"),
            ))
        };
        match fenced.await {
            Ok(()) => Ok(fence),
            Err(e) => {
                // Whatever failed, the leader keeps leading.
                if let Err(unfence) = self.heal_fence(&fence).await {
                    tracing::warn!("{db}.{name} pid {pid}: could not lift the fence on {leader}: {unfence}");
                }
                Err(e)
            }
        }
    }

    /// ChangeRole(leader) with the fenced replica's own term and followers.
    async fn lead_again(&self, fence: &Fence) -> Result<(), UpgradeError> {
        match self.tablets.promote(&fence.endpoint, fence.tid, fence.pid, fence.term, &fence.followers).await {
            // 102: it leads already.
            Err(e) if e.code() != Some(102) => Err(e.into()),
            _ => Ok(()),
        }
    }

    /// Lifts a fence whose leader change did not happen: when the nameserver still names the
    /// fenced replica as the alive leader, it leads again with its own term and followers.
    /// When the leader did change, RecoverTable makes the fenced replica a follower (C§3.5)
    /// and the record is just dropped.
    async fn heal_fence(&self, fence: &Fence) -> Result<(), UpgradeError> {
        let partition = self
            .ns
            .show_table(&fence.db, &fence.table)
            .await?
            .and_then(|t| t.table_partition.into_iter().find(|p| p.pid == fence.pid));
        let still_leader =
            partition.as_ref().and_then(|p| p.alive_leader()).is_some_and(|m| m.endpoint == fence.endpoint);
        if still_leader {
            match self.lead_again(fence).await {
                // A tablet that is down loads the partition with the role the nameserver gives
                // it when it comes back (C§3.4, recover data).
                Err(UpgradeError::Tablet(TabletError::Rpc(e))) => {
                    tracing::warn!("fenced leader {} of {}.{} pid {} is not answering ({e}); it gets its role from the nameserver when it is recovered", fence.endpoint, fence.db, fence.table, fence.pid);
                }
                other => other?,
            }
        }
        self.journal.delete(&fence_key(fence.tid, fence.pid)).await?;
        Ok(())
    }

    /// Lifts every fence a killed run left behind (see [`Upgrader::heal_fence`]). Returns how
    /// many there were.
    pub async fn heal_fences(&self) -> Result<usize, UpgradeError> {
        let keys = self.journal.keys("fence").await?;
        for key in &keys {
            if let Some(fence) = self.journal.get::<Fence>(&format!("fence/{key}")).await? {
                tracing::info!(
                    "lifting the fence a stopped run left on {} for {}.{} pid {}",
                    fence.endpoint,
                    fence.db,
                    fence.table,
                    fence.pid
                );
                self.heal_fence(&fence).await?;
            }
        }
        Ok(keys.len())
    }

    // ------------------------------------------------------------------ drain

    /// The partitions `tablet` leads, with their tables.
    async fn led_partitions(&self, tablet: &str) -> Result<Vec<(TableInfo, TablePartition)>, UpgradeError> {
        let tables = self.ns.show_all_tables().await?;
        let mut led = Vec::new();
        for table in tables {
            for p in &table.table_partition {
                if p.alive_leader().is_some_and(|m| m.endpoint == tablet) {
                    led.push((table.clone(), p.clone()));
                }
            }
        }
        Ok(led)
    }

    async fn healthy_tablets(&self) -> Result<Vec<String>, UpgradeError> {
        Ok(self.ns.show_tablet().await?.into_iter().filter(|t| t.is_healthy()).map(|t| t.endpoint).collect())
    }

    /// Plans the moves off `tablet` without making them (dry run, or the first half of drain).
    pub async fn plan_drain(&self, tablet: &str, settings: &MoveSettings) -> Result<MoveReport, UpgradeError> {
        let all = self.ns.show_tablet().await?;
        if !all.iter().any(|t| t.endpoint == tablet) {
            let known = all.iter().map(|t| t.endpoint.as_str()).collect::<Vec<_>>().join(", ");
            return Err(UpgradeError::UnknownTablet { endpoint: tablet.into(), known });
        }
        let healthy: Vec<String> =
            all.iter().filter(|t| t.is_healthy() && t.endpoint != tablet).map(|t| t.endpoint.clone()).collect();
        // Replica counts per tablet, updated as temporary replicas are planned.
        let mut load: BTreeMap<String, usize> = healthy.iter().map(|t| (t.clone(), 0)).collect();
        for table in self.ns.show_all_tables().await? {
            for p in &table.table_partition {
                for m in &p.partition_meta {
                    if let Some(n) = load.get_mut(&m.endpoint) {
                        *n += 1;
                    }
                }
            }
        }
        let mut report = MoveReport { tablet: tablet.into(), ..MoveReport::default() };
        for (table, p) in self.led_partitions(tablet).await? {
            let followers: Vec<&str> = p
                .partition_meta
                .iter()
                .filter(|m| !m.is_leader && m.is_alive && healthy.contains(&m.endpoint))
                .map(|m| m.endpoint.as_str())
                .collect();
            let planned = |to: &str, temp: bool| LeaderMove {
                db: table.db.clone(),
                table: table.name.clone(),
                tid: table.tid,
                pid: p.pid,
                from: tablet.into(),
                to: to.into(),
                temp_replica: temp,
                state: "planned".into(),
            };
            if !followers.is_empty() {
                // The follower with the highest offset per the nameserver; re-checked on the
                // tablets before the move.
                let best = followers
                    .iter()
                    .max_by_key(|ep| p.meta(ep).and_then(|m| m.offset).unwrap_or(0))
                    .copied()
                    .unwrap_or(followers[0]);
                report.moves.push(planned(best, false));
                continue;
            }
            match settings.single_replica {
                SingleReplicaPolicy::AllowUnavailable => report.skipped.push(Skipped {
                    db: table.db.clone(),
                    table: table.name.clone(),
                    pid: p.pid,
                    reason: "single replica, policy allow_unavailable: unavailable while the tablet is down".into(),
                }),
                SingleReplicaPolicy::AddReplica => {
                    let target = load
                        .iter()
                        .filter(|(ep, _)| p.meta(ep).is_none())
                        .min_by_key(|(ep, n)| (**n, (*ep).clone()))
                        .map(|(ep, _)| ep.clone());
                    match target {
                        Some(target) => {
                            *load.entry(target.clone()).or_default() += 1;
                            report.moves.push(planned(&target, true));
                        }
                        None => report.skipped.push(Skipped {
                            db: table.db.clone(),
                            table: table.name.clone(),
                            pid: p.pid,
                            reason: "no other healthy tablet can take a temporary replica".into(),
                        }),
                    }
                }
            }
        }
        Ok(report)
    }

    /// Moves every leader off `tablet` (pre-upgrade). auto_failover must be off.
    pub async fn drain_leaders(&self, tablet: &str, settings: &MoveSettings) -> Result<MoveReport, UpgradeError> {
        let started = Instant::now();
        if self.ns.auto_failover().await? {
            return Err(UpgradeError::AutoFailoverOn);
        }
        self.heal_fences().await?;
        let mut report = self.plan_drain(tablet, settings).await?;
        if report.skipped.iter().any(|s| s.reason.starts_with("no other healthy")) {
            let s = report
                .skipped
                .iter()
                .find(|s| s.reason.starts_with("no other healthy"))
                .cloned()
                .unwrap_or_else(|| unreachable!());
            return Err(partition_err(&s.db, &s.table, s.pid, s.reason));
        }
        // Earlier moves of an interrupted drain stay recorded: the placement to restore is the
        // one before the first drain.
        let key = drain_key(tablet);
        let mut recorded: Vec<LeaderMove> = self.journal.get(&key).await?.unwrap_or_default();
        for m in &report.moves {
            if !recorded.iter().any(|r| r.tid == m.tid && r.pid == m.pid) {
                recorded.push(m.clone());
            }
        }
        self.journal.put(&key, &recorded).await?;
        let recorded = Arc::new(Mutex::new(recorded));
        let tables: HashMap<u32, TableInfo> =
            self.ns.show_all_tables().await?.into_iter().map(|t| (t.tid, t)).collect();
        let semaphore = Arc::new(Semaphore::new(settings.concurrency.max(1)));
        let results = futures::future::join_all(report.moves.iter().map(|m| {
            let semaphore = semaphore.clone();
            let recorded = recorded.clone();
            let table = tables.get(&m.tid).cloned();
            async move {
                let _permit = semaphore.acquire().await;
                let Some(table) = table else {
                    return Err(partition_err(&m.db, &m.table, m.pid, "the table disappeared"));
                };
                if m.temp_replica {
                    let since = self.ns.op_index().await?;
                    match self.ns.add_replica(&m.db, &m.table, m.pid, &m.to).await {
                        Ok(()) => {
                            self.wait_partition_ops(since, &m.db, &m.table, m.pid, "AddReplica", settings.op_timeout)
                                .await?;
                        }
                        // 317: the replica is already there (a re-run).
                        Err(e) if e.code() == Some(317) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
                self.switch_leader(&table, m.pid, &m.from, &m.to, settings).await?;
                let mut recorded = recorded.lock().await;
                if let Some(r) = recorded.iter_mut().find(|r| r.tid == m.tid && r.pid == m.pid) {
                    r.state = "moved".into();
                }
                self.journal.put(&drain_key(&m.from), &*recorded).await?;
                Ok::<(), UpgradeError>(())
            }
        }))
        .await;
        // The replaced leaders, all on `tablet`, become followers together (moves of an
        // interrupted earlier drain included).
        let switched: BTreeSet<(u32, u32)> = recorded.lock().await.iter().map(|m| (m.tid, m.pid)).collect();
        let demoted = self.demote_replaced(tablet, &switched, settings).await;
        let mut failures: Vec<String> =
            results.iter().filter_map(|r| r.as_ref().err().map(|e| format!("  - {e}"))).collect();
        if let Err(e) = demoted {
            failures.push(format!("  - re-adding the replaced leaders on {tablet} as followers: {e}"));
        }
        for (m, r) in report.moves.iter_mut().zip(&results) {
            if r.is_ok() {
                m.state = "moved".into();
            }
        }
        report.duration_ms = started.elapsed().as_millis() as u64;
        if !failures.is_empty() {
            return Err(UpgradeError::Incomplete {
                tablet: tablet.into(),
                failed: failures.len(),
                total: report.moves.len(),
                details: failures.join("\n"),
            });
        }
        Ok(report)
    }

    // ------------------------------------------------------------------ restore

    /// The moves recorded for `tablet` (empty when it was never drained or is restored).
    pub async fn recorded_moves(&self, tablet: &str) -> Result<Vec<LeaderMove>, UpgradeError> {
        Ok(self.journal.get(&drain_key(tablet)).await?.unwrap_or_default())
    }

    /// Tablets with a recorded drain that is not restored yet.
    pub async fn drained_tablets(&self) -> Result<Vec<String>, UpgradeError> {
        Ok(self.journal.keys("drain").await?)
    }

    /// Moves leadership back to `tablet` exactly as recorded and removes temporary replicas
    /// (post-upgrade). Idempotent. auto_failover must be off.
    pub async fn restore_leaders(&self, tablet: &str, settings: &MoveSettings) -> Result<MoveReport, UpgradeError> {
        let started = Instant::now();
        let moves = self.recorded_moves(tablet).await?;
        let mut report = MoveReport { tablet: tablet.into(), ..MoveReport::default() };
        if moves.is_empty() {
            return Ok(report);
        }
        if self.ns.auto_failover().await? {
            return Err(UpgradeError::AutoFailoverOn);
        }
        self.heal_fences().await?;
        let tables: HashMap<u32, TableInfo> =
            self.ns.show_all_tables().await?.into_iter().map(|t| (t.tid, t)).collect();
        let semaphore = Arc::new(Semaphore::new(settings.concurrency.max(1)));
        let results = futures::future::join_all(moves.iter().map(|m| {
            let semaphore = semaphore.clone();
            let table = tables.get(&m.tid).cloned();
            async move {
                let _permit = semaphore.acquire().await;
                let Some(table) = table else {
                    // The table was dropped meanwhile: nothing to restore.
                    return Ok(None);
                };
                self.restore_one(&table, m, settings).await
            }
        }))
        .await;
        // The interim leaders become followers, together per tablet.
        let mut replaced: BTreeMap<String, BTreeSet<(u32, u32)>> = BTreeMap::new();
        for (m, r) in moves.iter().zip(&results) {
            if let Ok(Some(interim)) = r {
                replaced.entry(interim.clone()).or_default().insert((m.tid, m.pid));
            }
        }
        let demoted = futures::future::join_all(
            replaced.iter().map(|(interim, switched)| self.demote_replaced(interim, switched, settings)),
        )
        .await;
        let mut failures: Vec<String> =
            results.iter().filter_map(|r| r.as_ref().err().map(|e| format!("  - {e}"))).collect();
        for (interim, result) in replaced.keys().zip(demoted) {
            if let Err(e) = result {
                failures.push(format!("  - re-adding the interim leaders on {interim} as followers: {e}"));
            }
        }
        report.moves = moves.clone();
        for (m, r) in report.moves.iter_mut().zip(&results) {
            if r.is_ok() {
                m.state = "restored".into();
            }
        }
        report.duration_ms = started.elapsed().as_millis() as u64;
        if !failures.is_empty() {
            return Err(UpgradeError::Incomplete {
                tablet: tablet.into(),
                failed: failures.len(),
                total: moves.len(),
                details: failures.join("\n"),
            });
        }
        self.journal.delete(&drain_key(tablet)).await?;
        Ok(report)
    }

    async fn partition(&self, table: &TableInfo, pid: u32) -> Result<TablePartition, UpgradeError> {
        self.ns
            .show_table(&table.db, &table.name)
            .await?
            .and_then(|t| t.table_partition.into_iter().find(|p| p.pid == pid))
            .ok_or_else(|| partition_err(&table.db, &table.name, pid, "partition not found"))
    }

    /// Moves one recorded leader home. Returns the interim leader it took over from when that
    /// one is left for [`Upgrader::demote_replaced`] (a temporary replica is demoted and
    /// deleted here).
    async fn restore_one(
        &self,
        table: &TableInfo,
        m: &LeaderMove,
        settings: &MoveSettings,
    ) -> Result<Option<String>, UpgradeError> {
        let (db, name, pid) = (table.db.as_str(), table.name.as_str(), m.pid);
        let home = m.from.as_str();
        // Ops a killed run left queued (an AddReplica, a ChangeLeader) finish first, so the state
        // looked at below is final and no temporary replica appears after it was checked.
        let what = format!("earlier ops on {db}.{name} pid {pid} to finish");
        wait_until(&what, settings.op_timeout, || async {
            let ops = self.ops_since(0, db, name, pid).await.map_err(|e| e.to_string())?;
            let pending: Vec<String> = ops
                .iter()
                .filter(|o| !o.is_finished())
                .map(|o| format!("#{} {} {}", o.op_id, o.op_type, o.status))
                .collect();
            Ok(if pending.is_empty() { Check::Done(()) } else { Check::Waiting(pending.join(", ")) })
        })
        .await?;
        let mut p = self.partition(table, pid).await?;
        let mut leader = p.alive_leader().map(|l| l.endpoint.clone());
        // A run killed between ChangeLeader and RecoverTable left the old leader marked dead
        // (C§3.5): finish its demotion first.
        if leader.as_deref().is_some_and(|l| l != home) && p.meta(home).is_some_and(|m| !m.is_alive) {
            let since = self.ns.op_index().await?;
            match self.ns.recover_table(db, name, pid, home).await {
                Ok(()) => {
                    self.wait_partition_ops(since, db, name, pid, "RecoverTable", settings.op_timeout).await?;
                }
                Err(e) if e.code() == Some(311) => {}
                Err(e) => return Err(e.into()),
            }
            p = self.partition(table, pid).await?;
            leader = p.alive_leader().map(|l| l.endpoint.clone());
        }
        if leader.as_deref() != Some(home) {
            // The returning replica must be alive in the nameserver's view and loaded (C§3.6).
            let what = format!("{home} to hold {db}.{name} pid {pid} alive and loaded");
            wait_until(&what, settings.catchup_timeout, || async {
                let p = self.partition(table, pid).await.map_err(|e| e.to_string())?;
                let alive = p.meta(home).is_some_and(|m| m.is_alive);
                let loaded = self.replica_offset(home, table.tid, pid).await.is_some();
                Ok(if alive && loaded {
                    Check::Done(())
                } else {
                    Check::Waiting(format!(
                        "alive in nameserver: {alive}, loaded on tablet: {loaded} (with auto_failover off, run upgrade::recover_data() after a restart)"
                    ))
                })
            })
            .await?;
            let current = leader.ok_or_else(|| partition_err(db, name, pid, "no alive leader to take over from"))?;
            if !m.temp_replica {
                self.switch_leader(table, pid, &current, home, settings).await?;
                return Ok(Some(current));
            }
            self.move_leader(table, pid, &current, home, settings).await?;
        }
        if !m.temp_replica {
            // A run stopped between the switch home and the demotion left the interim leader
            // marked dead.
            let p = self.partition(table, pid).await?;
            return Ok(p.meta(&m.to).filter(|meta| !meta.is_alive).map(|_| m.to.clone()));
        }
        // A temporary replica: demoted if a stopped run left it marked dead, then deleted.
        let mut p = self.partition(table, pid).await?;
        if p.meta(&m.to).is_some_and(|meta| !meta.is_alive) {
            // DelReplica refuses a replica flagged leader, even a dead one (C§2.3, 102).
            self.demote(table, pid, &m.to, settings).await?;
            p = self.partition(table, pid).await?;
        }
        if p.meta(&m.to).is_some() {
            let since = self.ns.op_index().await?;
            match self.ns.del_replica(db, name, pid, &m.to).await {
                Ok(()) => {
                    self.wait_partition_ops(since, db, name, pid, "DelReplica", settings.op_timeout).await?;
                }
                // 308: not on that endpoint any more (a re-run).
                Err(e) if e.code() == Some(308) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(None)
    }

    // ------------------------------------------------------------------ recover data

    /// The documented `recoverdata` (O§5.7), choosing the freshest replica as leader by offset
    /// (fixing C§6 bug 1). For every partition with a replica that is not alive or not loaded:
    /// the leader is the alive leader if its tablet has the partition loaded, else the replica
    /// on a healthy tablet with the highest offset, loaded and marked alive; every other
    /// replica is then rebuilt by RecoverTable. auto_failover must be off. Returns the
    /// partitions touched, per table.
    pub async fn recover_data(&self, timeout: Duration) -> Result<BTreeMap<String, usize>, UpgradeError> {
        if self.ns.auto_failover().await? {
            return Err(UpgradeError::AutoFailoverOn);
        }
        let healthy = self.healthy_tablets().await?;
        let mut loaded: HashMap<String, HashMap<(u32, u32), super::tablet::TableStatus>> = HashMap::new();
        for ep in &healthy {
            let statuses = self.tablets.table_status(ep).await?;
            loaded.insert(ep.clone(), statuses.into_iter().map(|s| ((s.tid, s.pid), s)).collect());
        }
        let is_loaded = |ep: &str, tid: u32, pid: u32| {
            loaded.get(ep).and_then(|m| m.get(&(tid, pid))).is_some_and(|s| s.is_normal())
        };
        let offset_of = |ep: &str, tid: u32, pid: u32, fallback: Option<u64>| {
            loaded.get(ep).and_then(|m| m.get(&(tid, pid))).map(|s| s.offset).or(fallback).unwrap_or(0)
        };
        let mut touched = BTreeMap::new();
        for table in self.ns.show_all_tables().await? {
            for p in &table.table_partition {
                let healthy_metas: Vec<_> = p.partition_meta.iter().filter(|m| healthy.contains(&m.endpoint)).collect();
                let needs = healthy_metas.iter().any(|m| !m.is_alive || !is_loaded(&m.endpoint, table.tid, p.pid));
                if !needs || healthy_metas.is_empty() {
                    continue;
                }
                let (db, name, pid) = (table.db.as_str(), table.name.as_str(), p.pid);
                let leader = match p.alive_leader().filter(|l| is_loaded(&l.endpoint, table.tid, pid)) {
                    Some(l) => l.endpoint.clone(),
                    None => {
                        let best = healthy_metas
                            .iter()
                            .max_by_key(|m| (offset_of(&m.endpoint, table.tid, pid, m.offset), m.is_leader))
                            .map(|m| m.endpoint.clone())
                            .unwrap_or_default();
                        if !is_loaded(&best, table.tid, pid) {
                            self.tablets.load_table_as_leader(&best, db, name, table.tid, pid).await?;
                            let what = format!("{best} to load {db}.{name} pid {pid}");
                            wait_until(&what, timeout, || async {
                                let s = self
                                    .tablets
                                    .partition_status(&best, table.tid, pid)
                                    .await
                                    .map_err(|e| e.to_string())?;
                                Ok(match s {
                                    Some(s) if s.is_normal() => Check::Done(()),
                                    Some(s) => Check::Waiting(s.state),
                                    None => Check::Waiting("not loaded".into()),
                                })
                            })
                            .await?;
                        }
                        if !p.meta(&best).is_some_and(|m| m.is_alive && m.is_leader) {
                            self.ns.update_table_alive(db, name, pid, &best, true).await?;
                        }
                        best
                    }
                };
                for m in &healthy_metas {
                    if m.endpoint == leader || (m.is_alive && is_loaded(&m.endpoint, table.tid, pid)) {
                        continue;
                    }
                    if m.is_alive {
                        self.ns.update_table_alive(db, name, pid, &m.endpoint, false).await?;
                    }
                    let since = self.ns.op_index().await?;
                    self.ns.recover_table(db, name, pid, &m.endpoint).await?;
                    self.wait_partition_ops(since, db, name, pid, "RecoverTable", timeout).await?;
                }
                *touched.entry(format!("{db}.{name}")).or_insert(0) += 1;
            }
        }
        Ok(touched)
    }

    // ------------------------------------------------------------------ waits

    /// Waits until `tablet` is registered, `kHealthy`, and every partition replica the
    /// nameserver places on it is alive, loaded and in the right mode.
    pub async fn wait_tablet_healthy(&self, tablet: &str, timeout: Duration) -> Result<(), UpgradeError> {
        let what = format!("tablet {tablet} to be healthy (registered, kHealthy, every partition loaded and alive)");
        wait_until(&what, timeout, || async {
            let registered = matches!(self.ns.zk().stat(&format!("nodes/{tablet}")).await, Ok(Some(_)));
            if !registered {
                return Ok(Check::Waiting(format!("no ZooKeeper node nodes/{tablet}")));
            }
            let state =
                self.ns.show_tablet().await.map_err(|e| e.to_string())?.into_iter().find(|t| t.endpoint == tablet);
            match state {
                Some(t) if t.is_healthy() => {}
                Some(t) => return Ok(Check::Waiting(format!("nameserver shows it {}", t.state))),
                None => return Ok(Check::Waiting("the nameserver does not list it".into())),
            }
            let loaded: HashMap<(u32, u32), super::tablet::TableStatus> = match self.tablets.table_status(tablet).await
            {
                Ok(list) => list.into_iter().map(|s| ((s.tid, s.pid), s)).collect(),
                Err(e) => return Ok(Check::Waiting(format!("GetTableStatus failed: {e}"))),
            };
            let tables = self.ns.show_all_tables().await.map_err(|e| e.to_string())?;
            let mut missing = Vec::new();
            for t in &tables {
                for p in &t.table_partition {
                    let Some(m) = p.meta(tablet) else { continue };
                    let problem = match loaded.get(&(t.tid, p.pid)) {
                        _ if !m.is_alive => Some("not alive"),
                        None => Some("not loaded"),
                        Some(s) if !s.is_normal() => Some("loading"),
                        Some(s) if s.is_leader() != m.is_leader => Some("mode differs from the nameserver"),
                        Some(_) => None,
                    };
                    if let Some(problem) = problem {
                        missing.push(format!("{}.{} pid {} {problem}", t.db, t.name, p.pid));
                    }
                }
            }
            Ok(if missing.is_empty() {
                Check::Done(())
            } else {
                let more = if missing.len() > 3 { format!(" and {} more", missing.len() - 3) } else { String::new() };
                Check::Waiting(format!("{}{more}", missing.into_iter().take(3).collect::<Vec<_>>().join(", ")))
            })
        })
        .await?;
        Ok(())
    }

    /// Waits until a nameserver leader is elected and answers; returns its endpoint.
    pub async fn wait_nameserver_leader(&self, timeout: Duration) -> Result<String, UpgradeError> {
        let leader = wait_until("a nameserver leader to be elected and answer", timeout, || async {
            let leader = match self.ns.discover_leader().await {
                Ok(l) => l,
                Err(e) => return Ok(Check::Waiting(e.to_string())),
            };
            Ok(match self.ns.show_tablet().await {
                Ok(_) => Check::Done(leader),
                Err(e) => Check::Waiting(format!("{leader}: {e}")),
            })
        })
        .await?;
        Ok(leader)
    }

    /// Waits until every op created after `since` has finished; fails on kFailed/kCanceled.
    pub async fn wait_ops_done(&self, since: u64, timeout: Duration) -> Result<usize, UpgradeError> {
        let what = format!("nameserver ops after #{since} to finish");
        let n = wait_until(&what, timeout, || async {
            let ops = self.ns.show_op_status(None, None, None).await.map_err(|e| e.to_string())?;
            let ops: Vec<_> = ops.into_iter().filter(|o| o.op_id > since).collect();
            if let Some(bad) = ops.iter().find(|o| o.is_failure()) {
                return Err(format!(
                    "op #{} {} on {}.{} pid {:?} is {}",
                    bad.op_id, bad.op_type, bad.db, bad.name, bad.pid, bad.status
                ));
            }
            let pending: Vec<String> = ops
                .iter()
                .filter(|o| !o.is_finished())
                .map(|o| format!("#{} {} {}", o.op_id, o.op_type, o.status))
                .collect();
            Ok(if pending.is_empty() { Check::Done(ops.len()) } else { Check::Waiting(pending.join(", ")) })
        })
        .await?;
        Ok(n)
    }

    /// Waits until the server at `endpoint` reports `version` on `/version` (X.Y.Z prefix).
    pub async fn wait_version(&self, endpoint: &str, version: &str, timeout: Duration) -> Result<String, UpgradeError> {
        let what = format!("{endpoint} to report version {version}");
        let found = wait_until(&what, timeout, || async {
            Ok(match self.tablets.version(endpoint).await {
                Ok(v) if v == version || v.starts_with(&format!("{version}-")) => Check::Done(v),
                Ok(v) => Check::Waiting(format!("it reports {v}")),
                Err(e) => Check::Waiting(e.to_string()),
            })
        })
        .await?;
        Ok(found)
    }

    // ------------------------------------------------------------------ verify

    /// A structured health report of the cluster.
    pub async fn verify(&self, since_op: u64) -> Result<VerifyReport, UpgradeError> {
        let mut report = VerifyReport::default();
        let tablets = self.ns.show_tablet().await?;
        report.unhealthy_tablets = tablets.iter().filter(|t| !t.is_healthy()).map(|t| t.endpoint.clone()).collect();
        let mut statuses: HashMap<String, HashMap<(u32, u32), super::tablet::TableStatus>> = HashMap::new();
        for t in tablets.iter().filter(|t| t.is_healthy()) {
            if let Ok(list) = self.tablets.table_status(&t.endpoint).await {
                statuses.insert(t.endpoint.clone(), list.into_iter().map(|s| ((s.tid, s.pid), s)).collect());
            }
        }
        for table in self.ns.show_all_tables().await? {
            let full = format!("{}.{}", table.db, table.name);
            let mut rows = 0;
            for p in &table.table_partition {
                for m in &p.partition_meta {
                    if !m.is_alive {
                        report.partitions_not_alive.push(format!("{full} pid {} on {}", p.pid, m.endpoint));
                        continue;
                    }
                    let Some(on_tablet) = statuses.get(&m.endpoint) else { continue };
                    match on_tablet.get(&(table.tid, p.pid)) {
                        None => report.mismatches.push(format!("{full} pid {} not loaded on {}", p.pid, m.endpoint)),
                        Some(s) if s.is_leader() != m.is_leader => report.mismatches.push(format!(
                            "{full} pid {} on {}: nameserver says {}, tablet says {}",
                            p.pid,
                            m.endpoint,
                            if m.is_leader { "leader" } else { "follower" },
                            s.mode
                        )),
                        Some(s) if !s.is_normal() => {
                            report.mismatches.push(format!("{full} pid {} on {} is {}", p.pid, m.endpoint, s.state))
                        }
                        Some(s) if m.is_leader => rows += s.record_cnt,
                        Some(_) => {}
                    }
                }
                if p.alive_leader().is_none() {
                    report.partitions_without_leader.push(format!("{full} pid {}", p.pid));
                }
            }
            report.rows.insert(full, rows);
        }
        for op in self.ns.show_op_status(None, None, None).await?.into_iter().filter(|o| o.op_id > since_op) {
            if op.is_failure() {
                report
                    .failed_ops
                    .push(format!("#{} {} {}.{} pid {:?} {}", op.op_id, op.op_type, op.db, op.name, op.pid, op.status));
            } else if !op.is_finished() {
                report
                    .pending_ops
                    .push(format!("#{} {} {}.{} pid {:?} {}", op.op_id, op.op_type, op.db, op.name, op.pid, op.status));
            }
        }
        report.healthy = report.unhealthy_tablets.is_empty()
            && report.partitions_not_alive.is_empty()
            && report.partitions_without_leader.is_empty()
            && report.mismatches.is_empty()
            && report.failed_ops.is_empty()
            && report.pending_ops.is_empty();
        Ok(report)
    }
}

/// What `verify` found.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct VerifyReport {
    pub healthy: bool,
    pub failed_ops: Vec<String>,
    pub pending_ops: Vec<String>,
    pub partitions_not_alive: Vec<String>,
    pub partitions_without_leader: Vec<String>,
    /// Leader/follower or load-state disagreements between the nameserver and the tablets.
    pub mismatches: Vec<String>,
    pub unhealthy_tablets: Vec<String>,
    /// Rows per table (`db.table`), counted on the leaders.
    pub rows: BTreeMap<String, u64>,
}
