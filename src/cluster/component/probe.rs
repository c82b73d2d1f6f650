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
}

/// A live process: pid and start time (field 22 of `/proc/<pid>/stat`, so a reused pid is not
/// mistaken for the one seen before), and what it is (command line, working directory,
/// executable) to tell a component's own process from an unrelated one that reuses its pid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Proc {
    pub pid: u32,
    pub start: u64,
    /// The command line, arguments separated by spaces.
    pub cmdline: String,
    /// The working directory; `None` when `/proc/<pid>/cwd` is not readable (another user).
    pub cwd: Option<String>,
    /// The executable; ends with ` (deleted)` when the file was replaced after it started.
    pub exe: Option<String>,
}

impl Proc {
    /// The same process as `other` (not merely the same pid).
    pub fn same(&self, other: &Proc) -> bool {
        self.pid == other.pid && self.start == other.start
    }

    /// `pid 1234 (sleep 1000, in /root)`, for messages.
    pub fn describe(&self) -> String {
        let mut cmd: String = self.cmdline.trim().chars().take(80).collect();
        if self.cmdline.trim().chars().count() > 80 {
            cmd.push_str("...");
        }
        match &self.cwd {
            Some(cwd) => format!("pid {} (`{cmd}`, in {cwd})", self.pid),
            None => format!("pid {} (`{cmd}`)", self.pid),
        }
    }

    /// True when this process is `role`'s process or its mon, started from `dir` (the
    /// install root, symlinks resolved): its command line names the role's flags or pid file
    /// (bin/start.sh: `./bin/openmldb --flagfile=./conf/<role>.flags`, mon's `-m ./bin/<role>.pid`,
    /// O§1.3) or, for a TaskManager, `taskmanager`; and it runs inside `dir` (a TaskManager in
    /// `taskmanager/bin`) when its working directory can be read.
    pub fn is_component(&self, role: Role, dir: &str) -> bool {
        let named = match role {
            Role::Taskmanager => self.cmdline.contains("taskmanager"),
            role => {
                self.cmdline.contains(&format!("conf/{role}.flags"))
                    || self.cmdline.contains(&format!("bin/{role}.pid"))
            }
        };
        let dir = dir.trim_end_matches('/');
        let inside = match &self.cwd {
            Some(cwd) => cwd == dir || cwd.starts_with(&format!("{dir}/")),
            None => true,
        };
        named && inside
    }
}

/// A pid file that points at a live process which is not the component (its pid was reused).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Foreign {
    /// The pid file, relative to the install root.
    pub file: String,
    pub process: Proc,
}

/// What a component's pid files point at now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Found {
    /// The pids in the files, foreign ones left out.
    pub pids: Pids,
    /// The live processes among them that are the component (and its mon).
    pub ours: Vec<Proc>,
    /// Pid files pointing at something else.
    pub foreign: Vec<Foreign>,
}

impl Found {
    /// Whether `pid` is one of the component's live processes.
    pub fn is_alive(&self, pid: Option<u32>) -> bool {
        pid.is_some_and(|pid| self.ours.iter().any(|p| p.pid == pid))
    }
}

/// `state starttime` from `/proc/<pid>/stat`; `None` for a process that is gone or a zombie
/// (the sandbox machine's init does not reap orphans, so a zombie counts as gone).
fn parse_stat(stat: &str) -> Option<(char, u64)> {
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let state = fields.first()?.chars().next()?;
    // Fields after the command: state is field 3, starttime field 22.
    let start = fields.get(19)?.parse().ok()?;
    (state != 'Z' && state != 'X').then_some((state, start))
}

/// Shell that prints what `/proc` knows of the pid in `$p`: a `proc` line (pid, cwd, exe), a
/// `cmd` line and a `stat` line; nothing for a pid that is not running.
pub(crate) const DESCRIBE_PID: &str = "if [ -n \"$p\" ] && [ -r /proc/\"$p\"/stat ]; then \
     printf 'proc\\t%s\\t%s\\t%s\\n' \"$p\" \"$(readlink /proc/\"$p\"/cwd 2>/dev/null)\" \"$(readlink /proc/\"$p\"/exe 2>/dev/null)\"; \
     printf 'cmd\\t%s\\n' \"$(tr '\\000\\n' '  ' < /proc/\"$p\"/cmdline 2>/dev/null)\"; \
     printf 'stat\\t%s\\n' \"$(cat /proc/\"$p\"/stat 2>/dev/null)\"; fi";

/// Reads the `proc`/`cmd`/`stat` records [`DESCRIBE_PID`] prints; other lines are ignored.
pub(crate) fn parse_procs(text: &str) -> Vec<Proc> {
    let mut procs = Vec::new();
    let mut current: Option<Proc> = None;
    for line in text.lines() {
        let (tag, rest) = line.split_once('\t').unwrap_or((line, ""));
        match tag {
            "proc" => {
                let fields: Vec<&str> = rest.splitn(3, '\t').collect();
                let text = |i: usize| fields.get(i).map(|f| f.to_string()).filter(|f| !f.is_empty());
                current = fields.first().and_then(|p| p.parse().ok()).map(|pid| Proc {
                    pid,
                    start: 0,
                    cmdline: String::new(),
                    cwd: text(1),
                    exe: text(2),
                });
            }
            "cmd" => {
                if let Some(p) = current.as_mut() {
                    p.cmdline = rest.trim_end().to_string();
                }
            }
            "stat" => {
                if let Some(mut p) = current.take() {
                    if let Some((_, start)) = parse_stat(rest) {
                        p.start = start;
                        procs.push(p);
                    }
                }
            }
            _ => {}
        }
    }
    procs
}

/// The value of the first uncommented `--key=value` line of a flags file.
pub(crate) fn flag_value(flags: &str, key: &str) -> Option<String> {
    flags.lines().find_map(|line| {
        let value = line.trim().strip_prefix(&format!("--{key}="))?;
        Some(value.trim().to_string())
    })
}

impl Control<'_> {
    fn pid_file(c: &Component) -> String {
        format!("bin/{}.pid", c.role.as_str())
    }

    /// What the component's pid files point at, in one command: the pids, which of them are
    /// live processes of the component, and which point at something else (a reused pid).
    pub(super) async fn look(&self, c: &Component, step: &str) -> Result<Found> {
        let pid = Self::pid_file(c);
        let command = format!(
            "cd {dir} && printf 'dir\\t%s\\n' \"$(pwd -P)\" && for f in {main} {child}; do \
             p=; if [ -f \"$f\" ]; then p=$(tr -d '\\000 \\n' < \"$f\"); fi; printf 'file\\t%s\\t%s\\n' \"$f\" \"$p\"; \
             {DESCRIBE_PID}; done",
            dir = q(&c.dir),
            main = q(&pid),
            child = q(&format!("{pid}.child")),
        );
        let out = self.run(c, step, &command, SHORT, "check that the install dir in the cluster config exists").await?;
        let text = &out.stdout;
        let dir = text.lines().find_map(|l| l.strip_prefix("dir\t")).unwrap_or(&c.dir).trim().to_string();
        let files: Vec<(String, Option<u32>)> = text
            .lines()
            .filter_map(|l| l.strip_prefix("file\t"))
            .map(|l| {
                let (file, pid) = l.split_once('\t').unwrap_or((l, ""));
                (file.to_string(), pid.trim().parse::<u32>().ok().filter(|p| *p > 0))
            })
            .collect();
        let live = parse_procs(text);
        let mut found = Found::default();
        let mut kept = [None, None];
        for (index, (file, pid)) in files.iter().enumerate().take(2) {
            let Some(pid) = *pid else { continue };
            match live.iter().find(|p| p.pid == pid) {
                Some(p) if p.is_component(c.role, &dir) => {
                    found.ours.push(p.clone());
                    kept[index] = Some(pid);
                }
                Some(p) => found.foreign.push(Foreign { file: file.clone(), process: p.clone() }),
                // Not running: the pid stays as the file says (start.sh decides by `kill -0`).
                None => kept[index] = Some(pid),
            }
        }
        found.pids = Pids { main: kept[0], child: kept[1] };
        Ok(found)
    }

    /// The live processes among `pids` (zombies count as gone).
    pub(super) async fn alive(&self, c: &Component, step: &str, pids: &[u32]) -> Result<Vec<Proc>> {
        if pids.is_empty() {
            return Ok(Vec::new());
        }
        let list: Vec<String> = pids.iter().map(u32::to_string).collect();
        let command = format!("for p in {}; do {DESCRIBE_PID}; done", list.join(" "));
        let out = self.run(c, step, &command, SHORT, "the host must have /proc (Linux)").await?;
        Ok(parse_procs(&out.stdout))
    }

    /// Moves pid files that point at an unrelated live process aside (`<file>.stale`), so that
    /// neither start.sh (which would take it for the running component, or `kill` it on stop)
    /// nor this tool ever signals it; says what was found.
    pub(super) async fn set_aside_foreign(&self, c: &Component, step: &str, found: &Found) -> Result<()> {
        for foreign in &found.foreign {
            let what = format!(
                "{}/{} holds {}, which is not the {} but another process: left it alone",
                c.dir.trim_end_matches('/'),
                foreign.file,
                foreign.process.describe(),
                c.role
            );
            if self.dry_run {
                (self.say)(&format!("[dry-run] {}: {what}; would move the stale pid file aside", c.host));
                continue;
            }
            let file = q(&foreign.file);
            let stale = q(&format!("{}.stale", foreign.file));
            let command = format!("cd {} && mv -f {file} {stale}", q(&c.dir));
            self.run(c, step, &command, SHORT, "move the stale pid file aside by hand").await?;
            (self.say)(&format!("{what}, and moved the stale pid file to {}.stale", foreign.file));
        }
        Ok(())
    }

    /// True when something accepts connections on the endpoint, probed on its host.
    pub(super) async fn port_in_use(&self, c: &Component, step: &str) -> Result<bool> {
        let (host, port) = (c.endpoint.host(), c.endpoint.port());
        let probe = format!("exec 3<>/dev/tcp/{host}/{port}");
        let command = format!("if timeout 5 bash -c {} 2>/dev/null; then echo busy; else echo free; fi", q(&probe));
        let out = self.run(c, step, &command, SHORT, "the host needs bash and coreutils' timeout").await?;
        Ok(out.stdout.trim() == "busy")
    }

    /// The files a component writes its logs to, most telling first (O§1.2): for a C++ server
    /// glog's `<log_dir>/<role>.INFO` (src/base/glog_wrapper.h: `--openmldb_log_dir`, files
    /// `<role>.info.log.<time>.<pid>` behind that symlink), then start.sh's redirect of its
    /// stdout and stderr `<log_dir>/<role>.log` and, in mon mode, `<log_dir>/<role>_mon.log`; for
    /// a TaskManager the same two under `taskmanager/bin/<job.log.path>`.
    pub(super) async fn log_files(&self, c: &Component) -> Vec<String> {
        let read = |file: &str| format!("cat {} 2>/dev/null", q(&join(&c.dir, file)));
        let (log_dir, mut files) = if c.role == Role::Taskmanager {
            let props = self.exec(c, "reading conf", &read("conf/taskmanager.properties"), SHORT).await;
            let log_dir = props
                .ok()
                .and_then(|o| super::properties::value(&o.stdout, "job.log.path"))
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| "./logs/".into());
            (join(&join(&c.dir, "taskmanager/bin"), log_dir.trim_end_matches('/')), Vec::new())
        } else {
            let flags = self.exec(c, "reading conf", &read(&format!("conf/{}.flags", c.role)), SHORT).await;
            let log_dir = flags
                .ok()
                .and_then(|o| flag_value(&o.stdout, "openmldb_log_dir"))
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| "./logs".into());
            let log_dir = join(&c.dir, log_dir.trim_end_matches('/'));
            let glog = join(&log_dir, &format!("{}.INFO", c.role));
            (log_dir, vec![glog])
        };
        files.push(join(&log_dir, &format!("{}.log", c.role)));
        if c.daemon {
            files.push(join(&log_dir, &format!("{}_mon.log", c.role)));
        }
        files
    }

    /// Whether the component is registered in ZooKeeper: a tablet's `nodes/<endpoint>`, a
    /// nameserver's election node among the `leader` children (C§1.2, C§1.3), for a TaskManager
    /// whether it is the active one (`taskmanager/leader`, [`super::taskmanagers`]). An apiserver registers nothing (C§1.1).
    pub(super) async fn registered(&self, c: &Component, step: &str) -> Result<bool> {
        let zk_err = |source| ComponentError::Zk { step: step.to_string(), endpoint: c.endpoint.to_string(), source };
        let zk = self.cluster.zk();
        let ep = c.endpoint.to_string();
        match c.role {
            Role::Tablet => {
                let node = format!("nodes/{}", self.cluster.ns.names().name(&ep).await);
                Ok(zk.stat(&node).await.map_err(zk_err)?.is_some())
            }
            Role::Nameserver => Ok(self.election_node(c, step).await?.is_some()),
            Role::Taskmanager => Ok(self.active_taskmanager().await?.as_deref() == Some(ep.as_str())),
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
        // A use_name nameserver's lock holds its name (src/zk/dist_lock.cc:61).
        let name = self.cluster.ns.names().name(&ep).await;
        for child in children {
            match zk.get(&format!("leader/{child}")).await {
                Ok(data) if String::from_utf8_lossy(&data) == ep || String::from_utf8_lossy(&data) == name => {
                    return Ok(Some(child))
                }
                Ok(_) | Err(ZkError::NoNode { .. }) => {}
                Err(e) => return Err(zk_err(e)),
            }
        }
        Ok(None)
    }

    /// Refuses to replace directories a running process uses (in dry-run it only reads).
    pub(super) async fn require_stopped(&self, c: &Component, step: &str) -> Result<()> {
        let found = self.look(c, step).await?;
        if self.dry_run {
            return Ok(());
        }
        if let Some(p) = found.ours.first() {
            return Err(ComponentError::StillRunning {
                step: step.to_string(),
                endpoint: c.endpoint.to_string(),
                host: c.host.clone(),
                pid: p.pid,
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
    fn reads_flags() {
        let flags = "#--openmldb_log_dir=./x\n--openmldb_log_dir=./logs\n--openmldb_log_dir=./later\n";
        assert_eq!(flag_value(flags, "openmldb_log_dir").as_deref(), Some("./logs"));
    }
}
