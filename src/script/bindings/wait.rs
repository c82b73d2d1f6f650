//! `wait::`: conditions with a timeout; a timeout says what it waited for and what it last saw.

use std::sync::Arc;

use rhai::{EvalAltResult, Module, NativeCallContext};

use super::{duration_arg, Doc, Effect};
use crate::script::Host;

type Res<T> = Result<T, Box<EvalAltResult>>;

pub fn module(host: &Arc<Host>) -> Module {
    let mut m = Module::new();
    let h = host.clone();
    Doc::new("tablet_healthy", &["endpoint: string", "timeout: string"], "()", Effect::ReadOnly, "Waits until a tablet is registered, kHealthy, and every partition replica on it is alive,\nloaded (kTableNormal) and in the mode the nameserver expects.\n\nExample: `wait::tablet_healthy(ep, \"10m\");`")
        .set_into(&mut m, move |ctx: NativeCallContext, endpoint: &str, timeout: &str| -> Res<()> {
            let timeout = duration_arg(timeout)?;
            let u = h.upgrader("wait::tablet_healthy").map_err(|e| e.at(&ctx))?;
            h.block_on(u.wait_tablet_healthy(endpoint, timeout)).map_err(|e| e.at(&ctx))
        });
    let h = host.clone();
    Doc::new("nameserver_leader", &["timeout: string"], "string", Effect::ReadOnly, "Waits until a nameserver leader is elected and answers; returns its endpoint.\n\nExample: `let leader = wait::nameserver_leader(\"2m\");`")
        .set_into(&mut m, move |ctx: NativeCallContext, timeout: &str| -> Res<String> {
            let timeout = duration_arg(timeout)?;
            let u = h.upgrader("wait::nameserver_leader").map_err(|e| e.at(&ctx))?;
            h.block_on(u.wait_nameserver_leader(timeout)).map_err(|e| e.at(&ctx))
        });
    let h = host.clone();
    Doc::new("ops_done", &["since_op_id: int", "timeout: string"], "int", Effect::ReadOnly, "Waits until every nameserver op created after `since_op_id` is finished; throws at once on\na kFailed or kCanceled one. Returns how many ops there were.\n\nExample: `let since = ns::op_index(); ns::recover_table(db, t, 0, ep); wait::ops_done(since, \"5m\");`")
        .set_into(&mut m, move |ctx: NativeCallContext, since: i64, timeout: &str| -> Res<i64> {
            let timeout = duration_arg(timeout)?;
            let u = h.upgrader("wait::ops_done").map_err(|e| e.at(&ctx))?;
            Ok(h.block_on(u.wait_ops_done(since.max(0) as u64, timeout)).map_err(|e| e.at(&ctx))? as i64)
        });
    let h = host.clone();
    Doc::new("version", &["endpoint: string", "version: string", "timeout: string"], "string", Effect::ReadOnly, "Waits until a nameserver, tablet or apiserver reports `version` (X.Y.Z, or X.Y.Z-hash) on\n/version; returns the full version.\n\nExample: `wait::version(ep, \"0.9.3\", \"2m\");`")
        .set_into(&mut m, move |ctx: NativeCallContext, endpoint: &str, version: &str, timeout: &str| -> Res<String> {
            let timeout = duration_arg(timeout)?;
            let u = h.upgrader("wait::version").map_err(|e| e.at(&ctx))?;
            h.block_on(u.wait_version(endpoint, version, timeout)).map_err(|e| e.at(&ctx))
        });
    m
}
