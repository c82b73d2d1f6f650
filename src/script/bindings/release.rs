//! `release::`: an OpenMLDB release package on this machine ([`crate::release`]), read before
//! anything is touched.

use super::{to_map, Call, RhaiResultOf};
use rhai::plugin::*;
use rhai::Map;

#[export_module]
pub mod api {
    use super::*;

    /// Reads a release on this machine before anything is touched: an openmldb-X.Y.Z-linux
    /// directory or .tar.gz (unpacked into .mldb-upgrade/releases next to the cluster config).
    /// Returns #{version, dir}; throws when it is missing or its bin/openmldb --version does not run.
    ///
    /// Example: `let target = release::inspect(setting("release")); print(target.version);`
    #[rhai_fn(volatile, return_raw)]
    pub fn inspect(ctx: NativeCallContext, path: &str) -> RhaiResultOf<Map> {
        let call = Call::new(&ctx, "release")?;
        let staging = crate::release::staging_dir(call.host.config.as_deref());
        let release = crate::release::inspect(std::path::Path::new(path), &staging).map_err(|e| call.fail(e))?;
        to_map(&release)
    }
}
