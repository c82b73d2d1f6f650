//! Verify: a structured health report of the cluster, the checks the documented procedure asks
//! for after each tablet (O§6.1, C§6 "upgrade done"): tablets healthy, every replica alive and
//! loaded in the mode the nameserver expects, a leader for every partition, as many replicas as
//! the table's `replica_num` (no temporary replica left), no op failed or still pending.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use super::{UpgradeError, Upgrader};
use crate::cluster::tablet::TableStatus;

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
    /// Rows per table (`db.table`), counted on the leaders.
    pub rows: BTreeMap<String, u64>,
    /// What is wrong, as a short list for messages: one line per kind of problem, with the
    /// first few cases; empty when healthy.
    pub summary: String,
}

impl VerifyReport {
    fn summarize(&self) -> String {
        let kinds: [(&str, &Vec<String>); 7] = [
            ("tablets not healthy", &self.unhealthy_tablets),
            ("failed ops", &self.failed_ops),
            ("ops in progress", &self.pending_ops),
            ("replicas not alive", &self.partitions_not_alive),
            ("partitions without a leader", &self.partitions_without_leader),
            ("nameserver and tablets disagree", &self.mismatches),
            ("partitions with another number of replicas than replica_num", &self.replica_counts),
        ];
        let lines: Vec<String> = kinds
            .iter()
            .filter(|(_, items)| !items.is_empty())
            .map(|(kind, items)| {
                let more = if items.len() > 3 { format!(" and {} more", items.len() - 3) } else { String::new() };
                format!(
                    "  - {} {kind}: {}{more}",
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
        let (ns, tablets) = (&self.cluster.ns, &self.cluster.tablets);
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
        let mut statuses: HashMap<String, HashMap<(u32, u32), TableStatus>> = HashMap::new();
        for t in all.iter().filter(|t| t.is_healthy()) {
            if let Ok(loaded) = tablets.loaded_partitions(&t.endpoint).await {
                statuses.insert(t.endpoint.clone(), loaded);
            }
        }
        for table in ns.show_all_tables().await? {
            let full = table.full_name();
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
            && report.pending_ops.is_empty();
        report.summary = report.summarize();
        Ok(report)
    }
}
