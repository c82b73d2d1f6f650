//! Install: backing up `bin/` (and `taskmanager/`), swapping directories in from a staged release
//! ([`super::staging`]) so a failed copy never leaves a half-replaced one, rolling back from a
//! backup, and replacing a TaskManager's Spark distribution (O§6.1). The component must be
//! stopped first.
//!
//! Shared directories: a cluster laid out by `sbin/deploy-all.sh` runs the nameserver, apiserver
//! and taskmanager of a host from one directory (`conf/hosts` lines without a WORKDIR,
//! O§2.2). The directory is installed once, with the first of them: a part that already holds the
//! target version is not replaced again. Replacing `bin/` under a running sharer is safe (the
//! process keeps the binary it loaded; it runs the new one once restarted in its own phase) as
//! long as its pid files move into the new `bin/` with it, which every swap does. `taskmanager/`
//! is never replaced while a TaskManager runs from it (the JVM loads jars lazily). A backup is
//! made once per directory and run: a sharer's later backup reuses it, adding only parts not yet
//! in it.

use std::time::Duration;

use super::properties;
use super::records::SparkSwap;
use super::{fenced_tail, join, q, ComponentError, Control, InstallReport, Parts, Result, SHORT};
use crate::cluster::topology::Role;
use crate::config::Component;

/// Time limit of copying a `bin/`, `taskmanager/` or Spark distribution.
pub(super) const COPY: Duration = Duration::from_secs(900);

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
    pub(super) async fn version_in(&self, c: &Component, dir: &str, taskmanager: bool, step: &str) -> Result<String> {
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

    /// `rm -rf X.installing && cp -a SRC X.installing && mv X X.old && mv X.installing X && rm -rf X.old`:
    /// a failed copy never leaves a half-replaced `X`; a failed swap puts the old one back.
    fn swap_command(root: &str, target: &str, source: &str, keep: Keep) -> String {
        let t = q(target);
        let new = q(&format!("{target}.installing"));
        let old_name = keep.old_as.map(str::to_string).unwrap_or_else(|| format!("{target}.old"));
        let old = q(&old_name);
        let mut command = format!("cd {root} && rm -rf {new} && cp -a {src} {new}", root = q(root), src = q(source));
        if let Some(role) = keep.pid_files_except {
            // The running sharers' pid files move into the new bin/; stale ones (from a backup or
            // the release) and the stopped component's own do not (O§1.3).
            let own = role.as_str();
            command.push_str(&format!(
                " && rm -f {new}/*.pid {new}/*.pid.child && for f in {t}/*.pid {t}/*.pid.child; do \
                 [ -f \"$f\" ] || continue; case \"${{f##*/}}\" in {own}.pid|{own}.pid.child) ;; \
                 *) cp -p \"$f\" {new}/ ;; esac; done"
            ));
        }
        command.push_str(&format!(
            " && rm -rf {old} && if [ -e {t} ]; then mv {t} {old}; fi && {{ mv {new} {t} || {{ mv {old} {t}; exit 1; }}; }}"
        ));
        if let Some(sub) = keep.logs {
            let from = q(&format!("{old_name}/{sub}"));
            let into = q(&format!("{target}/{}", sub.rsplit_once('/').map_or("", |(p, _)| p)));
            command.push_str(&format!(" && if [ -d {from} ]; then cp -a {from} {into}; fi"));
        }
        if keep.old_as.is_none() {
            command.push_str(&format!(" && rm -rf {old}"));
        }
        command
    }

    /// How a swap of `part` in `c`'s directory treats what lives in it.
    fn keep_for(c: &Component, part: &str) -> Keep<'static> {
        match part {
            "bin" => Keep { pid_files_except: Some(c.role), ..Keep::default() },
            // The TaskManager's logs live under taskmanager/bin (job.log.path, O§1.2).
            "taskmanager" => Keep { logs: Some("bin/logs"), ..Keep::default() },
            _ => Keep::default(),
        }
    }

    /// Refuses to replace `taskmanager/` while a TaskManager sharing the directory runs from it.
    async fn require_no_running_taskmanager(&self, c: &Component, step: &str) -> Result<()> {
        for sharer in self.config.sharing(c).into_iter().filter(|s| s.role == Role::Taskmanager) {
            let found = self.look(sharer, step).await?;
            if let Some(p) = found.ours.first() {
                if !self.dry_run {
                    return Err(ComponentError::StillRunning {
                        step: step.to_string(),
                        endpoint: sharer.endpoint.to_string(),
                        host: sharer.host.clone(),
                        pid: p.pid,
                    });
                }
            }
        }
        Ok(())
    }

    /// `(part, version it holds)` for `part` of the directory `dir` on `c`'s host.
    async fn part_version(&self, c: &Component, dir: &str, part: &str, step: &str) -> Result<String> {
        self.version_in(c, dir, part == "taskmanager", step).await
    }

    /// What `part` of `c`'s directory holds now, or in a plan what an earlier planned install
    /// put there.
    async fn holds(&self, c: &Component, part: &str, step: &str) -> Option<String> {
        let key = format!("{}:{}/{part}", c.host, c.dir.trim_end_matches('/'));
        if self.dry_run {
            if let Some(planned) = self.memory.planned.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
                return Some(planned.clone());
            }
        }
        self.part_version(c, &c.dir, part, step).await.ok()
    }

    fn plan_install(&self, c: &Component, part: &str, version: &str) {
        if self.dry_run {
            let key = format!("{}:{}/{part}", c.host, c.dir.trim_end_matches('/'));
            self.memory.planned.lock().unwrap_or_else(|p| p.into_inner()).insert(key, version.to_string());
        }
    }

    /// Says that `part` of `c`'s directory is left as it is because it holds `version` already.
    fn say_kept(&self, c: &Component, part: &str, version: &str) {
        let (dir, host, shared) = (&c.dir, &c.host, self.shared_note(c));
        if self.dry_run && version == super::NOT_READ_YET {
            (self.say)(&format!(
                "[dry-run] {host}: {part}/ in {dir}{shared} is installed earlier in this plan: it would be left as it is"
            ));
        } else {
            (self.say)(&format!("{part}/ in {dir} on {host} already holds {version}{shared}: not replaced"));
        }
    }

    /// ` (shared with apiserver h:9080, taskmanager h:9902)`, or nothing.
    fn shared_note(&self, c: &Component) -> String {
        let sharers: Vec<String> =
            self.config.sharing(c).iter().map(|s| format!("{} {}", s.role, s.endpoint)).collect();
        if sharers.is_empty() {
            String::new()
        } else {
            format!(" (shared with {})", sharers.join(", "))
        }
    }

    /// Replaces `bin/` (and `taskmanager/`) from a release: a local `openmldb-X.Y.Z-linux`
    /// directory or `.tar.gz` (staged on the host once, [`super::staging`]), or one on the host.
    /// The release is checked on the host (its `bin/openmldb --version` must run there) before
    /// anything is touched. A part that already holds the release's version (a shared directory
    /// installed with another component) is left as it is.
    pub async fn install(&self, endpoint: &str, release: &str, parts: Parts) -> Result<InstallReport> {
        let c = self.component(endpoint)?;
        let step = format!("installing {release} on {} {}", c.role, c.endpoint);
        self.require_stopped(c, &step).await?;
        if parts.taskmanager {
            self.require_no_running_taskmanager(c, &step).await?;
        }
        let dir = self.stage(c, &step, release).await?;
        let mut report = InstallReport {
            endpoint: endpoint.to_string(),
            host: c.host.clone(),
            path: release.to_string(),
            dirs: parts.dirs().iter().map(|d| d.to_string()).collect(),
            shared_with: self.config.sharing(c).iter().map(|s| s.endpoint.to_string()).collect(),
            dry_run: self.dry_run,
            ..InstallReport::default()
        };
        for part in parts.dirs() {
            // In a plan an archive is not unpacked yet, so there is nothing to check.
            let wanted = match self.part_version(c, &dir, part, &step).await {
                Ok(version) => version,
                Err(_) if self.dry_run => super::NOT_READ_YET.to_string(),
                Err(e) => return Err(e),
            };
            if report.version.is_empty() || part == "bin" {
                report.version = wanted.clone();
            }
            if self.holds(c, part, &step).await.as_deref() == Some(wanted.as_str()) {
                self.say_kept(c, part, &wanted);
                report.skipped.push(part.to_string());
                continue;
            }
            let command = Self::swap_command(&c.dir, part, &join(&dir, part), Self::keep_for(c, part));
            let next = format!("{}/{part} is unchanged or restored; fix the cause and retry", c.dir);
            self.change(c, &step, &command, COPY, &next).await?;
            self.plan_install(c, part, &wanted);
        }
        if !self.dry_run {
            let done: Vec<&str> = parts.dirs().into_iter().filter(|d| !report.skipped.iter().any(|s| s == d)).collect();
            if !done.is_empty() {
                let running = if report.shared_with.is_empty() {
                    String::new()
                } else {
                    format!(
                        "; {} share {} and run their loaded binary until restarted",
                        report.shared_with.join(", "),
                        c.dir
                    )
                };
                (self.say)(&format!(
                    "installed {} ({}) on {} {}{running}",
                    report.version,
                    done.join(" and "),
                    c.role,
                    c.endpoint
                ));
            }
        }
        Ok(report)
    }

    /// Restores the parts of a backup made by [`backup`](Self::backup) that the component's
    /// role uses (`bin/`, and `taskmanager/` for a TaskManager). A part that already holds the
    /// backup's version (a shared directory restored with another component) is left as it is.
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
        let uses = Parts::default_for(c.role).dirs();
        let dirs: Vec<String> =
            out.stdout.lines().map(str::trim).filter(|d| uses.contains(d)).map(str::to_string).collect();
        if dirs.is_empty() {
            return Err(ComponentError::BadRelease {
                step,
                endpoint: endpoint.to_string(),
                host: c.host.clone(),
                path: backup,
                reason: format!("it holds none of {} (what a {} runs from)", uses.join(", "), c.role),
            });
        }
        if dirs.iter().any(|d| d == "taskmanager") {
            self.require_no_running_taskmanager(c, &step).await?;
        }
        let mut report = InstallReport {
            endpoint: endpoint.to_string(),
            host: c.host.clone(),
            path: backup.clone(),
            dirs: dirs.clone(),
            shared_with: self.config.sharing(c).iter().map(|s| s.endpoint.to_string()).collect(),
            dry_run: self.dry_run,
            ..InstallReport::default()
        };
        for d in &dirs {
            let wanted = self.part_version(c, &backup, d, &step).await?;
            if d == "bin" || report.version.is_empty() {
                report.version = wanted.clone();
            }
            if self.holds(c, d, &step).await.as_deref() == Some(wanted.as_str()) {
                self.say_kept(c, d, &wanted);
                report.skipped.push(d.clone());
                continue;
            }
            let command = Self::swap_command(&c.dir, d, &join(&backup, d), Self::keep_for(c, d));
            self.change(c, &step, &command, COPY, &format!("{}/{d} is unchanged or restored; retry", c.dir)).await?;
            self.plan_install(c, d, &wanted);
        }
        let restored: Vec<&str> = dirs.iter().filter(|d| !report.skipped.contains(d)).map(String::as_str).collect();
        if !self.dry_run && !restored.is_empty() {
            (self.say)(&format!(
                "restored {} of {} from {backup} ({})",
                restored.join(" and "),
                c.endpoint,
                report.version
            ));
        }
        Ok(report)
    }

    /// Replaces a TaskManager's Spark distribution at its `spark.home` (O§6.1: before the
    /// TaskManager itself). The old one is kept beside it as `<spark.home>.previous-<time>`, and
    /// recorded (`spark/<endpoint>`) for [`Control::rollback_spark`].
    pub async fn install_spark(&self, endpoint: &str, spark_dir: &str) -> Result<InstallReport> {
        let c = self.taskmanager(endpoint, "component::install_spark")?;
        let step = format!("installing Spark {spark_dir} for taskmanager {}", c.endpoint);
        let spark_home = self.spark_home(c, &step).await?;
        let dir = self.stage(c, &step, spark_dir).await?;
        // In dry-run an archive is not unpacked, so there is nothing to check yet.
        let version = match self.spark_version(c, &step, &dir).await {
            Ok(version) => version,
            Err(_) if self.dry_run => super::NOT_READ_YET.to_string(),
            Err(e) => return Err(e),
        };
        let previous_version = self.spark_version(c, &step, &spark_home).await.unwrap_or_default();
        let stamp = self.exec(c, &step, "date +%Y%m%d-%H%M%S", SHORT).await?.stdout.trim().to_string();
        let previous = format!("{}.previous-{stamp}", spark_home.trim_end_matches('/'));
        let (parent, target) = split_parent(&spark_home);
        let keep = Keep { old_as: Some(&previous), ..Keep::default() };
        let command = Self::swap_command(&parent, &target, &dir, keep);
        self.change(c, &step, &command, COPY, &format!("{spark_home} is unchanged or restored; retry")).await?;
        let swap = SparkSwap { spark_home: spark_home.clone(), previous: previous.clone(), previous_version };
        self.record(c, &step, "spark", &swap).await?;
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
            ..InstallReport::default()
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
        let keep = Keep { old_as: Some(&replaced), ..Keep::default() };
        let command = Self::swap_command(&parent, &target, &swap.previous, keep);
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
            ..InstallReport::default()
        }))
    }

    pub(super) fn taskmanager(&self, endpoint: &str, function: &'static str) -> Result<&Component> {
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

    /// The TaskManager's `spark.home` (O§3.4), as an absolute path on its host; when the
    /// property is empty the TaskManager uses `SPARK_HOME` from its environment, which is known
    /// when the config gives it (`env`, or openmldb-env.sh for a `hosts` import, O§2.1).
    async fn spark_home(&self, c: &Component, step: &str) -> Result<String> {
        let (_, text) = self.properties_text(c, step).await?;
        let from_env = || c.env.iter().rev().find(|(name, _)| name == "SPARK_HOME").map(|(_, v)| v.clone());
        let spark_home = properties::value(&text, "spark.home")
            .filter(|v| !v.is_empty())
            .or_else(from_env)
            .ok_or_else(|| ComponentError::Other {
                step: step.to_string(),
                endpoint: c.endpoint.to_string(),
                reason: "spark.home is empty in conf/taskmanager.properties, so the TaskManager uses its \
                             SPARK_HOME environment variable, which the cluster config does not give; set spark.home, \
                             or SPARK_HOME in [env]"
                    .into(),
            })?;
        Ok(join(&c.dir, &spark_home))
    }

    /// A TaskManager's Spark distribution: its `spark.home` (or `SPARK_HOME`, see
    /// [`Control::install_spark`]) as an absolute path on its host, and the openmldb-batch
    /// version of its `jars/` (empty when there is no `openmldb-batch-*.jar`).
    pub async fn spark(&self, endpoint: &str) -> Result<SparkInfo> {
        let c = self.taskmanager(endpoint, "component::spark")?;
        let step = format!("reading the Spark distribution of taskmanager {endpoint}");
        let home = self.spark_home(c, &step).await?;
        let batch_version = self.spark_version(c, &step, &home).await.unwrap_or_default();
        Ok(SparkInfo { endpoint: endpoint.to_string(), host: c.host.clone(), home, batch_version })
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

/// What [`Control::spark`] found.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct SparkInfo {
    pub endpoint: String,
    pub host: String,
    /// The distribution's directory on the host.
    pub home: String,
    /// The version in its `jars/openmldb-batch-<version>.jar`; empty when there is none.
    pub batch_version: String,
}

/// How a swap treats what lives in the directory it replaces.
#[derive(Debug, Default, Clone, Copy)]
struct Keep<'s> {
    /// Keep the replaced directory under this name instead of deleting it.
    old_as: Option<&'s str>,
    /// A subdirectory copied from the replaced directory into the new one (logs).
    logs: Option<&'s str>,
    /// `bin/`: pid files move into the new directory, except those of this role (it is stopped).
    pid_files_except: Option<Role>,
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
        let cmd = Control::swap_command("/srv/t", "bin", "/rel/bin", Keep::default());
        assert_eq!(
            cmd,
            "cd /srv/t && rm -rf bin.installing && cp -a /rel/bin bin.installing && rm -rf bin.old && \
             if [ -e bin ]; then mv bin bin.old; fi && { mv bin.installing bin || { mv bin.old bin; exit 1; }; } && rm -rf bin.old"
        );
    }
}
