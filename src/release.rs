//! An OpenMLDB release package on this machine (`openmldb-X.Y.Z-linux` as a directory or a
//! `.tar.gz`, O§4.4): where it is and which version it holds, read before anything is touched
//! and without running anything from it, so the operator's machine may be a laptop of another
//! OS or architecture. The version comes from what the release says of itself: its name, its
//! version file `conf/openmldb-env.sh` (`OPENMLDB_VERSION`, O§2.1) and the TaskManager jar
//! `taskmanager/lib/openmldb-taskmanager-X.Y.Z.jar` (O§4.3). They must agree. The full
//! version with its build hash is what `bin/openmldb --version` prints on a cluster host once
//! the release is staged there (`release::stage`).

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::SystemTime;

use serde::Serialize;

/// A release found on this machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Release {
    /// `X.Y.Z`, as the release names itself.
    pub version: String,
    /// The directory the release is (or unpacks to): `openmldb-X.Y.Z-linux`.
    pub name: String,
    /// The path given.
    pub path: String,
    /// Where the version was read, for the operator: `the name ..., conf/openmldb-env.sh, ...`.
    pub read_from: String,
    /// The batch-job jars in `taskmanager/lib/`, sorted: the files a TaskManager would take for
    /// its batch jobs when `batchjob.jar.path` is empty ([`is_batchjob_jar`]). A release has
    /// one; in YARN mode `batchjob.jar.path` names a copy of it on HDFS (O§3.4).
    pub batchjob_jars: Vec<String>,
}

/// A file name the TaskManager takes for the batch-job jar when it searches `../lib/`:
/// `openmldb-batchjob*.jar`, not javadoc or sources
/// (`java/openmldb-taskmanager/.../util/BatchJobUtil.scala` lines 56-70, `findBatchJobJar`).
pub fn is_batchjob_jar(name: &str) -> bool {
    name.starts_with("openmldb-batchjob")
        && name.ends_with(".jar")
        && !name.contains("javadoc")
        && !name.contains("sources")
}

/// What the release's files say.
#[derive(Debug, Default, Clone)]
struct Contents {
    /// Top-level directory names (an archive should hold exactly one).
    tops: Vec<String>,
    has_binary: bool,
    has_start_sh: bool,
    env_file: Option<String>,
    taskmanager_jars: Vec<String>,
    batchjob_jars: Vec<String>,
}

impl Contents {
    /// Notes one regular file, `rel` relative to the release root.
    fn note_file(&mut self, rel: &str) {
        if let Some(name) = rel.strip_prefix("taskmanager/lib/") {
            if !name.contains('/') && is_batchjob_jar(name) {
                self.batchjob_jars.push(name.to_string());
            }
        }
        self.note(rel);
    }

    /// Notes one entry, `rel` relative to the release root.
    fn note(&mut self, rel: &str) {
        match rel {
            "bin/openmldb" => self.has_binary = true,
            "bin/start.sh" => self.has_start_sh = true,
            _ => {
                if let Some(jar) = rel.strip_prefix("taskmanager/lib/") {
                    if let Some(v) = crate::cluster::component::parse_taskmanager_jar(jar) {
                        self.taskmanager_jars.push(v);
                    }
                }
            }
        }
    }
}

/// `export OPENMLDB_VERSION=0.9.3` in openmldb-env.sh → `0.9.3`.
fn env_file_version(text: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let line = line.trim();
        let line = line.strip_prefix("export ").unwrap_or(line).trim();
        let value = line.strip_prefix("OPENMLDB_VERSION=")?;
        let value = value.trim().trim_matches(|c| c == '"' || c == '\'');
        (!value.is_empty()).then(|| value.to_string())
    })
}

/// `openmldb-0.9.3-linux` → `0.9.3`.
fn name_version(name: &str) -> Option<String> {
    let rest = name.strip_prefix("openmldb-")?;
    let version = rest.split('-').next()?;
    let parts: Vec<&str> = version.split('.').collect();
    (parts.len() == 3 && parts.iter().all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit())))
        .then(|| version.to_string())
}

fn read_dir_release(dir: &Path) -> Result<Contents, String> {
    let mut contents = Contents::default();
    for rel in ["bin/openmldb", "bin/start.sh"] {
        if dir.join(rel).is_file() {
            contents.note(rel);
        }
    }
    if let Ok(entries) = std::fs::read_dir(dir.join("taskmanager/lib")) {
        for entry in entries.flatten() {
            let rel = format!("taskmanager/lib/{}", entry.file_name().to_string_lossy());
            // Java's File.isFile follows symlinks.
            if std::fs::metadata(entry.path()).is_ok_and(|m| m.is_file()) {
                contents.note_file(&rel);
            } else {
                contents.note(&rel);
            }
        }
    }
    contents.env_file = std::fs::read_to_string(dir.join("conf/openmldb-env.sh")).ok();
    Ok(contents)
}

/// [`read_archive`], remembered per (path, size, mtime): a run reads its release more than once
/// (the script, pre-flight, the TaskManager phase), and reading a release of a few hundred MB
/// through takes seconds. A changed file is read again.
fn read_archive_once(path: &Path) -> Result<Contents, String> {
    type Key = (PathBuf, u64, Option<SystemTime>);
    static READ: OnceLock<Mutex<HashMap<Key, Contents>>> = OnceLock::new();
    let read = || READ.get_or_init(Default::default).lock().unwrap_or_else(|p| p.into_inner());
    let Ok(meta) = std::fs::metadata(path) else { return read_archive(path) };
    let key = (path.to_path_buf(), meta.len(), meta.modified().ok());
    if let Some(contents) = read().get(&key) {
        return Ok(contents.clone());
    }
    let contents = read_archive(path)?;
    read().insert(key, contents.clone());
    Ok(contents)
}

fn read_archive(path: &Path) -> Result<Contents, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("cannot open it: {e}"))?;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let mut contents = Contents::default();
    let entries = archive.entries().map_err(|e| format!("not a gzip'ed tar archive: {e}"))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| format!("damaged archive: {e}"))?;
        let entry_path = entry.path().map_err(|e| format!("damaged archive: {e}"))?.to_string_lossy().into_owned();
        let entry_path = entry_path.trim_start_matches("./").to_string();
        let (top, rel) = entry_path.split_once('/').unwrap_or((entry_path.as_str(), ""));
        if top.is_empty() {
            continue;
        }
        if !contents.tops.iter().any(|t| t == top) {
            contents.tops.push(top.to_string());
        }
        if rel == "conf/openmldb-env.sh" {
            let mut text = String::new();
            entry.read_to_string(&mut text).map_err(|e| format!("damaged archive: {e}"))?;
            contents.env_file = Some(text);
        } else if entry.header().entry_type().is_file() {
            contents.note_file(rel);
        } else {
            contents.note(rel.trim_end_matches('/'));
        }
    }
    Ok(contents)
}

/// Reads a release on this machine without running anything from it.
pub fn inspect(path: &Path) -> Result<Release, String> {
    let shown = path.display();
    let file_name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    let archive_name = file_name.strip_suffix(".tar.gz").or_else(|| file_name.strip_suffix(".tgz"));
    let (name, contents) = if path.is_dir() {
        (file_name.to_string(), read_dir_release(path)?)
    } else if path.is_file() {
        let Some(name) = archive_name else {
            return Err(format!(
                "release {shown} is neither a directory nor a .tar.gz/.tgz: give an openmldb-X.Y.Z-linux directory or tarball"
            ));
        };
        let contents = read_archive_once(path).map_err(|e| format!("release {shown}: {e}"))?;
        if contents.tops != [name] {
            return Err(format!(
                "release {shown} must unpack to one directory named {name} (O§4.4); it holds {}",
                if contents.tops.is_empty() { "nothing".to_string() } else { contents.tops.join(", ") }
            ));
        }
        (name.to_string(), contents)
    } else {
        return Err(format!(
            "release {shown} not found on this machine: give an openmldb-X.Y.Z-linux directory or .tar.gz (--set release=PATH)"
        ));
    };
    let missing: Vec<&str> = [("bin/openmldb", contents.has_binary), ("bin/start.sh", contents.has_start_sh)]
        .iter()
        .filter(|(_, has)| !has)
        .map(|(file, _)| *file)
        .collect();
    if !missing.is_empty() {
        return Err(format!("{shown} is not an OpenMLDB release: it has no {}", missing.join(" and ")));
    }
    let mut found: Vec<(String, String)> = Vec::new();
    if let Some(v) = name_version(&name) {
        found.push((v, format!("the name {name}")));
    }
    if let Some(v) = contents.env_file.as_deref().and_then(env_file_version) {
        found.push((v.clone(), format!("conf/openmldb-env.sh (OPENMLDB_VERSION={v})")));
    }
    if let Some(v) = contents.taskmanager_jars.first() {
        found.push((v.clone(), format!("taskmanager/lib/openmldb-taskmanager-{v}.jar")));
    }
    let Some((version, _)) = found.first().cloned() else {
        return Err(format!(
            "cannot tell the version of {shown}: its name is not openmldb-X.Y.Z-linux, conf/openmldb-env.sh sets no \
             OPENMLDB_VERSION and taskmanager/lib has no openmldb-taskmanager-X.Y.Z.jar"
        ));
    };
    if let Some((other, place)) = found.iter().find(|(v, _)| *v != version) {
        return Err(format!(
            "{shown} disagrees with itself about its version: {} says {version}, {place} says {other}",
            found[0].1
        ));
    }
    let mut batchjob_jars = contents.batchjob_jars;
    batchjob_jars.sort();
    Ok(Release {
        version,
        name,
        path: path.display().to_string(),
        read_from: found.into_iter().map(|(_, place)| place).collect::<Vec<_>>().join(", "),
        batchjob_jars,
    })
}

/// Packs `dir` as `name/` into a `.tar.gz` at `archive` (a local release directory, to upload).
/// Entries go in sorted order and symlinks stay symlinks, so the same directory always packs to
/// the same bytes (the staged copy on a host is found again by its checksum).
pub fn pack_dir(dir: &Path, name: &str, archive: &Path) -> std::io::Result<()> {
    let file = std::fs::File::create(archive)?;
    let encoder = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
    let mut builder = tar::Builder::new(encoder);
    builder.follow_symlinks(false);
    append_sorted(&mut builder, dir, Path::new(name))?;
    builder.into_inner()?.finish()?;
    Ok(())
}

fn append_sorted<W: std::io::Write>(builder: &mut tar::Builder<W>, dir: &Path, name: &Path) -> std::io::Result<()> {
    builder.append_dir(name, dir)?;
    let mut entries: Vec<std::fs::DirEntry> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let inner = name.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            append_sorted(builder, &path, &inner)?;
        } else {
            builder.append_path_with_name(&path, &inner)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn release_dir(root: &Path, name: &str, env_version: &str, jar: &str) -> std::path::PathBuf {
        let dir = root.join(name);
        for (file, text) in [
            ("bin/openmldb", "ELF (not run)".to_string()),
            ("bin/start.sh", "#!/bin/bash".to_string()),
            ("conf/openmldb-env.sh", format!("#! /usr/bin/env bash\nexport OPENMLDB_VERSION={env_version}\n")),
            (&format!("taskmanager/lib/openmldb-taskmanager-{jar}.jar"), String::new()),
            (&format!("taskmanager/lib/openmldb-batchjob-{jar}.jar"), String::new()),
            (&format!("taskmanager/lib/openmldb-batchjob-{jar}-sources.jar"), String::new()),
        ] {
            std::fs::create_dir_all(dir.join(file).parent().unwrap()).unwrap();
            std::fs::write(dir.join(file), text).unwrap();
        }
        dir
    }

    #[test]
    fn reads_the_version_from_name_version_file_and_jar_without_running_o4_4() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = release_dir(tmp.path(), "openmldb-0.9.3-linux", "0.9.3", "0.9.3");
        let r = inspect(&dir).unwrap();
        assert_eq!(r.version, "0.9.3");
        assert!(r.read_from.contains("OPENMLDB_VERSION=0.9.3"), "{}", r.read_from);
        let archive = tmp.path().join("openmldb-0.9.3-linux.tar.gz");
        pack_dir(&dir, "openmldb-0.9.3-linux", &archive).unwrap();
        let r = inspect(&archive).unwrap();
        assert_eq!((r.version.as_str(), r.name.as_str()), ("0.9.3", "openmldb-0.9.3-linux"));
        assert!(r.read_from.contains("openmldb-taskmanager-0.9.3.jar"), "{}", r.read_from);
        assert_eq!(r.batchjob_jars, ["openmldb-batchjob-0.9.3.jar"], "sources jars are not batch-job jars");
        assert_eq!(inspect(&dir).unwrap().batchjob_jars, ["openmldb-batchjob-0.9.3.jar"]);
    }

    /// BatchJobUtil.scala's findBatchJobJar: the prefix, .jar, no javadoc or sources.
    #[test]
    fn batchjob_jars_are_what_the_taskmanager_would_pick() {
        assert!(is_batchjob_jar("openmldb-batchjob-0.9.3.jar"));
        assert!(is_batchjob_jar("openmldb-batchjob-0.8.5-SNAPSHOT.jar"));
        for not in [
            "openmldb-batchjob-0.9.3-javadoc.jar",
            "openmldb-batchjob-0.9.3-sources.jar",
            "openmldb-batch-0.9.3.jar",
            "original-openmldb-batchjob-0.9.3.jar",
            "openmldb-batchjob-0.9.3.jar.md5",
        ] {
            assert!(!is_batchjob_jar(not), "{not}");
        }
    }

    #[test]
    fn a_release_that_disagrees_with_itself_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = release_dir(tmp.path(), "openmldb-0.9.3-linux", "0.9.2", "0.9.3");
        let err = inspect(&dir).unwrap_err();
        assert!(err.contains("disagrees") && err.contains("0.9.2"), "{err}");
    }

    #[test]
    fn an_archive_with_another_top_directory_or_no_binary_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = release_dir(tmp.path(), "openmldb-0.9.3-linux", "0.9.3", "0.9.3");
        let renamed = tmp.path().join("openmldb-0.9.4-linux.tar.gz");
        pack_dir(&dir, "openmldb-0.9.3-linux", &renamed).unwrap();
        assert!(inspect(&renamed).unwrap_err().contains("must unpack to one directory"));
        std::fs::remove_file(dir.join("bin/openmldb")).unwrap();
        assert!(inspect(&dir).unwrap_err().contains("no bin/openmldb"));
    }
}
