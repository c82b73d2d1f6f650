//! Recover data: the documented `recoverdata` (O§5.7), run after tablets restarted with
//! auto_failover off. A restarted tablet comes back with no tables loaded (C§1.3), and the
//! nameserver does nothing about it while auto_failover is off (C§3.4).
//!
//! For every partition with a replica that is not alive or not loaded:
//! * The alive leader keeps leading when its tablet has the partition loaded. "Loaded"
//!   includes a scheduled snapshot (kMakingSnapshot) and a paused one (kSnapshotPaused), see
//!   [`crate::cluster::tablet::TableState::is_loaded`].
//! * Otherwise every replica on a healthy tablet is loaded as a follower, from the root path of
//!   the table's storage mode, so that its offset counts its binlog too: an unloaded replica
//!   reports only its snapshot's offset (GetTermPair, tablet_impl.cc:3860-3873), and RecoverTable
//!   deletes the binlog of a replica that is not loaded (C§3.1). The freshest replica by
//!   (term, offset) leads (fixing C§6 bug 1, which picks the last replica flagged leader); a
//!   replica just loaded as a follower answers term 0, and is weighed by the term of the
//!   partition's history its offset falls in ([`weighed_term`]).
//!   On a tie the leader of record is kept, then an alive follower, then the first endpoint:
//!   a replica the nameserver left marked leader but not alive (the old leader after a
//!   ChangeLeader, C§3.5) never wins a tie.
//! * When the freshest replica is the leader of record it leads again with its own term
//!   (ChangeRole, C§2.4) and is marked alive. Otherwise the nameserver is made to agree with a
//!   ChangeLeader naming it (C§3.5): the nameserver raises the term, makes it leader and records
//!   it, so clients route to it.
//! * Every other replica is then rebuilt as a follower by RecoverTable (C§3.1), which checks
//!   its (term, offset) against the partition's history and drops what diverged. When the
//!   leader was alive and loaded already, followers it still replicates to are left alone.
//!
//! A partition whose leader of record is on a tablet that is down is, with
//! [`DownLeaders::Wait`] (the stock flow, `abort`), left alone: that leader may hold
//! acknowledged writes no follower has (replication is asynchronous), so it is recovered once
//! its tablet runs again rather than led by a follower now. [`DownLeaders::Replace`] (the
//! documented recoverdata, the default of `upgrade::recover_data()`) lets the freshest replica
//! on a healthy tablet lead at once.
//!
//! Partitions without a loaded alive leader are recovered side by side (up to
//! [`RECOVER_CONCURRENCY`] at once). The followers of partitions whose leader serves (a
//! restarted tablet's replicas, the usual case) are rebuilt per tablet, all at once
//! ([`Upgrader::attach_followers`]): attached to their leaders directly when the term they
//! answered before the stop passes the nameserver's own check, else by one RecoverEndpoint
//! over 8 queues, left unloaded so that RecoverTable can weigh their own snapshots. Every load
//! and every op has its own `timeout`. Each load (a LoadTable until loaded, a load on the
//! tablet while a RecoverTable op runs, a RecoverTable op of a replaced leader while it runs)
//! is reported to the run's timing: the slowest is part of the tablet's lower bound.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use futures::StreamExt;

use super::{partition_err, MoveSettings, PartitionOp, UpgradeError, Upgrader};
use crate::cluster::ns::{Partition, PartitionMeta, TableInfo, TablePartition, TermStart};
use crate::cluster::tablet::TableStatus;
use crate::cluster::wait::{wait_until, Check};
use crate::timing::{self, Sample, WaitKind};

/// What recover data does with a partition whose leader of record is on a tablet that is down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DownLeaders {
    /// The documented recoverdata (O§5.7): the freshest replica on a healthy tablet leads now.
    /// Writes the dead leader acknowledged and had not replicated yet are given up.
    Replace,
    /// Leave the partition for that tablet's restart (the stock flow and `abort`): its binlog
    /// then makes it the freshest replica, and nothing it acknowledged is lost.
    Wait,
}

/// A replica on a healthy tablet, as recover data weighs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub endpoint: String,
    /// The term it is weighed by ([`weighed_term`] of its offset) and its log offset (GetTermPair).
    pub term: u64,
    pub offset: u64,
    /// How the nameserver has it.
    pub is_leader: bool,
    pub is_alive: bool,
}

impl Candidate {
    /// How a tie on (term, offset) is broken: the leader of record, then an alive follower,
    /// then anything else (a leader the nameserver left dead, a dead follower).
    fn tie_rank(&self) -> u8 {
        match (self.is_leader, self.is_alive) {
            (true, true) => 2,
            (false, true) => 1,
            _ => 0,
        }
    }
}

/// The term to weigh a replica by: the term of its last entry, which is the term of the
/// partition's history (each term and its first offset, C§2.2) its offset falls in; 0 for an
/// empty log. GetTermPair cannot say it: a loaded replica answers its replicator's term, the
/// term it leads or the last a leader probed it with, never that of its entries, and a replica
/// created or loaded as a follower answers 0 until a leader's first AppendEntries reaches it
/// (`tablet_impl.cc:4159-4161`, `:2364-2374`, `log_replicator.cc:59`). A replica that only
/// ever followed holds a prefix of the partition's log, so its offset places it. A replica the
/// nameserver still marks leader but not alive, while another one is the alive leader, was
/// replaced and has received nothing since: entries it holds past the start of the last term
/// were written in its own older term, so it is never given the last term.
pub fn weighed_term(offset: u64, history: &[TermStart], replaced_leader: bool) -> u64 {
    if offset == 0 {
        return 0;
    }
    let history = match history.split_last() {
        Some((_, before_last)) if replaced_leader => before_last,
        _ => history,
    };
    history.iter().filter(|t| t.offset <= offset).map(|t| t.term).max().unwrap_or(0)
}

/// The replica that leads after recover data: the highest (term, offset), ties broken by
/// [`Candidate::tie_rank`] and then the smallest endpoint, so the choice never depends on the
/// order of the nameserver's metadata.
pub fn freshest(candidates: &[Candidate]) -> Option<&Candidate> {
    candidates.iter().max_by(|a, b| {
        (a.term, a.offset, a.tie_rank())
            .cmp(&(b.term, b.offset, b.tie_rank()))
            .then_with(|| b.endpoint.cmp(&a.endpoint))
    })
}

/// Partitions recovered at once. The nameserver's queues bound the real parallelism; this
/// bounds the requests in flight (each waits on its own op).
const RECOVER_CONCURRENCY: usize = 16;

/// How often the loads of a restarted tablet's followers are looked at while RecoverTable
/// rebuilds them (one GetTableStatus of that tablet each time).
const LOAD_LOOK_INTERVAL: Duration = Duration::from_millis(100);

/// What [`Upgrader::reattach_follower`] made of a replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Reattach {
    /// Attached to its leader, an alive follower in the nameserver's view: done.
    Attached,
    /// Left for RecoverTable to rebuild.
    Left,
}

/// The journal key of the terms a tablet's follower replicas answered before it stopped
/// ([`Upgrader::record_follower_terms`]), a map of `"<tid>/<pid>"` to term.
fn follower_terms_key(tablet: &str) -> String {
    format!("follower_terms/{tablet}")
}

/// How long a leader's tablet that runs again may take to be listed healthy by the nameserver.
const REGISTERED_WAIT: Duration = Duration::from_secs(30);

impl Upgrader {
    /// Recovers every partition with a replica that is not alive or not loaded; returns the
    /// partitions touched, per table. auto_failover must be off.
    pub async fn recover_data(
        &self,
        timeout: Duration,
        down_leaders: DownLeaders,
    ) -> Result<BTreeMap<String, usize>, UpgradeError> {
        self.require_auto_failover_off().await?;
        let tablets = &self.cluster.tablets;
        let mut healthy = self.healthy_tablets().await?;
        // A leader's tablet that runs again (it answers) but that the nameserver does not list
        // healthy yet (its watch on the nodes fires a moment after the registration) is waited
        // for: skipped below, its partitions would stay unrecovered.
        let leaders: std::collections::BTreeSet<String> = self
            .cluster
            .ns
            .show_all_tables()
            .await?
            .iter()
            .flat_map(|t| t.table_partition.iter().filter_map(|p| p.alive_leader().map(|l| l.endpoint.clone())))
            .filter(|l| !healthy.contains(l))
            .collect();
        for tablet in leaders {
            if tablets.loaded_partitions(&tablet).await.is_ok() {
                let _ = self.cluster.wait_tablet_listed_healthy(&tablet, REGISTERED_WAIT).await;
            }
        }
        healthy = self.healthy_tablets().await?;
        let mut loaded: HashMap<String, HashMap<(u32, u32), TableStatus>> = HashMap::new();
        for ep in &healthy {
            loaded.insert(ep.clone(), tablets.loaded_partitions(ep).await?);
        }
        let is_loaded = |ep: &str, tid: u32, pid: u32| {
            loaded.get(ep).and_then(|m| m.get(&(tid, pid))).is_some_and(TableStatus::is_loaded)
        };
        // What needs recovering, decided from one read of the metadata.
        let tables = self.cluster.ns.show_all_tables().await?;
        let mut work = Vec::new();
        let mut led_by_down: BTreeMap<String, usize> = BTreeMap::new();
        for table in &tables {
            for p in &table.table_partition {
                // A leader on a tablet that is down may hold acknowledged writes no follower has
                // (replication is asynchronous): a follower made leader now would lose them. The
                // partition waits for that tablet, and is recovered once it runs again.
                if let Some(leader) = p.alive_leader().filter(|l| !healthy.contains(&l.endpoint)) {
                    if down_leaders == DownLeaders::Wait {
                        *led_by_down.entry(leader.endpoint.clone()).or_default() += 1;
                        continue;
                    }
                }
                let healthy_metas = p.partition_meta.iter().filter(|m| healthy.contains(&m.endpoint));
                let mut needs = false;
                let mut any = false;
                for m in healthy_metas {
                    any = true;
                    needs |= !m.is_alive || !is_loaded(&m.endpoint, table.tid, p.pid);
                }
                if needs && any {
                    work.push((table, p));
                }
            }
        }
        for (tablet, partitions) in &led_by_down {
            tracing::warn!(
                "tablet {tablet} is down and leads {partitions} partition(s): they are left as they are, to be recovered from it once it runs again"
            );
        }
        // Partitions without a loaded alive leader first: a leader is chosen for each, side by
        // side, and its followers rebuilt.
        let (needs_leader, followers_only): (Vec<_>, Vec<_>) = work
            .into_iter()
            .partition(|(table, p)| !p.alive_leader().is_some_and(|l| is_loaded(&l.endpoint, table.tid, p.pid)));
        let results: Vec<_> = futures::stream::iter(needs_leader.iter().map(|(table, p)| async {
            self.recover_partition(table, p, &healthy, &is_loaded, timeout).await.map(|()| table.full_name())
        }))
        .buffer_unordered(RECOVER_CONCURRENCY)
        .collect()
        .await;
        let mut touched = BTreeMap::new();
        let mut first_error = None;
        for result in results {
            match result {
                Ok(name) => *touched.entry(name).or_insert(0) += 1,
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        // Then the followers of partitions whose leader serves, per tablet, all at once.
        let mut by_tablet: BTreeMap<String, Vec<(&TableInfo, u32)>> = BTreeMap::new();
        for (table, p) in &followers_only {
            let leader = p.alive_leader().map(|l| l.endpoint.as_str());
            for m in p.partition_meta.iter().filter(|m| healthy.contains(&m.endpoint)) {
                if Some(m.endpoint.as_str()) != leader && (!m.is_alive || !is_loaded(&m.endpoint, table.tid, p.pid)) {
                    by_tablet.entry(m.endpoint.clone()).or_default().push((table, p.pid));
                }
            }
            *touched.entry(table.full_name()).or_insert(0) += 1;
        }
        // Every direct attach first, on every tablet, then the ops for what is left: an attach
        // edits its partition's metadata (GetTablePartition, SetTablePartition), which an op of
        // the same partition running meanwhile could undo or see undone.
        let attached = futures::future::join_all(
            by_tablet.iter().map(|(tablet, replicas)| self.attach_followers(tablet, replicas, timeout)),
        )
        .await;
        let mut left = Vec::new();
        for (tablet, result) in by_tablet.keys().zip(attached) {
            match result {
                Ok(replicas) if !replicas.is_empty() => left.push((tablet, replicas)),
                Ok(_) => {}
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        let rebuilt = futures::future::join_all(
            left.iter().map(|(tablet, replicas)| self.recover_left_followers(tablet, replicas, timeout)),
        )
        .await;
        for result in rebuilt {
            if let Err(e) = result {
                first_error.get_or_insert(e);
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(touched),
        }
    }

    /// Before `tablet` stops (the end of a drain that precedes its stop): the term each of its
    /// follower replicas answers to GetTermPair, the term of the leader that last probed it
    /// (`tablet_impl.cc:3890`, `:2364-2374`), or for a replaced leader the drain fenced (a
    /// follower on its tablet, C§3.5) the term it led; recorded in the journal for
    /// [`Upgrader::attach_followers`]. A replica that cannot be asked is left out: it is
    /// rebuilt by RecoverTable. `tables` is the drain's own read of the tables (by tid): only
    /// their tids and storage modes are used.
    pub(super) async fn record_follower_terms(
        &self,
        tablet: &str,
        tables: &HashMap<u32, TableInfo>,
    ) -> Result<(), UpgradeError> {
        let followers: Vec<(&TableInfo, u32)> = self
            .cluster
            .tablets
            .table_status(tablet)
            .await?
            .into_iter()
            .filter(|s| s.is_loaded() && !s.is_leader())
            .filter_map(|s| tables.get(&s.tid).map(|t| (t, s.pid)))
            .collect();
        let terms: BTreeMap<String, u64> =
            futures::stream::iter(followers.into_iter().map(|(table, pid)| async move {
                let pair = self.cluster.tablets.term_pair(tablet, table, pid).await.ok()?;
                (pair.has_table && !pair.is_leader && pair.term > 0)
                    .then(|| (format!("{}/{pid}", table.tid), pair.term))
            }))
            .buffer_unordered(RECOVER_CONCURRENCY)
            .filter_map(|term| async move { term })
            .collect()
            .await;
        self.journal.put(&follower_terms_key(tablet), &terms).await?;
        Ok(())
    }

    /// The first half of rebuilding the follower replicas on `tablet` of partitions whose
    /// leader serves.
    ///
    /// A replica whose recorded term ([`Upgrader::record_follower_terms`]) passes the check
    /// RecoverTable would make had the tablet kept it (`MatchTermOffset`, C§3.1) is attached to
    /// its leader directly ([`Upgrader::reattach_follower`]), plain followers and replaced
    /// leaders alike: with the tablet RPCs of the kReAddReplicaSimplifyOP RecoverTable would
    /// then run and the metadata its last task writes, without the op's tablet tasks polled
    /// every `--get_task_status_interval` in the nameserver's queues. RecoverTable cannot choose
    /// the short op itself: a replica loaded as a follower answers term 0 until a leader probes
    /// it (`tablet_impl.cc:4159-4161`), which never matches. Returns the replicas left, as
    /// (tid, pid), for [`Upgrader::recover_left_followers`].
    async fn attach_followers(
        &self,
        tablet: &str,
        replicas: &[(&TableInfo, u32)],
        timeout: Duration,
    ) -> Result<BTreeSet<(u32, u32)>, UpgradeError> {
        let recorded: BTreeMap<String, u64> = match self.journal.get(&follower_terms_key(tablet)).await {
            Ok(terms) => terms.unwrap_or_default(),
            Err(e) => {
                tracing::warn!(
                    "cannot read the terms recorded for {tablet}'s followers ({e}); RecoverTable rebuilds them"
                );
                BTreeMap::new()
            }
        };
        let now = self.tables_by_tid().await?;
        let now = &now;
        let attached: Vec<Reattach> = futures::stream::iter(replicas.iter().map(|(table, pid)| {
            let term = recorded.get(&format!("{}/{pid}", table.tid)).copied();
            async move {
                let (Some(term), Some(table)) = (term, now.get(&table.tid)) else { return Reattach::Left };
                match self.reattach_follower(tablet, table, *pid, term, timeout).await {
                    Ok(attached) => attached,
                    Err(e) => {
                        let part = Partition::new(table, *pid);
                        tracing::warn!("{part}: attaching the replica on {tablet} to its leader failed ({e}); RecoverTable rebuilds it");
                        Reattach::Left
                    }
                }
            }
        }))
        .buffered(RECOVER_CONCURRENCY)
        .collect()
        .await;
        Ok(replicas
            .iter()
            .zip(attached)
            .filter(|(_, a)| *a != Reattach::Attached)
            .map(|((table, pid), _)| (table.tid, *pid))
            .collect())
    }

    /// The second half: recovers the replicas [`Upgrader::attach_followers`] left on `tablet`
    /// (`left`, as (tid, pid)). They are marked dead and recovered by one RecoverEndpoint over
    /// 8 queues when they are all the dead replicas the tablet has (RecoverTable alone shares 2
    /// queues with every ChangeLeader, C§3.3), else one RecoverTable each. Those not loaded yet
    /// are left so: an unloaded replica is weighed by its own snapshot, and with one that
    /// matches and reaches the leader's, RecoverTable loads it from its own data
    /// (kReAddReplicaNoSendOP); else the leader sends its snapshot (kReAddReplicaOP). While the
    /// ops run, each load on the tablet is timed for the lower bound
    /// ([`Upgrader::timing_loads`]).
    async fn recover_left_followers(
        &self,
        tablet: &str,
        left: &BTreeSet<(u32, u32)>,
        timeout: Duration,
    ) -> Result<(), UpgradeError> {
        let mut ours = BTreeSet::new();
        let now = self.tables_by_tid().await?;
        for &(tid, pid) in left {
            let Some(table) = now.get(&tid) else { continue };
            let Some(p) = table.table_partition.iter().find(|p| p.pid == pid) else { continue };
            if p.meta(tablet).is_some_and(|m| m.is_alive) {
                self.cluster.ns.update_table_alive(&table.db, &table.name, pid, tablet, false).await?;
            }
            ours.insert((tid, pid));
        }
        if ours.is_empty() {
            return Ok(());
        }
        let settings =
            MoveSettings { op_timeout: timeout, concurrency: RECOVER_CONCURRENCY, ..MoveSettings::default() };
        self.timing_loads(tablet, &ours, self.readd_replaced_leaders(tablet, &ours, &settings)).await
    }

    /// Attaches the replica on `tablet` of partition `pid` to its leader, as RecoverTable's
    /// kReAddReplicaSimplifyOP would (DelReplica, AddReplica on the leader's tablet,
    /// `tablet_impl.cc:2202-2327`; catch-up; alive, C§3.1), when `recorded_term` (the term it
    /// answered before it stopped) passes `MatchTermOffset` (`name_server_impl.cc:6683-6732`):
    /// * a plain follower whose term is still the partition's last followed that term's leader,
    ///   and only that leader can have sent it entries since (a follower refuses an older term,
    ///   `:2353-2360`), so its log is a prefix of the leader's. It is marked not alive from the
    ///   deletion of the leader's old node for it until it caught up, then alive: `Attached`.
    /// * a replaced leader (fenced at its term, C§3.5) whose term is the one before the last
    ///   holds that term's log up to the last term's start, when its offset is below it. Its
    ///   leader's new node gives it the last term with its first request. Once it caught up, its
    ///   leader flag, which only RecoverTable's UpdatePartitionStatus task clears, is cleared by
    ///   editing the partition's metadata ([`crate::cluster::ns::NsClient::mark_alive_follower`]):
    ///   `Attached`.
    ///
    /// The leader's node for it is deleted before it is loaded, so that a request the old node
    /// kept does not land past a lost tail, and the new node starts from its own offset, with the
    /// last term. Returns `Left`, for RecoverTable to rebuild it, for any other replica, one its
    /// tablet holds as a leader, and (loaded by then) one past its term's end or behind the
    /// leader's snapshot, whose binlog may not hold what it lacks.
    pub(super) async fn reattach_follower(
        &self,
        tablet: &str,
        table: &TableInfo,
        pid: u32,
        recorded_term: u64,
        timeout: Duration,
    ) -> Result<Reattach, UpgradeError> {
        let (tablets, part) = (&self.cluster.tablets, Partition::new(table, pid));
        let Some(p) = table.table_partition.iter().find(|p| p.pid == pid) else { return Ok(Reattach::Left) };
        let (Some(meta), Some(leader)) = (p.meta(tablet), p.alive_leader()) else { return Ok(Reattach::Left) };
        if leader.endpoint == tablet || !p.term_offset.iter().any(|t| t.term == recorded_term) {
            return Ok(Reattach::Left);
        }
        let newer: Vec<&TermStart> = p.term_offset.iter().filter(|t| t.term > recorded_term).collect();
        // The offset its log must stay below.
        let end = match (meta.is_leader, newer.as_slice()) {
            (false, []) => u64::MAX,
            (true, [last]) if !meta.is_alive => last.offset,
            _ => return Ok(Reattach::Left),
        };
        if tablets.partition_status(tablet, table.tid, pid).await?.is_some_and(|s| s.is_leader()) {
            return Ok(Reattach::Left);
        }
        let leader = leader.endpoint.as_str();
        // Marked not alive while its leader does not replicate to it: a run stopped before the
        // catch-up leaves it for recover data (or verify to report), not alive in the
        // nameserver's view with nothing reaching it.
        if meta.is_alive {
            self.cluster.ns.update_table_alive(&table.db, &table.name, pid, tablet, false).await?;
        }
        tablets.del_replicate_node(leader, table.tid, pid, tablet).await?;
        if tablets.loaded_offset(tablet, table.tid, pid).await.is_none() {
            let started = std::time::Instant::now();
            tablets.load_table_as_follower(tablet, table, pid).await?;
            self.cluster.wait_replica_ready(tablet, part, false, timeout).await?;
            timing::sample(Sample::Load, started.elapsed());
        }
        // Read again now that the old node is gone: an append it had on its way may have landed.
        let offset = tablets
            .loaded_offset(tablet, table.tid, pid)
            .await
            .ok_or_else(|| partition_err(part, format!("{tablet} does not hold it loaded")))?;
        if offset >= end {
            tracing::info!("{part}: the replica on {tablet} holds entries past its term's end (offset {offset}, the next term starts at {end}); RecoverTable rebuilds it");
            return Ok(Reattach::Left);
        }
        let snapshot = tablets.manifest_offset(leader, table, pid).await?;
        if offset < snapshot {
            tracing::info!("{part}: the replica on {tablet} (offset {offset}) is behind {leader}'s snapshot ({snapshot}); RecoverTable rebuilds it");
            return Ok(Reattach::Left);
        }
        match tablets.add_replicate_node(leader, table.tid, pid, tablet).await {
            // 119 "replica endpoint already exists": the node is there.
            Err(e) if e.code() != Some(119) => return Err(e.into()),
            _ => {}
        }
        let caught_up = async {
            let target = tablets
                .loaded_offset(leader, table.tid, pid)
                .await
                .ok_or_else(|| partition_err(part, format!("the leader {leader} does not hold it loaded")))?;
            let _waiting = timing::waiting(WaitKind::CatchUp);
            let what = format!("{tablet} to catch up with {leader} on {part} (offset {target})");
            wait_until(&what, timeout, || async {
                Ok(match tablets.answered_offset(tablet, table.tid, pid).await? {
                    Some(offset) if offset >= target => Check::Done(()),
                    Some(offset) => Check::Waiting(format!("at offset {offset}")),
                    None => Check::Waiting("not loaded".into()),
                })
            })
            .await?;
            if meta.is_leader {
                // Only RecoverTable's last task or a metadata edit clears the leader flag (C§3.5).
                self.cluster.ns.mark_alive_follower(&table.db, &table.name, pid, tablet).await?;
            } else {
                self.cluster.ns.update_table_alive(&table.db, &table.name, pid, tablet, true).await?;
            }
            Ok::<_, UpgradeError>(())
        };
        if let Err(e) = caught_up.await {
            // RecoverTable rebuilds it then, and its short op fails on a node that exists (119
            // makes its AddReplica task fail, `name_server_impl.cc` WrapTaskFun).
            if let Err(del) = tablets.del_replicate_node(leader, table.tid, pid, tablet).await {
                tracing::warn!("{part}: could not delete {leader}'s replicate node for {tablet} again: {del}");
            }
            return Err(e);
        }
        Ok(Reattach::Attached)
    }

    /// Runs `work` and meanwhile times each load of `replicas` on `tablet` for the lower bound
    /// (a [`Sample::Load`]): from the first GetTableStatus that lists it not yet loaded
    /// (kTableUndefined, kTableLoading) to the first that lists it loaded. A load that starts
    /// and ends between two looks is not sampled, so the bound never counts our polling.
    async fn timing_loads<T>(
        &self,
        tablet: &str,
        replicas: &BTreeSet<(u32, u32)>,
        work: impl std::future::Future<Output = T>,
    ) -> T {
        let watch = async {
            let mut loading_since = HashMap::new();
            let mut timed = BTreeSet::new();
            loop {
                if let Ok(statuses) = self.cluster.tablets.loaded_partitions(tablet).await {
                    let looked = std::time::Instant::now();
                    for (key, status) in statuses.iter().filter(|(key, _)| replicas.contains(key)) {
                        if !status.is_loaded() {
                            loading_since.entry(*key).or_insert(looked);
                        } else if let Some(since) = loading_since.get(key) {
                            if timed.insert(*key) {
                                timing::sample(Sample::Load, looked - *since);
                            }
                        }
                    }
                }
                tokio::time::sleep(LOAD_LOOK_INTERVAL).await;
            }
        };
        tokio::select! {
            done = work => done,
            never = watch => never,
        }
    }

    /// Recovers one partition: a loaded alive leader (the freshest replica made leader when
    /// there is none), then every other replica on a healthy tablet rebuilt as its follower.
    async fn recover_partition(
        &self,
        table: &TableInfo,
        p: &TablePartition,
        healthy: &[String],
        is_loaded: &(impl Fn(&str, u32, u32) -> bool + Sync),
        timeout: Duration,
    ) -> Result<(), UpgradeError> {
        let tablets = &self.cluster.tablets;
        let (tid, pid) = (table.tid, p.pid);
        let part = Partition::new(table, pid);
        let healthy_metas: Vec<&PartitionMeta> =
            p.partition_meta.iter().filter(|m| healthy.contains(&m.endpoint)).collect();
        // A new leader replicates to nobody yet: every other replica is rebuilt then.
        let (leader, rebuild_all) = match p.alive_leader().filter(|l| is_loaded(&l.endpoint, tid, pid)) {
            Some(l) => (l.endpoint.clone(), false),
            None => {
                let unloaded: Vec<&str> = healthy_metas
                    .iter()
                    .filter(|m| !is_loaded(&m.endpoint, tid, pid))
                    .map(|m| m.endpoint.as_str())
                    .collect();
                (self.lead_with_freshest(part, p, &healthy_metas, &unloaded, timeout).await?, true)
            }
        };
        // Refreshed: the leader may have changed above.
        let p = self.partition(part).await?;
        for m in p.partition_meta.iter().filter(|m| healthy.contains(&m.endpoint)) {
            let loaded_now = tablets.loaded_offset(&m.endpoint, tid, pid).await.is_some();
            if m.endpoint == leader || (!rebuild_all && m.is_alive && loaded_now) {
                continue;
            }
            if m.is_alive {
                self.cluster.ns.update_table_alive(&table.db, &table.name, pid, &m.endpoint, false).await?;
            }
            let running = self.readd_as_follower(part, &m.endpoint, timeout).await?;
            timing::sample(Sample::Load, running);
        }
        Ok(())
    }

    /// Makes the freshest replica of a partition without a loaded alive leader lead, and the
    /// nameserver agree; returns its endpoint. `unloaded` are loaded as followers first.
    async fn lead_with_freshest(
        &self,
        part: Partition<'_>,
        p: &TablePartition,
        healthy_metas: &[&PartitionMeta],
        unloaded: &[&str],
        timeout: Duration,
    ) -> Result<String, UpgradeError> {
        let (tablets, ns, table, pid) = (&self.cluster.tablets, &self.cluster.ns, part.table, part.pid);
        let loads = unloaded.iter().map(|ep| async move {
            let started = std::time::Instant::now();
            tablets.load_table_as_follower(ep, table, pid).await?;
            self.cluster.wait_replica_ready(ep, part, false, timeout).await?;
            timing::sample(Sample::Load, started.elapsed());
            Ok::<_, UpgradeError>(())
        });
        for result in futures::future::join_all(loads).await {
            result?;
        }
        let mut candidates = Vec::new();
        // The newest term any replica knows or the partition recorded: a leader of an older
        // term would have its entries refused by followers a newer leader probed (code 122).
        let mut newest_term = p.term_offset.iter().map(|t| t.term).max().unwrap_or(0);
        let another_leads = |ep: &str| p.partition_meta.iter().any(|o| o.is_leader && o.is_alive && o.endpoint != ep);
        for m in healthy_metas {
            let pair = tablets.term_pair(&m.endpoint, table, pid).await?;
            let replaced_leader = m.is_leader && !m.is_alive && another_leads(&m.endpoint);
            newest_term = newest_term.max(pair.term);
            candidates.push(Candidate {
                endpoint: m.endpoint.clone(),
                term: weighed_term(pair.offset, &p.term_offset, replaced_leader),
                offset: pair.offset,
                is_leader: m.is_leader,
                is_alive: m.is_alive,
            });
        }
        let best = freshest(&candidates).ok_or_else(|| partition_err(part, "no replica on a healthy tablet"))?.clone();
        tracing::info!(
            "{part}: {} leads (term {}, offset {}; weighed {})",
            best.endpoint,
            best.term,
            best.offset,
            candidates.iter().map(|c| format!("{} {}/{}", c.endpoint, c.term, c.offset)).collect::<Vec<_>>().join(", ")
        );
        let of_record = p.partition_meta.iter().filter(|m| m.is_leader).any(|m| m.endpoint == best.endpoint)
            && !p.partition_meta.iter().any(|m| m.is_leader && m.is_alive && m.endpoint != best.endpoint);
        if of_record {
            // It leads again in the partition's newest term; its followers are re-added
            // afterwards.
            match tablets.change_role_to_leader(&best.endpoint, table.tid, pid, newest_term, &[]).await {
                Err(e) if e.code() != Some(102) => return Err(e.into()),
                _ => {}
            }
            if !best.is_alive {
                ns.update_table_alive(&table.db, &table.name, pid, &best.endpoint, true).await?;
            }
        } else {
            // ChangeLeader takes alive followers only (C§3.5), and sends every alive follower on a
            // healthy tablet FollowOfNoOne: they are all loaded as followers by now.
            if !best.is_alive {
                ns.update_table_alive(&table.db, &table.name, pid, &best.endpoint, true).await?;
            }
            self.run_op(part, PartitionOp::ChangeLeader(&best.endpoint), timeout).await?;
            let now = self.partition(part).await?;
            if now.alive_leader().map(|m| m.endpoint.as_str()) != Some(best.endpoint.as_str()) {
                return Err(partition_err(
                    part,
                    format!(
                        "ChangeLeader to {} finished but the nameserver does not show it as the alive leader",
                        best.endpoint
                    ),
                ));
            }
        }
        Ok(best.endpoint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(endpoint: &str, term: u64, offset: u64, is_leader: bool, is_alive: bool) -> Candidate {
        Candidate { endpoint: endpoint.into(), term, offset, is_leader, is_alive }
    }

    #[test]
    fn the_highest_term_wins_over_a_longer_log_of_an_older_term() {
        let list = [c("a:1", 5, 900, true, false), c("b:1", 7, 800, false, true)];
        assert_eq!(freshest(&list).unwrap().endpoint, "b:1");
    }

    #[test]
    fn within_a_term_the_longest_log_wins() {
        let list = [c("a:1", 7, 800, false, true), c("b:1", 7, 801, false, false), c("c:1", 7, 799, true, true)];
        assert_eq!(freshest(&list).unwrap().endpoint, "b:1");
    }

    #[test]
    fn a_tie_keeps_the_leader_of_record_and_never_a_dead_leader() {
        // C§3.5: after a ChangeLeader the old leader stays is_leader with is_alive=false.
        let stale_first = [c("a:1", 7, 800, true, false), c("b:1", 7, 800, false, true), c("c:1", 7, 800, true, true)];
        assert_eq!(freshest(&stale_first).unwrap().endpoint, "c:1");
        let no_alive_leader = [c("a:1", 7, 800, true, false), c("b:1", 7, 800, false, true)];
        assert_eq!(freshest(&no_alive_leader).unwrap().endpoint, "b:1");
    }

    fn history(pairs: &[(u64, u64)]) -> Vec<TermStart> {
        pairs.iter().map(|&(term, offset)| TermStart { term, offset }).collect()
    }

    #[test]
    fn a_replica_is_weighed_by_the_term_its_offset_falls_in() {
        // Term 1 from offset 0, 3 from 101, 4 from 251.
        let h = history(&[(1, 0), (3, 101), (4, 251)]);
        assert_eq!(weighed_term(50, &h, false), 1);
        assert_eq!(weighed_term(101, &h, false), 3);
        assert_eq!(weighed_term(900, &h, false), 4);
        // An empty log holds no term.
        assert_eq!(weighed_term(0, &h, false), 0);
        // A replaced leader's entries past the last term's start are of its own older term.
        assert_eq!(weighed_term(900, &h, true), 3);
        assert_eq!(weighed_term(50, &h, true), 1);
        // So a follower of the last term wins over it even with a shorter log.
        let list = [
            c("a:1", weighed_term(900, &h, true), 900, true, false),
            c("b:1", weighed_term(260, &h, false), 260, false, true),
        ];
        assert_eq!(freshest(&list).unwrap().endpoint, "b:1");
    }

    #[test]
    fn a_full_tie_picks_the_same_replica_whatever_the_metadata_order() {
        let one = [c("b:1", 7, 800, false, true), c("a:1", 7, 800, false, true)];
        let other = [c("a:1", 7, 800, false, true), c("b:1", 7, 800, false, true)];
        assert_eq!(freshest(&one).unwrap().endpoint, "a:1");
        assert_eq!(freshest(&other).unwrap().endpoint, "a:1");
    }
}
