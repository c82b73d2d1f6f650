//! `zk::`: reading ZooKeeper. Paths without a leading `/` are under the cluster's
//! `zk_root_path` (`zk::children("nodes")` lists `/openmldb/nodes`, C§1.1).

use std::sync::Arc;

use rhai::{Dynamic, EvalAltResult, Map, Module, NativeCallContext};

use super::{Doc, Effect};
use crate::cluster::zk::CreateFlags;
use crate::script::Host;

type Res<T> = Result<T, Box<EvalAltResult>>;

pub fn module(host: &Arc<Host>) -> Module {
    let mut m = Module::new();
    let h = host.clone();
    Doc::new(
        "children",
        &["path: string"],
        "array",
        Effect::ReadOnly,
        "Names of the children of a node, sorted (the order OpenMLDB uses to pick the nameserver\nleader). Relative paths are under zk_root_path.\n\nExample: `let tablets = zk::children(\"nodes\");`",
    )
    .set_into(&mut m, move |ctx: NativeCallContext, path: &str| -> Res<rhai::Array> {
        let zk = h.zk("zk::children").map_err(|e| e.at(&ctx))?;
        let names = h.block_on(zk.children(path)).map_err(|e| e.at(&ctx))?;
        Ok(names.into_iter().map(Dynamic::from).collect())
    });
    let h = host.clone();
    Doc::new(
        "get",
        &["path: string"],
        "string",
        Effect::ReadOnly,
        "The data of a node as text (invalid UTF-8 is replaced). Throws if the node does not exist.\n\nExample: `let af = zk::get(\"config/auto_failover\"); // \"true\"`",
    )
    .set_into(&mut m, move |ctx: NativeCallContext, path: &str| -> Res<String> {
        let zk = h.zk("zk::get").map_err(|e| e.at(&ctx))?;
        let data = h.block_on(zk.get(path)).map_err(|e| e.at(&ctx))?;
        Ok(String::from_utf8_lossy(&data).into_owned())
    });
    let h = host.clone();
    Doc::new(
        "exists",
        &["path: string"],
        "bool",
        Effect::ReadOnly,
        "True when the node exists.\n\nExample: `if zk::exists(\"nodes/\" + ep) { print(ep + \" is registered\"); }`",
    )
    .set_into(&mut m, move |ctx: NativeCallContext, path: &str| -> Res<bool> {
        let zk = h.zk("zk::exists").map_err(|e| e.at(&ctx))?;
        Ok(h.block_on(zk.stat(path)).map_err(|e| e.at(&ctx))?.is_some())
    });
    let h = host.clone();
    Doc::new(
        "stat",
        &["path: string"],
        "map or ()",
        Effect::ReadOnly,
        "Metadata of a node: #{version, children, data_length, ephemeral_owner, ctime_ms, mtime_ms},\nor () when it does not exist. `ephemeral_owner` is 0 for persistent nodes.\n\nExample: `let s = zk::stat(\"nodes/\" + ep); print(s.ephemeral_owner != 0);`",
    )
    .set_into(&mut m, move |ctx: NativeCallContext, path: &str| -> Res<Dynamic> {
        let zk = h.zk("zk::stat").map_err(|e| e.at(&ctx))?;
        Ok(match h.block_on(zk.stat(path)).map_err(|e| e.at(&ctx))? {
            None => Dynamic::UNIT,
            Some(s) => {
                let mut map = Map::new();
                map.insert("version".into(), (s.version as i64).into());
                map.insert("children".into(), (s.children as i64).into());
                map.insert("data_length".into(), (s.data_length as i64).into());
                map.insert("ephemeral_owner".into(), s.ephemeral_owner.into());
                map.insert("ctime_ms".into(), s.ctime_ms.into());
                map.insert("mtime_ms".into(), s.mtime_ms.into());
                map.into()
            }
        })
    });
    let h = host.clone();
    Doc::new(
        "create",
        &["path: string", "data: string", "options: map"],
        "string",
        Effect::Changes,
        "FOR EXPERIMENTS (REPL, staging): creates a node, with its missing parents, and returns the\npath created. options: #{ephemeral: bool, sequential: bool}. An ephemeral node disappears\nwhen mldb-upgrade exits. Never write inside a live cluster's root path: OpenMLDB owns it.\n\nExample: `zk::create(\"/scratch/probe\", \"hello\", #{ephemeral: true});`",
    )
    .set_into(&mut m, move |ctx: NativeCallContext, path: &str, data: &str, options: Map| -> Res<String> {
        let zk = h.zk("zk::create").map_err(|e| e.at(&ctx))?;
        let flag = |k: &str| options.get(k).and_then(|v| v.as_bool().ok()).unwrap_or(false);
        let flags = CreateFlags { ephemeral: flag("ephemeral"), sequential: flag("sequential") };
        if h.dry_run() {
            h.say(&format!("[dry-run] zk: would create {} ({flags:?})", zk.resolve(path)));
            return Ok(zk.resolve(path));
        }
        h.block_on(zk.create(path, data.as_bytes(), flags)).map_err(|e| e.at(&ctx))
    });
    let h = host.clone();
    Doc::new(
        "create",
        &["path: string", "data: string"],
        "string",
        Effect::Changes,
        "FOR EXPERIMENTS: creates a persistent node (and missing parents); see create(path, data, options).\n\nExample: `zk::create(\"/scratch/note\", \"x\");`",
    )
    .set_into(&mut m, move |ctx: NativeCallContext, path: &str, data: &str| -> Res<String> {
        let zk = h.zk("zk::create").map_err(|e| e.at(&ctx))?;
        if h.dry_run() {
            h.say(&format!("[dry-run] zk: would create {}", zk.resolve(path)));
            return Ok(zk.resolve(path));
        }
        h.block_on(zk.create(path, data.as_bytes(), CreateFlags::default())).map_err(|e| e.at(&ctx))
    });
    let h = host.clone();
    Doc::new(
        "set",
        &["path: string", "data: string"],
        "int",
        Effect::Changes,
        "FOR EXPERIMENTS: replaces the data of an existing node and returns its new version.\nTo change auto_failover use the nameserver's ConfSet, not this.\n\nExample: `zk::set(\"/scratch/note\", \"y\");`",
    )
    .set_into(&mut m, move |ctx: NativeCallContext, path: &str, data: &str| -> Res<i64> {
        let zk = h.zk("zk::set").map_err(|e| e.at(&ctx))?;
        if h.dry_run() {
            h.say(&format!("[dry-run] zk: would set {} to {data:?}", zk.resolve(path)));
            return Ok(-1);
        }
        Ok(h.block_on(zk.set(path, data.as_bytes())).map_err(|e| e.at(&ctx))? as i64)
    });
    let h = host.clone();
    Doc::new(
        "delete",
        &["path: string"],
        "()",
        Effect::Changes,
        "FOR EXPERIMENTS: deletes a node that has no children.\n\nExample: `zk::delete(\"/scratch/note\");`",
    )
    .set_into(&mut m, move |ctx: NativeCallContext, path: &str| -> Res<()> {
        let zk = h.zk("zk::delete").map_err(|e| e.at(&ctx))?;
        if h.dry_run() {
            h.say(&format!("[dry-run] zk: would delete {}", zk.resolve(path)));
            return Ok(());
        }
        h.block_on(zk.delete(path)).map_err(|e| e.at(&ctx))
    });
    m
}
