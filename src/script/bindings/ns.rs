//! `ns::`: the NameServer ([`crate::cluster::ns`], C§2.3), always the current leader (found in
//! ZooKeeper, looked up again after a failover). Lists come back as arrays of uniform maps,
//! which the REPL shows as tables.

use super::{to_array, Call, RhaiResultOf};
use crate::cluster::ns::{OpState, TabletState};
use rhai::plugin::*;
use rhai::Array;
use serde::Serialize;

const NS: &str = "ns";

/// One tablet as `ns::tablets` shows it.
#[derive(Serialize)]
struct TabletRow {
    endpoint: String,
    name: String,
    state: TabletState,
    age_ms: u64,
}

/// One partition replica as `ns::partitions` shows it.
#[derive(Serialize)]
struct ReplicaRow<'a> {
    db: &'a str,
    table: &'a str,
    tid: u32,
    pid: u32,
    endpoint: &'a str,
    leader: bool,
    alive: bool,
    offset: Option<u64>,
}

/// One table as `ns::tables` shows it.
#[derive(Serialize)]
struct TableRow<'a> {
    db: &'a str,
    table: &'a str,
    tid: u32,
    partitions: usize,
    replica_num: u32,
    /// Partitions with exactly one replica now.
    single_replica_partitions: usize,
}

/// One op as `ns::ops` shows it.
#[derive(Serialize)]
struct OpRow {
    op_id: u64,
    op_type: String,
    db: String,
    table: String,
    pid: Option<u32>,
    status: OpState,
    task: String,
}

#[export_module]
pub mod api {
    use super::*;

    /// The endpoint of the nameserver leader, from ZooKeeper (first sorted child of <root>/leader).
    ///
    /// Example: `print(ns::leader());`
    #[rhai_fn(volatile, return_raw)]
    pub fn leader(ctx: NativeCallContext) -> RhaiResultOf<String> {
        let call = Call::new(&ctx, NS)?;
        call.run(call.cluster()?.ns.discover_leader())
    }

    /// Tablets as the leader sees them: #{endpoint, name, state, age_ms}; state is kHealthy or
    /// kOffline. `endpoint` is the real `ip:port`; `name` is the server name on a `use_name`
    /// cluster (the endpoint otherwise). Endpoints everywhere in `ns::` are real ones.
    ///
    /// Example: `for t in ns::tablets() { print(t.endpoint + " " + t.state); }`
    #[rhai_fn(volatile, return_raw)]
    pub fn tablets(ctx: NativeCallContext) -> RhaiResultOf<Array> {
        let call = Call::new(&ctx, NS)?;
        let tablets = call.run(call.cluster()?.ns.show_tablet())?;
        to_array(tablets.into_iter().map(|t| TabletRow {
            name: t.name.unwrap_or_else(|| t.endpoint.clone()),
            endpoint: t.endpoint,
            state: t.state,
            age_ms: t.age,
        }))
    }

    /// Every partition replica of every table (internal databases included), one map per replica:
    /// #{db, table, tid, pid, endpoint, leader, alive, offset}.
    ///
    /// Example: `let led = ns::partitions().filter(|r| r.endpoint == ep && r.leader && r.alive);`
    #[rhai_fn(volatile, return_raw)]
    pub fn partitions(ctx: NativeCallContext) -> RhaiResultOf<Array> {
        let call = Call::new(&ctx, NS)?;
        let tables = call.run(call.cluster()?.ns.show_all_tables())?;
        to_array(tables.iter().flat_map(|t| {
            t.table_partition.iter().flat_map(move |p| {
                p.partition_meta.iter().map(move |meta| ReplicaRow {
                    db: &t.db,
                    table: &t.name,
                    tid: t.tid,
                    pid: p.pid,
                    endpoint: &meta.endpoint,
                    leader: meta.is_leader,
                    alive: meta.is_alive,
                    offset: meta.offset,
                })
            })
        }))
    }

    /// Every table (internal databases included), one map per table: #{db, table, tid,
    /// partitions, replica_num, single_replica_partitions}. On a large cluster it is far
    /// smaller than ns::partitions(), which has a map per replica.
    ///
    /// Example: `let single = ns::tables().filter(|t| t.single_replica_partitions > 0);`
    #[rhai_fn(volatile, return_raw)]
    pub fn tables(ctx: NativeCallContext) -> RhaiResultOf<Array> {
        let call = Call::new(&ctx, NS)?;
        let tables = call.run(call.cluster()?.ns.show_all_tables())?;
        to_array(tables.iter().map(|t| TableRow {
            db: &t.db,
            table: &t.name,
            tid: t.tid,
            partitions: t.table_partition.len(),
            replica_num: t.replica_num,
            single_replica_partitions: t.table_partition.iter().filter(|p| p.partition_meta.len() == 1).count(),
        }))
    }

    /// Ops the leader knows (finished ones only while it stays leader):
    /// #{op_id, op_type, db, table, pid, status, task}.
    ///
    /// Example: `let failed = ns::ops().filter(|o| o.status == "kFailed");`
    #[rhai_fn(volatile, return_raw)]
    pub fn ops(ctx: NativeCallContext) -> RhaiResultOf<Array> {
        let call = Call::new(&ctx, NS)?;
        let ops = call.run(call.cluster()?.ns.show_op_status(None, None, None))?;
        to_array(ops.into_iter().map(|o| OpRow {
            op_id: o.op_id,
            op_type: o.op_type,
            db: o.db,
            table: o.name,
            pid: o.pid,
            status: o.status,
            task: o.task_type,
        }))
    }

    /// The last op id handed out (<root>/op/op_index); read it before a change to find the ops it made.
    ///
    /// Example: `let since = ns::op_index(); ...; wait::ops_done(since, "10m");`
    #[rhai_fn(volatile, return_raw)]
    pub fn op_index(ctx: NativeCallContext) -> RhaiResultOf<i64> {
        let call = Call::new(&ctx, NS)?;
        Ok(call.run(call.cluster()?.ns.op_index())? as i64)
    }

    /// The leader's auto_failover setting (ConfGet).
    ///
    /// Example: `if ns::auto_failover() { print("failover is automatic"); }`
    #[rhai_fn(volatile, return_raw)]
    pub fn auto_failover(ctx: NativeCallContext) -> RhaiResultOf<bool> {
        let call = Call::new(&ctx, NS)?;
        call.run(call.cluster()?.ns.auto_failover())
    }

    /// Sets auto_failover (ConfSet; persisted in <root>/config/auto_failover). Prefer
    /// upgrade::with_auto_failover_off, which records and restores the original value.
    /// Changes the cluster: in --dry-run it prints what it would do and does nothing.
    ///
    /// Example: `ns::set_auto_failover(true);`
    #[rhai_fn(volatile, return_raw)]
    pub fn set_auto_failover(ctx: NativeCallContext, on: bool) -> RhaiResultOf<()> {
        let call = Call::new(&ctx, NS)?;
        let ns = &call.cluster()?.ns;
        if call.dry_run() {
            call.say(&format!("[dry-run] nameserver: would set auto_failover to {on}"));
            return Ok(());
        }
        call.run(ns.set_auto_failover(on))
    }

    /// ChangeLeader to an explicit candidate (works on a live leader); does not wait.
    /// The old leader keeps is_leader with alive=false until recover_table re-adds it.
    /// upgrade::drain_leaders does this safely (offsets checked, old leader fenced, ops awaited).
    /// Changes the cluster: in --dry-run it prints what it would do and does nothing.
    ///
    /// Example: `ns::change_leader("demo", "triple", 0, "127.0.0.3:10921");`
    #[rhai_fn(volatile, return_raw)]
    pub fn change_leader(ctx: NativeCallContext, db: &str, table: &str, pid: i64, candidate: &str) -> RhaiResultOf<()> {
        let call = Call::new(&ctx, NS)?;
        let ns = &call.cluster()?.ns;
        if call.dry_run() {
            call.say(&format!(
                "[dry-run] nameserver: would change the leader of {db}.{table} pid {pid} to {candidate}"
            ));
            return Ok(());
        }
        call.run(ns.change_leader(db, table, pid as u32, candidate))
    }

    /// RecoverTable: rebuilds a replica that is not alive as a follower; does not wait.
    /// Changes the cluster: in --dry-run it prints what it would do and does nothing.
    ///
    /// Example: `ns::recover_table("demo", "triple", 0, "127.0.0.2:10921");`
    #[rhai_fn(volatile, return_raw)]
    pub fn recover_table(ctx: NativeCallContext, db: &str, table: &str, pid: i64, endpoint: &str) -> RhaiResultOf<()> {
        let call = Call::new(&ctx, NS)?;
        let ns = &call.cluster()?.ns;
        if call.dry_run() {
            call.say(&format!("[dry-run] nameserver: would recover {db}.{table} pid {pid} on {endpoint}"));
            return Ok(());
        }
        call.run(ns.recover_table(db, table, pid as u32, endpoint))
    }
}
