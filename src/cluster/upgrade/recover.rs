//! Recover data: the documented `recoverdata` (O§5.7), run after tablets restarted with
//! auto_failover off. A restarted tablet comes back with no tables loaded (C§1.3), and the
//! nameserver does nothing about it while auto_failover is off (C§3.4).
//!
//! For every partition with a replica that is not alive or not loaded: the leader is the alive
//! leader if its tablet has the partition loaded; else the replica on a healthy tablet with the
//! highest offset, loaded and marked alive (fixing C§6 bug 1, which picks the last replica
//! flagged leader). Every other replica is then rebuilt by RecoverTable.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use super::{UpgradeError, Upgrader};
use crate::cluster::ns::Partition;
use crate::cluster::tablet::TableStatus;

impl Upgrader {
    /// Recovers every partition with a replica that is not alive or not loaded; returns the
    /// partitions touched, per table. auto_failover must be off.
    pub async fn recover_data(&self, timeout: Duration) -> Result<BTreeMap<String, usize>, UpgradeError> {
        self.require_auto_failover_off().await?;
        let (ns, tablets) = (&self.cluster.ns, &self.cluster.tablets);
        let healthy = self.healthy_tablets().await?;
        let mut loaded: HashMap<String, HashMap<(u32, u32), TableStatus>> = HashMap::new();
        for ep in &healthy {
            loaded.insert(ep.clone(), tablets.loaded_partitions(ep).await?);
        }
        let status_of = |ep: &str, tid: u32, pid: u32| loaded.get(ep).and_then(|m| m.get(&(tid, pid)));
        let is_loaded = |ep: &str, tid: u32, pid: u32| status_of(ep, tid, pid).is_some_and(TableStatus::is_normal);
        let offset_of = |ep: &str, tid: u32, pid: u32, fallback: Option<u64>| {
            status_of(ep, tid, pid).map(|s| s.offset).or(fallback).unwrap_or(0)
        };
        let mut touched = BTreeMap::new();
        for table in ns.show_all_tables().await? {
            let tid = table.tid;
            for p in &table.table_partition {
                let pid = p.pid;
                let healthy_metas: Vec<_> = p.partition_meta.iter().filter(|m| healthy.contains(&m.endpoint)).collect();
                let needs = healthy_metas.iter().any(|m| !m.is_alive || !is_loaded(&m.endpoint, tid, pid));
                if !needs || healthy_metas.is_empty() {
                    continue;
                }
                let leader = match p.alive_leader().filter(|l| is_loaded(&l.endpoint, tid, pid)) {
                    Some(l) => l.endpoint.clone(),
                    None => {
                        let best = healthy_metas
                            .iter()
                            .max_by_key(|m| (offset_of(&m.endpoint, tid, pid, m.offset), m.is_leader))
                            .map(|m| m.endpoint.clone())
                            .unwrap_or_default();
                        if !is_loaded(&best, tid, pid) {
                            tablets.load_table_as_leader(&best, &table, pid).await?;
                            self.cluster.wait_replica_ready(&best, Partition::new(&table, pid), false, timeout).await?;
                        }
                        if !p.meta(&best).is_some_and(|m| m.is_alive && m.is_leader) {
                            ns.update_table_alive(&table.db, &table.name, pid, &best, true).await?;
                        }
                        best
                    }
                };
                for m in &healthy_metas {
                    if m.endpoint == leader || (m.is_alive && is_loaded(&m.endpoint, tid, pid)) {
                        continue;
                    }
                    if m.is_alive {
                        ns.update_table_alive(&table.db, &table.name, pid, &m.endpoint, false).await?;
                    }
                    self.readd_as_follower(Partition::new(&table, pid), &m.endpoint, timeout).await?;
                }
                *touched.entry(table.full_name()).or_insert(0) += 1;
            }
        }
        Ok(touched)
    }
}
