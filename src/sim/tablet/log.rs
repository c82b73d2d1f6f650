//! A replica's binlog, which in the simulator is also its table (see the `sim` module docs).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// One binlog entry (`openmldb.api.LogEntry`): the offset of a replica is the `log_index` of
/// its last entry (C§2.4 `TableStatus.offset`, C§4).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogEntry {
    pub term: u64,
    pub log_index: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pk: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ts: Option<u64>,
}

/// A replica's binlog, which is also its table: entries in offset order plus an index of each
/// key's entries (oldest first) for Get and Scan.
#[derive(Debug, Clone, Default)]
pub struct ReplicaLog {
    entries: Vec<LogEntry>,
    keys: HashMap<String, Vec<usize>>,
    value_bytes: u64,
}

impl ReplicaLog {
    pub fn from_entries(entries: Vec<LogEntry>) -> Self {
        let mut log = ReplicaLog::default();
        for entry in entries {
            log.push(entry);
        }
        log
    }

    /// Parses a `binlog.jsonl` file; a torn last line (a process killed mid-write) is ignored.
    pub fn from_jsonl(text: &str) -> Self {
        let mut log = ReplicaLog::default();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            match serde_json::from_str::<LogEntry>(line) {
                Ok(entry) if entry.log_index == log.offset() + 1 => log.push(entry),
                _ => break,
            }
        }
        log
    }

    pub fn to_jsonl(&self) -> String {
        entries_jsonl(&self.entries)
    }

    pub fn entries(&self) -> &[LogEntry] {
        &self.entries
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Index of the last entry; 0 for an empty log.
    pub fn offset(&self) -> u64 {
        self.entries.last().map(|e| e.log_index).unwrap_or(0)
    }

    /// The term of the last entry at or below `offset` (0 when there is none).
    pub fn term_at(&self, offset: u64) -> u64 {
        let end = self.position_after(offset);
        self.entries[..end].last().map(|e| e.term).unwrap_or(0)
    }

    pub fn key_count(&self) -> usize {
        self.keys.len()
    }

    pub fn value_bytes(&self) -> u64 {
        self.value_bytes
    }

    fn position_after(&self, offset: u64) -> usize {
        self.entries.partition_point(|e| e.log_index <= offset)
    }

    /// Entries after `offset`, at most `limit`, for a follower that has everything up to it.
    pub fn entries_after(&self, offset: u64, limit: usize) -> Vec<LogEntry> {
        let start = self.position_after(offset);
        self.entries[start..].iter().take(limit).cloned().collect()
    }

    /// How many entries lie after `offset`.
    pub fn count_after(&self, offset: u64) -> usize {
        self.entries.len() - self.position_after(offset)
    }

    fn push(&mut self, entry: LogEntry) {
        if let Some(pk) = &entry.pk {
            self.keys.entry(pk.clone()).or_default().push(self.entries.len());
        }
        self.value_bytes += entry.value.as_ref().map(|v| v.len() as u64).unwrap_or(0);
        self.entries.push(entry);
    }

    /// Appends the entries that continue the log and returns them; entries at or below the
    /// current offset are skipped (as the real replicator does, C§2.4 AppendEntries).
    pub fn append(&mut self, entries: &[LogEntry]) -> Vec<LogEntry> {
        let mut appended = Vec::new();
        for entry in entries {
            if entry.log_index == self.offset() + 1 {
                appended.push(entry.clone());
                self.push(entry.clone());
            }
        }
        appended
    }

    /// Appends a new entry written on this (leader) replica and returns it.
    pub fn write(&mut self, term: u64, pk: String, value: Option<String>, ts: u64) -> LogEntry {
        let entry = LogEntry { term, log_index: self.offset() + 1, pk: Some(pk), value, ts: Some(ts) };
        self.push(entry.clone());
        entry
    }

    /// The newest entry of `key`, or the newest one with exactly `ts` when `ts` > 0.
    pub fn get(&self, key: &str, ts: u64) -> Option<&LogEntry> {
        let positions = self.keys.get(key)?;
        positions.iter().rev().map(|&i| &self.entries[i]).find(|e| ts == 0 || e.ts == Some(ts))
    }

    /// Entries of `key` with `et < ts <= st` (`st` 0: no upper bound), newest first, at most
    /// `limit` (0: no limit).
    pub fn scan(&self, key: &str, st: u64, et: u64, limit: usize) -> Vec<&LogEntry> {
        let Some(positions) = self.keys.get(key) else { return Vec::new() };
        let mut rows: Vec<&LogEntry> = positions
            .iter()
            .map(|&i| &self.entries[i])
            .filter(|e| {
                let ts = e.ts.unwrap_or(0);
                ts > et && (st == 0 || ts <= st)
            })
            .collect();
        rows.sort_by(|a, b| b.ts.cmp(&a.ts).then(b.log_index.cmp(&a.log_index)));
        if limit > 0 {
            rows.truncate(limit);
        }
        rows
    }
}

pub(super) fn entries_jsonl(entries: &[LogEntry]) -> String {
    let mut text = String::new();
    for entry in entries {
        if let Ok(line) = serde_json::to_string(entry) {
            text.push_str(&line);
            text.push('\n');
        }
    }
    text
}
