//! Which TaskManager is the active one. The TaskManager that wins the election writes
//! `server.host:server.port` into `<root>/taskmanager/leader`
//! (java/openmldb-taskmanager/.../zk/FailoverWatcher.java, C§1.1), and `server.host` is often not
//! the address the cluster config knows it by: `0.0.0.0` (the template's default, and what
//! TaskManagerConfig sets when the key is missing) or a hostname. So the node's value is matched
//! by port and address, and when several configured TaskManagers could be meant (same port,
//! wildcard address), by asking their hosts which one's process listens on the port: a standby
//! does not serve until it becomes the leader (C§3.8).

use std::net::{IpAddr, ToSocketAddrs};

use super::probe::Proc;
use super::{q, ComponentError, Control, Result, SHORT};
use crate::cluster::topology::{Endpoint, Role};
use crate::cluster::zk::ZkError;
use crate::config::Component;

/// What the leader node's value says about the configured TaskManagers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaderMatch {
    /// This configured TaskManager (its endpoint).
    Is(String),
    /// One of these, which share the node's port and address.
    OneOf(Vec<String>),
    /// None of the configured ones: the node holds this value.
    Unknown(String),
}

/// The addresses a host name or IP stands for (empty when it does not resolve).
fn addresses(host: &str) -> Vec<IpAddr> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return vec![ip];
    }
    (host, 0).to_socket_addrs().map(|a| a.map(|s| s.ip()).collect()).unwrap_or_default()
}

/// Matches the value of `<root>/taskmanager/leader` against the TaskManagers' endpoints.
pub fn match_leader(value: &str, taskmanagers: &[Endpoint]) -> LeaderMatch {
    let value = value.trim();
    if let Some(endpoint) = taskmanagers.iter().find(|e| e.to_string() == value) {
        return LeaderMatch::Is(endpoint.to_string());
    }
    let Some((host, port)) = value.rsplit_once(':').and_then(|(h, p)| Some((h, p.parse::<u16>().ok()?))) else {
        return LeaderMatch::Unknown(value.to_string());
    };
    let host = host.trim_matches(|c| c == '[' || c == ']');
    let same_port = taskmanagers.iter().filter(|e| e.port() == port);
    let wildcard = matches!(host, "0.0.0.0" | "::" | "");
    let wanted = if wildcard { Vec::new() } else { addresses(host) };
    let candidates: Vec<String> = same_port
        .filter(|e| wildcard || wanted.is_empty() || addresses(e.host()).iter().any(|ip| wanted.contains(ip)))
        .map(Endpoint::to_string)
        .collect();
    match candidates.len() {
        0 => LeaderMatch::Unknown(value.to_string()),
        1 => LeaderMatch::Is(candidates[0].clone()),
        _ => LeaderMatch::OneOf(candidates),
    }
}

/// Shell printing what `/proc` knows of every process listening on TCP port `port`.
fn listeners_command(port: u16) -> String {
    format!(
        "for i in $(awk -v p=':{port:04X}' 'NR > 1 && $4 == \"0A\" && substr($2, length($2) - 4) == p {{print $10}}' \
         /proc/net/tcp /proc/net/tcp6 2>/dev/null); do for fd in $(find /proc/[0-9]*/fd -lname \"socket:\\[$i\\]\" \
         2>/dev/null); do p=${{fd#/proc/}}; p=${{p%%/*}}; {describe}; done; done",
        describe = super::probe::DESCRIBE_PID
    )
}

impl Control<'_> {
    /// The endpoint of the active TaskManager, `None` when there is none or it is not one of
    /// the configured TaskManagers.
    pub async fn active_taskmanager(&self) -> Result<Option<String>> {
        let taskmanagers: Vec<&Component> = self.config.components_of(Role::Taskmanager).collect();
        let Some(first) = taskmanagers.first() else { return Ok(None) };
        let step = "finding the active TaskManager";
        let value = match self.cluster.zk().get("taskmanager/leader").await {
            Ok(data) => String::from_utf8_lossy(&data).into_owned(),
            Err(ZkError::NoNode { .. }) => return Ok(None),
            Err(source) => {
                return Err(ComponentError::Zk { step: step.into(), endpoint: first.endpoint.to_string(), source })
            }
        };
        let endpoints: Vec<Endpoint> = taskmanagers.iter().map(|c| c.endpoint.clone()).collect();
        match match_leader(&value, &endpoints) {
            LeaderMatch::Is(endpoint) => Ok(Some(endpoint)),
            LeaderMatch::Unknown(_) => Ok(None),
            LeaderMatch::OneOf(candidates) => {
                for endpoint in candidates {
                    let Some(c) = taskmanagers.iter().find(|c| c.endpoint.to_string() == endpoint) else { continue };
                    if self.listens(c, step).await? {
                        return Ok(Some(endpoint));
                    }
                }
                Ok(None)
            }
        }
    }

    /// Whether a process of `c` listens on its port on its host.
    async fn listens(&self, c: &Component, step: &str) -> Result<bool> {
        let command =
            format!("printf 'dir\\t%s\\n' \"$(cd {} && pwd -P)\"; {}", q(&c.dir), listeners_command(c.endpoint.port()));
        let out = self.run(c, step, &command, SHORT, "the host needs /proc and find").await?;
        let dir = out.stdout.lines().find_map(|l| l.strip_prefix("dir\t")).unwrap_or(&c.dir).trim().to_string();
        let listeners: Vec<Proc> = super::probe::parse_procs(&out.stdout);
        Ok(listeners.iter().any(|p| p.is_component(c.role, &dir)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tm(endpoint: &str) -> Endpoint {
        endpoint.parse().unwrap()
    }

    #[test]
    fn exact_endpoints_and_wildcard_hosts_match_by_port_failover_watcher() {
        let (a, b) = (tm("10.0.0.5:9902"), tm("10.0.0.6:9903"));
        let both = [a, b];
        assert_eq!(match_leader("10.0.0.6:9903", &both), LeaderMatch::Is("10.0.0.6:9903".into()));
        assert_eq!(match_leader("0.0.0.0:9902", &both), LeaderMatch::Is("10.0.0.5:9902".into()));
        assert_eq!(match_leader("0.0.0.0:9999", &both), LeaderMatch::Unknown("0.0.0.0:9999".into()));
    }

    #[test]
    fn a_shared_port_leaves_the_choice_to_the_hosts() {
        let (a, b) = (tm("10.0.0.5:9902"), tm("10.0.0.6:9902"));
        let both = [a, b];
        assert_eq!(
            match_leader("0.0.0.0:9902", &both),
            LeaderMatch::OneOf(vec!["10.0.0.5:9902".into(), "10.0.0.6:9902".into()])
        );
        // A host name is resolved: localhost is 127.0.0.1.
        let (c, d) = (tm("127.0.0.1:9902"), tm("10.0.0.6:9902"));
        assert_eq!(match_leader("localhost:9902", &[c, d]), LeaderMatch::Is("127.0.0.1:9902".into()));
    }

    #[test]
    fn listener_command_matches_the_port_in_hex() {
        assert!(listeners_command(9902).contains("':26AE'"));
    }
}
