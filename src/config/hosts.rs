//! OpenMLDB's own `conf/hosts` inventory (O§2.2; parser `parse_host` in `release/sbin/init.sh`).
//!
//! INI-like: sections `[tablet]`, `[nameserver]`, `[apiserver]`, `[taskmanager]`, `[zookeeper]`;
//! one instance per line, `host[:port[:zk_peer_port:zk_election_port]] [WORKDIR]`. Lines starting
//! with optional spaces and `#` are comments; inline comments are not supported, as in init.sh.

use crate::cluster::topology::Role;

/// The sections of `conf/hosts`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Server(Role),
    Zookeeper,
}

/// One instance line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostsEntry {
    pub section: Section,
    pub host: String,
    pub port: Option<u16>,
    pub workdir: Option<String>,
    /// 1-based line number in the file.
    pub line: usize,
}

/// A problem on one line of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostsError {
    pub line: usize,
    pub message: String,
}

/// Default ZooKeeper client port (`OPENMLDB_ZK_CLUSTER_CLIENT_PORT`, O§2.1).
pub const ZOOKEEPER_DEFAULT_PORT: u16 = 2181;

pub fn parse(text: &str) -> Result<Vec<HostsEntry>, HostsError> {
    let mut section = None;
    let mut entries = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let trimmed = raw.trim_start();
        if trimmed.starts_with('#') || raw.trim().is_empty() {
            continue;
        }
        let err = |message: String| HostsError { line, message };
        if trimmed.starts_with('[') {
            let name = raw.trim();
            section = Some(match name {
                "[tablet]" => Section::Server(Role::Tablet),
                "[nameserver]" => Section::Server(Role::Nameserver),
                "[apiserver]" => Section::Server(Role::Apiserver),
                "[taskmanager]" => Section::Server(Role::Taskmanager),
                "[zookeeper]" => Section::Zookeeper,
                other => {
                    return Err(err(format!(
                        "unknown section {other}; expected [tablet], [nameserver], [apiserver], \
                         [taskmanager] or [zookeeper]"
                    )))
                }
            });
            continue;
        }
        let Some(current) = section else {
            return Err(err("instance line before any [section] header".into()));
        };
        let fields: Vec<&str> = raw.trim().split(' ').filter(|f| !f.is_empty()).collect();
        if fields.len() > 2 {
            return Err(err(format!(
                "expected `host[:port] [WORKDIR]`, found {} fields (inline comments are not supported)",
                fields.len()
            )));
        }
        let mut parts = fields[0].split(':');
        let host = parts.next().unwrap_or_default().to_string();
        if host.is_empty() {
            return Err(err("empty host name".into()));
        }
        let port = match parts.next() {
            None | Some("") => None,
            Some(p) => Some(
                p.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(|| err(format!("`{p}` is not a port number")))?,
            ),
        };
        let extra_ports = parts.count();
        if extra_ports > 0 && current != Section::Zookeeper {
            return Err(err("peer and election ports are only valid in [zookeeper]".into()));
        }
        entries.push(HostsEntry { section: current, host, port, workdir: fields.get(1).map(|s| s.to_string()), line });
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
[tablet]
localhost:10921 /tmp/openmldb/tablet-1
localhost:10922 /tmp/openmldb/tablet-2

[nameserver]
  # a comment
node-1

[apiserver]
node-2:9080

[taskmanager]
localhost:9902
[zookeeper]
node-3:2181:2888:3888 /tmp/openmldb/zk-1
";

    #[test]
    fn parses_release_sample_o2_2() {
        let entries = parse(SAMPLE).unwrap();
        assert_eq!(entries.len(), 6);
        assert_eq!(entries[0].section, Section::Server(Role::Tablet));
        assert_eq!(entries[0].port, Some(10921));
        assert_eq!(entries[0].workdir.as_deref(), Some("/tmp/openmldb/tablet-1"));
        assert_eq!(entries[2].host, "node-1");
        assert_eq!(entries[2].port, None);
        assert_eq!(entries[2].line, 7);
        assert_eq!(entries[5].section, Section::Zookeeper);
        assert_eq!(entries[5].port, Some(2181));
    }

    #[test]
    fn rejects_unknown_section_with_line() {
        let err = parse("[tablets]\nh1\n").unwrap_err();
        assert_eq!(err.line, 1);
        assert!(err.message.contains("unknown section [tablets]"));
    }

    #[test]
    fn rejects_inline_comment_and_bad_port() {
        assert_eq!(parse("[tablet]\nh1:1 /d # c\n").unwrap_err().line, 2);
        assert!(parse("[tablet]\nh1:port\n").unwrap_err().message.contains("not a port"));
        assert!(parse("h1\n").unwrap_err().message.contains("before any"));
    }
}
