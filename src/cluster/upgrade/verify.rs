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
                if table.replica_num > 0 && replicas != table.replica_num {
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
        for op in ns.show_op_status(None, None, None).await?.into_iter().filter(|o| o.op_id > since_op) {
            if op.is_failure() {
                report.failed_ops.push(op.to_string());
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
