//! Process probing: the pid files a component's `bin/start.sh` writes (O§1.3), whether those
//! processes live (`/proc/<pid>/stat`, start time included so a reused pid is not taken for
//! ours), whether its port is taken, where it logs, whether it is registered in ZooKeeper
//! (C§1.2, C§1.3) and which version it runs (C§1.4, O§4.3). Reads only.

use super::{join, q, ComponentError, Control, Result, SHORT};
use crate::cluster::topology::Role;
use crate::cluster::zk::ZkError;
use crate::config::Component;

/// The pid files of a component (O§1.3): normal mode `bin/<role>.pid`; mon mode the mon's pid
/// there and the component's in `bin/<role>.pid.child`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Pids {
    pub main: Option<u32>,
    pub child: Option<u32>,
}

impl Pids {
    /// `(mon, component)`.
    pub fn split(self) -> (Option<u32>, Option<u32>) {
        match self.child {
            Some(child) => (self.main, Some(child)),
            None => (None, self.main),
        }
    }

    /// The pids the files hold.
    pub fn all(self) -> Vec<u32> {
        [self.main, self.child].into_iter().flatten().collect()
    }
}

/// A process's identity: pid and start time (field 22 of `/proc/<pid>/stat`), so a reused pid
/// is not mistaken for ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Proc {
    pub pid: u32,
    pub start: u64,
}

/// `state starttime` per pid from `/proc/<pid>/stat`; `None` for a process that is gone or a
/// zombie (the sandbox machine's init does not reap orphans, so a zombie counts as gone).
fn parse_stat(stat: &str) -> Option<(char, u64)> {
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let state = fields.first()?.chars().next()?;
    // Fields after the command: state is field 3, starttime field 22.
    let start = fields.get(19)?.parse().ok()?;
    (state != 'Z' && state != 'X').then_some((state, start))
}

/// The value of the first uncommented `--key=value` line of a flags file.
fn flag_value(flags: &str, key: &str) -> Option<String> {
    flags.lines().find_map(|line| {
        let value = line.trim().strip_prefix(&format!("--{key}="))?;
        Some(value.trim().to_string())
    })
}

/// The value of the last uncommented `key=value` line of a properties file (Java keeps the last).
pub(super) fn property_value(text: &str, key: &str) -> Option<String> {
    text.lines()
        .rev()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .filter(|(k, _)| k.trim() == key)
        .map(|(_, v)| v.trim().to_string())
        .next()
}

impl Control<'_> {
    fn pid_file(c: &Component) -> String {
        format!("bin/{}.pid", c.role.as_str())
    }

    /// What the component's pid files hold.
    pub(super) async fn read_pids(&self, c: &Component, step: &str) -> Result<Pids> {
        let pid = Self::pid_file(c);
        let command = format!(
            "cd {} && for f in {} {}; do if [ -f \"$f\" ]; then tr -d '\\000' < \"$f\" | tr -d ' \\n'; fi; echo; done",
            q(&c.dir),
            q(&pid),
            q(&format!("{pid}.child"))
        );
        let out = self.run(c, step, &command, SHORT, "check that the install dir in the cluster config exists").await?;
        let mut lines = out.stdout.lines().map(|l| l.trim().parse::<u32>().ok().filter(|p| *p > 0));
        Ok(Pids { main: lines.next().flatten(), child: lines.next().flatten() })
    }

    /// The live processes among `pids` (zombies count as gone).
    pub(super) async fn alive(&self, c: &Component, step: &str, pids: &[u32]) -> Result<Vec<Proc>> {
        if pids.is_empty() {
            return Ok(Vec::new());
        }
        let list: Vec<String> = pids.iter().map(u32::to_string).collect();
        let command = format!(
            "for p in {}; do printf '%s ' \"$p\"; cat /proc/\"$p\"/stat 2>/dev/null || echo; done",
            list.join(" ")
        );
        let out = self.run(c, step, &command, SHORT, "the host must have /proc (Linux)").await?;
        Ok(out
            .stdout
            .lines()
            .filter_map(|line| {
                let (pid, stat) = line.split_once(' ')?;
                let (_, start) = parse_stat(stat)?;
                Some(Proc { pid: pid.parse().ok()?, start })
            })
            .collect())
    }

    /// True when something accepts connections on the endpoint, probed on its host.
    pub(super) async fn port_in_use(&self, c: &Component, step: &str) -> Result<bool> {
        let (host, port) = (c.endpoint.host(), c.endpoint.port());
        let probe = format!("exec 3<>/dev/tcp/{host}/{port}");
        let command = format!("if timeout 5 bash -c {} 2>/dev/null; then echo busy; else echo free; fi", q(&probe));
        let out = self.run(c, step, &command, SHORT, "the host needs bash and coreutils' timeout").await?;
        Ok(out.stdout.trim() == "busy")
    }

    /// The component's own log (start.sh sends stdout/stderr there, O§1.2).
    pub(super) async fn log_path(&self, c: &Component) -> String {
        let read = |file: &str| format!("cat {} 2>/dev/null", q(&join(&c.dir, file)));
        if c.role == Role::Taskmanager {
            let props = self.exec(c, "reading conf", &read("conf/taskmanager.properties"), SHORT).await;
            let log_dir = props
                .ok()
                .and_then(|o| property_value(&o.stdout, "job.log.path"))
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| "./logs/".into());
            let base = join(&c.dir, "taskmanager/bin");
            return join(&join(&base, log_dir.trim_end_matches('/')), "taskmanager.log");
        }
        let flags = self.exec(c, "reading conf", &read(&format!("conf/{}.flags", c.role)), SHORT).await;
        let log_dir = flags
            .ok()
            .and_then(|o| flag_value(&o.stdout, "openmldb_log_dir"))
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| "./logs".into());
        join(&join(&c.dir, log_dir.trim_end_matches('/')), &format!("{}.log", c.role))
    }

    /// Whether the component is registered in ZooKeeper: a tablet's `nodes/<endpoint>`, a
    /// nameserver's election node among the `leader` children (C§1.2, C§1.3), for a TaskManager
    /// whether it holds `taskmanager/leader`. An apiserver registers nothing (C§1.1).
    pub(super) async fn registered(&self, c: &Component, step: &str) -> Result<bool> {
        let zk_err = |source| ComponentError::Zk { step: step.to_string(), endpoint: c.endpoint.to_string(), source };
        let zk = self.cluster.zk();
        let ep = c.endpoint.to_string();
        match c.role {
            Role::Tablet => Ok(zk.stat(&format!("nodes/{ep}")).await.map_err(zk_err)?.is_some()),
            Role::Nameserver => Ok(self.election_node(c, step).await?.is_some()),
            Role::Taskmanager => match zk.get("taskmanager/leader").await {
                Ok(data) => Ok(String::from_utf8_lossy(&data) == ep),
                Err(ZkError::NoNode { .. }) => Ok(false),
                Err(e) => Err(zk_err(e)),
            },
            Role::Apiserver => Ok(true),
        }
    }

    /// The nameserver's election node under `<root>/leader`, the ephemeral `lock_request` node
    /// whose value is its endpoint (C§1.2), if there is one.
    pub(super) async fn election_node(&self, c: &Component, step: &str) -> Result<Option<String>> {
        let zk_err = |source| ComponentError::Zk { step: step.to_string(), endpoint: c.endpoint.to_string(), source };
        let zk = self.cluster.zk();
        let children = match zk.children("leader").await {
            Ok(children) => children,
            Err(ZkError::NoNode { .. }) => return Ok(None),
            Err(e) => return Err(zk_err(e)),
        };
        let ep = c.endpoint.to_string();
        for child in children {
            match zk.get(&format!("leader/{child}")).await {
                Ok(data) if String::from_utf8_lossy(&data) == ep => return Ok(Some(child)),
                Ok(_) | Err(ZkError::NoNode { .. }) => {}
                Err(e) => return Err(zk_err(e)),
            }
        }
        Ok(None)
    }

    /// Refuses to replace directories a running process uses (in dry-run it only reads).
    pub(super) async fn require_stopped(&self, c: &Component, step: &str) -> Result<()> {
        let pids = self.read_pids(c, step).await?.all();
        let alive = self.alive(c, step, &pids).await?;
        if self.dry_run {
            return Ok(());
        }
        if let Some(p) = pids.into_iter().find(|p| alive.iter().any(|a| a.pid == *p)) {
            return Err(ComponentError::StillRunning {
                step: step.to_string(),
                endpoint: c.endpoint.to_string(),
                host: c.host.clone(),
                pid: p,
            });
        }
        Ok(())
    }

    /// The version the running component reports (see [`crate::cluster::Cluster::running_version`]).
    pub async fn running_version(&self, endpoint: &str) -> Result<String> {
        let c = self.component(endpoint)?;
        self.cluster.running_version(c.role, endpoint).await.map_err(|e| ComponentError::Other {
            step: "reading the running version".into(),
            endpoint: endpoint.to_string(),
            reason: format!("{e}. Is it running? (a standby TaskManager does not answer until it becomes the leader)"),
        })
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_zombies_and_odd_names_count_as_gone() {
        let live = "123 (open) mldb) S 1 123 123 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 98765 100 1";
        assert_eq!(parse_stat(live), Some(('S', 98765)));
        let zombie = "123 (openmldb) Z 1 123 123 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 98765 0 0";
        assert_eq!(parse_stat(zombie), None);
        assert_eq!(parse_stat(""), None);
    }

    #[test]
    fn reads_flags_and_properties() {
        let flags = "#--openmldb_log_dir=./x\n--openmldb_log_dir=./logs\n--openmldb_log_dir=./later\n";
        assert_eq!(flag_value(flags, "openmldb_log_dir").as_deref(), Some("./logs"));
        let props = "spark.home=\n#spark.home=/a\nspark.home=/opt/spark\n";
        assert_eq!(property_value(props, "spark.home").as_deref(), Some("/opt/spark"));
    }
}
