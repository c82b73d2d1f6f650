//! Write load and its verification, for rehearsing an upgrade under traffic.
//!
//! [`run_load`] writes keyed rows to every user table at a target rate through the routing
//! [`Client`] and records each acknowledged and each failed write in a report file, one JSON
//! object per line, flushed as it goes (so the load can run in the background beside an
//! upgrade and be read while or after it runs). [`verify`] reads the report, reads every
//! acknowledged row back and says what was lost, what failed, and how long each partition
//! could not be written.
//!
//! OpenMLDB's SDK does not retry a refused write (`SQLClusterRouter::PutRow` returns the
//! error), so by default neither does the load. With `retry_for` set it behaves like an
//! application that retries: a write refused because the partition is switching leaders
//! (`table is follower`, `table is loading`, no alive leader, a tablet not answering) is
//! tried again on the client's refreshed routing until `retry_for` has passed, and only then
//! counts as failed.
//!
//! Report lines (`event` tells them apart; times are milliseconds since the Unix epoch, taken
//! when the write was issued):
//! * `{"event":"start","at_ms","zk_cluster","zk_root_path","rate","tables":[{"db","name"}]}`
//! * `{"event":"ack","at_ms","db","table","pid","key","endpoint"}`, plus `retries` and
//!   `retried_ms` (from the first attempt to the acknowledgement) when the write was retried
//! * `{"event":"fail","at_ms","db","table","pid","key","error"}`
//! * `{"event":"end","at_ms","attempted","acknowledged","failed"}`

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::client::{Client, ClientError, ClientOptions, TableName};
use crate::config::ClusterConfig;

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read the sandbox's cluster config: {0}")]
    Config(String),
    #[error("cannot write the report {path}: {source}")]
    Report {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot connect to the cluster: {0}")]
    Connect(#[source] ClientError),
    #[error("the cluster has no user table to write to (create one first)")]
    NoTables,
    #[error("--rate must be at least 1 row per second")]
    ZeroRate,
}

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("cannot read the report {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a load report: it has no start line")]
    NoStart { path: PathBuf },
    #[error("cannot connect to the cluster: {0}")]
    Connect(#[source] ClientError),
}

/// What to write, where, how fast.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    pub zk_cluster: String,
    pub zk_root_path: String,
    pub zk_cert: Option<String>,
    /// Rows per second over all tables together.
    pub rate: u32,
    pub duration: Duration,
    /// The report file (JSON lines), created or truncated.
    pub report: PathBuf,
    /// Tables to write to; empty means every user table.
    pub tables: Vec<TableName>,
    /// Writes in flight at most; when all are busy the load falls behind its rate.
    pub concurrency: usize,
    /// How long a write refused for a transient reason is retried; zero never retries.
    pub retry_for: Duration,
}

impl LoadOptions {
    pub fn new(zk_cluster: &str, zk_root_path: &str, rate: u32, duration: Duration, report: &Path) -> Self {
        LoadOptions {
            zk_cluster: zk_cluster.to_string(),
            zk_root_path: zk_root_path.to_string(),
            zk_cert: None,
            rate,
            duration,
            report: report.to_path_buf(),
            tables: Vec::new(),
            concurrency: 64,
            retry_for: Duration::ZERO,
        }
    }

    /// Options for the sandbox in `dir`, from the `cluster.toml` it wrote.
    pub fn for_sandbox(dir: &Path, rate: u32, duration: Duration, report: &Path) -> Result<Self, LoadError> {
        let config = ClusterConfig::load(&dir.join("cluster.toml")).map_err(|e| LoadError::Config(e.to_string()))?;
        let mut options = LoadOptions::new(&config.zk.cluster, &config.zk.root_path, rate, duration, report);
        options.zk_cert = config.zk.cert.map(|c| c.expose().to_string());
        Ok(options)
    }
}

/// What a load run did.
#[derive(Debug, Clone, Serialize)]
pub struct LoadSummary {
    pub tables: Vec<TableName>,
    pub attempted: u64,
    pub acknowledged: u64,
    /// Acknowledged writes that needed more than one attempt.
    pub retried: u64,
    pub failed: u64,
    pub elapsed: Duration,
}

impl LoadSummary {
    /// Acknowledged rows per second of the run.
    pub fn acknowledged_per_second(&self) -> f64 {
        self.acknowledged as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

impl std::fmt::Display for LoadSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} writes to {} tables in {:.1}s: {} acknowledged ({:.0} rows/s, {} after a retry), {} failed",
            self.attempted,
            self.tables.len(),
            self.elapsed.as_secs_f64(),
            self.acknowledged,
            self.acknowledged_per_second(),
            self.retried,
            self.failed
        )
    }
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "lowercase")]
pub enum ReportLine {
    Start {
        at_ms: u64,
        zk_cluster: String,
        zk_root_path: String,
        rate: u32,
        tables: Vec<TableName>,
    },
    Ack {
        at_ms: u64,
        db: String,
        table: String,
        pid: u32,
        key: String,
        endpoint: String,
        #[serde(default, skip_serializing_if = "is_zero")]
        retries: u32,
        #[serde(default, skip_serializing_if = "is_zero")]
        retried_ms: u64,
    },
    Fail {
        at_ms: u64,
        db: String,
        table: String,
        pid: u32,
        key: String,
        error: String,
    },
    End {
        at_ms: u64,
        attempted: u64,
        acknowledged: u64,
        failed: u64,
    },
}

fn is_zero<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

/// Whether a refused write was certainly not applied and may succeed on a later try: the
/// partition is between leaders or its tablet is restarting.
fn is_transient(error: &ClientError) -> bool {
    match error {
        // 103 table is follower, 104 table is loading, 100 table does not exist (yet) (C§2.5).
        ClientError::Tablet { code, .. } => matches!(code, 100 | 103 | 104),
        ClientError::NoLeader { .. } | ClientError::Call(_) | ClientError::Zk(_) => true,
        ClientError::NoNameserver { .. } | ClientError::Nameserver { .. } => true,
        ClientError::TableNotFound { .. } => false,
    }
}

/// The report file, one line per event, flushed after each line.
struct ReportWriter {
    path: PathBuf,
    file: Mutex<std::fs::File>,
}

impl ReportWriter {
    fn create(path: &Path) -> Result<Self, LoadError> {
        let file =
            std::fs::File::create(path).map_err(|source| LoadError::Report { path: path.to_path_buf(), source })?;
        Ok(ReportWriter { path: path.to_path_buf(), file: Mutex::new(file) })
    }

    fn write(&self, line: &ReportLine) -> Result<(), LoadError> {
        let mut text = serde_json::to_string(line).unwrap_or_default();
        text.push('\n');
        let mut file = self.file.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        file.write_all(text.as_bytes()).map_err(|source| LoadError::Report { path: self.path.clone(), source })
    }
}

/// The value written for `key`, so verify can check it: a small JSON document.
pub fn row_value(key: &str) -> String {
    serde_json::json!({ "key": key }).to_string()
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// Runs the load for `options.duration`.
pub async fn run_load(options: LoadOptions) -> Result<LoadSummary, LoadError> {
    run_load_until(options, CancellationToken::new()).await
}

#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    acknowledged: u64,
    retried: u64,
    failed: u64,
}

/// Runs the load until `options.duration` has passed or `stop` is cancelled; writes in flight
/// are waited for and the report gets its `end` line either way.
pub async fn run_load_until(options: LoadOptions, stop: CancellationToken) -> Result<LoadSummary, LoadError> {
    if options.rate == 0 {
        return Err(LoadError::ZeroRate);
    }
    let client = Client::connect(ClientOptions {
        zk_cluster: options.zk_cluster.clone(),
        zk_root_path: options.zk_root_path.clone(),
        zk_cert: options.zk_cert.clone(),
    })
    .await
    .map_err(LoadError::Connect)?;
    let client = Arc::new(client);
    let tables = if options.tables.is_empty() { client.user_tables().await } else { options.tables.clone() };
    if tables.is_empty() {
        return Err(LoadError::NoTables);
    }
    let report = Arc::new(ReportWriter::create(&options.report)?);
    report.write(&ReportLine::Start {
        at_ms: now_ms(),
        zk_cluster: options.zk_cluster.clone(),
        zk_root_path: options.zk_root_path.clone(),
        rate: options.rate,
        tables: tables.clone(),
    })?;
    // Keys are unique across runs: the run's start time, then a sequence number.
    let run = now_ms();
    let interval = Duration::from_secs_f64(1.0 / options.rate as f64);
    let concurrency = options.concurrency.max(1);
    let in_flight = Arc::new(Semaphore::new(concurrency));
    let counts = Arc::new(Mutex::new(Counts::default()));
    let retry_for = options.retry_for;
    let report_error: Arc<Mutex<Option<LoadError>>> = Arc::new(Mutex::new(None));
    let started = Instant::now();
    let mut attempted = 0u64;
    loop {
        let due = started + interval.mul_f64(attempted as f64);
        // A load that falls behind its rate still stops on time.
        if due.duration_since(started) >= options.duration || started.elapsed() >= options.duration {
            break;
        }
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep_until(due.into()) => {}
        }
        let Ok(permit) = in_flight.clone().acquire_owned().await else { break };
        let table = tables[attempted as usize % tables.len()].clone();
        let key = format!("{run}-{attempted:09}");
        attempted += 1;
        let (client, report, counts, report_error) =
            (client.clone(), report.clone(), counts.clone(), report_error.clone());
        tokio::spawn(async move {
            let at_ms = now_ms();
            let first_try = Instant::now();
            let mut retries = 0u32;
            let result = loop {
                match client.put(&table, &key, &row_value(&key)).await {
                    Err(e) if is_transient(&e) && first_try.elapsed() < retry_for => {
                        retries += 1;
                        let pause = Duration::from_millis(20 * u64::from(retries.min(10)));
                        tokio::time::sleep(pause.min(retry_for.saturating_sub(first_try.elapsed()))).await;
                    }
                    other => break other,
                }
            };
            let line = match result {
                Ok(ack) => {
                    let mut counts = counts.lock().unwrap_or_else(|p| p.into_inner());
                    counts.acknowledged += 1;
                    counts.retried += u64::from(retries > 0);
                    ReportLine::Ack {
                        at_ms,
                        db: table.db,
                        table: table.name,
                        pid: ack.pid,
                        key,
                        endpoint: ack.endpoint,
                        retries,
                        retried_ms: if retries > 0 { first_try.elapsed().as_millis() as u64 } else { 0 },
                    }
                }
                Err(error) => {
                    counts.lock().unwrap_or_else(|p| p.into_inner()).failed += 1;
                    let pid = client.locate(&table, &key).await.map(|(_, pid, _)| pid).unwrap_or(0);
                    ReportLine::Fail { at_ms, db: table.db, table: table.name, pid, key, error: error.to_string() }
                }
            };
            if let Err(e) = report.write(&line) {
                report_error.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(e);
            }
            drop(permit);
        });
    }
    // Wait for the writes in flight.
    let _all = in_flight.acquire_many(concurrency as u32).await;
    let elapsed = started.elapsed();
    if let Some(e) = report_error.lock().unwrap_or_else(|p| p.into_inner()).take() {
        return Err(e);
    }
    let Counts { acknowledged, retried, failed } = *counts.lock().unwrap_or_else(|p| p.into_inner());
    report.write(&ReportLine::End { at_ms: now_ms(), attempted, acknowledged, failed })?;
    Ok(LoadSummary { tables, attempted, acknowledged, retried, failed, elapsed })
}

/// Where verify reads from, when not from the report's start line.
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    pub zk_cluster: Option<String>,
    pub zk_root_path: Option<String>,
    pub zk_cert: Option<String>,
}

/// An acknowledged row that cannot be read back.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MissingRow {
    pub db: String,
    pub table: String,
    pub pid: u32,
    pub key: String,
    pub at_ms: u64,
    /// The tablet that acknowledged it.
    pub endpoint: String,
    /// Why it counts as missing: `not found`, `wrong value`, or the read error.
    pub reason: String,
}

/// A write the cluster refused or did not answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FailedWrite {
    pub db: String,
    pub table: String,
    pub pid: u32,
    pub key: String,
    pub at_ms: u64,
    pub error: String,
}

/// One partition's outcome.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PartitionOutcome {
    pub db: String,
    pub table: String,
    pub pid: u32,
    pub acknowledged: u64,
    /// Acknowledged after more than one attempt.
    pub retried: u64,
    /// The longest time a retried write took from its first attempt to its acknowledgement.
    pub longest_retry_ms: u64,
    pub failed: u64,
    pub missing: u64,
    /// The longest time between the last success before a run of failures and the next
    /// success (or the end of the load when none came), in milliseconds; 0 without failures.
    pub longest_outage_ms: u64,
    /// When that outage began (the last success before it, or its first failure).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outage_from_ms: Option<u64>,
    /// False when the partition was still failing when the load ended.
    pub recovered: bool,
}

/// What verify found.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    pub report: PathBuf,
    pub acknowledged: u64,
    /// Acknowledged writes that needed more than one attempt.
    pub retried: u64,
    pub failed: u64,
    pub missing: Vec<MissingRow>,
    pub failures: Vec<FailedWrite>,
    pub partitions: Vec<PartitionOutcome>,
}

impl VerifyReport {
    /// No acknowledged row lost and no failed write.
    pub fn is_clean(&self) -> bool {
        self.missing.is_empty() && self.failures.is_empty()
    }

    /// Partitions that had at least one failed write.
    pub fn outages(&self) -> impl Iterator<Item = &PartitionOutcome> {
        self.partitions.iter().filter(|p| p.failed > 0)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// One row per partition.
    pub fn table(&self) -> comfy_table::Table {
        let mut table = comfy_table::Table::new();
        table.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED);
        table.set_header([
            "table",
            "pid",
            "acknowledged",
            "retried (longest)",
            "failed",
            "missing",
            "longest outage",
            "recovered",
        ]);
        for p in &self.partitions {
            table.add_row([
                format!("{}.{}", p.db, p.table),
                p.pid.to_string(),
                p.acknowledged.to_string(),
                if p.retried == 0 { "-".to_string() } else { format!("{} ({} ms)", p.retried, p.longest_retry_ms) },
                p.failed.to_string(),
                p.missing.to_string(),
                if p.longest_outage_ms == 0 { "-".to_string() } else { format!("{} ms", p.longest_outage_ms) },
                if p.recovered { "yes".to_string() } else { "no".to_string() },
            ]);
        }
        table
    }
}

impl std::fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{}: {} acknowledged rows ({} after a retry), {} missing; {} failed writes",
            self.report.display(),
            self.acknowledged,
            self.retried,
            self.missing.len(),
            self.failures.len()
        )?;
        writeln!(f, "{}", self.table())?;
        for row in self.missing.iter().take(10) {
            writeln!(
                f,
                "missing: {}.{} pid {} key {} (acknowledged by {} at {}): {}",
                row.db, row.table, row.pid, row.key, row.endpoint, row.at_ms, row.reason
            )?;
        }
        if self.missing.len() > 10 {
            writeln!(f, "... and {} more missing rows", self.missing.len() - 10)?;
        }
        Ok(())
    }
}

/// Reads a report; a torn last line (a load still writing) is skipped.
pub fn read_report(path: &Path) -> Result<Vec<ReportLine>, VerifyError> {
    let text =
        std::fs::read_to_string(path).map_err(|source| VerifyError::Read { path: path.to_path_buf(), source })?;
    Ok(text.lines().filter_map(|line| serde_json::from_str(line).ok()).collect())
}

/// Per partition: the longest outage, its start, and whether it ended.
fn longest_outage(events: &mut [(u64, bool)], load_end_ms: u64) -> (u64, Option<u64>, bool) {
    events.sort_by_key(|(at, ok)| (*at, !*ok));
    let mut last_success: Option<u64> = None;
    let mut run_from: Option<u64> = None;
    let mut longest = (0, None);
    for &(at, ok) in events.iter() {
        if ok {
            if let Some(from) = run_from.take() {
                if at - from >= longest.0 {
                    longest = (at - from, Some(from));
                }
            }
            last_success = Some(at);
        } else if run_from.is_none() {
            run_from = Some(last_success.unwrap_or(at));
        }
    }
    match run_from {
        Some(from) => {
            let length = load_end_ms.saturating_sub(from);
            if length >= longest.0 {
                (length, Some(from), false)
            } else {
                (longest.0, longest.1, false)
            }
        }
        None => (longest.0, longest.1, true),
    }
}

/// Reads every acknowledged row of `report` back through the routing client and reports
/// missing rows, failed writes and the longest write outage per partition.
pub async fn verify(report: &Path, options: VerifyOptions) -> Result<VerifyReport, VerifyError> {
    let lines = read_report(report)?;
    let Some(ReportLine::Start { zk_cluster, zk_root_path, at_ms: start_ms, .. }) =
        lines.iter().find(|l| matches!(l, ReportLine::Start { .. })).cloned()
    else {
        return Err(VerifyError::NoStart { path: report.to_path_buf() });
    };
    let client = Client::connect(ClientOptions {
        zk_cluster: options.zk_cluster.unwrap_or(zk_cluster),
        zk_root_path: options.zk_root_path.unwrap_or(zk_root_path),
        zk_cert: options.zk_cert,
    })
    .await
    .map_err(VerifyError::Connect)?;
    let client = Arc::new(client);

    let mut end_ms = start_ms;
    let mut events: BTreeMap<(String, String, u32), Vec<(u64, bool)>> = BTreeMap::new();
    // Per partition: writes retried, and the longest retry.
    let mut retried: BTreeMap<(String, String, u32), (u64, u64)> = BTreeMap::new();
    let mut acked = Vec::new();
    let mut failures = Vec::new();
    for line in &lines {
        match line {
            ReportLine::Ack { at_ms, db, table, pid, key, endpoint, retries, retried_ms } => {
                end_ms = end_ms.max(*at_ms);
                if *retries > 0 {
                    let entry = retried.entry((db.clone(), table.clone(), *pid)).or_default();
                    entry.0 += 1;
                    entry.1 = entry.1.max(*retried_ms);
                }
                events.entry((db.clone(), table.clone(), *pid)).or_default().push((*at_ms, true));
                acked.push(MissingRow {
                    db: db.clone(),
                    table: table.clone(),
                    pid: *pid,
                    key: key.clone(),
                    at_ms: *at_ms,
                    endpoint: endpoint.clone(),
                    reason: String::new(),
                });
            }
            ReportLine::Fail { at_ms, db, table, pid, key, error } => {
                end_ms = end_ms.max(*at_ms);
                events.entry((db.clone(), table.clone(), *pid)).or_default().push((*at_ms, false));
                failures.push(FailedWrite {
                    db: db.clone(),
                    table: table.clone(),
                    pid: *pid,
                    key: key.clone(),
                    at_ms: *at_ms,
                    error: error.clone(),
                });
            }
            ReportLine::End { at_ms, .. } => end_ms = end_ms.max(*at_ms),
            ReportLine::Start { .. } => {}
        }
    }

    // Read back with a few reads in flight; a read that fails is retried after the client
    // refreshed its routing.
    let reads = Arc::new(Semaphore::new(32));
    let mut tasks = tokio::task::JoinSet::new();
    for row in acked.iter().cloned() {
        let (client, reads) = (client.clone(), reads.clone());
        tasks.spawn(async move {
            let _permit = reads.acquire_owned().await;
            let table = TableName { db: row.db.clone(), name: row.table.clone() };
            let mut reason = String::new();
            for attempt in 0..3 {
                match client.get(&table, &row.key).await {
                    Ok(Some(found)) if found.value == row_value(&row.key) => return None,
                    Ok(Some(_)) => reason = "wrong value".to_string(),
                    Ok(None) => reason = "not found".to_string(),
                    Err(e) => {
                        reason = e.to_string();
                        tokio::time::sleep(Duration::from_millis(200 * (attempt + 1))).await;
                        continue;
                    }
                }
                break;
            }
            Some(MissingRow { reason, ..row })
        });
    }
    let mut missing = Vec::new();
    while let Some(result) = tasks.join_next().await {
        if let Ok(Some(row)) = result {
            missing.push(row);
        }
    }
    missing.sort_by(|a, b| (&a.db, &a.table, a.pid, a.at_ms, &a.key).cmp(&(&b.db, &b.table, b.pid, b.at_ms, &b.key)));

    let mut partitions = Vec::new();
    for ((db, table, pid), mut partition_events) in events {
        let acknowledged = partition_events.iter().filter(|e| e.1).count() as u64;
        let failed = partition_events.len() as u64 - acknowledged;
        let lost = missing.iter().filter(|m| m.db == db && m.table == table && m.pid == pid).count() as u64;
        let (longest_outage_ms, outage_from_ms, recovered) = longest_outage(&mut partition_events, end_ms);
        let (retried, longest_retry_ms) = retried.get(&(db.clone(), table.clone(), pid)).copied().unwrap_or_default();
        partitions.push(PartitionOutcome {
            db,
            table,
            pid,
            acknowledged,
            retried,
            longest_retry_ms,
            failed,
            missing: lost,
            longest_outage_ms,
            outage_from_ms,
            recovered,
        });
    }
    Ok(VerifyReport {
        report: report.to_path_buf(),
        acknowledged: acked.len() as u64,
        retried: retried.values().map(|r| r.0).sum(),
        failed: failures.len() as u64,
        missing,
        failures,
        partitions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outage_runs_from_the_last_success_to_the_next() {
        let mut events = vec![(100, true), (200, true), (300, false), (400, false), (900, true), (1000, false)];
        assert_eq!(longest_outage(&mut events, 1100), (700, Some(200), false));
        let mut events = vec![(100, true), (300, false), (400, true)];
        assert_eq!(longest_outage(&mut events, 1000), (300, Some(100), true));
        let mut events = vec![(100, true), (200, true)];
        assert_eq!(longest_outage(&mut events, 1000), (0, None, true));
        let mut events = vec![(300, false), (500, true)];
        assert_eq!(longest_outage(&mut events, 1000), (200, Some(300), true));
    }

    #[test]
    fn options_come_from_the_sandbox_cluster_toml() {
        let dir = tempfile::tempdir().expect("tempdir");
        // What `sandbox up` writes.
        std::fs::write(
            dir.path().join("cluster.toml"),
            "zk_cluster = \"127.0.0.1:2181\"\nzk_root_path = \"/openmldb\"\n\n[ssh]\ntransport = \"local\"\n",
        )
        .expect("write");
        let report = dir.path().join("load.jsonl");
        let options =
            LoadOptions::for_sandbox(dir.path(), 50, Duration::from_secs(3), &report).expect("cluster.toml parses");
        assert_eq!((options.zk_cluster.as_str(), options.zk_root_path.as_str()), ("127.0.0.1:2181", "/openmldb"));
        assert_eq!((options.rate, options.duration, options.report), (50, Duration::from_secs(3), report));
        assert!(LoadOptions::for_sandbox(&dir.path().join("none"), 1, Duration::ZERO, Path::new("r")).is_err());
    }

    #[test]
    fn report_lines_round_trip_and_torn_lines_are_skipped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("r.jsonl");
        let line = ReportLine::Ack {
            at_ms: 5,
            db: "db".into(),
            table: "t".into(),
            pid: 1,
            key: "k".into(),
            endpoint: "127.0.0.1:1".into(),
            retries: 2,
            retried_ms: 140,
        };
        // A line of a report without retries reads with zero retries.
        let old = r#"{"event":"ack","at_ms":6,"db":"db","table":"t","pid":1,"key":"k2","endpoint":"e"}"#;
        let text = format!("{}\n{old}\n{{\"event\":\"fail\",\"at", serde_json::to_string(&line).expect("json"));
        std::fs::write(&path, text).expect("write");
        let read = read_report(&path).expect("read");
        assert_eq!(read[0], line);
        assert!(matches!(read[1], ReportLine::Ack { retries: 0, retried_ms: 0, .. }), "{:?}", read[1]);
        assert_eq!(read.len(), 2);
    }
}
