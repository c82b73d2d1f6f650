//! Reading a load report back: every acknowledged row is read from the cluster, and the report
//! says what was lost, what failed, what was retried, and the longest run of refused writes per
//! partition (see the module docs of [`super`] for the report's lines).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::Semaphore;

use super::{row_value, ReportLine};
use crate::sandbox::client::{Client, ClientError, ClientOptions, TableName};

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
                    Ok(Some(found)) if stored_value(&found.value) == row_value(&row.key) => return None,
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

/// The `row_value` a read returned: our own client stores it as the value itself; OpenMLDB's
/// SDK stores the encoded row (`row_key`, `row_value`), which a read returns in json2pb's form
/// of a bytes field, base64.
fn stored_value(value: &str) -> String {
    use base64::Engine;
    let row = base64::engine::general_purpose::STANDARD.decode(value).ok();
    match row.as_deref().and_then(|row| crate::sim::row_codec::decode_strings(row, 2)) {
        Some(columns) => columns.into_iter().nth(1).flatten().unwrap_or_default(),
        None => value.to_string(),
    }
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
}
