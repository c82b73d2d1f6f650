//! Baseline: what the leaders held when the run started, recorded at pre-flight, so that the
//! checks after each tablet and at the end can tell that no acknowledged write was lost:
//!
//! * every partition's leader offset must not be below the one recorded. Offsets are log
//!   indexes that only grow: a caught-up follower taking over has the same offset, and a new
//!   term continues from the highest one (C§3.5 `UpdateLeaderInfo`); TruncateTable keeps the
//!   replicator's offset (`TabletImpl::TruncateTableInternal`, tablet_impl.cc:3624-3690). A
//!   lower offset means a replica that lacks acknowledged entries leads, e.g. an explicit
//!   ChangeLeader candidate that lagged ("even if its offset is lower", C§3.5);
//! * a table whose offsets grew (it took writes during the run) must not have fewer rows,
//!   unless its rows can go away on their own: a TTL that expires rows
//!   ([`crate::cluster::ns::TtlSt::expires`]), or a disk table, whose row count is RocksDB's
//!   estimate (`DiskTable::GetRecordCnt`, `src/storage/disk_table.h:120-126`). A table that took
//!   no writes is covered by its offsets. Rows are what the leaders report (`record_cnt` of
//!   GetTableStatus, C§2.4).
//!
//! Journal keys: `baseline` (which run recorded it, [`BaselineIndex`]) and `baseline/<tid>`, one
//! node per table ([`TableBaseline`]: the leader offsets as an array indexed by pid). A node per
//! table keeps every node small: a table's own metadata node (`table/db_table_data/<tid>`,
//! C§1.1), which holds far more per partition than one number, already fits ZooKeeper's 1 MB
//! limit, and a 20 000-partition cluster is not one node but one per table. The keys are the
//! run's: a baseline recorded by another run is ignored, and `journal::finish` removes them.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use super::{UpgradeError, Upgrader};
use crate::cluster::ns::{StorageMode, TableInfo};
use crate::cluster::tablet::TableStatus;
use crate::journal::JournalError;

/// The journal key of the baseline.
pub const KEY: &str = "baseline";

/// The node `baseline`: the run that recorded the tables under it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BaselineIndex {
    /// The `started` stamp of the run (empty when recorded outside a run).
    pub run: String,
    pub tables: usize,
    pub partitions: usize,
    /// Set once every table's node is written.
    pub complete: bool,
}

/// One table as its leaders reported it at pre-flight (`baseline/<tid>`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableBaseline {
    pub db: String,
    pub name: String,
    /// The sum of the leaders' row counts; `None` when a leader did not report.
    pub rows: Option<u64>,
    /// The leader's offset, indexed by pid; `None` where no loaded leader reported.
    pub offsets: Vec<Option<u64>>,
    /// The tablets that led a partition of the table (the placement the run puts back at its end).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub leader_tablets: Vec<String>,
    /// The leader's tablet as an index into `leader_tablets`, indexed by pid.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub leaders: Vec<Option<u32>>,
}

/// What the leader of one partition reports now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderNow {
    pub endpoint: String,
    pub offset: u64,
    pub rows: u64,
}

/// A table's leaders as they report now: the alive leader of each partition whose tablet
/// lists it loaded and leading.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableNow {
    pub leaders: BTreeMap<u32, LeaderNow>,
    /// Whether every partition's leader reported.
    pub complete: bool,
}

impl TableNow {
    /// The leaders of `table` in `statuses` (per tablet endpoint, what GetTableStatus listed).
    pub fn of(table: &TableInfo, statuses: &HashMap<String, HashMap<(u32, u32), TableStatus>>) -> TableNow {
        let mut now = TableNow { complete: true, ..TableNow::default() };
        for p in &table.table_partition {
            let reported = p.alive_leader().and_then(|m| {
                let s = statuses.get(&m.endpoint)?.get(&(table.tid, p.pid))?;
                (s.is_loaded() && s.is_leader()).then(|| LeaderNow {
                    endpoint: m.endpoint.clone(),
                    offset: s.offset,
                    rows: s.record_cnt,
                })
            });
            match reported {
                Some(l) => {
                    now.leaders.insert(p.pid, l);
                }
                None => now.complete = false,
            }
        }
        now
    }

    /// The rows of the whole table; `None` unless every leader reported.
    pub fn rows(&self) -> Option<u64> {
        self.complete.then(|| self.leaders.values().map(|l| l.rows).sum())
    }
}

impl TableBaseline {
    pub fn new(table: &TableInfo, now: &TableNow) -> TableBaseline {
        let len = table.table_partition.iter().map(|p| p.pid as usize + 1).max().unwrap_or(0);
        let mut offsets = vec![None; len];
        let mut leaders = vec![None; len];
        let mut leader_tablets: Vec<String> = Vec::new();
        for (pid, l) in &now.leaders {
            offsets[*pid as usize] = Some(l.offset);
            let index = match leader_tablets.iter().position(|t| *t == l.endpoint) {
                Some(i) => i,
                None => {
                    leader_tablets.push(l.endpoint.clone());
                    leader_tablets.len() - 1
                }
            };
            leaders[*pid as usize] = Some(index as u32);
        }
        TableBaseline {
            db: table.db.clone(),
            name: table.name.clone(),
            rows: now.rows(),
            offsets,
            leader_tablets,
            leaders,
        }
    }

    /// The tablet that led `pid` at pre-flight.
    pub fn leader(&self, pid: u32) -> Option<&str> {
        let index = self.leaders.get(pid as usize).copied().flatten()?;
        self.leader_tablets.get(index as usize).map(String::as_str)
    }

    fn offset(&self, pid: u32) -> Option<u64> {
        self.offsets.get(pid as usize).copied().flatten()
    }
}

/// Why a table's rows are not compared, when they can shrink on their own.
pub fn rows_not_comparable(table: &TableInfo) -> Option<String> {
    if table.storage_mode != StorageMode::Memory {
        return Some(format!(
            "a {} table's row count is RocksDB's estimate (DiskTable::GetRecordCnt)",
            table.storage_mode
        ));
    }
    table.expiring_ttl().map(|ttl| format!("its TTL expires rows ({ttl})"))
}

/// What comparing one table with its baseline found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Growth {
    /// One line per partition whose leader offset is below the recorded one.
    pub offsets_lost: Vec<String>,
    /// Set when the table took writes and has fewer rows than recorded.
    pub rows_lost: Option<String>,
    /// Set when the table took writes but its rows are not compared, saying why.
    pub note: Option<String>,
}

/// Compares a table now with its baseline.
pub fn compare(baseline: &TableBaseline, table: &TableInfo, now: &TableNow) -> Growth {
    let full = table.full_name();
    let mut growth = Growth::default();
    let mut grew = false;
    for (pid, leader) in &now.leaders {
        let Some(before) = baseline.offset(*pid) else { continue };
        if leader.offset < before {
            growth.offsets_lost.push(format!(
                "{full} pid {pid}: its leader {} is at offset {}, below the {before} its leader had at pre-flight \
                 ({} acknowledged entries are not on the leader)",
                leader.endpoint,
                leader.offset,
                before - leader.offset
            ));
        } else if leader.offset > before {
            grew = true;
        }
    }
    if !grew {
        return growth;
    }
    if let Some(why) = rows_not_comparable(table) {
        growth.note = Some(format!("{full}: rows not compared, {why}; its offsets were"));
        return growth;
    }
    if let (Some(before), Some(rows)) = (baseline.rows, now.rows()) {
        if rows < before {
            growth.rows_lost = Some(format!(
                "{full} has {rows} rows, {} fewer than the {before} at pre-flight, although it took writes since \
                 (its offsets grew)",
                before - rows
            ));
        }
    }
    growth
}

/// What `record_baseline` recorded.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BaselineReport {
    pub tables: usize,
    pub partitions: usize,
    /// Partitions whose leader did not report (no offset recorded for them).
    pub without_leader: Vec<String>,
    /// Tables whose rows are not compared, each with why (`demo.t: its TTL expires rows (...)`).
    pub rows_not_compared: Vec<String>,
    pub dry_run: bool,
}

impl Upgrader {
    /// Every table with what its leaders report now.
    pub(super) async fn tables_now(&self) -> Result<Vec<(TableInfo, TableNow)>, UpgradeError> {
        let statuses = self.loaded_on_healthy_tablets().await?;
        let tables = self.cluster.ns.show_all_tables().await?;
        Ok(tables
            .into_iter()
            .map(|t| {
                let now = TableNow::of(&t, &statuses);
                (t, now)
            })
            .collect())
    }

    /// What every healthy tablet lists loaded, by endpoint; a tablet that does not answer is
    /// left out (its partitions count as not reported).
    pub(super) async fn loaded_on_healthy_tablets(
        &self,
    ) -> Result<HashMap<String, HashMap<(u32, u32), TableStatus>>, UpgradeError> {
        let mut statuses = HashMap::new();
        for ep in self.healthy_tablets().await? {
            if let Ok(loaded) = self.cluster.tablets.loaded_partitions(&ep).await {
                statuses.insert(ep, loaded);
            }
        }
        Ok(statuses)
    }

    /// Reads the leaders' offsets and rows now and, unless `dry_run`, records them as this run's
    /// baseline, replacing one recorded before.
    pub async fn record_baseline(&self, dry_run: bool) -> Result<BaselineReport, UpgradeError> {
        let tables = self.tables_now().await?;
        let mut report = BaselineReport { dry_run, ..BaselineReport::default() };
        let mut entries = Vec::with_capacity(tables.len());
        for (table, now) in &tables {
            report.tables += 1;
            report.partitions += table.table_partition.len();
            for p in table.table_partition.iter().filter(|p| !now.leaders.contains_key(&p.pid)) {
                report.without_leader.push(format!("{} pid {}", table.full_name(), p.pid));
            }
            if let Some(why) = rows_not_comparable(table) {
                report.rows_not_compared.push(format!("{}: {why}", table.full_name()));
            }
            entries.push((format!("{KEY}/{}", table.tid), TableBaseline::new(table, now)));
        }
        if dry_run {
            return Ok(report);
        }
        let run = self.journal.current_run().await?.map(|r| r.started).unwrap_or_default();
        let mut index = BaselineIndex { run, tables: report.tables, partitions: report.partitions, complete: false };
        self.journal.delete_tree(KEY).await?;
        self.journal.put(KEY, &index).await?;
        self.journal.put_all(&entries).await?;
        index.complete = true;
        self.journal.put(KEY, &index).await?;
        Ok(report)
    }

    /// The baseline the current run recorded, by tid; `None` when it recorded none.
    pub(super) async fn recorded_baseline(&self) -> Result<Option<HashMap<u32, TableBaseline>>, UpgradeError> {
        // A node left half-written (its children created first) reads as corrupt: none recorded.
        let index = match self.journal.get::<BaselineIndex>(KEY).await {
            Ok(index) => index,
            Err(JournalError::Corrupt { .. }) => None,
            Err(e) => return Err(e.into()),
        };
        let Some(index) = index else { return Ok(None) };
        let run = self.journal.current_run().await?.map(|r| r.started).unwrap_or_default();
        if !index.complete || index.run != run {
            return Ok(None);
        }
        let tables = self.journal.get_all::<TableBaseline>(KEY).await?;
        Ok(Some(tables.into_iter().filter_map(|(tid, t)| Some((tid.parse().ok()?, t))).collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::ns::{ColumnKey, PartitionMeta, TablePartition, TtlSt, TtlType};
    use crate::cluster::tablet::{TableMode, TableState};

    fn table(partitions: u32) -> TableInfo {
        let meta = |endpoint: &str, is_leader| PartitionMeta {
            endpoint: endpoint.into(),
            is_leader,
            is_alive: true,
            offset: None,
        };
        TableInfo {
            name: "t".into(),
            db: "demo".into(),
            tid: 7,
            storage_mode: StorageMode::Memory,
            replica_num: 2,
            table_partition: (0..partitions)
                .map(|pid| TablePartition {
                    pid,
                    partition_meta: vec![meta("a:1", pid.is_multiple_of(2)), meta("b:1", pid % 2 == 1)],
                    term_offset: Vec::new(),
                })
                .collect(),
            column_key: Vec::new(),
        }
    }

    fn status(tid: u32, pid: u32, offset: u64, rows: u64, mode: TableMode) -> TableStatus {
        TableStatus { tid, pid, offset, mode, state: TableState::Normal, record_cnt: rows, name: "t".into() }
    }

    /// Leaders on a:1 (even pids) and b:1 (odd pids) reporting `offsets[pid]`, 10 rows each.
    fn reported(t: &TableInfo, offsets: &[u64]) -> TableNow {
        let mut statuses: HashMap<String, HashMap<(u32, u32), TableStatus>> = HashMap::new();
        for (pid, offset) in offsets.iter().enumerate() {
            let pid = pid as u32;
            let (leader, follower) = if pid.is_multiple_of(2) { ("a:1", "b:1") } else { ("b:1", "a:1") };
            statuses
                .entry(leader.into())
                .or_default()
                .insert((t.tid, pid), status(t.tid, pid, *offset, 10, TableMode::Leader));
            statuses
                .entry(follower.into())
                .or_default()
                .insert((t.tid, pid), status(t.tid, pid, offset / 2, 5, TableMode::Follower));
        }
        TableNow::of(t, &statuses)
    }

    fn with_rows(mut now: TableNow, pid: u32, rows: u64) -> TableNow {
        now.leaders.get_mut(&pid).unwrap().rows = rows;
        now
    }

    #[test]
    fn the_baseline_ends_with_its_run() {
        assert!(crate::journal::run::RUN_SCOPED.contains(&KEY));
    }

    #[test]
    fn the_leaders_offsets_and_rows_are_recorded_by_pid() {
        let t = table(3);
        let now = reported(&t, &[5, 6, 7]);
        assert_eq!(now.leaders[&1].endpoint, "b:1");
        let b = TableBaseline::new(&t, &now);
        assert_eq!(b.offsets, vec![Some(5), Some(6), Some(7)]);
        assert_eq!(b.rows, Some(30));
        assert_eq!((b.leader(0), b.leader(1), b.leader(2), b.leader(3)), (Some("a:1"), Some("b:1"), Some("a:1"), None));
        // Compact in the journal: two numbers per partition.
        assert_eq!(
            serde_json::to_string(&b).unwrap(),
            r#"{"db":"demo","name":"t","rows":30,"offsets":[5,6,7],"leader_tablets":["a:1","b:1"],"leaders":[0,1,0]}"#
        );
    }

    #[test]
    fn a_partition_without_a_reporting_leader_records_no_offset_and_no_table_rows() {
        let mut t = table(2);
        t.table_partition[1].partition_meta.iter_mut().for_each(|m| m.is_alive = false);
        let now = reported(&t, &[5, 6]);
        assert!(!now.complete);
        let b = TableBaseline::new(&t, &now);
        assert_eq!(b.offsets, vec![Some(5), None]);
        assert_eq!(b.rows, None);
    }

    #[test]
    fn a_leader_below_its_recorded_offset_is_named_with_both_offsets() {
        let t = table(2);
        let b = TableBaseline::new(&t, &reported(&t, &[50, 60]));
        let g = compare(&b, &t, &reported(&t, &[50, 42]));
        assert_eq!(g.offsets_lost.len(), 1, "{g:?}");
        let line = &g.offsets_lost[0];
        assert!(line.starts_with("demo.t pid 1: its leader b:1 is at offset 42, below the 60"), "{line}");
        assert!(line.contains("18 acknowledged entries"), "{line}");
        assert_eq!(g.rows_lost, None);
    }

    #[test]
    fn equal_or_higher_offsets_are_fine() {
        let t = table(2);
        let b = TableBaseline::new(&t, &reported(&t, &[50, 60]));
        assert_eq!(compare(&b, &t, &reported(&t, &[50, 60])), Growth::default());
        assert_eq!(compare(&b, &t, &reported(&t, &[51, 60])), Growth::default());
    }

    #[test]
    fn fewer_rows_after_writes_is_a_loss() {
        let t = table(2);
        let b = TableBaseline::new(&t, &reported(&t, &[50, 60]));
        let g = compare(&b, &t, &with_rows(reported(&t, &[55, 60]), 0, 3));
        assert_eq!(g.offsets_lost, Vec::<String>::new());
        let line = g.rows_lost.expect("rows lost");
        assert!(line.starts_with("demo.t has 13 rows, 7 fewer than the 20 at pre-flight"), "{line}");
        // More rows is what writes do.
        assert_eq!(compare(&b, &t, &with_rows(reported(&t, &[55, 60]), 0, 30)), Growth::default());
    }

    #[test]
    fn rows_of_a_table_without_writes_are_left_to_its_offsets() {
        let t = table(2);
        let b = TableBaseline::new(&t, &reported(&t, &[50, 60]));
        assert_eq!(compare(&b, &t, &with_rows(reported(&t, &[50, 60]), 0, 3)), Growth::default());
    }

    #[test]
    fn rows_are_not_compared_when_a_leader_did_not_report() {
        let t = table(2);
        let b = TableBaseline::new(&t, &reported(&t, &[50, 60]));
        let mut now = with_rows(reported(&t, &[55, 60]), 0, 3);
        now.complete = false;
        assert_eq!(compare(&b, &t, &now).rows_lost, None);
    }

    #[test]
    fn an_expiring_ttl_or_a_disk_table_skips_the_rows_with_a_note() {
        let mut t = table(2);
        t.column_key = vec![ColumnKey {
            index_name: "k".into(),
            flag: 0,
            ttl: Some(TtlSt { ttl_type: TtlType::Latest, abs_ttl: 0, lat_ttl: 3 }),
        }];
        let b = TableBaseline::new(&t, &reported(&t, &[50, 60]));
        let g = compare(&b, &t, &with_rows(reported(&t, &[55, 60]), 0, 3));
        assert_eq!(g.rows_lost, None);
        assert_eq!(
            g.note.as_deref(),
            Some("demo.t: rows not compared, its TTL expires rows (index k: kLatestTime 3); its offsets were")
        );
        // Offsets are still checked.
        assert_eq!(compare(&b, &t, &reported(&t, &[40, 60])).offsets_lost.len(), 1);

        let mut disk = table(2);
        disk.storage_mode = StorageMode::Hdd;
        let g = compare(&b, &disk, &with_rows(reported(&disk, &[55, 60]), 0, 3));
        assert_eq!(g.rows_lost, None);
        assert!(g.note.unwrap().contains("a kHDD table's row count is RocksDB's estimate"));
    }

    #[test]
    fn ttl_expiry_follows_need_gc() {
        // src/storage/schema_test.cc TestNeedGc, with abs_ttl and lat_ttl as given there.
        let cases = [
            (TtlType::Absolute, 0, 0, false),
            (TtlType::Absolute, 0, 1, false),
            (TtlType::Absolute, 1, 1, true),
            (TtlType::Latest, 0, 0, false),
            (TtlType::Latest, 1, 0, false),
            (TtlType::Latest, 0, 1, true),
            (TtlType::AbsAndLat, 0, 0, false),
            (TtlType::AbsAndLat, 1, 0, false),
            (TtlType::AbsAndLat, 0, 1, false),
            (TtlType::AbsAndLat, 1, 1, true),
            (TtlType::AbsOrLat, 0, 0, false),
            (TtlType::AbsOrLat, 1, 0, true),
            (TtlType::AbsOrLat, 0, 1, true),
            (TtlType::AbsOrLat, 1, 1, true),
            (TtlType::Relative, 5, 0, true),
        ];
        for (ttl_type, abs_ttl, lat_ttl, expires) in cases {
            let ttl = TtlSt { ttl_type: ttl_type.clone(), abs_ttl, lat_ttl };
            assert_eq!(ttl.expires(), expires, "{ttl:?}");
        }
    }

    #[test]
    fn the_ttl_is_read_from_show_table_json_and_deleted_indexes_do_not_count() {
        let json = serde_json::json!({
            "name": "t", "db": "demo", "tid": 3,
            "column_key": [
                {"index_name": "gone", "col_name": ["c"], "flag": 1, "ttl": {"ttl_type": "kAbsoluteTime", "abs_ttl": 10}},
                {"index_name": "k", "col_name": ["c"], "ttl": {"ttl_type": "kAbsOrLat", "abs_ttl": 0, "lat_ttl": 0}},
            ],
        });
        let mut t: TableInfo = serde_json::from_value(json).unwrap();
        assert_eq!(t.expiring_ttl(), None);
        t.column_key[1].ttl = Some(TtlSt { ttl_type: TtlType::AbsOrLat, abs_ttl: 60, lat_ttl: 0 });
        assert_eq!(t.expiring_ttl().as_deref(), Some("index k: kAbsOrLat 60min, 0"));
        // No ttl at all (the proto2 default: kAbsoluteTime 0) expires nothing.
        let plain: TableInfo =
            serde_json::from_value(serde_json::json!({"name": "t", "column_key": [{"index_name": "k"}]})).unwrap();
        assert_eq!(plain.expiring_ttl(), None);
    }
}
