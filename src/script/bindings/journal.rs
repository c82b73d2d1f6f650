//! `journal::`: making a script resumable ([`crate::journal`]). `journal::begin` takes the
//! cluster's lock and starts (or resumes) a run; `journal::step` runs a block once per run,
//! recording it before and after, so re-running the same command skips what is done. Each step
//! prints one progress line with its elapsed time and emits a structured log event (the audit
//! log with `--log-format json`), and its time goes to the run's timing ledger
//! ([`crate::timing`]), printed at the end of the run.

use super::{to_map, Call, RhaiResultOf};
use crate::journal::run::StepState;
use crate::journal::Journal;
use rhai::plugin::*;
use rhai::{Dynamic, FnPtr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const NS: &str = "journal";

/// How long to wait for the lock of a run on this host whose process is gone.
const STALE_LOCK_WAIT: Duration = Duration::from_secs(30);

/// Steps seen by this process, numbered for the progress lines.
static STEPS: AtomicUsize = AtomicUsize::new(0);

/// The command line of this process, naming the lock holder.
fn this_command() -> String {
    std::env::args().collect::<Vec<_>>().join(" ")
}

#[export_module]
pub mod api {
    use super::*;

    /// Takes the cluster's upgrade lock (refused, naming the holder, while another run holds it)
    /// and starts the run `run_name`, or resumes it when it is the unfinished one. A different
    /// unfinished run is refused. Returns the run record #{name, started, steps, order}.
    /// Changes the journal: in --dry-run it takes no lock and records nothing.
    ///
    /// Example: `journal::begin("upgrade to " + setting("release"));`
    #[rhai_fn(volatile, return_raw)]
    pub fn begin(ctx: NativeCallContext, run_name: &str) -> RhaiResultOf<Dynamic> {
        let call = Call::new(&ctx, NS)?;
        let journal = &call.upgrader()?.journal;
        if call.dry_run() {
            return plan_begin(&call, journal, run_name);
        }
        let holder = call.run(journal.lock(&this_command(), STALE_LOCK_WAIT))?;
        // A run killed before its first step finished is resumed too (and says so).
        let resumed = call.run(journal.current_run())?.is_some_and(|r| r.name == run_name);
        let run = call.run(journal.begin_run(run_name))?;
        let done = run.done_count();
        if resumed {
            call.say(&format!("resuming `{run_name}` started {}: {done} steps already done", run.started));
        } else {
            call.say(&format!("run `{run_name}` started; this process holds the cluster's upgrade lock ({holder})"));
        }
        Ok(to_map(&run)?.into())
    }

    /// Takes the cluster's upgrade lock without starting a run (journal::begin takes it too); held
    /// until mldb-upgrade exits. Refused, naming the holder, while another run holds it.
    /// In --dry-run it takes nothing.
    ///
    /// Example: `journal::lock(); upgrade::restore_auto_failover();`
    #[rhai_fn(volatile, return_raw)]
    pub fn lock(ctx: NativeCallContext) -> RhaiResultOf<()> {
        let call = Call::new(&ctx, NS)?;
        let journal = &call.upgrader()?.journal;
        if call.dry_run() {
            return Ok(());
        }
        call.run(journal.lock(&this_command(), STALE_LOCK_WAIT)).map(|_| ())
    }

    /// Runs `block` as the step `name` unless this run already did it: records it as started,
    /// runs it, records it as done, printing one line with the elapsed time. A failed step stays
    /// "started" and runs again when the command is re-run. Returns what `block` returns (() when
    /// skipped). In --dry-run it prints the step and runs `block` (in dry-run).
    ///
    /// Example: `journal::step("tablet " + ep + ": drain leaders", || upgrade::drain_leaders(ep));`
    #[rhai_fn(volatile, return_raw)]
    pub fn step(ctx: NativeCallContext, name: &str, block: FnPtr) -> RhaiResultOf<Dynamic> {
        let call = Call::new(&ctx, NS)?;
        let number = STEPS.fetch_add(1, Ordering::SeqCst) + 1;
        if call.dry_run() {
            let planned = call.host.planned_run.lock().unwrap_or_else(|p| p.into_inner()).clone();
            if planned.is_some_and(|run| run.is_done(name)) {
                call.say(&format!("step {number:>3}: {name} (done in the unfinished run, skipped)"));
                return Ok(Dynamic::UNIT);
            }
            call.say(&format!("step {number:>3}: {name}"));
            return block.call_within_context(&ctx, ());
        }
        let journal = &call.upgrader()?.journal;
        let run = call.run(journal.current_run())?;
        if run.as_ref().is_some_and(|r| r.is_done(name)) {
            call.say(&format!("[{number:>3}] {name}: done in an earlier run, skipped"));
            tracing::info!(target: "audit", step = name, state = "skipped", "step");
            call.host.timing.skipped(name);
            return Ok(Dynamic::UNIT);
        }
        // The step's share of the run's time, and the waits on OpenMLDB in it (crate::timing).
        let clock = call.host.timing.step(name);
        call.run(journal.record_step(name, StepState::Started, Duration::ZERO))?;
        call.say(&format!("[{number:>3}] {name} ..."));
        tracing::info!(target: "audit", step = name, state = "started", "step");
        let started = Instant::now();
        let result = block.call_within_context::<Dynamic>(&ctx, ());
        let elapsed = started.elapsed();
        let duration_ms = elapsed.as_millis() as u64;
        match result {
            Ok(value) => {
                call.run(journal.record_step(name, StepState::Done, elapsed))?;
                clock.finish(true);
                call.say(&format!("[{number:>3}] {name}: done in {:.1}s", elapsed.as_secs_f64()));
                tracing::info!(target: "audit", step = name, state = "done", duration_ms, "step");
                Ok(value)
            }
            Err(e) => {
                clock.finish(false);
                call.say(&format!("[{number:>3}] {name}: FAILED after {:.1}s", elapsed.as_secs_f64()));
                tracing::error!(target: "audit", step = name, state = "failed", duration_ms, "step");
                Err(e)
            }
        }
    }

    /// True when the current run already finished step `name`.
    ///
    /// Example: `if !journal::done("nameservers") { print("nameservers still to do"); }`
    #[rhai_fn(volatile, return_raw)]
    pub fn done(ctx: NativeCallContext, name: &str) -> RhaiResultOf<bool> {
        let call = Call::new(&ctx, NS)?;
        let run = call.run(call.upgrader()?.journal.current_run())?;
        Ok(run.is_some_and(|r| r.is_done(name)))
    }

    /// The record of the unfinished run, or () when there is none.
    ///
    /// Example: `let r = journal::run(); if r != () { print(r.name); }`
    #[rhai_fn(volatile, return_raw)]
    pub fn run(ctx: NativeCallContext) -> RhaiResultOf<Dynamic> {
        let call = Call::new(&ctx, NS)?;
        match call.run(call.upgrader()?.journal.current_run())? {
            Some(run) => Ok(to_map(&run)?.into()),
            None => Ok(Dynamic::UNIT),
        }
    }

    /// Records a value durably in the journal (ZooKeeper), outliving the run: e.g. where a backup
    /// went, for a later rollback. Keys are paths like "backup/10.0.0.5:10921".
    /// In --dry-run it records nothing.
    ///
    /// Example: `journal::put("backup/" + ep, component::backup(ep));`
    #[rhai_fn(volatile, return_raw)]
    pub fn put(ctx: NativeCallContext, key: &str, value: Dynamic) -> RhaiResultOf<()> {
        let call = Call::new(&ctx, NS)?;
        let journal = &call.upgrader()?.journal;
        if call.dry_run() {
            return Ok(());
        }
        let json: serde_json::Value = rhai::serde::from_dynamic(&value)?;
        call.run(journal.put(&format!("values/{key}"), &json))
    }

    /// A value recorded with journal::put, or () when there is none.
    ///
    /// Example: `let saved = journal::get("backup/" + ep);`
    #[rhai_fn(volatile, return_raw)]
    pub fn get(ctx: NativeCallContext, key: &str) -> RhaiResultOf<Dynamic> {
        let call = Call::new(&ctx, NS)?;
        let value: Option<serde_json::Value> = call.run(call.upgrader()?.journal.get(&format!("values/{key}")))?;
        value.map_or(Ok(Dynamic::UNIT), rhai::serde::to_dynamic)
    }

    /// Ends the run: its record is removed (the local journal file keeps the history), so the next
    /// run starts afresh. In --dry-run it only ends the plan.
    ///
    /// Example: `journal::finish();`
    #[rhai_fn(volatile, return_raw)]
    pub fn finish(ctx: NativeCallContext) -> RhaiResultOf<()> {
        let call = Call::new(&ctx, NS)?;
        let journal = &call.upgrader()?.journal;
        if call.dry_run() {
            call.say("end of plan");
            return Ok(());
        }
        call.run(journal.finish_run())
    }
}

/// `journal::begin` in a plan: takes nothing, records nothing, and says what the journal holds:
/// a run that holds the lock now, and an unfinished run the plan continues.
fn plan_begin(call: &Call, journal: &Journal, run_name: &str) -> RhaiResultOf<Dynamic> {
    if let Some(holder) = call.run(journal.lock_holder())?.filter(|h| !h.is_me()) {
        let state = if holder.is_gone() { "a process that is gone" } else { "running now" };
        call.say(&format!(
            "NOTE: the cluster's upgrade lock is held by {holder} ({state}); `run` would be refused until it is released"
        ));
    }
    let recorded = call.run(journal.current_run())?;
    match &recorded {
        Some(run) if run.name == run_name => {
            let now = run.current_step().map_or(String::new(), |s| format!(", last at `{s}`"));
            call.say(&format!(
                "plan for `{run_name}`: it continues the unfinished run started {} ({} steps done{now}); done steps are skipped",
                run.started,
                run.done_count()
            ));
        }
        Some(run) => call.say(&format!(
            "plan for `{run_name}`; NOTE: another run is recorded (`{}` started {}): `run` would be refused until \
             that one finishes or `mldb-upgrade abort` unwinds it",
            run.name, run.started
        )),
        None => call.say(&format!("plan for `{run_name}` (dry run: no lock taken, nothing recorded)")),
    }
    let continues = recorded.filter(|r| r.name == run_name);
    *call.host.planned_run.lock().unwrap_or_else(|p| p.into_inner()) = continues;
    Ok(Dynamic::UNIT)
}
