//! `cluster::`: the cluster config as scripts see it (components and their hosts), and
//! `release::`-style inspection of a release before anything is touched.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rhai::{Array, Dynamic, EvalAltResult, Map, Module, NativeCallContext};

use super::{Doc, Effect};
use crate::script::{CallError, Host};

type Res<T> = Result<T, Box<EvalAltResult>>;

fn component_map(c: &crate::config::Component) -> Dynamic {
    let m: Map = [
        ("role", Dynamic::from(c.role.to_string())),
        ("endpoint", c.endpoint.to_string().into()),
        ("host", c.host.clone().into()),
        ("dir", c.dir.clone().into()),
        ("daemon", c.daemon.into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.into(), v))
    .collect();
    m.into()
}

/// Reads a release's version: `<dir>/bin/openmldb --version`, unpacking a tarball first into
/// the staging directory next to the cluster config.
pub fn inspect_release(path: &Path, staging: &Path) -> Result<(String, PathBuf), String> {
    let dir = if path.is_dir() {
        path.to_path_buf()
    } else if path.is_file()
        && (path.to_string_lossy().ends_with(".tar.gz") || path.to_string_lossy().ends_with(".tgz"))
    {
        std::fs::create_dir_all(staging).map_err(|e| format!("cannot create {}: {e}", staging.display()))?;
        crate::sandbox::release::unpack(path, staging).map_err(|e| e.to_string())?
    } else {
        return Err(format!(
            "release {} not found on this machine: give an openmldb-X.Y.Z-linux directory or .tar.gz (--set release=PATH)",
            path.display()
        ));
    };
    let binary = dir.join("bin/openmldb");
    let out = std::process::Command::new(&binary).arg("--version").output().map_err(|e| {
        format!("cannot run {} --version: {e}; is {} an OpenMLDB release?", binary.display(), dir.display())
    })?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let version =
        text.lines().find_map(|l| l.strip_prefix("openmldb version ")).map(|v| v.trim().to_string()).ok_or_else(
            || format!("{} --version printed no `openmldb version X.Y.Z` line: {text:?}", binary.display()),
        )?;
    Ok((version, dir))
}

pub fn module(host: &Arc<Host>) -> Module {
    let mut m = Module::new();
    let h = host.clone();
    Doc::new("components", &[], "array", Effect::ReadOnly, "Every component of the cluster config: #{role, endpoint, host, dir, daemon}, in config order.\n\nExample: `let tablets = cluster::components().filter(|c| c.role == \"tablet\");`")
        .set_into(&mut m, move |ctx: NativeCallContext| -> Res<Array> {
            let config = h.config.as_ref().ok_or_else(|| CallError::Failed("cluster::components needs a cluster: pass --cluster FILE".into()).at(&ctx))?;
            Ok(config.components.iter().map(component_map).collect())
        });
    let h = host.clone();
    Doc::new("components", &["role: string"], "array", Effect::ReadOnly, "The components of one role (nameserver, tablet, apiserver, taskmanager), in config order.\n\nExample: `for ns in cluster::components(\"nameserver\") { print(ns.endpoint); }`")
        .set_into(&mut m, move |ctx: NativeCallContext, role: &str| -> Res<Array> {
            let role: crate::cluster::topology::Role = role.parse().map_err(|e: String| CallError::Failed(e).at(&ctx))?;
            let config = h.config.as_ref().ok_or_else(|| CallError::Failed("cluster::components needs a cluster: pass --cluster FILE".into()).at(&ctx))?;
            Ok(config.components_of(role).map(component_map).collect())
        });
    let h = host.clone();
    Doc::new("inspect_release", &["path: string"], "map", Effect::ReadOnly, "Reads a release on this machine before anything is touched: an openmldb-X.Y.Z-linux directory\nor .tar.gz (unpacked into .mldb-upgrade/releases next to the cluster config). Returns\n#{version, dir}; throws when it is missing or its bin/openmldb --version does not run.\n\nExample: `let target = cluster::inspect_release(setting(\"release\")); print(target.version);`")
        .set_into(&mut m, move |ctx: NativeCallContext, path: &str| -> Res<Map> {
            let staging = h
                .config
                .as_ref()
                .and_then(|c| c.path.parent().map(|d| d.join(".mldb-upgrade/releases")))
                .unwrap_or_else(|| std::env::temp_dir().join("mldb-upgrade-releases"));
            let (version, dir) = inspect_release(Path::new(path), &staging).map_err(|e| CallError::Failed(e).at(&ctx))?;
            Ok([("version", Dynamic::from(version)), ("dir", dir.display().to_string().into())]
                .into_iter()
                .map(|(k, v)| (k.into(), v))
                .collect())
        });
    m
}
