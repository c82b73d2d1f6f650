//! `config::`: the cluster config as scripts see it ([`crate::config`]): the components and
//! where they run.

use super::{to_array, Call, RhaiResultOf};
use crate::cluster::topology::Role;
use crate::config::Component;
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
}

impl From<&Component> for ComponentRow {
    fn from(c: &Component) -> Self {
        ComponentRow {
            role: c.role,
            endpoint: c.endpoint.to_string(),
            host: c.host.clone(),
            dir: c.dir.clone(),
            daemon: c.daemon,
        }
    }
}

#[export_module]
pub mod api {
    use super::*;

    /// Every component of the cluster config: #{role, endpoint, host, dir, daemon}, in config order.
    ///
    /// Example: `let tablets = config::components().filter(|c| c.role == "tablet");`
    #[rhai_fn(volatile, return_raw)]
    pub fn components(ctx: NativeCallContext) -> RhaiResultOf<Array> {
        let call = Call::new(&ctx, NS)?;
        to_array(call.config()?.components.iter().map(ComponentRow::from))
    }

    /// The components of one role (nameserver, tablet, apiserver, taskmanager), in config order.
    ///
    /// Example: `for ns in config::components("nameserver") { print(ns.endpoint); }`
    #[rhai_fn(name = "components", volatile, return_raw)]
    pub fn components_of(ctx: NativeCallContext, role: &str) -> RhaiResultOf<Array> {
        let call = Call::new(&ctx, NS)?;
        let role: Role = role.parse().map_err(|e: String| call.fail(e))?;
        to_array(call.config()?.components_of(role).map(ComponentRow::from))
    }
}
