//! `ns::`: the NameServer (C§2.3), always the current leader (found in ZooKeeper, looked up
//! again after a failover). Lists come back as arrays of uniform maps, which the REPL shows as
//! tables.

use std::sync::Arc;

use rhai::{Array, Dynamic, EvalAltResult, Map, Module, NativeCallContext};

use super::{Doc, Effect};
use crate::script::Host;

type Res<T> = Result<T, Box<EvalAltResult>>;

fn map(pairs: Vec<(&str, Dynamic)>) -> Dynamic {
    let m: Map = pairs.into_iter().map(|(k, v)| (k.into(), v)).collect();
    m.into()
}

pub fn module(host: &Arc<Host>) -> Module {
    let mut m = Module::new();
    let h = host.clone();
    Doc::new("leader", &[], "string", Effect::ReadOnly, "The endpoint of the nameserver leader, from ZooKeeper (first sorted child of <root>/leader).\n\nExample: `print(ns::leader());`")
        .set_into(&mut m, move |ctx: NativeCallContext| -> Res<String> {
            let u = h.upgrader("ns::leader").map_err(|e| e.at(&ctx))?;
            h.block_on(u.ns.discover_leader()).map_err(|e| e.at(&ctx))
        });
    let h = host.clone();
    Doc::new("tablets", &[], "array", Effect::ReadOnly, "Tablets as the leader sees them: #{endpoint, state, age_ms}; state is kHealthy or kOffline.\n\nExample: `for t in ns::tablets() { print(t.endpoint + \" \" + t.state); }`")
        .set_into(&mut m, move |ctx: NativeCallContext| -> Res<Array> {
            let u = h.upgrader("ns::tablets").map_err(|e| e.at(&ctx))?;
            let tablets = h.block_on(u.ns.show_tablet()).map_err(|e| e.at(&ctx))?;
            Ok(tablets
                .into_iter()
                .map(|t| map(vec![("endpoint", t.endpoint.into()), ("state", t.state.into()), ("age_ms", (t.age as i64).into())]))
                .collect())
        });
    let h = host.clone();
    Doc::new("partitions", &[], "array", Effect::ReadOnly, "Every partition replica of every table (internal databases included), one map per replica:\n#{db, table, tid, pid, endpoint, leader, alive, offset}.\n\nExample: `let led = ns::partitions().filter(|r| r.endpoint == ep && r.leader && r.alive);`")
        .set_into(&mut m, move |ctx: NativeCallContext| -> Res<Array> {
            let u = h.upgrader("ns::partitions").map_err(|e| e.at(&ctx))?;
            let tables = h.block_on(u.ns.show_all_tables()).map_err(|e| e.at(&ctx))?;
            let mut rows = Array::new();
            for t in tables {
                for p in &t.table_partition {
                    for meta in &p.partition_meta {
                        rows.push(map(vec![
                            ("db", t.db.clone().into()),
                            ("table", t.name.clone().into()),
                            ("tid", (t.tid as i64).into()),
                            ("pid", (p.pid as i64).into()),
                            ("endpoint", meta.endpoint.clone().into()),
                            ("leader", meta.is_leader.into()),
                            ("alive", meta.is_alive.into()),
                            ("offset", meta.offset.map_or(Dynamic::UNIT, |o| (o as i64).into())),
                        ]));
                    }
                }
            }
            Ok(rows)
        });
    let h = host.clone();
    Doc::new("ops", &[], "array", Effect::ReadOnly, "Ops the leader knows (finished ones only while it stays leader, C§3.2):\n#{op_id, op_type, db, table, pid, status, task}.\n\nExample: `let failed = ns::ops().filter(|o| o.status == \"kFailed\");`")
        .set_into(&mut m, move |ctx: NativeCallContext| -> Res<Array> {
            let u = h.upgrader("ns::ops").map_err(|e| e.at(&ctx))?;
            let ops = h.block_on(u.ns.show_op_status(None, None, None)).map_err(|e| e.at(&ctx))?;
            Ok(ops
                .into_iter()
                .map(|o| {
                    map(vec![
                        ("op_id", (o.op_id as i64).into()),
                        ("op_type", o.op_type.into()),
                        ("db", o.db.into()),
                        ("table", o.name.into()),
                        ("pid", o.pid.map_or(Dynamic::UNIT, |p| (p as i64).into())),
                        ("status", o.status.into()),
                        ("task", o.task_type.into()),
                    ])
                })
                .collect())
        });
    let h = host.clone();
    Doc::new("op_index", &[], "int", Effect::ReadOnly, "The last op id handed out (<root>/op/op_index); read it before a change to find the ops it made.\n\nExample: `let since = ns::op_index(); ...; wait::ops_done(since, \"10m\");`")
        .set_into(&mut m, move |ctx: NativeCallContext| -> Res<i64> {
            let u = h.upgrader("ns::op_index").map_err(|e| e.at(&ctx))?;
            Ok(h.block_on(u.ns.op_index()).map_err(|e| e.at(&ctx))? as i64)
        });
    let h = host.clone();
    Doc::new("auto_failover", &[], "bool", Effect::ReadOnly, "The leader's auto_failover setting (ConfGet).\n\nExample: `if ns::auto_failover() { print(\"failover is automatic\"); }`")
        .set_into(&mut m, move |ctx: NativeCallContext| -> Res<bool> {
            let u = h.upgrader("ns::auto_failover").map_err(|e| e.at(&ctx))?;
            h.block_on(u.ns.auto_failover()).map_err(|e| e.at(&ctx))
        });
    let h = host.clone();
    Doc::new("set_auto_failover", &["on: bool"], "()", Effect::Changes, "Sets auto_failover (ConfSet; persisted in <root>/config/auto_failover). Prefer\nupgrade::with_auto_failover_off, which records and restores the original value.\n\nExample: `ns::set_auto_failover(true);`")
        .set_into(&mut m, move |ctx: NativeCallContext, on: bool| -> Res<()> {
            let u = h.upgrader("ns::set_auto_failover").map_err(|e| e.at(&ctx))?;
            if h.dry_run() {
                h.say(&format!("[dry-run] nameserver: would set auto_failover to {on}"));
                return Ok(());
            }
            h.block_on(u.ns.set_auto_failover(on)).map_err(|e| e.at(&ctx))
        });
    let h = host.clone();
    Doc::new("change_leader", &["db: string", "table: string", "pid: int", "candidate: string"], "()", Effect::Changes, "ChangeLeader to an explicit candidate (works on a live leader, C§3.5); does not wait.\nThe old leader keeps is_leader with alive=false until recover_table demotes it.\nupgrade::drain_leaders does this safely (offsets checked, ops awaited).\n\nExample: `ns::change_leader(\"demo\", \"triple\", 0, \"127.0.0.3:10921\");`")
        .set_into(&mut m, move |ctx: NativeCallContext, db: &str, table: &str, pid: i64, candidate: &str| -> Res<()> {
            let u = h.upgrader("ns::change_leader").map_err(|e| e.at(&ctx))?;
            if h.dry_run() {
                h.say(&format!("[dry-run] nameserver: would change the leader of {db}.{table} pid {pid} to {candidate}"));
                return Ok(());
            }
            h.block_on(u.ns.change_leader(db, table, pid as u32, candidate)).map_err(|e| e.at(&ctx))
        });
    let h = host.clone();
    Doc::new("recover_table", &["db: string", "table: string", "pid: int", "endpoint: string"], "()", Effect::Changes, "RecoverTable: rebuilds a replica that is not alive as a follower (C§3.6); does not wait.\n\nExample: `ns::recover_table(\"demo\", \"triple\", 0, \"127.0.0.2:10921\");`")
        .set_into(&mut m, move |ctx: NativeCallContext, db: &str, table: &str, pid: i64, endpoint: &str| -> Res<()> {
            let u = h.upgrader("ns::recover_table").map_err(|e| e.at(&ctx))?;
            if h.dry_run() {
                h.say(&format!("[dry-run] nameserver: would recover {db}.{table} pid {pid} on {endpoint}"));
                return Ok(());
            }
            h.block_on(u.ns.recover_table(db, table, pid as u32, endpoint)).map_err(|e| e.at(&ctx))
        });
    m
}
