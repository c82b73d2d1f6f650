//! `zk::`: reading ZooKeeper ([`crate::cluster::zk`]). Paths without a leading `/` are under
//! the cluster's `zk_root_path` (`zk::children("nodes")` lists `/openmldb/nodes`, C§1.1).

use super::{to_map, Call, Options, RhaiResultOf};
use crate::cluster::zk::CreateFlags;
use rhai::plugin::*;
use rhai::{Array, Dynamic, Map};

const NS: &str = "zk";

#[export_module]
pub mod api {
    use super::*;

    /// Names of the children of a node, sorted (the order OpenMLDB uses to pick the nameserver
    /// leader). Relative paths are under zk_root_path.
    ///
    /// Example: `let tablets = zk::children("nodes");`
    #[rhai_fn(volatile, return_raw)]
    pub fn children(ctx: NativeCallContext, path: &str) -> RhaiResultOf<Array> {
        let call = Call::new(&ctx, NS)?;
        let names = call.run(call.zk()?.children(path))?;
        Ok(names.into_iter().map(Dynamic::from).collect())
    }

    /// The data of a node as text (invalid UTF-8 is replaced). Throws if the node does not exist.
    ///
    /// Example: `let af = zk::get("config/auto_failover"); // "true"`
    #[rhai_fn(volatile, return_raw)]
    pub fn get(ctx: NativeCallContext, path: &str) -> RhaiResultOf<String> {
        let call = Call::new(&ctx, NS)?;
        let data = call.run(call.zk()?.get(path))?;
        Ok(String::from_utf8_lossy(&data).into_owned())
    }

    /// True when the node exists.
    ///
    /// Example: `if zk::exists("nodes/" + ep) { print(ep + " is registered"); }`
    #[rhai_fn(volatile, return_raw)]
    pub fn exists(ctx: NativeCallContext, path: &str) -> RhaiResultOf<bool> {
        let call = Call::new(&ctx, NS)?;
        Ok(call.run(call.zk()?.stat(path))?.is_some())
    }

    /// Metadata of a node: #{version, children, data_length, ephemeral_owner, ctime_ms, mtime_ms},
    /// or () when it does not exist. `ephemeral_owner` is 0 for persistent nodes.
    ///
    /// Example: `let s = zk::stat("nodes/" + ep); print(s.ephemeral_owner != 0);`
    #[rhai_fn(volatile, return_raw)]
    pub fn stat(ctx: NativeCallContext, path: &str) -> RhaiResultOf<Dynamic> {
        let call = Call::new(&ctx, NS)?;
        match call.run(call.zk()?.stat(path))? {
            Some(stat) => Ok(to_map(&stat)?.into()),
            None => Ok(Dynamic::UNIT),
        }
    }

    /// FOR EXPERIMENTS (REPL, staging): creates a node, with its missing parents, and returns the
    /// path created. options: #{ephemeral: bool, sequential: bool}. An ephemeral node disappears
    /// when mldb-upgrade exits. Never write inside a live cluster's root path: OpenMLDB owns it.
    /// Changes ZooKeeper: in --dry-run it prints what it would do and does nothing.
    ///
    /// Example: `zk::create("/scratch/probe", "hello", #{ephemeral: true});`
    #[rhai_fn(name = "create", volatile, return_raw)]
    pub fn create_with(ctx: NativeCallContext, path: &str, data: &str, options: Map) -> RhaiResultOf<String> {
        let call = Call::new(&ctx, NS)?;
        let options = Options::new(&call, &options, &["ephemeral", "sequential"])?;
        let flags = CreateFlags { ephemeral: options.flag("ephemeral")?, sequential: options.flag("sequential")? };
        create_node(&call, path, data, flags)
    }

    /// FOR EXPERIMENTS: creates a persistent node (and missing parents); see create(path, data, options).
    /// Changes ZooKeeper: in --dry-run it prints what it would do and does nothing.
    ///
    /// Example: `zk::create("/scratch/note", "x");`
    #[rhai_fn(volatile, return_raw)]
    pub fn create(ctx: NativeCallContext, path: &str, data: &str) -> RhaiResultOf<String> {
        let call = Call::new(&ctx, NS)?;
        create_node(&call, path, data, CreateFlags::default())
    }

    /// FOR EXPERIMENTS: replaces the data of an existing node and returns its new version.
    /// To change auto_failover use the nameserver's ConfSet, not this.
    /// Changes ZooKeeper: in --dry-run it prints what it would do and does nothing.
    ///
    /// Example: `zk::set("/scratch/note", "y");`
    #[rhai_fn(volatile, return_raw)]
    pub fn set(ctx: NativeCallContext, path: &str, data: &str) -> RhaiResultOf<i64> {
        let call = Call::new(&ctx, NS)?;
        let zk = call.zk()?;
        if call.dry_run() {
            call.say(&format!("[dry-run] zk: would set {} to {data:?}", zk.resolve(path)));
            return Ok(-1);
        }
        Ok(call.run(zk.set(path, data.as_bytes()))? as i64)
    }

    /// FOR EXPERIMENTS: deletes a node that has no children.
    /// Changes ZooKeeper: in --dry-run it prints what it would do and does nothing.
    ///
    /// Example: `zk::delete("/scratch/note");`
    #[rhai_fn(volatile, return_raw)]
    pub fn delete(ctx: NativeCallContext, path: &str) -> RhaiResultOf<()> {
        let call = Call::new(&ctx, NS)?;
        let zk = call.zk()?;
        if call.dry_run() {
            call.say(&format!("[dry-run] zk: would delete {}", zk.resolve(path)));
            return Ok(());
        }
        call.run(zk.delete(path))
    }
}

fn create_node(call: &Call, path: &str, data: &str, flags: CreateFlags) -> RhaiResultOf<String> {
    let zk = call.zk()?;
    if call.dry_run() {
        call.say(&format!("[dry-run] zk: would create {} ({flags:?})", zk.resolve(path)));
        return Ok(zk.resolve(path));
    }
    call.run(zk.create(path, data.as_bytes(), flags))
}
