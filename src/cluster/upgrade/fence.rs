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
//! `abort` ([`Upgrader::lift_stale_fences`]) once its partition's ops are finished.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::{partition_err, MoveSettings, UpgradeError, Upgrader, OPS_SETTLE};
use crate::cluster::ns::Partition;
use crate::cluster::tablet::TabletError;
use crate::timing::{self, WaitKind};

/// How long after the fence a replication call already on its way may still land. ChangeRole
/// deletes the leader's replicate nodes (`LogReplicator::DelAllReplicateNode`,
/// tablet_impl.cc:2182), so at most the batch in flight arrives after it.
const FENCE_SETTLE: Duration = Duration::from_millis(200);
/// How often the leader's and the candidate's offsets are compared while waiting for the moment
/// to fence: a follower is level with its leader right after a replication batch (every
/// `binlog_sync_wait_time`, 100 ms by default, or on each Put with `binlog_notify_on_put`).
const FENCE_POLL: Duration = Duration::from_millis(10);
/// How close (in entries) the candidate must be before the fast comparisons start.
const FENCE_NEAR: u64 = 1000;

/// How a fence went: writes are refused from `fenced_at` on, until the new leader takes them.
#[derive(Debug, Clone, Copy)]
pub struct FenceOutcome {
    pub fenced_at: Instant,
    /// Fences raised, including the last one: each one before it was lifted again because the
    /// candidate was short of the frozen leader.
    pub attempts: u32,
}

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

impl Fence {
    /// `db.table pid N`, as messages name the partition (as [`super::LeaderMove::partition`]).
    pub fn partition(&self) -> String {
        format!("{}.{} pid {}", self.db, self.table, self.pid)
    }
}

/// The journal key of the fence on one partition.
fn fence_key(tid: u32, pid: u32) -> String {
    format!("fence/{tid}-{pid}")
}

impl Upgrader {
    /// Stops `leader` from acknowledging writes for `pid` once `candidate` holds every entry it
    /// acknowledged (within `offset_delta`).
    ///
    /// The fence also stops the leader's replication (`LogReplicator::DelAllReplicateNode`), so
    /// an entry not yet sent when it lands never reaches the candidate. The fence is therefore
    /// raised at the moment the candidate is seen level with the leader (both asked every
    /// [`FENCE_POLL`]), and the candidate must then reach the leader's frozen offset. When it
    /// does not, the leader leads again with its own term, replication resumes, and the next
    /// level moment is waited for, until `catchup_timeout`. Whatever fails, the fence is lifted
    /// before the error returns.
    pub async fn fence_leader(
        &self,
        part: Partition<'_>,
        leader: &str,
        candidate: &str,
        settings: &MoveSettings,
    ) -> Result<(Fence, FenceOutcome), UpgradeError> {
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
        let delta = settings.offset_delta;
        self.journal.put(&fence_key(tid, pid), &fence).await?;
        let started = Instant::now();
        let fenced = async {
            let mut attempts = 0;
            let mut shortfalls = Vec::new();
            loop {
                let level = self.wait_level(part, leader, candidate, delta, started, settings).await;
                if let Err(NotLevel::NoAnswer(why)) = level {
                    return Err(partition_err(
                        part,
                        format!("{why}; the leader {leader} is unchanged: start {candidate} again (its data comes back through recover data), then re-run"),
                    ));
                }
                if let Err(NotLevel::Short(last)) = level {
                    return Err(partition_err(
                        part,
                        format!(
                            "{candidate} was never level with {leader} within {} (last: {last}; short after fencing by {shortfalls:?} entries); the leader is unchanged. Lower the write rate, give catchup_timeout more time, or allow a lag with offset_delta",
                            humantime::format_duration(settings.catchup_timeout)
                        ),
                    ));
                }
                tablets.change_role_to_follower(leader, tid, pid).await?;
                let fenced_at = Instant::now();
                attempts += 1;
                // The leader's offset is final now; only a batch already sent may still land.
                let frozen = tablets.loaded_offset(leader, tid, pid).await;
                match self.wait_reached(part, candidate, frozen, delta).await {
                    Ok(()) => return Ok(FenceOutcome { fenced_at, attempts }),
                    Err(short) => {
                        tracing::debug!("{part}: {candidate} was {short} entries short after fencing {leader} (attempt {attempts}); leading again");
                        shortfalls.push(short);
                        self.unfence(&fence).await?;
                    }
                }
            }
        };
        match fenced.await {
            Ok(outcome) => Ok((fence, outcome)),
            Err(e) => {
                self.lift_fence_or_warn(&fence).await;
                Err(e)
            }
        }
    }

    /// Waits the ordinary way (polls growing to a second) until `candidate` is close to
    /// `leader`: a follower just added or on a slow tablet may be far behind.
    pub(super) async fn wait_near(
        &self,
        part: Partition<'_>,
        leader: &str,
        candidate: &str,
        settings: &MoveSettings,
    ) -> Result<(), UpgradeError> {
        let near = settings.offset_delta + FENCE_NEAR;
        Ok(self.cluster.wait_caught_up(part, leader, candidate, near, settings.catchup_timeout).await?)
    }

    /// Waits until `candidate` is within `delta` of `leader`, looking every [`FENCE_POLL`]
    /// (the leader first, so an entry the candidate has was written before the comparison),
    /// until `catchup_timeout` after `started`. The error is the last comparison.
    async fn wait_level(
        &self,
        part: Partition<'_>,
        leader: &str,
        candidate: &str,
        delta: u64,
        started: Instant,
        settings: &MoveSettings,
    ) -> Result<(), NotLevel> {
        let _waiting = timing::waiting(WaitKind::CatchUp);
        let tablets = &self.cluster.tablets;
        loop {
            let lead = tablets.loaded_offset(leader, part.tid(), part.pid).await;
            // A candidate that does not answer will not catch up: no point waiting for it.
            let follow = tablets.answered_offset(candidate, part.tid(), part.pid).await.map_err(NotLevel::NoAnswer)?;
            if let (Some(l), Some(f)) = (lead, follow) {
                if f + delta >= l {
                    return Ok(());
                }
            }
            if started.elapsed() >= settings.catchup_timeout {
                return Err(NotLevel::Short(format!("leader offset {lead:?}, candidate offset {follow:?}")));
            }
            tokio::time::sleep(FENCE_POLL).await;
        }
    }

    /// Waits up to [`FENCE_SETTLE`] for `candidate` to reach the fenced leader's `frozen`
    /// offset (within `delta`); the error is how many entries it is short.
    async fn wait_reached(
        &self,
        part: Partition<'_>,
        candidate: &str,
        frozen: Option<u64>,
        delta: u64,
    ) -> Result<(), u64> {
        let Some(frozen) = frozen else { return Err(u64::MAX) };
        let _waiting = timing::waiting(WaitKind::CatchUp);
        let deadline = Instant::now() + FENCE_SETTLE;
        loop {
            let follow = self.cluster.tablets.loaded_offset(candidate, part.tid(), part.pid).await.unwrap_or(0);
            if follow + delta >= frozen {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(frozen - follow);
            }
            tokio::time::sleep(FENCE_POLL).await;
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
                    tracing::warn!("fenced leader {} of {} is not answering ({e}); it gets its role from the nameserver when it is recovered", fence.endpoint, fence.partition());
                }
                other => other?,
            }
        }
        self.forget_fence(fence.tid, fence.pid).await
    }

    /// Lifts a fence on the way out of a failed switch, once the partition's ops are finished:
    /// a ChangeLeader that timed out may still be queued or running, and the old leader must not
    /// take writes again before it is done (see [`Upgrader::lift_stale_fences`]). A fence whose
    /// partition stays busy, or that cannot be lifted, is logged and left recorded for the end
    /// of the run, the next run or `abort`; the switch's own error is the one reported.
    pub(super) async fn lift_fence_or_warn(&self, fence: &Fence) {
        let partition = fence.partition();
        match self.fence_settled(fence).await {
            Ok(true) => {
                if let Err(e) = self.lift_fence(fence).await {
                    tracing::warn!("{partition}: could not lift the fence on {}: {e}", fence.endpoint);
                }
            }
            Ok(false) => tracing::warn!(
                "{partition}: the fence on {} stays up: the partition still has ops queued or running after {} s, and its leader must not take writes before they are done; the end of the run, the next run or abort lifts it once they are",
                fence.endpoint,
                OPS_SETTLE.as_secs()
            ),
            Err(e) => tracing::warn!(
                "{partition}: the fence on {} stays up, as the partition's ops could not be read ({e}); the end of the run, the next run or abort lifts it",
                fence.endpoint
            ),
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

    /// Lifts every fence a stopped run left behind (see [`Upgrader::lift_fence`]), each once its
    /// partition has no op queued or running. A ChangeLeader the stopped run had queued would
    /// otherwise make the candidate leader after the old leader took writes again in its old
    /// term, and those writes would be lost (C§3.5, C§6 hazards 5 and 6). A fence whose
    /// partition is still busy after [`OPS_SETTLE`] stays up and is returned in `left`.
    pub async fn lift_stale_fences(&self) -> Result<LiftedFences, UpgradeError> {
        let fences = self.stale_fences().await?;
        let settled = futures::future::join_all(fences.iter().map(|fence| self.fence_settled(fence))).await;
        let mut lifted = LiftedFences::default();
        for (fence, settled) in fences.iter().zip(settled) {
            if settled? {
                tracing::info!("lifting the fence a stopped run left on {} for {}", fence.endpoint, fence.partition());
                self.lift_fence(fence).await?;
                lifted.lifted += 1;
            } else {
                lifted.left.push(format!("{} on {}", fence.partition(), fence.endpoint));
            }
        }
        Ok(lifted)
    }

    /// Whether the fenced partition's ops are finished (up to [`OPS_SETTLE`]); a dropped
    /// table has none that could switch it.
    async fn fence_settled(&self, fence: &Fence) -> Result<bool, UpgradeError> {
        let Some(table) = self.cluster.ns.show_table(&fence.db, &fence.table).await? else { return Ok(true) };
        let part = Partition::new(&table, fence.pid);
        Ok(self.cluster.wait_partition_idle(part, OPS_SETTLE).await.is_ok())
    }
}

/// What became of the fences a stopped run left ([`Upgrader::lift_stale_fences`]).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct LiftedFences {
    /// Fences lifted (their leaders take writes again, or the switch had happened).
    pub lifted: usize,
    /// Fences left up, as `db.table pid N on EP`: their partitions still had ops queued or
    /// running.
    pub left: Vec<String>,
}

impl LiftedFences {
    /// Fails when a fence stays up: a drain or restore must not start while a stopped run's
    /// switch may still run. The error says what to do.
    pub(super) fn require_all(self) -> Result<usize, UpgradeError> {
        if self.left.is_empty() {
            return Ok(self.lifted);
        }
        Err(UpgradeError::FencesLeft { fences: self.left.join(", "), secs: OPS_SETTLE.as_secs() })
    }
}

/// Why a candidate did not come level with the leader.
enum NotLevel {
    /// The candidate's tablet does not answer.
    NoAnswer(String),
    /// Still short at `catchup_timeout`: the last comparison.
    Short(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fence_left_up_stops_a_drain_or_restore_and_says_what_to_do() {
        let all = LiftedFences { lifted: 2, left: Vec::new() };
        assert_eq!(all.require_all().unwrap(), 2);
        let busy = LiftedFences { lifted: 1, left: vec!["demo.double pid 0 on 127.0.0.2:9527".into()] };
        let message = busy.require_all().unwrap_err().to_string();
        for said in ["demo.double pid 0 on 127.0.0.2:9527", "after 30 s", "mldb-upgrade status", "re-run"] {
            assert!(message.contains(said), "{said:?} missing from: {message}");
        }
    }
}
