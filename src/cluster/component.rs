//! Component control: stopping, starting, backing up and installing OpenMLDB components on
//! their hosts, and reading their versions.
//!
//! Process control goes through each install's own `bin/start.sh` (O§1), but success is judged
//! by our own checks, never by its exit code or output: start.sh exits 0 on a failed start,
//! stop waits a fixed 3 s and never escalates (O§1.4, O§1.5). So `stop` waits until every
//! recorded process is really gone (SIGKILL after a grace period, the mon first so it cannot
//! restart the child, O§1.8) and the port is free; `start` waits until the process is alive,
//! answers `/version` (or GetVersion) and is registered in ZooKeeper (O§8, C§1.3, C§1.4).
//!
//! Every command runs through [`Remotes::exec`] with its arguments quoted by `shlex`; in
//! dry-run mode the functions that change something report the commands they would run and
//! do nothing. Every wait has a timeout and names what it waited for.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::cluster::topology::Role;
use crate::cluster::zk::{Zk, ZkError};
use crate::config::{ClusterConfig, Component};
use crate::interrupt::Interrupt;
use crate::remote::{ExecOutput, PathKind, RemoteError, Remotes};

/// How often waits poll.
const POLL: Duration = Duration::from_millis(200);
/// Time limit of one short command (reading a pid file, `--version`, a liveness probe).
const SHORT: Duration = Duration::from_secs(30);
/// Time limit of `bin/start.sh` itself: its own waits add up to about 25 s (O§1.4, O§1.5).
const START_SH: Duration = Duration::from_secs(180);
/// Time limit of copying a `bin/`, `taskmanager/` or Spark distribution.
const COPY: Duration = Duration::from_secs(900);
/// Lines of the component's log shown when it fails to start.
const LOG_TAIL_LINES: usize = 30;

#[derive(Debug, thiserror::Error)]
pub enum ComponentError {
    #[error("no component with endpoint {endpoint} in {config}; known endpoints: {known}")]
    UnknownEndpoint { endpoint: String, config: String, known: String },
    #[error("{function} works on {expected} only, but {endpoint} is a {role}")]
    WrongRole { function: &'static str, endpoint: String, role: Role, expected: &'static str },
    #[error("{step} for {endpoint} on {host}: {source}")]
    Remote {
        step: String,
        endpoint: String,
        host: String,
        #[source]
        source: RemoteError,
    },
    #[error("{step} for {endpoint}: {source}")]
    Zk {
        step: String,
        endpoint: String,
        #[source]
        source: ZkError,
    },
    #[error("{step} for {endpoint} on {host} failed: `{command}` exited with {exit_code}\n```\n{output}\n```\n{next}")]
    Command {
        step: String,
        endpoint: String,
        host: String,
        command: String,
        exit_code: i32,
        output: String,
        next: String,
    },
    #[error("{step} for {endpoint} on {host}: waited {waited:?} for {what}, in vain. {next}")]
    Timeout { step: String, endpoint: String, host: String, what: String, waited: Duration, next: String },
    #[error(
        "{role} {endpoint} did not start on {host}: {reason}.\nstart.sh said:\n```\n{start_sh}\n```\nlast lines of {log} on {host}:\n```\n{log_tail}\n```\n{next}"
    )]
    StartFailed {
        role: Role,
        endpoint: String,
        host: String,
        reason: String,
        start_sh: String,
        log: String,
        log_tail: String,
        next: String,
    },
    #[error("{step} for {endpoint}: {host} has {free_kib} KiB free under {dir} but needs {needed_kib} KiB. {next}")]
    NoSpace { step: String, endpoint: String, host: String, dir: String, free_kib: u64, needed_kib: u64, next: String },
    #[error("{step} for {endpoint}: {path} on {host} is not a usable release: {reason}")]
    BadRelease { step: String, endpoint: String, host: String, path: String, reason: String },
    #[error(
        "{step} for {endpoint}: it is still running on {host} (pid {pid}); stop it first with \
         component::stop(\"{endpoint}\") so nothing runs from a half-replaced directory"
    )]
    StillRunning { step: String, endpoint: String, host: String, pid: u32 },
    #[error("{step} for {endpoint}: {reason}")]
    Other { step: String, endpoint: String, reason: String },
}

type Result<T> = std::result::Result<T, ComponentError>;

/// Which install directories a backup or install covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parts {
    pub bin: bool,
    pub taskmanager: bool,
}

impl Parts {
    /// What the documented procedure replaces for a role: `bin/`, plus `taskmanager/` for a
    /// TaskManager (O§6.1).
    pub fn default_for(role: Role) -> Parts {
        Parts { bin: true, taskmanager: role == Role::Taskmanager }
    }

    /// `"bin"`, `"taskmanager"` or both separated by `,` or `+`.
    pub fn parse(text: &str) -> std::result::Result<Parts, String> {
        let mut parts = Parts { bin: false, taskmanager: false };
        for word in text.split([',', '+', ' ']).map(str::trim).filter(|w| !w.is_empty()) {
            match word.trim_end_matches('/') {
                "bin" => parts.bin = true,
                "taskmanager" => parts.taskmanager = true,
                other => {
                    return Err(format!(
                        "unknown part `{other}`: expected \"bin\", \"taskmanager\" or \"bin,taskmanager\""
                    ))
                }
            }
        }
        if !parts.bin && !parts.taskmanager {
            return Err("nothing to copy: give \"bin\", \"taskmanager\" or \"bin,taskmanager\"".into());
        }
        Ok(parts)
    }

    pub fn dirs(self) -> Vec<&'static str> {
        let mut dirs = Vec::new();
        if self.bin {
            dirs.push("bin");
        }
        if self.taskmanager {
            dirs.push("taskmanager");
        }
        dirs
    }
}

/// Time limits of `stop`.
#[derive(Debug, Clone, Copy)]
pub struct StopOptions {
    /// How long processes get after start.sh's SIGTERM before SIGKILL.
    pub grace: Duration,
    /// How long to wait for the processes to go after SIGKILL, and for the port to be free.
    pub timeout: Duration,
}

impl Default for StopOptions {
    fn default() -> Self {
        StopOptions { grace: Duration::from_secs(30), timeout: Duration::from_secs(60) }
    }
}

/// What `stop` did.
#[derive(Debug, Clone, Default)]
pub struct StopReport {
    pub endpoint: String,
    pub host: String,
    /// The mon's pid (mon mode) and the component's, as found in the pid files.
    pub mon_pid: Option<u32>,
    pub pid: Option<u32>,
    /// Pids that were alive and are gone now.
    pub stopped: Vec<u32>,
    pub killed: bool,
    pub duration: Duration,
    pub dry_run: bool,
}

/// What `start` found.
#[derive(Debug, Clone, Default)]
pub struct StartReport {
    pub endpoint: String,
    pub host: String,
    pub pid: Option<u32>,
    pub mon_pid: Option<u32>,
    /// The running version; empty for a standby TaskManager (it does not serve RPCs).
    pub version: String,
    /// Registered in ZooKeeper (tablet node, nameserver election node, TaskManager leader).
    pub registered: bool,
    pub already_running: bool,
    pub duration: Duration,
    pub dry_run: bool,
}

/// What `backup`, `install`, `install_spark` and `rollback_install` did.
#[derive(Debug, Clone, Default)]
pub struct InstallReport {
    pub endpoint: String,
    pub host: String,
    /// The backup directory (backup), the release directory (install), the Spark directory
    /// (install_spark) or the backup restored from (rollback_install).
    pub path: String,
    /// Directories copied or replaced, relative to the install root (or Spark's home).
    pub dirs: Vec<String>,
    /// The version now installed (or, for backup, the version backed up).
    pub version: String,
    /// Where the replaced directory was kept (install_spark only).
    pub previous: Option<String>,
    pub dry_run: bool,
}

/// The pid files of a component (O§1.3): normal mode `bin/<role>.pid`; mon mode the mon's pid
/// there and the component's in `bin/<role>.pid.child`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Pids {
    main: Option<u32>,
    child: Option<u32>,
}

impl Pids {
    /// `(mon, component)`.
    fn split(self) -> (Option<u32>, Option<u32>) {
        match self.child {
            Some(child) => (self.main, Some(child)),
            None => (None, self.main),
        }
    }
}

/// A process's identity: pid and start time (field 22 of `/proc/<pid>/stat`), so a reused pid
/// is not mistaken for ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Proc {
    pid: u32,
    start: u64,
}

/// Runs the component primitives against one cluster.
pub struct Control<'a> {
    pub config: &'a ClusterConfig,
    pub remotes: &'a Remotes,
    pub zk: &'a Zk,
    pub interrupt: &'a Interrupt,
    pub dry_run: bool,
    /// User-facing progress and dry-run lines.
    pub say: &'a (dyn Fn(&str) + Send + Sync),
}

fn q(text: &str) -> String {
    shlex::try_quote(text).map(|c| c.into_owned()).unwrap_or_else(|_| format!("'{}'", text.replace('\0', "")))
}

fn fenced_tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.trim_end().lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// `openmldb version 0.9.3-c5ffa75` → `0.9.3-c5ffa75` (O§4.1).
pub fn parse_version_output(text: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let rest = line.trim().split_once(" version ")?.1.trim();
        let version = rest.split_whitespace().next()?;
        version.chars().next().is_some_and(|c| c.is_ascii_digit()).then(|| version.to_string())
    })
}

/// `openmldb-taskmanager-0.9.3.jar` in a listing → `0.9.3` (O§4.3).
pub fn parse_taskmanager_jar(listing: &str) -> Option<String> {
    let mut versions: Vec<&str> = listing
        .lines()
        .filter_map(|name| name.trim().strip_prefix("openmldb-taskmanager-")?.strip_suffix(".jar"))
        .filter(|v| v.chars().next().is_some_and(|c| c.is_ascii_digit()))
        .collect();
    versions.sort();
    versions.first().map(|v| v.to_string())
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
fn property_value(text: &str, key: &str) -> Option<String> {
    text.lines()
        .rev()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .filter(|(k, _)| k.trim() == key)
        .map(|(_, v)| v.trim().to_string())
        .next()
}

fn join(dir: &str, rel: &str) -> String {
    if rel.starts_with('/') {
        rel.to_string()
    } else {
        format!("{}/{}", dir.trim_end_matches('/'), rel.trim_start_matches("./"))
    }
}

impl<'a> Control<'a> {
    /// The component at `endpoint`, or an error listing the known ones.
    pub fn component(&self, endpoint: &str) -> Result<&'a Component> {
        self.config.component(endpoint).ok_or_else(|| ComponentError::UnknownEndpoint {
            endpoint: endpoint.to_string(),
            config: self.config.path.display().to_string(),
            known: self
                .config
                .components
                .iter()
                .map(|c| format!("{} ({})", c.endpoint, c.role))
                .collect::<Vec<_>>()
                .join(", "),
        })
    }

    async fn exec(&self, c: &Component, step: &str, command: &str, timeout: Duration) -> Result<ExecOutput> {
        self.remotes.exec(&c.host, command, timeout, self.interrupt).await.map_err(|source| ComponentError::Remote {
            step: step.to_string(),
            endpoint: c.endpoint.to_string(),
            host: c.host.clone(),
            source,
        })
    }

    /// Runs `command`, which must exit 0.
    async fn run(&self, c: &Component, step: &str, command: &str, timeout: Duration, next: &str) -> Result<ExecOutput> {
        let out = self.exec(c, step, command, timeout).await?;
        if out.exit_code != 0 {
            return Err(ComponentError::Command {
                step: step.to_string(),
                endpoint: c.endpoint.to_string(),
                host: c.host.clone(),
                command: command.to_string(),
                exit_code: out.exit_code,
                output: fenced_tail(&format!("{}{}", out.stdout, out.stderr), 20),
                next: next.to_string(),
            });
        }
        Ok(out)
    }

    /// Runs a changing command, or in dry-run says what it would run.
    async fn change(&self, c: &Component, step: &str, command: &str, timeout: Duration, next: &str) -> Result<()> {
        if self.dry_run {
            (self.say)(&format!("[dry-run] {}: would run `{command}`", c.host));
            return Ok(());
        }
        self.run(c, step, command, timeout, next).await.map(|_| ())
    }

    fn pid_file(c: &Component) -> String {
        format!("bin/{}.pid", c.role.as_str())
    }

    async fn read_pids(&self, c: &Component, step: &str) -> Result<Pids> {
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
    async fn alive(&self, c: &Component, step: &str, pids: &[u32]) -> Result<Vec<Proc>> {
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
    async fn port_in_use(&self, c: &Component, step: &str) -> Result<bool> {
        let (host, port) = (c.endpoint.host(), c.endpoint.port());
        let probe = format!("exec 3<>/dev/tcp/{host}/{port}");
        let command = format!("if timeout 5 bash -c {} 2>/dev/null; then echo busy; else echo free; fi", q(&probe));
        let out = self.run(c, step, &command, SHORT, "the host needs bash and coreutils' timeout").await?;
        Ok(out.stdout.trim() == "busy")
    }

    async fn sleep(&self) -> Result<()> {
        tokio::select! {
            _ = tokio::time::sleep(POLL) => Ok(()),
            _ = self.interrupt.raised() => Err(ComponentError::Other {
                step: "waiting".into(),
                endpoint: String::new(),
                reason: "interrupted".into(),
            }),
        }
    }

    fn start_sh(c: &Component, op: &str) -> String {
        let mut command = format!("cd {} && bash bin/start.sh {op} {}", q(&c.dir), c.role.as_str());
        if op == "start" && c.daemon {
            command.push_str(" mon");
        }
        command
    }

    /// Stops a component through its `bin/start.sh stop` and waits until every process in its
    /// pid files is gone (SIGKILL after `grace`, mon first) and its port is free.
    pub async fn stop(&self, endpoint: &str, options: StopOptions) -> Result<StopReport> {
        let started = Instant::now();
        let c = self.component(endpoint)?;
        let step = format!("stopping {} {}", c.role, c.endpoint);
        let pids = self.read_pids(c, &step).await?;
        let (mon_pid, pid) = pids.split();
        let recorded: Vec<u32> = [mon_pid, pid].into_iter().flatten().collect();
        let procs = self.alive(c, &step, &recorded).await?;
        let mut report = StopReport {
            endpoint: c.endpoint.to_string(),
            host: c.host.clone(),
            mon_pid,
            pid,
            stopped: procs.iter().map(|p| p.pid).collect(),
            dry_run: self.dry_run,
            ..StopReport::default()
        };
        let command = Self::start_sh(c, "stop");
        if self.dry_run {
            let alive: Vec<String> = procs.iter().map(|p| p.pid.to_string()).collect();
            (self.say)(&format!("[dry-run] {}: would run `{command}`", c.host));
            (self.say)(&format!(
                "[dry-run] {}: would wait for pids [{}] to exit (SIGKILL after {:?}, mon first), then for port {} to be free",
                c.host,
                alive.join(", "),
                options.grace,
                c.endpoint.port()
            ));
            return Ok(report);
        }
        (self.say)(&format!("stopping {} {} on {} (pids {:?})", c.role, c.endpoint, c.host, report.stopped));
        // start.sh stop always exits 0 (O§1.5): its output is kept only for messages.
        let out = self.exec(c, &step, &command, START_SH).await?;
        tracing::debug!(endpoint, stdout = %out.stdout, stderr = %out.stderr, "start.sh stop");

        // Wait for the processes, by identity, so a reused pid is not waited on.
        let still = |now: &[Proc]| procs.iter().filter(|p| now.contains(p)).copied().collect::<Vec<Proc>>();
        let deadline = Instant::now() + options.grace;
        let mut remaining = still(&self.alive(c, &step, &recorded).await?);
        while !remaining.is_empty() && Instant::now() < deadline {
            self.sleep().await?;
            remaining = still(&self.alive(c, &step, &recorded).await?);
        }
        if !remaining.is_empty() {
            // The mon first, so it cannot restart the child (O§1.8).
            let mut order: Vec<u32> = remaining.iter().map(|p| p.pid).collect();
            order.sort_by_key(|p| if Some(*p) == mon_pid { 0 } else { 1 });
            let kills: Vec<String> = order.iter().map(|p| format!("kill -9 {p} 2>/dev/null")).collect();
            (self.say)(&format!(
                "{} {} still running {:?} after SIGTERM; sending SIGKILL to {}",
                c.role,
                c.endpoint,
                options.grace,
                order.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")
            ));
            self.exec(c, &step, &format!("{}; true", kills.join("; ")), SHORT).await?;
            report.killed = true;
            let deadline = Instant::now() + options.timeout;
            while !remaining.is_empty() {
                if Instant::now() >= deadline {
                    return Err(ComponentError::Timeout {
                        step,
                        endpoint: endpoint.to_string(),
                        host: c.host.clone(),
                        what: format!(
                            "processes {:?} to exit after SIGKILL",
                            remaining.iter().map(|p| p.pid).collect::<Vec<_>>()
                        ),
                        waited: options.timeout,
                        next: "A process stuck in uninterruptible I/O (state D) cannot be killed: check the \
                               host's disks and `cat /proc/<pid>/stack`"
                            .into(),
                    });
                }
                self.sleep().await?;
                remaining = still(&self.alive(c, &step, &recorded).await?);
            }
        }

        // The port must be free before anything starts there again (O§8).
        let deadline = Instant::now() + options.timeout;
        while self.port_in_use(c, &step).await? {
            if Instant::now() >= deadline {
                return Err(ComponentError::Timeout {
                    step,
                    endpoint: endpoint.to_string(),
                    host: c.host.clone(),
                    what: format!("port {} to be free", c.endpoint.port()),
                    waited: options.timeout,
                    next: format!(
                        "another process listens there; find it with `ss -ltnp 'sport = :{}'` on {}",
                        c.endpoint.port(),
                        c.host
                    ),
                });
            }
            self.sleep().await?;
        }
        report.duration = started.elapsed();
        (self.say)(&format!(
            "stopped {} {} on {} in {:.1}s{}",
            c.role,
            c.endpoint,
            c.host,
            report.duration.as_secs_f64(),
            if report.killed { " (SIGKILL needed)" } else { "" }
        ));
        Ok(report)
    }

    /// The component's own log (start.sh sends stdout/stderr there, O§1.2).
    async fn log_path(&self, c: &Component) -> String {
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

    async fn start_failed(&self, c: &Component, reason: String, start_sh: &str) -> ComponentError {
        let log = self.log_path(c).await;
        let tail = match self.exec(c, "reading the log", &format!("tail -n {LOG_TAIL_LINES} {}", q(&log)), SHORT).await
        {
            Ok(out) if out.exit_code == 0 => out.stdout.trim_end().to_string(),
            Ok(out) => format!("(cannot read it: {})", out.stderr.trim()),
            Err(e) => format!("(cannot read it: {e})"),
        };
        ComponentError::StartFailed {
            role: c.role,
            endpoint: c.endpoint.to_string(),
            host: c.host.clone(),
            reason,
            start_sh: fenced_tail(start_sh, 10),
            log,
            log_tail: tail,
            next: "Fix the cause shown in the log; if the new release is at fault, stop it, restore the \
                   previous one with component::rollback_install(endpoint, backup_dir) and start again."
                .into(),
        }
    }

    /// The running version over HTTP, or `None` when it does not answer (yet).
    async fn probe_version(&self, c: &Component) -> std::result::Result<String, String> {
        let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().map_err(|e| e.to_string())?;
        if c.role == Role::Taskmanager {
            // O§4.3: POST GetVersion with `{}`.
            let url = format!("http://{}/openmldb.taskmanager.TaskManagerServer/GetVersion", c.endpoint);
            let reply = client
                .post(&url)
                .header("Content-Type", "application/json")
                .body("{}")
                .send()
                .await
                .map_err(|e| format!("POST {url}: {e}"))?;
            let status = reply.status();
            let body: serde_json::Value = reply.json().await.map_err(|e| format!("POST {url}: {status}: {e}"))?;
            return body["taskmanagerVersion"]
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| format!("POST {url}: no taskmanagerVersion in {body}"));
        }
        // C§1.4: brpc's built-in /version, exempt from authentication.
        let url = format!("http://{}/version", c.endpoint);
        let reply = client.get(&url).send().await.map_err(|e| format!("GET {url}: {e}"))?;
        let status = reply.status();
        let body = reply.text().await.map_err(|e| format!("GET {url}: {e}"))?;
        if !status.is_success() {
            return Err(format!("GET {url}: {status}: {}", body.trim()));
        }
        Ok(body.trim().to_string())
    }

    /// Whether the component is registered in ZooKeeper: a tablet's `nodes/<endpoint>`, a
    /// nameserver's value among the `leader` children (C§1.2, C§1.3). For a TaskManager,
    /// `Some(true)` when it holds `taskmanager/leader`, `Some(false)` when another one does.
    async fn registered(&self, c: &Component, step: &str) -> Result<bool> {
        let zk_err = |source| ComponentError::Zk { step: step.to_string(), endpoint: c.endpoint.to_string(), source };
        let ep = c.endpoint.to_string();
        match c.role {
            Role::Tablet => Ok(self.zk.stat(&format!("nodes/{ep}")).await.map_err(zk_err)?.is_some()),
            Role::Nameserver => {
                let children = match self.zk.children("leader").await {
                    Ok(children) => children,
                    Err(ZkError::NoNode { .. }) => return Ok(false),
                    Err(e) => return Err(zk_err(e)),
                };
                for child in children {
                    match self.zk.get(&format!("leader/{child}")).await {
                        Ok(data) if String::from_utf8_lossy(&data) == ep => return Ok(true),
                        Ok(_) | Err(ZkError::NoNode { .. }) => {}
                        Err(e) => return Err(zk_err(e)),
                    }
                }
                Ok(false)
            }
            Role::Taskmanager => match self.zk.get("taskmanager/leader").await {
                Ok(data) => Ok(String::from_utf8_lossy(&data) == ep),
                Err(ZkError::NoNode { .. }) => Ok(false),
                Err(e) => Err(zk_err(e)),
            },
            Role::Apiserver => Ok(true),
        }
    }

    /// Starts a component through `bin/start.sh start <role> [mon]` and waits until it runs,
    /// answers its version and is registered. A tablet whose previous ZooKeeper node has not
    /// expired yet is started only once it has (C§1.3).
    pub async fn start(&self, endpoint: &str, timeout: Duration) -> Result<StartReport> {
        let started = Instant::now();
        let c = self.component(endpoint)?;
        let step = format!("starting {} {}", c.role, c.endpoint);
        let mut report = StartReport {
            endpoint: c.endpoint.to_string(),
            host: c.host.clone(),
            dry_run: self.dry_run,
            ..StartReport::default()
        };
        let before = self.read_pids(c, &step).await?;
        let before_alive =
            self.alive(c, &step, &[before.main, before.child].into_iter().flatten().collect::<Vec<_>>()).await?;
        let command = Self::start_sh(c, "start");
        report.already_running = !before_alive.is_empty();
        if self.dry_run {
            // Planned after a (dry-run) stop, the component still runs now: say what a real
            // start would do either way.
            if c.role == Role::Tablet {
                (self.say)(&format!(
                    "[dry-run] zk: would wait for {} to disappear (C§1.3)",
                    self.zk.resolve(&format!("nodes/{}", c.endpoint))
                ));
            }
            (self.say)(&format!("[dry-run] {}: would run `{command}`", c.host));
            return Ok(report);
        } else if report.already_running {
            let pid = before.main.map(|p| p.to_string()).unwrap_or_default();
            (self.say)(&format!("{} {} already runs on {} (pid {pid}); checking it", c.role, c.endpoint, c.host));
        } else {
            if matches!(c.role, Role::Tablet | Role::Nameserver) {
                self.wait_old_node_gone(c, &step, timeout).await?;
            }
            (self.say)(&format!("starting {} {} on {}", c.role, c.endpoint, c.host));
        }
        let start_sh = if report.already_running || self.dry_run {
            String::new()
        } else {
            // start.sh's exit code and text are not trusted (O§1.4): our checks below decide.
            let out = self.exec(c, &step, &format!("{command} 2>&1"), START_SH).await?;
            format!("{}{}", out.stdout, out.stderr)
        };

        let deadline = Instant::now() + timeout;
        let mut last;
        loop {
            let pids = self.read_pids(c, &step).await?;
            let (mon_pid, pid) = pids.split();
            report.mon_pid = mon_pid;
            report.pid = pid;
            let alive = self.alive(c, &step, &[mon_pid, pid].into_iter().flatten().collect::<Vec<_>>()).await?;
            let is_alive = |p: Option<u32>| p.is_some_and(|p| alive.iter().any(|a| a.pid == p));
            if c.daemon && mon_pid.is_some() && !is_alive(mon_pid) {
                return Err(self
                    .start_failed(c, format!("its mon (pid {}) exited", mon_pid.unwrap_or(0)), &start_sh)
                    .await);
            }
            if !c.daemon && !is_alive(pid) {
                let reason = match pid {
                    None => "start.sh wrote no pid file (it does only after a successful start, O§1.3)".to_string(),
                    Some(p) => format!("its process (pid {p}) exited"),
                };
                return Err(self.start_failed(c, reason, &start_sh).await);
            }
            if is_alive(pid) {
                let registered = self.registered(c, &step).await?;
                let leader_tm = c.role == Role::Taskmanager && registered;
                let version = if c.role == Role::Taskmanager && !leader_tm {
                    // A standby TaskManager serves nothing until it becomes the leader (C§3.8).
                    Ok(String::new())
                } else {
                    self.probe_version(c).await
                };
                match version {
                    Ok(v) if registered || c.role == Role::Taskmanager => {
                        report.version = v;
                        report.registered = registered;
                        break;
                    }
                    Ok(_) => last = "it answers its version but is not registered in ZooKeeper yet".into(),
                    Err(e) => last = format!("its version does not answer yet: {e}"),
                }
            } else {
                last = "its process is not running (mon restarts it after its delay)".into();
            }
            if Instant::now() >= deadline {
                let reason = format!("after {timeout:?}, {last}");
                return Err(self.start_failed(c, reason, &start_sh).await);
            }
            self.sleep().await?;
        }
        report.duration = started.elapsed();
        (self.say)(&format!(
            "started {} {} on {}: pid {}, version {}{}",
            c.role,
            c.endpoint,
            c.host,
            report.pid.map(|p| p.to_string()).unwrap_or_default(),
            if report.version.is_empty() { "- (standby)" } else { &report.version },
            if report.registered { ", registered" } else { "" }
        ));
        Ok(report)
    }

    /// Waits until the ZooKeeper node a previous process of `c` left has expired with its
    /// session. A tablet started before would exit at once (C§1.3). A nameserver would take the
    /// leader lock through its own stale `lock_request` node and lose it again when that node
    /// expires, so two nameservers would run ops for a while (C§1.2).
    async fn wait_old_node_gone(&self, c: &Component, step: &str, timeout: Duration) -> Result<()> {
        let ep = c.endpoint.to_string();
        let zk_err = |source| ComponentError::Zk { step: step.to_string(), endpoint: ep.clone(), source };
        let (node, consequence, section) = match c.role {
            Role::Nameserver => (
                self.zk.resolve("leader"),
                "a nameserver started now would take the leader lock through it and lose it when it expires (C§1.2)",
                "C§1.2",
            ),
            _ => (self.zk.resolve(&format!("nodes/{ep}")), "a tablet started now would exit at once (C§1.3)", "C§1.3"),
        };
        let deadline = Instant::now() + timeout;
        let mut said = false;
        loop {
            let stale = match c.role {
                Role::Nameserver => {
                    let children = match self.zk.children("leader").await {
                        Ok(children) => children,
                        Err(ZkError::NoNode { .. }) => Vec::new(),
                        Err(e) => return Err(zk_err(e)),
                    };
                    let mut found = None;
                    for child in children {
                        match self.zk.get(&format!("leader/{child}")).await {
                            Ok(data) if String::from_utf8_lossy(&data) == ep => found = Some(child),
                            Ok(_) | Err(ZkError::NoNode { .. }) => {}
                            Err(e) => return Err(zk_err(e)),
                        }
                    }
                    found.map(|child| format!("{node}/{child}"))
                }
                _ => self.zk.stat(&format!("nodes/{ep}")).await.map_err(zk_err)?.map(|_| node.clone()),
            };
            let Some(stale) = stale else { return Ok(()) };
            if !said {
                (self.say)(&format!(
                    "waiting for the old ZooKeeper node {stale} to expire before starting ({section})"
                ));
                said = true;
            }
            if Instant::now() >= deadline {
                return Err(ComponentError::Timeout {
                    step: step.to_string(),
                    endpoint: c.endpoint.to_string(),
                    host: c.host.clone(),
                    what: format!("the previous session's node {stale} to expire; {consequence}"),
                    waited: timeout,
                    next: format!(
                        "Is another {} process still running with this endpoint? If not, wait for \
                         --zk_session_timeout to pass and start again.",
                        c.role
                    ),
                });
            }
            self.sleep().await?;
        }
    }

    /// Refuses to replace directories a running process uses (in dry-run it only reads).
    async fn require_stopped(&self, c: &Component, step: &str) -> Result<()> {
        let pids = self.read_pids(c, step).await?;
        let alive = self.alive(c, step, &[pids.main, pids.child].into_iter().flatten().collect::<Vec<_>>()).await?;
        if self.dry_run {
            return Ok(());
        }
        if let Some(p) = [pids.main, pids.child].into_iter().flatten().find(|p| alive.iter().any(|a| a.pid == *p)) {
            return Err(ComponentError::StillRunning {
                step: step.to_string(),
                endpoint: c.endpoint.to_string(),
                host: c.host.clone(),
                pid: p,
            });
        }
        Ok(())
    }

    /// The installed version: `bin/openmldb --version` (O§4.1), or for a TaskManager the
    /// version in `taskmanager/lib/openmldb-taskmanager-<ver>.jar` (O§4.3).
    pub async fn installed_version(&self, endpoint: &str) -> Result<String> {
        let c = self.component(endpoint)?;
        self.version_in(c, &c.dir, c.role == Role::Taskmanager, "reading the installed version").await
    }

    /// The version of the release rooted at `dir` on the component's host.
    async fn version_in(&self, c: &Component, dir: &str, taskmanager: bool, step: &str) -> Result<String> {
        let bad = |reason: String| ComponentError::BadRelease {
            step: step.to_string(),
            endpoint: c.endpoint.to_string(),
            host: c.host.clone(),
            path: dir.to_string(),
            reason,
        };
        if taskmanager {
            let lib = join(dir, "taskmanager/lib");
            let out = self.exec(c, step, &format!("ls {}", q(&lib)), SHORT).await?;
            if out.exit_code != 0 {
                return Err(bad(format!("cannot list {lib}: {}", out.stderr.trim())));
            }
            return parse_taskmanager_jar(&out.stdout)
                .ok_or_else(|| bad(format!("no openmldb-taskmanager-<version>.jar in {lib}")));
        }
        let binary = join(dir, "bin/openmldb");
        let out = self.exec(c, step, &format!("{} --version", q(&binary)), SHORT).await?;
        if out.exit_code != 0 {
            return Err(bad(format!(
                "`{binary} --version` exited with {}\n```\n{}\n```",
                out.exit_code,
                fenced_tail(&format!("{}{}", out.stdout, out.stderr), 10)
            )));
        }
        parse_version_output(&out.stdout).ok_or_else(|| {
            bad(format!("`{binary} --version` printed no `openmldb version X.Y.Z-hash` line: {}", out.stdout.trim()))
        })
    }

    /// The running version: `GET /version` (C§1.4) or, for a TaskManager, GetVersion (O§4.3).
    pub async fn running_version(&self, endpoint: &str) -> Result<String> {
        let c = self.component(endpoint)?;
        self.probe_version(c).await.map_err(|reason| ComponentError::Other {
            step: "reading the running version".into(),
            endpoint: endpoint.to_string(),
            reason: format!(
                "{reason}. Is it running? (a standby TaskManager does not answer until it becomes the leader)"
            ),
        })
    }

    /// Copies `bin/` (and `taskmanager/`) to `<install>/backup/<YYYYmmdd-HHMMSS>/`, after
    /// checking with `df` that the disk has room.
    pub async fn backup(&self, endpoint: &str, parts: Parts) -> Result<InstallReport> {
        let c = self.component(endpoint)?;
        let step = format!("backing up {} {}", c.role, c.endpoint);
        let dirs = parts.dirs();
        let quoted: Vec<String> = dirs.iter().map(|d| q(d)).collect();
        // Name and sizes in one read-only command: the host's clock names the backup.
        let probe = format!(
            "cd {dir} && ts=$(date +%Y%m%d-%H%M%S) && d=backup/$ts && n=1 && \
             while [ -e \"$d\" ]; do d=backup/$ts-$n; n=$((n+1)); done && echo \"$d\" && \
             du -sk {parts} | awk '{{s+=$1}} END {{print s}}' && df -Pk . | awk 'NR==2 {{print $4}}'",
            dir = q(&c.dir),
            parts = quoted.join(" ")
        );
        let out =
            self.run(c, &step, &probe, SHORT, &format!("check that {} holds {}", c.dir, dirs.join(" and "))).await?;
        let mut lines = out.stdout.lines().map(str::trim);
        let rel = lines.next().unwrap_or_default().to_string();
        let needed: u64 = lines.next().and_then(|l| l.parse().ok()).unwrap_or(0);
        let free: u64 = lines.next().and_then(|l| l.parse().ok()).unwrap_or(0);
        // A margin so the backup does not fill the disk the component writes its logs to.
        let with_margin = needed + needed / 10 + 64 * 1024;
        if free < with_margin {
            return Err(ComponentError::NoSpace {
                step,
                endpoint: endpoint.to_string(),
                host: c.host.clone(),
                dir: c.dir.clone(),
                free_kib: free,
                needed_kib: with_margin,
                next: format!("free space on {} (old backups are in {}/backup)", c.host, c.dir),
            });
        }
        let path = join(&c.dir, &rel);
        let version = self.installed_version(endpoint).await.unwrap_or_default();
        let copies: Vec<String> = quoted.iter().map(|d| format!("cp -a {d} {}/", q(&path))).collect();
        let command = format!("cd {} && mkdir -p {} && {}", q(&c.dir), q(&path), copies.join(" && "));
        self.change(c, &step, &command, COPY, &format!("remove the partial backup {path} and retry")).await?;
        if !self.dry_run {
            (self.say)(&format!("backed up {} of {} on {} to {path}", dirs.join(" and "), c.endpoint, c.host));
        }
        Ok(InstallReport {
            endpoint: endpoint.to_string(),
            host: c.host.clone(),
            path,
            dirs: dirs.iter().map(|d| d.to_string()).collect(),
            version,
            previous: None,
            dry_run: self.dry_run,
        })
    }

    /// Makes `source` (a directory on the host, a `.tar.gz`/`.tgz` on the host, or a local path)
    /// available as a directory on the component's host; returns it and the staging dir to
    /// remove afterwards.
    async fn stage(&self, c: &Component, step: &str, source: &str) -> Result<(String, Option<String>)> {
        let kind = self.remotes.path_kind(&c.host, source).await.map_err(|e| ComponentError::Remote {
            step: step.to_string(),
            endpoint: c.endpoint.to_string(),
            host: c.host.clone(),
            source: e,
        })?;
        let staging = join(&c.dir, ".mldb-staging");
        let bad = |reason: String| ComponentError::BadRelease {
            step: step.to_string(),
            endpoint: c.endpoint.to_string(),
            host: c.host.clone(),
            path: source.to_string(),
            reason,
        };
        let name = Path::new(source).file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
        let unpacked_name = |n: &str| n.strip_suffix(".tar.gz").or_else(|| n.strip_suffix(".tgz")).map(str::to_string);
        match kind {
            PathKind::Dir => Ok((source.trim_end_matches('/').to_string(), None)),
            PathKind::File => {
                let dir_name =
                    unpacked_name(&name).ok_or_else(|| bad("expected a directory, a .tar.gz or a .tgz".to_string()))?;
                self.unpack(c, step, source, &staging, &dir_name).await.map(|d| (d, Some(staging)))
            }
            PathKind::Missing | PathKind::Other => {
                let local = Path::new(source);
                if local.is_file() {
                    let dir_name = unpacked_name(&name)
                        .ok_or_else(|| bad("expected a directory, a .tar.gz or a .tgz".to_string()))?;
                    let remote = join(&staging, &name);
                    self.upload(c, step, &staging, local, &remote).await?;
                    return self.unpack(c, step, &remote, &staging, &dir_name).await.map(|d| (d, Some(staging)));
                }
                if local.is_dir() {
                    // Pack the local directory, upload it, unpack it on the host.
                    let archive =
                        std::env::temp_dir().join(format!("mldb-upgrade-{}-{name}.tar.gz", std::process::id()));
                    let packed = pack_dir(local, &name, &archive).map_err(|e| bad(format!("cannot pack it: {e}")));
                    let result = async {
                        packed?;
                        let remote = join(&staging, &format!("{name}.tar.gz"));
                        self.upload(c, step, &staging, &archive, &remote).await?;
                        self.unpack(c, step, &remote, &staging, &name).await
                    }
                    .await;
                    let _ = std::fs::remove_file(&archive);
                    return result.map(|d| (d, Some(staging)));
                }
                Err(bad(format!("it exists neither on {} nor on this machine", c.host)))
            }
        }
    }

    async fn upload(&self, c: &Component, step: &str, staging: &str, local: &Path, remote: &str) -> Result<()> {
        if self.dry_run {
            (self.say)(&format!("[dry-run] {}: would upload {} to {remote}", c.host, local.display()));
            return Ok(());
        }
        self.run(c, step, &format!("mkdir -p {}", q(staging)), SHORT, "check permissions of the install dir").await?;
        (self.say)(&format!("uploading {} to {}:{remote}", local.display(), c.host));
        self.remotes.upload(&c.host, local, remote).await.map(|_| ()).map_err(|source| ComponentError::Remote {
            step: step.to_string(),
            endpoint: c.endpoint.to_string(),
            host: c.host.clone(),
            source,
        })
    }

    async fn unpack(&self, c: &Component, step: &str, tarball: &str, staging: &str, dir_name: &str) -> Result<String> {
        let target = join(staging, dir_name);
        let command = format!(
            "mkdir -p {s} && rm -rf {t} && tar xzf {tb} -C {s} && test -d {t}",
            s = q(staging),
            t = q(&target),
            tb = q(tarball)
        );
        if self.dry_run {
            (self.say)(&format!("[dry-run] {}: would run `{command}`", c.host));
            return Ok(target);
        }
        self.run(c, step, &command, COPY, &format!("the archive must unpack to a directory named {dir_name}")).await?;
        Ok(target)
    }

    /// `rm -rf X.installing && cp -a SRC X.installing && mv X X.old && mv X.installing X && rm -rf X.old`:
    /// a failed copy never leaves a half-replaced `X`; a failed swap puts the old one back.
    /// `keep_old` keeps the replaced directory under that name instead of deleting it; `carry`
    /// is a subdirectory copied from the old `X` into the new one (logs).
    fn swap_command(root: &str, target: &str, source: &str, keep_old: Option<&str>, carry: Option<&str>) -> String {
        let t = q(target);
        let new = q(&format!("{target}.installing"));
        let old_name = keep_old.map(str::to_string).unwrap_or_else(|| format!("{target}.old"));
        let old = q(&old_name);
        let mut command = format!(
            "cd {root} && rm -rf {new} && cp -a {src} {new} && rm -rf {old} && \
             if [ -e {t} ]; then mv {t} {old}; fi && {{ mv {new} {t} || {{ mv {old} {t}; exit 1; }}; }}",
            root = q(root),
            src = q(source),
        );
        if let Some(sub) = carry {
            let from = q(&format!("{old_name}/{sub}"));
            let into = q(&format!("{target}/{}", sub.rsplit_once('/').map_or("", |(p, _)| p)));
            command.push_str(&format!(" && if [ -d {from} ]; then cp -a {from} {into}; fi"));
        }
        if keep_old.is_none() {
            command.push_str(&format!(" && rm -rf {old}"));
        }
        command
    }

    /// Replaces `bin/` (and `taskmanager/`) from a release: a release dir or a
    /// `openmldb-X.Y.Z-linux.tar.gz` on the host, or a local path uploaded first. The release is
    /// checked (its `bin/openmldb --version` must run) before anything is touched.
    pub async fn install(&self, endpoint: &str, release: &str, parts: Parts) -> Result<InstallReport> {
        let c = self.component(endpoint)?;
        let step = format!("installing {release} on {} {}", c.role, c.endpoint);
        self.require_stopped(c, &step).await?;
        let (dir, staging) = self.stage(c, &step, release).await?;
        let version = if self.dry_run && staging.is_some() {
            String::from("(checked after unpacking)")
        } else {
            let v = self.version_in(c, &dir, false, &step).await?;
            if parts.taskmanager {
                self.version_in(c, &dir, true, &step).await?;
            }
            v
        };
        for d in parts.dirs() {
            let source = join(&dir, d);
            // The TaskManager's logs live under taskmanager/bin (job.log.path, O§1.2): keep them.
            let carry = (d == "taskmanager").then_some("bin/logs");
            let command = Self::swap_command(&c.dir, d, &source, None, carry);
            self.change(
                c,
                &step,
                &command,
                COPY,
                &format!("{}/{d} is unchanged or restored; fix the cause and retry", c.dir),
            )
            .await?;
        }
        let path = match staging {
            Some(staging) => {
                self.change(c, &step, &format!("rm -rf {}", q(&staging)), SHORT, "remove it by hand").await?;
                release.to_string()
            }
            None => dir,
        };
        if !self.dry_run {
            (self.say)(&format!("installed {version} ({}) on {} {}", parts.dirs().join(" and "), c.role, c.endpoint));
        }
        Ok(InstallReport {
            endpoint: endpoint.to_string(),
            host: c.host.clone(),
            path,
            dirs: parts.dirs().iter().map(|d| d.to_string()).collect(),
            version,
            previous: None,
            dry_run: self.dry_run,
        })
    }

    /// Restores `bin/` (and `taskmanager/`, when the backup has it) from a backup made by
    /// [`backup`](Self::backup).
    pub async fn rollback_install(&self, endpoint: &str, backup_dir: &str) -> Result<InstallReport> {
        let c = self.component(endpoint)?;
        let step = format!("restoring {backup_dir} on {} {}", c.role, c.endpoint);
        self.require_stopped(c, &step).await?;
        let backup = if backup_dir.starts_with('/') { backup_dir.to_string() } else { join(&c.dir, backup_dir) };
        let out = self
            .run(
                c,
                &step,
                &format!(
                    "cd {} && for d in bin taskmanager; do if [ -d \"$d\" ]; then echo \"$d\"; fi; done",
                    q(&backup)
                ),
                SHORT,
                &format!("give a directory made by component::backup (under {}/backup)", c.dir),
            )
            .await?;
        let dirs: Vec<String> = out.stdout.lines().map(|l| l.trim().to_string()).filter(|l| !l.is_empty()).collect();
        if dirs.is_empty() {
            return Err(ComponentError::BadRelease {
                step,
                endpoint: endpoint.to_string(),
                host: c.host.clone(),
                path: backup,
                reason: "it holds neither bin/ nor taskmanager/".into(),
            });
        }
        if dirs.iter().any(|d| d == "bin") {
            self.version_in(c, &backup, false, &step).await?;
        }
        for d in &dirs {
            let carry = (d == "taskmanager").then_some("bin/logs");
            let mut command = Self::swap_command(&c.dir, d, &join(&backup, d), None, carry);
            if d == "bin" {
                // A backup taken while the component ran holds its pid files: stale ones would
                // make start.sh think it still runs (O§1.4).
                let role = c.role.as_str();
                command.push_str(&format!(" && rm -f bin/{role}.pid bin/{role}.pid.child"));
            }
            self.change(c, &step, &command, COPY, &format!("{}/{d} is unchanged or restored; retry", c.dir)).await?;
        }
        let version = if self.dry_run {
            String::new()
        } else {
            self.version_in(c, &c.dir, c.role == Role::Taskmanager && dirs.iter().any(|d| d == "taskmanager"), &step)
                .await?
        };
        if !self.dry_run {
            (self.say)(&format!("restored {} of {} from {backup} ({version})", dirs.join(" and "), c.endpoint));
        }
        Ok(InstallReport {
            endpoint: endpoint.to_string(),
            host: c.host.clone(),
            path: backup,
            dirs,
            version,
            previous: None,
            dry_run: self.dry_run,
        })
    }

    /// Replaces a TaskManager's Spark distribution at its `spark.home` (O§6.1: before the
    /// TaskManager itself). The old one is kept beside it as `<spark.home>.previous-<time>`.
    pub async fn install_spark(&self, endpoint: &str, spark_dir: &str) -> Result<InstallReport> {
        let c = self.component(endpoint)?;
        if c.role != Role::Taskmanager {
            return Err(ComponentError::WrongRole {
                function: "component::install_spark",
                endpoint: endpoint.to_string(),
                role: c.role,
                expected: "taskmanagers",
            });
        }
        let step = format!("installing Spark {spark_dir} for taskmanager {}", c.endpoint);
        let props = self
            .run(
                c,
                &step,
                &format!("cat {}", q(&join(&c.dir, "conf/taskmanager.properties"))),
                SHORT,
                "the TaskManager needs conf/taskmanager.properties (O§3.4)",
            )
            .await?;
        let spark_home = property_value(&props.stdout, "spark.home").filter(|v| !v.is_empty()).ok_or_else(|| {
            ComponentError::Other {
                step: step.clone(),
                endpoint: endpoint.to_string(),
                reason: "spark.home is empty in conf/taskmanager.properties, so the TaskManager uses its \
                         SPARK_HOME environment variable, which this tool cannot see; set spark.home (O§3.4)"
                    .into(),
            }
        })?;
        let spark_home = join(&c.dir, &spark_home);
        let (dir, staging) = self.stage(c, &step, spark_dir).await?;
        let check = format!("ls {} | grep -E '^openmldb-batch-.*\\.jar$'", q(&join(&dir, "jars")));
        let out = self.exec(c, &step, &check, SHORT).await?;
        // In dry-run an archive is not unpacked, so there is nothing to check yet.
        if (!self.dry_run || staging.is_none()) && out.exit_code != 0 {
            return Err(ComponentError::BadRelease {
                step,
                endpoint: endpoint.to_string(),
                host: c.host.clone(),
                path: dir,
                reason: "no jars/openmldb-batch-*.jar: not an OpenMLDB Spark distribution (O§4.3)".into(),
            });
        }
        let version = out
            .stdout
            .lines()
            .next()
            .and_then(|n| n.trim().strip_prefix("openmldb-batch-")?.strip_suffix(".jar").map(str::to_string))
            .unwrap_or_default();
        let stamp = self.exec(c, &step, "date +%Y%m%d-%H%M%S", SHORT).await?.stdout.trim().to_string();
        let previous = format!("{}.previous-{stamp}", spark_home.trim_end_matches('/'));
        let (parent, target) = match spark_home.trim_end_matches('/').rsplit_once('/') {
            Some(("", t)) => ("/".to_string(), t.to_string()),
            Some((p, t)) => (p.to_string(), t.to_string()),
            None => (".".to_string(), spark_home.clone()),
        };
        let command = Self::swap_command(&parent, &target, &dir, Some(&previous), None);
        self.change(c, &step, &command, COPY, &format!("{spark_home} is unchanged or restored; retry")).await?;
        if let Some(staging) = staging {
            self.change(c, &step, &format!("rm -rf {}", q(&staging)), SHORT, "remove it by hand").await?;
        }
        if !self.dry_run {
            (self.say)(&format!("installed Spark with openmldb-batch {version} at {spark_home} on {}", c.host));
        }
        Ok(InstallReport {
            endpoint: endpoint.to_string(),
            host: c.host.clone(),
            path: spark_home,
            dirs: vec![target],
            version,
            previous: Some(previous),
            dry_run: self.dry_run,
        })
    }
}

/// Packs `dir` as `name/` into a `.tar.gz` at `archive`.
fn pack_dir(dir: &Path, name: &str, archive: &Path) -> std::io::Result<()> {
    let file = std::fs::File::create(archive)?;
    let encoder = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
    let mut builder = tar::Builder::new(encoder);
    builder.append_dir_all(name, dir)?;
    builder.into_inner()?.finish()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_version_output_o4_1() {
        assert_eq!(parse_version_output("openmldb version 0.9.2-abc1234\n").as_deref(), Some("0.9.2-abc1234"));
        let release = "openmldb version 0.8.5-1f2e3d4\nDebug build (NDEBUG not #defined)\n";
        assert_eq!(parse_version_output(release).as_deref(), Some("0.8.5-1f2e3d4"));
        assert_eq!(parse_version_output("usage: openmldb\n"), None);
    }

    #[test]
    fn parses_taskmanager_jar_o4_3() {
        let ls = "openmldb-batchjob-0.9.3.jar\nopenmldb-taskmanager-0.9.3.jar\nopenmldb-taskmanager-sim\n";
        assert_eq!(parse_taskmanager_jar(ls).as_deref(), Some("0.9.3"));
        assert_eq!(parse_taskmanager_jar("x.jar\n"), None);
    }

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
        assert_eq!(join("/srv/tablet", "./logs"), "/srv/tablet/logs");
        assert_eq!(join("/srv/tablet", "/var/log"), "/var/log");
    }

    #[test]
    fn parts_parse() {
        assert_eq!(Parts::parse("bin").unwrap(), Parts { bin: true, taskmanager: false });
        assert_eq!(Parts::parse("bin,taskmanager/").unwrap(), Parts { bin: true, taskmanager: true });
        assert!(Parts::parse("conf").is_err());
        assert!(Parts::parse("").is_err());
        assert_eq!(Parts::default_for(Role::Taskmanager), Parts { bin: true, taskmanager: true });
    }

    #[test]
    fn swap_keeps_the_old_dir_until_the_new_one_is_in_place() {
        let cmd = Control::swap_command("/srv/t", "bin", "/rel/bin", None, None);
        assert_eq!(
            cmd,
            "cd /srv/t && rm -rf bin.installing && cp -a /rel/bin bin.installing && rm -rf bin.old && \
             if [ -e bin ]; then mv bin bin.old; fi && { mv bin.installing bin || { mv bin.old bin; exit 1; }; } && rm -rf bin.old"
        );
    }
}
