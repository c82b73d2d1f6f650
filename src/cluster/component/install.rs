//! Install: staging a release on the component's host (a directory or tarball there, or a local
//! path uploaded first), backing up `bin/` (and `taskmanager/`), swapping directories in so a
//! failed copy never leaves a half-replaced one, rolling back from a backup, and replacing a
//! TaskManager's Spark distribution (O§6.1). The component must be stopped first.

use std::path::Path;
use std::time::Duration;

use super::probe::property_value;
use super::records::{Backup, SparkSwap};
use super::{fenced_tail, join, q, ssh_error, ComponentError, Control, InstallReport, Parts, Result, SHORT};
use crate::cluster::topology::Role;
use crate::config::Component;
use crate::ssh::PathKind;

/// Time limit of copying a `bin/`, `taskmanager/` or Spark distribution.
const COPY: Duration = Duration::from_secs(900);

/// `openmldb version 0.9.3-c5ffa75` → `0.9.3-c5ffa75` (O§4.1).
pub fn parse_version_output(text: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let rest = line.trim().split_once(" version ")?.1.trim();
        let version = rest.split_whitespace().next()?;
        version.chars().next().is_some_and(|c| c.is_ascii_digit()).then(|| version.to_string())
    })
}

/// `openmldb-taskmanager-0.9.3.jar` in a listing → `0.9.3` (O§4.3).
pub fn parse_taskmanager_jar(listing: &str) -> Option<String> {
    let mut versions: Vec<&str> = listing
        .lines()
        .filter_map(|name| name.trim().strip_prefix("openmldb-taskmanager-")?.strip_suffix(".jar"))
        .filter(|v| v.chars().next().is_some_and(|c| c.is_ascii_digit()))
        .collect();
    versions.sort();
    versions.first().map(|v| v.to_string())
}

impl Control<'_> {
    /// The installed version: `bin/openmldb --version` (O§4.1), or for a TaskManager the
    /// version in `taskmanager/lib/openmldb-taskmanager-<ver>.jar` (O§4.3).
    pub async fn installed_version(&self, endpoint: &str) -> Result<String> {
        let c = self.component(endpoint)?;
        self.version_in(c, &c.dir, c.role == Role::Taskmanager, "reading the installed version").await
    }

    /// The version of the release rooted at `dir` on the component's host.
    async fn version_in(&self, c: &Component, dir: &str, taskmanager: bool, step: &str) -> Result<String> {
        let bad = |reason: String| ComponentError::BadRelease {
            step: step.to_string(),
            endpoint: c.endpoint.to_string(),
            host: c.host.clone(),
            path: dir.to_string(),
            reason,
        };
        if taskmanager {
            let lib = join(dir, "taskmanager/lib");
            let out = self.exec(c, step, &format!("ls {}", q(&lib)), SHORT).await?;
            if out.exit_code != 0 {
                return Err(bad(format!("cannot list {lib}: {}", out.stderr.trim())));
            }
            return parse_taskmanager_jar(&out.stdout)
                .ok_or_else(|| bad(format!("no openmldb-taskmanager-<version>.jar in {lib}")));
        }
        let binary = join(dir, "bin/openmldb");
        let out = self.exec(c, step, &format!("{} --version", q(&binary)), SHORT).await?;
        if out.exit_code != 0 {
            return Err(bad(format!(
                "`{binary} --version` exited with {}\n```\n{}\n```",
                out.exit_code,
                fenced_tail(&format!("{}{}", out.stdout, out.stderr), 10)
            )));
        }
        parse_version_output(&out.stdout).ok_or_else(|| {
            bad(format!("`{binary} --version` printed no `openmldb version X.Y.Z-hash` line: {}", out.stdout.trim()))
        })
    }

    /// Copies `bin/` (and `taskmanager/`) to `<install>/backup/<YYYYmmdd-HHMMSS>/`, after
    /// checking with `df` that the disk has room.
    pub async fn backup(&self, endpoint: &str, parts: Parts) -> Result<InstallReport> {
        let c = self.component(endpoint)?;
        let step = format!("backing up {} {}", c.role, c.endpoint);
        let dirs = parts.dirs();
        let quoted: Vec<String> = dirs.iter().map(|d| q(d)).collect();
        // Name and sizes in one read-only command: the host's clock names the backup.
        let probe = format!(
            "cd {dir} && ts=$(date +%Y%m%d-%H%M%S) && d=backup/$ts && n=1 && \
             while [ -e \"$d\" ]; do d=backup/$ts-$n; n=$((n+1)); done && echo \"$d\" && \
             du -sk {parts} | awk '{{s+=$1}} END {{print s}}' && df -Pk . | awk 'NR==2 {{print $4}}'",
            dir = q(&c.dir),
            parts = quoted.join(" ")
        );
        let out =
            self.run(c, &step, &probe, SHORT, &format!("check that {} holds {}", c.dir, dirs.join(" and "))).await?;
        let mut lines = out.stdout.lines().map(str::trim);
        let rel = lines.next().unwrap_or_default().to_string();
        let needed: u64 = lines.next().and_then(|l| l.parse().ok()).unwrap_or(0);
        let free: u64 = lines.next().and_then(|l| l.parse().ok()).unwrap_or(0);
        // A margin so the backup does not fill the disk the component writes its logs to.
        let with_margin = needed + needed / 10 + 64 * 1024;
        if free < with_margin {
            return Err(ComponentError::NoSpace {
                step,
                endpoint: endpoint.to_string(),
                host: c.host.clone(),
                dir: c.dir.clone(),
                free_kib: free,
                needed_kib: with_margin,
                next: format!("free space on {} (old backups are in {}/backup)", c.host, c.dir),
            });
        }
        let path = join(&c.dir, &rel);
        let version = self.installed_version(endpoint).await.unwrap_or_default();
        let copies: Vec<String> = quoted.iter().map(|d| format!("cp -a {d} {}/", q(&path))).collect();
        let command = format!("cd {} && mkdir -p {} && {}", q(&c.dir), q(&path), copies.join(" && "));
        self.change(c, &step, &command, COPY, &format!("remove the partial backup {path} and retry")).await?;
        let dirs: Vec<String> = dirs.iter().map(|d| d.to_string()).collect();
        let record = Backup { path: path.clone(), version: version.clone(), dirs: dirs.clone() };
        self.record(c, &step, "backups", &record).await?;
        if !self.dry_run {
            (self.say)(&format!("backed up {} of {} on {} to {path}", dirs.join(" and "), c.endpoint, c.host));
        }
        Ok(InstallReport {
            endpoint: endpoint.to_string(),
            host: c.host.clone(),
            path,
            dirs: dirs.iter().map(|d| d.to_string()).collect(),
            version,
            previous: None,
            dry_run: self.dry_run,
        })
    }

    /// Makes `source` (a directory on the host, a `.tar.gz`/`.tgz` on the host, or a local path)
    /// available as a directory on the component's host; returns it and the staging dir to
    /// remove afterwards.
    async fn stage(&self, c: &Component, step: &str, source: &str) -> Result<(String, Option<String>)> {
        let kind = self.ssh.path_kind(&c.host, source).await.map_err(ssh_error(c, step))?;
        let staging = join(&c.dir, ".mldb-staging");
        let bad = |reason: String| ComponentError::BadRelease {
            step: step.to_string(),
            endpoint: c.endpoint.to_string(),
            host: c.host.clone(),
            path: source.to_string(),
            reason,
        };
        let name = Path::new(source).file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
        let unpacked_name = |n: &str| n.strip_suffix(".tar.gz").or_else(|| n.strip_suffix(".tgz")).map(str::to_string);
        match kind {
            PathKind::Dir => Ok((source.trim_end_matches('/').to_string(), None)),
            PathKind::File => {
                let dir_name =
                    unpacked_name(&name).ok_or_else(|| bad("expected a directory, a .tar.gz or a .tgz".to_string()))?;
                self.unpack(c, step, source, &staging, &dir_name).await.map(|d| (d, Some(staging)))
            }
            PathKind::Missing | PathKind::Other => {
                let local = Path::new(source);
                if local.is_file() {
                    let dir_name = unpacked_name(&name)
                        .ok_or_else(|| bad("expected a directory, a .tar.gz or a .tgz".to_string()))?;
                    let remote = join(&staging, &name);
                    self.upload(c, step, &staging, local, &remote).await?;
                    return self.unpack(c, step, &remote, &staging, &dir_name).await.map(|d| (d, Some(staging)));
                }
                if local.is_dir() {
                    // Pack the local directory, upload it, unpack it on the host.
                    let archive =
                        std::env::temp_dir().join(format!("mldb-upgrade-{}-{name}.tar.gz", std::process::id()));
                    let packed = crate::release::pack_dir(local, &name, &archive)
                        .map_err(|e| bad(format!("cannot pack it: {e}")));
                    let result = async {
                        packed?;
                        let remote = join(&staging, &format!("{name}.tar.gz"));
                        self.upload(c, step, &staging, &archive, &remote).await?;
                        self.unpack(c, step, &remote, &staging, &name).await
                    }
                    .await;
                    let _ = std::fs::remove_file(&archive);
                    return result.map(|d| (d, Some(staging)));
                }
                Err(bad(format!("it exists neither on {} nor on this machine", c.host)))
            }
        }
    }

    async fn upload(&self, c: &Component, step: &str, staging: &str, local: &Path, remote: &str) -> Result<()> {
        if self.dry_run {
            (self.say)(&format!("[dry-run] {}: would upload {} to {remote}", c.host, local.display()));
            return Ok(());
        }
        self.run(c, step, &format!("mkdir -p {}", q(staging)), SHORT, "check permissions of the install dir").await?;
        (self.say)(&format!("uploading {} to {}:{remote}", local.display(), c.host));
        self.ssh.upload(&c.host, local, remote).await.map(|_| ()).map_err(ssh_error(c, step))
    }

    async fn unpack(&self, c: &Component, step: &str, tarball: &str, staging: &str, dir_name: &str) -> Result<String> {
        let target = join(staging, dir_name);
        let command = format!(
            "mkdir -p {s} && rm -rf {t} && tar xzf {tb} -C {s} && test -d {t}",
            s = q(staging),
            t = q(&target),
            tb = q(tarball)
        );
        if self.dry_run {
            (self.say)(&format!("[dry-run] {}: would run `{command}`", c.host));
            return Ok(target);
        }
        self.run(c, step, &command, COPY, &format!("the archive must unpack to a directory named {dir_name}")).await?;
        Ok(target)
    }

    /// `rm -rf X.installing && cp -a SRC X.installing && mv X X.old && mv X.installing X && rm -rf X.old`:
    /// a failed copy never leaves a half-replaced `X`; a failed swap puts the old one back.
    /// `keep_old` keeps the replaced directory under that name instead of deleting it; `carry`
    /// is a subdirectory copied from the old `X` into the new one (logs).
    fn swap_command(root: &str, target: &str, source: &str, keep_old: Option<&str>, carry: Option<&str>) -> String {
        let t = q(target);
        let new = q(&format!("{target}.installing"));
        let old_name = keep_old.map(str::to_string).unwrap_or_else(|| format!("{target}.old"));
        let old = q(&old_name);
        let mut command = format!(
            "cd {root} && rm -rf {new} && cp -a {src} {new} && rm -rf {old} && \
             if [ -e {t} ]; then mv {t} {old}; fi && {{ mv {new} {t} || {{ mv {old} {t}; exit 1; }}; }}",
            root = q(root),
            src = q(source),
        );
        if let Some(sub) = carry {
            let from = q(&format!("{old_name}/{sub}"));
            let into = q(&format!("{target}/{}", sub.rsplit_once('/').map_or("", |(p, _)| p)));
            command.push_str(&format!(" && if [ -d {from} ]; then cp -a {from} {into}; fi"));
        }
        if keep_old.is_none() {
            command.push_str(&format!(" && rm -rf {old}"));
        }
        command
    }

    /// Replaces `bin/` (and `taskmanager/`) from a release: a release dir or a
    /// `openmldb-X.Y.Z-linux.tar.gz` on the host, or a local path uploaded first. The release is
    /// checked (its `bin/openmldb --version` must run) before anything is touched.
    pub async fn install(&self, endpoint: &str, release: &str, parts: Parts) -> Result<InstallReport> {
        let c = self.component(endpoint)?;
        let step = format!("installing {release} on {} {}", c.role, c.endpoint);
        self.require_stopped(c, &step).await?;
        let (dir, staging) = self.stage(c, &step, release).await?;
        let version = if self.dry_run && staging.is_some() {
            String::from("(checked after unpacking)")
        } else {
            let v = self.version_in(c, &dir, false, &step).await?;
            if parts.taskmanager {
                self.version_in(c, &dir, true, &step).await?;
            }
            v
        };
        for d in parts.dirs() {
            let source = join(&dir, d);
            // The TaskManager's logs live under taskmanager/bin (job.log.path, O§1.2): keep them.
            let carry = (d == "taskmanager").then_some("bin/logs");
            let command = Self::swap_command(&c.dir, d, &source, None, carry);
            self.change(
                c,
                &step,
                &command,
                COPY,
                &format!("{}/{d} is unchanged or restored; fix the cause and retry", c.dir),
            )
            .await?;
        }
        let path = match staging {
            Some(staging) => {
                self.change(c, &step, &format!("rm -rf {}", q(&staging)), SHORT, "remove it by hand").await?;
                release.to_string()
            }
            None => dir,
        };
        if !self.dry_run {
            (self.say)(&format!("installed {version} ({}) on {} {}", parts.dirs().join(" and "), c.role, c.endpoint));
        }
        Ok(InstallReport {
            endpoint: endpoint.to_string(),
            host: c.host.clone(),
            path,
            dirs: parts.dirs().iter().map(|d| d.to_string()).collect(),
            version,
            previous: None,
            dry_run: self.dry_run,
        })
    }

    /// Restores `bin/` (and `taskmanager/`, when the backup has it) from a backup made by
    /// [`backup`](Self::backup).
    pub async fn rollback_install(&self, endpoint: &str, backup_dir: &str) -> Result<InstallReport> {
        let c = self.component(endpoint)?;
        let step = format!("restoring {backup_dir} on {} {}", c.role, c.endpoint);
        self.require_stopped(c, &step).await?;
        let backup = if backup_dir.starts_with('/') { backup_dir.to_string() } else { join(&c.dir, backup_dir) };
        let out = self
            .run(
                c,
                &step,
                &format!(
                    "cd {} && for d in bin taskmanager; do if [ -d \"$d\" ]; then echo \"$d\"; fi; done",
                    q(&backup)
                ),
                SHORT,
                &format!("give a directory made by component::backup (under {}/backup)", c.dir),
            )
            .await?;
        let dirs: Vec<String> = out.stdout.lines().map(|l| l.trim().to_string()).filter(|l| !l.is_empty()).collect();
        if dirs.is_empty() {
            return Err(ComponentError::BadRelease {
                step,
                endpoint: endpoint.to_string(),
                host: c.host.clone(),
                path: backup,
                reason: "it holds neither bin/ nor taskmanager/".into(),
            });
        }
        if dirs.iter().any(|d| d == "bin") {
            self.version_in(c, &backup, false, &step).await?;
        }
        for d in &dirs {
            let carry = (d == "taskmanager").then_some("bin/logs");
            let mut command = Self::swap_command(&c.dir, d, &join(&backup, d), None, carry);
            if d == "bin" {
                // A backup taken while the component ran holds its pid files: stale ones would
                // make start.sh think it still runs (O§1.4).
                let role = c.role.as_str();
                command.push_str(&format!(" && rm -f bin/{role}.pid bin/{role}.pid.child"));
            }
            self.change(c, &step, &command, COPY, &format!("{}/{d} is unchanged or restored; retry", c.dir)).await?;
        }
        let version = if self.dry_run {
            String::new()
        } else {
            self.version_in(c, &c.dir, c.role == Role::Taskmanager && dirs.iter().any(|d| d == "taskmanager"), &step)
                .await?
        };
        if !self.dry_run {
            (self.say)(&format!("restored {} of {} from {backup} ({version})", dirs.join(" and "), c.endpoint));
        }
        Ok(InstallReport {
            endpoint: endpoint.to_string(),
            host: c.host.clone(),
            path: backup,
            dirs,
            version,
            previous: None,
            dry_run: self.dry_run,
        })
    }

    /// Replaces a TaskManager's Spark distribution at its `spark.home` (O§6.1: before the
    /// TaskManager itself). The old one is kept beside it as `<spark.home>.previous-<time>`, and
    /// recorded (`spark/<endpoint>`) for [`Control::rollback_spark`].
    pub async fn install_spark(&self, endpoint: &str, spark_dir: &str) -> Result<InstallReport> {
        let c = self.taskmanager(endpoint, "component::install_spark")?;
        let step = format!("installing Spark {spark_dir} for taskmanager {}", c.endpoint);
        let spark_home = self.spark_home(c, &step).await?;
        let (dir, staging) = self.stage(c, &step, spark_dir).await?;
        // In dry-run an archive is not unpacked, so there is nothing to check yet.
        let version = match self.spark_version(c, &step, &dir).await {
            Ok(version) => version,
            Err(_) if self.dry_run && staging.is_some() => "(checked after unpacking)".to_string(),
            Err(e) => return Err(e),
        };
        let previous_version = self.spark_version(c, &step, &spark_home).await.unwrap_or_default();
        let stamp = self.exec(c, &step, "date +%Y%m%d-%H%M%S", SHORT).await?.stdout.trim().to_string();
        let previous = format!("{}.previous-{stamp}", spark_home.trim_end_matches('/'));
        let (parent, target) = split_parent(&spark_home);
        let command = Self::swap_command(&parent, &target, &dir, Some(&previous), None);
        self.change(c, &step, &command, COPY, &format!("{spark_home} is unchanged or restored; retry")).await?;
        let swap = SparkSwap { spark_home: spark_home.clone(), previous: previous.clone(), previous_version };
        self.record(c, &step, "spark", &swap).await?;
        if let Some(staging) = staging {
            self.change(c, &step, &format!("rm -rf {}", q(&staging)), SHORT, "remove it by hand").await?;
        }
        if !self.dry_run {
            (self.say)(&format!("installed Spark with openmldb-batch {version} at {spark_home} on {}", c.host));
        }
        Ok(InstallReport {
            endpoint: endpoint.to_string(),
            host: c.host.clone(),
            path: spark_home,
            dirs: vec![target],
            version,
            previous: Some(previous),
            dry_run: self.dry_run,
        })
    }

    /// Puts back the Spark distribution [`Control::install_spark`] replaced (its record
    /// `spark/<endpoint>`); the one it replaces is kept as `<spark.home>.rolled-back-<time>`.
    /// Returns `None` when no replacement is recorded.
    pub async fn rollback_spark(&self, endpoint: &str) -> Result<Option<InstallReport>> {
        let c = self.taskmanager(endpoint, "component::rollback_spark")?;
        let Some(swap) = self.recorded::<SparkSwap>("spark", endpoint).await? else { return Ok(None) };
        let step = format!("putting back the previous Spark {} for taskmanager {}", swap.previous, c.endpoint);
        let version = self.spark_version(c, &step, &swap.previous).await?;
        let stamp = self.exec(c, &step, "date +%Y%m%d-%H%M%S", SHORT).await?.stdout.trim().to_string();
        let replaced = format!("{}.rolled-back-{stamp}", swap.spark_home.trim_end_matches('/'));
        let (parent, target) = split_parent(&swap.spark_home);
        let command = Self::swap_command(&parent, &target, &swap.previous, Some(&replaced), None);
        let next = format!("{} is unchanged or restored; retry", swap.spark_home);
        self.change(c, &step, &command, COPY, &next).await?;
        self.change(c, &step, &format!("rm -rf {}", q(&swap.previous)), SHORT, "remove it by hand").await?;
        self.forget(c, &step, "spark").await?;
        if !self.dry_run {
            (self.say)(&format!("put back Spark with openmldb-batch {version} at {} on {}", swap.spark_home, c.host));
        }
        Ok(Some(InstallReport {
            endpoint: endpoint.to_string(),
            host: c.host.clone(),
            path: swap.spark_home,
            dirs: vec![target],
            version,
            previous: Some(replaced),
            dry_run: self.dry_run,
        }))
    }

    fn taskmanager(&self, endpoint: &str, function: &'static str) -> Result<&Component> {
        let c = self.component(endpoint)?;
        if c.role != Role::Taskmanager {
            return Err(ComponentError::WrongRole {
                function,
                endpoint: endpoint.to_string(),
                role: c.role,
                expected: "taskmanagers",
            });
        }
        Ok(c)
    }

    /// The TaskManager's `spark.home` (O§3.4), as an absolute path on its host.
    async fn spark_home(&self, c: &Component, step: &str) -> Result<String> {
        let properties = join(&c.dir, "conf/taskmanager.properties");
        let next = "the TaskManager needs conf/taskmanager.properties";
        let props = self.run(c, step, &format!("cat {}", q(&properties)), SHORT, next).await?;
        let spark_home = property_value(&props.stdout, "spark.home").filter(|v| !v.is_empty()).ok_or_else(|| {
            ComponentError::Other {
                step: step.to_string(),
                endpoint: c.endpoint.to_string(),
                reason: "spark.home is empty in conf/taskmanager.properties, so the TaskManager uses its \
                         SPARK_HOME environment variable, which this tool cannot see; set spark.home"
                    .into(),
            }
        })?;
        Ok(join(&c.dir, &spark_home))
    }

    /// The openmldb-batch version of the Spark distribution at `dir`: its
    /// `jars/openmldb-batch-<version>.jar` (O§4.3).
    async fn spark_version(&self, c: &Component, step: &str, dir: &str) -> Result<String> {
        let check = format!("ls {} | grep -E '^openmldb-batch-.*\\.jar$'", q(&join(dir, "jars")));
        let out = self.exec(c, step, &check, SHORT).await?;
        let version = out
            .stdout
            .lines()
            .next()
            .and_then(|n| n.trim().strip_prefix("openmldb-batch-")?.strip_suffix(".jar").map(str::to_string));
        version.ok_or_else(|| ComponentError::BadRelease {
            step: step.to_string(),
            endpoint: c.endpoint.to_string(),
            host: c.host.clone(),
            path: dir.to_string(),
            reason: "no jars/openmldb-batch-*.jar: not an OpenMLDB Spark distribution".into(),
        })
    }
}

/// `/opt/spark` → (`/opt`, `spark`): the directory a swap runs in and the name it swaps.
fn split_parent(path: &str) -> (String, String) {
    match path.trim_end_matches('/').rsplit_once('/') {
        Some(("", name)) => ("/".to_string(), name.to_string()),
        Some((parent, name)) => (parent.to_string(), name.to_string()),
        None => (".".to_string(), path.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_version_output_o4_1() {
        assert_eq!(parse_version_output("openmldb version 0.9.2-abc1234\n").as_deref(), Some("0.9.2-abc1234"));
        let release = "openmldb version 0.8.5-1f2e3d4\nDebug build (NDEBUG not #defined)\n";
        assert_eq!(parse_version_output(release).as_deref(), Some("0.8.5-1f2e3d4"));
        assert_eq!(parse_version_output("usage: openmldb\n"), None);
    }

    #[test]
    fn parses_taskmanager_jar_o4_3() {
        let ls = "openmldb-batchjob-0.9.3.jar\nopenmldb-taskmanager-0.9.3.jar\nopenmldb-taskmanager-sim\n";
        assert_eq!(parse_taskmanager_jar(ls).as_deref(), Some("0.9.3"));
        assert_eq!(parse_taskmanager_jar("x.jar\n"), None);
    }

    #[test]
    fn swap_keeps_the_old_dir_until_the_new_one_is_in_place() {
        let cmd = Control::swap_command("/srv/t", "bin", "/rel/bin", None, None);
        assert_eq!(
            cmd,
            "cd /srv/t && rm -rf bin.installing && cp -a /rel/bin bin.installing && rm -rf bin.old && \
             if [ -e bin ]; then mv bin bin.old; fi && { mv bin.installing bin || { mv bin.old bin; exit 1; }; } && rm -rf bin.old"
        );
    }
}
