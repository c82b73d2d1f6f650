//! `sandbox up --layout deploy`: a cluster laid out and started the way OpenMLDB's own scripts
//! do it (O§2), to rehearse on the shape most real clusters have.
//!
//! As an operator would: the release is unpacked at `<sandbox>/openmldb-X.Y.Z-linux`, which is
//! `$OPENMLDB_HOME`; its `conf/hosts` (the shipped shape) lists every component, and
//! `conf/openmldb-env.sh` is edited to point at the sandbox's ZooKeeper; then the release's
//! `sbin/deploy-all.sh` lays the cluster out and `sbin/start-tablets.sh`,
//! `sbin/start-nameservers.sh`, `sbin/start-apiservers.sh` and `sbin/start-taskmanagers.sh`
//! start it, in `sbin/start-all.sh`'s order (these are the sandbox release's stand-ins of the
//! real scripts, see [`super::release`]). Tablets have their own WORKDIR. The first "service
//! host" runs a nameserver, an apiserver and a taskmanager from lines without a WORKDIR, so
//! from `$OPENMLDB_HOME` itself; on the next ones each component has its own WORKDIR. (Two
//! components sharing one explicit WORKDIR do not survive the real `deploy-all.sh`: the second
//! one's rsync of `conf/` puts back `$OPENMLDB_HOME`'s generated flags files over the first
//! one's.) The TaskManager's
//! `SPARK_HOME` is the default `$OPENMLDB_HOME/spark`, the symlink `download_spark` makes to the
//! unpacked `spark-3.2.1-bin-openmldbspark`, and the first TaskManager listens on `0.0.0.0`
//! (`server.host`, as operators set it to serve every interface), so the leader node in
//! ZooKeeper does not hold its configured address.
//!
//! Deviations, all because every "host" is this machine: `OPENMLDB_FORCE_LOCAL=true`, so the
//! scripts run commands with `bash -c` instead of `ssh` (as they do for localhost); ports are free
//! ports picked per address instead of the defaults; a second host's copy of `$SPARK_HOME` cannot
//! sit at the same path, so its TaskManager's `spark.home` points at `<host dir>/spark`.

use std::path::{Path, PathBuf};

use super::release::{self, Release};
use super::{io_err, Ports, SandboxComponent, SandboxError, UpOptions};
use crate::cluster::topology::Role;

/// What the deploy layout adds to a sandbox's state.
pub(super) struct Layout {
    /// `$OPENMLDB_HOME`: the unpacked release the sbin scripts run from.
    pub home: PathBuf,
    pub components: Vec<SandboxComponent>,
}

/// Places the components: tablets on their own addresses and WORKDIRs, then service hosts
/// each running one nameserver, apiserver and taskmanager (as far as the counts go).
pub(super) fn plan(dir: &Path, options: &UpOptions, ports: &mut Ports) -> Result<Layout, SandboxError> {
    let home = dir.join(release::release_dir_name(&options.version));
    let mut components = Vec::new();
    let mut next_address = 2;
    let mut address = || {
        let host = format!("127.0.0.{next_address}");
        next_address += 1;
        host
    };
    for i in 1..=options.tablets {
        let host = address();
        let port = ports.on(&host).map_err(io_err(dir))?;
        let name = format!("tablet-{i}");
        components.push(SandboxComponent {
            role: Role::Tablet,
            endpoint: format!("{host}:{port}"),
            host,
            dir: dir.join(&name),
            name,
        });
    }
    let service_hosts = options.nameservers.max(options.apiservers).max(options.taskmanagers);
    for h in 0..service_hosts {
        let host = address();
        for (role, count) in [
            (Role::Nameserver, options.nameservers),
            (Role::Apiserver, options.apiservers),
            (Role::Taskmanager, options.taskmanagers),
        ] {
            if h >= count {
                continue;
            }
            // A TaskManager binds its port on every interface whatever server.host says
            // (TaskManagerServer.java: `new RpcServer(port, ...)`): free on all of them.
            let port = ports.on(if role == Role::Taskmanager { "0.0.0.0" } else { &host }).map_err(io_err(dir))?;
            // The first service host has no WORKDIR in conf/hosts: it runs from $OPENMLDB_HOME.
            let workdir = if h == 0 { home.clone() } else { dir.join(format!("host-{host}")).join(role.as_str()) };
            components.push(SandboxComponent {
                role,
                endpoint: format!("{host}:{port}"),
                host: host.clone(),
                dir: workdir,
                name: format!("{role}-{}", h + 1),
            });
        }
    }
    Ok(Layout { home, components })
}

/// `conf/hosts` in the shipped shape (O§2.2): sections, `host:port [WORKDIR]` lines, no WORKDIR
/// for components that run from `$OPENMLDB_HOME`.
pub(super) fn hosts_file(layout: &Layout, zk_cluster: &str, zk_dir: &Path) -> String {
    let mut text = String::new();
    for role in [Role::Tablet, Role::Nameserver, Role::Apiserver, Role::Taskmanager] {
        text.push_str(&format!("[{role}]\n"));
        for c in layout.components.iter().filter(|c| c.role == role) {
            if c.dir == layout.home {
                text.push_str(&format!("{}\n", c.endpoint));
            } else {
                text.push_str(&format!("{} {}\n", c.endpoint, c.dir.display()));
            }
        }
        text.push('\n');
    }
    // The sandbox's own ZooKeeper, not deployed by the scripts (OPENMLDB_USE_EXISTING_ZK_CLUSTER).
    text.push_str(&format!("[zookeeper]\n{zk_cluster}:2888:3888 {}\n", zk_dir.display()));
    text
}

/// `export KEY=value` set in a shell env file: the existing line replaced, else appended.
fn set_export(text: &str, key: &str, value: &str) -> String {
    let prefix = format!("export {key}=");
    let line = format!("{prefix}{value}");
    let mut found = false;
    let mut out: Vec<String> = text
        .lines()
        .map(|l| {
            if l.trim_start().starts_with(&prefix) {
                found = true;
                line.clone()
            } else {
                l.to_string()
            }
        })
        .collect();
    if !found {
        out.push(line);
    }
    out.join("\n") + "\n"
}

/// `key=value` set in a properties file the way `sbin/deploy.sh` does it (`exchange`): earlier
/// lines of the key commented out, the new one appended.
pub(super) fn exchange(text: &str, key: &str, value: &str) -> String {
    let mut out: Vec<String> =
        text.lines().map(|l| if l.starts_with(key) { format!("# {l}") } else { l.to_string() }).collect();
    out.push(format!("{key}={value}"));
    out.join("\n") + "\n"
}

fn edit(path: &Path, change: impl FnOnce(&str) -> String) -> Result<(), SandboxError> {
    let text = std::fs::read_to_string(path).map_err(io_err(path))?;
    std::fs::write(path, change(&text)).map_err(io_err(path))
}

/// Runs one of the release's sbin scripts in `$OPENMLDB_HOME`, logging to `<sandbox>/<script>.log`.
pub(super) async fn run_sbin(dir: &Path, home: &Path, script: &str, args: &[&str]) -> Result<(), SandboxError> {
    let log = dir.join(format!("{}.log", script.trim_end_matches(".sh")));
    let out = tokio::process::Command::new("bash")
        .arg(home.join("sbin").join(script))
        .args(args)
        .current_dir(home)
        .stdin(std::process::Stdio::null())
        // Own process group: a Ctrl-C meant for mldb-upgrade must not reach the components.
        .process_group(0)
        .output()
        .await
        .map_err(io_err(home))?;
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    std::fs::write(&log, &text).map_err(io_err(dir))?;
    if !out.status.success() {
        let tail: Vec<&str> = text.lines().rev().take(15).collect();
        return Err(SandboxError::Deploy {
            script: script.to_string(),
            status: out.status.to_string(),
            tail: tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
            log,
        });
    }
    Ok(())
}

/// Unpacks the release as `$OPENMLDB_HOME`, writes `conf/hosts` and `conf/openmldb-env.sh`,
/// and lays the cluster out with `sbin/deploy-all.sh`.
pub(super) async fn lay_out(
    dir: &Path,
    layout: &Layout,
    release: &Release,
    zk_cluster: &str,
    root_path: &str,
    options: &UpOptions,
) -> Result<(), SandboxError> {
    let home = &layout.home;
    super::copy_tree(&release.dir, home).map_err(io_err(home))?;
    release::place_spark_tgz(home, &release.spark_dir)?;
    let conf = home.join("conf");
    std::fs::write(conf.join("hosts"), hosts_file(layout, zk_cluster, &dir.join("zookeeper")))
        .map_err(io_err(&conf))?;
    edit(&conf.join("openmldb-env.sh"), |text| {
        let text = set_export(text, "OPENMLDB_USE_EXISTING_ZK_CLUSTER", "true");
        let text = set_export(&text, "OPENMLDB_ZK_CLUSTER", zk_cluster);
        let text = set_export(&text, "OPENMLDB_ZK_ROOT_PATH", root_path);
        // Every sandbox host is this machine: run_auto uses bash -c instead of ssh.
        set_export(&text, "OPENMLDB_FORCE_LOCAL", "true")
    })?;
    // deploy.sh regenerates conf/<role>.flags from the templates: settings go there.
    let mut nameserver = vec![
        ("auto_failover", options.auto_failover.to_string()),
        // A cluster with fewer tablets than system_table_replica_num cannot start (#3870).
        ("system_table_replica_num", options.tablets.min(2).to_string()),
    ];
    let mut tablet = Vec::new();
    if options.fast {
        nameserver.extend(super::fast_flags());
        std::fs::write(conf.join("sandbox.env"), "SANDBOX_SLEEP_SCALE=0.1\n").map_err(io_err(&conf))?;
        tablet.extend(super::tablet_fast_flags());
    }
    tablet.extend(super::tablet_option_flags(options));
    if !tablet.is_empty() {
        edit(&conf.join("tablet.flags.template"), |text| {
            tablet.iter().fold(text.to_string(), |t, (key, value)| exchange(&t, &format!("--{key}"), value))
        })?;
    }
    edit(&conf.join("nameserver.flags.template"), |text| {
        nameserver.iter().fold(text.to_string(), |t, (key, value)| exchange(&t, &format!("--{key}"), value))
    })?;
    run_sbin(dir, home, "deploy-all.sh", &[]).await?;
    // The first TaskManager serves every interface; the others keep their address.
    let taskmanagers: Vec<&SandboxComponent> =
        layout.components.iter().filter(|c| c.role == Role::Taskmanager).collect();
    for (i, tm) in taskmanagers.iter().enumerate() {
        let properties = tm.dir.join("conf/taskmanager.properties");
        if i == 0 {
            edit(&properties, |text| exchange(text, "server.host", "0.0.0.0"))?;
        } else if tm.dir != *home {
            // This host's own copy of $SPARK_HOME (see the module docs).
            let spark = tm.dir.parent().unwrap_or(dir).join("spark");
            super::copy_tree(&home.join("spark").canonicalize().map_err(io_err(home))?, &spark)
                .map_err(io_err(&spark))?;
            edit(&properties, |text| exchange(text, "spark.home", &spark.display().to_string()))?;
        }
    }
    Ok(())
}

/// The sbin script that starts every component of a role (O§2.3).
pub(super) fn start_script(role: Role) -> &'static str {
    match role {
        Role::Tablet => "start-tablets.sh",
        Role::Nameserver => "start-nameservers.sh",
        Role::Apiserver => "start-apiservers.sh",
        Role::Taskmanager => "start-taskmanagers.sh",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exchange_comments_out_and_appends_like_deploy_sh_o2_4() {
        let text = "server.host=127.0.0.5\nserver.port=9902\n";
        assert_eq!(
            exchange(text, "server.host", "0.0.0.0"),
            "# server.host=127.0.0.5\nserver.port=9902\nserver.host=0.0.0.0\n"
        );
    }

    #[test]
    fn set_export_replaces_or_appends() {
        let text = "export OPENMLDB_VERSION=0.9.2\nexport OPENMLDB_ZK_CLUSTER=\n";
        let out = set_export(text, "OPENMLDB_ZK_CLUSTER", "127.0.0.1:2181");
        assert_eq!(out, "export OPENMLDB_VERSION=0.9.2\nexport OPENMLDB_ZK_CLUSTER=127.0.0.1:2181\n");
        assert!(set_export(text, "OPENMLDB_FORCE_LOCAL", "true").ends_with("export OPENMLDB_FORCE_LOCAL=true\n"));
    }

    #[test]
    fn the_first_service_host_has_no_workdir_o2_2() {
        let dir = Path::new("/sb");
        let options = UpOptions { tablets: 2, nameservers: 2, apiservers: 1, taskmanagers: 2, ..UpOptions::default() };
        let layout = plan(dir, &options, &mut Ports::default()).unwrap();
        let text = hosts_file(&layout, "127.0.0.1:2181", Path::new("/sb/zookeeper"));
        let ns = layout.components.iter().find(|c| c.role == Role::Nameserver).unwrap();
        assert!(text.contains(&format!("[nameserver]\n{}\n", ns.endpoint)), "{text}");
        assert!(text.contains("/sb/tablet-1\n"), "{text}");
        let shared: Vec<&SandboxComponent> = layout.components.iter().filter(|c| c.dir == layout.home).collect();
        assert_eq!(shared.len(), 3, "nameserver, apiserver and taskmanager share $OPENMLDB_HOME");
        assert!(text.contains("/sb/host-127.0.0.5/nameserver\n"), "{text}");
        assert!(text.contains("/sb/host-127.0.0.5/taskmanager\n"), "{text}");
    }
}
