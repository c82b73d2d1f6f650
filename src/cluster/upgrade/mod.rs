//! The operations an upgrade is made of, one file each, named as an operator names them:
//!
//! | file | operation | follows |
//! |---|---|---|
//! | [`auto_failover`] | the auto_failover guard: turn it off, recorded; put it back | C§3.4, O§5.11 |
//! | [`drain`] | move every leader off a tablet (pre-upgrade) | O§6.1, C§3.5 |
//! | [`batch`] | tablets that may go down together: an alive replica of every partition stays outside | O§6.1, C§2.2 |
//! | [`fence`] | stop an old leader acknowledging writes before its switch | C§2.4, C§6 hazards 5-6 |
//! | [`switch`] | one leader switch: fence, then ChangeLeader | C§3.5 |
//! | [`queues`] | this run's ops in the nameserver's queues; a switch fences only when its ChangeLeader runs next | C§3.3 |
//! | [`snapshot`] | ops refused by a leader's scheduled snapshot, sent again | C§3.1, C§4 |
//! | [`follower`] | re-add replaced leaders as followers (RecoverTable / RecoverEndpoint) | C§3.4, C§3.5 |
//! | [`restore`] | move leaders back exactly as recorded, drop temporary replicas (post-upgrade) | O§6.1 |
//! | [`recover`] | the documented `recoverdata`, freshest replica first | O§5.7, C§6 bug 1 |
//! | [`baseline`] | the leaders' offsets and rows at pre-flight, compared by `verify` | C§3.5, C§2.4 |
//! | [`verify`] | a health report of the cluster | C§6 |
//! | [`abort`] | unwind a stopped run | DESIGN safety invariants |
//!
//! They fix the hazards of `tools/openmldb_ops.py` (O§5.11, C§6):
//!
//! - every move is journalled before it is made, so a killed run can be finished or undone;
//! - a leader only moves to a replica that has caught up (offsets compared on the tablets), and
//!   the old leader is fenced first, so no acknowledged write is lost to the switch; writes
//!   refused during the switch are the client's to retry;
//! - ops are tracked by op id (ids above the `op_index` read before the call), and kFailed and
//!   kCanceled are failures; every wait has a timeout and polls adaptively ([`super::wait`]);
//! - partitions move concurrently, bounded by a semaphore; the nameserver's queues
//!   (`pid % concurrency`, AddReplica in queue 0, C§3.3) decide the real parallelism;
//! - the temporary replica of a single-replica partition goes to the healthy tablet with the
//!   fewest replicas, counts updated as choices are made (O§5.11 item 17);
//! - restoring moves leadership back to exactly the recorded placement, only once the returning
//!   replica is loaded, alive and caught up, and deletes temporary replicas; a re-run finishes a
//!   partial run.
//!
//! Why per-partition ChangeLeader + RecoverTable and not the bulk OfflineEndpoint /
//! RecoverEndpoint(need_restore): the bulk ops choose leaders themselves (any follower with the
//! max offset, C§3.4), mark the tablet's replicas dead, and RecoverEndpoint's restore does not
//! wait for the returning replica to catch up; per-partition ops let us check offsets first,
//! record each move, and stay within the queues anyway. Above all, a bulk op switches leaders
//! when the nameserver gets to it, so the old leader cannot be fenced just before its own
//! switch: a tablet-wide fence would refuse writes to every partition it leads for the whole
//! drain.
//!
//! The journal keys these operations write: `auto_failover` (the value found before turning it
//! off), `drain/<tablet>` (the leader placement recorded before draining it, [`LeaderMove`]),
//! `fence/<tid>-<pid>` (a fenced leader, [`fence::Fence`]) and `baseline/<tid>` (a table's
//! leader offsets and rows at pre-flight, [`baseline::TableBaseline`]).

pub mod abort;
pub mod auto_failover;
pub mod baseline;
pub mod batch;
pub mod drain;
pub mod fence;
pub mod follower;
pub mod leave;
pub mod queues;
pub mod recover;
pub mod restore;
pub mod snapshot;
pub mod switch;
pub mod verify;

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::ns::{NsError, OpStatus, Partition, TableInfo, TablePartition};
use super::tablet::TabletError;
use super::wait::{OpsDone, WaitError};
use super::zk::Zk;
use super::Cluster;
use crate::journal::run::RunError;
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
    /// Tablets leadership and temporary replicas must not move to: the rest of the batch being
    /// upgraded with the drained tablet ([`batch`]).
    pub avoid: std::collections::BTreeSet<String>,
    /// Whether a drain re-adds the leaders it replaced as followers (one RecoverTable each,
    /// C§3.5) before it returns. False when the tablet is stopped right after the drain: the
    /// replaced leaders stay fenced (they refuse writes) and marked not alive, and the recover
    /// data after the restart rebuilds them with the tablet's other replicas. Re-adding them
    /// first only adds ops to the nameserver's queues whose work the stop throws away.
    pub readd_replaced: bool,
}

impl Default for MoveSettings {
    fn default() -> Self {
        MoveSettings {
            single_replica: SingleReplicaPolicy::AddReplica,
            offset_delta: 0,
            catchup_timeout: Duration::from_secs(120),
            op_timeout: Duration::from_secs(600),
            concurrency: 16,
            avoid: Default::default(),
            readd_replaced: true,
        }
    }
}

/// Where a recorded leader move stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MoveState {
    /// Recorded, not made yet.
    Planned,
    /// The leader is on `to`.
    Moved,
    /// The leader is back on `from`.
    Restored,
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
    pub state: MoveState,
    /// How long writes to the partition were refused by the last switch (fence to new leader
    /// recorded), in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stall_ms: Option<u64>,
    /// How many fences that switch raised (more than one when the candidate was short).
    #[serde(default)]
    pub fence_attempts: u32,
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

impl MoveReport {
    /// The longest time writes to one partition were refused by a switch of this report.
    pub fn longest_stall(&self) -> Option<&LeaderMove> {
        self.moves.iter().filter(|m| m.stall_ms.is_some()).max_by_key(|m| m.stall_ms)
    }

    /// Logs what the switches of a finished drain or restore cost writers.
    fn log_stalls(&self, what: &str) {
        let Some(worst) = self.longest_stall() else { return };
        let switched = self.moves.iter().filter(|m| m.stall_ms.is_some()).count();
        let refenced = self.moves.iter().filter(|m| m.fence_attempts > 1).count();
        tracing::info!(
            "{what} {switched} leader(s) of {} in {:.1}s; writes to one partition were refused for at most {} ms ({}.{} pid {}){}",
            self.tablet,
            self.duration_ms as f64 / 1000.0,
            worst.stall_ms.unwrap_or_default(),
            worst.db,
            worst.table,
            worst.pid,
            if refenced > 0 { format!("; {refenced} partition(s) needed more than one fence") } else { String::new() }
        );
    }

    /// Ends a drain or restore of `moves` with one result each: the moves that succeeded get
    /// `done`, the time taken is set, and any failure (a move's, or one of `more_failures`)
    /// makes the whole an [`UpgradeError::Incomplete`] that lists them all. `stats` reads the
    /// figures of a move's switch from its result, when it switched.
    fn settle<T>(
        &mut self,
        moves: Vec<LeaderMove>,
        results: &[Result<T, UpgradeError>],
        stats: impl Fn(&T) -> Option<switch::SwitchStats>,
        done: MoveState,
        more_failures: Vec<String>,
        started: std::time::Instant,
    ) -> Result<(), UpgradeError> {
        self.moves = moves;
        for (m, r) in self.moves.iter_mut().zip(results) {
            if let Ok(result) = r {
                m.state = done;
                if let Some(stats) = stats(result) {
                    stats.record(m);
                }
            }
        }
        self.duration_ms = started.elapsed().as_millis() as u64;
        let mut failures: Vec<String> =
            results.iter().filter_map(|r| r.as_ref().err()).map(|e| format!("  - {e}")).collect();
        failures.extend(more_failures.into_iter().map(|f| format!("  - {f}")));
        if failures.is_empty() {
            self.log_stalls(if done == MoveState::Moved { "moved" } else { "returned" });
            return Ok(());
        }
        Err(UpgradeError::Incomplete {
            tablet: self.tablet.clone(),
            failed: failures.len(),
            total: self.moves.len(),
            details: failures.join("\n"),
        })
    }
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
    #[error("{0}")]
    Run(#[from] RunError),
    #[error("auto_failover is on: the nameserver refuses leader moves while it is (code 301). Run the moves inside upgrade::with_auto_failover_off(...)")]
    AutoFailoverOn,
    #[error(
        "auto_failover stays off, as these tablets are down while they lead partitions: {tablets}. Turned on now, the nameserver \
         would make followers lead in their place, and those lack the last writes the dead leaders \
         acknowledged (replication is asynchronous, C§3.4): start the tablet(s) again and re-run the same \
         command (recover data keeps the freshest replica), or, to trade those writes for availability, \
         turn it on yourself (`ns::set_auto_failover(true)`) and run `mldb-upgrade abort`"
    )]
    AutoFailoverHeld { tablets: String },
    #[error(
        "a stopped run left these leaders fenced, and their partitions still have ops queued or running after \
         {secs} s: {fences}. The fences stay up (the leaders refuse writes): lifted now, a ChangeLeader the \
         stopped run queued could still switch the partition after the old leader took writes again, and \
         those writes would be lost. What to do: see the ops with `mldb-upgrade status`, wait for them to \
         finish (or cancel them in the nameserver), then re-run the same command"
    )]
    FencesLeft { fences: String, secs: u64 },
    #[error("{endpoint} is not a tablet the nameserver knows; known tablets: {known}")]
    UnknownTablet { endpoint: String, known: String },
    #[error("{partition}: {reason}")]
    Partition { partition: String, reason: String },
    #[error(
        "the tablets {batch} may no longer go down together: the placement changed since the batches were \
         planned, and {count} partition(s) would lose every alive replica:\n{details}\nNothing of this batch \
         was changed. What to do: find out why the placement changed (a failover, a replica moved by hand), \
         then re-run the same command with --set tablet_batches=replan to plan the remaining tablets' batches \
         again on the placement now (mldb-upgrade plan shows them), or with --set tablet_batches=one to take \
         them one at a time"
    )]
    UnsafeBatch { batch: String, count: usize, details: String },
    #[error("{failed} of {total} partitions could not be moved:\n{details}\nMoves already made are in the journal; run upgrade::restore_leaders(\"{tablet}\") to undo them, or fix the cause and drain again")]
    Incomplete { tablet: String, failed: usize, total: usize, details: String },
}

/// How long a partition's earlier ops may take to finish before the step that waits for them
/// leaves it as it is: a stale fence stays up, a temporary replica stays recorded.
const OPS_SETTLE: Duration = Duration::from_secs(30);

/// An error about one partition (`demo.double pid 3`).
fn partition_err(partition: impl std::fmt::Display, reason: impl Into<String>) -> UpgradeError {
    UpgradeError::Partition { partition: partition.to_string(), reason: reason.into() }
}

impl LeaderMove {
    /// The move of partition `pid` of `table` from `from` to `to`, in `state`, with no switch
    /// made by it yet.
    pub fn new(table: &TableInfo, pid: u32, from: &str, to: &str, temp_replica: bool, state: MoveState) -> Self {
        LeaderMove {
            db: table.db.clone(),
            table: table.name.clone(),
            tid: table.tid,
            pid,
            from: from.into(),
            to: to.into(),
            temp_replica,
            state,
            stall_ms: None,
            fence_attempts: 0,
        }
    }

    /// `db.table pid N`, as messages name the partition.
    pub fn partition(&self) -> String {
        format!("{}.{} pid {}", self.db, self.table, self.pid)
    }
}

/// The local mirror of a cluster's journal: `.mldb-upgrade/journal.jsonl` next to its config.
pub fn mirror_path(config: &crate::config::ClusterConfig) -> Option<std::path::PathBuf> {
    config.path.parent().map(|d| d.join(".mldb-upgrade/journal.jsonl"))
}

/// A change to one partition that the nameserver carries out as an op (C§3.3-3.5).
#[derive(Debug, Clone, Copy)]
enum PartitionOp<'a> {
    /// AddReplicaNS: a new replica on the endpoint (queue 0).
    AddReplica(&'a str),
    /// DelReplicaNS: the replica on the endpoint goes.
    DelReplica(&'a str),
    /// RecoverTable: the replica on the endpoint, marked dead, becomes an alive follower.
    RecoverTable(&'a str),
    /// ChangeLeader with the endpoint as candidate.
    ChangeLeader(&'a str),
}

/// How an op stands to its nameserver queue ([`queues`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Queue {
    /// It enters the queue once no leader switch holds it.
    Enter,
    /// The caller holds the queue for it: a leader switch's ChangeLeader.
    Reserved,
}

impl PartitionOp<'_> {
    /// The nameserver queue its op goes to (C§3.3): AddReplicaNS always queue 0, the others
    /// `pid % --name_server_task_concurrency`.
    fn queue(&self, pid: u32) -> usize {
        match self {
            PartitionOp::AddReplica(_) => 0,
            _ => queues::queue_of(pid, queues::TASK_CONCURRENCY),
        }
    }

    fn name(&self) -> &'static str {
        match self {
            PartitionOp::AddReplica(_) => "AddReplica",
            PartitionOp::DelReplica(_) => "DelReplica",
            PartitionOp::RecoverTable(_) => "RecoverTable",
            PartitionOp::ChangeLeader(_) => "ChangeLeader",
        }
    }

    /// The op the nameserver creates for it (C§3.1).
    fn op_type(&self) -> &'static str {
        match self {
            PartitionOp::AddReplica(_) => "kAddReplicaOP",
            PartitionOp::DelReplica(_) => "kDelReplicaOP",
            PartitionOp::RecoverTable(_) => "kRecoverTableOP",
            PartitionOp::ChangeLeader(_) => "kChangeLeaderOP",
        }
    }

    /// The tablet the change is about.
    fn endpoint(&self) -> &str {
        match self {
            PartitionOp::AddReplica(ep)
            | PartitionOp::DelReplica(ep)
            | PartitionOp::RecoverTable(ep)
            | PartitionOp::ChangeLeader(ep) => ep,
        }
    }

    /// Whether the partition already shows the change made.
    fn made_in(&self, p: &TablePartition) -> bool {
        match self {
            PartitionOp::AddReplica(ep) => p.meta(ep).is_some(),
            PartitionOp::DelReplica(ep) => p.meta(ep).is_none(),
            PartitionOp::RecoverTable(ep) => p.meta(ep).is_some_and(|m| m.is_alive && !m.is_leader),
            PartitionOp::ChangeLeader(ep) => p.alive_leader().is_some_and(|m| m.endpoint == *ep),
        }
    }

    /// The code the nameserver refuses the change with when it is already made (C§2.3): the
    /// replica is there (317), is not there (308), is already an alive follower (311).
    fn already_made(&self) -> Option<i64> {
        match self {
            PartitionOp::AddReplica(_) => Some(317),
            PartitionOp::DelReplica(_) => Some(308),
            PartitionOp::RecoverTable(_) => Some(311),
            PartitionOp::ChangeLeader(_) => None,
        }
    }
}

/// How long a request whose outcome is unknown is looked for in the nameserver's ops before it
/// is sent again: longer than the nameserver takes to create an op after it got the request.
const RECONCILE_WINDOW: Duration = Duration::from_secs(5);

/// The journal key of the leader placement recorded before draining `tablet`.
fn drain_key(tablet: &str) -> String {
    format!("drain/{tablet}")
}

/// The journal key of one recorded move off `tablet`.
fn move_key(tablet: &str, tid: u32, pid: u32) -> String {
    format!("drain/{tablet}/{tid}-{pid}")
}

/// Temporary replicas being added in the background ([`Upgrader::start_adding_temp_replicas`]),
/// by the tablet whose drain they are for.
type TempReplicasUnderWay =
    std::sync::Mutex<std::collections::HashMap<String, tokio::task::JoinHandle<Result<usize, String>>>>;

/// The upgrade operations of one cluster: its servers and the run journal. A clone shares the
/// journal, the queues and the work under way.
#[derive(Clone)]
pub struct Upgrader {
    pub cluster: Cluster,
    pub journal: Arc<Journal>,
    /// This run's ops in the nameserver's queues; a leader switch holds its queue
    /// ([`queues`]).
    queues: Arc<queues::OpQueues>,
    temp_replicas_under_way: Arc<TempReplicasUnderWay>,
}

impl Upgrader {
    pub fn new(cluster: Cluster, journal: Arc<Journal>) -> Self {
        Upgrader { cluster, journal, queues: Arc::default(), temp_replicas_under_way: Arc::default() }
    }

    /// The upgrader of the cluster `config` describes, over `zk`; the journal is mirrored
    /// next to the config file (`.mldb-upgrade/journal.jsonl`).
    pub fn for_cluster(config: &crate::config::ClusterConfig, zk: Arc<Zk>) -> Self {
        let mirror = mirror_path(config);
        Upgrader::new(Cluster::for_config(config, zk.clone()), Arc::new(Journal::new(zk, mirror)))
    }

    /// One partition as the nameserver has it now.
    async fn partition(&self, part: Partition<'_>) -> Result<TablePartition, UpgradeError> {
        self.cluster
            .ns
            .partition(part.db(), part.name(), part.pid)
            .await?
            .ok_or_else(|| partition_err(part, "partition not found"))
    }

    /// The endpoints of the tablets the nameserver shows `kHealthy`.
    async fn healthy_tablets(&self) -> Result<Vec<String>, UpgradeError> {
        Ok(self.cluster.ns.show_tablet().await?.into_iter().filter(|t| t.is_healthy()).map(|t| t.endpoint).collect())
    }

    /// Every table by tid.
    async fn tables_by_tid(&self) -> Result<std::collections::HashMap<u32, TableInfo>, UpgradeError> {
        Ok(self.cluster.ns.show_all_tables().await?.into_iter().map(|t| (t.tid, t)).collect())
    }

    /// Submits `op` for one partition and waits for the ops it creates: op ids above the
    /// `op_index` read before the call (C§3.2); kFailed or kCanceled fail. A change the
    /// nameserver says is already made (a re-run) has nothing to wait for. Returns the ops and
    /// how long they ran (kDoing, not queued).
    ///
    /// An op that failed at its first task because the partition's leader was making its
    /// scheduled snapshot (PauseSnapshot refuses a replica that is not kTableNormal,
    /// tablet_impl.cc:3058-3063) changed nothing: it is sent again once the snapshot is over,
    /// up to [`snapshot::PAUSE_SNAPSHOT_RETRIES`] times.
    async fn run_op(
        &self,
        part: Partition<'_>,
        op: PartitionOp<'_>,
        timeout: Duration,
    ) -> Result<OpsDone, UpgradeError> {
        self.run_op_in(part, op, Queue::Enter, timeout).await
    }

    /// [`Upgrader::run_op`], `queue` saying whether the op enters its nameserver queue
    /// ([`queues::OpQueues::enter`]) or the caller holds that queue for it (a leader switch).
    async fn run_op_in(
        &self,
        part: Partition<'_>,
        op: PartitionOp<'_>,
        queue: Queue,
        timeout: Duration,
    ) -> Result<OpsDone, UpgradeError> {
        let mut retries = 0;
        loop {
            let in_queue = match queue {
                Queue::Enter => Some(self.queues.enter(&[op.queue(part.pid)]).await),
                Queue::Reserved => None,
            };
            let since = self.cluster.ns.op_index().await?;
            let result = self.run_op_once(part, op, since, timeout).await;
            drop(in_queue);
            match result {
                Err(e) if retries < snapshot::PAUSE_SNAPSHOT_RETRIES => {
                    let Some(failed) = self.failed_at_pause_snapshot(part, since).await else { return Err(e) };
                    retries += 1;
                    self.wait_leader_snapshot_over(part, &failed, timeout).await?;
                }
                result => return result,
            }
        }
    }

    /// [`Upgrader::run_op`] once: `since` is the nameserver's op index read before submitting.
    async fn run_op_once(
        &self,
        part: Partition<'_>,
        op: PartitionOp<'_>,
        since: u64,
        timeout: Duration,
    ) -> Result<OpsDone, UpgradeError> {
        let ns = &self.cluster.ns;
        let before = self.infrastructure_now().await;
        let (db, name, pid) = (part.db(), part.name(), part.pid);
        let submit = || async {
            match op {
                PartitionOp::AddReplica(ep) => ns.add_replica(db, name, pid, ep).await,
                PartitionOp::DelReplica(ep) => ns.del_replica(db, name, pid, ep).await,
                PartitionOp::RecoverTable(ep) => ns.recover_table(db, name, pid, ep).await,
                PartitionOp::ChangeLeader(ep) => ns.change_leader(db, name, pid, ep).await,
            }
        };
        let mut submitted = submit().await;
        if matches!(&submitted, Err(e) if e.is_outcome_unknown()) {
            let e = submitted.as_ref().err().map(ToString::to_string).unwrap_or_default();
            tracing::warn!("{part}: {e}; reading the nameserver's ops and metadata before sending it again");
            if self.submission_landed(part, since, &op).await? {
                submitted = Ok(());
            } else {
                tracing::warn!("{part}: the nameserver shows no {} and no change; sending it again", op.name());
                submitted = submit().await;
            }
        }
        match submitted {
            Ok(()) => match self.cluster.wait_partition_ops(since, part, op.name(), timeout).await {
                Ok(done) => Ok(done),
                Err(e) => {
                    self.excuse_ops_failed_by_a_crash(part, since, &op, &before).await;
                    Err(e.into())
                }
            },
            Err(e) if e.code().is_some() && e.code() == op.already_made() => {
                Ok(OpsDone { ops: Vec::new(), running: Duration::ZERO })
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Our ZooKeeper session and the nameserver leader's lock node (`leader/lock_request<n>`,
    /// C§1.2: a new one after the leader lost its session, even when the same nameserver leads
    /// again), to tell after an op failed whether ZooKeeper or the nameserver went away while
    /// it ran.
    async fn infrastructure_now(&self) -> (u64, Option<String>) {
        let zk = self.cluster.zk();
        let lock_node = zk.children("leader").await.ok().and_then(|c| c.first().cloned());
        (zk.session_number(), lock_node)
    }

    /// After an op of this run failed: if a tablet it involved (a replica of the partition or
    /// the op's target) is down now, or ZooKeeper sessions expired or the nameserver leader
    /// changed while it ran (`before` is [`Upgrader::infrastructure_now`] at its submission:
    /// the nameserver that ran it lost its lock, C§1.2), the failure was the crash's doing, and
    /// the re-run deals with the crash (drain of a down tablet, recover data, a temporary
    /// replica added again). The op is recorded under [`verify::EXCUSED_OPS`], so the checks
    /// report it as a note instead of stopping every re-run on it; the partition itself is
    /// still checked as it is.
    async fn excuse_ops_failed_by_a_crash(
        &self,
        part: Partition<'_>,
        since: u64,
        op: &PartitionOp<'_>,
        before: &(u64, Option<String>),
    ) {
        let Ok(ops) = self.cluster.ns.ops_since(since, part.db(), part.name(), part.pid).await else { return };
        let failed: Vec<&OpStatus> = ops.iter().filter(|o| o.is_failure()).collect();
        if failed.is_empty() {
            return;
        }
        let mut involved: Vec<String> = match self.partition(part).await {
            Ok(p) => p.partition_meta.iter().map(|m| m.endpoint.clone()).collect(),
            Err(_) => Vec::new(),
        };
        involved.push(op.endpoint().to_string());
        let mut reason = None;
        for tablet in &involved {
            if self.is_down(tablet).await.unwrap_or(false) {
                reason = Some(format!("tablet {tablet} went down while it ran"));
                break;
            }
        }
        let now = self.infrastructure_now().await;
        if reason.is_none() && now.0 != before.0 {
            reason = Some("ZooKeeper sessions expired while it ran (a ZooKeeper outage)".to_string());
        }
        if reason.is_none() && now.1 != before.1 {
            reason = Some(format!(
                "the nameserver leader lost its lock while it ran (lock node {} -> {})",
                before.1.as_deref().unwrap_or("none"),
                now.1.as_deref().unwrap_or("none")
            ));
        }
        let Some(reason) = reason else { return };
        for failed in failed {
            let excused = verify::ExcusedOp { op: failed.to_string(), reason: reason.clone() };
            tracing::warn!("{part}: op {} failed: {reason}; the re-run recovers the partition", excused.op);
            let recorded = async {
                if self.journal.get::<serde_json::Value>(verify::EXCUSED_OPS).await?.is_none() {
                    self.journal.put(verify::EXCUSED_OPS, &serde_json::json!({})).await?;
                }
                self.journal.put(&format!("{}/{}", verify::EXCUSED_OPS, failed.op_id), &excused).await
            };
            if let Err(e) = recorded.await {
                tracing::warn!("{part}: could not record op {} as failed by a crash: {e}", failed.op_id);
            }
        }
    }

    /// After a request whose outcome is unknown: whether the nameserver took it, i.e. an op of
    /// its type on the partition appeared after `since` (op ids are handed out first, C§3.2),
    /// or the partition shows the change made. The nameserver may still be working on the
    /// request, so this looks for [`RECONCILE_WINDOW`] before it says no.
    async fn submission_landed(
        &self,
        part: Partition<'_>,
        since: u64,
        op: &PartitionOp<'_>,
    ) -> Result<bool, UpgradeError> {
        let ns = &self.cluster.ns;
        let deadline = std::time::Instant::now() + RECONCILE_WINDOW;
        loop {
            let ops = ns.ops_since(since, part.db(), part.name(), part.pid).await?;
            if ops.iter().any(|o| o.op_type == op.op_type()) {
                return Ok(true);
            }
            if op.made_in(&self.partition(part).await?) {
                return Ok(true);
            }
            if std::time::Instant::now() >= deadline {
                return Ok(false);
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Leader moves and restores need auto_failover off: with it on the nameserver refuses them
    /// (code 301, C§2.3) and would start its own failover when a tablet stops (C§3.4).
    async fn require_auto_failover_off(&self) -> Result<(), UpgradeError> {
        if self.cluster.ns.auto_failover().await? {
            return Err(UpgradeError::AutoFailoverOn);
        }
        Ok(())
    }
}
