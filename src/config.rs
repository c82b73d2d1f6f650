//! The cluster config file (`cluster.toml`): where ZooKeeper is, how to reach each host, and
//! which component runs where. README.md has an annotated example.
//!
//! Parsing is strict: unknown keys, wrong types and inconsistent values are errors that name the
//! file, the line and the key, and say what is expected. Secrets (the OpenMLDB password, the
//! ZooKeeper cert) are wrapped in [`Secret`], which never prints its value.

pub mod hosts;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::cluster::topology::{Endpoint, Role};
use crate::diagnostic::{self, Location};

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
}

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
// The file as written.

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    zk_cluster: Option<Spanned<String>>,
    zk_root_path: Option<Spanned<String>>,
    zk_cert: Option<Spanned<String>>,
    zk_session_timeout: Option<Spanned<String>>,
    zk_connect_timeout: Option<Spanned<String>>,
    user: Option<Spanned<String>>,
    password_env: Option<Spanned<String>>,
    hosts: Option<Spanned<String>>,
    openmldb_home: Option<Spanned<String>>,
    #[serde(default)]
    daemon: bool,
    #[serde(default)]
    ssh: RawSsh,
    #[serde(default)]
    component: Vec<Spanned<RawComponent>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSsh {
    #[serde(flatten)]
    common: RawSshCommon,
    #[serde(default)]
    host: BTreeMap<String, RawSshCommon>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSshCommon {
    user: Option<String>,
    port: Option<u16>,
    identity_file: Option<OneOrMany>,
    known_hosts: Option<String>,
    agent: Option<bool>,
    transport: Option<TransportKind>,
    connect_timeout: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn to_vec(&self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s.clone()],
            OneOrMany::Many(v) => v.clone(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawComponent {
    role: Spanned<Role>,
    endpoint: Spanned<String>,
    host: Option<Spanned<String>>,
    dir: Spanned<String>,
    daemon: Option<bool>,
}

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

    /// Parses config text; `path` names the file in messages and anchors relative paths.
    pub fn parse(path: &Path, text: &str, env: &dyn Environment) -> Result<Self, ConfigError> {
        let at = |span: std::ops::Range<usize>, key: &str, message: String, help: Option<&str>| {
            let (line, column) = diagnostic::line_col(text, span.start);
            ConfigError {
                file: path.to_path_buf(),
                line: Some(line),
                column,
                width: text[span.clone()].lines().next().map_or(1, |l| l.chars().count()),
                key: Some(key.to_string()),
                message,
                help: help.map(str::to_string),
                source_text: Some(text.to_string()),
            }
        };
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let span = e.span().unwrap_or(0..0);
            let message = e.message().trim().to_string();
            let mut err = at(span, "", format!("invalid cluster config: {message}"), None);
            err.key = None;
            if message.starts_with("unknown field") {
                err.help = Some("check the spelling; README.md lists every key".into());
            }
            err
        })?;
        let base = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        let resolve = |p: &str| expand_path(p, &base, env);

        // Inventory from OpenMLDB's conf/hosts, if any.
        let mut inventory = Vec::new();
        let mut zk_from_hosts = Vec::new();
        if let Some(hosts_path) = &raw.hosts {
            let file = resolve(hosts_path.get_ref());
            let hosts_text = std::fs::read_to_string(&file).map_err(|e| {
                at(
                    hosts_path.span(),
                    "hosts",
                    format!("cannot read the hosts inventory {}: {e}", file.display()),
                    Some("point `hosts` at OpenMLDB's conf/hosts (relative paths start at this file's directory)"),
                )
            })?;
            let entries = hosts::parse(&hosts_text).map_err(|e| {
                let mut err = ConfigError::whole_file(
                    &file,
                    e.message,
                    Some("the format is OpenMLDB's conf/hosts (reference O§2.2)".into()),
                );
                err.line = Some(e.line);
                err.source_text = Some(hosts_text.clone());
                err.width = diagnostic::source_line(&hosts_text, e.line).map_or(1, |l| l.chars().count());
                err
            })?;
            for entry in entries {
                let port = entry.port;
                match entry.section {
                    hosts::Section::Zookeeper => {
                        zk_from_hosts.push(format!("{}:{}", entry.host, port.unwrap_or(hosts::ZOOKEEPER_DEFAULT_PORT)))
                    }
                    hosts::Section::Server(role) => {
                        let dir = match (&entry.workdir, &raw.openmldb_home) {
                            (Some(dir), _) => dir.clone(),
                            (None, Some(home)) => home.get_ref().clone(),
                            (None, None) => {
                                let mut err = ConfigError::whole_file(
                                    &file,
                                    format!("{role} `{}` has no WORKDIR", entry.host),
                                    Some(
                                        "add a WORKDIR to the line, or set `openmldb_home` in the cluster config"
                                            .into(),
                                    ),
                                );
                                err.line = Some(entry.line);
                                err.source_text = Some(hosts_text.clone());
                                return Err(err);
                            }
                        };
                        inventory.push(Component {
                            role,
                            endpoint: Endpoint::new(entry.host.clone(), port.unwrap_or(role.default_port())),
                            host: entry.host,
                            dir,
                            daemon: raw.daemon,
                            origin: format!("{}:{}", file.display(), entry.line),
                        });
                    }
                }
            }
        }

        // ZooKeeper.
        let zk_cluster = match &raw.zk_cluster {
            Some(value) => {
                validate_zk_cluster(value.get_ref()).map_err(|m| at(value.span(), "zk_cluster", m, None))?;
                value.get_ref().clone()
            }
            None if !zk_from_hosts.is_empty() => zk_from_hosts.join(","),
            None => {
                return Err(ConfigError::whole_file(
                    path,
                    "missing key `zk_cluster`",
                    Some(
                        "add zk_cluster = \"host:port[,host:port]\", the value of --zk_cluster in conf/*.flags".into(),
                    ),
                ))
            }
        };
        let root_path = match &raw.zk_root_path {
            Some(value) => {
                let v = value.get_ref();
                if !v.starts_with('/') || (v.len() > 1 && v.ends_with('/')) {
                    return Err(at(
                        value.span(),
                        "zk_root_path",
                        format!("`{v}` is not a ZooKeeper path"),
                        Some("use the value of --zk_root_path, for example \"/openmldb\""),
                    ));
                }
                v.clone()
            }
            None => DEFAULT_ZK_ROOT_PATH.to_string(),
        };
        let cert = match &raw.zk_cert {
            Some(value) => {
                if !value.get_ref().contains(':') {
                    return Err(at(
                        value.span(),
                        "zk_cert",
                        "zk_cert must be `user:password`, the value of --zk_cert".into(),
                        None,
                    ));
                }
                Some(Secret::new(value.get_ref().clone()))
            }
            None => None,
        };
        let duration = |value: &Option<Spanned<String>>, key: &str, default: Duration| match value {
            Some(v) => parse_duration(v.get_ref()).map_err(|m| at(v.span(), key, m, None)),
            None => Ok(default),
        };
        let zk = ZkSettings {
            cluster: zk_cluster,
            root_path,
            cert,
            session_timeout: duration(&raw.zk_session_timeout, "zk_session_timeout", Duration::from_secs(10))?,
            connect_timeout: duration(&raw.zk_connect_timeout, "zk_connect_timeout", Duration::from_secs(5))?,
        };

        // OpenMLDB credentials: the password only ever comes from the environment.
        let credentials = match &raw.user {
            Some(user) => {
                let var = raw.password_env.as_ref().map_or(DEFAULT_PASSWORD_ENV.to_string(), |v| v.get_ref().clone());
                let password = env.var(&var).ok_or_else(|| {
                    at(
                        user.span(),
                        "user",
                        format!("`user` is set but the environment variable {var} (password_env) is not"),
                        Some(&format!(
                            "export {var}=<password of {}> (an empty value means the empty password), \
                             or remove `user` for clusters running with skip_grant_tables",
                            user.get_ref()
                        )),
                    )
                })?;
                Some(Credentials { user: user.get_ref().clone(), password: Secret::new(password) })
            }
            None => None,
        };

        // ssh: validate durations now so errors point at the file.
        for (key, common) in std::iter::once(("ssh".to_string(), &raw.ssh.common))
            .chain(raw.ssh.host.iter().map(|(h, c)| (format!("ssh.host.\"{h}\""), c)))
        {
            if let Some(t) = &common.connect_timeout {
                parse_duration(t)
                    .map_err(|m| ConfigError::whole_file(path, format!("{key}.connect_timeout: {m}"), None))?;
            }
        }

        // Components declared in the config, then those from conf/hosts.
        let mut components = Vec::new();
        for spanned in &raw.component {
            let c = spanned.get_ref();
            let index = components.len();
            let endpoint: Endpoint = c
                .endpoint
                .get_ref()
                .parse()
                .map_err(|m: String| at(c.endpoint.span(), &format!("component[{index}].endpoint"), m, None))?;
            let dir = c.dir.get_ref();
            if !dir.starts_with('/') && !dir.starts_with("~/") {
                return Err(at(
                    c.dir.span(),
                    &format!("component[{index}].dir"),
                    format!("`{dir}` is not an absolute path"),
                    Some("give the install root on the host, the directory holding bin/ and conf/"),
                ));
            }
            let (line, _) = diagnostic::line_col(text, spanned.span().start);
            components.push(Component {
                role: *c.role.get_ref(),
                host: c.host.as_ref().map_or_else(|| endpoint.host().to_string(), |h| h.get_ref().clone()),
                endpoint,
                dir: dir.clone(),
                daemon: c.daemon.unwrap_or(raw.daemon),
                origin: format!("{}:{line}", path.display()),
            });
        }
        components.extend(inventory);
        let mut seen: HashMap<String, &Component> = HashMap::new();
        for c in &components {
            if let Some(first) = seen.insert(c.endpoint.to_string(), c) {
                return Err(ConfigError::whole_file(
                    path,
                    format!("endpoint {} is declared twice: at {} and at {}", c.endpoint, first.origin, c.origin),
                    Some("each component needs its own endpoint".into()),
                ));
            }
        }

        let config = ClusterConfig {
            path: path.to_path_buf(),
            zk,
            credentials,
            ssh_defaults: raw.ssh.common.clone(),
            ssh_hosts: raw.ssh.host,
            components,
        };
        // Every host that will be reached over ssh2 must have usable key material now, not
        // halfway through an upgrade.
        for component in &config.components {
            let access = config.host_access_with_env(&component.host, env);
            if access.transport == TransportKind::Ssh2 {
                check_ssh_files(path, &access)?;
            }
        }
        Ok(config)
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
        let identity_files =
            match over.and_then(|o| o.identity_file.clone()).or_else(|| self.ssh_defaults.identity_file.clone()) {
                Some(files) => files.to_vec().iter().map(|f| expand_path(f, &base, env)).collect(),
                None => ["id_ed25519", "id_ecdsa", "id_rsa"]
                    .iter()
                    .map(|n| home.join(".ssh").join(n))
                    .filter(|p| p.exists())
                    .collect(),
            };
        HostAccess {
            host: host.to_string(),
            transport,
            user: pick(|c| c.user.clone()).or_else(|| env.var("USER")).unwrap_or_else(|| "root".into()),
            port: over.and_then(|o| o.port).or(self.ssh_defaults.port).unwrap_or(22),
            identity_files,
            known_hosts: pick(|c| c.known_hosts.clone())
                .map_or_else(|| home.join(".ssh/known_hosts"), |p| expand_path(&p, &base, env)),
            agent: over.and_then(|o| o.agent).or(self.ssh_defaults.agent).unwrap_or(false),
            connect_timeout: pick(|c| c.connect_timeout.clone())
                .and_then(|t| parse_duration(&t).ok())
                .unwrap_or(Duration::from_secs(10)),
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
}

fn check_ssh_files(config: &Path, access: &HostAccess) -> Result<(), ConfigError> {
    let key = format!("ssh settings of host {}", access.host);
    if access.identity_files.is_empty() && !access.agent {
        return Err(ConfigError {
            key: Some(key),
            ..ConfigError::whole_file(
                config,
                format!("no ssh key to log in to {} with", access.host),
                Some("set [ssh] identity_file = \"~/.ssh/id_ed25519\" or agent = true".into()),
            )
        });
    }
    for file in &access.identity_files {
        if let Err(e) = std::fs::File::open(file) {
            return Err(ConfigError {
                key: Some(format!("{key}: identity_file")),
                ..ConfigError::whole_file(
                    config,
                    format!("cannot read the ssh identity file {}: {e}", file.display()),
                    Some("fix identity_file under [ssh] (or [ssh.host.\"<host>\"]) or the file's permissions".into()),
                )
            });
        }
    }
    if let Err(e) = std::fs::File::open(&access.known_hosts) {
        return Err(ConfigError {
            key: Some(format!("{key}: known_hosts")),
            ..ConfigError::whole_file(
                config,
                format!("cannot read the known_hosts file {}: {e}", access.known_hosts.display()),
                Some(format!(
                    "host keys are checked strictly; record them first, e.g. `ssh-keyscan -p {} {} >> {}` \
                     after verifying the fingerprints",
                    access.port,
                    access.host,
                    access.known_hosts.display()
                )),
            )
        });
    }
    Ok(())
}

fn validate_zk_cluster(value: &str) -> Result<(), String> {
    if value.trim().is_empty() {
        return Err("zk_cluster is empty; expected host:port[,host:port]".into());
    }
    for part in value.split(',') {
        part.parse::<Endpoint>()
            .map_err(|_| format!("`{part}` in zk_cluster is not host:port; expected host:port[,host:port]"))?;
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn parse(text: &str) -> Result<ClusterConfig, ConfigError> {
        ClusterConfig::parse(Path::new("/etc/mldb/cluster.toml"), text, &env(&[("HOME", "/home/op")]))
    }

    const LOCAL: &str = "zk_cluster = \"127.0.0.1:2181\"\n[ssh]\ntransport = \"local\"\n";

    #[test]
    fn minimal_config_gets_defaults() {
        let c = parse(LOCAL).unwrap();
        assert_eq!(c.zk.root_path, "/openmldb");
        assert_eq!(c.zk.session_timeout, Duration::from_secs(10));
        assert!(c.credentials.is_none());
        assert_eq!(c.host_access("10.0.0.1").transport, TransportKind::Local);
    }

    #[test]
    fn auto_transport_is_local_only_for_this_machine_o2_3() {
        let c = parse("zk_cluster = \"127.0.0.1:2181\"\n").unwrap();
        assert_eq!(c.host_access("127.0.0.1").transport, TransportKind::Local);
        assert_eq!(c.host_access("localhost").transport, TransportKind::Local);
        assert_eq!(c.host_access("10.0.0.1").transport, TransportKind::Ssh2);
    }

    #[test]
    fn unknown_key_names_line_and_key() {
        let err = parse("zk_clustr = \"127.0.0.1:2181\"\n").unwrap_err();
        let text = err.to_string();
        assert_eq!(err.line, Some(1));
        assert!(text.contains("unknown field `zk_clustr`"), "{text}");
        assert!(text.contains("/etc/mldb/cluster.toml:1:1"), "{text}");
    }

    #[test]
    fn bad_endpoint_points_at_value() {
        let text = format!("{LOCAL}[[component]]\nrole = \"tablet\"\nendpoint = \"10.0.0.1\"\ndir = \"/opt/o\"\n");
        let err = parse(&text).unwrap_err();
        assert_eq!(err.line, Some(6));
        assert_eq!(err.key.as_deref(), Some("component[0].endpoint"));
        assert!(err.to_string().contains("expected host:port"));
    }

    #[test]
    fn unknown_role_is_rejected() {
        let text = format!("{LOCAL}[[component]]\nrole = \"tablets\"\nendpoint = \"h:1\"\ndir = \"/o\"\n");
        let err = parse(&text).unwrap_err();
        assert_eq!(err.line, Some(5));
        assert!(err.message.contains("tablets"), "{}", err.message);
    }

    #[test]
    fn password_comes_only_from_environment() {
        let text = "zk_cluster = \"127.0.0.1:2181\"\nuser = \"root\"\n[ssh]\ntransport = \"local\"\n";
        let err = parse(text).unwrap_err();
        assert!(err.message.contains("OPENMLDB_PASSWORD"));
        let c = ClusterConfig::parse(Path::new("c.toml"), text, &env(&[("OPENMLDB_PASSWORD", "s3cret")])).unwrap();
        let creds = c.credentials.unwrap();
        assert_eq!(creds.password.expose(), "s3cret");
        assert!(!format!("{creds:?}").contains("s3cret"));
    }

    #[test]
    fn duplicate_endpoints_name_both_places() {
        let comp = "[[component]]\nrole = \"tablet\"\nendpoint = \"h:1\"\ndir = \"/o\"\n";
        let err = parse(&format!("{LOCAL}{comp}{comp}")).unwrap_err();
        assert!(err.message.contains("cluster.toml:4") && err.message.contains("cluster.toml:8"), "{}", err.message);
    }

    #[test]
    fn unreadable_identity_file_is_input_error() {
        let text = "zk_cluster = \"h:2181\"\n[ssh]\ntransport = \"ssh2\"\nidentity_file = \"/nonexistent/key\"\n\
                    [[component]]\nrole = \"tablet\"\nendpoint = \"10.0.0.1:10921\"\ndir = \"/o\"\n";
        let err = parse(text).unwrap_err();
        assert!(err.message.contains("/nonexistent/key"), "{}", err.message);
    }

    #[test]
    fn hosts_inventory_is_imported_o2_2() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("hosts"), "[tablet]\n127.0.0.1:10921 /w/t1\n127.0.0.1:10922\n[nameserver]\n127.0.0.1\n[zookeeper]\n127.0.0.1:2182:2888:3888\n").unwrap();
        let cfg = dir.path().join("cluster.toml");
        let text = "hosts = \"hosts\"\nopenmldb_home = \"/w/home\"\n";
        let c = ClusterConfig::parse(&cfg, text, &env(&[])).unwrap();
        assert_eq!(c.zk.cluster, "127.0.0.1:2182");
        assert_eq!(c.components.len(), 3);
        assert_eq!(c.components[0].dir, "/w/t1");
        assert_eq!(c.components[1].dir, "/w/home");
        assert_eq!(c.components[2].endpoint.to_string(), "127.0.0.1:7527");
        assert_eq!(c.components[2].role, Role::Nameserver);
    }
}
