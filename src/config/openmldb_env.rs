//! OpenMLDB's `conf/openmldb-env.sh` (O§2.1): the variables every `sbin/` script sources before
//! it deploys, starts or stops anything (`release/sbin/start-all.sh` and friends run
//! `. "$home"/conf/openmldb-env.sh` and then `sbin/init.sh`, which fills in the defaults).
//!
//! A cluster laid out by `sbin/deploy-all.sh` takes from it: `OPENMLDB_HOME` (the directory of
//! every `conf/hosts` line without a WORKDIR; init.sh defaults it to the release root), the
//! default ports per role, `OPENMLDB_ZK_CLUSTER` and `OPENMLDB_ZK_ROOT_PATH`, and for
//! TaskManagers `SPARK_HOME` (init.sh: `RUNNER_EXISTING_SPARK_HOME`, else `SPARK_HOME`, else
//! `$OPENMLDB_HOME/spark`) and `RUNNER_JAVA_HOME`, which `sbin/start-taskmanagers.sh` passes to
//! `bin/start.sh` on the host. The file is a shell script, so it is read the way the sbin
//! scripts read it: sourced by bash, on this machine.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::cluster::topology::Role;

/// The variables the tool reads from the file.
const VARIABLES: [&str; 11] = [
    "OPENMLDB_VERSION",
    "OPENMLDB_HOME",
    "SPARK_HOME",
    "RUNNER_EXISTING_SPARK_HOME",
    "RUNNER_JAVA_HOME",
    "OPENMLDB_ZK_CLUSTER",
    "OPENMLDB_ZK_ROOT_PATH",
    "OPENMLDB_TABLET_PORT",
    "OPENMLDB_NAMESERVER_PORT",
    "OPENMLDB_APISERVER_PORT",
    "OPENMLDB_TASKMANAGER_PORT",
];

/// The values `conf/openmldb-env.sh` sets (empty ones left out).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpenmldbEnv {
    pub file: PathBuf,
    vars: BTreeMap<String, String>,
}

impl OpenmldbEnv {
    /// Sources `file` with bash and reads the variables the tool uses.
    pub fn read(file: &Path) -> Result<OpenmldbEnv, String> {
        let script = format!(
            "set -a; . \"$1\" > /dev/null || exit 3; for v in {}; do printf '%s=%s\\0' \"$v\" \"${{!v}}\"; done",
            VARIABLES.join(" ")
        );
        let dir = file.parent().unwrap_or(Path::new("."));
        let out = std::process::Command::new("bash")
            .arg("-c")
            .arg(&script)
            .arg("openmldb-env")
            .arg(file)
            .current_dir(dir)
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|e| format!("cannot run bash to read {}: {e}", file.display()))?;
        if !out.status.success() {
            return Err(format!(
                "sourcing {} with bash failed ({}): {}",
                file.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Self::parse(file, &String::from_utf8_lossy(&out.stdout)))
    }

    /// `NAME=value\0` pairs as the reading script prints them.
    fn parse(file: &Path, printed: &str) -> OpenmldbEnv {
        let vars = printed
            .split('\0')
            .filter_map(|pair| pair.split_once('='))
            .filter(|(_, value)| !value.trim().is_empty())
            .map(|(name, value)| (name.to_string(), value.trim().to_string()))
            .collect();
        OpenmldbEnv { file: file.to_path_buf(), vars }
    }

    /// A variable the file sets to a non-empty value.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str)
    }

    /// The default port of a role (`OPENMLDB_<ROLE>_PORT`), as `parse_host` in init.sh uses it.
    pub fn port(&self, role: Role) -> Option<u16> {
        let name = format!("OPENMLDB_{}_PORT", role.as_str().to_uppercase());
        self.get(&name)?.parse().ok()
    }

    /// `SPARK_HOME` as init.sh settles it for the TaskManagers.
    pub fn spark_home(&self, openmldb_home: &str) -> String {
        self.get("RUNNER_EXISTING_SPARK_HOME")
            .or_else(|| self.get("SPARK_HOME"))
            .map_or_else(|| format!("{}/spark", openmldb_home.trim_end_matches('/')), str::to_string)
    }

    /// The environment `sbin/start-taskmanagers.sh` gives `bin/start.sh` on the host:
    /// `SPARK_HOME`, and with `RUNNER_JAVA_HOME` also `JAVA_HOME` and `PATH`.
    pub fn taskmanager_env(&self, openmldb_home: &str) -> Vec<(String, String)> {
        let mut env = vec![("SPARK_HOME".to_string(), self.spark_home(openmldb_home))];
        if let Some(java) = self.get("RUNNER_JAVA_HOME") {
            env.push(("JAVA_HOME".into(), java.to_string()));
            env.push(("PATH".into(), format!("{java}/bin:$PATH")));
        }
        env
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_shipped_shape_o2_1() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("openmldb-env.sh");
        std::fs::write(
            &file,
            "#! /usr/bin/env bash\nexport OPENMLDB_VERSION=0.9.2\nexport OPENMLDB_MODE=${OPENMLDB_MODE:=cluster}\n\
             export OPENMLDB_HOME=\nexport SPARK_HOME=\nexport RUNNER_JAVA_HOME=/opt/jdk\n\
             export OPENMLDB_TABLET_PORT=10921\nexport OPENMLDB_ZK_ROOT_PATH=/openmldb\n",
        )
        .unwrap();
        let env = OpenmldbEnv::read(&file).unwrap();
        assert_eq!(env.get("OPENMLDB_VERSION"), Some("0.9.2"));
        assert_eq!(env.get("OPENMLDB_HOME"), None, "empty values are left out");
        assert_eq!(env.port(Role::Tablet), Some(10921));
        assert_eq!(env.port(Role::Nameserver), None);
        assert_eq!(env.spark_home("/work/openmldb/"), "/work/openmldb/spark");
        let tm = env.taskmanager_env("/work/openmldb");
        assert_eq!(tm[1], ("JAVA_HOME".to_string(), "/opt/jdk".to_string()));
        assert_eq!(tm[2].1, "/opt/jdk/bin:$PATH");
    }

    #[test]
    fn existing_spark_home_wins_as_in_init_sh() {
        let env = OpenmldbEnv::parse(
            Path::new("e"),
            "SPARK_HOME=/opt/spark\0RUNNER_EXISTING_SPARK_HOME=/data/spark\0OPENMLDB_HOME=\0",
        );
        assert_eq!(env.spark_home("/h"), "/data/spark");
    }

    #[test]
    fn a_broken_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("openmldb-env.sh");
        std::fs::write(&file, "export A=(\n").unwrap();
        assert!(OpenmldbEnv::read(&file).unwrap_err().contains("failed"));
    }
}
