//! `mldb-upgrade sandbox ...`: arguments and printing for the rehearsal clusters ([`crate::sandbox`]).

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::{parse_duration_arg, runtime};
use crate::error::Error;
use crate::sandbox;

#[derive(Debug, Subcommand)]
pub(crate) enum SandboxCommand {
    /// Start a sandbox in DIR (real ZooKeeper, simulated OpenMLDB) and write DIR/cluster.toml.
    Up(SandboxUpArgs),
    /// Stop everything the sandbox in DIR started.
    Down {
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
    },
    /// Show the components of the sandbox in DIR: pids, versions, leaders.
    Status {
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
    },
    /// Write keyed rows to every table of the sandbox, recording each acknowledged and failed
    /// write in a report (JSON lines) for `sandbox verify`.
    Load {
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
        /// Rows per second.
        #[arg(long, default_value_t = 200)]
        rate: u32,
        /// How long to write, e.g. 60s or 5m.
        #[arg(long, default_value = "60s", value_parser = parse_duration_arg)]
        duration: std::time::Duration,
        #[arg(long, value_name = "FILE")]
        report: PathBuf,
        /// Retry a write refused while its partition switches leaders (or its tablet restarts)
        /// for up to this long, as an application would, e.g. 10s. OpenMLDB's SDK itself does
        /// not retry; the default 0s does not either.
        #[arg(long, default_value = "0s", value_parser = parse_duration_arg)]
        retry_for: std::time::Duration,
        /// Who writes: `own`, the tool's client; `sdk`, OpenMLDB's own Python SDK (`make sdk`
        /// installs it into .venv-sdk), one INSERT per row, never retried.
        #[arg(long, value_enum, default_value_t = LoadClient::Own)]
        client: LoadClient,
        /// The Python that has OpenMLDB's SDK, for --client sdk. Default: $MLDB_SDK_PYTHON, else
        /// .venv-sdk/bin/python.
        #[arg(long, value_name = "PATH")]
        python: Option<PathBuf>,
    },
    /// Read back every acknowledged row of a load report: missing rows, failed writes, and the
    /// longest write outage per partition.
    Verify {
        #[arg(long, value_name = "FILE")]
        report: PathBuf,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Lay out a release like OpenMLDB's tarball, with the simulator as its programs.
    Release {
        /// X.Y.Z
        #[arg(long)]
        version: String,
        /// Where to put openmldb-X.Y.Z-linux/ and the Spark distribution.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Also pack openmldb-X.Y.Z-linux.tar.gz (and the Spark .tgz).
        #[arg(long)]
        tar: bool,
        /// Every component of this release fails at start (for rollback rehearsals).
        #[arg(long)]
        broken: bool,
        /// These server roles (nameserver, tablet, apiserver; comma-separated) never set their
        /// version: they run, but GET /version answers "unknown" (for the final version check).
        #[arg(long, value_name = "ROLES", value_delimiter = ',')]
        unknown_version: Vec<String>,
    },
    /// Do to the sandbox in DIR what goes wrong on real clusters, to rehearse an upgrade
    /// through it: a component crashing, ZooKeeper restarting, ssh connections dropping.
    Fault {
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
        #[command(subcommand)]
        fault: FaultCommand,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum FaultCommand {
    /// kill -9 a component's process (in daemon mode its mon starts it again).
    Kill {
        /// Its endpoint or sandbox name, e.g. tablet-2.
        component: String,
    },
    /// Kill ZooKeeper and start it again on the same port and data after DOWN; longer than the
    /// session timeout, every session expires.
    RestartZookeeper {
        #[arg(long, default_value = "5s", value_parser = parse_duration_arg)]
        down: std::time::Duration,
    },
    /// Break every open ssh connection to the sandbox's sshd (--ssh sandboxes).
    DropSsh,
}

/// Who writes a sandbox load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum LoadClient {
    /// The tool's own client (routes like the SDK; `--retry-for` makes it retry).
    Own,
    /// OpenMLDB's own Python SDK, unmodified.
    Sdk,
}

#[derive(Debug, Args)]
pub(crate) struct SandboxUpArgs {
    #[arg(long, value_name = "DIR")]
    dir: PathBuf,
    /// OpenMLDB version of the sandbox.
    #[arg(long, default_value = "0.9.2")]
    version: String,
    /// Take the shape of the cluster a cluster config describes (e.g. one `discover` wrote):
    /// how many of each component, daemon (mon) mode, and the deploy layout when components
    /// of a host share a directory. Instead of --nameservers, --tablets, --apiservers,
    /// --taskmanagers, --daemon and --layout.
    #[arg(long, value_name = "CLUSTER_TOML", conflicts_with_all = ["nameservers", "tablets", "apiservers", "taskmanagers", "daemon", "layout"])]
    like: Option<PathBuf>,
    #[arg(long, default_value_t = 2)]
    nameservers: usize,
    #[arg(long, default_value_t = 3)]
    tablets: usize,
    #[arg(long, default_value_t = 1)]
    apiservers: usize,
    #[arg(long, default_value_t = 2)]
    taskmanagers: usize,
    /// Start every component in daemon mode (`bin/start.sh start <role> mon`).
    #[arg(long)]
    daemon: bool,
    /// Shrink OpenMLDB's timing flags and start.sh's waits, for rehearsals in seconds.
    #[arg(long)]
    fast: bool,
    /// Start with auto_failover off.
    #[arg(long)]
    no_auto_failover: bool,
    /// `separate`: each component in its own directory on its own address. `deploy`: laid out
    /// and started by the release's sbin/deploy-all.sh and sbin/start-*.sh from a conf/hosts,
    /// so a host's nameserver, apiserver and taskmanager share one directory.
    #[arg(long, value_enum, default_value_t = sandbox::Layout::Separate)]
    layout: sandbox::Layout,
    /// Reach every sandbox host through a real sshd (key auth, strict host keys) instead of
    /// running commands locally.
    #[arg(long)]
    ssh: bool,
    /// `memory`: every table in memory. `mixed`: also kSSD and kHDD tables (disk.ssd_single,
    /// disk.ssd_triple, disk.hdd_single, disk.hdd_double, disk.hdd_triple), the tablets' flags carrying
    /// --ssd_root_path and --hdd_root_path.
    #[arg(long, value_enum, default_value_t = sandbox::StorageModes::Memory)]
    storage_modes: sandbox::StorageModes,
    /// Make a scheduled snapshot window fall into the rehearsal: each tablet snapshots every
    /// replica (kMakingSnapshot for a while) this long after it starts, e.g. 30s
    /// (--make_snapshot_time = the local hour by then, --make_snapshot_check_interval = this,
    /// --make_snapshot_threshold_offset=0).
    #[arg(long, value_name = "AFTER", value_parser = parse_duration_arg)]
    snapshot_window: Option<std::time::Duration>,
    /// Start nameservers and tablets with server names (`--use_name=true`, no `--endpoint`, a
    /// `--port`): ZooKeeper, the nameserver and the tablets know them by name, and
    /// `<root>/map/names/<name>` holds the real address. Separate layout only.
    #[arg(long)]
    use_name: bool,
    /// Keep the replicator at OpenMLDB's compiled-in defaults even with --fast:
    /// binlog_notify_on_put=false, binlog_sync_wait_time=100 (ms), binlog_sync_batch_size=32.
    #[arg(long)]
    real_replication: bool,
    /// The TaskManagers' spark.master. `yarn`: spark.yarn.jars and batchjob.jar.path on a
    /// stand-in HDFS (DIR/hdfs/bin/hdfs, a script keeping "HDFS" in DIR/hdfs/root), where the
    /// release's Spark jars and batch-job jar are uploaded; give upgrades
    /// `--set hdfs="DIR/hdfs/bin/hdfs dfs"`.
    #[arg(long, value_enum, default_value_t = sandbox::hdfs::SparkMaster::Local)]
    spark_master: sandbox::hdfs::SparkMaster,
}

/// What `sandbox up --like` copies from a cluster config.
struct Shape {
    nameservers: usize,
    tablets: usize,
    apiservers: usize,
    taskmanagers: usize,
    daemon: bool,
    layout: sandbox::Layout,
}

impl Shape {
    fn describe(&self) -> String {
        let counted = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
        format!(
            "{}, {}, {}, {}{}{}",
            counted(self.nameservers, "nameserver"),
            counted(self.tablets, "tablet"),
            counted(self.apiservers, "apiserver"),
            counted(self.taskmanagers, "taskmanager"),
            if self.daemon { ", daemon (mon) mode" } else { "" },
            match self.layout {
                sandbox::Layout::Deploy => ", deploy layout (components of a host share a directory)",
                sandbox::Layout::Separate => "",
            }
        )
    }
}

/// The shape of the cluster `file` describes (read from the file only; the cluster is not
/// reached).
fn shape_of(file: &std::path::Path) -> Result<Shape, Error> {
    use crate::cluster::topology::Role;
    if !file.is_file() {
        return Err(Error::Usage(format!(
            "sandbox up --like {}: no such file; give the cluster config of the cluster to copy (e.g. one \
             `mldb-upgrade discover` wrote)",
            file.display()
        )));
    }
    let config =
        crate::config::ClusterConfig::load(file).map_err(|e| Error::Usage(format!("sandbox up --like: {e}")))?;
    let count = |role: Role| config.components.iter().filter(|c| c.role == role).count();
    let daemons = config.components.iter().filter(|c| c.daemon).count();
    if daemons != 0 && daemons != config.components.len() {
        return Err(Error::Usage(format!(
            "sandbox up --like {}: {daemons} of its {} components run under mon and the others do not; a sandbox runs \
             all or none under mon: start one with --daemon or without, giving the counts yourself",
            file.display(),
            config.components.len()
        )));
    }
    let mut dirs = std::collections::BTreeSet::new();
    let shared = config.components.iter().any(|c| !dirs.insert((c.host.clone(), c.dir.clone())));
    let shape = Shape {
        nameservers: count(Role::Nameserver),
        tablets: count(Role::Tablet),
        apiservers: count(Role::Apiserver),
        taskmanagers: count(Role::Taskmanager),
        daemon: daemons != 0,
        layout: if shared { sandbox::Layout::Deploy } else { sandbox::Layout::Separate },
    };
    Ok(shape)
}

pub(crate) fn run_sandbox(cmd: SandboxCommand) -> Result<(), Error> {
    let op = |e: sandbox::SandboxError| Error::Operation(e.to_string());
    match cmd {
        SandboxCommand::Up(mut args) => {
            if let Some(file) = &args.like {
                let shape = shape_of(file)?;
                println!("shape of {}: {}", file.display(), shape.describe());
                (args.nameservers, args.tablets, args.apiservers, args.taskmanagers) =
                    (shape.nameservers, shape.tablets, shape.apiservers, shape.taskmanagers);
                args.daemon = shape.daemon;
                args.layout = shape.layout;
            }
            let options = sandbox::UpOptions {
                version: args.version,
                nameservers: args.nameservers,
                tablets: args.tablets,
                apiservers: args.apiservers,
                taskmanagers: args.taskmanagers,
                daemon: args.daemon,
                fast: args.fast,
                auto_failover: !args.no_auto_failover,
                layout: args.layout,
                ssh: args.ssh,
                storage_modes: args.storage_modes,
                snapshot_window: args.snapshot_window,
                use_name: args.use_name,
                real_replication: args.real_replication,
                spark_master: args.spark_master,
            };
            let started = std::time::Instant::now();
            let rt = runtime()?;
            let state = rt.block_on(sandbox::up(&args.dir, &options)).map_err(|e| match e {
                sandbox::SandboxError::Option(m) => Error::Usage(m),
                stopped @ sandbox::SandboxError::Stopped { .. } => Error::Usage(stopped.to_string()),
                sandbox::SandboxError::Release(sandbox::release::ReleaseError::BadVersion(v)) => {
                    Error::Usage(format!("`{v}` is not a release version; expected X.Y.Z, e.g. 0.9.3"))
                }
                other => op(other),
            })?;
            let (_, _, lines) = rt.block_on(sandbox::status(&state.dir)).map_err(op)?;
            println!(
                "sandbox {} up in {:.1}s in {}",
                state.version,
                started.elapsed().as_secs_f64(),
                state.dir.display()
            );
            println!("  ZooKeeper  {} (pid {})", state.zk_cluster, state.zookeeper_pid);
            println!("{}", status_table(&lines));
            println!("config:  {}", state.cluster_toml.display());
            if let Some(dir) = &state.hdfs {
                let hdfs = sandbox::hdfs::Hdfs { dir: dir.clone() };
                println!(
                    "hdfs:    {} (a stand-in of the HDFS command line over {}; upgrades take --set hdfs=\"{}\")",
                    hdfs.command(),
                    hdfs.root().display(),
                    hdfs.command()
                );
            }
            println!(
                "try:     mldb-upgrade run scripts/examples/cluster-tour.rhai --cluster {}",
                state.cluster_toml.display()
            );
            println!("status:  mldb-upgrade sandbox status --dir {}", state.dir.display());
            println!("stop:    mldb-upgrade sandbox down --dir {}", state.dir.display());
            Ok(())
        }
        SandboxCommand::Down { dir } => {
            let stopped = sandbox::down(&dir).map_err(op)?;
            println!("sandbox in {} stopped ({} processes)", dir.display(), stopped.len());
            Ok(())
        }
        SandboxCommand::Status { dir } => {
            let rt = runtime()?;
            let (state, zk_running, lines) = rt.block_on(sandbox::status(&dir)).map_err(op)?;
            println!(
                "ZooKeeper  {}  pid {}  {}",
                state.zk_cluster,
                state.zookeeper_pid,
                if zk_running { "running" } else { "stopped" }
            );
            println!("{}", status_table(&lines));
            Ok(())
        }
        SandboxCommand::Load { dir, rate, duration, report, retry_for, client, python } => {
            if client == LoadClient::Sdk && !retry_for.is_zero() {
                return Err(Error::Usage(
                    "--retry-for is for the tool's own client; OpenMLDB's SDK does not retry (drop --retry-for, or use --client own)".into(),
                ));
            }
            let rt = runtime()?;
            let mut options = sandbox::load::LoadOptions::for_sandbox(&dir, rate, duration, &report)
                .map_err(|e| Error::Operation(e.to_string()))?;
            options.retry_for = retry_for;
            let stop = tokio_util::sync::CancellationToken::new();
            let on_ctrl_c = stop.clone();
            let mut sigint = super::handle_sigint(&rt)?;
            rt.spawn(async move {
                if sigint.recv().await.is_some() {
                    on_ctrl_c.cancel();
                }
            });
            let summary = match client {
                LoadClient::Own => rt.block_on(sandbox::load::run_load_until(options, stop)),
                LoadClient::Sdk => {
                    let python = python.unwrap_or_else(sandbox::load::sdk::default_python);
                    rt.block_on(sandbox::load::sdk::run_sdk_load(options, &python, stop))
                }
            }
            .map_err(|e| Error::Operation(e.to_string()))?;
            println!("{summary}");
            Ok(())
        }
        SandboxCommand::Verify { report, json } => {
            let rt = runtime()?;
            let result = rt
                .block_on(sandbox::load::verify(&report, sandbox::load::VerifyOptions::default()))
                .map_err(|e| Error::Operation(e.to_string()))?;
            if json {
                println!("{}", result.to_json());
            } else {
                println!("{result}");
            }
            if result.is_clean() {
                Ok(())
            } else {
                Err(Error::Operation("the load lost acknowledged rows or had failed writes (see above)".into()))
            }
        }
        SandboxCommand::Release { version, out, tar, broken, unknown_version } => {
            let faults = sandbox::release::Faults { broken, unknown_version };
            let release = sandbox::release::build(&version, &out, &faults, tar).map_err(|e| match e {
                sandbox::release::ReleaseError::BadVersion(_) | sandbox::release::ReleaseError::BadRole(_) => {
                    Error::Usage(e.to_string())
                }
                other => Error::Operation(other.to_string()),
            })?;
            println!("release {} in {}", release.full_version, release.dir.display());
            println!("spark distribution in {}", release.spark_dir.display());
            for t in &release.tarballs {
                println!("packed {}", t.display());
            }
            if faults.broken {
                println!("every component of this release fails at start (--broken)");
            }
            if !faults.unknown_version.is_empty() {
                println!(
                    "its {} answer GET /version with \"unknown\" (--unknown-version)",
                    faults.unknown_version.join(", ")
                );
            }
            Ok(())
        }
        SandboxCommand::Fault { dir, fault } => run_fault(&dir, fault),
    }
}

fn run_fault(dir: &std::path::Path, fault: FaultCommand) -> Result<(), Error> {
    let op = |e: sandbox::SandboxError| Error::Operation(e.to_string());
    let mut state = sandbox::load_state(dir).map_err(op)?;
    match fault {
        FaultCommand::Kill { component } => {
            let pid = sandbox::faults::kill_component(&state, &component).map_err(op)?;
            println!("killed {component} (pid {pid}) with SIGKILL");
        }
        FaultCommand::RestartZookeeper { down } => {
            let pid = sandbox::faults::restart_zookeeper(&mut state, down).map_err(op)?;
            println!(
                "ZooKeeper {} was down for {} and runs again (pid {pid})",
                state.zk_cluster,
                humantime::format_duration(down)
            );
        }
        FaultCommand::DropSsh => {
            let n = sandbox::faults::drop_ssh_connections(&state).map_err(op)?;
            println!("dropped {n} ssh connection process(es); the sshd still listens");
        }
    }
    Ok(())
}

fn status_table(lines: &[sandbox::ComponentStatus]) -> comfy_table::Table {
    let mut table = comfy_table::Table::new();
    table.load_preset(comfy_table::presets::NOTHING);
    table.set_header(["component", "endpoint", "pid", "state", "version", "role"]);
    for l in lines {
        table.add_row([
            l.name.clone(),
            l.endpoint.clone(),
            l.pid.map_or("-".into(), |p| p.to_string()),
            if l.running { "running".into() } else { "stopped".into() },
            l.version.clone().unwrap_or_else(|| "-".into()),
            l.detail.clone(),
        ]);
    }
    table
}
