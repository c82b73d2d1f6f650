//! One component as its host sees it, read-only: whether its install looks like a release
//! (`bin/start.sh`, O§1), whether its process runs (pid files checked against `/proc`, O§1.3),
//! the version installed and the version running, and so whether it still runs a binary its
//! directory no longer holds (a shared directory installed with another component, or a
//! process never restarted after an install).

use serde::Serialize;

use super::{q, Control, Result, SHORT};
use crate::cluster::topology::Role;

/// What `status` found.
#[derive(Debug, Clone, Serialize)]
pub struct ComponentStatus {
    pub endpoint: String,
    pub role: Role,
    pub host: String,
    pub dir: String,
    /// Components running from the same directory.
    pub shared_with: Vec<String>,
    /// `bin/start.sh` exists in the install directory.
    pub has_start_sh: bool,
    pub running: bool,
    pub pid: Option<u32>,
    pub mon_pid: Option<u32>,
    /// Pid files that point at an unrelated process, as `file: what runs there`.
    pub stale_pid_files: Vec<String>,
    /// What the directory holds (`bin/openmldb --version`, or the TaskManager jar); empty when
    /// it cannot be read.
    pub installed_version: String,
    /// What the running process reports; empty when it does not answer (or, for a standby
    /// TaskManager, serves nothing yet).
    pub running_version: String,
    /// The running process's executable was replaced after it started (`/proc/<pid>/exe`
    /// reads `... (deleted)`): it runs a binary its directory no longer holds.
    pub binary_replaced: bool,
}

impl Control<'_> {
    /// Reads one component's state on its host and from the process itself; changes nothing.
    pub async fn status(&self, endpoint: &str) -> Result<ComponentStatus> {
        let c = self.component(endpoint)?;
        let step = "reading its state".to_string();
        let probe = format!("if [ -f {} ]; then echo yes; fi", q(&super::join(&c.dir, "bin/start.sh")));
        let has_start_sh = self.exec(c, &step, &probe, SHORT).await?.stdout.trim() == "yes";
        let mut status = ComponentStatus {
            endpoint: endpoint.to_string(),
            role: c.role,
            host: c.host.clone(),
            dir: c.dir.clone(),
            shared_with: self.config.sharing(c).iter().map(|s| s.endpoint.to_string()).collect(),
            has_start_sh,
            running: false,
            pid: None,
            mon_pid: None,
            stale_pid_files: Vec::new(),
            installed_version: String::new(),
            running_version: String::new(),
            binary_replaced: false,
        };
        if !has_start_sh {
            return Ok(status);
        }
        let found = self.look(c, &step).await?;
        let (mon_pid, pid) = found.pids.split();
        status.running = found.is_alive(pid);
        status.pid = pid.filter(|_| status.running);
        status.mon_pid = mon_pid.filter(|p| found.is_alive(Some(*p)));
        status.stale_pid_files =
            found.foreign.iter().map(|f| format!("{}: {}", f.file, f.process.describe())).collect();
        status.binary_replaced = c.role != Role::Taskmanager
            && found
                .ours
                .iter()
                .filter(|p| Some(p.pid) == pid)
                .any(|p| p.exe.as_deref().is_some_and(|exe| exe.ends_with(" (deleted)")));
        status.installed_version = self.installed_version(endpoint).await.unwrap_or_default();
        if status.running {
            status.running_version = self.cluster.running_version(c.role, endpoint).await.unwrap_or_default();
        }
        Ok(status)
    }
}
