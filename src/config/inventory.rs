//! What `cluster.toml` imports from a cluster laid out by OpenMLDB's `sbin/deploy-all.sh`:
//! the components of its `conf/hosts` (O§2.2, [`super::hosts`]), and `conf/openmldb-env.sh`
//! (O§2.1, [`super::openmldb_env`]) for `$OPENMLDB_HOME`, ports, ZooKeeper and the TaskManagers'
//! environment; plus the `env` tables.

use std::collections::BTreeMap;
use std::path::Path;

use toml::Spanned;

use super::openmldb_env::OpenmldbEnv;
use super::parse::{RawConfig, Source};
use super::{hosts, Component, ConfigError, Environment};
use crate::cluster::topology::{Endpoint, Role};
use crate::diagnostic;

/// Components and ZooKeeper servers imported from OpenMLDB's `conf/hosts`.
#[derive(Default)]
pub(super) struct Inventory {
    pub components: Vec<Component>,
    pub zookeepers: Vec<String>,
}

/// `conf/openmldb-env.sh` (O§2.1): the file `openmldb_env` names, else the one beside an
/// imported `conf/hosts` when it exists.
pub(super) fn openmldb_env_file(
    source: &Source,
    raw: &RawConfig,
    base: &Path,
    env: &dyn Environment,
) -> Result<Option<OpenmldbEnv>, ConfigError> {
    let help =
        "point `openmldb_env` at the release's conf/openmldb-env.sh (relative paths start at this file's directory)";
    if let Some(value) = &raw.openmldb_env {
        let file = super::expand_path(value.get_ref(), base, env);
        if !file.is_file() {
            return Err(source.value_error(
                value,
                "openmldb_env",
                format!("{} does not exist", file.display()),
                Some(help),
            ));
        }
        return OpenmldbEnv::read(&file)
            .map(Some)
            .map_err(|m| source.value_error(value, "openmldb_env", m, Some(help)));
    }
    let Some(hosts_path) = &raw.hosts else { return Ok(None) };
    let beside = super::expand_path(hosts_path.get_ref(), base, env).with_file_name("openmldb-env.sh");
    if !beside.is_file() {
        return Ok(None);
    }
    OpenmldbEnv::read(&beside).map(Some).map_err(|m| source.value_error(hosts_path, "hosts", m, Some(help)))
}

/// An `env` table: names must be shell variable names.
pub(super) fn env_table(
    source: &Source,
    table: Option<&Spanned<BTreeMap<String, String>>>,
    key: &str,
) -> Result<Vec<(String, String)>, ConfigError> {
    let Some(table) = table else { return Ok(Vec::new()) };
    for name in table.get_ref().keys() {
        let valid = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(source.value_error(
                table,
                key,
                format!("`{name}` is not an environment variable name"),
                Some("names are letters, digits and _, not starting with a digit, e.g. JAVA_HOME"),
            ));
        }
    }
    Ok(table.get_ref().iter().map(|(k, v)| (k.clone(), v.clone())).collect())
}

/// The components and ZooKeeper servers of OpenMLDB's `conf/hosts` (O§2.2), read as
/// `parse_host` in `release/sbin/init.sh` reads them: a line without a port gets the role's
/// port from openmldb-env.sh, a line without a WORKDIR gets `$OPENMLDB_HOME` (`openmldb_home`,
/// else openmldb-env.sh's, else the release root the `conf/` directory is in).
pub(super) fn import_hosts(
    source: &Source,
    hosts_path: &Spanned<String>,
    raw: &RawConfig,
    base: &Path,
    env: &dyn Environment,
    openmldb_env: Option<&OpenmldbEnv>,
) -> Result<Inventory, ConfigError> {
    let file = super::expand_path(hosts_path.get_ref(), base, env);
    let hosts_text = std::fs::read_to_string(&file).map_err(|e| {
        source.value_error(
            hosts_path,
            "hosts",
            format!("cannot read the hosts inventory {}: {e}", file.display()),
            Some("point `hosts` at OpenMLDB's conf/hosts (relative paths start at this file's directory)"),
        )
    })?;
    let at_line = |line: usize, message: String, help: &str| {
        let mut err = ConfigError::whole_file(&file, message, Some(help.into()));
        err.line = Some(line);
        err.width = diagnostic::source_line(&hosts_text, line).map_or(1, |l| l.chars().count());
        err.source_text = Some(hosts_text.clone());
        err
    };
    let entries = hosts::parse(&hosts_text)
        .map_err(|e| at_line(e.line, e.message, "the format is OpenMLDB's conf/hosts: [tablet], [nameserver], [apiserver], [taskmanager], [zookeeper] sections of `host[:port] [WORKDIR]` lines"))?;
    let release_root = file
        .parent()
        .filter(|conf| conf.file_name().is_some_and(|n| n == "conf"))
        .and_then(Path::parent)
        .map(|root| root.display().to_string());
    let home = raw
        .openmldb_home
        .as_ref()
        .map(|h| h.get_ref().clone())
        .or_else(|| openmldb_env.and_then(|e| e.get("OPENMLDB_HOME")).map(str::to_string))
        .or(release_root);
    let mut inventory = Inventory::default();
    for entry in entries {
        let port = entry.port;
        let role = match entry.section {
            hosts::Section::Zookeeper => {
                inventory.zookeepers.push(format!("{}:{}", entry.host, port.unwrap_or(hosts::ZOOKEEPER_DEFAULT_PORT)));
                continue;
            }
            hosts::Section::Server(role) => role,
        };
        let dir = match (&entry.workdir, &home) {
            (Some(dir), _) => dir.clone(),
            (None, Some(home)) => home.clone(),
            (None, None) => {
                return Err(at_line(
                    entry.line,
                    format!("{role} `{}` has no WORKDIR", entry.host),
                    "add a WORKDIR to the line, or set `openmldb_home` in the cluster config",
                ))
            }
        };
        let default_port = openmldb_env.and_then(|e| e.port(role)).unwrap_or(role.default_port());
        let env = match (role, openmldb_env) {
            (Role::Taskmanager, Some(openmldb_env)) => {
                openmldb_env.taskmanager_env(home.as_deref().unwrap_or(dir.as_str()))
            }
            _ => Vec::new(),
        };
        inventory.components.push(Component {
            role,
            endpoint: Endpoint::new(entry.host.clone(), port.unwrap_or(default_port)),
            host: entry.host,
            dir,
            daemon: raw.daemon,
            origin: format!("{}:{}", file.display(), entry.line),
            env,
        });
    }
    Ok(inventory)
}
