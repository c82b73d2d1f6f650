//! Sandbox releases: directories laid out like OpenMLDB's release tarball (O§4.4) whose
//! programs are the simulator, so replacing `bin/` really changes what runs.
//!
//! `openmldb-X.Y.Z-linux/`:
//! - `bin/openmldb` (the `openmldb-sim` binary), `bin/openmldb.version`, `bin/start.sh` (the
//!   real script's behaviour, O§1), `bin/mon` (the simulator acting as mon, O§1.8);
//! - `conf/{nameserver,tablet,apiserver}.flags.template`, `conf/taskmanager.properties.template`,
//!   `conf/hosts` (the real default inventory, O§2.2) and `conf/openmldb-env.sh` (the real
//!   variables and defaults, O§2.1, with `export OPENMLDB_VERSION=X.Y.Z`: like the real file it
//!   records the release's version);
//! - `sbin/`: stand-ins of OpenMLDB's `release/sbin/*.sh` ([`SBIN`]), written anew with the real
//!   scripts' behaviour and quirks, so a sandbox cluster can be laid out and run from a
//!   `conf/hosts` the way an operator does it: `sbin/deploy-all.sh` (rsync to each WORKDIR,
//!   `sbin/deploy.sh` regenerating `conf/<role>.flags` from the templates), `sbin/start-all.sh`,
//!   `sbin/stop-all.sh`, the per-role start/stop scripts, `clear-all.sh`, `openmldb-cli.sh` (O§2).
//!   Each script's header says what it does differently; in short:
//!   - nothing is downloaded (the sandbox has no network): where the real `deploy-all.sh` would
//!     fetch `spark-3.2.1-bin-openmldbspark.tgz` or `zookeeper-3.4.14.tar.gz`, the stand-in exits
//!     1 with an error; [`place_spark_tgz`] puts the release's Spark distribution where it looks;
//!   - `SANDBOX_SLEEP_SCALE` scales the scripts' fixed sleeps, as it scales `bin/start.sh`'s;
//!   - `clear-all.sh` deletes nothing when a ZooKeeper WORKDIR has no `data/` (the real one then
//!     deletes every directory where its command started);
//!   - `init_env.sh` (as root: limits.conf, swapoff, THP) is not shipped;
//!   - there is no `tools/openmldb_ops.py`, so `start-all.sh`'s recoverdata step reports a failure
//!     (and, as in the real script, carries on).
//!
//!   `mldb-upgrade sandbox up` does not use them: it lays its cluster out itself.
//! - `taskmanager/bin/taskmanager.sh`, `taskmanager/conf/`, `taskmanager/lib/` with
//!   `openmldb-taskmanager-X.Y.Z.jar` and `openmldb-batchjob-X.Y.Z.jar` (placeholders whose
//!   content is the version; the real batch-job jar is the shaded `openmldb-batchjob` artifact,
//!   O§4.3) and the simulator binary the script runs;
//! - `tools/`, `udf/`.
//!
//! Beside it, `spark-3.2.1-bin-openmldbspark-X.Y.Z/` stands for the OpenMLDB Spark distribution:
//! `jars/openmldb-batch-X.Y.Z.jar` carries the batch version the TaskManager reports, and
//! [`SPARK_JARS`] stand for Spark's own jars, the same in every version (what a YARN upgrade
//! re-uploads to `spark.yarn.jars` besides the batch jar).
//!
//! `--broken` adds `openmldb.broken` next to each simulator binary: every component of that
//! release fails at start, as a bad build would.
//!
//! `--unknown-version ROLES` adds `bin/openmldb.unset-version` naming roles (nameserver,
//! tablet, apiserver) whose servers never set their brpc server version: they start, register
//! and serve, but `GET /version` answers `unknown`, brpc's answer when `server.set_version` was
//! not called (C§1.4; `src/cmd/openmldb.cc` calls it after `Start`, and for a tablet only after
//! registering in ZooKeeper, openmldb.cc:276-281). `bin/openmldb --version` still reports the
//! release. A component of such a release passes its start and fails the version check.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

pub const START_SH: &str = include_str!("start.sh");
/// `sbin/` of a sandbox release: the stand-ins of OpenMLDB's `release/sbin/` scripts, by name.
pub const SBIN: [(&str, &str); 17] = [
    ("init.sh", include_str!("sbin/init.sh")),
    ("deploy-all.sh", include_str!("sbin/deploy-all.sh")),
    ("deploy.sh", include_str!("sbin/deploy.sh")),
    ("start-all.sh", include_str!("sbin/start-all.sh")),
    ("stop-all.sh", include_str!("sbin/stop-all.sh")),
    ("start-tablets.sh", include_str!("sbin/start-tablets.sh")),
    ("stop-tablets.sh", include_str!("sbin/stop-tablets.sh")),
    ("start-nameservers.sh", include_str!("sbin/start-nameservers.sh")),
    ("stop-nameservers.sh", include_str!("sbin/stop-nameservers.sh")),
    ("start-apiservers.sh", include_str!("sbin/start-apiservers.sh")),
    ("stop-apiservers.sh", include_str!("sbin/stop-apiservers.sh")),
    ("start-taskmanagers.sh", include_str!("sbin/start-taskmanagers.sh")),
    ("stop-taskmanagers.sh", include_str!("sbin/stop-taskmanagers.sh")),
    ("start-zks.sh", include_str!("sbin/start-zks.sh")),
    ("stop-zks.sh", include_str!("sbin/stop-zks.sh")),
    ("clear-all.sh", include_str!("sbin/clear-all.sh")),
    ("openmldb-cli.sh", include_str!("sbin/openmldb-cli.sh")),
];
/// The Spark distribution's base name (O§2.4).
pub const SPARK_DIST: &str = "spark-3.2.1-bin-openmldbspark";
/// Placeholders of Spark's own jars in the sandbox Spark distribution's `jars/`.
pub const SPARK_JARS: [&str; 2] = ["scala-library-2.12.15.jar", "spark-core_2.12-3.2.1.jar"];

#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    #[error("`{0}` is not a release version; expected X.Y.Z, e.g. 0.9.3")]
    BadVersion(String),
    #[error(
        "the simulator binary openmldb-sim is not next to {exe}; build it with `cargo build --bins` \
         (or install it beside mldb-upgrade)"
    )]
    NoSimulator { exe: PathBuf },
    #[error("`{0}` is not a server role whose version can be left unset; expected nameserver, tablet or apiserver")]
    BadRole(String),
    #[error("cannot write the release at {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// What `build` produced.
#[derive(Debug, Clone)]
pub struct Release {
    pub version: String,
    /// `X.Y.Z-<hash>`, what `--version`, `/version` and GetVersion report.
    pub full_version: String,
    pub dir: PathBuf,
    pub spark_dir: PathBuf,
    pub tarballs: Vec<PathBuf>,
}

/// `X.Y.Z-<7 hex>`, the hash derived from the version so every build of it agrees.
pub fn full_version(version: &str) -> String {
    let digest = Sha256::digest(format!("openmldb-{version}").as_bytes());
    let hash: String = digest.iter().take(4).map(|b| format!("{b:02x}")).collect();
    format!("{version}-{}", &hash[..7])
}

/// The `openmldb-sim` binary next to the running executable.
pub fn simulator_binary() -> Result<PathBuf, ReleaseError> {
    let exe = std::env::current_exe().unwrap_or_default();
    let candidate = exe.parent().map(|d| d.join("openmldb-sim")).unwrap_or_default();
    if candidate.is_file() {
        Ok(candidate)
    } else {
        Err(ReleaseError::NoSimulator { exe })
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ReleaseError + '_ {
    move |source| ReleaseError::Io { path: path.to_path_buf(), source }
}

fn write(path: &Path, text: &str, mode: u32) -> Result<(), ReleaseError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io(parent))?;
    }
    std::fs::write(path, text).map_err(io(path))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(io(path))
}

fn copy_binary(from: &Path, to: &Path) -> Result<(), ReleaseError> {
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent).map_err(io(parent))?;
    }
    std::fs::copy(from, to).map_err(io(to))?;
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o755)).map_err(io(to))
}

fn validate(version: &str) -> Result<(), ReleaseError> {
    let parts: Vec<&str> = version.split('.').collect();
    if parts.len() != 3 || parts.iter().any(|p| p.is_empty() || !p.chars().all(|c| c.is_ascii_digit())) {
        return Err(ReleaseError::BadVersion(version.to_string()));
    }
    Ok(())
}

/// The batch-job jar in a sandbox release's `taskmanager/lib/`.
pub fn batchjob_jar_name(version: &str) -> String {
    format!("openmldb-batchjob-{version}.jar")
}

/// The directory name of a release, as the tarball unpacks (O§4.4).
pub fn release_dir_name(version: &str) -> String {
    format!("openmldb-{version}-linux")
}

/// What is wrong with a sandbox release, on purpose (for rehearsals and tests).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Faults {
    /// Every component fails at start (`--broken`).
    pub broken: bool,
    /// Server roles whose `/version` answers `unknown` (`--unknown-version`).
    pub unknown_version: Vec<String>,
}

/// The roles `--unknown-version` takes: the servers that answer `/version` (C§1.4).
pub const VERSION_ROLES: [&str; 3] = ["nameserver", "tablet", "apiserver"];

/// Lays out release `version` (and its Spark distribution) under `out`.
pub fn build(version: &str, out: &Path, faults: &Faults, tar: bool) -> Result<Release, ReleaseError> {
    validate(version)?;
    if let Some(bad) = faults.unknown_version.iter().find(|r| !VERSION_ROLES.contains(&r.as_str())) {
        return Err(ReleaseError::BadRole(bad.clone()));
    }
    let sim = simulator_binary()?;
    let full = full_version(version);
    let dir = out.join(release_dir_name(version));
    let spark_dir = out.join(format!("{SPARK_DIST}-{version}"));
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&spark_dir);

    copy_binary(&sim, &dir.join("bin/openmldb"))?;
    copy_binary(&sim, &dir.join("bin/mon"))?;
    write(&dir.join("bin/openmldb.version"), &format!("{full}\n"), 0o644)?;
    write(&dir.join("bin/start.sh"), START_SH, 0o755)?;
    for (name, text) in templates::ALL {
        write(&dir.join("conf").join(name), text, 0o644)?;
    }
    write(&dir.join("conf/openmldb-env.sh"), &templates::openmldb_env(version), 0o644)?;
    write(&dir.join("taskmanager/bin/taskmanager.sh"), templates::TASKMANAGER_SH, 0o755)?;
    write(&dir.join("taskmanager/conf/log4j.properties"), "log4j.rootLogger=INFO, stdout\n", 0o644)?;
    write(&dir.join(format!("taskmanager/lib/openmldb-taskmanager-{version}.jar")), &format!("{full}\n"), 0o644)?;
    write(&dir.join("taskmanager/lib").join(batchjob_jar_name(version)), &format!("{full}\n"), 0o644)?;
    copy_binary(&sim, &dir.join("taskmanager/lib/openmldb-taskmanager-sim"))?;
    write(&dir.join("tools/README"), templates::TOOLS_README, 0o644)?;
    std::fs::create_dir_all(dir.join("udf")).map_err(io(&dir))?;
    for (name, text) in SBIN {
        write(&dir.join("sbin").join(name), text, 0o755)?;
    }
    write(&spark_dir.join(format!("jars/openmldb-batch-{version}.jar")), &format!("{full}\n"), 0o644)?;
    for jar in SPARK_JARS {
        write(&spark_dir.join("jars").join(jar), &format!("placeholder of Spark 3.2.1's {jar}\n"), 0o644)?;
    }
    write(&spark_dir.join("RELEASE"), &format!("Spark 3.2.1 built for OpenMLDB {full}\n"), 0o644)?;
    if faults.broken {
        let reason = format!("sandbox release {version} was built with --broken\n");
        write(&dir.join("bin/openmldb.broken"), &reason, 0o644)?;
        write(&dir.join("taskmanager/lib/openmldb.broken"), &reason, 0o644)?;
    }
    if !faults.unknown_version.is_empty() {
        let roles: String = faults.unknown_version.iter().map(|r| format!("{r}\n")).collect();
        write(&dir.join("bin").join(crate::sim::process::UNSET_VERSION_FILE), &roles, 0o644)?;
    }
    let mut tarballs = Vec::new();
    if tar {
        let name = release_dir_name(version);
        tarballs.push(pack(&dir, &name, &out.join(format!("{name}.tar.gz")))?);
        let name = format!("{SPARK_DIST}-{version}");
        tarballs.push(pack(&spark_dir, &name, &out.join(format!("{name}.tgz")))?);
    }
    Ok(Release { version: version.to_string(), full_version: full, dir, spark_dir, tarballs })
}

/// Puts the Spark distribution `spark_dir` (a release's `spark_dir`) where `sbin/deploy-all.sh`
/// looks for it before it would download it (O§2.4): `<release_dir>/spark-3.2.1-bin-openmldbspark.tgz`,
/// unpacking to `spark-3.2.1-bin-openmldbspark/` as the real one does. `deploy-all.sh` untars it
/// in the release directory and symlinks it as `$SPARK_HOME` when that does not exist. Returns
/// the tarball's path.
pub fn place_spark_tgz(release_dir: &Path, spark_dir: &Path) -> Result<PathBuf, ReleaseError> {
    pack(spark_dir, SPARK_DIST, &release_dir.join(format!("{SPARK_DIST}.tgz")))
}

/// Writes `target`, a .tar.gz of directory `dir` under the name `name`.
fn pack(dir: &Path, name: &str, target: &Path) -> Result<PathBuf, ReleaseError> {
    let file = std::fs::File::create(target).map_err(io(target))?;
    let encoder = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
    let mut archive = tar::Builder::new(encoder);
    archive.append_dir_all(name, dir).map_err(io(target))?;
    archive.into_inner().and_then(|gz| gz.finish()).map_err(io(target))?;
    Ok(target.to_path_buf())
}

pub mod templates;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_version_is_stable_and_shaped_like_openmldb_o4_1() {
        let v = full_version("0.9.3");
        assert_eq!(v, full_version("0.9.3"));
        assert!(v.starts_with("0.9.3-") && v.len() == "0.9.3-".len() + 7, "{v}");
        assert_ne!(v, full_version("0.9.2"));
    }

    #[test]
    fn unknown_version_takes_only_roles_that_serve_a_version() {
        let out = tempfile::tempdir().unwrap();
        let faults = Faults { unknown_version: vec!["taskmanager".into()], ..Faults::default() };
        assert!(
            matches!(build("0.9.3", out.path(), &faults, false), Err(ReleaseError::BadRole(r)) if r == "taskmanager")
        );
    }

    #[test]
    fn rejects_versions_that_are_not_x_y_z() {
        for bad in ["0.9", "0.9.3.1", "v0.9.3", "0.9.x", ""] {
            assert!(validate(bad).is_err(), "{bad}");
        }
    }
}
