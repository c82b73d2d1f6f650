//! Restore: moving leadership back to a tablet exactly as recorded before its drain, once each
//! returning replica is loaded, alive and caught up, and deleting the temporary replicas (the
//! documented post-upgrade, O§6.1). Idempotent: a re-run finishes a partial run, and a run
//! killed anywhere between the switch and the clean-up is finished here.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use futures::StreamExt;

use super::switch::SwitchStats;
use super::{
    drain_key, move_key, partition_err, LeaderMove, MoveReport, MoveSettings, MoveState, PartitionOp, UpgradeError,
    Upgrader,
};
use crate::cluster::ns::{Partition, TableInfo};
use crate::journal::JournalError;
use crate::timing::{self, Sample};

/// The name restore_placement's report goes by (where a tablet's name goes for a restore).
const PLACEMENT: &str = "the pre-flight placement";

/// What is left to do for one move once its leader is home ([`Upgrader::restore_one`]).
#[derive(Debug, Default)]
struct Returned {
    /// The replica the switch (or a stopped run's) left marked dead, to re-add as a follower.
    readd: Option<String>,
    /// The temporary replica to delete.
    delete_temp: Option<String>,
    /// The figures of the switch home, when there was one.
    stats: Option<SwitchStats>,
}

impl Upgrader {
    /// The moves recorded for `tablet` (empty when it was never drained or is restored), by
    /// (tid, pid). A drain recorded by an older version as one list under `drain/<tablet>` is
    /// read too.
    pub async fn recorded_moves(&self, tablet: &str) -> Result<Vec<LeaderMove>, UpgradeError> {
        let key = drain_key(tablet);
        let mut moves: Vec<LeaderMove> = match self.journal.get::<serde_json::Value>(&key).await {
            Ok(Some(value @ serde_json::Value::Array(_))) => serde_json::from_value(value).unwrap_or_default(),
            // The parent of per-move records holds no value (or an empty one).
            Ok(_) | Err(JournalError::Corrupt { .. }) => Vec::new(),
            Err(e) => return Err(e.into()),
        };
        for (_, m) in self.journal.get_all::<LeaderMove>(&key).await? {
            if !moves.iter().any(|r| r.tid == m.tid && r.pid == m.pid) {
                moves.push(m);
            }
        }
        moves.sort_by_key(|m| (m.tid, m.pid));
        Ok(moves)
    }

    /// Records planned moves off `tablet`, each under its own key, leaving moves already
    /// recorded (of an interrupted earlier drain) as they are: the placement to restore is
    /// the one before the first drain. Returns every recorded move.
    pub async fn record_moves(&self, tablet: &str, planned: &[LeaderMove]) -> Result<Vec<LeaderMove>, UpgradeError> {
        let mut recorded = self.recorded_moves(tablet).await?;
        let new: Vec<(String, LeaderMove)> = planned
            .iter()
            .filter(|m| !recorded.iter().any(|r| r.tid == m.tid && r.pid == m.pid))
            .map(|m| (move_key(tablet, m.tid, m.pid), m.clone()))
            .collect();
        self.journal.put_all(&new).await?;
        recorded.extend(new.into_iter().map(|(_, m)| m));
        Ok(recorded)
    }

    /// Tablets with a recorded drain that is not restored yet.
    pub async fn drained_tablets(&self) -> Result<Vec<String>, UpgradeError> {
        Ok(self.journal.keys("drain").await?)
    }

    /// Moves leadership back to `tablet` exactly as recorded and removes temporary replicas
    /// (post-upgrade). Idempotent. auto_failover must be off.
    pub async fn restore_leaders(&self, tablet: &str, settings: &MoveSettings) -> Result<MoveReport, UpgradeError> {
        let moves = self.recorded_moves(tablet).await?;
        if moves.is_empty() {
            return Ok(MoveReport { tablet: tablet.into(), ..MoveReport::default() });
        }
        let report = self.move_home(tablet, moves, settings).await?;
        self.journal.delete_tree(&drain_key(tablet)).await?;
        Ok(report)
    }

    /// Leaders that are not on the tablet that led them at pre-flight (the run's baseline), as
    /// moves home: `from` is that tablet, `to` the leader now. Only partitions whose home tablet
    /// still holds an alive replica: the nameserver's failover moved them while a tablet was down
    /// (C§3.4), which no drain recorded. Empty without a baseline.
    pub async fn displaced_leaders(&self) -> Result<Vec<LeaderMove>, UpgradeError> {
        let Some(baseline) = self.recorded_baseline().await? else { return Ok(Vec::new()) };
        let mut displaced = Vec::new();
        for table in self.cluster.ns.show_all_tables().await? {
            let Some(before) = baseline.get(&table.tid) else { continue };
            for p in &table.table_partition {
                let (Some(home), Some(now)) = (before.leader(p.pid), p.alive_leader()) else { continue };
                if now.endpoint != home && p.meta(home).is_some_and(|m| m.is_alive) {
                    displaced.push(LeaderMove::new(&table, p.pid, home, &now.endpoint, false, MoveState::Moved));
                }
            }
        }
        Ok(displaced)
    }

    /// Puts every displaced leader ([`Upgrader::displaced_leaders`]) back on the tablet that led
    /// it at pre-flight, as restore_leaders does (catch-up, fence, ChangeLeader, re-add).
    /// Idempotent: what is home already is not moved. auto_failover must be off.
    pub async fn restore_placement(&self, settings: &MoveSettings) -> Result<MoveReport, UpgradeError> {
        let moves = self.displaced_leaders().await?;
        if moves.is_empty() {
            return Ok(MoveReport { tablet: PLACEMENT.into(), ..MoveReport::default() });
        }
        self.move_home(PLACEMENT, moves, settings).await
    }

    /// Moves each leader back to `from` (restore_leaders' work once the moves are known), in
    /// three rounds, each waiting for the one before: every switch home; then the interim
    /// leaders the switches left marked dead re-added as followers, together per tablet
    /// ([`Upgrader::readd_switched`]: attached to their leader directly, else RecoverTable);
    /// then the temporary replicas deleted ([`Upgrader::delete_temp_replica`]). A clean-up op
    /// started between two switches would hold its queue, which the next switch of that queue
    /// waits to have to itself (C§3.3); the direct attach and deletion need no op, whose tablet
    /// tasks the nameserver polls every `--get_task_status_interval` (C§3.2), and edit
    /// partitions no op of the run touches any more.
    async fn move_home(
        &self,
        label: &str,
        moves: Vec<LeaderMove>,
        settings: &MoveSettings,
    ) -> Result<MoveReport, UpgradeError> {
        let started = Instant::now();
        let mut report = MoveReport { tablet: label.into(), ..MoveReport::default() };
        self.require_auto_failover_off().await?;
        self.lift_stale_fences().await?.require_all()?;
        let tables = self.tables_by_tid().await?;
        // At most `concurrency` moves under way, each borrowing its table (see drain_leaders).
        let tables = &tables;
        let mut results: Vec<_> = futures::stream::iter(moves.iter().enumerate().map(|(i, m)| {
            let table = tables.get(&m.tid);
            let one = async move {
                let Some(table) = table else {
                    // The table was dropped meanwhile: nothing to restore.
                    return Ok(Returned::default());
                };
                self.restore_one(table, m, settings).await
            };
            async move { (i, one.await) }
        }))
        .buffer_unordered(settings.concurrency.max(1))
        .collect()
        .await;
        // In the moves' order again.
        results.sort_by_key(|(i, _)| *i);
        let mut results: Vec<_> = results.into_iter().map(|(_, r)| r).collect();
        // The replicas left marked dead become followers, together per tablet.
        let mut replaced: BTreeMap<String, BTreeSet<(u32, u32)>> = BTreeMap::new();
        for (m, r) in moves.iter().zip(&results) {
            if let Ok(Returned { readd: Some(replica), .. }) = r {
                replaced.entry(replica.clone()).or_default().insert((m.tid, m.pid));
            }
        }
        let readded = futures::future::join_all(
            replaced.iter().map(|(replica, switched)| self.readd_switched(replica, switched, settings)),
        )
        .await;
        let readd_failures = replaced
            .keys()
            .zip(readded)
            .filter_map(|(replica, r)| {
                r.err().map(|e| format!("re-adding the replaced leaders on {replica} as followers: {e}"))
            })
            .collect();
        // Then the temporary replicas go; a failed deletion fails its move.
        let deletions: Vec<(usize, Result<(), UpgradeError>)> =
            futures::stream::iter(moves.iter().zip(&results).enumerate().filter_map(|(i, (m, r))| {
                let temp = r.as_ref().ok()?.delete_temp.clone()?;
                let table = tables.get(&m.tid)?;
                Some(async move {
                    let part = Partition::new(table, m.pid);
                    (i, self.delete_temp_replica(part, &temp, settings.op_timeout).await)
                })
            }))
            .buffer_unordered(settings.concurrency.max(1))
            .collect()
            .await;
        for (i, deleted) in deletions {
            if let Err(e) = deleted {
                results[i] = Err(e);
            }
        }
        report.settle(moves, &results, |r| r.stats, MoveState::Restored, readd_failures, started)?;
        Ok(report)
    }

    /// Moves one recorded leader home, and says what is left to do for it: the replica it
    /// took over from, left marked dead by the switch (or by a run stopped after it), to re-add
    /// as a follower; the temporary replica to delete; the figures of the switch when there was
    /// one.
    async fn restore_one(
        &self,
        table: &TableInfo,
        m: &LeaderMove,
        settings: &MoveSettings,
    ) -> Result<Returned, UpgradeError> {
        let (part, home) = (Partition::new(table, m.pid), m.from.as_str());
        let delete_temp = m.temp_replica.then(|| m.to.clone());
        // Ops a killed run left queued (an AddReplica, a ChangeLeader) finish first, so the state
        // looked at below is final and no temporary replica appears after it was checked.
        self.cluster.wait_partition_idle(part, settings.op_timeout).await?;
        let mut p = self.partition(part).await?;
        let mut leader = p.alive_leader().map(|l| l.endpoint.clone());
        // A run killed between ChangeLeader and RecoverTable left the old leader marked dead
        // (C§3.5): finish re-adding it first.
        if leader.as_deref().is_some_and(|l| l != home) && p.meta(home).is_some_and(|m| !m.is_alive) {
            self.readd_as_follower(part, home, settings.op_timeout).await?;
            p = self.partition(part).await?;
            leader = p.alive_leader().map(|l| l.endpoint.clone());
        }
        if leader.as_deref() != Some(home) {
            // The returning replica must be alive in the nameserver's view and loaded (C§3.6).
            self.cluster.wait_replica_ready(home, part, true, settings.catchup_timeout).await?;
            let current = leader.ok_or_else(|| partition_err(part, "no alive leader to take over from"))?;
            let stats = self.switch_leader(part, &current, home, settings).await?;
            timing::sample(Sample::ChangeLeaderBack, stats.change_leader);
            // A temporary replica is deleted as it is, not re-added first.
            let readd = (delete_temp.as_deref() != Some(current.as_str())).then_some(current);
            return Ok(Returned { readd, delete_temp, stats: Some(stats) });
        }
        // Home already: a run stopped between the switch home and the re-add left the replica
        // it took over from marked dead.
        let readd = p.meta(&m.to).filter(|meta| !meta.is_alive && !m.temp_replica).map(|_| m.to.clone());
        Ok(Returned { readd, delete_temp, stats: None })
    }

    /// Deletes the temporary replica on `endpoint`. One that the switch home left flagged leader
    /// and marked dead (C§3.5), which DelReplicaNS refuses (102), goes without an op, as the
    /// DelReplica op's tasks would make it go: removed from the partition's metadata
    /// ([`crate::cluster::ns::NsClient::remove_replica_meta`], kDelTableInfo), then the leader's
    /// node for it and its copy dropped ([`Upgrader::drop_unlisted_copy`]); auto_failover must be
    /// off for the first. A follower goes by DelReplica, which takes it whatever auto_failover
    /// is (C§3.6). One a stopped run removed from the metadata has its copy dropped.
    pub(super) async fn delete_temp_replica(
        &self,
        part: Partition<'_>,
        endpoint: &str,
        timeout: Duration,
    ) -> Result<(), UpgradeError> {
        let p = self.partition(part).await?;
        let Some(meta) = p.meta(endpoint) else {
            return self.drop_unlisted_copy(part, endpoint, timeout, || ()).await;
        };
        if !meta.is_leader {
            return self.run_op(part, PartitionOp::DelReplica(endpoint), timeout).await.map(|_| ());
        }
        if p.alive_leader().is_none_or(|l| l.endpoint == endpoint) {
            return Err(partition_err(
                part,
                format!("the temporary replica on {endpoint} still leads: it is not deleted; restore its leader first"),
            ));
        }
        match self.cluster.ns.remove_replica_meta(part.db(), part.name(), part.pid, endpoint).await {
            Ok(_) => self.drop_unlisted_copy(part, endpoint, timeout, || ()).await,
            Err(e) => {
                tracing::warn!("{part}: cannot remove the temporary replica on {endpoint} from the metadata ({e}); deleting it by RecoverTable and DelReplica");
                self.readd_as_follower(part, endpoint, timeout).await?;
                self.run_op(part, PartitionOp::DelReplica(endpoint), timeout).await.map(|_| ())
            }
        }
    }
}
