//! Config templates of a sandbox release, with the keys OpenMLDB ships (O§3.1-3.4). The sandbox
//! turns them into `conf/<role>.flags` the way `sbin/deploy.sh` does (O§2.4): earlier
//! occurrences of the keys it sets are commented out and the values appended.

pub const NAMESERVER_FLAGS: &str = "\
# nameserver
--endpoint=127.0.0.1:7527
--role=nameserver
--zk_cluster=127.0.0.1:2181
--zk_root_path=/openmldb
#--zk_cert=user:passwd
--openmldb_log_dir=./logs
--auto_failover=true
--zk_session_timeout=10000
--tablet_heartbeat_timeout=60000
#--tablet_offline_check_interval=1000
#--name_server_task_concurrency=2
#--name_server_task_max_concurrency=8
#--get_task_status_interval=2000
#--max_op_num=10000
--system_table_replica_num=2
";

/// The tablet's keys as `release/conf/tablet.flags.template` has them: the binlog block
/// (notify on put), the disk roots (HDD set, SSD commented out), the snapshot hour and the
/// send file block (20 MB/s).
pub const TABLET_FLAGS: &str = "\
# tablet
--endpoint=127.0.0.1:10921
--role=tablet
--zk_cluster=127.0.0.1:2181
--zk_root_path=/openmldb
#--zk_cert=user:passwd
--zk_session_timeout=10000
--thread_pool_size=24
--openmldb_log_dir=./logs
# binlog
#--binlog_coffee_time=1000
#--binlog_match_logoffset_interval=1000
--binlog_notify_on_put=true
#--binlog_sync_batch_size=32
#--binlog_sync_wait_time=100
--db_root_path=./db
--recycle_bin_root_path=./recycle
# HDD tables
--hdd_root_path=./db_hdd
--recycle_bin_hdd_root_path=./recycle_hdd
# SSD tables (optional)
#--ssd_root_path=./db_ssd
#--recycle_bin_ssd_root_path=./recycle_ssd
# snapshots at 23 o'clock
--make_snapshot_time=23
#--make_snapshot_check_interval=600000
#--make_snapshot_threshold_offset=100000
# send file conf
#--send_file_max_try=3
#--stream_close_wait_time_ms=1000
#--stream_block_size=1048576
# 20M/s
--stream_bandwidth_limit=20971520
#--request_timeout_ms=5000
#--retry_send_file_wait_time_ms=3000
";

pub const APISERVER_FLAGS: &str = "\
# apiserver
--endpoint=127.0.0.1:9080
--role=apiserver
--zk_cluster=127.0.0.1:2181
--zk_root_path=/openmldb
#--zk_cert=user:passwd
--openmldb_log_dir=./logs
";

pub const TASKMANAGER_PROPERTIES: &str = "\
# taskmanager
server.host=0.0.0.0
server.port=9902
job.log.path=./logs/
zookeeper.cluster=127.0.0.1:2181
zookeeper.root_path=/openmldb
spark.home=
spark.master=local[*]
offline.data.prefix=file:///tmp/openmldb_offline_storage/
";

/// `conf/hosts` as OpenMLDB ships it (O§2.2): the entries are the real file's; the header
/// comment says the same in other words.
pub const HOSTS: &str = "\
# one instance per line: host[:port[:zk_peer_port:zk_election_port]] [WORKDIR]
# only the host is required: a missing port is the role's default from conf/openmldb-env.sh,
# a missing WORKDIR is $OPENMLDB_HOME ($OPENMLDB_ZK_HOME for [zookeeper]); zk ports: [zookeeper]

[tablet]
localhost:10921 /tmp/openmldb/tablet-1
localhost:10922 /tmp/openmldb/tablet-2

[nameserver]
localhost:7527

[apiserver]
localhost:9080

[taskmanager]
localhost:9902

[zookeeper]
localhost:2181:2888:3888 /tmp/openmldb/zk-1
";

/// `conf/openmldb-env.sh` of release `version`, shaped like OpenMLDB's (O§2.1): the same
/// variables in the same order with the same values, `OPENMLDB_VERSION` set to the release's
/// version (the real file is where a release records it). Every sbin script sources it, so
/// its assignments override the environment, except `OPENMLDB_MODE`.
pub fn openmldb_env(version: &str) -> String {
    format!(
        "\
#! /usr/bin/env bash
# Sourced by every script in sbin/. Edit the values here: an empty value takes the default.
export OPENMLDB_VERSION={version}
# standalone or cluster
export OPENMLDB_MODE=${{OPENMLDB_MODE:=cluster}}
# where OpenMLDB is installed on this host; empty: the directory above sbin/
export OPENMLDB_HOME=
# the OpenMLDB Spark distribution; empty: $OPENMLDB_HOME/spark, made by sbin/deploy-all.sh
# from spark-3.2.1-bin-openmldbspark.tgz when missing
export SPARK_HOME=
export RUNNER_EXISTING_SPARK_HOME=
# true: use the ZooKeeper cluster in OPENMLDB_ZK_CLUSTER; the sbin scripts neither deploy,
# start nor stop one
export OPENMLDB_USE_EXISTING_ZK_CLUSTER=false
# the ZooKeeper distribution; empty: $OPENMLDB_HOME/zookeeper
export OPENMLDB_ZK_HOME=
# host:port,... of ZooKeeper; empty: the [zookeeper] entries of conf/hosts
export OPENMLDB_ZK_CLUSTER=
# the cluster's root node in ZooKeeper
export OPENMLDB_ZK_ROOT_PATH=/openmldb

export OPENMLDB_FORCE_LOCAL=false

export RUNNER_JAVA_HOME=

# true: sbin/clear-all.sh deletes each instance's whole WORKDIR
export CLEAR_OPENMLDB_INSTALL_DIR=false

# default ports of the roles, for conf/hosts entries without one
export OPENMLDB_TABLET_PORT=10921
export OPENMLDB_NAMESERVER_PORT=7527
export OPENMLDB_TASKMANAGER_PORT=9902
export OPENMLDB_APISERVER_PORT=9080

# ZooKeeper's client port (clientPort in zoo.cfg)
export OPENMLDB_ZK_CLUSTER_CLIENT_PORT=2181
# ZooKeeper's peer and election ports (server.N=host:peer:election in zoo.cfg)
export OPENMLDB_ZK_CLUSTER_PEER_PORT=2888
export OPENMLDB_ZK_CLUSTER_ELECTION_PORT=3888
"
    )
}

/// The TaskManager launcher, run from `taskmanager/bin` (O§1.2). The real one starts the JVM.
pub const TASKMANAGER_SH: &str = "\
#!/bin/sh
# Starts the (simulated) TaskManager; configuration is ../conf/taskmanager.properties.
exec ../lib/openmldb-taskmanager-sim --role=taskmanager
";

pub const TOOLS_README: &str = "\
This sandbox release ships no ops tools; mldb-upgrade drives the cluster itself.
";

/// The fixed files of `conf/` (`openmldb-env.sh` carries the version: [`openmldb_env`]).
pub const ALL: [(&str, &str); 5] = [
    ("nameserver.flags.template", NAMESERVER_FLAGS),
    ("tablet.flags.template", TABLET_FLAGS),
    ("apiserver.flags.template", APISERVER_FLAGS),
    ("taskmanager.properties.template", TASKMANAGER_PROPERTIES),
    ("hosts", HOSTS),
];

/// `conf/<role>.flags` from a template: keys in `set` are commented out where they appear and
/// appended with the new values (`sbin/deploy.sh`, O§2.4).
pub fn render_flags(template: &str, set: &[(&str, String)]) -> String {
    let mut out = String::new();
    for line in template.lines() {
        let key = line.trim_start_matches("--").split('=').next().unwrap_or_default();
        if line.starts_with("--") && set.iter().any(|(k, _)| *k == key) {
            out.push('#');
        }
        out.push_str(line);
        out.push('\n');
    }
    for (k, v) in set {
        out.push_str(&format!("--{k}={v}\n"));
    }
    out
}

/// `conf/taskmanager.properties` from its template, the same way.
pub fn render_properties(template: &str, set: &[(&str, String)]) -> String {
    let mut out = String::new();
    for line in template.lines() {
        let key = line.split('=').next().unwrap_or_default().trim();
        if !line.starts_with('#') && set.iter().any(|(k, _)| *k == key) {
            out.push('#');
        }
        out.push_str(line);
        out.push('\n');
    }
    for (k, v) in set {
        out.push_str(&format!("{k}={v}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deploy_sh_style_rendering_o2_4() {
        let flags = render_flags(TABLET_FLAGS, &[("endpoint", "127.0.0.4:30001".into())]);
        assert!(flags.contains("#--endpoint=127.0.0.1:10921\n"));
        assert!(flags.ends_with("--endpoint=127.0.0.4:30001\n"));
        // start.sh reads the first line matching ^--endpoint (O§1.4).
        assert_eq!(flags.lines().filter(|l| l.starts_with("--endpoint")).count(), 1);
        let props = render_properties(TASKMANAGER_PROPERTIES, &[("server.port", "30002".into())]);
        assert!(props.contains("#server.port=9902\n") && props.ends_with("server.port=30002\n"));
    }
}
