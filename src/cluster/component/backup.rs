//! Backups of a component's `bin/` (and `taskmanager/`) before it is replaced (O§6.1), under
//! `<install>/backup/<YYYYmmdd-HHMMSS>/`, recorded in the journal (`backups/<endpoint>`) for
//! `start_again` and the rollback. A directory shared by several components is backed up once
//! per run, as it was before the run changed it.

use super::install::COPY;
use super::records::Backup;
use super::{join, q, ComponentError, Control, InstallReport, Parts, Result, SHORT};
use crate::config::Component;

impl Control<'_> {
    /// Copies `bin/` (and `taskmanager/`) to `<install>/backup/<YYYYmmdd-HHMMSS>/`, after
    /// checking with `df` that the disk has room. In a directory shared with other components,
    /// the backup a sharer made earlier in the same run is reused (parts it lacks are added to
    /// it), so the backup holds the directory as it was before the run changed it.
    pub async fn backup(&self, endpoint: &str, parts: Parts) -> Result<InstallReport> {
        let c = self.component(endpoint)?;
        let step = format!("backing up {} {}", c.role, c.endpoint);
        let run = self.run_id().await;
        let mut earlier = None;
        if run.is_some() {
            for sharer in self.config.sharing(c) {
                let recorded = self.recorded::<Backup>("backups", &sharer.endpoint.to_string()).await?;
                if let Some(backup) = recorded.filter(|b| b.run.is_some() && b.run == run) {
                    earlier = Some((sharer, backup));
                    break;
                }
            }
        }
        let planned_key = format!("backup:{}:{}", c.host, c.dir.trim_end_matches('/'));
        if self.dry_run {
            let planned = self.memory.planned.lock().unwrap_or_else(|p| p.into_inner()).get(&planned_key).cloned();
            if let Some(path) = planned {
                (self.say)(&format!(
                    "[dry-run] {}: would reuse the backup {path} of the shared directory, planned earlier",
                    c.host
                ));
                return Ok(InstallReport {
                    endpoint: endpoint.to_string(),
                    host: c.host.clone(),
                    path,
                    dry_run: true,
                    ..InstallReport::default()
                });
            }
        }
        let (path, version, mut dirs) = match &earlier {
            Some((_, backup)) => (backup.path.clone(), backup.version.clone(), backup.dirs.clone()),
            None => {
                // The host's clock names the backup.
                let name = format!(
                    "cd {} && ts=$(date +%Y%m%d-%H%M%S) && d=backup/$ts && n=1 && \
                     while [ -e \"$d\" ]; do d=backup/$ts-$n; n=$((n+1)); done && echo \"$d\"",
                    q(&c.dir)
                );
                let rel = self.run(c, &step, &name, SHORT, &format!("check that {} exists", c.dir)).await?;
                let version = self.installed_version(endpoint).await.unwrap_or_default();
                (join(&c.dir, rel.stdout.trim()), version, Vec::new())
            }
        };
        let missing: Vec<&str> = parts.dirs().into_iter().filter(|d| !dirs.iter().any(|have| have == d)).collect();
        if !missing.is_empty() {
            self.check_space(c, &step, &missing).await?;
            let copies: Vec<String> = missing.iter().map(|d| format!("cp -a {} {}/", q(d), q(&path))).collect();
            let command = format!("cd {} && mkdir -p {} && {}", q(&c.dir), q(&path), copies.join(" && "));
            self.change(c, &step, &command, COPY, &format!("remove the partial backup {path} and retry")).await?;
            dirs.extend(missing.iter().map(|d| d.to_string()));
        }
        if self.dry_run && !self.config.sharing(c).is_empty() {
            self.memory.planned.lock().unwrap_or_else(|p| p.into_inner()).insert(planned_key, path.clone());
        }
        let record = Backup { path: path.clone(), version: version.clone(), dirs: dirs.clone(), run };
        self.record(c, &step, "backups", &record).await?;
        if !self.dry_run {
            let reused = match &earlier {
                Some((sharer, _)) => format!(
                    " (the directory is shared with {} {}, backed up earlier in this run{})",
                    sharer.role,
                    sharer.endpoint,
                    if missing.is_empty() { String::new() } else { format!("; added {}", missing.join(" and ")) }
                ),
                None => String::new(),
            };
            (self.say)(&format!("backed up {} of {} on {} to {path}{reused}", dirs.join(" and "), c.endpoint, c.host));
        }
        Ok(InstallReport {
            endpoint: endpoint.to_string(),
            host: c.host.clone(),
            path,
            dirs,
            version,
            dry_run: self.dry_run,
            ..InstallReport::default()
        })
    }

    /// Fails unless the disk holding the install has room for copies of `dirs`, with a margin
    /// so a backup does not fill the disk the component writes its logs to.
    async fn check_space(&self, c: &Component, step: &str, dirs: &[&str]) -> Result<()> {
        let quoted: Vec<String> = dirs.iter().map(|d| q(d)).collect();
        let probe = format!(
            "cd {dir} && du -sk {parts} | awk '{{s+=$1}} END {{print s}}' && df -Pk . | awk 'NR==2 {{print $4}}'",
            dir = q(&c.dir),
            parts = quoted.join(" ")
        );
        let out =
            self.run(c, step, &probe, SHORT, &format!("check that {} holds {}", c.dir, dirs.join(" and "))).await?;
        let mut lines = out.stdout.lines().map(str::trim);
        let needed: u64 = lines.next().and_then(|l| l.parse().ok()).unwrap_or(0);
        let free: u64 = lines.next().and_then(|l| l.parse().ok()).unwrap_or(0);
        let with_margin = needed + needed / 10 + 64 * 1024;
        if free < with_margin {
            return Err(ComponentError::NoSpace {
                step: step.to_string(),
                endpoint: c.endpoint.to_string(),
                host: c.host.clone(),
                dir: c.dir.clone(),
                free_kib: free,
                needed_kib: with_margin,
                next: format!("free space on {} (old backups are in {}/backup)", c.host, c.dir),
            });
        }
        Ok(())
    }
}
