//! The `separate` layout: every component installed by the sandbox from its own copy of the
//! release, on its own loopback address, configured the way `sbin/deploy.sh` would (O§2.4).

use std::path::Path;

use super::release::{self, templates};
use super::{copy_tree, fast_flags, io_err, Ports, SandboxComponent, SandboxError, SandboxState, UpOptions};
use super::{tablet_fast_flags, tablet_option_flags};
use crate::cluster::topology::Role;

/// One loopback address and directory per component, as if each ran on its own host.
pub(super) fn plan(dir: &Path, options: &UpOptions, ports: &mut Ports) -> Result<Vec<SandboxComponent>, SandboxError> {
    let mut components = Vec::new();
    let plan = [
        (Role::Tablet, options.tablets),
        (Role::Nameserver, options.nameservers),
        (Role::Apiserver, options.apiservers),
        (Role::Taskmanager, options.taskmanagers),
    ];
    for (role, count) in plan {
        for i in 1..=count {
            let host = format!("127.0.0.{}", components.len() + 2);
            // A TaskManager binds its port on every interface (TaskManagerServer.java).
            let port = ports.on(if role == Role::Taskmanager { "0.0.0.0" } else { &host }).map_err(io_err(dir))?;
            let name = format!("{role}-{i}");
            components.push(SandboxComponent {
                role,
                endpoint: format!("{host}:{port}"),
                host,
                dir: dir.join(&name),
                name,
            });
        }
    }
    Ok(components)
}

pub(super) fn install(
    c: &SandboxComponent,
    release: &release::Release,
    state: &SandboxState,
    options: &UpOptions,
) -> Result<(), SandboxError> {
    copy_tree(&release.dir, &c.dir).map_err(io_err(&c.dir))?;
    let conf = c.dir.join("conf");
    let mut set = vec![("zk_cluster", state.zk_cluster.clone()), ("zk_root_path", state.zk_root_path.clone())];
    let named = options.use_name && matches!(c.role, Role::Nameserver | Role::Tablet);
    if named {
        set.extend(super::options::use_name_flags(&c.endpoint));
    } else {
        set.push(("endpoint", c.endpoint.clone()));
    }
    if options.fast {
        std::fs::write(conf.join("sandbox.env"), "SANDBOX_SLEEP_SCALE=0.1\n").map_err(io_err(&conf))?;
    }
    let (file, text) = match c.role {
        Role::Nameserver => {
            set.push(("auto_failover", options.auto_failover.to_string()));
            // A cluster with fewer tablets than system_table_replica_num cannot start (#3870).
            set.push(("system_table_replica_num", options.tablets.min(2).to_string()));
            if options.fast {
                set.extend(fast_flags());
            }
            ("nameserver.flags", templates::render_flags(templates::NAMESERVER_FLAGS, &set))
        }
        Role::Tablet => {
            if options.fast {
                set.extend(tablet_fast_flags());
            }
            set.extend(tablet_option_flags(options));
            ("tablet.flags", templates::render_flags(templates::TABLET_FLAGS, &set))
        }
        Role::Apiserver => ("apiserver.flags", templates::render_flags(templates::APISERVER_FLAGS, &set)),
        Role::Taskmanager => {
            copy_tree(&release.spark_dir, &c.dir.join("spark")).map_err(io_err(&c.dir))?;
            let (host, port) = c.endpoint.rsplit_once(':').unwrap_or_default();
            let props = vec![
                ("server.host", host.to_string()),
                ("server.port", port.to_string()),
                ("zookeeper.cluster", state.zk_cluster.clone()),
                ("zookeeper.root_path", state.zk_root_path.clone()),
                ("spark.home", c.dir.join("spark").display().to_string()),
            ];
            ("taskmanager.properties", templates::render_properties(templates::TASKMANAGER_PROPERTIES, &props))
        }
    };
    // With a server name the template's --endpoint line is left commented out (O§3).
    let text = if named { text.replace("\n--endpoint=", "\n#--endpoint=") } else { text };
    std::fs::write(conf.join(file), text).map_err(io_err(&conf))
}
