//! What `mldb-upgrade status` reports: the cluster (nameserver leader, auto_failover, ops, every
//! component of the config with its version and state, leaders per tablet) and the tool's own
//! state in the journal (lock holder, unfinished run, drained tablets, fences, the recorded
//! auto_failover). Read-only. A component that does not answer is shown as such; the nameserver
//! and the journal must answer.

use std::collections::BTreeMap;
use std::fmt;

use super::component::records::Stopped;
use super::ns::TabletState;
use super::topology::Role;
use super::upgrade::{UpgradeError, Upgrader};
use crate::cluster::component::taskmanagers::{self, LeaderMatch};
use crate::config::ClusterConfig;
use crate::journal::run::{LockHolder, RunRecord};

/// How many of the run's latest steps are shown.
const STEPS_SHOWN: usize = 5;

/// One component of the config as it answers now.
#[derive(Debug, Clone)]
pub struct ComponentStatus {
    pub role: Role,
    pub endpoint: String,
    pub host: String,
    /// The version it reports; `None` when it does not answer.
    pub version: Option<String>,
    pub state: ComponentState,
}

/// What a component is doing, as far as the cluster tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ComponentState {
    /// A tablet the nameserver lists, with the number of partitions it leads.
    Tablet {
        state: TabletState,
        leads: usize,
    },
    /// A tablet of the config the nameserver does not list.
    UnknownTablet,
    /// The nameserver leader, or the active TaskManager.
    Leader,
    /// A TaskManager that does not answer while another one is active: a standby serves
    /// nothing until it takes over (C§3.8), so it cannot be told from a stopped one here.
    StandbyOrStopped {
        active: String,
    },
    /// A TaskManager that does not answer, and none is active.
    NoActiveTaskmanager,
    NotAnswering,
    Up,
}

impl fmt::Display for ComponentState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ComponentState::Tablet { state, leads } => write!(f, "{state}, leads {leads} partitions"),
            ComponentState::UnknownTablet => f.write_str("unknown to the nameserver"),
            ComponentState::Leader => f.write_str("leader"),
            ComponentState::StandbyOrStopped { active } => write!(f, "standby or stopped (active: {active})"),
            ComponentState::NoActiveTaskmanager => f.write_str("not answering; no TaskManager is active"),
            ComponentState::NotAnswering => f.write_str("not answering"),
            ComponentState::Up => f.write_str("up"),
        }
    }
}

/// The whole report.
#[derive(Debug, Clone)]
pub struct ClusterStatus {
    pub zk_cluster: String,
    pub root_path: String,
    pub nameserver_leader: String,
    pub auto_failover: bool,
    pub ops_known: usize,
    pub ops_pending: usize,
    pub ops_failed: usize,
    pub components: Vec<ComponentStatus>,
    pub lock: Option<LockHolder>,
    pub run: Option<RunRecord>,
    pub drained: Vec<String>,
    pub fences: usize,
    /// Components a run stopped and did not start again, with when.
    pub stopped: Vec<(String, String)>,
    /// The value auto_failover had before a run turned it off and did not put it back.
    pub recorded_auto_failover: Option<bool>,
}

impl ClusterStatus {
    /// Reads the cluster `config` describes through `upgrader`.
    pub async fn read(config: &ClusterConfig, upgrader: &Upgrader) -> Result<Self, UpgradeError> {
        let cluster = &upgrader.cluster;
        let ns = &cluster.ns;
        let nameserver_leader = ns.discover_leader().await?;
        let tablets = ns.show_tablet().await?;
        let auto_failover = ns.auto_failover().await?;
        let ops = ns.show_op_status(None, None, None).await?;
        // The active TaskManager holds `<root>/taskmanager/leader` (C§1.1), as server.host:port,
        // which may be 0.0.0.0 or a hostname ([`taskmanagers`]).
        let taskmanagers: Vec<_> = config.components_of(Role::Taskmanager).map(|c| c.endpoint.clone()).collect();
        let active_taskmanager = match cluster.zk().get("taskmanager/leader").await {
            Ok(data) => Some(match taskmanagers::match_leader(&String::from_utf8_lossy(&data), &taskmanagers) {
                LeaderMatch::Is(endpoint) => endpoint,
                LeaderMatch::OneOf(candidates) => format!("one of {}", candidates.join(", ")),
                LeaderMatch::Unknown(value) => format!("{value}, not in the cluster config"),
            }),
            Err(_) => None,
        };
        let mut leads: BTreeMap<String, usize> = BTreeMap::new();
        for t in ns.show_all_tables().await? {
            for l in t.table_partition.iter().filter_map(|p| p.alive_leader()) {
                *leads.entry(l.endpoint.clone()).or_default() += 1;
            }
        }
        let mut components = Vec::new();
        for c in &config.components {
            let endpoint = c.endpoint.to_string();
            let version = cluster.running_version(c.role, &endpoint).await.ok();
            let state = match c.role {
                Role::Tablet => match tablets.iter().find(|t| t.endpoint == endpoint) {
                    Some(t) => ComponentState::Tablet {
                        state: t.state.clone(),
                        leads: leads.get(&endpoint).copied().unwrap_or(0),
                    },
                    None => ComponentState::UnknownTablet,
                },
                Role::Nameserver if endpoint == nameserver_leader => ComponentState::Leader,
                Role::Taskmanager if active_taskmanager.as_deref() == Some(endpoint.as_str()) => ComponentState::Leader,
                Role::Taskmanager if version.is_none() => match &active_taskmanager {
                    Some(active) => ComponentState::StandbyOrStopped { active: active.clone() },
                    None => ComponentState::NoActiveTaskmanager,
                },
                _ if version.is_none() => ComponentState::NotAnswering,
                _ => ComponentState::Up,
            };
            components.push(ComponentStatus { role: c.role, endpoint, host: c.host.clone(), version, state });
        }
        Ok(ClusterStatus {
            zk_cluster: config.zk.cluster.clone(),
            root_path: config.zk.root_path.clone(),
            nameserver_leader,
            auto_failover,
            ops_known: ops.len(),
            ops_pending: ops.iter().filter(|o| !o.is_finished()).count(),
            ops_failed: ops.iter().filter(|o| o.is_failure()).count(),
            components,
            lock: upgrader.journal.lock_holder().await?,
            run: upgrader.journal.current_run().await?,
            drained: upgrader.drained_tablets().await?,
            fences: upgrader.stale_fences().await?.len(),
            stopped: stopped_components(upgrader).await?,
            recorded_auto_failover: upgrader.recorded_auto_failover().await?,
        })
    }
}

/// The `stopped/<endpoint>` records component control leaves until a component starts again.
async fn stopped_components(upgrader: &Upgrader) -> Result<Vec<(String, String)>, UpgradeError> {
    let mut stopped = Vec::new();
    for endpoint in upgrader.journal.keys("stopped").await? {
        let record: Option<Stopped> = upgrader.journal.get(&format!("stopped/{endpoint}")).await?;
        stopped.push((endpoint, record.map(|r| r.at).unwrap_or_default()));
    }
    Ok(stopped)
}

impl ClusterStatus {
    /// True when the lock holder is a run in progress (not a process that is gone).
    fn run_is_live(&self) -> bool {
        self.lock.as_ref().is_some_and(|holder| !holder.is_gone())
    }
}

impl fmt::Display for ClusterStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "cluster     {} (root {})", self.zk_cluster, self.root_path)?;
        writeln!(f, "nameserver  leader {}", self.nameserver_leader)?;
        writeln!(f, "auto_failover {}", self.auto_failover)?;
        writeln!(
            f,
            "ops         {} known, {} pending, {} failed or canceled",
            self.ops_known, self.ops_pending, self.ops_failed
        )?;
        let mut table = comfy_table::Table::new();
        table.load_preset(comfy_table::presets::NOTHING);
        table.set_header(["role", "endpoint", "host", "version", "state"]);
        for c in &self.components {
            table.add_row([
                c.role.to_string(),
                c.endpoint.clone(),
                c.host.clone(),
                c.version.clone().unwrap_or_else(|| "-".into()),
                c.state.to_string(),
            ]);
        }
        writeln!(f, "{table}")?;
        match &self.lock {
            Some(holder) if holder.is_gone() => writeln!(
                f,
                "lock        held by {holder}, a process that is gone; the lock goes when its ZooKeeper session expires"
            )?,
            Some(holder) => {
                let step = self
                    .run
                    .as_ref()
                    .and_then(|r| r.current_step())
                    .map_or(String::new(), |s| format!(", now at `{s}`"));
                writeln!(f, "lock        held by {holder}: running{step}")?
            }
            None => writeln!(f, "lock        free")?,
        }
        match &self.run {
            Some(run) => {
                let done = run.done_count();
                let state = if self.run_is_live() {
                    "in progress"
                } else {
                    "stopped: re-run the same command to resume it, or `mldb-upgrade abort` to unwind it"
                };
                writeln!(
                    f,
                    "journal     unfinished run `{}` started {}: {done}/{} steps done ({state})",
                    run.name,
                    run.started,
                    run.steps.len()
                )?;
                let first_shown = run.order.len().saturating_sub(STEPS_SHOWN);
                for step in &run.order[first_shown..] {
                    if let Some(s) = run.steps.get(step) {
                        writeln!(f, "              {:<8} {step}", s.state)?;
                    }
                }
            }
            None => writeln!(f, "journal     no unfinished run")?,
        }
        if !self.drained.is_empty() {
            writeln!(f, "            drained, leaders not restored: {}", self.drained.join(", "))?;
        }
        if self.fences > 0 && self.run_is_live() {
            writeln!(
                f,
                "            {} leaders fenced by the running run: their leader switches are in progress",
                self.fences
            )?;
        } else if self.fences > 0 {
            writeln!(
                f,
                "            {} leaders fenced by a stopped run (refusing writes): the next run or `abort` lifts them once their partitions have no op pending (see ops)",
                self.fences
            )?;
        }
        for (endpoint, since) in &self.stopped {
            let who = if self.run_is_live() { "the running run" } else { "a stopped run; `abort` starts it" };
            writeln!(f, "            {endpoint} stopped since {since} by {who}")?;
        }
        if let Some(original) = self.recorded_auto_failover {
            writeln!(f, "            auto_failover was {original} before the run turned it off")?;
        }
        Ok(())
    }
}
