//! The nameserver's op queues, as this run fills them, so that a fenced partition never waits
//! in a queue.
//!
//! The nameserver runs the ops of one queue one after another (C§3.3): ChangeLeader,
//! RecoverTable and DelReplica go to queue `pid % --name_server_task_concurrency` (2 by
//! default), AddReplicaNS always to queue 0, and RecoverEndpoint's ops to `pid % concurrency`.
//! A ChangeLeader sent behind another op of its queue (a temporary replica's AddReplica, a
//! RecoverTable loading a replica) waits for it, and a partition fenced before that ChangeLeader
//! refuses writes all that time: at OpenMLDB's real timing that was up to 10 s.
//!
//! So a leader switch first reserves its queue: no op of this run enters that queue from then
//! on, and the switch fences only once the ops of this run already in the queue are finished.
//! The ChangeLeader then runs next. Other ops enter their queues once no switch holds them.
//! Ops that others send (another tool, a killed run's ops) are not seen here; the per-partition
//! wait for earlier ops ([`crate::cluster::Cluster::wait_partition_idle`]) covers the
//! partition's own.

use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

/// The nameserver's queues: `name_server_task_max_concurrency` (8) plus the 2 of replica
/// clusters (C§3.3).
pub const NS_QUEUES: usize = 10;

/// `--name_server_task_concurrency`'s default (C§3.3, C§7): the queues ChangeLeader,
/// RecoverTable and DelReplica ops are spread over by pid.
pub const TASK_CONCURRENCY: u32 = 2;

/// The queue of an op the nameserver spreads by pid over `concurrency` queues (C§3.3).
pub fn queue_of(pid: u32, concurrency: u32) -> usize {
    if concurrency > 0 && (concurrency as usize) < NS_QUEUES {
        (pid % concurrency) as usize
    } else {
        pid as usize % NS_QUEUES
    }
}

#[derive(Debug, Default)]
struct State {
    /// Ops of this run sent to each queue and not finished yet.
    in_flight: [usize; NS_QUEUES],
    /// Queues a leader switch holds.
    switching: [bool; NS_QUEUES],
}

/// This run's use of the nameserver's queues.
#[derive(Debug, Default)]
pub struct OpQueues {
    state: Mutex<State>,
    changed: Notify,
}

impl OpQueues {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until no switch holds any of `queues`, then counts one op in each until the guard
    /// is dropped (once the op finished, or failed).
    pub async fn enter(self: &Arc<Self>, queues: &[usize]) -> InQueues {
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut state = self.lock();
                if queues.iter().all(|&q| !state.switching[q]) {
                    for &q in queues {
                        state.in_flight[q] += 1;
                    }
                    return InQueues { queues: self.clone(), held: queues.to_vec() };
                }
            }
            notified.await;
        }
    }

    /// Holds `queue` for one leader switch: waits until no other switch holds it, keeps other
    /// ops out, and waits until this run's ops already in it are finished.
    pub async fn reserve(self: &Arc<Self>, queue: usize) -> Reserved {
        let mut reserved = None;
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut state = self.lock();
                if reserved.is_none() && !state.switching[queue] {
                    state.switching[queue] = true;
                    reserved = Some(Reserved { queues: self.clone(), queue });
                }
                if reserved.is_some() && state.in_flight[queue] == 0 {
                    break;
                }
            }
            notified.await;
        }
        reserved.unwrap_or_else(|| unreachable!("the loop ends once reserved"))
    }
}

/// Ops counted in their queues ([`OpQueues::enter`]).
#[derive(Debug)]
pub struct InQueues {
    queues: Arc<OpQueues>,
    held: Vec<usize>,
}

impl Drop for InQueues {
    fn drop(&mut self) {
        let mut state = self.queues.lock();
        for &q in &self.held {
            state.in_flight[q] = state.in_flight[q].saturating_sub(1);
        }
        drop(state);
        self.queues.changed.notify_waiters();
    }
}

/// A queue held for a leader switch ([`OpQueues::reserve`]).
#[derive(Debug)]
pub struct Reserved {
    queues: Arc<OpQueues>,
    queue: usize,
}

impl Drop for Reserved {
    fn drop(&mut self) {
        self.queues.lock().switching[self.queue] = false;
        self.queues.changed.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn queues_follow_the_nameservers_placement() {
        assert_eq!(queue_of(5, TASK_CONCURRENCY), 1);
        assert_eq!(queue_of(9, 8), 1);
        assert_eq!(queue_of(13, 0), 3);
        assert_eq!(queue_of(13, 10), 3);
    }

    #[tokio::test]
    async fn a_switch_waits_for_the_ops_in_its_queue_and_keeps_new_ones_out() {
        let queues = Arc::new(OpQueues::default());
        let add_replica = queues.enter(&[0]).await;
        let other_queue = queues.enter(&[1]).await;
        let switch = tokio::spawn({
            let queues = queues.clone();
            async move { queues.reserve(0).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!switch.is_finished(), "the switch went ahead of an op in its queue");
        drop(add_replica);
        let reserved = tokio::time::timeout(Duration::from_secs(5), switch).await.unwrap().unwrap();
        // The other queue is not held up; queue 0 is, until the switch is done.
        let late = tokio::spawn({
            let queues = queues.clone();
            async move { queues.enter(&[0, 1]).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!late.is_finished(), "an op entered a queue a switch holds");
        drop(reserved);
        let entered = tokio::time::timeout(Duration::from_secs(5), late).await.unwrap().unwrap();
        assert_eq!(entered.held, vec![0, 1]);
        drop(other_queue);
    }
}
