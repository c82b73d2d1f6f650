//! `tablet::`: asking a tablet directly ([`crate::cluster::tablet`], C§2.4).

use super::{to_array, Call, RhaiResultOf};
use crate::cluster::tablet::{TableMode, TableState};
use rhai::plugin::*;
use rhai::Array;
use serde::Serialize;

/// One loaded partition replica as `tablet::status` shows it.
#[derive(Serialize)]
struct LoadedRow {
    tid: u32,
    pid: u32,
    name: String,
    mode: TableMode,
    state: TableState,
    /// kTableNormal, kMakingSnapshot or kSnapshotPaused: loaded and serving.
    loaded: bool,
    offset: u64,
    rows: u64,
}

#[export_module]
pub mod api {
    use super::*;

    /// Every partition loaded on a tablet (GetTableStatus): #{tid, pid, name, mode, state, loaded,
    /// offset, rows}. mode is kTableLeader/kTableFollower; `loaded` is true when the state is
    /// kTableNormal, kMakingSnapshot (a scheduled snapshot) or kSnapshotPaused (a replica being
    /// added), all of which serve reads and writes.
    ///
    /// Example: `let loading = tablet::status(ep).filter(|p| !p.loaded);`
    #[rhai_fn(volatile, return_raw)]
    pub fn status(ctx: NativeCallContext, endpoint: &str) -> RhaiResultOf<Array> {
        let call = Call::new(&ctx, "tablet")?;
        let list = call.run(call.cluster()?.tablets.table_status(endpoint))?;
        to_array(list.into_iter().map(|s| LoadedRow {
            loaded: s.is_loaded(),
            tid: s.tid,
            pid: s.pid,
            name: s.name,
            mode: s.mode,
            state: s.state,
            offset: s.offset,
            rows: s.record_cnt,
        }))
    }
}
