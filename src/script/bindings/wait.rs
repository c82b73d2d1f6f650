//! `wait::`: conditions with a timeout ([`crate::cluster::wait`]); a timeout says what it waited
//! for and what it last saw.

use super::{Call, RhaiResultOf};
use crate::cluster::topology::Role;
use rhai::plugin::*;

const NS: &str = "wait";

#[export_module]
pub mod api {
    use super::*;

    /// Waits until a tablet is registered, kHealthy, and every partition replica on it is alive,
    /// loaded (kTableNormal, or making or paused for a snapshot) and in the mode the nameserver expects.
    ///
    /// Example: `wait::tablet_healthy(ep, "10m");`
    #[rhai_fn(volatile, return_raw)]
    pub fn tablet_healthy(ctx: NativeCallContext, endpoint: &str, timeout: &str) -> RhaiResultOf<()> {
        let call = Call::new(&ctx, NS)?;
        let timeout = call.duration(timeout)?;
        call.run(call.cluster()?.wait_tablet_healthy(endpoint, timeout))
    }

    /// Waits until a nameserver leader is elected and answers; returns its endpoint.
    ///
    /// Example: `let leader = wait::nameserver_leader("2m");`
    #[rhai_fn(volatile, return_raw)]
    pub fn nameserver_leader(ctx: NativeCallContext, timeout: &str) -> RhaiResultOf<String> {
        let call = Call::new(&ctx, NS)?;
        let timeout = call.duration(timeout)?;
        call.run(call.cluster()?.wait_nameserver_leader(timeout))
    }

    /// Waits until every nameserver op created after `since_op_id` is finished; throws at once on
    /// a kFailed or kCanceled one. Returns how many ops there were.
    ///
    /// Example: `let since = ns::op_index(); ns::recover_table(db, t, 0, ep); wait::ops_done(since, "5m");`
    #[rhai_fn(volatile, return_raw)]
    pub fn ops_done(ctx: NativeCallContext, since_op_id: i64, timeout: &str) -> RhaiResultOf<i64> {
        let call = Call::new(&ctx, NS)?;
        let timeout = call.duration(timeout)?;
        Ok(call.run(call.cluster()?.wait_ops_done(since_op_id.max(0) as u64, timeout))? as i64)
    }

    /// Waits until a component reports `version` (X.Y.Z, or X.Y.Z-hash): /version of a
    /// nameserver, tablet or apiserver, GetVersion of the active TaskManager (an endpoint the
    /// cluster config does not list is asked on /version). Returns the full version.
    ///
    /// Example: `wait::version(ep, "0.9.3", "2m");`
    #[rhai_fn(volatile, return_raw)]
    pub fn version(ctx: NativeCallContext, endpoint: &str, version: &str, timeout: &str) -> RhaiResultOf<String> {
        let call = Call::new(&ctx, NS)?;
        let timeout = call.duration(timeout)?;
        let role = call.config()?.component(endpoint).map_or(Role::Tablet, |c| c.role);
        call.run(call.cluster()?.wait_version(role, endpoint, version, timeout))
    }
}
