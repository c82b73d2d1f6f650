//! Abort: unwinding a stopped run to a safe state without upgrading anything further. In order:
//! the fences it left are lifted; the components it stopped are started again (as installed,
//! or from their backup); restarted tablets get their data back (recover data); the leaders of
//! drained tablets go back where they were recorded, for each tablet that is up and healthy (a
//! tablet that is down is reported, never waited on); replicas left not alive on healthy
//! tablets are re-added (recover data); auto_failover is put back; the run record
//! is dropped when nothing is left undone. Safety invariants 1 and 3 of the design: nothing a
//! run changed to move leaders outlives it, and no component stays down because of it.

use std::collections::BTreeSet;
use std::time::Duration;

use super::{MoveSettings, UpgradeError, Upgrader};
use crate::cluster::component::{ComponentError, Control};
use crate::cluster::topology::Role;

/// How long `abort` waits for the lock of a run on this host whose process is gone.
const STALE_LOCK_WAIT: Duration = Duration::from_secs(30);
/// How long a component `abort` starts again gets to come up.
const START_TIMEOUT: Duration = Duration::from_secs(120);
/// How long recover data gives one load or op.
const RECOVER_TIMEOUT: Duration = Duration::from_secs(600);

/// What `abort` did, and what it could not do.
#[derive(Debug, Clone, Default)]
pub struct AbortReport {
    /// Fences a stopped run left on leaders, lifted.
    pub fences_lifted: usize,
    /// Components started again: endpoint, the version it runs, the backup it came from.
    pub started: Vec<(String, String, Option<String>)>,
    /// Drained tablets whose leaders were restored, with how many moves each.
    pub restored: Vec<(String, usize)>,
    /// The value auto_failover was put back to, when a run had turned it off.
    pub auto_failover: Option<bool>,
    /// What could not be undone, one line each, saying what to do.
    pub left: Vec<String>,
}

impl Upgrader {
    /// Drops the run record of a run that failed before it changed anything: no step done, and
    /// nothing recorded that `abort` would have to undo (auto_failover, drains, fences, stopped
    /// components; every change is recorded before it is made, design invariant 3). Returns
    /// whether it did. Such a run has nothing to resume, and keeping it would make `status`
    /// show an unfinished run and refuse another command until `abort`.
    pub async fn forget_untouched_run(&self) -> Result<bool, UpgradeError> {
        let Some(run) = self.journal.current_run().await? else { return Ok(false) };
        if run.done_count() > 0 || self.journal.get::<serde_json::Value>("auto_failover").await?.is_some() {
            return Ok(false);
        }
        for kind in ["drain", "fence", "stopped"] {
            if !self.journal.keys(kind).await?.is_empty() {
                return Ok(false);
            }
        }
        self.journal.finish_run().await?;
        Ok(true)
    }

    /// Unwinds a stopped run; `control` starts components, `say` gets a line per step. Holds the
    /// cluster's lock while it works (`command` names the holder) and releases it at the end.
    pub async fn abort(
        &self,
        control: &Control<'_>,
        command: &str,
        say: &(dyn Fn(&str) + Send + Sync),
    ) -> Result<AbortReport, UpgradeError> {
        self.journal.lock(command, STALE_LOCK_WAIT).await?;
        let result = self.unwind(control, say).await;
        if let Err(e) = self.journal.unlock().await {
            tracing::warn!("could not release the lock: {e}; it goes with this process's ZooKeeper session");
        }
        result
    }

    async fn unwind(
        &self,
        control: &Control<'_>,
        say: &(dyn Fn(&str) + Send + Sync),
    ) -> Result<AbortReport, UpgradeError> {
        let fences = self.lift_stale_fences().await?;
        let mut report = AbortReport { fences_lifted: fences.lifted, ..AbortReport::default() };
        if report.fences_lifted > 0 {
            say(&format!("lifted {} fences a stopped run left on leaders", report.fences_lifted));
        }
        if let Err(left_up) = fences.require_all() {
            report.left.push(left_up.to_string());
        }
        let restarted_tablets = self.start_stopped(control, say, &mut report).await?;
        let drained = self.drained_tablets().await?;
        if !drained.is_empty() || restarted_tablets {
            self.disable_auto_failover().await?;
        }
        if restarted_tablets {
            say("recovering the data of the restarted tablets ...");
            match self.recover_data(RECOVER_TIMEOUT, super::recover::DownLeaders::Wait).await {
                Ok(touched) => say(&format!("recovered {} partitions", touched.values().sum::<usize>())),
                Err(e) => report.left.push(format!("recovering data after the restarts failed: {e}")),
            }
        }
        self.restore_drained(&drained, say, &mut report).await?;
        self.readd_dead_replicas(say, &mut report).await?;
        match self.restore_auto_failover().await {
            Ok(restored) => {
                report.auto_failover = restored;
                match restored {
                    Some(v) => say(&format!("auto_failover restored to {v}")),
                    None => say("auto_failover was not changed by a run"),
                }
            }
            Err(held @ UpgradeError::AutoFailoverHeld { .. }) => {
                say(&held.to_string());
                report.left.push("auto_failover off (see above why)".to_string());
            }
            Err(e) => return Err(e),
        }
        if report.left.is_empty() {
            self.journal.finish_run().await?;
        }
        Ok(report)
    }

    /// Replicas left not alive on healthy tablets (a move the kill cut short, or the
    /// nameserver's own failover during the run) come back the way the run brings them back
    /// before each drain: recover data, with auto_failover off meanwhile.
    async fn readd_dead_replicas(
        &self,
        say: &(dyn Fn(&str) + Send + Sync),
        report: &mut AbortReport,
    ) -> Result<(), UpgradeError> {
        let healthy: BTreeSet<String> =
            self.cluster.ns.show_tablet().await?.into_iter().filter(|t| t.is_healthy()).map(|t| t.endpoint).collect();
        let dead = self
            .cluster
            .ns
            .show_all_tables()
            .await?
            .iter()
            .flat_map(|t| t.table_partition.iter())
            .flat_map(|p| p.partition_meta.iter())
            .filter(|m| !m.is_alive && healthy.contains(&m.endpoint))
            .count();
        if dead == 0 {
            return Ok(());
        }
        self.disable_auto_failover().await?;
        say(&format!("re-adding {dead} replica(s) not alive on healthy tablets ..."));
        match self.recover_data(RECOVER_TIMEOUT, super::recover::DownLeaders::Wait).await {
            Ok(touched) => say(&format!("recovered {} partitions", touched.values().sum::<usize>())),
            Err(e) => report.left.push(format!("re-adding the replicas not alive failed: {e}")),
        }
        Ok(())
    }

    /// Starts every component recorded as stopped (nameservers first, then tablets, apiservers,
    /// taskmanagers); returns whether a tablet was among them.
    async fn start_stopped(
        &self,
        control: &Control<'_>,
        say: &(dyn Fn(&str) + Send + Sync),
        report: &mut AbortReport,
    ) -> Result<bool, UpgradeError> {
        let stopped = control.recorded_endpoints("stopped").await?;
        let mut restarted_tablet = false;
        for role in [Role::Nameserver, Role::Tablet, Role::Apiserver, Role::Taskmanager] {
            for c in control.config.components_of(role).filter(|c| stopped.contains(&c.endpoint.to_string())) {
                let endpoint = c.endpoint.to_string();
                say(&format!("starting {} again, which a run left stopped ...", c.on_host()));
                match control.start_again(&endpoint, START_TIMEOUT).await {
                    Ok(again) => {
                        restarted_tablet |= role == Role::Tablet;
                        report.started.push((endpoint, again.started.version, again.from_backup));
                    }
                    Err(e @ ComponentError::Down { .. }) => report.left.push(e.to_string()),
                    Err(e) => report.left.push(format!("starting {} again failed: {e}", c.on_host())),
                }
            }
        }
        Ok(restarted_tablet)
    }

    /// Restores the leaders of each drained tablet that is up and healthy; a tablet that is not
    /// is reported, not waited on.
    async fn restore_drained(
        &self,
        drained: &[String],
        say: &(dyn Fn(&str) + Send + Sync),
        report: &mut AbortReport,
    ) -> Result<(), UpgradeError> {
        let tablets = self.cluster.ns.show_tablet().await?;
        let settings = MoveSettings::default();
        for tablet in drained {
            let state = tablets.iter().find(|t| &t.endpoint == tablet).map(|t| t.state.clone());
            if !state.as_ref().is_some_and(|s| *s == crate::cluster::ns::TabletState::Healthy) {
                let seen = state.map_or("not registered".to_string(), |s| s.to_string());
                report.left.push(format!(
                    "the leaders of {tablet} stay moved: the tablet is not healthy ({seen}); start it and run abort again"
                ));
                continue;
            }
            say(&format!("restoring leaders of {tablet} ..."));
            match self.restore_leaders(tablet, &settings).await {
                Ok(r) => {
                    say(&format!(
                        "restored {} leaders of {tablet} in {:.1}s",
                        r.moves.len(),
                        r.duration_ms as f64 / 1000.0
                    ));
                    report.restored.push((tablet.clone(), r.moves.len()));
                }
                Err(e) => report.left.push(format!("restoring the leaders of {tablet} failed: {e}")),
            }
        }
        Ok(())
    }
}
