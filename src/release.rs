//! An OpenMLDB release package on this machine (`openmldb-X.Y.Z-linux` as a directory or a
//! `.tar.gz`, O§4): where it is and which version it holds, read before anything is touched.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::config::ClusterConfig;

/// A release found on this machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Release {
    /// `X.Y.Z-hash`, as `bin/openmldb --version` prints it (O§4.1).
    pub version: String,
    /// The release directory (a tarball is unpacked first).
    pub dir: String,
}

/// Where tarballs are unpacked: `.mldb-upgrade/releases` next to the cluster config, or a
/// directory under the system's temporary directory without one.
pub fn staging_dir(config: Option<&ClusterConfig>) -> PathBuf {
    config
        .and_then(|c| c.path.parent().map(|d| d.join(".mldb-upgrade/releases")))
        .unwrap_or_else(|| std::env::temp_dir().join("mldb-upgrade-releases"))
}

/// Reads a release's version: `<dir>/bin/openmldb --version`, unpacking a tarball first into
/// `staging`.
pub fn inspect(path: &Path, staging: &Path) -> Result<Release, String> {
    let dir = if path.is_dir() {
        path.to_path_buf()
    } else if path.is_file()
        && (path.to_string_lossy().ends_with(".tar.gz") || path.to_string_lossy().ends_with(".tgz"))
    {
        std::fs::create_dir_all(staging).map_err(|e| format!("cannot create {}: {e}", staging.display()))?;
        unpack(path, staging)
            .map_err(|e| format!("cannot unpack {} into {}: {e}", path.display(), staging.display()))?
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
    let version = crate::cluster::component::parse_version_output(&text)
        .ok_or_else(|| format!("{} --version printed no `openmldb version X.Y.Z` line: {text:?}", binary.display()))?;
    Ok(Release { version, dir: dir.display().to_string() })
}

/// Unpacks `openmldb-X.Y.Z-linux.tar.gz` (or `.tgz`) into `into`; returns the directory it holds,
/// named after the tarball (O§4.4).
pub fn unpack(tarball: &Path, into: &Path) -> std::io::Result<PathBuf> {
    let file = std::fs::File::open(tarball)?;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    archive.set_preserve_permissions(true);
    archive.unpack(into)?;
    let name = tarball
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_suffix(".tar.gz").or_else(|| n.strip_suffix(".tgz")))
        .unwrap_or_default();
    Ok(into.join(name))
}

/// Packs `dir` as `name/` into a `.tar.gz` at `archive` (a local release directory, to upload).
pub fn pack_dir(dir: &Path, name: &str, archive: &Path) -> std::io::Result<()> {
    let file = std::fs::File::create(archive)?;
    let encoder = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
    let mut builder = tar::Builder::new(encoder);
    builder.append_dir_all(name, dir)?;
    builder.into_inner()?.finish()?;
    Ok(())
}
