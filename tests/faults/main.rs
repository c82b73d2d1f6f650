//! The fault-injection suite: upgrades of sandboxes under write load, with the faults of real
//! clusters injected mid-run, each converging on a re-run (or `abort`) to the same end state as
//! an uninterrupted run. Every case checks the cluster afterwards: versions, leader placement,
//! replica counts, no failed op, auto_failover restored, no fence left, and every acknowledged
//! write read back.
//!
//! Reproducible and seeded: `FAULT_SEED=<n>` replays a run (the seed picks each injection's
//! delay after its trigger); the default seed is fixed. `FAULT_CASES=<name>,..` runs some
//! cases only. The results table (the README's) is printed at the end.
//!
//! Runs with `make faults` (`FAULTS=1 cargo test --test faults`), two cases at a time. Without
//! `FAULTS=1` (so in `make test`) it only says how to run it: not every case converges yet, and
//! the suite takes longer than the rest of the tests together.
#![allow(clippy::unwrap_used)]

#[allow(dead_code)]
#[path = "../it/support/mod.rs"]
mod support;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};

use support::flow::{find_step, line, state, upgrade_args, wait_step};
use support::Sandbox;

const DEFAULT_SEED: u64 = 15;
/// Runs of the same command a case may take to converge.
const MAX_RUNS: usize = 4;

/// One row of the results table.
struct Row {
    case: String,
    injected: String,
    runs: String,
    converged: String,
    lost: Option<usize>,
    fences_left: Option<usize>,
    auto_failover: Option<bool>,
    failure: Option<String>,
}

/// What every case shares: the release upgraded to, the seed.
struct Suite {
    release: PathBuf,
    seed: u64,
}

/// A case: its name, what it does, and the sandbox it needs.
struct Case {
    name: &'static str,
    sandbox: &'static [&'static str],
    run: fn(&Suite, &Sandbox, &mut rand::rngs::StdRng) -> Vec<Row>,
}

const CASES: &[Case] = &[
    Case {
        name: "orchestrator-kill",
        sandbox: &["--nameservers", "2", "--tablets", "2", "--apiservers", "1", "--taskmanagers", "1"],
        run: orchestrator_kills,
    },
    Case { name: "kill-then-abort", sandbox: &["--tablets", "2"], run: kill_then_abort },
    Case {
        name: "upgraded-tablet-killed-mid-drain",
        sandbox: &["--nameservers", "2", "--tablets", "3"],
        run: upgraded_tablet_killed_mid_drain,
    },
    Case {
        name: "upgraded-tablet-killed-mid-restore",
        sandbox: &["--nameservers", "2", "--tablets", "3"],
        run: upgraded_tablet_killed_mid_restore,
    },
    Case {
        name: "other-tablet-killed-mid-drain",
        sandbox: &["--nameservers", "2", "--tablets", "3"],
        run: other_tablet_killed_mid_drain,
    },
    Case {
        name: "nameserver-leader-killed-mid-drain",
        sandbox: &["--nameservers", "2", "--tablets", "3"],
        run: nameserver_leader_killed_mid_drain,
    },
    Case {
        name: "zookeeper-restart-mid-drain",
        sandbox: &["--nameservers", "2", "--tablets", "3"],
        run: zookeeper_restart_mid_drain,
    },
    Case {
        name: "ssh-drop-mid-install",
        sandbox: &["--nameservers", "1", "--tablets", "3", "--ssh"],
        run: ssh_drop_mid_install,
    },
];

fn main() {
    if std::env::var("FAULTS").is_err() {
        println!("fault-injection suite skipped: run it with `make faults` (FAULTS=1 cargo test --test faults)");
        return;
    }
    let seed = std::env::var("FAULT_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(DEFAULT_SEED);
    let only: Option<Vec<String>> =
        std::env::var("FAULT_CASES").ok().map(|s| s.split(',').map(|c| c.trim().to_string()).collect());
    let cases: Vec<&'static Case> =
        CASES.iter().filter(|c| only.as_ref().is_none_or(|o| o.iter().any(|n| n == c.name))).collect();
    if std::env::args().any(|a| a == "--list") {
        for c in &cases {
            println!("{}: test", c.name);
        }
        return;
    }
    println!("fault-injection suite: {} cases, seed {seed} (FAULT_SEED={seed} replays it)", cases.len());
    let rel = tempfile::tempdir().unwrap();
    let suite = Arc::new(Suite { release: support::release(rel.path(), "0.9.3", &[]), seed });
    let queue = Arc::new(Mutex::new(cases.into_iter().enumerate().collect::<Vec<_>>()));
    let results = Arc::new(Mutex::new(Vec::new()));
    let started = Instant::now();
    let workers: Vec<_> = (0..2)
        .map(|_| {
            let (queue, results, suite) = (queue.clone(), results.clone(), suite.clone());
            std::thread::spawn(move || loop {
                let Some((index, case)) = queue.lock().unwrap().pop() else { break };
                let case_started = Instant::now();
                let rows = run_case(&suite, index, case);
                let failed = rows.iter().any(|r| r.failure.is_some());
                println!(
                    "case {} {} in {:.0}s",
                    case.name,
                    if failed { "FAILED" } else { "ok" },
                    case_started.elapsed().as_secs_f64()
                );
                results.lock().unwrap().push((index, rows));
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    let mut results = std::mem::take(&mut *results.lock().unwrap());
    results.sort_by_key(|(i, _)| *i);
    let rows: Vec<Row> = results.into_iter().flat_map(|(_, rows)| rows).collect();
    println!("\n{}", table(&rows));
    println!("seed {seed}; {} rows in {:.0}s", rows.len(), started.elapsed().as_secs_f64());
    let failures: Vec<&Row> = rows.iter().filter(|r| r.failure.is_some()).collect();
    for r in &failures {
        println!("\n--- {} ({}) FAILED:\n{}", r.case, r.injected, r.failure.as_deref().unwrap_or_default());
    }
    if !failures.is_empty() {
        println!("\n{} of {} rows failed; replay with FAULT_SEED={seed}", failures.len(), rows.len());
        std::process::exit(1);
    }
}

/// Runs one case on its own sandbox; a panic (a failed check) becomes a failed row.
fn run_case(suite: &Suite, index: usize, case: &Case) -> Vec<Row> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(suite.seed.wrapping_mul(1000).wrapping_add(index as u64));
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let sb = Sandbox::up(case.sandbox);
        (case.run)(suite, &sb, &mut rng)
    }));
    match outcome {
        Ok(rows) => rows,
        Err(panic) => {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panicked".into());
            vec![Row {
                case: case.name.into(),
                injected: "-".into(),
                runs: "-".into(),
                converged: "no".into(),
                lost: None,
                fences_left: None,
                auto_failover: None,
                failure: Some(message),
            }]
        }
    }
}

fn table(rows: &[Row]) -> String {
    let mut out = String::from(
        "| case | injected | runs | converged | acknowledged writes lost | fences left | auto_failover restored |\n\
         |---|---|---|---|---|---|---|\n",
    );
    let opt = |v: Option<String>| v.unwrap_or_else(|| "-".into());
    for r in rows {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} |",
            r.case,
            r.injected,
            r.runs,
            if r.failure.is_some() { format!("**FAILED**: {}", r.converged) } else { r.converged.clone() },
            opt(r.lost.map(|n| n.to_string())),
            opt(r.fences_left.map(|n| n.to_string())),
            opt(r.auto_failover.map(|b| if b { "yes".to_string() } else { "no".to_string() })),
        );
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Running the stock upgrade and reading the cluster.

/// A run of the stock upgrade in the background, its output in a file.
struct UpgradeRun {
    child: Child,
    log: PathBuf,
}

impl UpgradeRun {
    fn spawn(suite: &Suite, sb: &Sandbox, n: usize) -> UpgradeRun {
        let log = sb.dir.join(format!("fault-run-{n}.log"));
        let file = std::fs::File::create(&log).unwrap();
        let child = Command::new(support::binary())
            .args(upgrade_args(sb, suite.release.to_str().unwrap()))
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap();
        UpgradeRun { child, log }
    }

    /// Waits until the run's output contains `text`.
    fn wait_output(&mut self, text: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !std::fs::read_to_string(&self.log).unwrap_or_default().contains(text) {
            assert!(self.child.try_wait().unwrap().is_none(), "the run ended before printing {text:?}");
            assert!(Instant::now() < deadline, "the run never printed {text:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn kill(mut self) -> String {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits for the run to end; its exit code and output.
    fn wait(mut self, timeout: Duration) -> (i32, String) {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status.code().unwrap_or(-1), std::fs::read_to_string(&self.log).unwrap_or_default());
            }
            if Instant::now() > deadline {
                let out = self.kill();
                panic!("the run did not end within {timeout:?}:\n{}", tail(&out));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// Re-runs the same command until one succeeds (at most `MAX_RUNS` in all, `done` counted);
/// `between` runs after a failed run, as an operator would act on its message. Returns the
/// number of runs and the last output.
fn converge(suite: &Suite, sb: &Sandbox, mut done: usize, mut between: impl FnMut(&str)) -> (usize, String) {
    loop {
        done += 1;
        let (code, out) = UpgradeRun::spawn(suite, sb, done).wait(Duration::from_secs(600));
        if code == 0 {
            return (done, out);
        }
        assert!(done < MAX_RUNS, "run {done} failed ({code}) and no more runs are allowed:\n{}", tail(&out));
        between(&out);
    }
}

/// How the cluster ended, checked against its state before the run.
struct End {
    lost: usize,
    fences_left: usize,
    auto_failover: bool,
}

const AFTER: &str = r#"
let fences = 0;
if zk::exists("/mldb-upgrade/openmldb/fence") { fences = zk::children("/mldb-upgrade/openmldb/fence").len(); }
print("fences " + fences);
print("lock " + zk::exists("/mldb-upgrade/openmldb/lock"));
"#;

/// Stops the load and checks the end state: every acknowledged write there, leaders where they
/// were, the replicas of before, auto_failover on, no failed op, healthy, nothing left of the run,
/// every component at `version`.
fn check_end(sb: &Sandbox, before: &str, load: support::Load, version: &str) -> End {
    let (summary, verified) = load.finish();
    let lost = verified["missing"].as_array().map_or(usize::MAX, Vec::len);
    let after = state(sb);
    let extra = sb.run(AFTER);
    assert_eq!(extra.code, 0, "{}", extra.stderr);
    let fences_left: usize = extra
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("fences "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(usize::MAX);
    let end = End { lost, fences_left, auto_failover: line(&after, "auto_failover") == "auto_failover true" };
    assert_eq!(lost, 0, "acknowledged writes lost: {summary}\n{verified}");
    assert_eq!(fences_left, 0, "fences left: {}", extra.stdout);
    assert!(extra.stdout.contains("lock false"), "the lock is still held: {}", extra.stdout);
    assert_eq!(line(&after, "leaders"), line(before, "leaders"), "leader placement changed");
    assert_eq!(line(&after, "replicas"), line(before, "replicas"), "replica count changed");
    assert!(end.auto_failover, "auto_failover not restored: {after}");
    assert_eq!(line(&after, "healthy"), "healthy true", "{after}");
    assert_eq!(line(&after, "run"), "run ", "a run is still recorded: {after}");
    let versions = line(&after, "versions");
    let expected = sandbox_state(sb).components.len();
    assert_eq!(
        versions.matches(&format!("\"{version}\"")).count(),
        expected,
        "not every component at {version}: {versions}"
    );
    end
}

fn sandbox_state(sb: &Sandbox) -> mldb_upgrade::sandbox::SandboxState {
    mldb_upgrade::sandbox::load_state(&sb.dir).unwrap()
}

fn component(sb: &Sandbox, endpoint: &str) -> mldb_upgrade::sandbox::SandboxComponent {
    sandbox_state(sb).components.into_iter().find(|c| c.endpoint == endpoint).unwrap()
}

/// Starts a component again with its start.sh, as an operator does after a crash.
fn start_again(sb: &Sandbox, endpoint: &str) {
    let c = component(sb, endpoint);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(mldb_upgrade::sandbox::start_sh(&c, "start", false));
}

fn nameserver_leader(sb: &Sandbox) -> String {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let leader = rt.block_on(mldb_upgrade::sandbox::nameserver_leader(&sandbox_state(sb))).unwrap();
    // The leader node may hold a server name; the sandbox lists endpoints.
    sandbox_state(sb)
        .components
        .into_iter()
        .find(|c| c.endpoint == leader || c.name == leader)
        .map_or(leader, |c| c.endpoint)
}

fn endpoints(sb: &Sandbox, role: &str) -> Vec<String> {
    sandbox_state(sb).components.into_iter().filter(|c| c.role.as_str() == role).map(|c| c.endpoint).collect()
}

/// Waits until the journal records the first fence raised after `from`.
fn wait_fence(journal: &Path, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while !std::fs::read_to_string(journal).unwrap_or_default().contains("\"key\":\"fence/") {
        assert!(Instant::now() < deadline, "no fence was ever recorded");
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn jitter(rng: &mut rand::rngs::StdRng, max_ms: u64) -> Duration {
    let ms = rng.random_range(0..=max_ms);
    std::thread::sleep(Duration::from_millis(ms));
    Duration::from_millis(ms)
}

fn row(case: &str, injected: String, runs: String, converged: &str, end: &End) -> Row {
    Row {
        case: case.into(),
        injected,
        runs,
        converged: converged.into(),
        lost: Some(end.lost),
        fences_left: Some(end.fences_left),
        auto_failover: Some(end.auto_failover),
        failure: None,
    }
}

// ---------------------------------------------------------------------------------------------
// The cases.

/// kill -9 of mldb-upgrade at 13 points spread over every phase, one after the other on the same
/// upgrade: each kill's next run resumes the same command, the last one finishes.
fn orchestrator_kills(suite: &Suite, sb: &Sandbox, rng: &mut rand::rngs::StdRng) -> Vec<Row> {
    let journal = sb.journal_file();
    let leader = nameserver_leader(sb);
    let standby = endpoints(sb, "nameserver").into_iter().find(|e| *e != leader).unwrap();
    let (t1, t2) = (sb.tablet(1), sb.tablet(2));
    let api = endpoints(sb, "apiserver").remove(0);
    let tm = endpoints(sb, "taskmanager").remove(0);
    let points: Vec<(String, &str)> = vec![
        ("pre-flight checks".into(), "started"),
        (format!("nameserver {standby}: stop"), "done"),
        (format!("nameserver {leader}: install bin"), "done"),
        (format!("nameserver {leader}: leader elected"), "started"),
        (format!("tablet {t1}: drain leaders"), "started"),
        (format!("tablet {t1}: stop"), "done"),
        (format!("tablet {t1}: install bin"), "done"),
        (format!("tablet {t1}: recover data"), "started"),
        (format!("tablet {t1}: restore leaders"), "started"),
        (format!("tablet {t2}: verify"), "started"),
        (format!("apiserver {api}: stop"), "done"),
        (format!("taskmanager {tm}: start"), "started"),
        ("final verification".into(), "started"),
    ];
    let before = state(sb);
    let load = sb.load(100);
    std::thread::sleep(Duration::from_secs(1));
    let mut injected = Vec::new();
    let mut previous = 0;
    for (n, (step, at)) in points.iter().enumerate() {
        // The run killed before this one went on for the jitter's few hundred milliseconds and
        // may have reached this run's kill point already: then this run is killed once it has
        // resumed; otherwise when it records the point itself.
        let offset = std::fs::read_to_string(&journal).map(|t| t.len()).unwrap_or(0);
        let mut run = UpgradeRun::spawn(suite, sb, n + 1);
        if find_step(&journal, previous, step, at).is_some_and(|end| end <= offset) {
            run.wait_output("resuming `upgrade to 0.9.3 from ", Duration::from_secs(120));
        } else {
            wait_step(&journal, offset, step, at, Duration::from_secs(300));
        }
        previous = offset;
        let delay = jitter(rng, 300);
        let out = run.kill();
        if n > 0 {
            assert!(out.contains("resuming `upgrade to 0.9.3 from "), "run {} did not resume:\n{}", n + 1, tail(&out));
        }
        injected.push(format!("kill -9 {} ms after `{step}` {at}", delay.as_millis()));
    }
    let (runs, out) = converge(suite, sb, points.len(), |_| {});
    assert!(out.contains("resuming `upgrade to 0.9.3 from "), "{}", tail(&out));
    let end = check_end(sb, &before, load, "0.9.3");
    injected
        .into_iter()
        .enumerate()
        .map(|(n, what)| {
            let converged = if n + 1 < points.len() { "the next run resumed" } else { "yes: the last run finished" };
            row("orchestrator-kill", what, format!("{}/{runs}", n + 1), converged, &end)
        })
        .collect()
}

/// kill -9 of mldb-upgrade while fences are up in a drain, then `abort`: leaders back, nothing
/// upgraded but the nameserver.
fn kill_then_abort(suite: &Suite, sb: &Sandbox, rng: &mut rand::rngs::StdRng) -> Vec<Row> {
    let before = state(sb);
    let load = sb.load(100);
    let run = UpgradeRun::spawn(suite, sb, 1);
    wait_step(
        &sb.journal_file(),
        0,
        &format!("tablet {}: drain leaders", sb.tablet(1)),
        "started",
        Duration::from_secs(300),
    );
    wait_fence(&sb.journal_file(), Duration::from_secs(60));
    let delay = jitter(rng, 200);
    run.kill();
    let out = support::run(&["abort", "--cluster", &sb.cluster()]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    // Only the nameserver was upgraded before the kill; abort upgrades nothing.
    let after = state(sb);
    assert_eq!(line(&after, "versions"), "versions [\"0.9.2\", \"0.9.2\", \"0.9.3\"]", "{after}");
    let (summary, verified) = load.finish();
    let lost = verified["missing"].as_array().map_or(usize::MAX, Vec::len);
    assert_eq!(lost, 0, "acknowledged writes lost: {summary}");
    support::flow::assert_safe_end_state(&before, &after);
    let extra = sb.run(AFTER);
    assert!(extra.stdout.contains("fences 0"), "{}", extra.stdout);
    let end = End { lost, fences_left: 0, auto_failover: true };
    vec![row(
        "kill-then-abort",
        format!("kill -9 of mldb-upgrade {} ms after the first fence of a drain", delay.as_millis()),
        "1 + abort".into(),
        "yes: abort unwound it",
        &end,
    )]
}

/// Runs the upgrade, injects `fault` once `trigger` fires, lets the run end as it will, then
/// re-runs until it converges, acting between runs as `operator` says.
fn fault_case(
    suite: &Suite,
    sb: &Sandbox,
    name: &str,
    trigger: impl FnOnce(&Path),
    fault: impl FnOnce() -> String,
    mut operator: impl FnMut(&str) -> Option<String>,
) -> Vec<Row> {
    let before = state(sb);
    let load = sb.load(100);
    std::thread::sleep(Duration::from_secs(1));
    let run = UpgradeRun::spawn(suite, sb, 1);
    trigger(&sb.journal_file());
    let injected = fault();
    let (code, out) = run.wait(Duration::from_secs(600));
    let mut actions = Vec::new();
    let (runs, _) = if code == 0 {
        (1, out)
    } else {
        if let Some(action) = operator(&out) {
            actions.push(action);
        }
        converge(suite, sb, 1, |out| {
            if let Some(action) = operator(out) {
                actions.push(action);
            }
        })
    };
    let end = check_end(sb, &before, load, "0.9.3");
    let converged = if actions.is_empty() {
        if runs == 1 {
            "yes: the run finished".to_string()
        } else {
            "yes: on re-run".to_string()
        }
    } else {
        format!("yes, after the operator {}", actions.join(", "))
    };
    vec![row(name, injected, runs.to_string(), &converged, &end)]
}

fn kill(sb: &Sandbox, endpoint: &str) -> u32 {
    mldb_upgrade::sandbox::faults::kill_component(&sandbox_state(sb), endpoint).unwrap()
}

fn upgraded_tablet_killed_mid_drain(suite: &Suite, sb: &Sandbox, rng: &mut rand::rngs::StdRng) -> Vec<Row> {
    let t1 = sb.tablet(1);
    let step = format!("tablet {t1}: drain leaders");
    fault_case(
        suite,
        sb,
        "upgraded-tablet-killed-mid-drain",
        |journal| {
            wait_step(journal, 0, &step, "started", Duration::from_secs(300));
            wait_fence(journal, Duration::from_secs(60));
        },
        || {
            let delay = jitter(rng, 200);
            kill(sb, &t1);
            format!("kill -9 of the tablet being drained ({t1}) {} ms after its first fence", delay.as_millis())
        },
        |_| None,
    )
}

fn upgraded_tablet_killed_mid_restore(suite: &Suite, sb: &Sandbox, rng: &mut rand::rngs::StdRng) -> Vec<Row> {
    let t1 = sb.tablet(1);
    let step = format!("tablet {t1}: restore leaders");
    fault_case(
        suite,
        sb,
        "upgraded-tablet-killed-mid-restore",
        |journal| {
            wait_step(journal, 0, &step, "started", Duration::from_secs(300));
        },
        || {
            let delay = jitter(rng, 300);
            kill(sb, &t1);
            format!("kill -9 of the upgraded tablet ({t1}) {} ms into restoring its leaders", delay.as_millis())
        },
        |_| None,
    )
}

/// A tablet the run is not touching crashes: the run stops safely and says so; the operator
/// starts it again and re-runs.
fn other_tablet_killed_mid_drain(suite: &Suite, sb: &Sandbox, rng: &mut rand::rngs::StdRng) -> Vec<Row> {
    let (t1, t3) = (sb.tablet(1), sb.tablet(3));
    let step = format!("tablet {t1}: drain leaders");
    let mut restarted = false;
    fault_case(
        suite,
        sb,
        "other-tablet-killed-mid-drain",
        |journal| {
            wait_step(journal, 0, &step, "started", Duration::from_secs(300));
            wait_fence(journal, Duration::from_secs(60));
        },
        || {
            let delay = jitter(rng, 200);
            kill(sb, &t3);
            format!("kill -9 of another tablet ({t3}) {} ms after the drain's first fence", delay.as_millis())
        },
        |out| {
            if restarted || !out.contains(t3.as_str()) {
                return None;
            }
            restarted = true;
            start_again(sb, &t3);
            Some(format!("started {t3} again (the run named it)"))
        },
    )
}

fn nameserver_leader_killed_mid_drain(suite: &Suite, sb: &Sandbox, rng: &mut rand::rngs::StdRng) -> Vec<Row> {
    let t1 = sb.tablet(1);
    let step = format!("tablet {t1}: drain leaders");
    let killed = Mutex::new(String::new());
    let mut restarted = false;
    fault_case(
        suite,
        sb,
        "nameserver-leader-killed-mid-drain",
        |journal| {
            wait_step(journal, 0, &step, "started", Duration::from_secs(300));
            wait_fence(journal, Duration::from_secs(60));
        },
        || {
            let delay = jitter(rng, 200);
            let leader = nameserver_leader(sb);
            kill(sb, &leader);
            *killed.lock().unwrap() = leader.clone();
            format!(
                "kill -9 of the nameserver leader ({leader}) {} ms after the drain's first fence",
                delay.as_millis()
            )
        },
        |out| {
            let leader = killed.lock().unwrap().clone();
            if restarted || !out.contains(leader.as_str()) {
                return None;
            }
            restarted = true;
            start_again(sb, &leader);
            Some(format!("started {leader} again (the run named it)"))
        },
    )
}

fn zookeeper_restart_mid_drain(suite: &Suite, sb: &Sandbox, rng: &mut rand::rngs::StdRng) -> Vec<Row> {
    let t1 = sb.tablet(1);
    let step = format!("tablet {t1}: drain leaders");
    fault_case(
        suite,
        sb,
        "zookeeper-restart-mid-drain",
        |journal| {
            wait_step(journal, 0, &step, "started", Duration::from_secs(300));
            wait_fence(journal, Duration::from_secs(60));
        },
        || {
            let delay = jitter(rng, 200);
            // Down longer than the sandbox's zk_session_timeout (3 s with --fast): every session expires.
            let mut state = sandbox_state(sb);
            mldb_upgrade::sandbox::faults::restart_zookeeper(&mut state, Duration::from_secs(5)).unwrap();
            format!(
                "ZooKeeper killed {} ms after the drain's first fence, back 5 s later (sessions expired)",
                delay.as_millis()
            )
        },
        // A nameserver that became leader before enough tablets had registered again exits
        // (`OnLocked`, name_server_impl.cc: fewer tablets than system_table_replica_num): the
        // run names it, and the operator starts it again.
        |out| {
            let named: Vec<String> = endpoints(sb, "nameserver")
                .into_iter()
                .filter(|ns| out.contains(&format!("nameserver {ns} reports not answering")))
                .collect();
            for ns in &named {
                start_again(sb, ns);
            }
            (!named.is_empty()).then(|| format!("started {} again (the run named it)", named.join(", ")))
        },
    )
}

fn ssh_drop_mid_install(suite: &Suite, sb: &Sandbox, rng: &mut rand::rngs::StdRng) -> Vec<Row> {
    let t1 = sb.tablet(1);
    let step = format!("tablet {t1}: install bin");
    fault_case(
        suite,
        sb,
        "ssh-drop-mid-install",
        |journal| {
            wait_step(journal, 0, &step, "started", Duration::from_secs(300));
        },
        || {
            let delay = jitter(rng, 100);
            let n = mldb_upgrade::sandbox::faults::drop_ssh_connections(&sandbox_state(sb)).unwrap();
            format!("{n} ssh connection(s) dropped {} ms into installing bin/ on {t1}", delay.as_millis())
        },
        |_| None,
    )
}
