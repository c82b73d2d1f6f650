//! Staging: getting a release (or a Spark distribution) onto a component's host before it is
//! installed, once per host and release.
//!
//! A path that exists on this machine is the source of truth: a `.tar.gz`/`.tgz` is uploaded as
//! it is, a directory is packed first (deterministically, so the same directory always gives the
//! same archive). On the host it lands in `<staging_dir>/<sha256>/` (`[ssh] staging_dir`,
//! default `~/.mldb-upgrade/staging`), is checked by its SHA-256 after the upload, unpacked
//! there, and marked complete. Every later component on that host, and a resumed run, finds the
//! marker and reuses it: nothing is uploaded twice. A path that exists only on the host (a
//! release directory or tarball put there by the operator) is used in place.
//!
//! Pre-flight stages on several hosts at once. Hosts that share one staging directory (one
//! machine under several names, a home directory on NFS) would unpack into it at the same
//! time: a `.staging-id` file in the directory, created once by whichever host comes first and
//! removed once every host has read it, tells them apart, and hosts reading the same id go one
//! after the other.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::SystemTime;

use futures::StreamExt;
use sha2::{Digest, Sha256};

use super::{join, q, ssh_error, ComponentError, Control, Result, SHORT};
use crate::config::Component;
use crate::ssh::PathKind;

/// Time limit of uploading or unpacking a release.
const TRANSFER: std::time::Duration = std::time::Duration::from_secs(1800);
/// Hosts a release is staged on at once: their uploads share this machine's link, their
/// unpacking runs on each host.
const STAGE_CONCURRENCY: usize = 8;
/// The file in a staging directory that tells hosts sharing it apart from hosts that do not
/// ([`Control::staging_id`]).
const STAGING_ID: &str = ".staging-id";
/// The file that says a staged release was unpacked completely.
const COMPLETE: &str = ".complete";

/// A release staged on one host.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StagedCopy {
    pub host: String,
    /// The unpacked release there.
    pub dir: String,
    /// What its `bin/openmldb --version` prints there (O§4.1).
    pub version: String,
}

/// What is known of staged releases within this process.
#[derive(Debug, Default)]
pub struct StagingMemory {
    /// `host` → the absolute staging directory there.
    roots: Mutex<HashMap<String, String>>,
    /// `(host, sha256)` → the unpacked release directory there.
    staged: Mutex<HashMap<(String, String), String>>,
    /// What a dry run has planned to install: `host:dir/part` → version.
    pub planned: Mutex<HashMap<String, String>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// `openmldb-0.9.3-linux.tar.gz` → `openmldb-0.9.3-linux`: the directory a release archive
/// unpacks to (O§4.4).
pub fn unpacked_name(file_name: &str) -> Option<&str> {
    file_name.strip_suffix(".tar.gz").or_else(|| file_name.strip_suffix(".tgz"))
}

/// The SHA-256 of a local file, hex; remembered per (path, size, mtime).
pub fn local_sha256(path: &Path) -> std::io::Result<String> {
    type Key = (PathBuf, u64, Option<SystemTime>);
    static CACHE: OnceLock<Mutex<HashMap<Key, String>>> = OnceLock::new();
    let meta = std::fs::metadata(path)?;
    let key = (path.to_path_buf(), meta.len(), meta.modified().ok());
    if let Some(sum) = lock(CACHE.get_or_init(Default::default)).get(&key) {
        return Ok(sum.clone());
    }
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
    }
    let sum: String = hasher.finalize().iter().map(|b| format!("{b:02x}")).collect();
    lock(CACHE.get_or_init(Default::default)).insert(key, sum.clone());
    Ok(sum)
}

/// Local release directories packed in this process: the temporary directory that holds the
/// archives, and which directory gave which archive.
#[derive(Default)]
struct Packed {
    dir: Option<tempfile::TempDir>,
    archives: HashMap<PathBuf, PathBuf>,
}

fn packed_archives() -> &'static Mutex<Packed> {
    static PACKED: OnceLock<Mutex<Packed>> = OnceLock::new();
    PACKED.get_or_init(Default::default)
}

/// A local release directory packed as `<name>.tar.gz` (once per process and directory), in a
/// temporary directory of this process that [`remove_packed_archives`] removes.
fn packed(dir: &Path, name: &str) -> std::io::Result<PathBuf> {
    let mut packed = lock(packed_archives());
    if let Some(archive) = packed.archives.get(dir) {
        if archive.is_file() {
            return Ok(archive.clone());
        }
    }
    if packed.dir.is_none() {
        packed.dir = Some(tempfile::Builder::new().prefix("mldb-upgrade-packed-").tempdir()?);
    }
    let out = packed.dir.as_ref().map(|d| d.path().to_path_buf()).unwrap_or_default();
    // One archive per directory: two release directories of the same name pack side by side.
    let archive = out.join(packed.archives.len().to_string()).join(format!("{name}.tar.gz"));
    std::fs::create_dir_all(archive.parent().unwrap_or(&out))?;
    crate::release::pack_dir(dir, name, &archive)?;
    packed.archives.insert(dir.to_path_buf(), archive.clone());
    Ok(archive)
}

/// Removes the archives this process packed (each is tens of MB; a run that did not remove them
/// would leave them in the temporary directory for good). Called when a command ends, however
/// it ends.
pub fn remove_packed_archives() {
    let mut packed = lock(packed_archives());
    packed.archives.clear();
    if let Some(dir) = packed.dir.take() {
        let path = dir.path().display().to_string();
        if let Err(e) = dir.close() {
            tracing::warn!("could not remove the packed release archives in {path}: {e}");
        }
    }
}

/// How the steps of staging `source` on `c`'s host are named in errors.
fn staging_step(source: &str, c: &Component) -> String {
    format!("staging {source} on {}", c.host)
}

impl Control<'_> {
    /// The first component of each host of the cluster, in the cluster's order: what is staged
    /// is staged once per host.
    fn one_per_host(&self) -> Vec<&Component> {
        let mut hosts: Vec<&Component> = Vec::new();
        for c in &self.config.components {
            if !hosts.iter().any(|h| h.host == c.host) {
                hosts.push(c);
            }
        }
        hosts
    }

    fn bad_release(&self, c: &Component, step: &str, path: &str, reason: String) -> ComponentError {
        ComponentError::BadRelease {
            step: step.to_string(),
            endpoint: c.endpoint.to_string(),
            host: c.host.clone(),
            path: path.to_string(),
            reason,
        }
    }

    /// The absolute staging directory on `c`'s host.
    async fn staging_root(&self, c: &Component, step: &str) -> Result<String> {
        if let Some(root) = lock(&self.memory.roots).get(&c.host) {
            return Ok(root.clone());
        }
        let configured = self.ssh.access(&c.host).staging_dir;
        let root = if configured.starts_with('/') {
            configured
        } else {
            let home = self.run(c, step, "printf '%s' \"$HOME\"", SHORT, "the host must set $HOME").await?;
            join(home.stdout.trim(), configured.strip_prefix("~/").unwrap_or(&configured))
        };
        lock(&self.memory.roots).insert(c.host.clone(), root.clone());
        Ok(root)
    }

    /// Makes `source` available as a directory on `c`'s host (see the module docs) and returns
    /// that directory.
    pub(super) async fn stage(&self, c: &Component, step: &str, source: &str) -> Result<String> {
        let local = Path::new(source);
        let name = local.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
        let not_archive = || "expected a directory, a .tar.gz or a .tgz".to_string();
        if local.is_dir() {
            let archive =
                packed(local, &name).map_err(|e| self.bad_release(c, step, source, format!("cannot pack it: {e}")))?;
            return self.stage_archive(c, step, &archive, &name).await;
        }
        if local.is_file() {
            let dir_name = unpacked_name(&name).ok_or_else(|| self.bad_release(c, step, source, not_archive()))?;
            return self.stage_archive(c, step, local, dir_name).await;
        }
        match self.ssh.path_kind(&c.host, source).await.map_err(ssh_error(c, step))? {
            PathKind::Dir => Ok(source.trim_end_matches('/').to_string()),
            PathKind::File => {
                let dir_name = unpacked_name(&name).ok_or_else(|| self.bad_release(c, step, source, not_archive()))?;
                let out = self
                    .run(c, step, &format!("sha256sum {}", q(source)), super::install::COPY, "the host needs sha256sum")
                    .await?;
                let sum = out.stdout.split_whitespace().next().unwrap_or_default().to_string();
                self.unpack_staged(c, step, source, &sum, dir_name).await
            }
            PathKind::Missing | PathKind::Other => {
                Err(self.bad_release(c, step, source, format!("it exists neither on this machine nor on {}", c.host)))
            }
        }
    }

    /// Uploads a local archive to the host's staging directory unless the same bytes are there
    /// already, and unpacks it once.
    async fn stage_archive(&self, c: &Component, step: &str, archive: &Path, dir_name: &str) -> Result<String> {
        let sum = local_sha256(archive)
            .map_err(|e| self.bad_release(c, step, &archive.display().to_string(), format!("cannot read it: {e}")))?;
        let key = (c.host.clone(), sum.clone());
        if let Some(dir) = lock(&self.memory.staged).get(&key) {
            return Ok(dir.clone());
        }
        let root = self.staging_root(c, step).await?;
        let at = join(&root, &sum[..16]);
        let file_name = archive.file_name().and_then(|n| n.to_str()).unwrap_or("release.tar.gz");
        let remote = join(&at, file_name);
        let target = join(&at, dir_name);
        let probe = format!(
            "if [ -f {marker} ] && [ -d {target} ]; then echo complete; elif [ -f {remote} ]; then sha256sum {remote}; fi",
            marker = q(&join(&at, COMPLETE)),
            target = q(&target),
            remote = q(&remote),
        );
        let found = self.run(c, step, &probe, super::install::COPY, "the host needs sha256sum").await?.stdout;
        let short = &sum[..12];
        if found.trim() == "complete" {
            (self.say)(&format!("{} is already staged on {} (sha256 {short}...): reused", file_name, c.host));
            lock(&self.memory.staged).insert(key, target.clone());
            return Ok(target);
        }
        let uploaded = found.split_whitespace().next() == Some(sum.as_str());
        if self.dry_run {
            let size = std::fs::metadata(archive).map(|m| m.len()).unwrap_or(0);
            if !uploaded {
                (self.say)(&format!(
                    "[dry-run] {}: would upload {} ({:.1} MB, sha256 {short}...) to {remote} and check its checksum",
                    c.host,
                    archive.display(),
                    size as f64 / 1e6
                ));
            }
            (self.say)(&format!("[dry-run] {}: would unpack it into {target}", c.host));
            lock(&self.memory.staged).insert(key, target.clone());
            return Ok(target);
        }
        if !uploaded {
            self.run(c, step, &format!("mkdir -p {}", q(&at)), SHORT, "check permissions of the staging directory")
                .await?;
            (self.say)(&format!("uploading {} to {}:{remote}", archive.display(), c.host));
            self.ssh.upload(&c.host, archive, &remote).await.map_err(ssh_error(c, step))?;
            let check = self.run(c, step, &format!("sha256sum {}", q(&remote)), TRANSFER, "retry").await?.stdout;
            if check.split_whitespace().next() != Some(sum.as_str()) {
                let _ = self.exec(c, step, &format!("rm -f {}", q(&remote)), SHORT).await;
                return Err(self.bad_release(
                    c,
                    step,
                    &remote,
                    format!("the upload arrived damaged (sha256 {} instead of {sum}); run again", check.trim()),
                ));
            }
        }
        let dir = self.unpack_staged(c, step, &remote, &sum, dir_name).await?;
        lock(&self.memory.staged).insert(key, dir.clone());
        Ok(dir)
    }

    /// Unpacks an archive on the host into `<staging>/<sha256>/` once (a complete marker says it
    /// was); returns the unpacked directory.
    async fn unpack_staged(
        &self,
        c: &Component,
        step: &str,
        archive: &str,
        sum: &str,
        dir_name: &str,
    ) -> Result<String> {
        let root = self.staging_root(c, step).await?;
        let at = join(&root, &sum[..16.min(sum.len())]);
        let target = join(&at, dir_name);
        let marker = join(&at, COMPLETE);
        let command = format!(
            "if [ -f {m} ] && [ -d {t} ]; then exit 0; fi; mkdir -p {at} && rm -rf {t} && tar xzf {a} -C {at} && test -d {t} && touch {m}",
            m = q(&marker),
            t = q(&target),
            at = q(&at),
            a = q(archive)
        );
        if self.dry_run {
            (self.say)(&format!("[dry-run] {}: would unpack {archive} into {target} (once)", c.host));
            return Ok(target);
        }
        let next = format!("the archive must unpack to a directory named {dir_name}");
        self.run(c, step, &command, TRANSFER, &next).await?;
        Ok(target)
    }

    /// Stages `source` on every host of the cluster (once per host) and runs its
    /// `bin/openmldb --version` there, so a release that cannot run on the cluster's machines
    /// (another architecture, a damaged upload) is found before anything is changed.
    ///
    /// Up to [`STAGE_CONCURRENCY`] hosts at once, except hosts whose staging directories are
    /// one and the same ([`Control::staging_id`]: one machine under several names, a home on
    /// NFS): those go one after the other, and all but the first find the copy complete. A dry
    /// run goes one host at a time, so that its lines come in the cluster's order. The copies
    /// come back in that order, and the first host that failed, in that order, gives the error
    /// once every host is done.
    pub async fn stage_everywhere(&self, source: &str) -> Result<Vec<StagedCopy>> {
        let hosts = self.one_per_host();
        if self.dry_run {
            let mut copies = Vec::new();
            for c in hosts {
                copies.push(self.stage_on(c, source).await?);
            }
            return Ok(copies);
        }
        let ids: Vec<Result<String>> = futures::stream::iter(
            hosts.iter().map(|c| async move { self.staging_id(c, &staging_step(source, c)).await }),
        )
        .buffered(STAGE_CONCURRENCY)
        .collect()
        .await;
        // The ids are only needed for the grouping below: nothing is left behind.
        futures::stream::iter(hosts.iter().map(|c| self.forget_staging_id(c, source)))
            .buffered(STAGE_CONCURRENCY)
            .collect::<Vec<()>>()
            .await;
        // Hosts by the staging directory they share, in the cluster's order.
        let mut results: Vec<Option<Result<StagedCopy>>> = hosts.iter().map(|_| None).collect();
        let mut groups: Vec<(String, Vec<usize>)> = Vec::new();
        for (i, id) in ids.into_iter().enumerate() {
            match id {
                Ok(id) => match groups.iter_mut().find(|(g, _)| *g == id) {
                    Some((_, members)) => members.push(i),
                    None => groups.push((id, vec![i])),
                },
                Err(e) => results[i] = Some(Err(e)),
            }
        }
        let hosts = &hosts;
        let staged: Vec<Vec<(usize, Result<StagedCopy>)>> =
            futures::stream::iter(groups.iter().map(|(_, members)| async move {
                let mut done = Vec::new();
                for &i in members {
                    done.push((i, self.stage_on(hosts[i], source).await));
                }
                done
            }))
            .buffered(STAGE_CONCURRENCY)
            .collect()
            .await;
        for (i, result) in staged.into_iter().flatten() {
            results[i] = Some(result);
        }
        results.into_iter().flatten().collect()
    }

    /// What names the staging directory of `c`'s host wherever it is seen from: written there
    /// once (the first of several hosts sharing the directory to link it in wins) and read
    /// back. Hosts that read the same id share one directory and must not unpack into it
    /// at the same time.
    async fn staging_id(&self, c: &Component, step: &str) -> Result<String> {
        let root = self.staging_root(c, step).await?;
        let file = join(&root, STAGING_ID);
        let nanos = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or_default();
        let fresh = format!("{}-{}-{nanos}", c.host, std::process::id());
        // Written whole under a name of its own, then linked into place: a link is made at once
        // or not at all (also on NFS), so no host reads the file half written. Where hard links
        // are not supported, a rename that never replaces the file stands in.
        let command = format!(
            "mkdir -p {root} && printf '%s' {fresh} > {own} && {{ ln {own} {file} 2>/dev/null || mv -n {own} {file} 2>/dev/null; rm -f {own}; cat {file}; }}",
            root = q(&root),
            fresh = q(&fresh),
            own = q(&format!("{file}.{fresh}")),
            file = q(&file)
        );
        let out = self.run(c, step, &command, SHORT, "check permissions of the staging directory").await?;
        Ok(out.stdout.trim().to_string())
    }

    /// Removes the file [`Control::staging_id`] wrote (best effort: a file left behind is only a
    /// few bytes, and the next run reads it as its own id).
    async fn forget_staging_id(&self, c: &Component, source: &str) {
        let Some(root) = lock(&self.memory.roots).get(&c.host).cloned() else { return };
        let step = staging_step(source, c);
        if let Err(e) = self.exec(c, &step, &format!("rm -f {}", q(&join(&root, STAGING_ID))), SHORT).await {
            tracing::debug!("{step}: could not remove {STAGING_ID}: {e}");
        }
    }

    /// Stages `source` on `c`'s host and reads the version of the staged binary there.
    async fn stage_on(&self, c: &Component, source: &str) -> Result<StagedCopy> {
        let step = staging_step(source, c);
        let dir = self.stage(c, &step, source).await?;
        let version = match self.version_in(c, &dir, false, &step).await {
            Ok(version) => version,
            Err(_) if self.dry_run => super::NOT_READ_YET.to_string(),
            Err(e) => return Err(e),
        };
        Ok(StagedCopy { host: c.host.clone(), dir, version })
    }

    /// Removes the staged copy of `source` (a path on this machine) from every host of the
    /// cluster; returns `host:dir` of each removed copy.
    pub async fn unstage(&self, source: &str) -> Result<Vec<String>> {
        let local = Path::new(source);
        let archive = if local.is_dir() {
            let name = local.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            packed(local, name).ok()
        } else {
            local.is_file().then(|| local.to_path_buf())
        };
        let Some(sum) = archive.and_then(|a| local_sha256(&a).ok()) else { return Ok(Vec::new()) };
        let mut removed = Vec::new();
        for c in self.one_per_host() {
            let step = "removing the staged release";
            let at = join(&self.staging_root(c, step).await?, &sum[..16]);
            let command = format!("if [ -d {at} ]; then rm -rf {at} && echo removed; fi", at = q(&at));
            if self.dry_run {
                (self.say)(&format!("[dry-run] {}: would remove {at}", c.host));
                continue;
            }
            if self.run(c, step, &command, TRANSFER, "remove it by hand").await?.stdout.trim() == "removed" {
                removed.push(format!("{}:{at}", c.host));
            }
            lock(&self.memory.staged).remove(&(c.host.clone(), sum.clone()));
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archive_names_o4_4() {
        assert_eq!(unpacked_name("openmldb-0.9.3-linux.tar.gz"), Some("openmldb-0.9.3-linux"));
        assert_eq!(unpacked_name("spark-3.2.1-bin-openmldbspark.tgz"), Some("spark-3.2.1-bin-openmldbspark"));
        assert_eq!(unpacked_name("openmldb.zip"), None);
    }

    #[test]
    fn sha256_of_a_file_is_the_known_digest() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, "abc").unwrap();
        assert_eq!(local_sha256(&file).unwrap(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn a_directory_packs_to_the_same_archive_every_time() {
        let dir = tempfile::tempdir().unwrap();
        let release = dir.path().join("openmldb-9.9.9-linux");
        for f in ["bin/openmldb", "conf/a", "conf/b", "udf/x"] {
            std::fs::create_dir_all(release.join(f).parent().unwrap()).unwrap();
            std::fs::write(release.join(f), f).unwrap();
        }
        let one = dir.path().join("one.tar.gz");
        let two = dir.path().join("two.tar.gz");
        crate::release::pack_dir(&release, "openmldb-9.9.9-linux", &one).unwrap();
        crate::release::pack_dir(&release, "openmldb-9.9.9-linux", &two).unwrap();
        assert_eq!(local_sha256(&one).unwrap(), local_sha256(&two).unwrap());
    }
}
