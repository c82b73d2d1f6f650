//! Replica ops that meet a scheduled snapshot.
//!
//! Every op that copies a partition to a replica (AddReplica, and the ReAddReplica ops a
//! RecoverTable creates, C§3.1) starts with PauseSnapshot on the partition's leader. A tablet
//! snapshots every replica it holds at its `--make_snapshot_time` hour, holding each in
//! kMakingSnapshot meanwhile, and PauseSnapshot refuses a replica that is not kTableNormal
//! (`kTableStatusIsNotKnormal`, tablet_impl.cc:3058-3063): the op fails at its first task and
//! changes nothing. On a real cluster a rolling upgrade that runs into that hour sees it on
//! every op it sends then; the op is sent again once the leader's snapshot is over.

use std::time::Duration;

use super::{UpgradeError, Upgrader};
use crate::cluster::ns::{OpStatus, Partition};
use crate::cluster::tablet::TableState;
use crate::cluster::wait::{wait_until, Check};
use crate::timing::{self, WaitKind};

/// How many times one op is sent again after failing at PauseSnapshot. A snapshot of one
/// replica is over in seconds to minutes; a replica that keeps refusing is something else.
pub const PAUSE_SNAPSHOT_RETRIES: usize = 3;

impl Upgrader {
    /// The op created after `since` on `part` that failed at PauseSnapshot, if one did.
    pub(super) async fn failed_at_pause_snapshot(&self, part: Partition<'_>, since: u64) -> Option<OpStatus> {
        let ops = self.cluster.ns.ops_since(since, part.db(), part.name(), part.pid).await.ok()?;
        ops.into_iter().find(|o| o.is_failure() && o.task_type == "kPauseSnapshot")
    }

    /// Waits until the leader of `part` is no longer making a snapshot (or no longer answers
    /// for the partition: the op sent again then fails on its own terms).
    pub(super) async fn wait_leader_snapshot_over(
        &self,
        part: Partition<'_>,
        failed: &OpStatus,
        timeout: Duration,
    ) -> Result<(), UpgradeError> {
        let p = self.partition(part).await?;
        let Some(leader) = p.alive_leader().map(|m| m.endpoint.clone()) else { return Ok(()) };
        tracing::warn!(
            "{part}: op {failed} failed at PauseSnapshot: the leader's replica on {leader} was not kTableNormal \
             (a scheduled snapshot, `--make_snapshot_time`); sending it again once that snapshot is over"
        );
        let _waiting = timing::waiting(WaitKind::OpRunning);
        let (tablets, tid, pid) = (&self.cluster.tablets, part.table.tid, part.pid);
        wait_until(&format!("the snapshot of {part} on {leader} to end"), timeout, || async {
            Ok(match tablets.partition_status(&leader, tid, pid).await {
                Ok(Some(status)) if status.state == TableState::MakingSnapshot => {
                    Check::Waiting(format!("{leader} has it in kMakingSnapshot"))
                }
                _ => Check::Done(()),
            })
        })
        .await?;
        Ok(())
    }
}
