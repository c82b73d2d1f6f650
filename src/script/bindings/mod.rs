//! Script-visible primitives, one namespace per file: `zk::` in `zk.rs`, `ssh::` in `ssh.rs`,
//! `log::` in `log.rs`, `ns::`, `tablet::`, `wait::`, `upgrade::`, `component::`; global helpers (sleep, durations, settings, environment) in `core.rs`.
//!
//! Every function is registered through [`Doc`], so none exists without a signature and a doc
//! comment; `mldb-upgrade docs` prints them and a test fails if one is missing. Functions that
//! change something say so in their doc and do nothing but describe the change in `--dry-run`.

mod cluster;
mod component;
mod core;
mod journal;
mod log;
mod ns;
mod ssh;
mod tablet;
mod upgrade;
mod wait;
mod zk;

use std::sync::Arc;

use rhai::{Engine, FnNamespace, FuncRegistration, Module};

use super::Host;

/// Registers every namespace into `engine`.
pub fn register_all(engine: &mut Engine, host: &Arc<Host>) {
    core::register(engine, host);
    for (name, module) in [
        ("zk", zk::module(host)),
        ("ssh", ssh::module(host)),
        ("log", log::module()),
        ("ns", ns::module(host)),
        ("tablet", tablet::module(host)),
        ("wait", wait::module(host)),
        ("upgrade", upgrade::module(host)),
        ("journal", journal::module(host)),
        ("cluster", cluster::module(host)),
        ("component", component::module(host)),
    ] {
        engine.register_static_module(name, module.into());
    }
}

/// Whether a primitive changes anything outside the script.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Reads only; runs in `--dry-run` too.
    ReadOnly,
    /// Changes a host or the cluster; in `--dry-run` it only says what it would do.
    Changes,
}

/// A function's registration with its documentation.
pub struct Doc {
    name: &'static str,
    params: &'static [&'static str],
    returns: &'static str,
    text: &'static str,
    effect: Effect,
}

impl Doc {
    /// `params` are `name: type` strings; `text` is the doc, first line a summary, then details
    /// and an example.
    pub const fn new(
        name: &'static str,
        params: &'static [&'static str],
        returns: &'static str,
        effect: Effect,
        text: &'static str,
    ) -> Self {
        Doc { name, params, returns, text, effect }
    }

    fn registration(&self, namespace: FnNamespace) -> FuncRegistration {
        let mut comment: Vec<String> =
            self.text.trim().lines().map(|l| format!("/// {l}").trim_end().to_string()).collect();
        if self.effect == Effect::Changes {
            comment.push("///".into());
            comment.push("/// Changes something: in --dry-run it prints what it would do and does nothing.".into());
        }
        let mut info: Vec<&str> = self.params.to_vec();
        info.push(self.returns);
        FuncRegistration::new(self.name)
            .with_namespace(namespace)
            .with_volatility(true)
            .with_params_info(info)
            .with_comments([comment.join("\n")])
    }

    /// Registers into a namespace module (`zk::children`).
    pub fn set_into<A: 'static, const N: usize, const X: bool, R, const F: bool, FUNC>(
        &self,
        module: &mut Module,
        func: FUNC,
    ) where
        R: rhai::Variant + Clone,
        FUNC: rhai::RhaiNativeFunc<A, N, X, R, F> + Send + Sync + 'static,
    {
        self.registration(FnNamespace::Internal).set_into_module(module, func);
    }

    /// Registers as a global function (`sleep`).
    pub fn register<A: 'static, const N: usize, const X: bool, R, const F: bool, FUNC>(
        &self,
        engine: &mut Engine,
        func: FUNC,
    ) where
        R: rhai::Variant + Clone,
        FUNC: rhai::RhaiNativeFunc<A, N, X, R, F> + Send + Sync + 'static,
    {
        self.registration(FnNamespace::Global).register_into_engine(engine, func);
    }
}

/// Text of a duration argument given as `"30s"` or as milliseconds.
pub(crate) fn duration_arg(text: &str) -> Result<std::time::Duration, Box<rhai::EvalAltResult>> {
    crate::config::parse_duration(text).map_err(|m| m.into())
}
