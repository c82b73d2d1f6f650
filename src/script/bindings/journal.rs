//! `journal::`: making a script resumable. `journal::begin` takes the cluster's lock and starts
//! (or resumes) a run; `journal::step` runs a block once per run, recording it before and after,
//! so re-running the same command skips what is done. Each step prints one progress line with
//! its elapsed time and emits a structured log event (the audit log with `--log-format json`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rhai::{Dynamic, EvalAltResult, FnPtr, Module, NativeCallContext};

use super::{Doc, Effect};
use crate::script::Host;

type Res<T> = Result<T, Box<EvalAltResult>>;

pub fn module(host: &Arc<Host>) -> Module {
    let mut m = Module::new();
    let counter = Arc::new(AtomicUsize::new(0));
    let h = host.clone();
    Doc::new("begin", &["run_name: string"], "map", Effect::Changes, "Takes the cluster's upgrade lock (refused, naming the holder, while another run holds it)\nand starts the run `run_name`, or resumes it when it is the unfinished one. A different\nunfinished run is refused. Returns the run record #{name, started, steps, order}.\n\nExample: `journal::begin(\"upgrade to \" + setting(\"release\"));`")
        .set_into(&mut m, move |ctx: NativeCallContext, name: &str| -> Res<Dynamic> {
            let u = h.upgrader("journal::begin").map_err(|e| e.at(&ctx))?;
            if h.dry_run() {
                h.say(&format!("plan for `{name}` (dry run: no lock taken, nothing recorded)"));
                return Ok(Dynamic::UNIT);
            }
            let command: Vec<String> = std::env::args().collect();
            let holder = h.block_on(u.journal.lock(&command.join(" "), Duration::from_secs(30))).map_err(|e| e.at(&ctx))?;
            let run = h.block_on(u.journal.begin_run(name)).map_err(|e| e.at(&ctx))?;
            let done = run.steps.values().filter(|s| s.state == "done").count();
            if done > 0 {
                h.say(&format!("resuming `{name}` started {}: {done} steps already done", run.started));
            } else {
                h.say(&format!("run `{name}` (lock held by {holder})"));
            }
            rhai::serde::to_dynamic(&run)
        });
    let h = host.clone();
    Doc::new("lock", &[], "()", Effect::Changes, "Takes the cluster's upgrade lock without starting a run (journal::begin takes it too); held\nuntil mldb-upgrade exits. Refused, naming the holder, while another run holds it.\n\nExample: `journal::lock(); upgrade::restore_auto_failover();`")
        .set_into(&mut m, move |ctx: NativeCallContext| -> Res<()> {
            let u = h.upgrader("journal::lock").map_err(|e| e.at(&ctx))?;
            if h.dry_run() {
                return Ok(());
            }
            let command: Vec<String> = std::env::args().collect();
            h.block_on(u.journal.lock(&command.join(" "), Duration::from_secs(30))).map_err(|e| e.at(&ctx))?;
            Ok(())
        });
    let h = host.clone();
    let n = counter.clone();
    Doc::new("step", &["name: string", "block: Fn"], "?", Effect::Changes, "Runs `block` as the step `name` unless this run already did it: records it as started,\nruns it, records it as done, printing one line with the elapsed time. A failed step stays\n\"started\" and runs again when the command is re-run. Returns what `block` returns (() when skipped).\n\nExample: `journal::step(\"tablet \" + ep + \": drain leaders\", || upgrade::drain_leaders(ep));`")
        .set_into(&mut m, move |ctx: NativeCallContext, name: &str, block: FnPtr| -> Res<Dynamic> {
            let number = n.fetch_add(1, Ordering::SeqCst) + 1;
            if h.dry_run() {
                h.say(&format!("step {number:>3}: {name}"));
                return block.call_within_context(&ctx, ());
            }
            let u = h.upgrader("journal::step").map_err(|e| e.at(&ctx))?;
            let run = h.block_on(u.journal.current_run()).map_err(|e| e.at(&ctx))?;
            if run.as_ref().and_then(|r| r.steps.get(name)).is_some_and(|s| s.state == "done") {
                h.say(&format!("[{number:>3}] {name}: done in an earlier run, skipped"));
                tracing::info!(target: "audit", step = name, state = "skipped", "step");
                return Ok(Dynamic::UNIT);
            }
            h.block_on(u.journal.record_step(name, "started", Duration::ZERO)).map_err(|e| e.at(&ctx))?;
            h.say(&format!("[{number:>3}] {name} ..."));
            tracing::info!(target: "audit", step = name, state = "started", "step");
            let started = Instant::now();
            let result = block.call_within_context::<Dynamic>(&ctx, ());
            let elapsed = started.elapsed();
            match result {
                Ok(value) => {
                    h.block_on(u.journal.record_step(name, "done", elapsed)).map_err(|e| e.at(&ctx))?;
                    h.say(&format!("[{number:>3}] {name}: done in {:.1}s", elapsed.as_secs_f64()));
                    tracing::info!(target: "audit", step = name, state = "done", duration_ms = elapsed.as_millis() as u64, "step");
                    Ok(value)
                }
                Err(e) => {
                    h.say(&format!("[{number:>3}] {name}: FAILED after {:.1}s", elapsed.as_secs_f64()));
                    tracing::error!(target: "audit", step = name, state = "failed", duration_ms = elapsed.as_millis() as u64, "step");
                    Err(e)
                }
            }
        });
    let h = host.clone();
    Doc::new("done", &["name: string"], "bool", Effect::ReadOnly, "True when the current run already finished step `name`.\n\nExample: `if !journal::done(\"nameservers\") { print(\"nameservers still to do\"); }`")
        .set_into(&mut m, move |ctx: NativeCallContext, name: &str| -> Res<bool> {
            let u = h.upgrader("journal::done").map_err(|e| e.at(&ctx))?;
            let run = h.block_on(u.journal.current_run()).map_err(|e| e.at(&ctx))?;
            Ok(run.and_then(|r| r.steps.get(name).map(|s| s.state == "done")).unwrap_or(false))
        });
    let h = host.clone();
    Doc::new("run", &[], "map or ()", Effect::ReadOnly, "The record of the unfinished run, or () when there is none.\n\nExample: `let r = journal::run(); if r != () { print(r.name); }`")
        .set_into(&mut m, move |ctx: NativeCallContext| -> Res<Dynamic> {
            let u = h.upgrader("journal::run").map_err(|e| e.at(&ctx))?;
            match h.block_on(u.journal.current_run()).map_err(|e| e.at(&ctx))? {
                Some(run) => rhai::serde::to_dynamic(&run),
                None => Ok(Dynamic::UNIT),
            }
        });
    let h = host.clone();
    Doc::new("put", &["key: string", "value: ?"], "()", Effect::Changes, "Records a value durably in the journal (ZooKeeper), outliving the run: e.g. where a backup\nwent, for a later rollback. Keys are paths like \"backup/10.0.0.5:10921\".\n\nExample: `journal::put(\"backup/\" + ep, component::backup(ep));`")
        .set_into(&mut m, move |ctx: NativeCallContext, key: &str, value: Dynamic| -> Res<()> {
            let u = h.upgrader("journal::put").map_err(|e| e.at(&ctx))?;
            if h.dry_run() {
                return Ok(());
            }
            let json: serde_json::Value = rhai::serde::from_dynamic(&value)?;
            h.block_on(u.journal.put(&format!("values/{key}"), &json)).map_err(|e| e.at(&ctx))
        });
    let h = host.clone();
    Doc::new("get", &["key: string"], "?", Effect::ReadOnly, "A value recorded with journal::put, or () when there is none.\n\nExample: `let saved = journal::get(\"backup/\" + ep);`")
        .set_into(&mut m, move |ctx: NativeCallContext, key: &str| -> Res<Dynamic> {
            let u = h.upgrader("journal::get").map_err(|e| e.at(&ctx))?;
            let value: Option<serde_json::Value> = h.block_on(u.journal.get(&format!("values/{key}"))).map_err(|e| e.at(&ctx))?;
            value.map_or(Ok(Dynamic::UNIT), rhai::serde::to_dynamic)
        });
    let h = host.clone();
    Doc::new("finish", &[], "()", Effect::Changes, "Ends the run: its record is removed (the local journal file keeps the history), so the next\nrun starts afresh.\n\nExample: `journal::finish();`")
        .set_into(&mut m, move |ctx: NativeCallContext| -> Res<()> {
            let u = h.upgrader("journal::finish").map_err(|e| e.at(&ctx))?;
            if h.dry_run() {
                h.say("end of plan");
                return Ok(());
            }
            h.block_on(u.journal.finish_run()).map_err(|e| e.at(&ctx))
        });
    m
}
