//! Topology-aware batches: tablets that can be upgraded at the same time because every
//! partition keeps an alive replica outside the batch (an opt-in policy; the documented
//! procedure, O§6.1, takes one tablet at a time).
//!
//! A set of tablets may go down together when, for every partition with an alive replica in
//! the set:
//! - an alive replica on a healthy tablet outside the set remains, to lead while the set is down
//!   (drain moves leadership to it, and the switch waits for it to catch up first, C§3.5); or
//! - the partition has a single alive replica (a single-replica table, or one whose other
//!   replicas are dead), and the single-replica policy covers it as it does for one tablet:
//!   `add_replica` needs a healthy tablet outside the set that holds no replica of it for the
//!   temporary replica, `allow_unavailable` accepts that it is unavailable.
//!
//! A partition with two or more alive replicas, all in the set, makes the set unsafe: taking
//! them down together would take every replica that serves it.
//!
//! "Alive" is the nameserver's view: `is_alive` in ShowTable on a tablet ShowTablet lists as
//! kTabletHealthy (C§2.2). The batches are computed from that placement at the start of the
//! tablets phase and journalled; the placement can change before a batch starts (a failover, an
//! operator's move), so [`Upgrader::check_batch`] checks each batch again right before its first
//! change and refuses it when it is no longer safe.

use std::collections::BTreeSet;

use super::{SingleReplicaPolicy, UpgradeError, Upgrader};
use crate::cluster::ns::TableInfo;

/// At most this many conflicts are listed in an error; the count says how many there are.
const CONFLICTS_SHOWN: usize = 10;

/// A partition that the batch would take down completely.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// `db.table pid N`.
    pub partition: String,
    /// Why the batch cannot take it.
    pub reason: String,
}

/// One partition's alive replicas, as the check needs them.
struct Placement {
    partition: String,
    /// Alive replicas on healthy tablets.
    alive: BTreeSet<String>,
    /// Every tablet holding a replica, alive or not (a temporary replica cannot go there).
    holders: BTreeSet<String>,
}

/// The partitions of `tables` with their alive replicas on `healthy` tablets.
fn placements(tables: &[TableInfo], healthy: &BTreeSet<String>) -> Vec<Placement> {
    let mut out = Vec::new();
    for table in tables {
        for p in &table.table_partition {
            let alive: BTreeSet<String> = p
                .partition_meta
                .iter()
                .filter(|m| m.is_alive && healthy.contains(&m.endpoint))
                .map(|m| m.endpoint.clone())
                .collect();
            if alive.is_empty() {
                continue;
            }
            out.push(Placement {
                partition: format!("{}.{} pid {}", table.db, table.name, p.pid),
                alive,
                holders: p.partition_meta.iter().map(|m| m.endpoint.clone()).collect(),
            });
        }
    }
    out
}

/// What taking `batch` down together would take completely (see the module docs).
fn conflicts_of(
    placements: &[Placement],
    healthy: &BTreeSet<String>,
    batch: &BTreeSet<String>,
    policy: SingleReplicaPolicy,
) -> Vec<Conflict> {
    let mut out = Vec::new();
    for p in placements {
        if p.alive.is_disjoint(batch) || p.alive.iter().any(|ep| !batch.contains(ep)) {
            continue;
        }
        let reason = if p.alive.len() > 1 {
            let on = p.alive.iter().cloned().collect::<Vec<_>>().join(", ");
            format!("all {} alive replicas ({on}) are in the batch", p.alive.len())
        } else {
            let temp_target = healthy.iter().any(|ep| !batch.contains(ep) && !p.holders.contains(ep));
            match policy {
                SingleReplicaPolicy::AllowUnavailable => continue,
                SingleReplicaPolicy::AddReplica if temp_target => continue,
                SingleReplicaPolicy::AddReplica => {
                    let on = p.alive.iter().next().cloned().unwrap_or_default();
                    format!(
                        "its only alive replica is on {on}, and no healthy tablet outside the batch can take its temporary replica"
                    )
                }
            }
        };
        out.push(Conflict { partition: p.partition.clone(), reason });
    }
    out
}

/// Groups `order` (tablet endpoints) into batches that may each go down together, in order:
/// each tablet joins the first batch it is safe with (and that has fewer than `max` tablets,
/// when `max` > 0), or starts a new one. A batch always leaves a healthy tablet outside it; a
/// tablet alone is always a batch (the one-at-a-time flow, whose own checks then apply).
pub fn plan_batches(
    order: &[String],
    tables: &[TableInfo],
    healthy: &BTreeSet<String>,
    policy: SingleReplicaPolicy,
    max: usize,
) -> Vec<Vec<String>> {
    let placements = placements(tables, healthy);
    let mut batches: Vec<Vec<String>> = Vec::new();
    for tablet in order {
        let fits = |batch: &Vec<String>| {
            if max > 0 && batch.len() >= max {
                return false;
            }
            let together: BTreeSet<String> = batch.iter().chain([tablet]).cloned().collect();
            healthy.iter().any(|ep| !together.contains(ep))
                && conflicts_of(&placements, healthy, &together, policy).is_empty()
        };
        match batches.iter_mut().find(|b| fits(b)) {
            Some(batch) => batch.push(tablet.clone()),
            None => batches.push(vec![tablet.clone()]),
        }
    }
    batches
}

/// The conflicts of taking `batch` down together, on the given placement.
pub fn batch_conflicts(
    batch: &[String],
    tables: &[TableInfo],
    healthy: &BTreeSet<String>,
    policy: SingleReplicaPolicy,
) -> Vec<Conflict> {
    let batch: BTreeSet<String> = batch.iter().cloned().collect();
    let mut conflicts = conflicts_of(&placements(tables, healthy), healthy, &batch, policy);
    if batch.len() > 1 && healthy.iter().all(|ep| batch.contains(ep)) {
        conflicts.push(Conflict {
            partition: "(every partition)".into(),
            reason: "no healthy tablet is left outside the batch to lead while it is down".into(),
        });
    }
    conflicts
}

impl Upgrader {
    /// The healthy tablets, and every tablet the nameserver knows (for error messages).
    async fn tablets_now(&self) -> Result<(BTreeSet<String>, Vec<String>), UpgradeError> {
        let all = self.cluster.ns.show_tablet().await?;
        let healthy = all.iter().filter(|t| t.is_healthy()).map(|t| t.endpoint.clone()).collect();
        Ok((healthy, all.into_iter().map(|t| t.endpoint).collect()))
    }

    /// Refuses endpoints the nameserver does not list as tablets (`known`).
    pub(super) fn require_known(tablets: &[String], known: &[String]) -> Result<(), UpgradeError> {
        match tablets.iter().find(|t| !known.contains(t)) {
            Some(unknown) => Err(UpgradeError::UnknownTablet { endpoint: unknown.clone(), known: known.join(", ") }),
            None => Ok(()),
        }
    }

    /// The batches `order` can be upgraded in on the placement now ([`plan_batches`]).
    pub async fn tablet_batches(
        &self,
        order: &[String],
        policy: SingleReplicaPolicy,
        max: usize,
    ) -> Result<Vec<Vec<String>>, UpgradeError> {
        let (healthy, known) = self.tablets_now().await?;
        Self::require_known(order, &known)?;
        let tables = self.cluster.ns.show_all_tables().await?;
        Ok(plan_batches(order, &tables, &healthy, policy, max))
    }

    /// Checks, on the placement now, that `batch` may still go down together; refuses it with
    /// the partitions it would take down completely otherwise.
    pub async fn check_batch(&self, batch: &[String], policy: SingleReplicaPolicy) -> Result<(), UpgradeError> {
        let (healthy, known) = self.tablets_now().await?;
        Self::require_known(batch, &known)?;
        let tables = self.cluster.ns.show_all_tables().await?;
        let conflicts = batch_conflicts(batch, &tables, &healthy, policy);
        if conflicts.is_empty() {
            return Ok(());
        }
        let mut details: Vec<String> =
            conflicts.iter().take(CONFLICTS_SHOWN).map(|c| format!("  - {}: {}", c.partition, c.reason)).collect();
        if conflicts.len() > CONFLICTS_SHOWN {
            details.push(format!("  - and {} more", conflicts.len() - CONFLICTS_SHOWN));
        }
        Err(UpgradeError::UnsafeBatch { batch: batch.join(", "), count: conflicts.len(), details: details.join("\n") })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::ns::{PartitionMeta, TablePartition};

    fn table(name: &str, partitions: &[&[(&str, bool)]]) -> TableInfo {
        let mut t: TableInfo =
            serde_json::from_value(serde_json::json!({"name": name, "db": "db", "tid": 1})).expect("table");
        t.table_partition = partitions
            .iter()
            .enumerate()
            .map(|(pid, replicas)| TablePartition {
                pid: pid as u32,
                partition_meta: replicas
                    .iter()
                    .enumerate()
                    .map(|(i, (ep, alive))| PartitionMeta {
                        endpoint: ep.to_string(),
                        is_leader: i == 0,
                        is_alive: *alive,
                        offset: None,
                    })
                    .collect(),
                term_offset: Vec::new(),
            })
            .collect();
        t
    }

    fn tablets(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    /// A small deterministic generator, so the property test needs no crate and replays.
    struct Lcg(u64);
    impl Lcg {
        fn below(&mut self, n: usize) -> usize {
            self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((self.0 >> 33) % n as u64) as usize
        }
    }

    #[test]
    fn three_replica_tables_pair_tablets_and_two_replica_partitions_keep_their_pair_apart() {
        let all = tablets(&["a", "b", "c", "d"]);
        let healthy: BTreeSet<String> = all.iter().cloned().collect();
        // Every partition has 3 replicas: any two tablets may go together, never three that
        // hold one partition completely.
        let three = table("t3", &[&[("a", true), ("b", true), ("c", true)], &[("b", true), ("c", true), ("d", true)]]);
        let batches = plan_batches(&all, std::slice::from_ref(&three), &healthy, SingleReplicaPolicy::AddReplica, 0);
        assert_eq!(batches, vec![tablets(&["a", "b", "d"]), tablets(&["c"])]);
        // With a 2-replica partition on a and b, they never share a batch.
        let two = table("t2", &[&[("a", true), ("b", true)]]);
        let batches = plan_batches(&all, &[three, two], &healthy, SingleReplicaPolicy::AddReplica, 2);
        assert_eq!(batches, vec![tablets(&["a", "c"]), tablets(&["b", "d"])]);
    }

    #[test]
    fn a_partition_whose_other_replicas_are_dead_keeps_its_last_alive_replica_out_of_a_shared_batch() {
        let all = tablets(&["a", "b", "c"]);
        let healthy: BTreeSet<String> = all.iter().cloned().collect();
        // pid 0 lives on a and b, but its replica on b is dead: a holds its last alive replica.
        let t = table("t", &[&[("a", true), ("b", false), ("c", true)], &[("b", true), ("c", true)]]);
        let batch = tablets(&["a", "c"]);
        let conflicts =
            batch_conflicts(&batch, std::slice::from_ref(&t), &healthy, SingleReplicaPolicy::AllowUnavailable);
        assert_eq!(conflicts.len(), 1, "{conflicts:?}");
        assert_eq!(conflicts[0].partition, "db.t pid 0");
        assert!(conflicts[0].reason.contains("all 2 alive replicas (a, c)"), "{}", conflicts[0].reason);
        let batches = plan_batches(&all, &[t], &healthy, SingleReplicaPolicy::AddReplica, 0);
        assert!(batches.iter().all(|b| !(b.contains(&"a".into()) && b.contains(&"c".into()))), "{batches:?}");
    }

    #[test]
    fn single_replica_partitions_follow_the_policy_and_need_a_tablet_for_their_temporary_replica() {
        let healthy: BTreeSet<String> = tablets(&["a", "b", "c"]).into_iter().collect();
        let t = table("one", &[&[("a", true)], &[("b", true)]]);
        let ab = tablets(&["a", "b"]);
        assert!(batch_conflicts(&ab, std::slice::from_ref(&t), &healthy, SingleReplicaPolicy::AddReplica).is_empty());
        assert!(
            batch_conflicts(&ab, std::slice::from_ref(&t), &healthy, SingleReplicaPolicy::AllowUnavailable).is_empty()
        );
        // c already holds a (dead) replica of pid 0: its temporary replica has nowhere to go.
        let t = table("one", &[&[("a", true), ("c", false)]]);
        let conflicts = batch_conflicts(&ab, std::slice::from_ref(&t), &healthy, SingleReplicaPolicy::AddReplica);
        assert_eq!(conflicts.len(), 1, "{conflicts:?}");
        assert!(conflicts[0].reason.contains("temporary replica"), "{}", conflicts[0].reason);
        assert!(batch_conflicts(&ab, &[t], &healthy, SingleReplicaPolicy::AllowUnavailable).is_empty());
        // Every healthy tablet in the batch: nowhere to lead.
        let conflicts = batch_conflicts(&tablets(&["a", "b", "c"]), &[], &healthy, SingleReplicaPolicy::AddReplica);
        assert_eq!(conflicts.len(), 1);
    }

    #[test]
    fn a_batch_never_takes_every_alive_replica_of_a_partition_on_random_placements() {
        let mut rng = Lcg(16);
        for round in 0..300 {
            let n = 2 + rng.below(7);
            let all: Vec<String> = (0..n).map(|i| format!("t{i}")).collect();
            let healthy: BTreeSet<String> = all.iter().filter(|_| rng.below(8) != 0).cloned().collect();
            let mut tables = Vec::new();
            for ti in 0..1 + rng.below(4) {
                let replicas = 1 + rng.below(n.min(3));
                let partitions: Vec<Vec<(String, bool)>> = (0..1 + rng.below(8))
                    .map(|_| {
                        let mut eps = all.clone();
                        (0..replicas).map(|_| (eps.remove(rng.below(eps.len())), rng.below(5) != 0)).collect()
                    })
                    .collect();
                let refs: Vec<Vec<(&str, bool)>> =
                    partitions.iter().map(|p| p.iter().map(|(e, a)| (e.as_str(), *a)).collect()).collect();
                let slices: Vec<&[(&str, bool)]> = refs.iter().map(|p| p.as_slice()).collect();
                tables.push(table(&format!("t{ti}"), &slices));
            }
            let policy =
                if rng.below(2) == 0 { SingleReplicaPolicy::AddReplica } else { SingleReplicaPolicy::AllowUnavailable };
            let max = rng.below(4);
            let batches = plan_batches(&all, &tables, &healthy, policy, max);
            let flat: Vec<&String> = batches.iter().flatten().collect();
            assert_eq!(flat.len(), all.len(), "round {round}: every tablet once: {batches:?}");
            for batch in batches.iter().filter(|b| b.len() > 1) {
                assert!(max == 0 || batch.len() <= max, "round {round}: {batch:?} over max {max}");
                for t in &tables {
                    for p in &t.table_partition {
                        let alive: Vec<&str> = p
                            .partition_meta
                            .iter()
                            .filter(|m| m.is_alive && healthy.contains(&m.endpoint))
                            .map(|m| m.endpoint.as_str())
                            .collect();
                        let inside = alive.iter().filter(|ep| batch.iter().any(|b| b == *ep)).count();
                        assert!(
                            inside == 0 || inside < alive.len() || alive.len() == 1,
                            "round {round}: batch {batch:?} takes every alive replica {alive:?} of {} pid {}",
                            t.name,
                            p.pid
                        );
                    }
                }
            }
        }
    }
}
