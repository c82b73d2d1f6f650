//! What component control records in the journal, so that whoever comes next (the rest of the
//! run, a re-run, `abort`, the rollback) knows what was done to a component:
//!
//! - `stopped/<endpoint>`: written before a stop, deleted when the component starts again. A
//!   record that outlives its run names a component a failed or killed run left down;
//!   `start_again` and `abort` bring it back.
//! - `backups/<endpoint>`: the last backup of the component's `bin/` (and `taskmanager/`), with
//!   the version it holds: what `start_again` falls back to and what the rollback reinstalls.
//! - `spark/<endpoint>`: where a TaskManager's Spark distribution was replaced and where the
//!   previous one was kept, for the rollback.
//! - `properties/<endpoint>`: the values a run changed in a TaskManager's
//!   `conf/taskmanager.properties` (YARN's `batchjob.jar.path`) and what they were before, for
//!   the rollback ([`super::properties`]).

use serde::{Deserialize, Serialize};

use super::{ComponentError, Control, Result};
use crate::config::Component;
use crate::journal::JournalError;

/// A component stopped by this tool and not started since.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stopped {
    /// When it was stopped (RFC 3339).
    pub at: String,
    /// The version it reported before it was stopped, when it answered.
    #[serde(default)]
    pub version: Option<String>,
    /// Whether it ran under `mon` (a live process in `bin/<role>.pid.child`, O§1.3), whatever
    /// the cluster config says; it is started the way it ran. `None` in records of older versions.
    #[serde(default)]
    pub mon: Option<bool>,
}

/// The last backup made of a component.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Backup {
    pub path: String,
    /// The version backed up (as `installed_version` reads it).
    pub version: String,
    /// Directories it holds, relative to the install root.
    pub dirs: Vec<String>,
    /// The run that made it (its start time): components sharing a directory reuse the backup
    /// made earlier in the same run.
    #[serde(default)]
    pub run: Option<String>,
}

/// A replaced Spark distribution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SparkSwap {
    /// The TaskManager's `spark.home`.
    pub spark_home: String,
    /// Where the replaced distribution was kept.
    pub previous: String,
    /// The openmldb-batch version of the replaced one, when it was read.
    #[serde(default)]
    pub previous_version: String,
}

/// The values one run changed in a TaskManager's `conf/taskmanager.properties`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PropertyEdits {
    /// The file, on the TaskManager's host.
    pub file: String,
    /// The run that made the edits (its start time): a later run's edits replace the record.
    #[serde(default)]
    pub run: Option<String>,
    /// One per key, in the order first changed.
    pub changes: Vec<PropertyEdit>,
}

/// One key a run changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PropertyEdit {
    pub key: String,
    /// Its value before the run (`None`: not defined).
    pub before: Option<String>,
    /// The value the run set.
    pub after: String,
}

impl Control<'_> {
    fn record_error(&self, c: &Component, step: &str) -> impl FnOnce(JournalError) -> ComponentError + '_ {
        let (step, endpoint) = (step.to_string(), c.endpoint.to_string());
        move |e| ComponentError::Other { step, endpoint, reason: format!("cannot record it in the journal: {e}") }
    }

    /// Writes `key` for `c`, when there is a journal and this is no dry run.
    pub(super) async fn record<T: Serialize>(&self, c: &Component, step: &str, key: &str, value: &T) -> Result<()> {
        match self.journal {
            Some(journal) if !self.dry_run => {
                journal.put(&format!("{key}/{}", c.endpoint), value).await.map_err(self.record_error(c, step))
            }
            _ => Ok(()),
        }
    }

    /// Removes `key` for `c`.
    pub(super) async fn forget(&self, c: &Component, step: &str, key: &str) -> Result<()> {
        match self.journal {
            Some(journal) if !self.dry_run => {
                journal.delete(&format!("{key}/{}", c.endpoint)).await.map_err(self.record_error(c, step))
            }
            _ => Ok(()),
        }
    }

    /// Reads `key` for the component at `endpoint`.
    pub async fn recorded<T: serde::de::DeserializeOwned>(&self, key: &str, endpoint: &str) -> Result<Option<T>> {
        let c = self.component(endpoint)?;
        match self.journal {
            Some(journal) => {
                journal.get(&format!("{key}/{endpoint}")).await.map_err(self.record_error(c, "reading the journal"))
            }
            None => Ok(None),
        }
    }

    /// The run in progress (its start time), when there is one.
    pub(super) async fn run_id(&self) -> Option<String> {
        let journal = self.journal?;
        journal.current_run().await.ok().flatten().map(|run| run.started)
    }

    /// The endpoints recorded under `key` (e.g. the components left stopped).
    pub async fn recorded_endpoints(&self, key: &str) -> std::result::Result<Vec<String>, JournalError> {
        match self.journal {
            Some(journal) => journal.keys(key).await,
            None => Ok(Vec::new()),
        }
    }
}
