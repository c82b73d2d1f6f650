//! One leader switch: fence the old leader, then ChangeLeader to a caught-up candidate (C§3.5),
//! the op tracked by its id. The replaced leader is left marked dead in the nameserver (and a
//! follower on its tablet) until it is re-added as a follower ([`super::follower`]).

use std::time::Duration;

use super::{partition_err, MoveSettings, PartitionOp, Queue, UpgradeError, Upgrader};
use crate::cluster::ns::Partition;

/// What one leader switch cost the partition's writers.
#[derive(Debug, Clone, Copy)]
pub struct SwitchStats {
    /// From the (last) fence to the new leader recorded by the nameserver.
    pub stall: Duration,
    /// Fences raised; more than one when the candidate was short after a fence.
    pub fence_attempts: u32,
    /// How long its ChangeLeader op ran (kDoing to done, its time in the queue not included):
    /// a step of moves side by side takes at least its slowest ([`crate::timing::Sample`]).
    pub change_leader: Duration,
}

impl SwitchStats {
    /// Writes the figures into the move's record.
    pub fn record(&self, m: &mut super::LeaderMove) {
        m.stall_ms = Some(self.stall.as_millis() as u64);
        m.fence_attempts = self.fence_attempts;
    }
}

impl Upgrader {
    /// Moves the leader of `pid` from `old_leader` to `candidate` without losing an
    /// acknowledged write: fence ([`Upgrader::fence_leader`]), then ChangeLeader. A failed
    /// ChangeLeader lifts the fence. Returns how long writes were refused: from the fence
    /// until the nameserver recorded the new leader (clients then follow `table/notify`).
    pub(super) async fn switch_leader(
        &self,
        part: Partition<'_>,
        old_leader: &str,
        candidate: &str,
        settings: &MoveSettings,
    ) -> Result<SwitchStats, UpgradeError> {
        self.wait_near(part, old_leader, candidate, settings).await?;
        // The partition's queue is held, and emptied of this run's ops, before the fence: ops
        // of one queue run one after the other (C§3.3), and a partition fenced while its
        // ChangeLeader waits behind another op would refuse writes all that time.
        let reserved = self.queues.reserve(PartitionOp::ChangeLeader(candidate).queue(part.pid)).await;
        let (fence, outcome) = self.fence_leader(part, old_leader, candidate, settings).await?;
        let change_leader = match self.change_leader(part, candidate, settings.op_timeout).await {
            Ok(running) => running,
            Err(e) => {
                // The old leader leads again if the nameserver still says it does.
                self.lift_fence_or_warn(&fence).await;
                drop(reserved);
                self.demote_half_promoted(part, candidate, settings.op_timeout).await;
                return Err(e);
            }
        };
        let stats = SwitchStats { stall: outcome.fenced_at.elapsed(), fence_attempts: outcome.attempts, change_leader };
        tracing::debug!(
            "{part}: leader {old_leader} -> {candidate}, writes refused for {:?}, {} fence(s)",
            stats.stall,
            stats.fence_attempts
        );
        self.forget_fence(part.tid(), part.pid).await?;
        Ok(stats)
    }

    /// After a failed ChangeLeader: an op that failed after its kChangeLeader task (at
    /// kUpdateLeaderInfo, when ZooKeeper or the nameserver's lock went away) left the candidate
    /// leading on its tablet with a new term while the nameserver still records the old
    /// leader, which clients keep writing to. The candidate then refuses the old leader's
    /// entries (an older term) and falls behind for good. It is marked not alive
    /// (UpdateTableAliveStatus, C§2.3) and rebuilt as a follower by RecoverTable (C§3.1), which
    /// drops what diverged. Best effort: what fails is logged, and the checks after the tablet
    /// report the partition if it is still wrong.
    async fn demote_half_promoted(&self, part: Partition<'_>, candidate: &str, timeout: Duration) {
        let Ok(p) = self.partition(part).await else { return };
        if p.alive_leader().is_none_or(|m| m.endpoint == candidate) {
            return;
        }
        let leads_on_tablet = matches!(
            self.cluster.tablets.partition_status(candidate, part.tid(), part.pid).await,
            Ok(Some(s)) if s.is_leader()
        );
        if !leads_on_tablet {
            return;
        }
        tracing::warn!(
            "{part}: the failed ChangeLeader left {candidate} leading on its tablet while the nameserver records another leader; rebuilding it as a follower (RecoverTable)"
        );
        let ns = &self.cluster.ns;
        if let Err(e) = ns.update_table_alive(part.db(), part.name(), part.pid, candidate, false).await {
            tracing::warn!("{part}: could not mark {candidate} not alive: {e}");
            return;
        }
        if let Err(e) = self.run_op(part, PartitionOp::RecoverTable(candidate), timeout).await {
            tracing::warn!("{part}: could not rebuild {candidate} as a follower: {e}");
        }
    }

    /// ChangeLeader to `candidate` and its op (C§3.5); returns how long the op ran.
    async fn change_leader(
        &self,
        part: Partition<'_>,
        candidate: &str,
        timeout: Duration,
    ) -> Result<Duration, UpgradeError> {
        let done = self.run_op_in(part, PartitionOp::ChangeLeader(candidate), Queue::Reserved, timeout).await?;
        // ChangeLeader answers OK without an op when no follower is on a healthy tablet (C§3.5).
        if !done.ops.iter().any(|o| o.op_type == "kChangeLeaderOP") {
            let led = self.partition(part).await?.alive_leader().map(|m| m.endpoint.clone());
            if led.as_deref() != Some(candidate) {
                return Err(partition_err(
                    part,
                    format!("the nameserver created no ChangeLeader op for {candidate} (no alive follower on a healthy tablet?)"),
                ));
            }
        }
        Ok(done.running)
    }
}
