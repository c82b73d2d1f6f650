//! One leader switch: fence the old leader, then ChangeLeader to a caught-up candidate (C§3.5),
//! the op tracked by its id. The replaced leader is left marked dead in the nameserver (and a
//! follower on its tablet) until it is re-added as a follower ([`super::follower`]).

use std::time::Duration;

use super::{partition_err, MoveSettings, PartitionOp, UpgradeError, Upgrader};
use crate::cluster::ns::Partition;

impl Upgrader {
    /// Moves the leader of `pid` from `old_leader` to `candidate` without losing an
    /// acknowledged write: fence ([`Upgrader::fence_leader`]), then ChangeLeader. A failed
    /// ChangeLeader lifts the fence.
    pub(super) async fn switch_leader(
        &self,
        part: Partition<'_>,
        old_leader: &str,
        candidate: &str,
        settings: &MoveSettings,
    ) -> Result<(), UpgradeError> {
        let fence = self.fence_leader(part, old_leader, candidate, settings).await?;
        if let Err(e) = self.change_leader(part, candidate, settings.op_timeout).await {
            // The old leader leads again if the nameserver still says it does.
            self.lift_fence_or_warn(&fence).await;
            return Err(e);
        }
        self.forget_fence(part.tid(), part.pid).await
    }

    /// ChangeLeader to `candidate` and its op (C§3.5).
    async fn change_leader(&self, part: Partition<'_>, candidate: &str, timeout: Duration) -> Result<(), UpgradeError> {
        let ops = self.run_op(part, PartitionOp::ChangeLeader(candidate), timeout).await?;
        // ChangeLeader answers OK without an op when no follower is on a healthy tablet (C§3.5).
        if !ops.iter().any(|o| o.op_type == "kChangeLeaderOP") {
            let led = self.partition(part).await?.alive_leader().map(|m| m.endpoint.clone());
            if led.as_deref() != Some(candidate) {
                return Err(partition_err(
                    part,
                    format!("the nameserver created no ChangeLeader op for {candidate} (no alive follower on a healthy tablet?)"),
                ));
            }
        }
        Ok(())
    }
}
