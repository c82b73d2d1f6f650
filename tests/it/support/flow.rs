//! The cluster's state as the end-to-end tests compare it, and the stock flow run the way an
//! operator runs it (`scripts/upgrade.rhai`, `scripts/rollback.rhai`), killed or not.

use std::path::Path;
use std::time::{Duration, Instant};

use super::{Run, Sandbox};

/// Versions, leader placement, replicas, auto_failover and failed ops, printed for comparison.
pub const STATE: &str = r#"
import "rolling" as rolling;
let leaders = ns::partitions().filter(|r| r.leader && r.alive).map(|r| `${r.db}.${r.table}/${r.pid}@${r.endpoint}`);
leaders.sort();
print("leaders " + leaders);
print("replicas " + ns::partitions().len());
print("auto_failover " + ns::auto_failover());
print("failed_ops " + ns::ops().filter(|o| o.status == "kFailed" || o.status == "kCanceled").len());
let versions = config::components().map(|c| rolling::version_of(c).split("-")[0]);
print("versions " + versions);
let verified = upgrade::verify(0);
print("healthy " + verified.healthy);
let problems = verified.summary;
problems.replace("\n", " | ");
print("problems " + problems);
print("failed_ops_not_redone " + verified.failed_ops.len());
print("run " + journal::run());
"#;

pub fn state(sb: &Sandbox) -> String {
    let out = sb.run(STATE);
    assert_eq!(out.code, 0, "{}", out.stderr);
    out.stdout
}

pub fn line<'a>(state: &'a str, key: &str) -> &'a str {
    state.lines().find(|l| l.starts_with(key)).unwrap_or_else(|| panic!("no {key} in {state}"))
}

/// The end state every finished or unwound run must leave: leaders where they were, no
/// temporary replica, auto_failover back on, no failed op, a healthy cluster, no run recorded.
pub fn assert_safe_end_state(before: &str, after: &str) {
    assert_eq!(line(after, "failed_ops "), "failed_ops 0");
    assert_safe_end_state_with_failed_ops_redone(before, after);
}

/// [`assert_safe_end_state`] where ops may have failed on their own during the run (a
/// scheduled snapshot refusing PauseSnapshot, tablet_impl.cc:3058-3063) as long as a later op
/// of the same partition redid each one (verify's `failed_ops` leaves those out).
pub fn assert_safe_end_state_with_failed_ops_redone(before: &str, after: &str) {
    assert_eq!(line(after, "leaders"), line(before, "leaders"), "leader placement changed");
    assert_eq!(line(after, "replicas"), line(before, "replicas"), "temporary replicas left");
    assert_eq!(line(after, "auto_failover"), "auto_failover true");
    assert_eq!(line(after, "failed_ops_not_redone"), "failed_ops_not_redone 0");
    assert_eq!(line(after, "healthy"), "healthy true", "{}", line(after, "problems"));
    assert_eq!(line(after, "run"), "run ");
}

pub fn upgrade_args<'a>(sb: &'a Sandbox, release: &'a str) -> Vec<String> {
    vec![
        "run".into(),
        super::repo().join("scripts/upgrade.rhai").display().to_string(),
        "--cluster".into(),
        sb.cluster(),
        "--set".into(),
        format!("release={release}"),
    ]
}

/// The stock upgrade to `release`, started in the background; its output goes to a log file in
/// the sandbox directory, shown when a wait on it fails.
pub fn spawn_upgrade(sb: &Sandbox, release: &str) -> Background {
    static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = RUNS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let log = sb.dir.join(format!("background-upgrade-{n}.log"));
    let file = std::fs::File::create(&log).unwrap();
    let child = std::process::Command::new(super::binary())
        .args(upgrade_args(sb, release))
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .spawn()
        .unwrap();
    Background { child, log, journal: sb.journal_file() }
}

/// A run started in the background by [`spawn_upgrade`].
pub struct Background {
    pub child: std::process::Child,
    log: std::path::PathBuf,
    journal: std::path::PathBuf,
}

impl Background {
    /// [`wait_step`] on this run's journal, failing at once (with the run's output) if the run
    /// ends before recording the step.
    pub fn wait_step(&mut self, from: usize, step: &str, state: &str, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(end) = find_step(&self.journal, from, step, state) {
                return end;
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "the upgrade ended ({status}) before the journal recorded {step} as {state}; its output:\n{}",
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            if Instant::now() >= deadline {
                panic!(
                    "journal never recorded {step} as {state} within {timeout:?}; the run's output so far:\n{}",
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

/// Runs the stock upgrade in the background and kills it (SIGKILL) once the journal records
/// `step` as `state`.
pub fn kill_upgrade_at(sb: &Sandbox, release: &str, step: &str, state: &str) {
    let mut run = spawn_upgrade(sb, release);
    run.wait_step(0, step, state, Duration::from_secs(180));
    run.kill();
}

/// The stock rollback (`scripts/rollback.rhai`) on `sb`.
pub fn run_rollback(sb: &Sandbox) -> Run {
    super::run(&["run", super::repo().join("scripts/rollback.rhai").to_str().unwrap(), "--cluster", &sb.cluster()])
}

pub fn run_upgrade(sb: &Sandbox, release: &str, extra: &[&str]) -> Run {
    let mut args = upgrade_args(sb, release);
    args.extend(extra.iter().map(|s| s.to_string()));
    super::run(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

/// Waits until the journal mirror, past `from`, records step `step` in `state`; returns the
/// offset after that record. (For runs this process did not start: the fault suite's.)
#[allow(dead_code)]
pub fn wait_step(file: &Path, from: usize, step: &str, state: &str, timeout: Duration) -> usize {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(end) = find_step(file, from, step, state) {
            return end;
        }
        assert!(Instant::now() < deadline, "journal never recorded {step} as {state}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The offset after the first record, past `from`, of step `step` in `state`.
pub fn find_step(file: &Path, from: usize, step: &str, state: &str) -> Option<usize> {
    let key = format!("\"{step}\":{{");
    let text = std::fs::read_to_string(file).unwrap_or_default();
    let mut at = from.min(text.len());
    while let Some(i) = text[at..].find(&key) {
        let start = at + i + key.len();
        let end = start + text[start..].find('}').unwrap_or(0);
        if text[start..end].contains(&format!("\"state\":\"{state}\"")) {
            return Some(end);
        }
        at = end.max(start);
    }
    None
}
