//! `tablet::`: asking a tablet directly (C§2.4).

use std::sync::Arc;

use rhai::{Array, Dynamic, EvalAltResult, Map, Module, NativeCallContext};

use super::{Doc, Effect};
use crate::script::Host;

type Res<T> = Result<T, Box<EvalAltResult>>;

pub fn module(host: &Arc<Host>) -> Module {
    let mut m = Module::new();
    let h = host.clone();
    Doc::new("status", &["endpoint: string"], "array", Effect::ReadOnly, "Every partition loaded on a tablet (GetTableStatus): #{tid, pid, name, mode, state, offset, rows}.\nmode is kTableLeader/kTableFollower, state kTableNormal when usable.\n\nExample: `let loading = tablet::status(ep).filter(|p| p.state != \"kTableNormal\");`")
        .set_into(&mut m, move |ctx: NativeCallContext, endpoint: &str| -> Res<Array> {
            let u = h.upgrader("tablet::status").map_err(|e| e.at(&ctx))?;
            let list = h.block_on(u.tablets.table_status(endpoint)).map_err(|e| e.at(&ctx))?;
            Ok(list
                .into_iter()
                .map(|s| {
                    let m: Map = [
                        ("tid", Dynamic::from(s.tid as i64)),
                        ("pid", (s.pid as i64).into()),
                        ("name", s.name.into()),
                        ("mode", s.mode.into()),
                        ("state", s.state.into()),
                        ("offset", (s.offset as i64).into()),
                        ("rows", (s.record_cnt as i64).into()),
                    ]
                    .into_iter()
                    .map(|(k, v)| (k.into(), v))
                    .collect();
                    m.into()
                })
                .collect())
        });
    let h = host.clone();
    Doc::new("version", &["endpoint: string"], "string", Effect::ReadOnly, "The version a running nameserver, tablet or apiserver reports on /version (C§1.4).\n\nExample: `print(tablet::version(ep)); // 0.9.3-c5ffa75`")
        .set_into(&mut m, move |ctx: NativeCallContext, endpoint: &str| -> Res<String> {
            let u = h.upgrader("tablet::version").map_err(|e| e.at(&ctx))?;
            h.block_on(u.tablets.version(endpoint)).map_err(|e| e.at(&ctx))
        });
    m
}
