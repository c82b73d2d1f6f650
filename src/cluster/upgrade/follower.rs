//! Re-adding replaced leaders as followers. After a ChangeLeader the old leader keeps
//! `is_leader` with `is_alive=false` until RecoverTable makes it an alive follower again (C§3.5).
//! When the replaced leaders are all the dead replicas a tablet has, one RecoverEndpoint spreads
//! their RecoverTable ops over 8 queues instead of the 2 that per-partition RecoverTable shares
//! (C§3.3, C§3.4); otherwise each gets its own RecoverTable, so replicas that are not ours are
//! left alone. Either way the op is the same RecoverTable, and the replicas were fenced before
//! their switch, so no write reaches them meanwhile.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;

use super::{MoveSettings, PartitionOp, UpgradeError, Upgrader};
use crate::cluster::ns::{Partition, TableInfo};
use crate::cluster::wait::WaitError;

/// RecoverEndpoint's `concurrency`: `name_server_task_max_concurrency`'s default (C§3.3, C§7).
const RECOVER_ENDPOINT_CONCURRENCY: u32 = 8;

impl Upgrader {
    /// RecoverTable of a replaced leader: it becomes an alive follower (C§3.5). Returns how
    /// long its op ran (kDoing, not queued).
    pub(super) async fn readd_as_follower(
        &self,
        part: Partition<'_>,
        replica: &str,
        timeout: Duration,
    ) -> Result<Duration, UpgradeError> {
        Ok(self.run_op(part, PartitionOp::RecoverTable(replica), timeout).await?.running)
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
