//! Waiting for the cluster: a condition plus an explicit timeout, polled adaptively (fast at
//! first, backing off to 1 s), never a fixed 2 s sleep (O§5.11 item 13). A timeout names what
//! was awaited and the last state seen, so the operator knows where it stuck.
//!
//! [`wait_until`] is the mechanism; the waits below are the conditions the tool waits for, all
//! in this file: a tablet healthy, a nameserver leader elected, ops finished (all of them, one
//! partition's, some partitions of a table), a server reporting a version, a follower caught up
//! with its leader, a replica loaded.
//!
//! Each of these waits marks itself as waiting on OpenMLDB for the run's timing
//! ([`crate::timing::waiting`]): time spent in them is OpenMLDB's, the rest is ours.

use std::collections::BTreeSet;
use std::future::Future;
use std::time::{Duration, Instant};

use super::ns::{OpState, OpStatus, Partition, TableInfo};
use super::topology::Role;
use super::Cluster;
use crate::timing::{self, WaitKind};

/// One look at a condition.
pub enum Check<T> {
    Done(T),
    /// Not yet; the text says what is still missing (shown if the wait times out).
    Waiting(String),
    /// Not yet, and only queued behind other work the nameserver is doing (an op kInited in its
    /// queue, C§3.3): this time does not count against the timeout, so a wait scales with the
    /// work queued ahead of it (up to [`QUEUED_CAP`] times the timeout in all).
    Queued(String),
}

/// How many times its timeout a wait may last in all when most of it was queued.
pub const QUEUED_CAP: u32 = 20;

#[derive(Debug, Clone, thiserror::Error)]
pub enum WaitError {
    #[error("timed out after {waited:?} waiting for {what}; last seen: {last}")]
    Timeout { what: String, waited: Duration, last: String },
    #[error("gave up waiting for {what}: {reason}")]
    Failed { what: String, reason: String },
}

/// Polls `check` until it is done, fails, or `timeout` passes; the pause between looks grows
/// from 50 ms to 1 s.
pub async fn wait_until<T, F, Fut>(what: &str, timeout: Duration, check: F) -> Result<T, WaitError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Check<T>, String>>,
{
    wait_until_polling(what, timeout, Duration::from_secs(1), check).await
}

/// [`wait_until`] with the pause between looks growing to `max_pause` at most: for waits
/// whose end starts more work (a queued op whose partition has a next op to submit).
pub async fn wait_until_polling<T, F, Fut>(
    what: &str,
    timeout: Duration,
    max_pause: Duration,
    mut check: F,
) -> Result<T, WaitError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Check<T>, String>>,
{
    let started = Instant::now();
    let mut delay = Duration::from_millis(50);
    let mut indicator = crate::progress::WaitIndicator::new(what, timeout);
    // Time spent queued (Check::Queued) is not counted, up to the cap.
    let mut queued = Duration::ZERO;
    let cap = timeout.saturating_mul(QUEUED_CAP);
    let mut last_look = Instant::now();
    loop {
        let looked = Instant::now();
        let (last, was_queued) = match check().await {
            Ok(Check::Done(value)) => return Ok(value),
            Ok(Check::Waiting(state)) => (state, false),
            Ok(Check::Queued(state)) => (state, true),
            Err(reason) => return Err(WaitError::Failed { what: what.to_string(), reason }),
        };
        if was_queued {
            queued += looked.duration_since(last_look);
        }
        last_look = looked;
        let total = started.elapsed();
        let elapsed = total.saturating_sub(queued);
        if elapsed >= timeout || total >= cap {
            let waited = if total >= cap { cap } else { timeout };
            return Err(WaitError::Timeout { what: what.to_string(), waited, last });
        }
        tracing::trace!(what, ?elapsed, %last, "waiting");
        indicator.update(&last);
        tokio::time::sleep(delay.min(timeout - elapsed)).await;
        delay = (delay.mul_f32(1.5)).min(max_pause);
    }
}

/// The longest pause between two looks at a partition's ops: the partition's next op is
/// submitted as soon as this one is seen done, so the nameserver's queues (C§3.3) never sit
/// idle for long.
const OP_POLL_MAX: Duration = Duration::from_millis(200);

/// Where a set of ops stands: an error naming the first kFailed/kCanceled op, waiting while
/// any is unfinished (listing them), done otherwise.
pub fn ops_progress(ops: &[OpStatus]) -> Result<Check<()>, String> {
    if let Some(bad) = ops.iter().find(|o| o.is_failure()) {
        return Err(format!("op {bad} at task {}; see `ns::ops()` and the nameserver log", bad.task_type));
    }
    let pending: Vec<String> = ops.iter().filter(|o| !o.is_finished()).map(OpStatus::to_string).collect();
    Ok(if pending.is_empty() { Check::Done(()) } else { Check::Waiting(pending.join(", ")) })
}

/// What unfinished ops are waiting for: to run (kInited, in their queue, C§3.3) or to finish
/// running (kDoing).
fn op_wait(ops: &[OpStatus]) -> WaitKind {
    if ops.iter().any(|o| o.status == OpState::Doing) {
        WaitKind::OpRunning
    } else {
        WaitKind::OpQueued
    }
}

/// The ops a wait for a partition's ops saw finish, and how long they were running (kDoing)
/// rather than queued, as seen by polling.
#[derive(Debug, Clone)]
pub struct OpsDone {
    pub ops: Vec<OpStatus>,
    pub running: Duration,
}

/// The first `limit` items and how many more there are: `a, b, c and 4 more`.
fn first_few(items: &[String], limit: usize) -> String {
    let more = if items.len() > limit { format!(" and {} more", items.len() - limit) } else { String::new() };
    format!("{}{more}", items.iter().take(limit).cloned().collect::<Vec<_>>().join(", "))
}

impl Cluster {
    /// Waits until the nameserver lists `tablet` kHealthy (after it registered again).
    pub async fn wait_tablet_listed_healthy(&self, tablet: &str, timeout: Duration) -> Result<(), WaitError> {
        let what = format!("the nameserver to list tablet {tablet} kHealthy");
        wait_until(&what, timeout, || async {
            let state =
                self.ns.show_tablet().await.map_err(|e| e.to_string())?.into_iter().find(|t| t.endpoint == tablet);
            Ok(match state {
                Some(t) if t.is_healthy() => Check::Done(()),
                Some(t) => Check::Waiting(format!("it shows it {}", t.state)),
                None => Check::Waiting("it does not list it".into()),
            })
        })
        .await
    }

    /// Waits until `tablet` is registered, `kHealthy`, and every partition replica the
    /// nameserver places on it is alive, loaded and in the right mode.
    pub async fn wait_tablet_healthy(&self, tablet: &str, timeout: Duration) -> Result<(), WaitError> {
        let what = format!("tablet {tablet} to be healthy (registered, kHealthy, every partition loaded and alive)");
        let _waiting = timing::waiting(WaitKind::Loading);
        wait_until(&what, timeout, || async {
            // A use_name tablet registers under its name (C§1.1).
            let node = format!("nodes/{}", self.ns.names().name(tablet).await);
            let registered = matches!(self.zk().stat(&node).await, Ok(Some(_)));
            if !registered {
                return Ok(Check::Waiting(format!("no ZooKeeper node {node}")));
            }
            let state =
                self.ns.show_tablet().await.map_err(|e| e.to_string())?.into_iter().find(|t| t.endpoint == tablet);
            match state {
                Some(t) if t.is_healthy() => {}
                Some(t) => return Ok(Check::Waiting(format!("nameserver shows it {}", t.state))),
                None => return Ok(Check::Waiting("the nameserver does not list it".into())),
            }
            let loaded = match self.tablets.loaded_partitions(tablet).await {
                Ok(loaded) => loaded,
                Err(e) => return Ok(Check::Waiting(format!("GetTableStatus failed: {e}"))),
            };
            let tables = self.ns.show_all_tables().await.map_err(|e| e.to_string())?;
            let mut missing = Vec::new();
            for t in &tables {
                for p in &t.table_partition {
                    let Some(m) = p.meta(tablet) else { continue };
                    let problem = match loaded.get(&(t.tid, p.pid)) {
                        _ if !m.is_alive => Some("not alive"),
                        None => Some("not loaded"),
                        Some(s) if !s.is_loaded() => Some("loading"),
                        Some(s) if s.is_leader() != m.is_leader => Some("mode differs from the nameserver"),
                        Some(_) => None,
                    };
                    if let Some(problem) = problem {
                        missing.push(format!("{} pid {} {problem}", t.full_name(), p.pid));
                    }
                }
            }
            Ok(if missing.is_empty() { Check::Done(()) } else { Check::Waiting(first_few(&missing, 3)) })
        })
        .await
    }

    /// Waits until a nameserver leader is elected and answers; returns its endpoint.
    pub async fn wait_nameserver_leader(&self, timeout: Duration) -> Result<String, WaitError> {
        let _waiting = timing::waiting(WaitKind::Session);
        wait_until("a nameserver leader to be elected and answer", timeout, || async {
            let leader = match self.ns.discover_leader().await {
                Ok(l) => l,
                Err(e) => return Ok(Check::Waiting(e.to_string())),
            };
            Ok(match self.ns.show_tablet().await {
                Ok(_) => Check::Done(leader),
                Err(e) => Check::Waiting(format!("{leader}: {e}")),
            })
        })
        .await
    }

    /// Waits until every op created after `since` has finished; fails on kFailed/kCanceled.
    /// Returns how many ops there were.
    pub async fn wait_ops_done(&self, since: u64, timeout: Duration) -> Result<usize, WaitError> {
        let what = format!("nameserver ops after #{since} to finish");
        let waiting = timing::waiting(WaitKind::OpQueued);
        wait_until(&what, timeout, || async {
            let ops = self.ns.show_op_status(None, None, None).await.map_err(|e| e.to_string())?;
            let ops: Vec<OpStatus> = ops.into_iter().filter(|o| o.op_id > since).collect();
            Ok(match ops_progress(&ops)? {
                Check::Done(()) => Check::Done(ops.len()),
                Check::Waiting(pending) | Check::Queued(pending) => {
                    waiting.set(op_wait(&ops));
                    Check::Waiting(pending)
                }
            })
        })
        .await
    }

    /// Waits until every op created after `since` on one partition has finished; fails on
    /// kFailed/kCanceled. `what` names the change the ops carry out. Returns the ops and how
    /// long they ran.
    pub async fn wait_partition_ops(
        &self,
        since: u64,
        part: Partition<'_>,
        what: &str,
        timeout: Duration,
    ) -> Result<OpsDone, WaitError> {
        let label = format!("{what} on {part} (ops after #{since})");
        let waiting = timing::waiting(WaitKind::OpQueued);
        let ops = wait_until_polling(&label, timeout, OP_POLL_MAX, || async {
            let ops = self.ns.ops_since(since, part.db(), part.name(), part.pid).await.map_err(|e| e.to_string())?;
            Ok(match ops_progress(&ops)? {
                Check::Done(()) => Check::Done(ops),
                Check::Waiting(pending) | Check::Queued(pending) => {
                    let kind = op_wait(&ops);
                    waiting.set(kind);
                    // Only queued behind other ops: the op's own time has not started.
                    if kind == WaitKind::OpQueued && !ops.is_empty() {
                        Check::Queued(pending)
                    } else {
                        Check::Waiting(pending)
                    }
                }
            })
        })
        .await?;
        Ok(OpsDone { ops, running: waiting.running() })
    }

    /// Waits until every op created after `since` on the `pids` of `table` has finished; fails
    /// on kFailed/kCanceled.
    pub async fn wait_table_ops(
        &self,
        since: u64,
        table: &TableInfo,
        pids: &BTreeSet<u32>,
        what: &str,
        timeout: Duration,
    ) -> Result<(), WaitError> {
        let label = format!("{what} of {} partitions of {} (ops after #{since})", pids.len(), table.full_name());
        let waiting = timing::waiting(WaitKind::OpQueued);
        wait_until_polling(&label, timeout, OP_POLL_MAX, || async {
            let ops =
                self.ns.show_op_status(Some(&table.db), Some(&table.name), None).await.map_err(|e| e.to_string())?;
            let ops: Vec<OpStatus> =
                ops.into_iter().filter(|o| o.op_id > since && o.pid.is_some_and(|p| pids.contains(&p))).collect();
            waiting.set(op_wait(&ops));
            ops_progress(&ops)
        })
        .await
    }

    /// Waits until no op of the partition is unfinished, whenever it was created (ops a killed
    /// run left queued finish before the partition's state is looked at).
    pub async fn wait_partition_idle(&self, part: Partition<'_>, timeout: Duration) -> Result<(), WaitError> {
        let waiting = timing::waiting(WaitKind::OpQueued);
        wait_until(&format!("earlier ops on {part} to finish"), timeout, || async {
            let ops = self.ns.ops_since(0, part.db(), part.name(), part.pid).await.map_err(|e| e.to_string())?;
            waiting.set(op_wait(&ops));
            let pending: Vec<String> = ops.iter().filter(|o| !o.is_finished()).map(OpStatus::to_string).collect();
            Ok(if pending.is_empty() { Check::Done(()) } else { Check::Waiting(pending.join(", ")) })
        })
        .await
    }

    /// Waits until `follower` has caught up with `leader` (within `delta` entries), both asked
    /// on their tablets (C§3.5).
    pub async fn wait_caught_up(
        &self,
        part: Partition<'_>,
        leader: &str,
        follower: &str,
        delta: u64,
        timeout: Duration,
    ) -> Result<(), WaitError> {
        let _waiting = timing::waiting(WaitKind::CatchUp);
        wait_until(&format!("{follower} to catch up with leader {leader} on {part}"), timeout, || async {
            // A leader or follower that does not answer (its requests already retried) has
            // crashed or is cut off: nothing will catch up, so the wait ends now rather than at
            // its timeout.
            let lead = self.tablets.answered_offset(leader, part.tid(), part.pid).await?;
            let follow = self.tablets.answered_offset(follower, part.tid(), part.pid).await?;
            Ok(match (lead, follow) {
                (Some(l), Some(f)) if f + delta >= l => {
                    if f < l {
                        tracing::warn!("{follower} takes over {part} {} entries behind (offset_delta {delta})", l - f);
                    }
                    Check::Done(())
                }
                (l, f) => Check::Waiting(format!("leader offset {}, follower offset {}", shown(l), shown(f))),
            })
        })
        .await
    }

    /// Waits until `endpoint` has the partition loaded and normal on its tablet (after a
    /// LoadTable) and, with `need_alive`, marked alive in the nameserver's view: what a replica
    /// needs before it may lead again (C§3.6). A tablet that does not answer (its request
    /// already retried) ends the wait: it crashed or is cut off, and its partitions come back
    /// through recover data once it runs again.
    pub async fn wait_replica_ready(
        &self,
        endpoint: &str,
        part: Partition<'_>,
        need_alive: bool,
        timeout: Duration,
    ) -> Result<(), WaitError> {
        let what = if need_alive {
            format!("{endpoint} to hold {part} alive and loaded")
        } else {
            format!("{endpoint} to load {part}")
        };
        let _waiting = timing::waiting(WaitKind::Loading);
        wait_until(&what, timeout, || async {
            let loaded = match self.tablets.partition_status(endpoint, part.tid(), part.pid).await {
                Ok(Some(s)) if s.is_loaded() => Ok(()),
                Ok(Some(s)) => Err(s.state.to_string()),
                Ok(None) => Err("not loaded".to_string()),
                Err(e) => return Err(format!("{endpoint} does not answer ({e}); is it running?")),
            };
            let alive = !need_alive || {
                let partition = self.ns.partition(part.db(), part.name(), part.pid).await.map_err(|e| e.to_string())?;
                partition.as_ref().and_then(|p| p.meta(endpoint)).is_some_and(|m| m.is_alive)
            };
            Ok(match (loaded, alive) {
                (Ok(()), true) => Check::Done(()),
                (Ok(()), false) => Check::Waiting(
                    "loaded, but not alive in the nameserver (with auto_failover off, run upgrade::recover_data() after a restart)".into(),
                ),
                (Err(state), _) => Check::Waiting(state),
            })
        })
        .await
    }

    /// Waits until the server at `endpoint` reports `version` (an X.Y.Z prefix is enough);
    /// returns the full version it reports.
    pub async fn wait_version(
        &self,
        role: Role,
        endpoint: &str,
        version: &str,
        timeout: Duration,
    ) -> Result<String, WaitError> {
        let what = format!("{endpoint} to report version {version}");
        let _waiting = timing::waiting(WaitKind::Starting);
        wait_until(&what, timeout, || async {
            Ok(match self.running_version(role, endpoint).await {
                Ok(v) if v == version || v.starts_with(&format!("{version}-")) => Check::Done(v),
                Ok(v) => Check::Waiting(format!("it reports {v}")),
                Err(e) => Check::Waiting(e.to_string()),
            })
        })
        .await
    }
}

/// An offset for messages: the number, or `-` when there is none (as `showtable` prints it).
fn shown(offset: Option<u64>) -> String {
    offset.map_or_else(|| "-".to_string(), |o| o.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn timeout_names_what_and_last_state() {
        let err = wait_until("tablet 10.0.0.1:10921 healthy", Duration::from_millis(120), || async {
            Ok::<Check<()>, String>(Check::Waiting("state kOffline".into()))
        })
        .await
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "timed out after 120ms waiting for tablet 10.0.0.1:10921 healthy; last seen: state kOffline"
        );
    }

    #[tokio::test]
    async fn done_returns_value_and_failure_stops_at_once() {
        let mut n = 0;
        let v = wait_until("n to reach 3", Duration::from_secs(5), || {
            n += 1;
            let n = n;
            async move { Ok::<_, String>(if n >= 3 { Check::Done(n) } else { Check::Waiting(format!("n={n}")) }) }
        })
        .await
        .unwrap();
        assert_eq!(v, 3);
        let err =
            wait_until("op 7", Duration::from_secs(5), || async { Err::<Check<()>, _>("op 7 is kFailed".to_string()) })
                .await
                .unwrap_err();
        assert_eq!(err.to_string(), "gave up waiting for op 7: op 7 is kFailed");
    }
}
