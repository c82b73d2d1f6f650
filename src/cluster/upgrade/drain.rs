//! Drain: moving every leader off a tablet before it stops (the documented pre-upgrade, O§6.1).
//! Multi-replica partitions switch to their most caught-up follower on a healthy tablet;
//! single-replica ones get a temporary replica on the healthy tablet with the fewest replicas
//! (AddReplica, C§3.3), or stay when the policy allows them to be unavailable. Every move is
//! journalled before it is made; the replaced leaders are re-added as followers together, unless
//! the tablet stops next ([`MoveSettings::readd_replaced`]).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use futures::StreamExt;

use super::{
    move_key, partition_err, LeaderMove, MoveReport, MoveSettings, MoveState, PartitionOp, SingleReplicaPolicy,
    Skipped, UpgradeError, Upgrader,
};
use crate::cluster::ns::{Partition, TableInfo, TablePartition};
use crate::cluster::wait::{wait_until, Check};
use crate::timing::{self, Sample};

/// Why a single-replica partition cannot be drained: nowhere to put its temporary replica.
const NO_TABLET_FOR_TEMP_REPLICA: &str = "no other healthy tablet can take a temporary replica";
/// How long a dropped copy may stay listed on its tablet ([`Upgrader::drop_unlisted_copy`]).
const DROP_WAIT: Duration = Duration::from_secs(30);

/// Why a partition cannot be drained with `avoid`: its other alive replicas all go down too.
const EVERY_REPLICA_IN_BATCH: &str =
    "its other alive replicas are all on tablets of the same batch (avoid); it would have no replica left to lead";

impl Upgrader {
    /// The partitions `tablet` leads, with their tables.
    fn led_partitions<'a>(tables: &'a [TableInfo], tablet: &str) -> Vec<(&'a TableInfo, &'a TablePartition)> {
        let mut led = Vec::new();
        for table in tables {
            for p in &table.table_partition {
                if p.alive_leader().is_some_and(|m| m.endpoint == tablet) {
                    led.push((table, p));
                }
            }
        }
        led
    }

    /// Plans the moves off `tablet` without making them (dry run, or the first half of drain).
    pub async fn plan_drain(&self, tablet: &str, settings: &MoveSettings) -> Result<MoveReport, UpgradeError> {
        let all = self.cluster.ns.show_tablet().await?;
        let known: Vec<String> = all.iter().map(|t| t.endpoint.clone()).collect();
        Self::require_known(&[tablet.to_string()], &known)?;
        let healthy: Vec<String> = all
            .iter()
            .filter(|t| t.is_healthy() && t.endpoint != tablet && !settings.avoid.contains(&t.endpoint))
            .map(|t| t.endpoint.clone())
            .collect();
        // Replica counts per tablet, updated as temporary replicas are planned.
        let mut load: BTreeMap<String, usize> = healthy.iter().map(|t| (t.clone(), 0)).collect();
        let tables = self.cluster.ns.show_all_tables().await?;
        for table in &tables {
            for m in table.table_partition.iter().flat_map(|p| &p.partition_meta) {
                if let Some(n) = load.get_mut(&m.endpoint) {
                    *n += 1;
                }
            }
        }
        let all_healthy: BTreeSet<&str> = all.iter().filter(|t| t.is_healthy()).map(|t| t.endpoint.as_str()).collect();
        let mut report = MoveReport { tablet: tablet.into(), ..MoveReport::default() };
        for (table, p) in Self::led_partitions(&tables, tablet) {
            let planned = |to: &str, temp_replica: bool| {
                LeaderMove::new(table, p.pid, tablet, to, temp_replica, MoveState::Planned)
            };
            let skipped = |reason: &str| Skipped {
                db: table.db.clone(),
                table: table.name.clone(),
                pid: p.pid,
                reason: reason.into(),
            };
            // The follower with the highest offset per the nameserver; re-checked on the tablets
            // before the move.
            let best_follower = p
                .partition_meta
                .iter()
                .filter(|m| !m.is_leader && m.is_alive && healthy.contains(&m.endpoint))
                .max_by_key(|m| m.offset.unwrap_or(0));
            if let Some(follower) = best_follower {
                report.moves.push(planned(&follower.endpoint, false));
                continue;
            }
            let alive_in_batch = p.partition_meta.iter().any(|m| {
                !m.is_leader
                    && m.is_alive
                    && settings.avoid.contains(&m.endpoint)
                    && all_healthy.contains(m.endpoint.as_str())
            });
            if alive_in_batch {
                report.skipped.push(skipped(EVERY_REPLICA_IN_BATCH));
                continue;
            }
            match settings.single_replica {
                SingleReplicaPolicy::AllowUnavailable => report
                    .skipped
                    .push(skipped("single replica, policy allow_unavailable: unavailable while the tablet is down")),
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
                        None => report.skipped.push(skipped(NO_TABLET_FOR_TEMP_REPLICA)),
                    }
                }
            }
        }
        Ok(report)
    }

    /// True when `tablet` is offline for the nameserver or does not answer.
    pub(super) async fn is_down(&self, tablet: &str) -> Result<bool, UpgradeError> {
        let listed_healthy =
            self.cluster.ns.show_tablet().await?.iter().any(|t| t.endpoint == tablet && t.is_healthy());
        Ok(!listed_healthy || self.cluster.tablets.loaded_partitions(tablet).await.is_err())
    }

    /// The drain of a tablet that is down (it crashed while this run was upgrading it): nothing
    /// can move off it without risking writes only it has. Partitions the nameserver's failover
    /// already moved (it leads them no more, C§3.4) are recorded as moved, so that restore
    /// brings them home; those it still leads come back when it restarts, from the freshest
    /// replica (recover data).
    async fn drain_down_tablet(&self, tablet: &str, started: Instant) -> Result<MoveReport, UpgradeError> {
        let mut report = MoveReport { tablet: tablet.into(), ..MoveReport::default() };
        for table in self.cluster.ns.show_all_tables().await? {
            for p in &table.table_partition {
                if !p.meta(tablet).is_some_and(|m| m.is_leader) {
                    continue;
                }
                match p.alive_leader().filter(|l| l.endpoint != tablet) {
                    Some(interim) => report.moves.push(LeaderMove::new(
                        &table,
                        p.pid,
                        tablet,
                        &interim.endpoint,
                        false,
                        MoveState::Moved,
                    )),
                    None => report.skipped.push(Skipped {
                        db: table.db.clone(),
                        table: table.name.clone(),
                        pid: p.pid,
                        reason: format!("led by {tablet}, which is down: it leads again from the freshest replica after its restart (recover data)"),
                    }),
                }
            }
        }
        tracing::warn!(
            "tablet {tablet} is down: no leader is moved off it; {} partition(s) the nameserver moved off it are \
             recorded for restore, {} come back when it restarts",
            report.moves.len(),
            report.skipped.len()
        );
        let recorded = self.record_moves(tablet, &report.moves).await?;
        report.moves = recorded;
        report.duration_ms = started.elapsed().as_millis() as u64;
        Ok(report)
    }

    /// Before adding a temporary replica again: an AddReplica of this run that was cut off
    /// (its op failed at kSendSnapshot or later, the nameserver lost its leadership, ...) can
    /// leave the partition loaded on `to`, and `to` among the leader's replicate nodes, without
    /// the nameserver listing it there. The next AddReplica would fail on them forever (SendData
    /// refuses an existing table, C§3.2; the leader's AddReplica answers "replica endpoint
    /// already exists", `LogReplicator::AddReplicateNode`), so both, which only this run's
    /// earlier attempt can have made, go first (DelReplica on the leader, DropTable on `to`).
    async fn drop_leftover_copy(&self, part: Partition<'_>, to: &str, timeout: Duration) -> Result<(), UpgradeError> {
        let p = self.partition(part).await?;
        if p.meta(to).is_some() {
            return Ok(());
        }
        self.drop_unlisted_copy(part, to, timeout, || {
            tracing::warn!(
                "{part}: {to} holds a copy the nameserver does not list, left by this run's interrupted AddReplica; dropping it before adding the temporary replica again"
            )
        })
        .await
    }

    /// Drops the copy of a partition on `to`, which its metadata no longer lists, as
    /// DelReplica's kDelReplica and kDropTable tasks would (C§3.1): the alive leader's
    /// replicate node for it goes, then the copy on `to` (`before_drop` runs first when there
    /// is one), waited for until it is gone.
    pub(super) async fn drop_unlisted_copy(
        &self,
        part: Partition<'_>,
        to: &str,
        timeout: Duration,
        before_drop: impl FnOnce(),
    ) -> Result<(), UpgradeError> {
        let p = self.partition(part).await?;
        let tablets = &self.cluster.tablets;
        if let Some(leader) = p.alive_leader() {
            tablets.del_replicate_node(&leader.endpoint, part.tid(), part.pid, to).await?;
        }
        if tablets.partition_status(to, part.tid(), part.pid).await?.is_none() {
            return Ok(());
        }
        before_drop();
        tablets.drop_table(to, part.tid(), part.pid).await?;
        let what = format!("{to} to drop its leftover copy of {part}");
        // A tablet removes the replica from its tables before it moves the files, and only once
        // it found the recycle bin of the storage mode (`TabletImpl::DeleteTableInternal`,
        // tablet_impl.cc:3409-3446): one still listed after this long was not dropped.
        let dropped = wait_until(&what, timeout.min(DROP_WAIT), || async {
            Ok(match tablets.partition_status(to, part.tid(), part.pid).await {
                Ok(None) => Check::Done(()),
                Ok(Some(s)) => Check::Waiting(format!("still {}", s.state)),
                Err(e) => return Err(format!("{to} does not answer ({e}); is it running?")),
            })
        });
        dropped.await.map_err(|e| {
            partition_err(
                part,
                format!("{e}; without a recycle bin root for the table's storage mode a tablet does not drop tables (set --recycle_bin_root_path or drop it by hand), then re-run"),
            )
        })
    }

    /// Adds the temporary replicas a drain of `tablet` would add for its partitions with a
    /// single replica (AddReplica, C§3.3), recorded as that drain's moves, without moving a
    /// leader: the drain finds them added and only switches. Returns how many were added. An
    /// AddReplica runs about five tablet tasks polled every `--get_task_status_interval` (about
    /// 10 s at OpenMLDB's timing), all in queue 0, so the stock flow starts this for the next
    /// tablet while the one before it stops and starts, when the nameserver has no other op of
    /// the run to run ([`Upgrader::start_adding_temp_replicas`]). `settings.avoid` names the
    /// tablets that take none (the one about to stop).
    pub async fn add_temp_replicas(&self, tablet: &str, settings: &MoveSettings) -> Result<usize, UpgradeError> {
        self.require_auto_failover_off().await?;
        if self.is_down(tablet).await? {
            return Ok(0);
        }
        let plan = self.plan_drain(tablet, settings).await?;
        let tables = self.tables_by_tid().await?;
        // Only partitions with a single replica: one whose other replicas are on a tablet that
        // is down now (the one before, stopping) has a follower again by the time of its drain.
        let single = |m: &LeaderMove| {
            let p = tables.get(&m.tid).and_then(|t| t.table_partition.iter().find(|p| p.pid == m.pid));
            p.is_some_and(|p| p.partition_meta.len() == 1)
        };
        let temps: Vec<LeaderMove> = plan.moves.into_iter().filter(|m| m.temp_replica && single(m)).collect();
        if temps.is_empty() {
            return Ok(0);
        }
        let earlier: BTreeSet<(u32, u32)> = self.recorded_moves(tablet).await?.iter().map(|m| (m.tid, m.pid)).collect();
        let recorded = self.record_moves(tablet, &temps).await?;
        // Only moves still to make, as recorded (an earlier drain's target stays its target).
        let mut added = 0;
        for m in recorded.iter().filter(|m| m.temp_replica && m.state == MoveState::Planned) {
            let table = tables.get(&m.tid).ok_or_else(|| partition_err(m.partition(), "the table disappeared"))?;
            self.add_temp_replica(table, m, earlier.contains(&(m.tid, m.pid)), settings.op_timeout).await?;
            added += 1;
        }
        Ok(added)
    }

    /// The temporary replica of move `m`: an AddReplica, after dropping what an interrupted one
    /// of this run left when the move was `recorded_before`.
    async fn add_temp_replica(
        &self,
        table: &TableInfo,
        m: &LeaderMove,
        recorded_before: bool,
        timeout: Duration,
    ) -> Result<(), UpgradeError> {
        let part = Partition::new(table, m.pid);
        if recorded_before {
            self.drop_leftover_copy(part, &m.to, timeout).await?;
        }
        self.run_op(part, PartitionOp::AddReplica(&m.to), timeout).await.map(|_| ())
    }

    /// [`Upgrader::add_temp_replicas`] in the background, once `tablet` is known to the
    /// nameserver and auto_failover is off: returns then, and the drain of `tablet` (or
    /// [`Upgrader::wait_temp_replicas`], which verify calls) waits for it. A failure there is
    /// only logged: the drain adds what is missing itself.
    pub async fn start_adding_temp_replicas(&self, tablet: &str, settings: &MoveSettings) -> Result<(), UpgradeError> {
        let known: Vec<String> = self.cluster.ns.show_tablet().await?.into_iter().map(|t| t.endpoint).collect();
        Self::require_known(&[tablet.to_string()], &known)?;
        self.require_auto_failover_off().await?;
        let (upgrader, ep, settings) = (self.clone(), tablet.to_string(), settings.clone());
        let task = tokio::spawn(async move {
            let added = upgrader.add_temp_replicas(&ep, &settings).await.map_err(|e| e.to_string());
            if let Ok(n @ 1..) = added {
                tracing::info!("added {n} temporary replica(s) for the drain of {ep} ahead of it");
            }
            added
        });
        let mut under_way = self.temp_replicas_under_way.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(earlier) = under_way.insert(tablet.to_string(), task) {
            earlier.abort();
        }
        Ok(())
    }

    /// Waits for the temporary replicas being added in the background for the drain of
    /// `tablet`, or of every tablet when `None`.
    pub async fn wait_temp_replicas(&self, tablet: Option<&str>) {
        let tasks: Vec<(String, tokio::task::JoinHandle<Result<usize, String>>)> = {
            let mut under_way = self.temp_replicas_under_way.lock().unwrap_or_else(|e| e.into_inner());
            match tablet {
                Some(t) => under_way.remove(t).map(|task| (t.to_string(), task)).into_iter().collect(),
                None => under_way.drain().collect(),
            }
        };
        for (ep, task) in tasks {
            match task.await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::warn!(
                    "adding temporary replicas ahead of the drain of {ep} failed ({e}); the drain adds what is missing"
                ),
                Err(e) => tracing::warn!("adding temporary replicas ahead of the drain of {ep} stopped: {e}"),
            }
        }
    }

    /// Moves every leader off `tablet` (pre-upgrade). auto_failover must be off.
    pub async fn drain_leaders(&self, tablet: &str, settings: &MoveSettings) -> Result<MoveReport, UpgradeError> {
        self.wait_temp_replicas(Some(tablet)).await;
        let started = Instant::now();
        self.require_auto_failover_off().await?;
        self.lift_stale_fences().await?.require_all()?;
        if self.is_down(tablet).await? {
            return self.drain_down_tablet(tablet, started).await;
        }
        let mut report = self.plan_drain(tablet, settings).await?;
        let refused = [NO_TABLET_FOR_TEMP_REPLICA, EVERY_REPLICA_IN_BATCH];
        if let Some(s) = report.skipped.iter().find(|s| refused.contains(&s.reason.as_str())) {
            return Err(partition_err(format_args!("{}.{} pid {}", s.db, s.table, s.pid), s.reason.clone()));
        }
        // Temporary replicas an interrupted drain of this run had started to add go to the same
        // tablet again, so that restore deletes the one that was added. Once added, such a
        // replica is a follower like any other and the new plan moves the leader to it as a
        // plain move: it stays recorded as temporary (or restore would keep it for good).
        let earlier: BTreeMap<(u32, u32), String> = self
            .recorded_moves(tablet)
            .await?
            .into_iter()
            .filter(|m| m.temp_replica)
            .map(|m| ((m.tid, m.pid), m.to))
            .collect();
        for m in report.moves.iter_mut() {
            if let Some(to) = earlier.get(&(m.tid, m.pid)) {
                m.to = to.clone();
                m.temp_replica = true;
            }
        }
        // Earlier moves of an interrupted drain stay recorded: the placement to restore is the
        // one before the first drain.
        let recorded = self.record_moves(tablet, &report.moves).await?;
        let earlier = &earlier;
        let tables = self.tables_by_tid().await?;
        // At most `concurrency` moves under way, each borrowing its table: one future per move
        // made up front would hold hundreds of them at scale.
        let tables = &tables;
        let mut results: Vec<_> = futures::stream::iter(report.moves.iter().enumerate().map(|(i, m)| {
            let table = tables.get(&m.tid);
            let one = async move {
                let Some(table) = table else {
                    return Err(partition_err(m.partition(), "the table disappeared"));
                };
                let part = Partition::new(table, m.pid);
                if m.temp_replica {
                    let recorded_before = earlier.contains_key(&(m.tid, m.pid));
                    self.add_temp_replica(table, m, recorded_before, settings.op_timeout).await?;
                }
                let stats = self.switch_leader(part, &m.from, &m.to, settings).await?;
                timing::sample(Sample::ChangeLeaderOut, stats.change_leader);
                // Only this move's record is rewritten.
                let mut moved = m.clone();
                moved.state = MoveState::Moved;
                stats.record(&mut moved);
                self.journal.put(&move_key(&m.from, m.tid, m.pid), &moved).await?;
                Ok::<_, UpgradeError>(Some(stats))
            };
            async move { (i, one.await) }
        }))
        .buffer_unordered(settings.concurrency.max(1))
        .collect()
        .await;
        // In the moves' order again.
        results.sort_by_key(|(i, _)| *i);
        let results: Vec<_> = results.into_iter().map(|(_, r)| r).collect();
        // The replaced leaders, all on `tablet`, become followers together (moves of an
        // interrupted earlier drain included), unless the tablet stops next.
        let readd_failure = if settings.readd_replaced {
            let switched: BTreeSet<(u32, u32)> = recorded.iter().map(|m| (m.tid, m.pid)).collect();
            let readded = self.readd_switched(tablet, &switched, settings).await;
            readded.err().map(|e| format!("re-adding the replaced leaders on {tablet} as followers: {e}"))
        } else {
            tracing::debug!(
                "the replaced leaders on {tablet} stay fenced and marked not alive until its restart (recover data)"
            );
            None
        };
        // The tablet stops next: what its followers answer now lets recover data attach them to
        // their leaders after the restart (recover.rs).
        if !settings.readd_replaced {
            if let Err(e) = self.record_follower_terms(tablet, tables).await {
                tracing::warn!("cannot record the terms of {tablet}'s followers ({e}); recover data rebuilds them with RecoverTable");
            }
        }
        let moves = std::mem::take(&mut report.moves);
        report.settle(
            moves,
            &results,
            |stats| *stats,
            MoveState::Moved,
            readd_failure.into_iter().collect(),
            started,
        )?;
        Ok(report)
    }
}
