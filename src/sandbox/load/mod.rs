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

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::client::{Client, ClientError, ClientOptions, TableName};

pub mod sdk;
mod verify;
use crate::config::ClusterConfig;
pub use verify::{
    read_report, verify, FailedWrite, MissingRow, PartitionOutcome, VerifyError, VerifyOptions, VerifyReport,
};

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
    #[error("{0}")]
    Sdk(String),
    #[error("cannot run OpenMLDB's SDK: {0}")]
    SdkIo(#[source] std::io::Error),
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

    /// Creates the report of a load with `options` on `tables`, with its `start` line.
    fn start(options: &LoadOptions, tables: &[TableName]) -> Result<Self, LoadError> {
        let report = ReportWriter::create(&options.report)?;
        report.write(&ReportLine::Start {
            at_ms: now_ms(),
            zk_cluster: options.zk_cluster.clone(),
            zk_root_path: options.zk_root_path.clone(),
            rate: options.rate,
            tables: tables.to_vec(),
        })?;
        Ok(report)
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

/// The tool's client on the cluster, and the tables to write to (`options.tables`, or every
/// user table).
async fn connect(options: &LoadOptions) -> Result<(Client, Vec<TableName>), LoadError> {
    let client = Client::connect(ClientOptions {
        zk_cluster: options.zk_cluster.clone(),
        zk_root_path: options.zk_root_path.clone(),
        zk_cert: options.zk_cert.clone(),
    })
    .await
    .map_err(LoadError::Connect)?;
    let tables = if options.tables.is_empty() { client.user_tables().await } else { options.tables.clone() };
    if tables.is_empty() {
        return Err(LoadError::NoTables);
    }
    Ok((client, tables))
}

/// Runs the load until `options.duration` has passed or `stop` is cancelled; writes in flight
/// are waited for and the report gets its `end` line either way.
pub async fn run_load_until(options: LoadOptions, stop: CancellationToken) -> Result<LoadSummary, LoadError> {
    if options.rate == 0 {
        return Err(LoadError::ZeroRate);
    }
    let (client, tables) = connect(&options).await?;
    let client = Arc::new(client);
    let report = Arc::new(ReportWriter::start(&options, &tables)?);
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

#[cfg(test)]
mod tests {
    use super::*;

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
