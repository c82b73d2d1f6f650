//! Plain types that describe a cluster: roles, endpoints and components. No I/O.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The kind of an OpenMLDB server process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Nameserver,
    Tablet,
    Apiserver,
    Taskmanager,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Nameserver, Role::Tablet, Role::Apiserver, Role::Taskmanager];

    /// The name used by `bin/start.sh` and in `conf/hosts` sections.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Nameserver => "nameserver",
            Role::Tablet => "tablet",
            Role::Apiserver => "apiserver",
            Role::Taskmanager => "taskmanager",
        }
    }

    /// Default port of the role (`conf/openmldb-env.sh`, O§2.1).
    pub fn default_port(self) -> u16 {
        match self {
            Role::Nameserver => 7527,
            Role::Tablet => 10921,
            Role::Apiserver => 9080,
            Role::Taskmanager => 9902,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("unknown role `{s}`; expected nameserver, tablet, apiserver or taskmanager"))
    }
}

/// `host:port` of a server, as OpenMLDB writes it in `--endpoint` and in ZooKeeper.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Endpoint {
    host: String,
    port: u16,
}

impl Endpoint {
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        Endpoint { host: host.into(), port }
    }
    pub fn host(&self) -> &str {
        &self.host
    }
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

impl FromStr for Endpoint {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("`{s}` is not an endpoint; expected host:port, for example 10.0.0.1:10921");
        let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
        if host.is_empty() || host.contains(char::is_whitespace) || host.contains(':') {
            return Err(bad());
        }
        let port: u16 = port.parse().map_err(|_| bad())?;
        if port == 0 {
            return Err(bad());
        }
        Ok(Endpoint::new(host, port))
    }
}

impl TryFrom<String> for Endpoint {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<Endpoint> for String {
    fn from(e: Endpoint) -> String {
        e.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_round_trips() {
        let ep: Endpoint = "127.0.0.2:10921".parse().unwrap();
        assert_eq!(ep.host(), "127.0.0.2");
        assert_eq!(ep.port(), 10921);
        assert_eq!(ep.to_string(), "127.0.0.2:10921");
    }

    #[test]
    fn endpoint_rejects_garbage() {
        for bad in ["", "host", ":1", "h:0", "h:70000", "a b:1", "h:x"] {
            assert!(bad.parse::<Endpoint>().is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn role_names_match_start_sh_o1_1() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>().unwrap(), role);
        }
        assert!("tablet2".parse::<Role>().is_err());
    }
}
