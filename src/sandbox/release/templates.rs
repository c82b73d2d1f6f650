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
--db_root_path=./db
--recycle_bin_root_path=./recycle
--hdd_root_path=./db_hdd
--recycle_bin_hdd_root_path=./recycle_hdd
--make_snapshot_time=23
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

pub const HOSTS: &str = "\
[tablet]
localhost:10921 ./tablet
localhost:10922 ./tablet2

[nameserver]
localhost:7527

[apiserver]
localhost:9080

[taskmanager]
localhost:9902

[zookeeper]
localhost:2181:2888:3888 /tmp/openmldb/zk-1
";

pub const OPENMLDB_ENV: &str = "\
export OPENMLDB_VERSION=${OPENMLDB_VERSION:-}
export OPENMLDB_MODE=${OPENMLDB_MODE:=cluster}
";

/// The TaskManager launcher, run from `taskmanager/bin` (O§1.2). The real one starts the JVM.
pub const TASKMANAGER_SH: &str = "\
#!/bin/sh
# Starts the (simulated) TaskManager; configuration is ../conf/taskmanager.properties.
exec ../lib/openmldb-taskmanager-sim --role=taskmanager
";

pub const TOOLS_README: &str = "\
This sandbox release ships no ops tools; mldb-upgrade drives the cluster itself.
";

pub const ALL: [(&str, &str); 6] = [
    ("nameserver.flags.template", NAMESERVER_FLAGS),
    ("tablet.flags.template", TABLET_FLAGS),
    ("apiserver.flags.template", APISERVER_FLAGS),
    ("taskmanager.properties.template", TASKMANAGER_PROPERTIES),
    ("hosts", HOSTS),
    ("openmldb-env.sh", OPENMLDB_ENV),
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
