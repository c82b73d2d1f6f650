//! Fencing: stopping an old leader from acknowledging writes just before its ChangeLeader.
//!
//! A live ChangeLeader alone loses writes: the old leader keeps acknowledging writes from
//! clients with stale routing after the followers' term was raised, and an explicit candidate
//! is taken even when it lags (C§6 hazards 5 and 6). The fence is ChangeRole(follower) on the
//! leader's tablet, the call RecoverTable itself makes (C§2.4, C§3.5): the replica refuses
//! writes with code 103 "table is follower" from then on, and the client retries them on the
//! new leader once its routing follows `table/notify`.
//!
//! A fence is journalled (`fence/<tid>-<pid>`) before it is raised. It is lifted when the
//! switch fails, and a fence a killed run left behind is lifted by the next drain, restore or
//! `abort` ([`Upgrader::lift_stale_fences`]).

use serde::{Deserialize, Serialize};

use super::{partition_err, MoveSettings, UpgradeError, Upgrader};
use crate::cluster::ns::Partition;
use crate::cluster::tablet::TabletError;

/// How many times a fence is tried before the move of that partition is given up.
const FENCE_ATTEMPTS: u32 = 10;
/// How long after fencing the candidate may take to receive replication calls already sent.
const FENCE_SETTLE: std::time::Duration = std::time::Duration::from_millis(500);

/// A leader replica fenced on its tablet ahead of a ChangeLeader, journalled before the fence
/// so that a killed run can lift it.
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

/// The journal key of the fence on one partition.
fn fence_key(tid: u32, pid: u32) -> String {
    format!("fence/{tid}-{pid}")
}

impl Upgrader {
    /// Stops `leader` from acknowledging writes for `pid` and checks that `candidate` holds
    /// every entry it acknowledged (within `offset_delta`).
    ///
    /// The fence also stops the leader's replication (`LogReplicator::DelAllReplicateNode`), so
    /// entries written just before it may never reach the candidate: when the candidate is
    /// short, the leader leads again with its own term and the fence is retried once the
    /// candidate has caught up. Whatever fails, the fence is lifted before the error returns.
    pub async fn fence_leader(
        &self,
        part: Partition<'_>,
        leader: &str,
        candidate: &str,
        settings: &MoveSettings,
    ) -> Result<Fence, UpgradeError> {
        let (table, tid, pid) = (part.table, part.tid(), part.pid);
        let tablets = &self.cluster.tablets;
        let followers: Vec<String> = self
            .partition(part)
            .await?
            .partition_meta
            .iter()
            .filter(|m| !m.is_leader)
            .map(|m| m.endpoint.clone())
            .collect();
        let term = tablets.term_pair(leader, table, pid).await?.term;
        let fence = Fence {
            db: table.db.clone(),
            table: table.name.clone(),
            tid,
            pid,
            endpoint: leader.into(),
            term,
            followers,
        };
        self.journal.put(&fence_key(tid, pid), &fence).await?;
        let fenced = async {
            for attempt in 1..=FENCE_ATTEMPTS {
                let delta = settings.offset_delta;
                self.cluster.wait_caught_up(part, leader, candidate, delta, settings.catchup_timeout).await?;
                tablets.change_role_to_follower(leader, tid, pid).await?;
                // The leader's offset is final now; replication calls already sent may still land.
                if self.cluster.wait_caught_up(part, leader, candidate, delta, FENCE_SETTLE).await.is_ok() {
                    return Ok(());
                }
                tracing::debug!(
                    "{part}: {candidate} was short after fencing {leader} (attempt {attempt}); leading again and retrying"
                );
                self.unfence(&fence).await?;
            }
            Err(partition_err(
                part,
                format!("{candidate} kept falling behind the writes to {leader} ({FENCE_ATTEMPTS} attempts); the leader is unchanged. Lower the write rate or allow a lag with offset_delta"),
            ))
        };
        match fenced.await {
            Ok(()) => Ok(fence),
            Err(e) => {
                self.lift_fence_or_warn(&fence).await;
                Err(e)
            }
        }
    }

    /// The fenced replica leads again: ChangeRole(leader) with its own term and followers.
    async fn unfence(&self, fence: &Fence) -> Result<(), UpgradeError> {
        let tablets = &self.cluster.tablets;
        match tablets.change_role_to_leader(&fence.endpoint, fence.tid, fence.pid, fence.term, &fence.followers).await {
            // 102: it leads already.
            Err(e) if e.code() != Some(102) => Err(e.into()),
            _ => Ok(()),
        }
    }

    /// Lifts a fence whose leader change did not happen: when the nameserver still names the
    /// fenced replica as the alive leader, it leads again. When the leader did change,
    /// RecoverTable makes the fenced replica a follower (C§3.5) and the record is just dropped.
    pub(super) async fn lift_fence(&self, fence: &Fence) -> Result<(), UpgradeError> {
        let partition = self.cluster.ns.partition(&fence.db, &fence.table, fence.pid).await?;
        let still_leader =
            partition.as_ref().and_then(|p| p.alive_leader()).is_some_and(|m| m.endpoint == fence.endpoint);
        if still_leader {
            match self.unfence(fence).await {
                // A tablet that is down loads the partition with the role the nameserver gives
                // it when it comes back (C§3.4, recover data).
                Err(UpgradeError::Tablet(TabletError::Rpc(e))) => {
                    tracing::warn!("fenced leader {} of {}.{} pid {} is not answering ({e}); it gets its role from the nameserver when it is recovered", fence.endpoint, fence.db, fence.table, fence.pid);
                }
                other => other?,
            }
        }
        self.forget_fence(fence.tid, fence.pid).await
    }

    /// Lifts a fence on the way out of a failed switch; a failure to do so is logged, the
    /// switch's own error is the one reported (the next run lifts what is left).
    pub(super) async fn lift_fence_or_warn(&self, fence: &Fence) {
        if let Err(e) = self.lift_fence(fence).await {
            tracing::warn!(
                "{}.{} pid {}: could not lift the fence on {}: {e}",
                fence.db,
                fence.table,
                fence.pid,
                fence.endpoint
            );
        }
    }

    /// Drops the record of a fence whose switch happened.
    pub(super) async fn forget_fence(&self, tid: u32, pid: u32) -> Result<(), UpgradeError> {
        Ok(self.journal.delete(&fence_key(tid, pid)).await?)
    }

    /// The fences a stopped run left behind.
    pub async fn stale_fences(&self) -> Result<Vec<Fence>, UpgradeError> {
        let mut fences = Vec::new();
        for key in self.journal.keys("fence").await? {
            if let Some(fence) = self.journal.get::<Fence>(&format!("fence/{key}")).await? {
                fences.push(fence);
            }
        }
        Ok(fences)
    }

    /// Lifts every fence a stopped run left behind (see [`Upgrader::lift_fence`]). Returns how
    /// many there were.
    pub async fn lift_stale_fences(&self) -> Result<usize, UpgradeError> {
        let fences = self.stale_fences().await?;
        for fence in &fences {
            tracing::info!(
                "lifting the fence a stopped run left on {} for {}.{} pid {}",
                fence.endpoint,
                fence.db,
                fence.table,
                fence.pid
            );
            self.lift_fence(fence).await?;
        }
        Ok(fences.len())
    }
}
