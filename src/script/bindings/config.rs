//! `config::`: the cluster config as scripts see it ([`crate::config`]): the components and
//! where they run.

use super::{to_array, Call, RhaiResultOf};
use crate::cluster::topology::Role;
use crate::config::{ClusterConfig, Component};
use rhai::plugin::*;
use rhai::Array;
use serde::Serialize;

const NS: &str = "config";

/// One component as scripts see it.
#[derive(Serialize)]
struct ComponentRow {
    role: Role,
    endpoint: String,
    host: String,
    dir: String,
    daemon: bool,
    /// Endpoints of the other components running from the same directory.
    shared_with: Vec<String>,
}

fn row(config: &ClusterConfig, c: &Component) -> ComponentRow {
    ComponentRow {
        role: c.role,
        endpoint: c.endpoint.to_string(),
        host: c.host.clone(),
        dir: c.dir.clone(),
        daemon: c.daemon,
        shared_with: config.sharing(c).iter().map(|s| s.endpoint.to_string()).collect(),
    }
}

/// A directory several components run from.
#[derive(Serialize)]
struct SharedDir {
    host: String,
    dir: String,
    /// `nameserver 10.0.0.5:7527`, in config order.
    components: Vec<String>,
}

#[export_module]
pub mod api {
    use super::*;

    /// Every component of the cluster config: #{role, endpoint, host, dir, daemon, shared_with},
    /// in config order; shared_with lists the endpoints running from the same directory.
    ///
    /// Example: `let tablets = config::components().filter(|c| c.role == "tablet");`
    #[rhai_fn(volatile, return_raw)]
    pub fn components(ctx: NativeCallContext) -> RhaiResultOf<Array> {
        let call = Call::new(&ctx, NS)?;
        let config = call.config()?;
        to_array(config.components.iter().map(|c| row(config, c)))
    }

    /// The directories more than one component runs from (conf/hosts lines without a WORKDIR
    /// share $OPENMLDB_HOME): [#{host, dir, components}], components as "role endpoint".
    ///
    /// Example: `for d in config::shared_dirs() { print(`${d.host}:${d.dir}: ${d.components}`); }`
    #[rhai_fn(volatile, return_raw)]
    pub fn shared_dirs(ctx: NativeCallContext) -> RhaiResultOf<Array> {
        let call = Call::new(&ctx, NS)?;
        let shared = call.config()?.shared_dirs().into_iter().map(|(host, dir, components)| SharedDir {
            host,
            dir,
            components: components.iter().map(|c| format!("{} {}", c.role, c.endpoint)).collect(),
        });
        to_array(shared)
    }

    /// The components of one role (nameserver, tablet, apiserver, taskmanager), in config order.
    ///
    /// Example: `for ns in config::components("nameserver") { print(ns.endpoint); }`
    #[rhai_fn(name = "components", volatile, return_raw)]
    pub fn components_of(ctx: NativeCallContext, role: &str) -> RhaiResultOf<Array> {
        let call = Call::new(&ctx, NS)?;
        let role: Role = role.parse().map_err(|e: String| call.fail(e))?;
        let config = call.config()?;
        to_array(config.components_of(role).map(|c| row(config, c)))
    }
}
