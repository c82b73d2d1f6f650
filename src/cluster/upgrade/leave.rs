//! Leaving a cluster serving when a run stops early (an error, Ctrl-C, a panic): before the
//! process lets go of the lock it lifts the fences it raised and puts auto_failover back, so no
//! leader keeps refusing writes and the nameserver handles a failure again (C§3.4), whoever
//! comes next. What needs more than that (components left stopped, leaders moved off a tablet)
//! is listed for `abort` or a re-run. A `kill -9` skips this; the next run or `abort` does it.
//!
//! A fence is lifted only once the partition's ops are finished: a ChangeLeader still queued
//! would otherwise make the candidate leader while the old leader takes writes again (C§3.5,
//! C§6 hazards 5 and 6). A fence whose ops do not finish in time stays, and is reported.

use super::{UpgradeError, Upgrader, OPS_SETTLE};
use crate::cluster::ns::Partition;

/// What a run that stopped early undid and what it leaves.
#[derive(Debug, Default)]
pub struct LeftBehind {
    /// Fences lifted (leaders taking writes again).
    pub fences_lifted: usize,
    /// Fences left because their partition still had ops running, as `db.table pid N on EP`.
    pub fences_left: Vec<String>,
    /// The auto_failover value put back, when the run had turned it off.
    pub auto_failover: Option<bool>,
    /// Why auto_failover was left off (a tablet leading partitions is down).
    pub auto_failover_held: Option<String>,
    /// Components the run stopped and did not start again.
    pub stopped: Vec<String>,
    /// Tablets whose leaders were moved off and not moved back.
    pub drained: Vec<String>,
}

impl LeftBehind {
    /// Whether `abort` (or a re-run) still has something to do.
    pub fn needs_abort(&self) -> bool {
        !self.fences_left.is_empty()
            || !self.stopped.is_empty()
            || !self.drained.is_empty()
            || self.auto_failover_held.is_some()
    }
}

impl Upgrader {
    /// Lifts the run's fences (once their partitions' ops are done) and puts auto_failover back;
    /// `say` gets a line per step. Returns what was done and what is left.
    pub async fn leave_serving(&self, say: &(dyn Fn(&str) + Sync)) -> Result<LeftBehind, UpgradeError> {
        let mut left = LeftBehind::default();
        let fences = self.stale_fences().await?.len();
        if fences > 0 {
            say(&format!("lifting {fences} fence(s) so that their leaders take writes again"));
        }
        let lifted = self.lift_stale_fences().await?;
        left.fences_lifted = lifted.lifted;
        left.fences_left = lifted.left;
        // Not a reason to leave auto_failover off: what is not deleted stays recorded.
        if let Err(e) = self.delete_temp_replicas_ahead(say).await {
            say(&format!("the temporary replicas added ahead of a drain stay, for abort or a re-run: {e}"));
        }
        if let Some(value) = self.recorded_auto_failover().await? {
            say(&format!("putting auto_failover back to {value}"));
            match self.restore_auto_failover().await {
                Ok(restored) => left.auto_failover = restored,
                Err(held @ UpgradeError::AutoFailoverHeld { .. }) => {
                    say(&held.to_string());
                    left.auto_failover_held = Some(held.to_string());
                }
                Err(e) => return Err(e),
            }
        }
        left.stopped = self.journal.keys("stopped").await?;
        left.drained = self.drained_tablets().await?;
        Ok(left)
    }

    /// Deletes the temporary replicas added ahead of a drain that has not begun (every move
    /// recorded for the tablet is a temporary replica whose leader did not move,
    /// [`Upgrader::start_adding_temp_replicas`]), once they are added: the run that stops
    /// leaves no replica it only added for later. Each is a follower, so DelReplicaNS takes it
    /// whatever auto_failover is (C§3.6). One that cannot be deleted now stays recorded for
    /// `abort` or a re-run.
    async fn delete_temp_replicas_ahead(&self, say: &(dyn Fn(&str) + Sync)) -> Result<(), UpgradeError> {
        self.wait_temp_replicas(None).await;
        for tablet in self.drained_tablets().await? {
            let moves = self.recorded_moves(&tablet).await?;
            let ahead_only = moves.iter().all(|m| m.temp_replica && m.state == super::MoveState::Planned);
            if moves.is_empty() || !ahead_only {
                continue;
            }
            say(&format!(
                "deleting {} temporary replica(s) added ahead of the drain of {tablet}, which had not begun",
                moves.len()
            ));
            let tables = self.tables_by_tid().await?;
            let mut all_deleted = true;
            for m in &moves {
                let Some(table) = tables.get(&m.tid) else { continue };
                let part = Partition::new(table, m.pid);
                let deleted = match self.cluster.wait_partition_idle(part, OPS_SETTLE).await {
                    Ok(()) => self.delete_temp_replica(part, &m.to, OPS_SETTLE).await,
                    Err(e) => Err(e.into()),
                };
                if let Err(e) = deleted {
                    say(&format!("{part}: the temporary replica on {} stays, for abort or a re-run: {e}", m.to));
                    all_deleted = false;
                }
            }
            if all_deleted {
                self.journal.delete_tree(&super::drain_key(&tablet)).await?;
            }
        }
        Ok(())
    }
}
