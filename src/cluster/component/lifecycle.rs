//! Stop and start: through the install's own `bin/start.sh`, judged by our own checks (O§1.4,
//! O§1.5, O§8): a stop ends when every recorded process is gone and the port is free; a start
//! ends when the process lives, answers its version and is registered in ZooKeeper. A tablet or
//! nameserver is started only once the ZooKeeper node of its previous process has expired
//! (C§1.2, C§1.3). A failed start shows the tail of the component's log. The waits for a
//! process to stop, to start and for the old session to expire are OpenMLDB's time in the
//! run's timing ([`crate::timing`]): they make a component's lower bound.

use std::time::{Duration, Instant};

use super::probe::Proc;
use super::records::{Backup, Stopped};
use super::{
    fenced_tail, q, strip_colours, ComponentError, Control, Result, StartAgainReport, StartReport, StopOptions,
    StopReport, SHORT,
};
use crate::cluster::topology::Role;
use crate::config::Component;
use crate::timing::{self, WaitKind};

/// Time limit of `bin/start.sh` itself: its own waits add up to about 25 s (O§1.4, O§1.5).
const START_SH: Duration = Duration::from_secs(180);
/// Lines of each of the component's logs shown when it fails to start.
const LOG_TAIL_LINES: usize = 15;

/// `value` in double quotes: the host's shell expands `$VAR` in it, nothing else.
fn double_quoted(value: &str) -> String {
    let mut out = String::from("\"");
    for ch in value.chars() {
        if matches!(ch, '"' | '\\' | '`') {
            out.push('\\');
        }
        out.push(ch);
    }
    out.push('"');
    out
}

impl Control<'_> {
    /// `bin/start.sh <op> <role> [mon]` in the install root, with the component's environment
    /// exported first (O§2.1: what `sbin/start-*.sh` give it), in a login shell when the host's
    /// ssh settings ask for one.
    fn start_sh(&self, c: &Component, op: &str, mon: bool) -> String {
        let mut command = format!("cd {}", q(&c.dir));
        for (name, value) in &c.env {
            command.push_str(&format!(" && export {name}={}", double_quoted(value)));
        }
        command.push_str(&format!(" && bash bin/start.sh {op} {}", c.role.as_str()));
        if op == "start" && mon {
            command.push_str(" mon");
        }
        if self.ssh.access(&c.host).login_shell {
            command = format!("bash -lc {}", q(&command));
        }
        command
    }

    /// Stops a component through its `bin/start.sh stop` and waits until every process in its
    /// pid files is gone (SIGKILL after `grace`, mon first) and its port is free.
    pub async fn stop(&self, endpoint: &str, options: StopOptions) -> Result<StopReport> {
        let started = Instant::now();
        let c = self.component(endpoint)?;
        let step = format!("stopping {} {}", c.role, c.endpoint);
        let found = self.look(c, &step).await?;
        // A pid file pointing at an unrelated process would make start.sh `kill` it.
        self.set_aside_foreign(c, &step, &found).await?;
        let (mon_pid, pid) = found.pids.split();
        let procs = found.ours;
        let mut report = StopReport {
            endpoint: c.endpoint.to_string(),
            host: c.host.clone(),
            mon_pid,
            pid,
            stopped: procs.iter().map(|p| p.pid).collect(),
            dry_run: self.dry_run,
            ..StopReport::default()
        };
        let recorded: Vec<u32> = procs.iter().map(|p| p.pid).collect();
        // Under mon when the child pid file names a live process of ours (O§1.3).
        let under_mon = mon_pid.is_some()
            && !procs.is_empty()
            && found.pids.child.is_some_and(|p| procs.iter().any(|x| x.pid == p));
        if under_mon != c.daemon && !procs.is_empty() {
            (self.say)(&format!(
                "note: {} runs {} although the cluster config says daemon = {}; it is started again the way it runs now (set daemon = {} for it to silence this)",
                c.on_host(),
                if under_mon { "under mon (bin/<role>.pid.child)" } else { "without mon" },
                c.daemon,
                under_mon
            ));
        }
        let command = self.start_sh(c, "stop", false);
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
        (self.say)(&format!("stopping {} (pids {:?})", c.on_host(), report.stopped));
        // Recorded first: whatever happens next, the journal says this component was stopped.
        let version = self.cluster.running_version(c.role, endpoint).await.ok();
        let mon = (!procs.is_empty()).then_some(under_mon);
        self.record(c, &step, "stopped", &Stopped { at: crate::journal::run::now(), version, mon }).await?;
        // From here the process is OpenMLDB's to stop, until its port is free.
        let stopping = timing::waiting(WaitKind::Stopping);
        // start.sh stop always exits 0 (O§1.5): its output is kept only for messages.
        let out = self.exec(c, &step, &command, START_SH).await?;
        tracing::debug!(endpoint, stdout = %out.stdout, stderr = %out.stderr, "start.sh stop");

        // Wait for the processes, by identity, so a reused pid is not waited on.
        let still =
            |now: &[Proc]| procs.iter().filter(|p| now.iter().any(|n| n.same(p))).cloned().collect::<Vec<Proc>>();
        let deadline = Instant::now() + options.grace;
        let mut remaining = still(&self.alive(c, &step, &recorded).await?);
        while !remaining.is_empty() && Instant::now() < deadline {
            self.sleep(c, &step).await?;
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
                self.sleep(c, &step).await?;
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
            self.sleep(c, &step).await?;
        }
        drop(stopping);
        report.duration = started.elapsed();
        let killed = if report.killed { " (SIGKILL needed)" } else { "" };
        (self.say)(&format!("stopped {} in {:.1}s{killed}", c.on_host(), report.duration.as_secs_f64()));
        Ok(report)
    }

    async fn start_failed(&self, c: &Component, reason: String, start_sh: &str) -> ComponentError {
        let files = self.log_files(c).await;
        let quoted: Vec<String> = files.iter().map(|f| q(f)).collect();
        let command = format!(
            "for f in {}; do if [ -r \"$f\" ]; then printf '\\036%s\\n' \"$f\"; tail -n {LOG_TAIL_LINES} \"$f\"; fi; done",
            quoted.join(" ")
        );
        let logs = match self.exec(c, "reading the logs", &command, SHORT).await {
            Ok(out) if !out.stdout.trim().is_empty() => out
                .stdout
                .split('\u{1e}')
                .filter_map(|section| section.split_once('\n'))
                .map(|(file, tail)| {
                    format!("last lines of {file} on {}:\n```\n{}\n```\n", c.host, strip_colours(tail.trim_end()))
                })
                .collect(),
            Ok(_) => format!("none of its logs exists yet on {}: {}\n", c.host, files.join(", ")),
            Err(e) => format!("its logs cannot be read on {}: {e}\n", c.host),
        };
        ComponentError::StartFailed {
            role: c.role,
            endpoint: c.endpoint.to_string(),
            host: c.host.clone(),
            reason,
            start_sh: fenced_tail(start_sh, 10),
            logs,
            next: "Fix the cause shown in the log. If the new release is at fault, component::start_again(endpoint) \
                   puts the last backup back and starts it (component::rollback_install(endpoint, backup_dir) \
                   puts back a given one)."
                .into(),
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
        let before = self.look(c, &step).await?;
        self.set_aside_foreign(c, &step, &before).await?;
        // Started the way it ran before this tool stopped it, else as the config says.
        let stopped: Option<Stopped> = self.recorded("stopped", endpoint).await?;
        let mon = stopped.and_then(|s| s.mon).unwrap_or(c.daemon);
        let command = self.start_sh(c, "start", mon);
        report.already_running = !before.ours.is_empty();
        if self.dry_run {
            // Planned after a (dry-run) stop, the component still runs now: say what a real
            // start would do either way.
            if c.role == Role::Tablet {
                (self.say)(&format!(
                    "[dry-run] zk: would wait for {} to disappear (a tablet started before it has exits at once)",
                    self.cluster
                        .zk()
                        .resolve(&format!("nodes/{}", self.cluster.ns.names().name(&c.endpoint.to_string()).await))
                ));
            }
            (self.say)(&format!("[dry-run] {}: would run `{command}`", c.host));
            return Ok(report);
        } else if report.already_running {
            let pid = before.pids.split().1.map(|p| p.to_string()).unwrap_or_default();
            (self.say)(&format!("{} {} already runs on {} (pid {pid}); checking it", c.role, c.endpoint, c.host));
        } else {
            if matches!(c.role, Role::Tablet | Role::Nameserver) {
                self.wait_old_node_gone(c, &step, timeout).await?;
            }
            (self.say)(&format!("starting {}", c.on_host()));
        }
        // From start.sh until it answers and is registered, the process is OpenMLDB's to start.
        let starting = timing::waiting(WaitKind::Starting);
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
            let now = self.look(c, &step).await?;
            let (mon_pid, pid) = now.pids.split();
            report.mon_pid = mon_pid;
            report.pid = pid;
            let is_alive = |p: Option<u32>| now.is_alive(p);
            if c.daemon && mon_pid.is_some() && !is_alive(mon_pid) {
                return Err(self
                    .start_failed(c, format!("its mon (pid {}) exited", mon_pid.unwrap_or(0)), &start_sh)
                    .await);
            }
            if !c.daemon && !is_alive(pid) {
                let reason = match pid {
                    None => "start.sh wrote no pid file (it writes one only after a successful start)".to_string(),
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
                    self.cluster.running_version(c.role, endpoint).await
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
            self.sleep(c, &step).await?;
        }
        drop(starting);
        self.forget(c, &step, "stopped").await?;
        report.duration = started.elapsed();
        let pid = report.pid.map(|p| p.to_string()).unwrap_or_default();
        let version = if report.version.is_empty() { "- (standby)" } else { &report.version };
        let registered = if report.registered { ", registered" } else { "" };
        (self.say)(&format!("started {}: pid {pid}, version {version}{registered}", c.on_host()));
        Ok(report)
    }

    /// Starts a component a failed step or a stopped run left down: as installed, and when that
    /// does not start and a backup of it is recorded (`backups/<endpoint>`), from the backup, the
    /// version it ran before. When neither starts, the error says it is down and how to bring it
    /// back by hand.
    pub async fn start_again(&self, endpoint: &str, timeout: Duration) -> Result<StartAgainReport> {
        let c = self.component(endpoint)?;
        let as_installed = match self.start(endpoint, timeout).await {
            Ok(started) => return Ok(StartAgainReport { started, from_backup: None }),
            Err(e) => e,
        };
        let stopped: Option<Stopped> = self.recorded("stopped", endpoint).await.ok().flatten();
        let mon = stopped.and_then(|s| s.mon).unwrap_or(c.daemon);
        let down = |tried: String| ComponentError::Down {
            role: c.role,
            endpoint: c.endpoint.to_string(),
            host: c.host.clone(),
            tried,
            by_hand: format!("ssh {} {}", c.host, q(&self.start_sh(c, "start", mon))),
        };
        let Some(backup) = self.recorded::<Backup>("backups", endpoint).await? else {
            return Err(down(format!(
                "it does not start as installed, and no backup of it is recorded:\n{as_installed}"
            )));
        };
        (self.say)(&format!(
            "{} does not start as installed; putting back its backup {} ({}) and starting that",
            c.on_host(),
            backup.path,
            backup.version
        ));
        let from_backup = async {
            // A mon may still be restarting the new binary: stop before replacing it.
            self.stop(endpoint, StopOptions::default()).await?;
            self.rollback_install(endpoint, &backup.path).await?;
            self.start(endpoint, timeout).await
        };
        match from_backup.await {
            Ok(started) => Ok(StartAgainReport { started, from_backup: Some(backup.path) }),
            Err(e) => Err(down(format!(
                "it does not start as installed:\n{as_installed}\nnor from its backup {}:\n{e}",
                backup.path
            ))),
        }
    }

    /// Waits until the ZooKeeper node a previous process of `c` left has expired with its
    /// session. A tablet started before would exit at once (C§1.3). A nameserver would take the
    /// leader lock through its own stale `lock_request` node and lose it again when that node
    /// expires, so two nameservers would run ops for a while (C§1.2).
    async fn wait_old_node_gone(&self, c: &Component, step: &str, timeout: Duration) -> Result<()> {
        let zk = self.cluster.zk();
        let ep = c.endpoint.to_string();
        // C§1.2 (a nameserver takes the lock through its own stale node) and C§1.3 (a tablet
        // cannot register while its old node exists).
        let consequence = match c.role {
            Role::Nameserver => {
                "a nameserver started now would take the leader lock through it and lose it when it expires"
            }
            _ => "a tablet started now would exit at once",
        };
        let deadline = Instant::now() + timeout;
        let mut said = false;
        let _waiting = timing::waiting(WaitKind::Session);
        loop {
            let stale = match c.role {
                Role::Nameserver => {
                    self.election_node(c, step).await?.map(|child| zk.resolve(&format!("leader/{child}")))
                }
                _ => {
                    let node = format!("nodes/{}", self.cluster.ns.names().name(&ep).await);
                    let zk_err = |source| ComponentError::Zk { step: step.to_string(), endpoint: ep.clone(), source };
                    zk.stat(&node).await.map_err(zk_err)?.map(|_| zk.resolve(&node))
                }
            };
            let Some(stale) = stale else { return Ok(()) };
            if !said {
                (self.say)(&format!(
                    "waiting for the old ZooKeeper node {stale} to expire before starting: {consequence}"
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
            self.sleep(c, step).await?;
        }
    }
}
