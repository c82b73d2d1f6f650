//! `release::`: an OpenMLDB release package on this machine ([`crate::release`]), read before
//! anything is touched, and its staged copies on the cluster's hosts
//! ([`crate::cluster::component::staging`]).

use super::{to_array, to_map, Call, RhaiResultOf};
use rhai::plugin::*;
use rhai::{Array, Map};

#[export_module]
pub mod api {
    use super::*;

    /// Reads a release on this machine before anything is touched, without running anything
    /// from it: an openmldb-X.Y.Z-linux directory or .tar.gz. The version comes from its name,
    /// its conf/openmldb-env.sh (OPENMLDB_VERSION) and its TaskManager jar, which must agree.
    /// Returns #{version, name, path, read_from, batchjob_jars} (batchjob_jars: the names of the
    /// taskmanager/lib/openmldb-batchjob*.jar files a TaskManager would take, sorted; a release
    /// has one); throws when it is missing, is not a release (no bin/openmldb or bin/start.sh)
    /// or disagrees with itself.
    ///
    /// Example: `let target = release::inspect(setting("release")); print(target.version);`
    #[rhai_fn(volatile, return_raw)]
    pub fn inspect(ctx: NativeCallContext, path: &str) -> RhaiResultOf<Map> {
        let call = Call::new(&ctx, "release")?;
        let release = crate::release::inspect(std::path::Path::new(path)).map_err(|e| call.fail(e))?;
        to_map(&release)
    }

    /// Copies a release on this machine to every host of the cluster, once per host: uploaded
    /// into the host's staging directory ([ssh] staging_dir, default ~/.mldb-upgrade/staging),
    /// checked by SHA-256 and unpacked; a copy already there with the same checksum is reused
    /// (a resumed run uploads nothing). Then runs its bin/openmldb --version on each host, so a
    /// release the cluster's machines cannot run is found before anything changes. Returns
    /// [#{host, dir, version}]. component::install finds the staged copy by itself. In --dry-run
    /// it says what it would upload.
    ///
    /// Example: `for copy in release::stage(setting("release")) { print(`${copy.host}: ${copy.version}`); }`
    #[rhai_fn(volatile, return_raw)]
    pub fn stage(ctx: NativeCallContext, path: &str) -> RhaiResultOf<Array> {
        let call = Call::new(&ctx, "release")?;
        let say = |text: &str| call.host.say(text);
        let control = call.host.control(&call.name, &say).map_err(|e| call.error(e))?;
        let copies = call.run(control.stage_everywhere(path))?;
        to_array(&copies)
    }

    /// Removes the staged copies of a release (see release::stage) from every host of the
    /// cluster. Returns the "host:dir" of each copy removed. In --dry-run it removes nothing.
    ///
    /// Example: `release::unstage(setting("release"));`
    #[rhai_fn(volatile, return_raw)]
    pub fn unstage(ctx: NativeCallContext, path: &str) -> RhaiResultOf<Array> {
        let call = Call::new(&ctx, "release")?;
        let say = |text: &str| call.host.say(text);
        let control = call.host.control(&call.name, &say).map_err(|e| call.error(e))?;
        let removed = call.run(control.unstage(path))?;
        Ok(removed.into_iter().map(Dynamic::from).collect())
    }
}
