//! `upgrade::`: the operations an upgrade is made of (see `cluster::upgrade`): drain and restore
//! leaders, recover data, verify, and the auto_failover guard. Each returns a map a script can
//! inspect; in --dry-run drain and restore print the exact moves and make none.

use std::sync::Arc;
use std::time::Duration;

use rhai::{Dynamic, EvalAltResult, FnPtr, Map, Module, NativeCallContext};

use super::{duration_arg, Doc, Effect};
use crate::cluster::upgrade::{MoveReport, MoveSettings, Upgrader};
use crate::script::Host;

type Res<T> = Result<T, Box<EvalAltResult>>;

/// Reads `#{single_replica, offset_delta, timeout, catchup_timeout, concurrency}`.
fn settings(options: &Map) -> Res<MoveSettings> {
    let mut s = MoveSettings::default();
    if let Some(v) = options.get("single_replica") {
        s.single_replica = v.clone().into_string()?.parse().map_err(|e: String| -> Box<EvalAltResult> { e.into() })?;
    }
    if let Some(v) = options.get("offset_delta") {
        s.offset_delta = v.as_int().map_err(|t| format!("offset_delta must be an int, not {t}"))?.max(0) as u64;
    }
    if let Some(v) = options.get("timeout") {
        s.op_timeout = duration_arg(&v.clone().into_string()?)?;
    }
    if let Some(v) = options.get("catchup_timeout") {
        s.catchup_timeout = duration_arg(&v.clone().into_string()?)?;
    }
    if let Some(v) = options.get("concurrency") {
        s.concurrency = v.as_int().map_err(|t| format!("concurrency must be an int, not {t}"))?.clamp(1, 64) as usize;
    }
    for key in options.keys() {
        if !["single_replica", "offset_delta", "timeout", "catchup_timeout", "concurrency"].contains(&key.as_str()) {
            return Err(format!(
                "unknown option `{key}`; expected single_replica, offset_delta, timeout, catchup_timeout or concurrency"
            )
            .into());
        }
    }
    Ok(s)
}

fn report(r: &MoveReport) -> Res<Dynamic> {
    rhai::serde::to_dynamic(r)
}

fn say_moves(h: &Host, verb: &str, r: &MoveReport) {
    for m in &r.moves {
        let temp = if m.temp_replica { " (temporary replica)" } else { "" };
        h.say(&format!("[dry-run] {verb} leader of {}.{} pid {}: {} -> {}{temp}", m.db, m.table, m.pid, m.from, m.to));
    }
    for s in &r.skipped {
        h.say(&format!("[dry-run] would leave {}.{} pid {} on {}: {}", s.db, s.table, s.pid, r.tablet, s.reason));
    }
}

fn drain(h: &Host, ctx: &NativeCallContext, tablet: &str, options: Map) -> Res<Dynamic> {
    let settings = settings(&options)?;
    let u = h.upgrader("upgrade::drain_leaders").map_err(|e| e.at(ctx))?;
    if h.dry_run() {
        let mut plan = h.block_on(u.plan_drain(tablet, &settings)).map_err(|e| e.at(ctx))?;
        plan.dry_run = true;
        say_moves(h, "would move", &plan);
        return report(&plan);
    }
    let r = h.block_on(u.drain_leaders(tablet, &settings)).map_err(|e| e.at(ctx))?;
    report(&r)
}

fn restore(h: &Host, ctx: &NativeCallContext, tablet: &str, options: Map) -> Res<Dynamic> {
    let settings = settings(&options)?;
    let u = h.upgrader("upgrade::restore_leaders").map_err(|e| e.at(ctx))?;
    if h.dry_run() {
        let moves = h.block_on(u.recorded_moves(tablet)).map_err(|e| e.at(ctx))?;
        let plan = MoveReport { tablet: tablet.into(), moves, dry_run: true, ..MoveReport::default() };
        for m in &plan.moves {
            let temp =
                if m.temp_replica { format!(", then delete the temporary replica on {}", m.to) } else { String::new() };
            h.say(&format!(
                "[dry-run] would move leader of {}.{} pid {} back: {} -> {}{temp}",
                m.db, m.table, m.pid, m.to, m.from
            ));
        }
        return report(&plan);
    }
    let r = h.block_on(u.restore_leaders(tablet, &settings)).map_err(|e| e.at(ctx))?;
    report(&r)
}

/// Puts auto_failover back when dropped, also while unwinding from a panic.
struct AutoFailoverRestore<'a> {
    host: &'a Host,
    upgrader: &'a Upgrader,
    armed: bool,
}

impl AutoFailoverRestore<'_> {
    fn restore(&mut self) -> Result<Option<bool>, String> {
        self.armed = false;
        self.host
            .block_on_to_completion(async {
                tokio::time::timeout(Duration::from_secs(60), self.upgrader.restore_auto_failover()).await
            })
            .map_err(|_| "no answer from the nameserver within 60s".to_string())?
            .map_err(|e| e.to_string())
    }
}

impl Drop for AutoFailoverRestore<'_> {
    fn drop(&mut self) {
        if self.armed {
            if let Err(e) = self.restore() {
                tracing::error!("could not restore auto_failover: {e}; run `upgrade::restore_auto_failover()`");
            }
        }
    }
}

pub fn module(host: &Arc<Host>) -> Module {
    let mut m = Module::new();
    let h = host.clone();
    Doc::new("drain_leaders", &["tablet: string"], "map", Effect::Changes, "Pre-upgrade: moves every leader off a tablet (internal databases too). Multi-replica\npartitions go to a caught-up follower: the old leader is fenced (it refuses writes), the follower\nis checked to hold all its entries, ChangeLeader, and the old leaders are re-added as followers\n(RecoverEndpoint, or RecoverTable each); single-replica ones get a temporary replica on the healthy tablet with the fewest replicas.\nEvery move is journalled first. auto_failover must be off. Returns #{tablet, moves, skipped, duration_ms}.\n\nExample: `upgrade::with_auto_failover_off(|| upgrade::drain_leaders(ep));`")
        .set_into(&mut m, move |ctx: NativeCallContext, tablet: &str| drain(&h, &ctx, tablet, Map::new()));
    let h = host.clone();
    Doc::new("drain_leaders", &["tablet: string", "options: map"], "map", Effect::Changes, "drain_leaders with options: #{single_replica: \"add_replica\"|\"allow_unavailable\",\noffset_delta: 0, timeout: \"10m\" (per op), catchup_timeout: \"2m\", concurrency: 16}.\n\nExample: `upgrade::drain_leaders(ep, #{single_replica: \"allow_unavailable\"});`")
        .set_into(&mut m, move |ctx: NativeCallContext, tablet: &str, options: Map| drain(&h, &ctx, tablet, options));
    let h = host.clone();
    Doc::new("restore_leaders", &["tablet: string"], "map", Effect::Changes, "Post-upgrade: moves leadership back to the tablet exactly as recorded by drain_leaders, once\neach returning replica is loaded, alive and caught up, and deletes temporary replicas.\nIdempotent: a re-run finishes a partial run. auto_failover must be off.\n\nExample: `upgrade::with_auto_failover_off(|| upgrade::restore_leaders(ep));`")
        .set_into(&mut m, move |ctx: NativeCallContext, tablet: &str| restore(&h, &ctx, tablet, Map::new()));
    let h = host.clone();
    Doc::new("restore_leaders", &["tablet: string", "options: map"], "map", Effect::Changes, "restore_leaders with the options of drain_leaders.\n\nExample: `upgrade::restore_leaders(ep, #{catchup_timeout: \"10m\"});`")
        .set_into(&mut m, move |ctx: NativeCallContext, tablet: &str, options: Map| restore(&h, &ctx, tablet, options));
    let h = host.clone();
    Doc::new("recorded_moves", &["tablet: string"], "array", Effect::ReadOnly, "The leader moves recorded in the journal for a drained tablet (empty once restored).\n\nExample: `print(upgrade::recorded_moves(ep).len());`")
        .set_into(&mut m, move |ctx: NativeCallContext, tablet: &str| -> Res<Dynamic> {
            let u = h.upgrader("upgrade::recorded_moves").map_err(|e| e.at(&ctx))?;
            rhai::serde::to_dynamic(h.block_on(u.recorded_moves(tablet)).map_err(|e| e.at(&ctx))?)
        });
    let h = host.clone();
    Doc::new("drained_tablets", &[], "array", Effect::ReadOnly, "Tablets whose drain is recorded and not yet restored (what a resumed run must finish).\n\nExample: `for ep in upgrade::drained_tablets() { upgrade::restore_leaders(ep); }`")
        .set_into(&mut m, move |ctx: NativeCallContext| -> Res<Dynamic> {
            let u = h.upgrader("upgrade::drained_tablets").map_err(|e| e.at(&ctx))?;
            rhai::serde::to_dynamic(h.block_on(u.drained_tablets()).map_err(|e| e.at(&ctx))?)
        });
    let h = host.clone();
    Doc::new("recover_data", &[], "map", Effect::Changes, "The documented recoverdata, after tablets restarted with auto_failover off: each broken\npartition gets the freshest replica (by offset) as leader, loaded and marked alive, and the\nothers are rebuilt by RecoverTable. Returns partitions recovered per table.\n\nExample: `upgrade::with_auto_failover_off(|| upgrade::recover_data());`")
        .set_into(&mut m, move |ctx: NativeCallContext| -> Res<Dynamic> {
            let u = h.upgrader("upgrade::recover_data").map_err(|e| e.at(&ctx))?;
            if h.dry_run() {
                h.say("[dry-run] would recover every partition with a replica that is not alive or not loaded");
                return Ok(Map::new().into());
            }
            let touched = h.block_on(u.recover_data(Duration::from_secs(600))).map_err(|e| e.at(&ctx))?;
            for (table, n) in &touched {
                h.say(&format!("recovered {n} partitions of {table}"));
            }
            rhai::serde::to_dynamic(touched)
        });
    let h = host.clone();
    Doc::new("verify", &["since_op_id: int"], "map", Effect::ReadOnly, "Checks the cluster: #{healthy, failed_ops, pending_ops, partitions_not_alive,\npartitions_without_leader, mismatches, unhealthy_tablets, rows}. Ops count from `since_op_id`.\n\nExample: `let v = upgrade::verify(start_op); if !v.healthy { throw v; }`")
        .set_into(&mut m, move |ctx: NativeCallContext, since: i64| -> Res<Dynamic> {
            let u = h.upgrader("upgrade::verify").map_err(|e| e.at(&ctx))?;
            rhai::serde::to_dynamic(h.block_on(u.verify(since.max(0) as u64)).map_err(|e| e.at(&ctx))?)
        });
    let h = host.clone();
    Doc::new("with_auto_failover_off", &["block: Fn"], "?", Effect::Changes, "Runs `block` with auto_failover off and puts the original value back on every way out:\nsuccess, error, Ctrl-C, panic. The original value is recorded in ZooKeeper first, so after a\nkilled run the next run (or restore_auto_failover) restores it. Returns what `block` returns.\n\nExample: `upgrade::with_auto_failover_off(|| { upgrade::drain_leaders(ep); });`")
        .set_into(&mut m, move |ctx: NativeCallContext, block: FnPtr| -> Res<Dynamic> {
            let u = h.upgrader("upgrade::with_auto_failover_off").map_err(|e| e.at(&ctx))?;
            if h.dry_run() {
                h.say("[dry-run] would turn auto_failover off (recording its value) and restore it afterwards");
                return block.call_within_context(&ctx, ());
            }
            let original = h.block_on(u.disable_auto_failover()).map_err(|e| e.at(&ctx))?;
            tracing::debug!("auto_failover off (was {original})");
            let mut guard = AutoFailoverRestore { host: &h, upgrader: u, armed: true };
            let result = block.call_within_context::<Dynamic>(&ctx, ());
            let restored = guard.restore();
            match (result, restored) {
                (Ok(v), Ok(_)) => Ok(v),
                (Ok(_), Err(e)) => Err(format!("could not restore auto_failover: {e}; run upgrade::restore_auto_failover()").into()),
                (Err(e), _) => Err(e),
            }
        });
    let h = host.clone();
    Doc::new("disable_auto_failover", &[], "bool", Effect::Changes, "Turns auto_failover off after recording its value in the journal (kept if an earlier run\nalready recorded one); returns the original value. Pair it with restore_auto_failover, which\nevery stock script also calls first, so a killed run never leaves it off.\n\nExample: `upgrade::disable_auto_failover(); /* ... */ upgrade::restore_auto_failover();`")
        .set_into(&mut m, move |ctx: NativeCallContext| -> Res<bool> {
            let u = h.upgrader("upgrade::disable_auto_failover").map_err(|e| e.at(&ctx))?;
            if h.dry_run() {
                h.say("[dry-run] would turn auto_failover off (recording its value)");
                return Ok(false);
            }
            h.block_on(u.disable_auto_failover()).map_err(|e| e.at(&ctx))
        });
    let h = host.clone();
    Doc::new("restore_auto_failover", &[], "bool or ()", Effect::Changes, "Puts auto_failover back to the value recorded when an earlier run turned it off, and forgets\nthe record; () when nothing was recorded. Stock scripts call it first, so a killed run is healed.\n\nExample: `upgrade::restore_auto_failover();`")
        .set_into(&mut m, move |ctx: NativeCallContext| -> Res<Dynamic> {
            let u = h.upgrader("upgrade::restore_auto_failover").map_err(|e| e.at(&ctx))?;
            if h.dry_run() {
                h.say("[dry-run] would restore auto_failover to its recorded value, if any");
                return Ok(Dynamic::UNIT);
            }
            Ok(h.block_on(u.restore_auto_failover()).map_err(|e| e.at(&ctx))?.map_or(Dynamic::UNIT, Dynamic::from))
        });
    m
}
