//! `bin/mon`: the process supervisor OpenMLDB ships for daemon mode (O§1.8; a build of tj/mon).
//!
//! `mon "<command>" -d -s 10 -l LOG -m MON_PIDFILE -p CHILD_PIDFILE`: runs the command through
//! `sh -c` in its own process group, writes its own pid to `-m` and the child's to `-p`,
//! restarts the child `-s` seconds after it exits (giving up, "bailing", after `-a` restarts
//! within 60 s), and on SIGTERM/SIGINT/SIGQUIT/SIGHUP forwards the signal to the child's process
//! group, waits for the child and exits. Killed with SIGKILL, mon leaves the child running
//! unsupervised, as the real one does.
//!
//! The release's `bin/mon` is the `openmldb-sim` binary; it acts as mon when invoked under
//! that name. Simplifications: `-R`/`-E` hooks run through `sh -c` without mon's environment
//! variables; `-P` only prefixes log lines.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

/// Parsed `mon` command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonArgs {
    pub command: String,
    pub log: Option<PathBuf>,
    pub sleep: Duration,
    pub child_pidfile: Option<PathBuf>,
    pub mon_pidfile: Option<PathBuf>,
    pub prefix: Option<String>,
    pub daemonize: bool,
    pub attempts: u32,
    pub on_restart: Option<String>,
    pub on_error: Option<String>,
    pub status: bool,
}

impl MonArgs {
    pub fn parse(args: &[String]) -> Result<Self, String> {
        let mut parsed = MonArgs {
            command: String::new(),
            log: None,
            sleep: Duration::from_secs(1),
            child_pidfile: None,
            mon_pidfile: None,
            prefix: None,
            daemonize: false,
            attempts: 10,
            on_restart: None,
            on_error: None,
            status: false,
        };
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            let mut value = |name: &str| it.next().cloned().ok_or_else(|| format!("{name} requires an argument"));
            match arg.as_str() {
                "-l" | "--log" => parsed.log = Some(value(arg)?.into()),
                "-s" | "--sleep" => {
                    let v = value(arg)?;
                    parsed.sleep =
                        Duration::from_secs(v.parse().map_err(|_| format!("--sleep: `{v}` is not a number"))?)
                }
                "-p" | "--pidfile" => parsed.child_pidfile = Some(value(arg)?.into()),
                "-m" | "--mon-pidfile" => parsed.mon_pidfile = Some(value(arg)?.into()),
                "-P" | "--prefix" => parsed.prefix = Some(value(arg)?),
                "-d" | "--daemonize" => parsed.daemonize = true,
                "-S" | "--status" => parsed.status = true,
                "-a" | "--attempts" => {
                    let v = value(arg)?;
                    parsed.attempts = v.parse().map_err(|_| format!("--attempts: `{v}` is not a number"))?
                }
                "-R" | "--on-restart" => parsed.on_restart = Some(value(arg)?),
                "-E" | "--on-error" => parsed.on_error = Some(value(arg)?),
                other if other.starts_with('-') => return Err(format!("unknown option {other}")),
                command => parsed.command = command.to_string(),
            }
        }
        if parsed.command.is_empty() && !parsed.status {
            return Err("command required".into());
        }
        Ok(parsed)
    }
}

struct Log {
    file: Option<std::fs::File>,
    prefix: String,
}

impl Log {
    fn line(&mut self, text: &str) {
        if let Some(f) = self.file.as_mut() {
            let _ = writeln!(f, "mon : {}{text}", self.prefix);
        }
    }
}

fn write_pid(path: &Option<PathBuf>, pid: u32) {
    if let Some(path) = path {
        let _ = std::fs::write(path, pid.to_string());
    }
}

/// Runs the command through the shell, replaced by the command itself so the pid written to
/// `-p` is the component's (O§1.3: `.pid.child` holds the component pid; bash, which mon
/// uses, execs a lone simple command by itself).
fn spawn(command: &str) -> std::io::Result<Child> {
    Command::new("sh").arg("-c").arg(format!("exec {command}")).stdin(Stdio::null()).process_group(0).spawn()
}

fn run_hook(hook: &Option<String>) {
    if let Some(cmd) = hook {
        let _ = Command::new("sh").arg("-c").arg(cmd).status();
    }
}

/// Runs mon with `args` (without argv\[0\]).
pub fn main_with_args(args: Vec<String>) -> ExitCode {
    let args = match MonArgs::parse(&args) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("mon: {e}");
            return ExitCode::from(1);
        }
    };
    if args.status {
        let pid = args.child_pidfile.as_ref().and_then(|p| std::fs::read_to_string(p).ok());
        let alive = pid
            .and_then(|p| p.trim().parse::<i32>().ok())
            .is_some_and(|p| nix::sys::signal::kill(Pid::from_raw(p), None).is_ok());
        println!("{}", if alive { "alive" } else { "dead" });
        return if alive { ExitCode::SUCCESS } else { ExitCode::from(1) };
    }
    let log_file = args.log.as_ref().and_then(|p| OpenOptions::new().create(true).append(true).open(p).ok());
    if args.daemonize {
        // Keep the working directory: start.sh passes relative paths (O§1.3).
        if let Err(e) = nix::unistd::daemon(true, false) {
            eprintln!("mon: cannot daemonize: {e}");
            return ExitCode::from(1);
        }
    }
    let mut log = Log { file: log_file, prefix: args.prefix.clone().map(|p| format!("{p} ")).unwrap_or_default() };
    write_pid(&args.mon_pidfile, std::process::id());
    let signal = Arc::new(AtomicUsize::new(0));
    for sig in [
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGQUIT,
        signal_hook::consts::SIGHUP,
    ] {
        let _ = signal_hook::flag::register_usize(sig, signal.clone(), sig as usize);
    }
    let mut restarts: Vec<Instant> = Vec::new();
    loop {
        let mut child = match spawn(&args.command) {
            Ok(c) => c,
            Err(e) => {
                log.line(&format!("cannot run {}: {e}", args.command));
                return ExitCode::from(1);
            }
        };
        log.line(&format!("child {}", child.id()));
        write_pid(&args.child_pidfile, child.id());
        let status = loop {
            let sig = signal.load(Ordering::SeqCst);
            if sig != 0 {
                log.line("shutting down");
                if let (Ok(pgid), Ok(sig)) = (i32::try_from(child.id()), Signal::try_from(sig as i32)) {
                    let _ = killpg(Pid::from_raw(pgid), sig);
                }
                let _ = child.wait();
                log.line("bye :)");
                return ExitCode::SUCCESS;
            }
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) => std::thread::sleep(Duration::from_millis(50)),
                Err(_) => break std::process::ExitStatus::default(),
            }
        };
        log.line(&format!("child {} exited with {status}", child.id()));
        let now = Instant::now();
        restarts.retain(|t| now.duration_since(*t) < Duration::from_secs(60));
        if restarts.len() as u32 >= args.attempts {
            log.line(&format!("{} restarts within 60s, bailing", restarts.len()));
            run_hook(&args.on_error);
            return ExitCode::from(1);
        }
        restarts.push(now);
        // Sleep before restarting, but keep honouring signals.
        let until = Instant::now() + args.sleep;
        while Instant::now() < until {
            if signal.load(Ordering::SeqCst) != 0 {
                log.line("shutting down");
                return ExitCode::SUCCESS;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        log.line("restarting");
        run_hook(&args.on_restart);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_start_sh_command_line_o1_8() {
        let args: Vec<String> = [
            "./bin/openmldb --flagfile=./conf/tablet.flags",
            "-d",
            "-s",
            "10",
            "-l",
            "logs/tablet_mon.log",
            "-m",
            "./bin/tablet.pid",
            "-p",
            "./bin/tablet.pid.child",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let a = MonArgs::parse(&args).unwrap();
        assert_eq!(a.command, "./bin/openmldb --flagfile=./conf/tablet.flags");
        assert!(a.daemonize);
        assert_eq!(a.sleep, Duration::from_secs(10));
        assert_eq!(a.mon_pidfile, Some(PathBuf::from("./bin/tablet.pid")));
        assert_eq!(a.child_pidfile, Some(PathBuf::from("./bin/tablet.pid.child")));
        assert_eq!(a.attempts, 10);
        assert!(MonArgs::parse(&["-x".to_string()]).is_err());
    }
}
