//! `mldb-upgrade discover`: a `cluster.toml` from what a running cluster knows, changing nothing.
//!
//! - **ZooKeeper** (C§1.1) lists the nameservers (`<root>/leader` election nodes, whose value is
//!   the endpoint, or the server name with `--use_name`), the tablets (`<root>/nodes`), the
//!   names' real endpoints (`<root>/map/names`) and the active TaskManager
//!   (`<root>/taskmanager/leader`). It lists no apiserver and no standby TaskManager.
//! - **The hosts** (over ssh, read-only): every OpenMLDB process there, from `/proc`. A
//!   process's working directory is its install root (`bin/start.sh` runs
//!   `./bin/openmldb --flagfile=./conf/<role>.flags` there, a TaskManager in
//!   `taskmanager/bin`, O§1.3). Its flag file (or `conf/taskmanager.properties`) gives its
//!   endpoint and its ZooKeeper, so processes of another cluster on the same host are left out.
//!   A `bin/mon` process for the same role and root means daemon (mon) mode (O§1.3).
//! - **The processes themselves**: the version each runs (`GET /version`, or the TaskManager's
//!   `GetVersion`, C§1.4, O§4.3).
//!
//! Apiservers, which ZooKeeper does not list, are those of the `[apiserver]` section of
//! `--hosts conf/hosts` when given (each must be found running), and any found on the hosts
//! probed; standby TaskManagers, those found on the hosts probed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::cluster::component::probe::{flag_value, parse_procs, Proc, DESCRIBE_PID};
use crate::cluster::rpc::RpcClient;
use crate::cluster::topology::Role;
use crate::cluster::zk::{Zk, ZkError};
use crate::cluster::Cluster;
use crate::config::{ClusterConfig, TransportKind};
use crate::error::Error;
use crate::interrupt::Interrupt;
use crate::ssh::SshClient;

/// What `discover` is told.
#[derive(Debug, Clone)]
pub struct Options {
    /// `host:port[,host:port...]`.
    pub zk: String,
    pub zk_root: String,
    pub transport: TransportKind,
    /// `ssh -F` for the `openssh` transport.
    pub ssh_config: Option<PathBuf>,
    /// The ssh user, when not the ssh config's (or `$USER`).
    pub user: Option<String>,
    /// The cluster's `conf/hosts` (O§2.2), for its apiservers.
    pub hosts_file: Option<PathBuf>,
}

/// One component found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovered {
    pub role: Role,
    pub endpoint: String,
    pub host: String,
    pub dir: String,
    pub daemon: bool,
    /// What the running process reports; empty when it did not answer.
    pub version: String,
    /// Where it was found, for the comment above it.
    pub found: String,
    /// A TaskManager ZooKeeper does not list as the active one.
    pub standby: bool,
}

impl Discovered {
    /// The running version, or why there is none.
    pub fn version_text(&self) -> String {
        match (self.version.is_empty(), self.standby) {
            (false, _) => format!("running {}", self.version),
            // TaskManagerServer.start blocks in blockUntilActive before startRpcServer.
            (true, true) => "running (version unknown: a standby answers no RPC until it becomes active)".into(),
            (true, false) => "running (version unknown: it did not answer)".into(),
        }
    }
}

/// Time limit of reading one host.
const HOST_PROBE: Duration = Duration::from_secs(30);

/// Lists the candidate processes of a host: those whose command line names a role's flag file
/// or the TaskManager ([`DESCRIBE_PID`] records).
const LIST_PROCESSES: &str = "for d in /proc/[0-9]*; do p=${d#/proc/}; \
     c=$(tr '\\000' ' ' < \"$d\"/cmdline 2>/dev/null); \
     case \"$c\" in *conf/*.flags*|*taskmanager*) ";

/// The `[ssh]` table and ZooKeeper lines the discovered file starts with (also the config the
/// discovery itself reaches the hosts with).
fn header(options: &Options) -> String {
    let mut text = format!(
        "zk_cluster = {}\nzk_root_path = {}\n\n[ssh]\ntransport = \"{}\"\n",
        toml_string(&options.zk),
        toml_string(&options.zk_root),
        transport_name(options.transport)
    );
    if let Some(user) = &options.user {
        text.push_str(&format!("user = {}\n", toml_string(user)));
    }
    if let Some(config) = &options.ssh_config {
        text.push_str(&format!("ssh_config = {}\n", toml_string(&config.display().to_string())));
    }
    text
}

fn transport_name(kind: TransportKind) -> &'static str {
    match kind {
        TransportKind::Ssh2 => "ssh2",
        TransportKind::Local => "local",
        TransportKind::Auto => "auto",
        TransportKind::Openssh => "openssh",
    }
}

fn toml_string(text: &str) -> String {
    toml::Value::String(text.to_string()).to_string()
}

/// The endpoints ZooKeeper lists, by role (TaskManager: the active one only).
async fn from_zookeeper(zk: &Zk) -> Result<Vec<(Role, String, String)>, ZkError> {
    let mut listed = Vec::new();
    // A `--use_name` server is listed by name; `map/names/<name>` holds its endpoint (C§1.1).
    let real = |value: String| async move {
        if value.contains(':') {
            return value;
        }
        match zk.get(&format!("map/names/{value}")).await {
            Ok(endpoint) => String::from_utf8_lossy(&endpoint).trim().to_string(),
            Err(_) => value,
        }
    };
    let mut nameservers = BTreeMap::new();
    for node in zk.children("leader").await.unwrap_or_default() {
        if let Ok(value) = zk.get(&format!("leader/{node}")).await {
            nameservers.insert(real(String::from_utf8_lossy(&value).trim().to_string()).await, node);
        }
    }
    for (endpoint, node) in nameservers {
        listed.push((Role::Nameserver, endpoint.clone(), format!("leader/{node}")));
    }
    let nodes = match zk.children("nodes").await {
        Err(ZkError::NoNode { .. }) => Vec::new(),
        other => other?,
    };
    for node in nodes {
        // Nearline tablets are not the nameserver's tablets (C§1.1).
        if node.starts_with("NLTABLET_") {
            continue;
        }
        listed.push((Role::Tablet, real(node.clone()).await, format!("nodes/{node}")));
    }
    match zk.get("taskmanager/leader").await {
        Ok(value) => listed.push((
            Role::Taskmanager,
            String::from_utf8_lossy(&value).trim().to_string(),
            "taskmanager/leader (the active one)".to_string(),
        )),
        Err(ZkError::NoNode { .. }) => {}
        Err(e) => return Err(e),
    }
    Ok(listed)
}

/// An OpenMLDB process found on a host, with what its configuration says.
#[derive(Debug, Clone)]
struct HostProcess {
    role: Role,
    root: String,
    endpoint: Option<String>,
    zk_cluster: Option<String>,
    zk_root: Option<String>,
    is_mon: bool,
}

/// The role a process's command line names.
fn role_of(process: &Proc) -> Option<Role> {
    for role in [Role::Nameserver, Role::Tablet, Role::Apiserver] {
        if process.cmdline.contains(&format!("conf/{role}.flags")) {
            return Some(role);
        }
    }
    // `bin/start.sh` runs a TaskManager from `taskmanager/bin` (O§1.3), whatever runs it (java).
    let in_taskmanager_bin = process.cwd.as_deref().is_some_and(|cwd| cwd.ends_with("/taskmanager/bin"));
    (process.cmdline.contains("taskmanager") && in_taskmanager_bin).then_some(Role::Taskmanager)
}

/// The ZooKeeper servers of a `host:port,...` list, for comparing two spellings of it.
fn zk_servers(list: &str) -> BTreeSet<String> {
    list.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect()
}

/// `key=value` of a properties file.
fn property(text: &str, key: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let (k, v) = line.trim().split_once('=')?;
        (k.trim() == key && !line.trim_start().starts_with('#')).then(|| v.trim().to_string())
    })
}

/// Reads the OpenMLDB processes on `host` and their configuration.
async fn on_host(ssh: &SshClient, host: &str) -> Result<Vec<HostProcess>, Error> {
    let interrupt = Interrupt::new();
    let unreachable = |e: crate::ssh::SshError| {
        Error::Operation(format!(
            "discover: cannot read the processes on {host}: {e}\nNothing was written. Check that this machine \
             reaches {host} over ssh (--transport, --ssh-config, --user), then run discover again."
        ))
    };
    let list = format!("{LIST_PROCESSES}{DESCRIBE_PID};; esac; done");
    let out = ssh.exec(host, &list, HOST_PROBE, &interrupt).await.map_err(unreachable)?;
    let mut found = Vec::new();
    for process in parse_procs(&out.stdout) {
        let Some(role) = role_of(&process) else { continue };
        let Some(cwd) = process.cwd.clone() else { continue };
        let is_mon = process.exe.as_deref().is_some_and(|e| e.trim_end_matches(" (deleted)").ends_with("/bin/mon"))
            || process.cmdline.split_whitespace().next().is_some_and(|first| first.ends_with("bin/mon"));
        let root = match role {
            Role::Taskmanager => cwd.strip_suffix("/taskmanager/bin").unwrap_or(&cwd).to_string(),
            _ => cwd.clone(),
        };
        let config_file = match role {
            Role::Taskmanager => format!("{root}/conf/taskmanager.properties"),
            role => format!("{root}/conf/{role}.flags"),
        };
        let read = format!("cat {}", shlex::try_quote(&config_file).unwrap_or_default());
        let text = ssh.exec(host, &read, HOST_PROBE, &interrupt).await.map_err(unreachable)?.stdout;
        let (endpoint, zk_cluster, zk_root) = match role {
            Role::Taskmanager => (
                property(&text, "server.host").zip(property(&text, "server.port")).map(|(h, p)| format!("{h}:{p}")),
                property(&text, "zookeeper.cluster"),
                property(&text, "zookeeper.root_path"),
            ),
            _ => (flag_value(&text, "endpoint"), flag_value(&text, "zk_cluster"), flag_value(&text, "zk_root_path")),
        };
        found.push(HostProcess { role, root, endpoint, zk_cluster, zk_root, is_mon });
    }
    Ok(found)
}

/// Finds the cluster's components (see the module docs). Changes nothing anywhere.
pub async fn discover(options: &Options) -> Result<Vec<Discovered>, Error> {
    // The local file first: a wrong --hosts stops discovery before it reaches anything.
    let apiservers = match &options.hosts_file {
        Some(file) => conf_hosts_apiservers(file)?,
        None => Vec::new(),
    };
    let text = header(options);
    let config = ClusterConfig::parse(std::path::Path::new("discover"), &text, &std::collections::HashMap::new())
        .map_err(|e| Error::Usage(format!("discover: {e}")))?;
    let zk = Arc::new(Zk::new(config.zk.clone()));
    let zk_error = |e: ZkError| {
        Error::Operation(format!(
            "discover: cannot read the cluster from ZooKeeper {} (root {}): {e}\nNothing was written. Check --zk \
             (host:port of the cluster's zk_cluster) and --zk-root (its zk_root_path).",
            options.zk, options.zk_root
        ))
    };
    zk.connect().await.map_err(zk_error)?;
    let listed = from_zookeeper(&zk).await.map_err(zk_error)?;
    if listed.is_empty() {
        return Err(Error::Operation(format!(
            "discover: ZooKeeper {} lists no nameserver and no tablet under {}: is --zk-root the cluster's zk_root_path?\nNothing was written.",
            options.zk, options.zk_root
        )));
    }
    let ssh = SshClient::new(Some(Arc::new(config)));
    let ours = zk_servers(&options.zk);
    // Every host ZooKeeper names (a wildcard address names none) and every conf/hosts
    // apiserver's, each read once.
    let listed_hosts = listed.iter().filter_map(|(_, endpoint, _)| endpoint.rsplit_once(':').map(|(h, _)| h));
    let to_probe: BTreeSet<&str> =
        listed_hosts.filter(|h| !is_wildcard(h)).chain(apiservers.iter().map(|(host, _, _)| host.as_str())).collect();
    let mut hosts: BTreeMap<String, Vec<HostProcess>> = BTreeMap::new();
    for host in to_probe {
        hosts.insert(host.to_string(), on_host(&ssh, host).await?);
    }
    // Only processes of this cluster: same ZooKeeper servers and root.
    let of_cluster = |p: &HostProcess| {
        p.zk_root.as_deref().unwrap_or("/openmldb") == options.zk_root
            && p.zk_cluster.as_deref().is_some_and(|z| !zk_servers(z).is_disjoint(&ours))
    };
    let mut found = Vec::new();
    let mut seen = BTreeSet::new();
    // A process is one (role, install root, port): hosts that are one machine see it from each.
    let mut add = |role: Role, endpoint: &str, host: &str, p: &HostProcess, procs: &[HostProcess], how: String| {
        let port = endpoint.rsplit_once(':').map(|(_, port)| port.to_string()).unwrap_or_default();
        if !seen.insert((role, p.root.clone(), port)) {
            return;
        }
        let daemon = procs.iter().any(|m| m.is_mon && m.role == role && m.root == p.root);
        found.push(Discovered {
            role,
            endpoint: endpoint.to_string(),
            host: host.to_string(),
            dir: p.root.clone(),
            daemon,
            version: String::new(),
            standby: role == Role::Taskmanager && !how.starts_with("ZooKeeper"),
            found: how,
        });
    };
    for (role, endpoint, node) in &listed {
        let (host, port) = endpoint.rsplit_once(':').unwrap_or_default();
        if is_wildcard(host) {
            // A TaskManager with `server.host=0.0.0.0` registers that (C§1.1): it is the one of
            // this cluster listening on that port on one of the hosts, and `conf/hosts` of its
            // install names its host.
            let Some((probed, p, procs)) = hosts.iter().find_map(|(h, procs)| {
                let p = procs.iter().find(|p| {
                    !p.is_mon
                        && p.role == *role
                        && of_cluster(p)
                        && p.endpoint.as_deref().and_then(|e| e.rsplit_once(':')).is_some_and(|(_, q)| q == port)
                })?;
                Some((h, p, procs))
            }) else {
                return Err(Error::Operation(format!(
                    "discover: ZooKeeper lists {role} {endpoint} ({node}), and no host found through ZooKeeper runs a \
                     {role} of this cluster on port {port}\nNothing was written. Add it to the file by hand."
                )));
            };
            let named = host_in_conf_hosts(&ssh, probed, &p.root, *role, port).await;
            let host = named.clone().unwrap_or_else(|| probed.clone());
            let how = match named {
                Some(_) => format!("ZooKeeper {node} (it listens on all addresses); host from {}/conf/hosts", p.root),
                None => format!("ZooKeeper {node} (it listens on all addresses); process in {} on {probed}", p.root),
            };
            add(*role, &format!("{host}:{port}"), &host, p, procs, how);
            continue;
        }
        let procs = &hosts[host];
        let process = procs.iter().find(|p| !p.is_mon && p.role == *role && p.endpoint.as_deref() == Some(endpoint));
        let Some(process) = process else {
            return Err(Error::Operation(format!(
                "discover: ZooKeeper lists {role} {endpoint} ({node}), but no {role} process with --endpoint={endpoint} \
                 runs on {host}\nNothing was written. Is it running? (`{role}` processes there: {})",
                describe(procs, *role)
            )));
        };
        let how = format!("ZooKeeper {node}; process in {} on {host}", process.root);
        add(*role, endpoint, host, process, procs, how);
    }
    // What ZooKeeper does not list: apiservers and standby TaskManagers on the same hosts.
    for (host, procs) in &hosts {
        for p in procs.iter().filter(|p| !p.is_mon && of_cluster(p)) {
            if !matches!(p.role, Role::Apiserver | Role::Taskmanager) {
                continue;
            }
            let Some(endpoint) = &p.endpoint else { continue };
            let (own, port) = endpoint.rsplit_once(':').unwrap_or_default();
            // Its own address when it has one (hosts that are one machine see each other's
            // processes); for a wildcard address, the host `conf/hosts` names, else the one it
            // was found on.
            let host = if is_wildcard(own) {
                host_in_conf_hosts(&ssh, host, &p.root, p.role, port).await.unwrap_or_else(|| host.clone())
            } else {
                own.to_string()
            };
            let how = match p.role {
                Role::Apiserver => format!("process in {} on {host} (ZooKeeper lists no apiserver)", p.root),
                _ => format!("process in {} on {host} (a standby: ZooKeeper lists the active one only)", p.root),
            };
            add(p.role, &format!("{host}:{port}"), &host, p, procs, how);
        }
    }
    for (host, port, line) in &apiservers {
        let endpoint = format!("{host}:{port}");
        if !found.iter().any(|d| d.role == Role::Apiserver && d.endpoint == endpoint) {
            let file = options.hosts_file.as_deref().unwrap_or(std::path::Path::new("conf/hosts")).display();
            return Err(Error::Operation(format!(
                "discover: {file}:{line} lists apiserver {endpoint}, but no apiserver of this cluster listens on port \
                 {port} on {host} (apiserver processes there: {})\nNothing was written. Start it, or correct {file}.",
                describe(&hosts[host], Role::Apiserver)
            )));
        }
    }
    let cluster = Cluster::new(zk, RpcClient::new(None, Duration::from_secs(5)));
    for d in &mut found {
        d.version = cluster.running_version(d.role, &d.endpoint).await.unwrap_or_default();
    }
    found.sort_by_key(|d| (role_order(d.role), d.endpoint.clone()));
    Ok(found)
}

/// `(host, port, line)` of each `[apiserver]` entry of a local `conf/hosts` (O§2.2).
fn conf_hosts_apiservers(file: &std::path::Path) -> Result<Vec<(String, u16, usize)>, Error> {
    let text = std::fs::read_to_string(file).map_err(|e| {
        Error::Usage(format!("discover: cannot read --hosts {}: {e}; give the cluster's conf/hosts", file.display()))
    })?;
    let entries = crate::config::hosts::parse(&text)
        .map_err(|e| Error::Usage(format!("discover: {}:{}: {}", file.display(), e.line, e.message)))?;
    // The port a line leaves out: conf/openmldb-env.sh's beside it, else the role's default.
    let env_file = file.with_file_name("openmldb-env.sh");
    let env_port = crate::config::openmldb_env::OpenmldbEnv::read(&env_file).ok().and_then(|e| e.port(Role::Apiserver));
    let default_port = env_port.unwrap_or(Role::Apiserver.default_port());
    Ok(entries
        .into_iter()
        .filter(|e| e.section == crate::config::hosts::Section::Server(Role::Apiserver))
        .map(|e| (e.host, e.port.unwrap_or(default_port), e.line))
        .collect())
}

fn is_wildcard(host: &str) -> bool {
    host.is_empty() || host == "0.0.0.0"
}

/// The host `conf/hosts` in `root` on `probed` gives the `role` instance on `port` (O§2.2).
async fn host_in_conf_hosts(ssh: &SshClient, probed: &str, root: &str, role: Role, port: &str) -> Option<String> {
    let file = format!("{root}/conf/hosts");
    let read = format!("cat {} 2>/dev/null", shlex::try_quote(&file).ok()?);
    let text = ssh.exec(probed, &read, HOST_PROBE, &Interrupt::new()).await.ok()?.stdout;
    let entries = crate::config::hosts::parse(&text).ok()?;
    entries
        .into_iter()
        .find(|e| {
            e.section == crate::config::hosts::Section::Server(role)
                && e.port.map(|p| p.to_string()).as_deref() == Some(port)
        })
        .map(|e| e.host)
}

fn role_order(role: Role) -> u8 {
    match role {
        Role::Nameserver => 0,
        Role::Tablet => 1,
        Role::Apiserver => 2,
        Role::Taskmanager => 3,
    }
}

fn describe(procs: &[HostProcess], role: Role) -> String {
    let of_role: Vec<String> = procs
        .iter()
        .filter(|p| p.role == role && !p.is_mon)
        .map(|p| format!("{} in {}", p.endpoint.as_deref().unwrap_or("no --endpoint"), p.root))
        .collect();
    if of_role.is_empty() {
        "none".into()
    } else {
        of_role.join(", ")
    }
}

/// The `cluster.toml` of what was found, commented.
pub fn render(options: &Options, found: &[Discovered]) -> String {
    let mut text = format!(
        "# Written by `mldb-upgrade discover --zk {} --zk-root {}` from ZooKeeper and the processes on each\n\
         # host; check it, then `mldb-upgrade plan scripts/upgrade.rhai --cluster <this file>`.\n",
        options.zk, options.zk_root
    );
    text.push_str(&header(options));
    for d in found {
        text.push_str(&format!(
            "\n# {}; {}{}\n[[component]]\nrole = \"{}\"\nendpoint = \"{}\"\nhost = {}\ndir = {}\ndaemon = {}\n",
            d.found,
            d.version_text(),
            if d.daemon { ", under mon" } else { "" },
            d.role,
            d.endpoint,
            toml_string(&d.host),
            toml_string(&d.dir),
            d.daemon
        ));
    }
    text
}
