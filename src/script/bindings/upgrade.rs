//! `upgrade::`: the operations an upgrade is made of ([`crate::cluster::upgrade`]): drain and
//! restore leaders, recover data, the baseline and verify, and the auto_failover guard. Each
//! returns a map a script can inspect; in --dry-run drain and restore print the exact moves and
//! make none. `upgrade::timing()` says where the run's time went ([`crate::timing`]).

use super::{string_list, to_array, to_map, Call, Options, RhaiResultOf};
use crate::cluster::upgrade::recover::DownLeaders;
use crate::cluster::upgrade::{MoveReport, MoveSettings, SingleReplicaPolicy, Upgrader};
use crate::script::Host;
use rhai::plugin::*;
use rhai::{Array, Dynamic, FnPtr, Map};
use std::time::Duration;

const NS: &str = "upgrade";

/// How long recover_data gives one load or op.
const RECOVER_TIMEOUT: Duration = Duration::from_secs(600);

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

#[export_module]
pub mod api {
    use super::*;

    /// Pre-upgrade: moves every leader off a tablet (internal databases too). Multi-replica
    /// partitions go to a caught-up follower: the old leader is fenced (it refuses writes), the
    /// follower is checked to hold all its entries, ChangeLeader, and the old leaders are re-added
    /// as followers (RecoverEndpoint, or RecoverTable each); single-replica ones get a temporary
    /// replica on the healthy tablet with the fewest replicas. Every move is journalled first.
    /// auto_failover must be off. Returns #{tablet, moves, skipped, duration_ms, dry_run}; each
    /// move has `stall_ms`, how long writes to its partition were refused by the switch.
    /// Changes the cluster: in --dry-run it prints the moves and makes none.
    ///
    /// Example: `upgrade::with_auto_failover_off(|| upgrade::drain_leaders(ep));`
    #[rhai_fn(volatile, return_raw)]
    pub fn drain_leaders(ctx: NativeCallContext, tablet: &str) -> RhaiResultOf<Map> {
        drain(&Call::new(&ctx, NS)?, tablet, &Map::new())
    }

    /// drain_leaders with options: #{single_replica: "add_replica"|"allow_unavailable",
    /// offset_delta: 0, timeout: "10m" (per op), catchup_timeout: "2m", concurrency: 16,
    /// avoid: [tablets], readd_followers: true}. `avoid` lists tablets that take no leader and
    /// no temporary replica (the rest of a batch going down with this one): a partition whose
    /// other alive replicas are all there is refused before any move. `readd_followers: false`
    /// is for a tablet stopped right after the drain: the replaced leaders stay fenced (they
    /// refuse writes) and marked not alive until recover_data after its restart, instead of
    /// each getting a RecoverTable op that the stop makes moot; and the term each of its
    /// followers answers is recorded, so that recover_data can attach them to their leaders.
    /// Changes the cluster: in --dry-run it prints the moves and makes none.
    ///
    /// Example: `upgrade::drain_leaders(ep, #{single_replica: "allow_unavailable"});`
    #[rhai_fn(name = "drain_leaders", volatile, return_raw)]
    pub fn drain_leaders_with(ctx: NativeCallContext, tablet: &str, options: Map) -> RhaiResultOf<Map> {
        drain(&Call::new(&ctx, NS)?, tablet, &options)
    }

    /// Starts adding, in the background, the temporary replicas drain_leaders(tablet, options)
    /// would add for the tablet's single-replica partitions (AddReplica ops, recorded as that
    /// drain's moves; no leader moves), and returns at once. drain_leaders(tablet) and verify
    /// wait for them; a failure is logged and the drain adds what is missing. For the tablet
    /// after the one about to stop (name that one in `avoid`): its AddReplicas, about 10 s each
    /// at OpenMLDB's timing, then run while the nameserver has nothing else of the run to do.
    /// Options as drain_leaders. auto_failover must be off. In --dry-run it does nothing (the
    /// drain's plan shows the temporary replicas).
    ///
    /// Example: `upgrade::prepare_drain(next, #{avoid: [ep]}); component::stop(ep);`
    #[rhai_fn(volatile, return_raw)]
    pub fn prepare_drain(ctx: NativeCallContext, tablet: &str, options: Map) -> RhaiResultOf<()> {
        let call = Call::new(&ctx, NS)?;
        let settings = drain_settings(&call, &options)?;
        if call.dry_run() {
            return Ok(());
        }
        let upgrader = call.upgrader()?;
        call.run(upgrader.start_adding_temp_replicas(tablet, &settings))
    }

    /// Waits until the temporary replicas prepare_drain(tablet) is adding are added (or their
    /// AddReplica ops failed: that is logged, and the drain adds what is missing). Call it before
    /// stopping the nameserver leader, which runs their ops. Returns at once when nothing is
    /// being added for the tablet.
    ///
    /// Example: `upgrade::prepare_drain(first, #{}); /* restart a standby */ upgrade::wait_prepared_drain(first);`
    #[rhai_fn(volatile, return_raw)]
    pub fn wait_prepared_drain(ctx: NativeCallContext, tablet: &str) -> RhaiResultOf<()> {
        let call = Call::new(&ctx, NS)?;
        if call.dry_run() {
            return Ok(());
        }
        let upgrader = call.upgrader()?;
        call.run(async {
            upgrader.wait_temp_replicas(Some(tablet)).await;
            Ok::<_, String>(())
        })
    }

    /// Post-upgrade: moves leadership back to the tablet exactly as recorded by drain_leaders,
    /// once each returning replica is loaded, alive and caught up, and deletes temporary replicas.
    /// Idempotent: a re-run finishes a partial run. auto_failover must be off.
    /// Changes the cluster: in --dry-run it prints the moves and makes none.
    ///
    /// Example: `upgrade::with_auto_failover_off(|| upgrade::restore_leaders(ep));`
    #[rhai_fn(volatile, return_raw)]
    pub fn restore_leaders(ctx: NativeCallContext, tablet: &str) -> RhaiResultOf<Map> {
        restore(&Call::new(&ctx, NS)?, tablet, &Map::new())
    }

    /// restore_leaders with the options of drain_leaders but `readd_followers`: the leaders it
    /// replaces (on tablets that keep running) are always re-added as followers.
    /// Changes the cluster: in --dry-run it prints the moves and makes none.
    ///
    /// Example: `upgrade::restore_leaders(ep, #{catchup_timeout: "10m"});`
    #[rhai_fn(name = "restore_leaders", volatile, return_raw)]
    pub fn restore_leaders_with(ctx: NativeCallContext, tablet: &str, options: Map) -> RhaiResultOf<Map> {
        restore(&Call::new(&ctx, NS)?, tablet, &options)
    }

    /// Leaders that are not on the tablet that led them when the run recorded its baseline
    /// (pre-flight), where that tablet still holds an alive replica: moved by the nameserver's
    /// failover while a tablet was down. The same maps as recorded_moves (`from` is the tablet to
    /// go back to, `to` the leader now); empty without a baseline.
    ///
    /// Example: `print(upgrade::displaced_leaders().len());`
    #[rhai_fn(volatile, return_raw)]
    pub fn displaced_leaders(ctx: NativeCallContext) -> RhaiResultOf<Array> {
        let call = Call::new(&ctx, NS)?;
        to_array(call.run(call.upgrader()?.displaced_leaders())?)
    }

    /// Moves every displaced leader (displaced_leaders) back where it was at pre-flight, the way
    /// restore_leaders moves a drained tablet's leaders home. Options as drain_leaders.
    /// Idempotent. auto_failover must be off.
    /// Changes the cluster: in --dry-run it prints the moves and makes none.
    ///
    /// Example: `upgrade::with_auto_failover_off(|| upgrade::restore_placement(#{}));`
    #[rhai_fn(volatile, return_raw)]
    pub fn restore_placement(ctx: NativeCallContext, options: Map) -> RhaiResultOf<Map> {
        let call = Call::new(&ctx, NS)?;
        let settings = move_settings(&call, &options)?;
        let upgrader = call.upgrader()?;
        if !call.dry_run() {
            return to_map(&call.run(upgrader.restore_placement(&settings))?);
        }
        let moves = call.run(upgrader.displaced_leaders())?;
        for m in &moves {
            call.say(&format!(
                "[dry-run] would move leader of {}.{} pid {} back where it was at pre-flight: {} -> {}",
                m.db, m.table, m.pid, m.to, m.from
            ));
        }
        to_map(&MoveReport { tablet: "the pre-flight placement".into(), moves, dry_run: true, ..MoveReport::default() })
    }

    /// The leader moves recorded in the journal for a drained tablet (empty once restored):
    /// #{db, table, tid, pid, from, to, temp_replica, state, stall_ms, fence_attempts}: stall_ms is
    /// how long writes to the partition were refused by its switch (set once it switched).
    ///
    /// Example: `print(upgrade::recorded_moves(ep).len());`
    #[rhai_fn(volatile, return_raw)]
    pub fn recorded_moves(ctx: NativeCallContext, tablet: &str) -> RhaiResultOf<Array> {
        let call = Call::new(&ctx, NS)?;
        to_array(call.run(call.upgrader()?.recorded_moves(tablet))?)
    }

    /// Tablets whose drain is recorded and not yet restored (what a resumed run must finish).
    ///
    /// Example: `for ep in upgrade::drained_tablets() { upgrade::restore_leaders(ep); }`
    #[rhai_fn(volatile, return_raw)]
    pub fn drained_tablets(ctx: NativeCallContext) -> RhaiResultOf<Array> {
        let call = Call::new(&ctx, NS)?;
        Ok(call.run(call.upgrader()?.drained_tablets())?.into_iter().map(Dynamic::from).collect())
    }

    /// The documented recoverdata, after tablets restarted with auto_failover off: each broken
    /// partition gets the freshest replica (by offset) as leader, loaded and marked alive, and the
    /// others are rebuilt by RecoverTable; a follower whose term, recorded by the drain before
    /// its tablet stopped, is still its partition's last is attached to its leader directly.
    /// Returns partitions recovered per table.
    /// Changes the cluster: in --dry-run it says what it would recover and does nothing.
    ///
    /// A partition whose leader's tablet is down gets the freshest replica on a healthy tablet
    /// too (what the dead leader had not replicated yet is given up); recover_data(#{down_leaders:
    /// "wait"}) leaves it for that tablet's restart instead.
    ///
    /// Example: `upgrade::with_auto_failover_off(|| upgrade::recover_data());`
    #[rhai_fn(volatile, return_raw)]
    pub fn recover_data(ctx: NativeCallContext) -> RhaiResultOf<Map> {
        recover(&Call::new(&ctx, NS)?, DownLeaders::Replace)
    }

    /// recover_data with options: #{down_leaders: "replace" (default) | "wait"}. "wait" leaves
    /// every partition whose leader's tablet is down as it is, to be recovered from that leader
    /// once its tablet runs again (nothing it acknowledged is lost); the stock flow uses it.
    /// Changes the cluster: in --dry-run it says what it would recover and does nothing.
    ///
    /// Example: `upgrade::recover_data(#{down_leaders: "wait"});`
    #[rhai_fn(name = "recover_data", volatile, return_raw)]
    pub fn recover_data_with(ctx: NativeCallContext, options: Map) -> RhaiResultOf<Map> {
        let call = Call::new(&ctx, NS)?;
        let mode = match options.get("down_leaders").map(|v| v.to_string()).as_deref() {
            None | Some("replace") => DownLeaders::Replace,
            Some("wait") => DownLeaders::Wait,
            Some(other) => {
                return Err(call.fail(format!("down_leaders must be \"replace\" or \"wait\", not {other:?}")));
            }
        };
        if let Some(key) = options.keys().find(|k| k.as_str() != "down_leaders") {
            return Err(call.fail(format!("recover_data has no option {key:?}; it takes down_leaders")));
        }
        recover(&call, mode)
    }

    /// Checks the cluster: #{healthy, failed_ops, pending_ops, partitions_not_alive,
    /// partitions_without_leader, mismatches, unhealthy_tablets, replica_counts, stale_tablets,
    /// offsets_lost, rows_lost, baseline, notes, rows, summary}, each problem list naming the
    /// partition, op or tablet. Ops count from `since_op_id`. When this run recorded a baseline
    /// (record_baseline), offsets_lost lists partitions whose leader is below the offset its
    /// leader had then, rows_lost tables that took writes and have fewer rows (not compared for
    /// tables whose TTL expires rows, nor for disk tables: notes says so); `baseline` says
    /// whether they were compared. `summary` is one line per kind of problem with what to do.
    ///
    /// Example: `let v = upgrade::verify(start_op); if !v.healthy { throw v.summary; }`
    #[rhai_fn(volatile, return_raw)]
    pub fn verify(ctx: NativeCallContext, since_op_id: i64) -> RhaiResultOf<Map> {
        let call = Call::new(&ctx, NS)?;
        to_map(&call.run(call.upgrader()?.verify(since_op_id.max(0) as u64))?)
    }

    /// Records the run's baseline for verify: every partition's leader offset and every table's
    /// rows, as the leaders report them (GetTableStatus), one journal node per table; replaces
    /// one recorded before in this run. Returns #{tables, partitions, without_leader,
    /// rows_not_compared, dry_run}: rows_not_compared names the tables whose rows can shrink on
    /// their own (a TTL that expires rows, a disk table's estimated count), for which verify
    /// compares offsets only. Changes the journal: in --dry-run it reads the cluster and records
    /// nothing.
    ///
    /// Example: `let b = upgrade::record_baseline(); print(b.partitions + " partitions recorded");`
    #[rhai_fn(volatile, return_raw)]
    pub fn record_baseline(ctx: NativeCallContext) -> RhaiResultOf<Map> {
        let call = Call::new(&ctx, NS)?;
        let dry_run = call.dry_run();
        let report = call.run(call.upgrader()?.record_baseline(dry_run))?;
        if dry_run {
            call.say(&format!(
                "[dry-run] would record the leader offsets of {} partitions and the rows of {} tables",
                report.partitions, report.tables
            ));
        }
        to_map(&report)
    }

    /// Where this run's time went so far, as printed at the end of every run: #{run_ms,
    /// waiting_ms, own_ms, lower_bound_ms, ratio, resumed, skipped_steps, rows, steps,
    /// between_steps}. `waiting_ms` is time spent waiting on OpenMLDB (ops queued or running,
    /// replicas loading, followers catching up, ZooKeeper sessions expiring, processes stopping
    /// and starting), `own_ms` the rest (our own work and polling). `rows` are the phases, each
    /// followed by its components (#{phase, component, total_ms, waiting_ms, own_ms,
    /// waiting_for, lower_bound, skipped_steps, failed}); `steps` the same per journal::step.
    /// `lower_bound` sums, per component, its waits to stop and start and per step its slowest
    /// partition load and ChangeLeader op out and back; `ratio` is run_ms / lower_bound_ms (()
    /// while the lower bound is 0). Steps skipped by a resumed run count as 0.
    ///
    /// Example: `let t = upgrade::timing(); print("waited on OpenMLDB " + t.waiting_ms + " ms of " + t.run_ms);`
    #[rhai_fn(volatile, return_raw)]
    pub fn timing(ctx: NativeCallContext) -> RhaiResultOf<Map> {
        let call = Call::new(&ctx, NS)?;
        to_map(&call.host.timing.report())
    }

    /// Runs `block` with auto_failover off and puts the original value back on every way out:
    /// success, error, Ctrl-C, panic. The original value is recorded in ZooKeeper first, so after
    /// a killed run the next run (or restore_auto_failover) restores it. Returns what `block`
    /// returns. Changes the cluster: in --dry-run it only says so and runs `block` (in dry-run).
    ///
    /// Example: `upgrade::with_auto_failover_off(|| { upgrade::drain_leaders(ep); });`
    #[rhai_fn(volatile, return_raw)]
    pub fn with_auto_failover_off(ctx: NativeCallContext, block: FnPtr) -> RhaiResultOf<Dynamic> {
        let call = Call::new(&ctx, NS)?;
        let upgrader = call.upgrader()?;
        if call.dry_run() {
            call.say("[dry-run] would turn auto_failover off (recording its value) and restore it afterwards");
            return block.call_within_context(&ctx, ());
        }
        let original = call.run(upgrader.disable_auto_failover())?;
        tracing::debug!("auto_failover off (was {original})");
        let mut guard = AutoFailoverRestore { host: &call.host, upgrader, armed: true };
        let result = block.call_within_context::<Dynamic>(&ctx, ());
        let restored = guard.restore();
        match (result, restored) {
            (Ok(v), Ok(_)) => Ok(v),
            (Ok(_), Err(e)) => {
                Err(call.fail(format!("could not restore auto_failover: {e}; run upgrade::restore_auto_failover()")))
            }
            (Err(e), _) => Err(e),
        }
    }

    /// Turns auto_failover off after recording its value in the journal (kept if an earlier run
    /// already recorded one); returns the original value. Pair it with restore_auto_failover,
    /// which every stock script also calls first, so a killed run never leaves it off.
    /// Changes the cluster: in --dry-run it prints what it would do and does nothing.
    ///
    /// Example: `upgrade::disable_auto_failover(); /* ... */ upgrade::restore_auto_failover();`
    #[rhai_fn(volatile, return_raw)]
    pub fn disable_auto_failover(ctx: NativeCallContext) -> RhaiResultOf<bool> {
        let call = Call::new(&ctx, NS)?;
        let upgrader = call.upgrader()?;
        if call.dry_run() {
            call.say("[dry-run] would turn auto_failover off (recording its value)");
            return Ok(false);
        }
        call.run(upgrader.disable_auto_failover())
    }

    /// Groups tablets (endpoints, in the order given) into batches that may be upgraded at the
    /// same time: in each, every partition keeps an alive replica on a healthy tablet outside
    /// the batch, or has a single alive replica the single-replica policy covers (a temporary
    /// replica outside the batch, or unavailable). Options: #{single_replica:
    /// "add_replica"|"allow_unavailable", max: 0 (tablets per batch; 0: as many as is safe)}.
    /// Returns an array of arrays of endpoints; reads the placement, changes nothing.
    ///
    /// Example: `for b in upgrade::tablet_batches(["a:9527", "b:9527"], #{max: 2}) { print(b); }`
    #[rhai_fn(volatile, return_raw)]
    pub fn tablet_batches(ctx: NativeCallContext, tablets: Array, options: Map) -> RhaiResultOf<Array> {
        let call = Call::new(&ctx, NS)?;
        let (policy, max) = batch_options(&call, &options, true)?;
        let tablets = string_list(&call, tablets, "tablets")?;
        let batches = call.run(call.upgrader()?.tablet_batches(&tablets, policy, max))?;
        Ok(batches.into_iter().map(|b| Dynamic::from_array(b.into_iter().map(Dynamic::from).collect())).collect())
    }

    /// Checks on the placement now that the tablets may go down together (the rule of
    /// tablet_batches); throws, listing the partitions that would lose every alive replica,
    /// when they may not. Options: #{single_replica}. Changes nothing.
    ///
    /// Example: `upgrade::check_batch(batch, #{single_replica: "add_replica"});`
    #[rhai_fn(volatile, return_raw)]
    pub fn check_batch(ctx: NativeCallContext, tablets: Array, options: Map) -> RhaiResultOf<()> {
        let call = Call::new(&ctx, NS)?;
        let (policy, _) = batch_options(&call, &options, false)?;
        let tablets = string_list(&call, tablets, "tablets")?;
        call.run(call.upgrader()?.check_batch(&tablets, policy))
    }

    /// Tablets that are down (offline for the nameserver, or not answering) while the nameserver
    /// records them as the leader of partitions: #{tablet, partitions}. While there are any,
    /// restore_auto_failover refuses to turn auto_failover on (the failover would lose the
    /// writes they acknowledged last).
    ///
    /// Example: `for d in upgrade::down_leaders() { print(`${d.tablet} leads ${d.partitions}`); }`
    #[rhai_fn(volatile, return_raw)]
    pub fn down_leaders(ctx: NativeCallContext) -> RhaiResultOf<Array> {
        let call = Call::new(&ctx, NS)?;
        let down = call.run(call.upgrader()?.leaders_on_down_tablets())?;
        Ok(down
            .into_iter()
            .map(|(tablet, partitions)| {
                let mut m = Map::new();
                m.insert("tablet".into(), tablet.into());
                m.insert("partitions".into(), (partitions as i64).into());
                Dynamic::from_map(m)
            })
            .collect())
    }

    /// Puts auto_failover back to the value recorded when an earlier run turned it off, and
    /// forgets the record; () when nothing was recorded. Fails, keeping it off, while a tablet
    /// that leads partitions is down (down_leaders), saying what to do. Stock scripts call it first, so a killed
    /// run is healed. Changes the cluster: in --dry-run it prints what it would do and does nothing.
    ///
    /// Example: `upgrade::restore_auto_failover();`
    #[rhai_fn(volatile, return_raw)]
    pub fn restore_auto_failover(ctx: NativeCallContext) -> RhaiResultOf<Dynamic> {
        let call = Call::new(&ctx, NS)?;
        let upgrader = call.upgrader()?;
        if call.dry_run() {
            call.say("[dry-run] would restore auto_failover to its recorded value, if any");
            return Ok(Dynamic::UNIT);
        }
        Ok(call.run(upgrader.restore_auto_failover())?.map_or(Dynamic::UNIT, Dynamic::from))
    }
}

/// The `single_replica` option, the default policy when absent.
fn single_replica(call: &Call, options: &Options) -> RhaiResultOf<SingleReplicaPolicy> {
    match options.string("single_replica")? {
        Some(text) => text.parse().map_err(|e: String| call.fail(e)),
        None => Ok(MoveSettings::default().single_replica),
    }
}

/// Reads `#{single_replica}` and, when `with_max`, `#{max}` (0 when absent).
fn batch_options(call: &Call, options: &Map, with_max: bool) -> RhaiResultOf<(SingleReplicaPolicy, usize)> {
    let known: &[&str] = if with_max { &["single_replica", "max"] } else { &["single_replica"] };
    let options = Options::new(call, options, known)?;
    let policy = single_replica(call, &options)?;
    let max = options.int("max")?.unwrap_or(0);
    if max < 0 {
        return Err(call.fail(format!("{}: option max must be 0 (no limit) or more, not {max}", call.name)));
    }
    Ok((policy, max as usize))
}

/// The options every leader move takes.
const MOVE_OPTIONS: [&str; 6] =
    ["single_replica", "offset_delta", "timeout", "catchup_timeout", "concurrency", "avoid"];

/// Reads `#{single_replica, offset_delta, timeout, catchup_timeout, concurrency, avoid}`.
fn move_settings(call: &Call, options: &Map) -> RhaiResultOf<MoveSettings> {
    move_settings_of(call, &Options::new(call, options, &MOVE_OPTIONS)?)
}

/// Reads the options of a drain: those of [`move_settings`] and `#{readd_followers}`.
fn drain_settings(call: &Call, options: &Map) -> RhaiResultOf<MoveSettings> {
    let mut known = MOVE_OPTIONS.to_vec();
    known.push("readd_followers");
    let options = Options::new(call, options, &known)?;
    let readd_replaced = options.flag_or("readd_followers", true)?;
    Ok(MoveSettings { readd_replaced, ..move_settings_of(call, &options)? })
}

/// The settings [`MOVE_OPTIONS`] give, from options already checked against the known keys.
fn move_settings_of(call: &Call, options: &Options) -> RhaiResultOf<MoveSettings> {
    let defaults = MoveSettings::default();
    Ok(MoveSettings {
        single_replica: single_replica(call, options)?,
        offset_delta: options.int("offset_delta")?.map_or(defaults.offset_delta, |d| d.max(0) as u64),
        catchup_timeout: options.duration("catchup_timeout", defaults.catchup_timeout)?,
        op_timeout: options.duration("timeout", defaults.op_timeout)?,
        concurrency: options.int("concurrency")?.map_or(defaults.concurrency, |c| c.clamp(1, 64) as usize),
        avoid: options.strings("avoid")?.into_iter().collect(),
        ..defaults
    })
}

fn drain(call: &Call, tablet: &str, options: &Map) -> RhaiResultOf<Map> {
    let settings = drain_settings(call, options)?;
    let upgrader = call.upgrader()?;
    if !call.dry_run() {
        return to_map(&call.run(upgrader.drain_leaders(tablet, &settings))?);
    }
    let mut plan = call.run(upgrader.plan_drain(tablet, &settings))?;
    plan.dry_run = true;
    for m in &plan.moves {
        let temp = if m.temp_replica { " (temporary replica)" } else { "" };
        call.say(&format!(
            "[dry-run] would move leader of {}.{} pid {}: {} -> {}{temp}",
            m.db, m.table, m.pid, m.from, m.to
        ));
    }
    for s in &plan.skipped {
        call.say(&format!("[dry-run] would leave {}.{} pid {} on {}: {}", s.db, s.table, s.pid, tablet, s.reason));
    }
    to_map(&plan)
}

fn recover(call: &Call, down_leaders: DownLeaders) -> RhaiResultOf<Map> {
    let upgrader = call.upgrader()?;
    if call.dry_run() {
        call.say("[dry-run] would recover every partition with a replica that is not alive or not loaded");
        return Ok(Map::new());
    }
    let touched = call.run(upgrader.recover_data(RECOVER_TIMEOUT, down_leaders))?;
    for (table, n) in &touched {
        call.say(&format!("recovered {n} partitions of {table}"));
    }
    to_map(&touched)
}

fn restore(call: &Call, tablet: &str, options: &Map) -> RhaiResultOf<Map> {
    let settings = move_settings(call, options)?;
    let upgrader = call.upgrader()?;
    if !call.dry_run() {
        return to_map(&call.run(upgrader.restore_leaders(tablet, &settings))?);
    }
    let moves = call.run(upgrader.recorded_moves(tablet))?;
    for m in &moves {
        let temp =
            if m.temp_replica { format!(", then delete the temporary replica on {}", m.to) } else { String::new() };
        call.say(&format!(
            "[dry-run] would move leader of {}.{} pid {} back: {} -> {}{temp}",
            m.db, m.table, m.pid, m.to, m.from
        ));
    }
    to_map(&MoveReport { tablet: tablet.into(), moves, dry_run: true, ..MoveReport::default() })
}
