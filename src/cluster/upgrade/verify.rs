//! Verify: a structured health report of the cluster, the checks the documented procedure asks
//! for after each tablet (O§6.1, C§6 "upgrade done"): tablets healthy, every replica alive and
//! loaded in the mode the nameserver expects, a leader for every partition, as many replicas as
//! the table's `replica_num` (no temporary replica left), no op failed or still pending; and,
//! against the baseline the run recorded at pre-flight ([`super::baseline`]), no leader offset
//! below its recorded one and no table that took writes with fewer rows.

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};

use super::baseline::{self, TableNow};
use super::{UpgradeError, Upgrader};
use crate::cluster::ns;

/// The ops the nameserver makes when a tablet goes offline or comes back (`OnTabletOffline`,
/// `OnTabletOnline`, `src/nameserver/name_server_impl.cc`; C§3.4): what a finished
/// kRecoverTableOP on the same partition does again (the replica loaded, re-added, its status set).
const RECOVERY_OPS: [&str; 8] = [
    "kOfflineReplicaOP",
    "kRecoverTableOP",
    "kReAddReplicaOP",
    "kReAddReplicaNoSendOP",
    "kReAddReplicaWithDropOP",
    "kReAddReplicaSimplifyOP",
    "kUpdatePartitionStatusOP",
    "kReLoadTableOP",
];

/// A later op on the same partition that finished (kDone) and redid the failed op's work: one of
/// the same type, or a kRecoverTableOP after a failed recovery op (a tablet that died while the
/// nameserver failed it over, then came back). Such a failure is history, not a problem: the
/// partition's replicas, leader and offsets are checked as they are now.
fn superseded_by<'a>(failed: &ns::OpStatus, ops: &'a [ns::OpStatus]) -> Option<&'a ns::OpStatus> {
    ops.iter().find(|later| {
        later.op_id > failed.op_id
            && later.status == ns::OpState::Done
            && later.db == failed.db
            && later.name == failed.name
            && later.pid == failed.pid
            && (later.op_type == failed.op_type
                || (later.op_type == "kRecoverTableOP" && RECOVERY_OPS.contains(&failed.op_type.as_str())))
    })
}

/// Journal key of the ops a run made that failed because a tablet went down while they ran
/// (recorded by `run_op`): reported as notes, not as failed ops. Kept after the run, so that
/// later checks (the next run's pre-flight, `verify` in the REPL) explain them the same way; a
/// few bytes per op, and only ops failed by a crash are recorded.
pub const EXCUSED_OPS: &str = "excused_ops";

/// A failed op of this run that a crash explains.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExcusedOp {
    /// The op as ShowOPStatus showed it when it failed.
    pub op: String,
    pub reason: String,
}

/// What `verify` found.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct VerifyReport {
    pub healthy: bool,
    pub failed_ops: Vec<String>,
    pub pending_ops: Vec<String>,
    pub partitions_not_alive: Vec<String>,
    pub partitions_without_leader: Vec<String>,
    /// Leader/follower or load-state disagreements between the nameserver and the tablets.
    pub mismatches: Vec<String>,
    pub unhealthy_tablets: Vec<String>,
    /// Partitions whose replica count is not the table's `replica_num`: a temporary replica
    /// left behind (more) or a replica lost (fewer).
    pub replica_counts: Vec<String>,
    /// Tablets the nameserver still lists as offline that the cluster config does not have:
    /// left by an earlier scale-in (C§3.4: a tablet whose node is gone stays in ShowTablet as kOffline).
    /// Reported, not a problem: they hold no replica the checks above would not catch.
    pub stale_tablets: Vec<String>,
    /// Partitions whose leader is at a lower offset than the leader had at pre-flight:
    /// acknowledged writes are not on the leader (compared with the run's baseline).
    pub offsets_lost: Vec<String>,
    /// Tables that took writes during the run and have fewer rows than at pre-flight.
    pub rows_lost: Vec<String>,
    /// Whether offsets and rows were compared with a baseline this run recorded.
    pub baseline: bool,
    /// What was not checked and why (tables whose rows can shrink on their own, tables dropped
    /// since pre-flight). Not problems.
    pub notes: Vec<String>,
    /// Rows per table (`db.table`), counted on the leaders.
    pub rows: BTreeMap<String, u64>,
    /// What is wrong, as a short list for messages: one line per kind of problem, with the
    /// first few cases; empty when healthy.
    pub summary: String,
}

impl VerifyReport {
    fn summarize(&self) -> String {
        let kinds: [(&str, &Vec<String>, &str); 9] = [
            (
                "tablets not healthy",
                &self.unhealthy_tablets,
                "start them or wait until they register (wait::tablet_healthy)",
            ),
            (
                "failed ops",
                &self.failed_ops,
                "ns::ops() (ShowOPStatus) names the task that failed; fix its cause and redo what the op was for, \
                 then delete the op (DeleteOP, or ns_client `deleteop <op_id>`) so that it stops counting",
            ),
            ("ops in progress", &self.pending_ops, "wait for them (wait::ops_done)"),
            ("replicas not alive", &self.partitions_not_alive, "upgrade::recover_data() re-adds them"),
            ("partitions without a leader", &self.partitions_without_leader, "upgrade::recover_data() picks one"),
            (
                "nameserver and tablets disagree",
                &self.mismatches,
                "upgrade::recover_data() reloads and re-adds the replicas",
            ),
            (
                "partitions with another number of replicas than replica_num",
                &self.replica_counts,
                "DelReplicaNS a leftover temporary replica, AddReplicaNS a missing one",
            ),
            (
                "partitions whose leader lost acknowledged writes",
                &self.offsets_lost,
                "stop writes to the table; find the replica with the highest offset (tablet::status on each \
                 replica's tablet) and make it leader (ns::change_leader naming it) before RecoverTable rebuilds \
                 it from this leader; if no replica holds the entries any more, write the lost rows again from \
                 their source",
            ),
            (
                "tables with fewer rows than at pre-flight although they took writes",
                &self.rows_lost,
                "unless rows were deleted or the table truncated during the run, rows were lost: compare each \
                 partition's replicas (tablet::status) and let the one with the most rows lead, as for lost writes",
            ),
        ];
        let lines: Vec<String> = kinds
            .iter()
            .filter(|(_, items, _)| !items.is_empty())
            .map(|(kind, items, what_to_do)| {
                let more = if items.len() > 3 { format!(" and {} more", items.len() - 3) } else { String::new() };
                format!(
                    "  - {} {kind}: {}{more}\n    what to do: {what_to_do}",
                    items.len(),
                    items.iter().take(3).cloned().collect::<Vec<_>>().join("; ")
                )
            })
            .collect();
        lines.join("\n")
    }
}

impl Upgrader {
    /// Checks the cluster; ops count from `since_op`.
    pub async fn verify(&self, since_op: u64) -> Result<VerifyReport, UpgradeError> {
        let ns = &self.cluster.ns;
        let mut report = VerifyReport::default();
        // Temporary replicas added ahead of a drain are finished and then counted as the
        // drain's (recorded in the journal): the one extra replica of such a partition is
        // expected until its tablet's restore deletes it.
        self.wait_temp_replicas(None).await;
        let mut ahead_of_drain: std::collections::HashSet<(u32, u32, String)> = std::collections::HashSet::new();
        for tablet in self.drained_tablets().await? {
            for m in self.recorded_moves(&tablet).await?.into_iter().filter(|m| m.temp_replica) {
                ahead_of_drain.insert((m.tid, m.pid, m.to));
            }
        }
        let all = ns.show_tablet().await?;
        let configured = |endpoint: &str| {
            self.cluster.configured_tablets.as_ref().is_none_or(|known| known.iter().any(|k| k == endpoint))
        };
        for t in all.iter().filter(|t| !t.is_healthy()) {
            if configured(&t.endpoint) {
                report.unhealthy_tablets.push(t.endpoint.clone());
            } else {
                report.stale_tablets.push(format!("{} ({})", t.endpoint, t.state));
            }
        }
        let statuses = self.loaded_on_healthy_tablets().await?;
        let recorded = self.recorded_baseline().await?;
        report.baseline = recorded.is_some();
        let mut compared = HashSet::new();
        for table in ns.show_all_tables().await? {
            let full = table.full_name();
            if let Some(before) = recorded.as_ref().and_then(|r| r.get(&table.tid)) {
                compared.insert(table.tid);
                let growth = baseline::compare(before, &table, &TableNow::of(&table, &statuses));
                report.offsets_lost.extend(growth.offsets_lost);
                report.rows_lost.extend(growth.rows_lost);
                report.notes.extend(growth.note);
            }
            let mut rows = 0;
            for p in &table.table_partition {
                for m in &p.partition_meta {
                    if !m.is_alive {
                        report.partitions_not_alive.push(format!("{full} pid {} on {}", p.pid, m.endpoint));
                        continue;
                    }
                    let Some(on_tablet) = statuses.get(&m.endpoint) else { continue };
                    match on_tablet.get(&(table.tid, p.pid)) {
                        None => report.mismatches.push(format!("{full} pid {} not loaded on {}", p.pid, m.endpoint)),
                        Some(s) if s.is_leader() != m.is_leader => report.mismatches.push(format!(
                            "{full} pid {} on {}: nameserver says {}, tablet says {}",
                            p.pid,
                            m.endpoint,
                            if m.is_leader { "leader" } else { "follower" },
                            s.mode
                        )),
                        Some(s) if !s.is_loaded() => {
                            report.mismatches.push(format!("{full} pid {} on {} is {}", p.pid, m.endpoint, s.state))
                        }
                        Some(s) if m.is_leader => rows += s.record_cnt,
                        Some(_) => {}
                    }
                }
                if p.alive_leader().is_none() {
                    report.partitions_without_leader.push(format!("{full} pid {}", p.pid));
                }
                let replicas = p.partition_meta.len() as u32;
                let recorded_temp = replicas == table.replica_num + 1
                    && p.partition_meta
                        .iter()
                        .any(|m| ahead_of_drain.contains(&(table.tid, p.pid, m.endpoint.clone())));
                if table.replica_num > 0 && replicas != table.replica_num && !recorded_temp {
                    let what = if replicas > table.replica_num {
                        "a temporary replica left? DelReplicaNS the extra one"
                    } else {
                        "a replica is missing: AddReplicaNS one"
                    };
                    report.replica_counts.push(format!(
                        "{full} pid {} has {replicas} replicas, replica_num is {} ({what})",
                        p.pid, table.replica_num
                    ));
                }
            }
            report.rows.insert(full, rows);
        }
        for (tid, gone) in recorded.iter().flatten().filter(|(tid, _)| !compared.contains(*tid)) {
            report
                .notes
                .push(format!("{}.{} (tid {tid}) was dropped since pre-flight: not compared", gone.db, gone.name));
        }
        let ops = ns.show_op_status(None, None, None).await?;
        let excused: BTreeMap<String, ExcusedOp> = self.journal.get_all(EXCUSED_OPS).await?.into_iter().collect();
        for op in ops.iter().filter(|o| o.op_id > since_op) {
            if op.is_failure() {
                if let Some(excused) = excused.get(&op.op_id.to_string()) {
                    report.notes.push(format!(
                        "op {op} of this run failed because {}; the partition is checked as it is now",
                        excused.reason
                    ));
                    continue;
                }
                match superseded_by(op, &ops) {
                    Some(later) => report.notes.push(format!(
                        "op {op} failed, and the later op {later} on that partition redid its work: \
                         the partition is checked as it is now"
                    )),
                    None => report.failed_ops.push(op.to_string()),
                }
            } else if !op.is_finished() {
                report.pending_ops.push(op.to_string());
            }
        }
        report.healthy = report.unhealthy_tablets.is_empty()
            && report.partitions_not_alive.is_empty()
            && report.partitions_without_leader.is_empty()
            && report.mismatches.is_empty()
            && report.replica_counts.is_empty()
            && report.failed_ops.is_empty()
            && report.pending_ops.is_empty()
            && report.offsets_lost.is_empty()
            && report.rows_lost.is_empty();
        report.summary = report.summarize();
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(op_id: u64, op_type: &str, pid: u32, status: ns::OpState) -> ns::OpStatus {
        ns::OpStatus {
            op_id,
            op_type: op_type.into(),
            status,
            task_type: String::new(),
            name: "t".into(),
            pid: Some(pid),
            db: "demo".into(),
        }
    }

    #[test]
    fn a_failed_failover_op_is_superseded_by_a_later_recover_table_on_the_same_partition_only() {
        use ns::OpState::{Done, Failed};
        let failed = op(5, "kOfflineReplicaOP", 1, Failed);
        let ops = vec![failed.clone(), op(6, "kRecoverTableOP", 2, Done), op(7, "kChangeLeaderOP", 1, Done)];
        assert!(superseded_by(&failed, &ops).is_none(), "another partition's op or another kind of op does not count");
        let ops = vec![op(4, "kRecoverTableOP", 1, Done), failed.clone(), op(8, "kRecoverTableOP", 1, Failed)];
        assert!(superseded_by(&failed, &ops).is_none(), "an earlier or failed recovery does not count");
        let ops = vec![failed.clone(), op(9, "kRecoverTableOP", 1, Done)];
        assert_eq!(superseded_by(&failed, &ops).map(|o| o.op_id), Some(9));
    }

    #[test]
    fn a_failed_add_replica_is_superseded_only_by_a_later_add_replica_that_finished() {
        use ns::OpState::{Done, Failed};
        let failed = op(5, "kAddReplicaOP", 0, Failed);
        let ops = vec![failed.clone(), op(6, "kRecoverTableOP", 0, Done)];
        assert!(superseded_by(&failed, &ops).is_none(), "a recovery does not redo an AddReplica");
        let ops = vec![failed.clone(), op(7, "kAddReplicaOP", 0, Done)];
        assert_eq!(superseded_by(&failed, &ops).map(|o| o.op_id), Some(7));
    }
}
