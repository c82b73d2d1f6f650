//! The cluster config file (`cluster.toml`): where ZooKeeper is, how to reach each host, and
//! which component runs where. README.md has an annotated example.
//!
//! Parsing is strict: unknown keys, wrong types and inconsistent values are errors that name the
//! file, the line and the key, and say what is expected. Secrets (the OpenMLDB password, the
//! ZooKeeper cert) are wrapped in [`Secret`], which never prints its value.

pub mod hosts;
mod inventory;
pub mod openmldb_env;
mod parse;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::cluster::topology::{Endpoint, Role};
use crate::diagnostic::{self, Location};
use parse::RawSshCommon;

/// Default root path of an OpenMLDB cluster in ZooKeeper (C§1.1).
pub const DEFAULT_ZK_ROOT_PATH: &str = "/openmldb";
/// Default environment variable holding the OpenMLDB password.
pub const DEFAULT_PASSWORD_ENV: &str = "OPENMLDB_PASSWORD";

/// A value that must never reach a terminal or a log.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// How commands reach a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TransportKind {
    /// libssh2, strict known_hosts checking.
    Ssh2,
    /// This machine: commands run under `sh -c`, files are copied.
    Local,
    /// `local` for `localhost` and `127.0.0.1` (as OpenMLDB's `run_auto`, O§2.3), else `ssh2`.
    Auto,
    /// The system's `ssh` (multiplexed, one master connection per host): `~/.ssh/config`,
    /// ProxyJump, agents, certificates and known_hosts work as in the operator's shell; strict
    /// host key checking.
    Openssh,
}

/// ZooKeeper connection settings.
#[derive(Debug, Clone)]
pub struct ZkSettings {
    /// `host:port[,host:port...]`.
    pub cluster: String,
    pub root_path: String,
    /// `user:password` for digest auth (`--zk_cert`, C§1.1).
    pub cert: Option<Secret>,
    pub session_timeout: Duration,
    pub connect_timeout: Duration,
}

/// OpenMLDB server-side authentication (C§2.1).
#[derive(Debug, Clone)]
pub struct Credentials {
    pub user: String,
    pub password: Secret,
}

/// ssh settings for one host, defaults already applied.
#[derive(Debug, Clone, PartialEq)]
pub struct HostAccess {
    pub host: String,
    pub transport: TransportKind,
    pub user: String,
    pub port: u16,
    pub identity_files: Vec<PathBuf>,
    pub known_hosts: PathBuf,
    pub agent: bool,
    pub connect_timeout: Duration,
    /// Start and stop run in a login shell (`bash -lc`), so `/etc/profile` and the user's
    /// profile set the environment (JAVA_HOME, HADOOP_CONF_DIR, ...).
    pub login_shell: bool,
    /// Where releases are uploaded and unpacked on the host, once per release (by checksum);
    /// a relative path is under the ssh user's home directory.
    pub staging_dir: String,
    /// What the cluster config itself sets, for the `openssh` transport: whatever it leaves
    /// unset comes from the ssh config, as in the operator's shell.
    pub explicit: ExplicitSsh,
}

/// The ssh settings a cluster config sets for a host (`[ssh.host."<host>"]` over `[ssh]`),
/// without the built-in defaults.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExplicitSsh {
    pub user: Option<String>,
    pub port: Option<u16>,
    pub identity_files: Vec<PathBuf>,
    pub known_hosts: Option<PathBuf>,
    /// `ssh_config`: the ssh config file (`ssh -F`); the user's `~/.ssh/config` when unset.
    pub ssh_config: Option<PathBuf>,
}

/// Where releases are staged on a host unless `staging_dir` says otherwise.
pub const DEFAULT_STAGING_DIR: &str = ".mldb-upgrade/staging";

/// One OpenMLDB server process and where it is installed.
#[derive(Debug, Clone, PartialEq)]
pub struct Component {
    pub role: Role,
    pub endpoint: Endpoint,
    /// The host that runs the process (ssh target); defaults to the endpoint's host.
    pub host: String,
    /// The install root on that host (the directory holding `bin/` and `conf/`).
    pub dir: String,
    /// Started through `bin/start.sh start <role> mon` (O§1.3, O§1.8).
    pub daemon: bool,
    /// Where it was declared, for messages: `cluster.toml:12` or `conf/hosts:4`.
    pub origin: String,
    /// Exported before `bin/start.sh` runs (the `[env]` table, the component's `env`, and for a
    /// TaskManager of a `hosts` import what `sbin/start-taskmanagers.sh` passes, O§2.1). Values
    /// are expanded by the host's shell inside double quotes, so `"$PATH"` works.
    pub env: Vec<(String, String)>,
}

impl Component {
    /// `tablet 10.0.0.5:10921 on 10.0.0.5`, as progress lines name a component.
    pub fn on_host(&self) -> String {
        format!("{} {} on {}", self.role, self.endpoint, self.host)
    }

    /// True when `other` runs from the same directory on the same host (components of
    /// `conf/hosts` lines without a WORKDIR share `$OPENMLDB_HOME`, O§2.2).
    pub fn shares_dir_with(&self, other: &Component) -> bool {
        self.endpoint != other.endpoint
            && self.host == other.host
            && self.dir.trim_end_matches('/') == other.dir.trim_end_matches('/')
    }
}

/// A loaded and validated cluster config.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    pub path: PathBuf,
    pub zk: ZkSettings,
    pub credentials: Option<Credentials>,
    ssh_defaults: RawSshCommon,
    ssh_hosts: BTreeMap<String, RawSshCommon>,
    pub components: Vec<Component>,
    /// `conf/openmldb-env.sh` as read (beside an imported `hosts`, or `openmldb_env`).
    pub openmldb_env: Option<openmldb_env::OpenmldbEnv>,
}

/// A config problem, with everything needed to point at it.
#[derive(Debug, Clone)]
pub struct ConfigError {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub column: usize,
    width: usize,
    pub key: Option<String>,
    pub message: String,
    pub help: Option<String>,
    source_text: Option<String>,
}

impl ConfigError {
    fn whole_file(file: &Path, message: impl Into<String>, help: Option<String>) -> Self {
        ConfigError {
            file: file.to_path_buf(),
            line: None,
            column: 1,
            width: 1,
            key: None,
            message: message.into(),
            help,
            source_text: None,
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = format!("error: {}\n", self.message);
        match self.line {
            Some(line) => {
                let location = Location { file: self.file.display().to_string(), line, column: self.column };
                diagnostic::write_snippet(&mut out, &location, self.source_text.as_deref(), self.width);
            }
            None => out.push_str(&format!("  --> {}\n", self.file.display())),
        }
        if let Some(key) = &self.key {
            out.push_str(&format!("  = key: {key}\n"));
        }
        if let Some(help) = &self.help {
            out.push_str(&format!("  = help: {help}\n"));
        }
        f.write_str(out.trim_end())
    }
}

impl std::error::Error for ConfigError {}

// ---------------------------------------------------------------------------------------------
// Loading.

/// Where environment and home directory come from; tests give their own.
pub trait Environment {
    fn var(&self, name: &str) -> Option<String>;
    fn home(&self) -> Option<PathBuf> {
        self.var("HOME").map(PathBuf::from)
    }
}

/// The process environment.
pub struct ProcessEnv;

impl Environment for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl Environment for HashMap<String, String> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }
}

impl ClusterConfig {
    /// Reads and validates `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        Self::load_with_env(path, &ProcessEnv)
    }

    pub fn load_with_env(path: &Path, env: &dyn Environment) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError::whole_file(
                path,
                format!("cannot read cluster config {}: {e}", path.display()),
                Some("pass an existing file with --cluster FILE (README.md has an example)".into()),
            )
        })?;
        Self::parse(path, &text, env)
    }

    /// The ssh settings for `host`: `[ssh.host."<host>"]` over `[ssh]` over built-in defaults.
    pub fn host_access(&self, host: &str) -> HostAccess {
        self.host_access_with_env(host, &ProcessEnv)
    }

    fn host_access_with_env(&self, host: &str, env: &dyn Environment) -> HostAccess {
        let base = self.path.parent().unwrap_or(Path::new(".")).to_path_buf();
        let over = self.ssh_hosts.get(host);
        let pick = |f: fn(&RawSshCommon) -> Option<String>| over.and_then(f).or_else(|| f(&self.ssh_defaults));
        let transport = over.and_then(|o| o.transport).or(self.ssh_defaults.transport).unwrap_or(TransportKind::Auto);
        let transport = match transport {
            TransportKind::Auto if host == "localhost" || host == "127.0.0.1" => TransportKind::Local,
            TransportKind::Auto => TransportKind::Ssh2,
            other => other,
        };
        let home = env.home().unwrap_or_else(|| PathBuf::from("/root"));
        let explicit_identities: Option<Vec<PathBuf>> = over
            .and_then(|o| o.identity_file.clone())
            .or_else(|| self.ssh_defaults.identity_file.clone())
            .map(|files| files.to_vec().iter().map(|f| expand_path(f, &base, env)).collect());
        let identity_files = explicit_identities.clone().unwrap_or_else(|| {
            ["id_ed25519", "id_ecdsa", "id_rsa"]
                .iter()
                .map(|n| home.join(".ssh").join(n))
                .filter(|p| p.exists())
                .collect()
        });
        let explicit = ExplicitSsh {
            user: pick(|c| c.user.clone()),
            port: over.and_then(|o| o.port).or(self.ssh_defaults.port),
            identity_files: explicit_identities.unwrap_or_default(),
            known_hosts: pick(|c| c.known_hosts.clone()).map(|p| expand_path(&p, &base, env)),
            ssh_config: pick(|c| c.ssh_config.clone()).map(|p| expand_path(&p, &base, env)),
        };
        HostAccess {
            host: host.to_string(),
            transport,
            user: explicit.user.clone().or_else(|| env.var("USER")).unwrap_or_else(|| "root".into()),
            port: explicit.port.unwrap_or(22),
            identity_files,
            known_hosts: explicit.known_hosts.clone().unwrap_or_else(|| home.join(".ssh/known_hosts")),
            agent: over.and_then(|o| o.agent).or(self.ssh_defaults.agent).unwrap_or(false),
            connect_timeout: pick(|c| c.connect_timeout.clone())
                .and_then(|t| parse_duration(&t).ok())
                .unwrap_or(Duration::from_secs(10)),
            login_shell: over.and_then(|o| o.login_shell).or(self.ssh_defaults.login_shell).unwrap_or(false),
            staging_dir: pick(|c| c.staging_dir.clone()).unwrap_or_else(|| DEFAULT_STAGING_DIR.to_string()),
            explicit,
        }
    }

    /// Components of one role, in config order.
    pub fn components_of(&self, role: Role) -> impl Iterator<Item = &Component> {
        self.components.iter().filter(move |c| c.role == role)
    }

    /// The component with this endpoint.
    pub fn component(&self, endpoint: &str) -> Option<&Component> {
        self.components.iter().find(|c| c.endpoint.to_string() == endpoint)
    }

    /// The other components that run from `c`'s directory on its host.
    pub fn sharing(&self, c: &Component) -> Vec<&Component> {
        self.components.iter().filter(|other| c.shares_dir_with(other)).collect()
    }

    /// Directories more than one component runs from: `(host, dir, components)`, in config order.
    pub fn shared_dirs(&self) -> Vec<(String, String, Vec<&Component>)> {
        let mut shared: Vec<(String, String, Vec<&Component>)> = Vec::new();
        for c in &self.components {
            if self.sharing(c).is_empty() {
                continue;
            }
            match shared.iter_mut().find(|(_, _, list)| list[0].shares_dir_with(c)) {
                Some((_, _, list)) => list.push(c),
                None => shared.push((c.host.clone(), c.dir.trim_end_matches('/').to_string(), vec![c])),
            }
        }
        shared
    }
}

/// Parses durations such as `500ms`, `10s`, `2m`, `1h 30m`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim())
        .map_err(|e| format!("`{text}` is not a duration ({e}); write it like 500ms, 10s, 2m or 1h30m"))
}

fn expand_path(p: &str, base: &Path, env: &dyn Environment) -> PathBuf {
    if let Some(rest) = p.strip_prefix("~/") {
        if let Some(home) = env.home() {
            return home.join(rest);
        }
    }
    let path = PathBuf::from(p);
    if path.is_absolute() {
        path
    } else {
        base.join(path)
    }
}
