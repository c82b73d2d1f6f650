//! Re-adding replaced leaders as followers. After a ChangeLeader the old leader keeps
//! `is_leader` with `is_alive=false` until RecoverTable makes it an alive follower again (C§3.5).
//! The replicas were fenced before their switch, so no write reaches them meanwhile.
//!
//! First without an op: a replaced leader whose log ends before the new term's start is what
//! RecoverTable's short op (kReAddReplicaSimplifyOP, C§3.1) would re-add. The tool makes the
//! same tablet calls (AddReplica on the leader's tablet, then the catch-up) and writes the
//! metadata its last task writes (SetTablePartition, C§2.3), which saves the op's tablet task
//! polled every `--get_task_status_interval` and its place in the nameserver's queues.
//!
//! The rest by RecoverTable. When they are all the dead replicas a tablet has, one
//! RecoverEndpoint spreads their RecoverTable ops over 8 queues instead of the 2 that
//! per-partition RecoverTable shares (C§3.3, C§3.4); otherwise each gets its own RecoverTable,
//! so replicas that are not ours are left alone.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;

use super::recover::Reattach;
use super::{MoveSettings, PartitionOp, UpgradeError, Upgrader};
use crate::cluster::ns::{Partition, TableInfo, TablePartition};
use crate::cluster::wait::WaitError;

/// RecoverEndpoint's `concurrency`: `name_server_task_max_concurrency`'s default (C§3.3, C§7).
const RECOVER_ENDPOINT_CONCURRENCY: u32 = 8;

/// Replaced leaders attached at once (each waits on its own catch-up).
const ATTACH_CONCURRENCY: usize = 16;

impl Upgrader {
    /// RecoverTable of a replaced leader: it becomes an alive follower (C§3.5). Returns how
    /// long its op ran (kDoing, not queued).
    pub(super) async fn readd_as_follower(
        &self,
        part: Partition<'_>,
        replica: &str,
        timeout: Duration,
    ) -> Result<Duration, UpgradeError> {
        let p = self.partition(part).await?;
        self.drop_stale_node(part, &p, replica).await;
        Ok(self.run_op(part, PartitionOp::RecoverTable(replica), timeout).await?.running)
    }

    /// Before RecoverTable of `replica`: deletes the replicate node for it of the alive leader
    /// `p` (the partition's metadata) names, if that leader has one. RecoverTable deletes it itself only for a replica not flagged leader (its
    /// kDelReplica task, C§3.1); for a replaced leader its short op's AddReplica then fails on
    /// the node that exists (119 fails the task, `name_server_impl.cc` WrapTaskFun). Such a
    /// node is left by a fenced leader led again (a lifted fence replicates to its recorded
    /// followers) or by an attach cut short. Best effort: RecoverTable reports what is wrong.
    async fn drop_stale_node(&self, part: Partition<'_>, p: &TablePartition, replica: &str) {
        let Some(leader) = p.alive_leader().filter(|l| l.endpoint != replica) else { return };
        let leader = &leader.endpoint;
        if let Err(e) = self.cluster.tablets.del_replicate_node(leader, part.tid(), part.pid, replica).await {
            tracing::debug!("{part}: could not delete {leader}'s replicate node for {replica}: {e}");
        }
    }

    /// Re-adds as followers, without an op, the replicas on `endpoint` that leader switches left
    /// marked dead (`switched`, as (tid, pid)): each is a follower on its tablet since its fence
    /// (C§3.5), at the term it led in, and is attached to the new leader directly
    /// ([`Upgrader::reattach_follower`] with that term: a replaced leader of the term before
    /// the last whose log ends before the last term's start). Returns the replicas left, for
    /// [`Upgrader::readd_replaced_leaders`]. auto_failover must be off, and no op of these
    /// partitions may run meanwhile (their metadata is edited).
    pub(super) async fn attach_replaced_leaders(
        &self,
        endpoint: &str,
        switched: &BTreeSet<(u32, u32)>,
        timeout: Duration,
    ) -> Result<BTreeSet<(u32, u32)>, UpgradeError> {
        let tables = self.tables_by_tid().await?;
        let tables = &tables;
        let left: Vec<Option<(u32, u32)>> = futures::stream::iter(switched.iter().map(|&(tid, pid)| async move {
            // A table dropped meanwhile, or a replica alive already (re-added by an earlier
            // run), has nothing to re-add.
            let table = tables.get(&tid)?;
            let p = table.table_partition.iter().find(|p| p.pid == pid)?;
            if p.meta(endpoint).is_none_or(|m| m.is_alive) {
                return None;
            }
            let attached = async {
                let pair = self.cluster.tablets.term_pair(endpoint, table, pid).await?;
                if !pair.has_table || pair.is_leader {
                    return Ok(Reattach::Left);
                }
                self.reattach_follower(endpoint, table, pid, pair.term, timeout).await
            };
            match attached.await {
                Ok(Reattach::Attached) => None,
                Ok(Reattach::Left) => Some((tid, pid)),
                Err(e) => {
                    let part = Partition::new(table, pid);
                    tracing::warn!("{part}: attaching the replaced leader on {endpoint} to the new leader failed ({e}); RecoverTable re-adds it");
                    Some((tid, pid))
                }
            }
        }))
        .buffer_unordered(ATTACH_CONCURRENCY)
        .collect()
        .await;
        Ok(left.into_iter().flatten().collect())
    }

    /// Re-adds as followers the replicas on `endpoint` that leader switches left marked dead
    /// (`switched`, as (tid, pid)): attached directly where they can be
    /// ([`Upgrader::attach_replaced_leaders`]), the rest by RecoverTable
    /// ([`Upgrader::readd_replaced_leaders`]).
    pub(super) async fn readd_switched(
        &self,
        endpoint: &str,
        switched: &BTreeSet<(u32, u32)>,
        settings: &MoveSettings,
    ) -> Result<(), UpgradeError> {
        let left = self.attach_replaced_leaders(endpoint, switched, settings.catchup_timeout).await?;
        if left.is_empty() {
            return Ok(());
        }
        self.readd_replaced_leaders(endpoint, &left, settings).await
    }

    /// Re-adds as followers the replicas on `endpoint` that leader switches left marked dead;
    /// `switched` names those partitions as (tid, pid).
    pub(super) async fn readd_replaced_leaders(
        &self,
        endpoint: &str,
        switched: &BTreeSet<(u32, u32)>,
        settings: &MoveSettings,
    ) -> Result<(), UpgradeError> {
        let (ours, others) = self.dead_replicas(endpoint, switched).await?;
        if ours.len() > 1 && others == 0 {
            tracing::debug!("re-adding {} replaced leader(s) on {endpoint} with one RecoverEndpoint", ours.len());
            self.recover_endpoint(endpoint, &ours, settings).await?;
        } else if ours.len() > 1 {
            tracing::info!(
                "re-adding {} replaced leader(s) on {endpoint} one by one: {others} other replica(s) there are marked dead, which a RecoverEndpoint would recover too",
                ours.len()
            );
        }
        // Whatever is still dead (all of it when RecoverEndpoint was not used).
        let (ours, _) = self.dead_replicas(endpoint, switched).await?;
        let results: Vec<_> = futures::stream::iter(ours.iter().map(|(table, pid)| async {
            self.readd_as_follower(Partition::new(table, *pid), endpoint, settings.op_timeout).await.map(|_| ())
        }))
        .buffer_unordered(settings.concurrency.max(1))
        .collect()
        .await;
        results.into_iter().collect()
    }

    /// One RecoverEndpoint for `endpoint`, waiting for the RecoverTable ops of `replicas`. A
    /// refused RecoverEndpoint is not an error: the caller recovers the replicas one by one.
    async fn recover_endpoint(
        &self,
        endpoint: &str,
        replicas: &[(Arc<TableInfo>, u32)],
        settings: &MoveSettings,
    ) -> Result<(), UpgradeError> {
        let ns = &self.cluster.ns;
        // Its ops go to `pid % concurrency` (C§3.3): they enter those queues like any op.
        let mut queues: Vec<usize> =
            replicas.iter().map(|(_, pid)| super::queues::queue_of(*pid, RECOVER_ENDPOINT_CONCURRENCY)).collect();
        queues.sort_unstable();
        // Each queue runs its ops one after the other: the wait allows the per-op timeout for
        // every op of the busiest one, so a wait scales with the work queued.
        let busiest = queues.chunk_by(|a, b| a == b).map(<[usize]>::len).max().unwrap_or(1);
        let timeout = settings.op_timeout.saturating_mul(busiest as u32);
        queues.dedup();
        // The stale nodes RecoverTable would fail on ([`Upgrader::drop_stale_node`]).
        futures::stream::iter(replicas.iter().filter_map(|(table, pid)| {
            let p = table.table_partition.iter().find(|p| p.pid == *pid)?;
            Some(self.drop_stale_node(Partition::new(table, *pid), p, endpoint))
        }))
        .buffer_unordered(ATTACH_CONCURRENCY)
        .collect::<Vec<()>>()
        .await;
        let _in_queues = self.queues.enter(&queues).await;
        let since = ns.op_index().await?;
        match ns.recover_endpoint(endpoint, false, RECOVER_ENDPOINT_CONCURRENCY).await {
            // Not sent again: the ops it created, if any, are waited for below, and whatever is
            // still dead afterwards is recovered one by one.
            Err(e) if e.is_outcome_unknown() => {
                tracing::warn!("{e}; waiting for the RecoverTable ops it may have created");
                tokio::time::sleep(super::RECONCILE_WINDOW).await;
            }
            Err(e) => {
                tracing::warn!("RecoverEndpoint {endpoint} refused ({e}); recovering its replicas one by one");
                return Ok(());
            }
            Ok(()) => {}
        }
        let mut by_table: BTreeMap<u32, (&Arc<TableInfo>, BTreeSet<u32>)> = BTreeMap::new();
        for (table, pid) in replicas {
            by_table.entry(table.tid).or_insert_with(|| (table, BTreeSet::new())).1.insert(*pid);
        }
        let waits = by_table
            .values()
            .map(|(table, pids)| self.cluster.wait_table_ops(since, table, pids, "RecoverTable ops", timeout));
        for result in futures::future::join_all(waits).await {
            match result {
                // An op that failed (at PauseSnapshot during a scheduled snapshot, say) left its
                // replica dead: the caller recovers it one by one, and sends it again if need be.
                Err(e @ WaitError::Failed { .. }) => {
                    tracing::warn!("{e}; recovering the replicas still marked dead one by one")
                }
                other => other?,
            }
        }
        Ok(())
    }

    /// The replicas on `endpoint` marked dead: those of the `switched` partitions, and how many
    /// others. Each table is shared by its replicas: a copy per replica took 60 MB for the 837
    /// leaders of one tablet at 15 000 replicas.
    async fn dead_replicas(
        &self,
        endpoint: &str,
        switched: &BTreeSet<(u32, u32)>,
    ) -> Result<(Vec<(Arc<TableInfo>, u32)>, usize), UpgradeError> {
        let mut ours = Vec::new();
        let mut others = 0;
        for table in self.cluster.ns.show_all_tables().await? {
            let table = Arc::new(table);
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
}
