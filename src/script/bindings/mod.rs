//! Script-visible primitives, one namespace per file, each file named after its namespace and
//! the Rust module that does the work:
//!
//! | namespace | file | does the work |
//! |---|---|---|
//! | global | `global.rs` | sleep, durations, settings (`--set`), environment, dry-run |
//! | `zk::` | `zk.rs` | [`crate::cluster::zk`] |
//! | `ssh::` | `ssh.rs` | [`crate::ssh`] |
//! | `log::` | `log.rs` | `tracing` |
//! | `ns::` | `ns.rs` | [`crate::cluster::ns`] |
//! | `tablet::` | `tablet.rs` | [`crate::cluster::tablet`] |
//! | `wait::` | `wait.rs` | [`crate::cluster::wait`] |
//! | `upgrade::` | `upgrade.rs` | [`crate::cluster::upgrade`] |
//! | `component::` | `component.rs` | [`crate::cluster::component`] |
//! | `journal::` | `journal.rs` | [`crate::journal`] |
//! | `config::` | `config.rs` | [`crate::config`] |
//! | `release::` | `release.rs` | [`crate::release`] |
//!
//! Every function is a Rhai plugin function (`#[export_module]`): its `///` comment is its
//! documentation (read back by `mldb-upgrade docs`, the REPL's `:help` and the definitions
//! file, [`crate::script::docs`]), its Rust signature is its script signature. All are volatile:
//! they read or change the world, so the optimizer never runs them ahead of time. A function
//! that changes something says so in its doc and, in `--dry-run`, only prints what it would do.
//!
//! A function reaches the [`Host`] through the engine's tag ([`Call::new`]); maps it returns are
//! built from `Serialize` structs ([`to_map`], [`to_array`]).

mod component;
mod config;
mod global;
mod journal;
mod log;
mod ns;
mod release;
mod ssh;
mod tablet;
mod upgrade;
mod wait;
mod zk;

use std::fmt::Display;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use rhai::{Array, Dynamic, Engine, EvalAltResult, Map, NativeCallContext, Position};
use serde::Serialize;

use super::{CallError, Host};
use crate::cluster::upgrade::Upgrader;
use crate::cluster::zk::Zk;
use crate::cluster::Cluster;
use crate::config::ClusterConfig;

/// What every binding returns: a value, or a Rhai error placed at the call.
pub type RhaiResultOf<T> = Result<T, Box<EvalAltResult>>;

/// Registers every namespace into `engine` and binds it to `host`.
pub fn register_all(engine: &mut Engine, host: &Arc<Host>) {
    engine.set_default_tag(Dynamic::from(host.clone()));
    engine.register_global_module(rhai::exported_module!(global::api).into());
    for (name, module) in [
        ("zk", rhai::exported_module!(zk::api)),
        ("ssh", rhai::exported_module!(ssh::api)),
        ("log", rhai::exported_module!(log::api)),
        ("ns", rhai::exported_module!(ns::api)),
        ("tablet", rhai::exported_module!(tablet::api)),
        ("wait", rhai::exported_module!(wait::api)),
        ("upgrade", rhai::exported_module!(upgrade::api)),
        ("journal", rhai::exported_module!(journal::api)),
        ("config", rhai::exported_module!(config::api)),
        ("release", rhai::exported_module!(release::api)),
        ("component", rhai::exported_module!(component::api)),
    ] {
        engine.register_static_module(name, module.into());
    }
}

/// One call of a primitive: the host, and where the call is for errors (`zk::children` at
/// `upgrade.rhai:12:5`).
pub struct Call {
    pub host: Arc<Host>,
    /// `namespace::function`, for messages.
    pub name: String,
    position: Position,
}

impl Call {
    /// The call `ctx` describes, of a function in `namespace` (empty for global functions).
    pub fn new(ctx: &NativeCallContext, namespace: &str) -> RhaiResultOf<Self> {
        let host = ctx
            .tag()
            .and_then(|tag| tag.clone().try_cast::<Arc<Host>>())
            .ok_or_else(|| -> Box<EvalAltResult> { "mldb-upgrade: this engine has no host bound".into() })?;
        let name =
            if namespace.is_empty() { ctx.fn_name().to_string() } else { format!("{namespace}::{}", ctx.fn_name()) };
        Ok(Call { host, name, position: ctx.call_position() })
    }

    /// A Rhai error at the call (Rhai leaves namespaced native calls without a position).
    pub fn error(&self, e: CallError) -> Box<EvalAltResult> {
        let mut err: Box<EvalAltResult> = e.into();
        err.set_position(self.position);
        err
    }

    /// A plain failure at the call.
    pub fn fail(&self, message: impl Into<String>) -> Box<EvalAltResult> {
        self.error(CallError::Failed(message.into()))
    }

    /// Runs a future to completion; Ctrl-C ends it at once.
    pub fn run<T, E: Display>(&self, fut: impl Future<Output = Result<T, E>>) -> RhaiResultOf<T> {
        self.host.block_on(fut).map_err(|e| self.error(e))
    }

    /// A duration argument such as `"30s"`; a bad one is an error at the call.
    pub fn duration(&self, text: &str) -> RhaiResultOf<Duration> {
        crate::config::parse_duration(text).map_err(|m| self.fail(m))
    }

    pub fn dry_run(&self) -> bool {
        self.host.dry_run()
    }

    /// Prints a line for the operator.
    pub fn say(&self, text: &str) {
        self.host.say(text);
    }

    pub fn config(&self) -> RhaiResultOf<&ClusterConfig> {
        self.host.cluster_parts(&self.name).map(|(config, _)| config).map_err(|e| self.error(e))
    }

    pub fn zk(&self) -> RhaiResultOf<&Zk> {
        self.host.zk(&self.name).map_err(|e| self.error(e))
    }

    pub fn cluster(&self) -> RhaiResultOf<&Cluster> {
        self.host.cluster(&self.name).map_err(|e| self.error(e))
    }

    pub fn upgrader(&self) -> RhaiResultOf<&Upgrader> {
        self.host.upgrader(&self.name).map_err(|e| self.error(e))
    }
}

/// A Rhai map from a `Serialize` struct (field names become keys).
pub fn to_map<T: Serialize>(value: &T) -> RhaiResultOf<Map> {
    rhai::serde::to_dynamic(value)?
        .try_cast::<Map>()
        .ok_or_else(|| "mldb-upgrade: a result that should be a map is not one".into())
}

/// A Rhai array of maps from `Serialize` items.
pub fn to_array<T: Serialize>(items: impl IntoIterator<Item = T>) -> RhaiResultOf<Array> {
    items.into_iter().map(|item| to_map(&item).map(Dynamic::from)).collect()
}

/// An array argument of strings (endpoints, names); `what` names them in the error.
pub fn string_list(call: &Call, items: Array, what: &str) -> RhaiResultOf<Vec<String>> {
    items
        .into_iter()
        .map(|x| {
            x.into_string().map_err(|found| call.fail(format!("{}: {what} must be strings, not {found}", call.name)))
        })
        .collect()
}

/// An options map (`#{timeout: "5m"}`), checked against the keys a function knows; errors
/// point at the call.
pub struct Options<'a> {
    call: &'a Call,
    map: &'a Map,
}

impl<'a> Options<'a> {
    /// Refuses a key the call's function does not know, naming the ones it does.
    pub fn new(call: &'a Call, map: &'a Map, known: &[&str]) -> RhaiResultOf<Self> {
        if let Some(bad) = map.keys().find(|k| !known.contains(&k.as_str())) {
            return Err(call.fail(format!(
                "{}: unknown option `{bad}`; known options: {}",
                call.name,
                known.join(", ")
            )));
        }
        Ok(Options { call, map })
    }

    fn wrong(&self, key: &str, expected: &str, found: &str) -> Box<EvalAltResult> {
        self.call.fail(format!("{}: option {key} must be {expected}, not {found}", self.call.name))
    }

    /// A duration given as text (`"2m"`) or milliseconds.
    pub fn duration(&self, key: &str, default: Duration) -> RhaiResultOf<Duration> {
        match self.map.get(key) {
            None => Ok(default),
            Some(v) if v.is_string() => self.call.duration(&v.clone().into_string()?),
            Some(v) => {
                let ms = v.as_int().map_err(|t| self.wrong(key, "a duration such as \"2m\" or milliseconds", t))?;
                Ok(Duration::from_millis(ms.max(0) as u64))
            }
        }
    }

    pub fn int(&self, key: &str) -> RhaiResultOf<Option<i64>> {
        self.map.get(key).map(|v| v.as_int().map_err(|t| self.wrong(key, "an int", t))).transpose()
    }

    pub fn string(&self, key: &str) -> RhaiResultOf<Option<String>> {
        self.map.get(key).map(|v| v.clone().into_string().map_err(|t| self.wrong(key, "a string", t))).transpose()
    }

    /// A list of strings (`["a", "b"]`); empty when absent.
    pub fn strings(&self, key: &str) -> RhaiResultOf<Vec<String>> {
        let Some(v) = self.map.get(key) else { return Ok(Vec::new()) };
        let list = v.clone().into_array().map_err(|t| self.wrong(key, "an array of strings", t))?;
        list.into_iter().map(|x| x.into_string().map_err(|t| self.wrong(key, "an array of strings", t))).collect()
    }

    /// true or false; false when absent.
    pub fn flag(&self, key: &str) -> RhaiResultOf<bool> {
        self.flag_or(key, false)
    }

    /// true or false; `default` when absent.
    pub fn flag_or(&self, key: &str, default: bool) -> RhaiResultOf<bool> {
        self.map.get(key).map_or(Ok(default), |v| v.as_bool().map_err(|t| self.wrong(key, "true or false", t)))
    }
}
