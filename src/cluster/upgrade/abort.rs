//! Abort: unwinding a stopped run to a safe state without upgrading anything further: the
//! fences it left are lifted, the leaders of drained tablets go back where they were recorded
//! (temporary replicas removed), auto_failover is put back and the run record is dropped, so
//! the cluster is as before the run except for the components it already replaced. Safety
//! invariants 1 and 3 of the design: nothing a run changed to move leaders outlives it.

use std::time::Duration;

use super::{MoveSettings, UpgradeError, Upgrader};

/// How long `abort` waits for the lock of a run on this host whose process is gone.
const STALE_LOCK_WAIT: Duration = Duration::from_secs(30);

/// What `abort` did.
#[derive(Debug, Clone, Default)]
pub struct AbortReport {
    /// Fences a stopped run left on leaders, lifted.
    pub fences_lifted: usize,
    /// Drained tablets whose leaders were restored, with how many moves each.
    pub restored: Vec<(String, usize)>,
    /// The value auto_failover was put back to, when a run had turned it off.
    pub auto_failover: Option<bool>,
    /// The name of the unfinished run that was dropped, if there was one.
    pub run: Option<String>,
}

impl Upgrader {
    /// Unwinds a stopped run; `say` receives a line per step for the operator. Holds the
    /// cluster's lock while it works (`command` names the holder) and releases it at the end.
    pub async fn abort(&self, command: &str, say: &(dyn Fn(&str) + Send + Sync)) -> Result<AbortReport, UpgradeError> {
        self.journal.lock(command, STALE_LOCK_WAIT).await?;
        let result = self.unwind(say).await;
        if let Err(e) = self.journal.unlock().await {
            tracing::warn!("could not release the lock: {e}; it goes with this process's ZooKeeper session");
        }
        result
    }

    async fn unwind(&self, say: &(dyn Fn(&str) + Send + Sync)) -> Result<AbortReport, UpgradeError> {
        let mut report = AbortReport { fences_lifted: self.lift_stale_fences().await?, ..AbortReport::default() };
        if report.fences_lifted > 0 {
            say(&format!("lifted {} fences a stopped run left on leaders", report.fences_lifted));
        }
        let drained = self.drained_tablets().await?;
        if !drained.is_empty() {
            let settings = MoveSettings::default();
            self.disable_auto_failover().await?;
            for tablet in drained {
                say(&format!("restoring leaders of {tablet} ..."));
                match self.restore_leaders(&tablet, &settings).await {
                    Ok(r) => {
                        say(&format!(
                            "restored {} leaders of {tablet} in {:.1}s",
                            r.moves.len(),
                            r.duration_ms as f64 / 1000.0
                        ));
                        report.restored.push((tablet, r.moves.len()));
                    }
                    Err(source) => {
                        let auto_failover = match self.restore_auto_failover().await {
                            Ok(Some(v)) => format!("auto_failover was put back to {v}."),
                            Ok(None) => "auto_failover was not changed by a run.".to_string(),
                            Err(e) => format!("auto_failover could not be put back ({e}); it is recorded, so the next abort or run puts it back."),
                        };
                        return Err(UpgradeError::AbortRestore { tablet, source: Box::new(source), auto_failover });
                    }
                }
            }
        }
        report.auto_failover = self.restore_auto_failover().await?;
        match report.auto_failover {
            Some(v) => say(&format!("auto_failover restored to {v}")),
            None => say("auto_failover was not changed by a run"),
        }
        report.run = self.journal.current_run().await?.map(|r| r.name);
        self.journal.finish_run().await?;
        Ok(report)
    }
}
