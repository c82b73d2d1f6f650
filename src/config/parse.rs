//! Reading `cluster.toml`: the file as written (`Raw*`, strict: unknown keys are errors) and its
//! validation into a [`ClusterConfig`], one small function per part. Every error names the file,
//! the line and the key, and says what is expected.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::inventory::{env_table, import_hosts, openmldb_env_file, Inventory};
use super::openmldb_env::OpenmldbEnv;
use super::{
    parse_duration, ClusterConfig, Component, ConfigError, Credentials, Environment, HostAccess, Secret, TransportKind,
    ZkSettings, DEFAULT_PASSWORD_ENV, DEFAULT_ZK_ROOT_PATH,
};
use crate::cluster::topology::{Endpoint, Role};
use crate::diagnostic;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    zk_cluster: Option<Spanned<String>>,
    zk_root_path: Option<Spanned<String>>,
    zk_cert: Option<Spanned<String>>,
    zk_session_timeout: Option<Spanned<String>>,
    zk_connect_timeout: Option<Spanned<String>>,
    user: Option<Spanned<String>>,
    password_env: Option<Spanned<String>>,
    pub hosts: Option<Spanned<String>>,
    pub openmldb_home: Option<Spanned<String>>,
    pub openmldb_env: Option<Spanned<String>>,
    env: Option<Spanned<BTreeMap<String, String>>>,
    #[serde(default)]
    pub daemon: bool,
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
pub(super) struct RawSshCommon {
    pub user: Option<String>,
    pub port: Option<u16>,
    pub identity_file: Option<OneOrMany>,
    pub known_hosts: Option<String>,
    pub agent: Option<bool>,
    pub transport: Option<TransportKind>,
    pub connect_timeout: Option<String>,
    pub login_shell: Option<bool>,
    pub staging_dir: Option<String>,
    /// The ssh config file of the `openssh` transport (`ssh -F`).
    pub ssh_config: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(super) enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn to_vec(&self) -> Vec<String> {
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
    env: Option<Spanned<BTreeMap<String, String>>>,
}

/// The text being parsed, for errors that point into it.
pub(super) struct Source<'a> {
    pub path: &'a Path,
    pub text: &'a str,
}

impl Source<'_> {
    /// An error at `span` of the text, about `key`.
    fn error_at(&self, span: Range<usize>, key: &str, message: String, help: Option<&str>) -> ConfigError {
        let (line, column) = diagnostic::line_col(self.text, span.start);
        ConfigError {
            file: self.path.to_path_buf(),
            line: Some(line),
            column,
            width: self.text[span].lines().next().map_or(1, |l| l.chars().count()),
            key: Some(key.to_string()),
            message,
            help: help.map(str::to_string),
            source_text: Some(self.text.to_string()),
        }
    }

    /// An error about a whole value (`key`), at its place in the text.
    pub(super) fn value_error<T>(
        &self,
        value: &Spanned<T>,
        key: &str,
        message: String,
        help: Option<&str>,
    ) -> ConfigError {
        self.error_at(value.span(), key, message, help)
    }

    /// A TOML syntax or schema error (unknown key, wrong type). An unknown key is pointed at
    /// itself (serde reports the header of a table with flattened keys, like `[ssh]`) and the
    /// closest known key is suggested.
    fn toml_error(&self, e: toml::de::Error) -> ConfigError {
        let message = e.message().trim().to_string();
        let mut span = e.span().unwrap_or(0..0);
        let unknown = message.strip_prefix("unknown field `").and_then(|rest| rest.split('`').next());
        let mut help = None;
        if let Some(field) = unknown {
            if let Some(at) = key_position(self.text, span.start, field) {
                span = at..at + field.len();
            }
            let expected: Vec<&str> = match message.split_once("expected one of ") {
                Some((_, list)) => list.split(", ").map(|k| k.trim_matches('`')).collect(),
                None => SSH_KEYS.to_vec(),
            };
            help = Some(match closest_key(&expected, field) {
                Some(k) => format!("did you mean `{k}`? README.md lists every key"),
                None => format!("the keys here are {}; README.md lists every key", expected.join(", ")),
            });
        }
        let mut err = self.error_at(span, "", format!("invalid cluster config: {message}"), None);
        err.key = None;
        err.help = help;
        err
    }
}

/// The keys of `[ssh]` and `[ssh.host."<host>"]` (serde cannot list them: they are flattened).
const SSH_KEYS: [&str; 11] = [
    "user",
    "port",
    "identity_file",
    "known_hosts",
    "agent",
    "transport",
    "connect_timeout",
    "login_shell",
    "staging_dir",
    "ssh_config",
    "host",
];

/// The known key `field` was probably meant to be: one it is the start of, else the nearest.
fn closest_key<'a>(known: &[&'a str], field: &str) -> Option<&'a str> {
    if let Some(longer) = known.iter().find(|k| k.starts_with(field)) {
        return Some(longer);
    }
    known.iter().map(|k| (strsim::levenshtein(k, field), *k)).filter(|(d, _)| *d <= 3).min().map(|(_, k)| k)
}

/// Where the line that sets `key` starts, at or after `from`.
fn key_position(text: &str, from: usize, key: &str) -> Option<usize> {
    let mut offset = text[..from].rfind('\n').map_or(0, |i| i + 1);
    for line in text[offset..].split_inclusive('\n') {
        let trimmed = line.trim_start();
        let rest = trimmed.strip_prefix(key).map(str::trim_start);
        if rest.is_some_and(|r| r.starts_with('=')) {
            return Some(offset + (line.len() - trimmed.len()));
        }
        offset += line.len();
    }
    None
}

impl ClusterConfig {
    /// Parses config text; `path` names the file in messages and anchors relative paths.
    pub fn parse(path: &Path, text: &str, env: &dyn Environment) -> Result<Self, ConfigError> {
        let source = Source { path, text };
        let raw: RawConfig = toml::from_str(text).map_err(|e| source.toml_error(e))?;
        let base = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        let openmldb_env = openmldb_env_file(&source, &raw, &base, env)?;
        let common_env = env_table(&source, raw.env.as_ref(), "env")?;
        let inventory = match &raw.hosts {
            Some(hosts_path) => import_hosts(&source, hosts_path, &raw, &base, env, openmldb_env.as_ref())?,
            None => Inventory::default(),
        };
        let zk = zk_settings(&source, &raw, &inventory.zookeepers, openmldb_env.as_ref())?;
        let credentials = credentials(&source, &raw, env)?;
        check_ssh_durations(path, &raw.ssh)?;
        let mut components = declared_components(&source, &raw)?;
        components.extend(inventory.components);
        for c in &mut components {
            // The common table first: a component's own values (and the TaskManager's from
            // openmldb-env.sh) are exported after it and win.
            c.env.splice(0..0, common_env.iter().cloned());
        }
        check_unique_endpoints(path, &components)?;
        let config = ClusterConfig {
            path: path.to_path_buf(),
            zk,
            credentials,
            ssh_defaults: raw.ssh.common,
            ssh_hosts: raw.ssh.host,
            components,
            openmldb_env,
        };
        // Every host that will be reached over ssh2 must have usable key material now, not
        // halfway through an upgrade.
        for component in &config.components {
            let access = config.host_access_with_env(&component.host, env);
            if access.transport == TransportKind::Ssh2 {
                check_ssh_files(path, &access)?;
            }
            if access.transport == TransportKind::Openssh {
                check_openssh(path, &access)?;
            }
        }
        Ok(config)
    }
}

/// ZooKeeper: `zk_cluster` (or the `[zookeeper]` servers of conf/hosts), root path, cert and
/// timeouts, as the cluster's own `--zk_*` flags give them (C§1.1).
fn zk_settings(
    source: &Source,
    raw: &RawConfig,
    from_hosts: &[String],
    openmldb_env: Option<&OpenmldbEnv>,
) -> Result<ZkSettings, ConfigError> {
    let from_env = |name: &str| openmldb_env.and_then(|e| e.get(name)).map(str::to_string);
    let cluster = match &raw.zk_cluster {
        Some(value) => {
            validate_zk_cluster(value.get_ref()).map_err(|m| source.value_error(value, "zk_cluster", m, None))?;
            value.get_ref().clone()
        }
        // init.sh: OPENMLDB_ZK_CLUSTER when set, else the [zookeeper] lines of conf/hosts.
        None if from_env("OPENMLDB_ZK_CLUSTER").is_some() => {
            let value = from_env("OPENMLDB_ZK_CLUSTER").unwrap_or_default();
            validate_zk_cluster(&value).map_err(|m| {
                ConfigError::whole_file(
                    source.path,
                    format!("OPENMLDB_ZK_CLUSTER in openmldb-env.sh: {m}"),
                    Some("fix it there, or set zk_cluster in the cluster config".into()),
                )
            })?;
            value
        }
        None if !from_hosts.is_empty() => from_hosts.join(","),
        None => {
            return Err(ConfigError::whole_file(
                source.path,
                "missing key `zk_cluster`",
                Some("add zk_cluster = \"host:port[,host:port]\", the value of --zk_cluster in conf/*.flags".into()),
            ))
        }
    };
    let root_path = match &raw.zk_root_path {
        Some(value) => {
            let v = value.get_ref();
            if !v.starts_with('/') || (v.len() > 1 && v.ends_with('/')) {
                return Err(source.value_error(
                    value,
                    "zk_root_path",
                    format!("`{v}` is not a ZooKeeper path"),
                    Some("use the value of --zk_root_path, for example \"/openmldb\""),
                ));
            }
            v.clone()
        }
        None => from_env("OPENMLDB_ZK_ROOT_PATH").unwrap_or_else(|| DEFAULT_ZK_ROOT_PATH.to_string()),
    };
    let cert = match &raw.zk_cert {
        Some(value) if !value.get_ref().contains(':') => {
            return Err(source.value_error(
                value,
                "zk_cert",
                "zk_cert must be `user:password`, the value of --zk_cert".into(),
                None,
            ))
        }
        Some(value) => Some(Secret::new(value.get_ref().clone())),
        None => None,
    };
    let duration = |value: &Option<Spanned<String>>, key: &str, default: Duration| match value {
        Some(v) => parse_duration(v.get_ref()).map_err(|m| source.value_error(v, key, m, None)),
        None => Ok(default),
    };
    Ok(ZkSettings {
        cluster,
        root_path,
        cert,
        session_timeout: duration(&raw.zk_session_timeout, "zk_session_timeout", Duration::from_secs(10))?,
        connect_timeout: duration(&raw.zk_connect_timeout, "zk_connect_timeout", Duration::from_secs(5))?,
    })
}

/// OpenMLDB credentials (C§2.1): the password only ever comes from the environment.
fn credentials(source: &Source, raw: &RawConfig, env: &dyn Environment) -> Result<Option<Credentials>, ConfigError> {
    let Some(user) = &raw.user else { return Ok(None) };
    let var = raw.password_env.as_ref().map_or(DEFAULT_PASSWORD_ENV.to_string(), |v| v.get_ref().clone());
    let password = env.var(&var).ok_or_else(|| {
        source.value_error(
            user,
            "user",
            format!("`user` is set but the environment variable {var} (password_env) is not"),
            Some(&format!(
                "export {var}=<password of {}> (an empty value means the empty password), \
                 or remove `user` for clusters running with skip_grant_tables",
                user.get_ref()
            )),
        )
    })?;
    Ok(Some(Credentials { user: user.get_ref().clone(), password: Secret::new(password) }))
}

/// ssh durations are checked now, so errors point at the file rather than a later connect.
fn check_ssh_durations(path: &Path, ssh: &RawSsh) -> Result<(), ConfigError> {
    let sections = std::iter::once(("ssh".to_string(), &ssh.common))
        .chain(ssh.host.iter().map(|(h, c)| (format!("ssh.host.\"{h}\""), c)));
    for (key, common) in sections {
        if let Some(t) = &common.connect_timeout {
            parse_duration(t)
                .map_err(|m| ConfigError::whole_file(path, format!("{key}.connect_timeout: {m}"), None))?;
        }
    }
    Ok(())
}

/// The `[[component]]` tables, in file order.
fn declared_components(source: &Source, raw: &RawConfig) -> Result<Vec<Component>, ConfigError> {
    let mut components = Vec::new();
    for (index, spanned) in raw.component.iter().enumerate() {
        let c = spanned.get_ref();
        let endpoint: Endpoint =
            c.endpoint.get_ref().parse().map_err(|m: String| {
                source.value_error(&c.endpoint, &format!("component[{index}].endpoint"), m, None)
            })?;
        let dir = c.dir.get_ref();
        if !dir.starts_with('/') && !dir.starts_with("~/") {
            return Err(source.value_error(
                &c.dir,
                &format!("component[{index}].dir"),
                format!("`{dir}` is not an absolute path"),
                Some("give the install root on the host, the directory holding bin/ and conf/"),
            ));
        }
        let (line, _) = diagnostic::line_col(source.text, spanned.span().start);
        components.push(Component {
            role: *c.role.get_ref(),
            host: c.host.as_ref().map_or_else(|| endpoint.host().to_string(), |h| h.get_ref().clone()),
            endpoint,
            dir: dir.clone(),
            daemon: c.daemon.unwrap_or(raw.daemon),
            origin: format!("{}:{line}", source.path.display()),
            env: env_table(source, c.env.as_ref(), &format!("component[{index}].env"))?,
        });
    }
    Ok(components)
}

fn check_unique_endpoints(path: &Path, components: &[Component]) -> Result<(), ConfigError> {
    let mut seen: HashMap<String, &Component> = HashMap::new();
    for c in components {
        if let Some(first) = seen.insert(c.endpoint.to_string(), c) {
            return Err(ConfigError::whole_file(
                path,
                format!("endpoint {} is declared twice: at {} and at {}", c.endpoint, first.origin, c.origin),
                Some("each component needs its own endpoint".into()),
            ));
        }
    }
    Ok(())
}

/// The `openssh` transport: the files the cluster config names must be readable, and `ssh` must
/// be installed; the rest is the ssh config's business, as in the operator's shell.
fn check_openssh(config: &Path, access: &HostAccess) -> Result<(), ConfigError> {
    let key = format!("ssh settings of host {}", access.host);
    let explicit = &access.explicit;
    let named = explicit
        .identity_files
        .iter()
        .map(|f| ("identity_file", f))
        .chain(explicit.known_hosts.iter().map(|f| ("known_hosts", f)))
        .chain(explicit.ssh_config.iter().map(|f| ("ssh_config", f)));
    for (setting, file) in named {
        if let Err(e) = std::fs::File::open(file) {
            return Err(ConfigError {
                key: Some(format!("{key}: {setting}")),
                ..ConfigError::whole_file(
                    config,
                    format!("cannot read {setting} {}: {e}", file.display()),
                    Some(format!(
                        "fix {setting} under [ssh] (or [ssh.host.\"<host>\"]), or leave it out to use your ssh config"
                    )),
                )
            });
        }
    }
    let ssh_installed = std::process::Command::new("ssh")
        .arg("-V")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok();
    if !ssh_installed {
        return Err(ConfigError {
            key: Some(format!("{key}: transport")),
            ..ConfigError::whole_file(
                config,
                "transport = \"openssh\" runs the system's `ssh`, which is not installed here".to_string(),
                Some(
                    "install the OpenSSH client (`apt-get install openssh-client`), or use transport = \"ssh2\"".into(),
                ),
            )
        });
    }
    Ok(())
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
    fn openssh_passes_on_only_what_the_config_sets() {
        let dir = tempfile::tempdir().unwrap();
        let ssh_config = dir.path().join("ssh_config");
        std::fs::write(&ssh_config, "Host db-7\n  HostName 10.0.0.7\n").unwrap();
        let text = format!(
            "zk_cluster = \"127.0.0.1:2181\"\n[ssh]\ntransport = \"openssh\"\nssh_config = \"{}\"\n\
             [ssh.host.\"db-7\"]\nuser = \"ops\"\n\
             [[component]]\nrole = \"tablet\"\nendpoint = \"10.0.0.7:10921\"\nhost = \"db-7\"\ndir = \"/opt/o\"\n",
            ssh_config.display()
        );
        let c = parse(&text).unwrap();
        let access = c.host_access("db-7");
        assert_eq!(access.transport, TransportKind::Openssh);
        assert_eq!(access.explicit.user.as_deref(), Some("ops"));
        assert_eq!((access.explicit.port, access.explicit.known_hosts.as_ref()), (None, None));
        assert!(access.explicit.identity_files.is_empty());
        assert_eq!(access.explicit.ssh_config.as_deref(), Some(ssh_config.as_path()));
        // A named file that is not there is refused before anything runs, naming the setting.
        let missing = text.replace(&ssh_config.display().to_string(), "/nonexistent/ssh_config");
        let err = parse(&missing).unwrap_err().to_string();
        assert!(err.contains("cannot read ssh_config /nonexistent/ssh_config"), "{err}");
        assert!(err.contains("leave it out to use your ssh config"), "{err}");
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

    #[test]
    fn deploy_all_layout_takes_home_ports_zk_and_spark_home_from_openmldb_env_o2_1() {
        let dir = tempfile::tempdir().unwrap();
        let release = dir.path().join("openmldb-0.9.2-linux");
        std::fs::create_dir_all(release.join("conf")).unwrap();
        std::fs::write(
            release.join("conf/hosts"),
            "[tablet]\n10.0.0.2 /data/tablet\n[nameserver]\n10.0.0.5\n[taskmanager]\n10.0.0.5\n",
        )
        .unwrap();
        std::fs::write(
            release.join("conf/openmldb-env.sh"),
            "export OPENMLDB_HOME=\nexport SPARK_HOME=\nexport RUNNER_JAVA_HOME=/opt/jdk\n\
             export OPENMLDB_ZK_CLUSTER=10.0.0.9:2181\nexport OPENMLDB_ZK_ROOT_PATH=/prod\n\
             export OPENMLDB_TABLET_PORT=20921\nexport OPENMLDB_NAMESERVER_PORT=8527\n",
        )
        .unwrap();
        let text = format!(
            "hosts = \"{}\"\n[env]\nHADOOP_CONF_DIR = \"/etc/hadoop\"\n[ssh]\ntransport = \"local\"\nlogin_shell = true\n",
            release.join("conf/hosts").display()
        );
        let c = ClusterConfig::parse(&dir.path().join("cluster.toml"), &text, &env(&[])).unwrap();
        let home = release.display().to_string();
        assert_eq!((c.zk.cluster.as_str(), c.zk.root_path.as_str()), ("10.0.0.9:2181", "/prod"));
        assert_eq!(c.components[0].endpoint.to_string(), "10.0.0.2:20921");
        assert_eq!(c.components[1].endpoint.to_string(), "10.0.0.5:8527");
        assert_eq!(c.components[1].dir, home, "no WORKDIR: the release root");
        assert!(c.components[1].shares_dir_with(&c.components[2]));
        assert_eq!(c.shared_dirs().len(), 1);
        let tm_env = &c.components[2].env;
        assert_eq!(tm_env[0], ("HADOOP_CONF_DIR".to_string(), "/etc/hadoop".to_string()));
        assert!(tm_env.contains(&("SPARK_HOME".to_string(), format!("{home}/spark"))), "{tm_env:?}");
        assert!(tm_env.contains(&("JAVA_HOME".to_string(), "/opt/jdk".to_string())), "{tm_env:?}");
        assert_eq!(c.components[0].env.len(), 1, "only [env] for a tablet");
        let access = c.host_access("10.0.0.5");
        assert!(access.login_shell);
        assert_eq!(access.staging_dir, crate::config::DEFAULT_STAGING_DIR);
    }

    #[test]
    fn env_names_must_be_variable_names() {
        let err = parse(&format!("{LOCAL}[env]\n\"JAVA-HOME\" = \"/opt\"\n")).unwrap_err();
        assert!(err.message.contains("`JAVA-HOME` is not an environment variable name"), "{}", err.message);
    }
}
