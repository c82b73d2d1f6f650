//! What `bin/openmldb` does with its command line: `--version`, or start a server of
//! `--role` on `--endpoint` (O§1.2, C§1.4). The binary `openmldb-sim` is a thin shell over
//! [`main_with_args`].
//!
//! # Where a server process writes
//!
//! * stderr: short lines (`start <role> on endpoint ...`, `openmldb: <error>`, tracing
//!   warnings, `SIM_LOG` for more); start.sh sends it to `<log_dir>/<role>.log`.
//! * glog files (see [`super::glog`]), set up right after the flags are read, as
//!   `src/cmd/openmldb.cc` calls `SetupLog()` first: under `--openmldb_log_dir` (default
//!   `./logs`, relative to the working directory) `<role>.info.log.<YYYYMMDD-HHMMSS>.<pid>`
//!   with every line and `<role>.warning.log.<...>` with WARNING and above, behind the
//!   symlinks `<role>.INFO` and `<role>.WARNING`. The INFO file gets the startup line
//!   (`start <role> on endpoint <ep> with version <ver>`, as `openmldb.cc` words it), the
//!   simulator's tracing events (INFO and up; DEBUG too with `--log_level=debug`, the flag's
//!   default), and the reason of a failed start before the process exits: the simulator's own
//!   message followed by `openmldb.cc`'s line for that step (`Fail to start server` when the
//!   endpoint cannot be bound, `Fail to init` for a nameserver or apiserver that cannot use
//!   ZooKeeper, `fail to init tablet` / `Fail to register zk` for a tablet), or an `F` line
//!   with the reason for a `--broken` sandbox release.
//! * A TaskManager (`--role=taskmanager`, run by `taskmanager.sh`) logs with log4j's layout
//!   instead; see [`super::taskmanager`] and [`super::log4j`].

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

use super::apiserver::run_apiserver;
use super::flags::{Role, SimFlags};
use super::glog::{self, glog, GlogLayer, Severity};
use super::nameserver::{run_nameserver, NameServerError};
use super::tablet::{run_tablet, TabletError};
use super::taskmanager::{log_start_failure, run_taskmanager};
use super::zk::ZkError;

/// The file next to the executable that names the installed release's version.
pub const VERSION_FILE: &str = "openmldb.version";

/// The version of the release the binary is installed in: `openmldb.version` next to the
/// executable (content like `0.9.3-c5ffa75`), else the crate version with hash `0000000`.
pub fn installed_version(executable: Option<&Path>) -> String {
    executable
        .and_then(Path::parent)
        .and_then(|dir| std::fs::read_to_string(dir.join(VERSION_FILE)).ok())
        .map(|text| text.trim().to_string())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| format!("{}-0000000", env!("CARGO_PKG_VERSION")))
}

/// A file next to the executable that makes every server fail at start: how
/// `sandbox release --broken` builds a release whose components do not come up.
pub const BROKEN_FILE: &str = "openmldb.broken";

/// A file next to the executable naming roles (one a line) whose servers never set their brpc
/// server version, so `/version` answers `unknown` (C§1.4): how
/// `sandbox release --unknown-version` builds a release that fails the version check.
pub const UNSET_VERSION_FILE: &str = "openmldb.unset-version";

/// brpc's `/version` answer when the server's version was never set (C§1.4).
pub const UNSET_VERSION: &str = "unknown";

/// Whether `role`'s server leaves its version unset (see [`UNSET_VERSION_FILE`]).
fn leaves_version_unset(executable: Option<&Path>, role: &str) -> bool {
    executable
        .and_then(Path::parent)
        .and_then(|dir| std::fs::read_to_string(dir.join(UNSET_VERSION_FILE)).ok())
        .is_some_and(|roles| roles.lines().any(|r| r.trim() == role))
}

/// Runs the simulated `openmldb` binary with `args` (without argv\[0\]).
pub fn main_with_args(args: Vec<String>) -> ExitCode {
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let executable = std::env::current_exe().ok();
    let is_server = !args.iter().any(|a| a == "--version" || a == "--version=true");
    let broken = executable
        .as_deref()
        .and_then(Path::parent)
        .and_then(|dir| std::fs::read_to_string(dir.join(BROKEN_FILE)).ok())
        .filter(|_| is_server)
        .map(|reason| reason.trim().to_string());
    if args.iter().any(|a| a == "--role=taskmanager") {
        return run_taskmanager_process(&cwd, broken.as_deref());
    }
    let parsed = SimFlags::parse(&args, &cwd);
    if let Some(reason) = broken {
        // A bad build dies at start. As a server it gets as far as its log setup, so the
        // reason also ends its INFO log.
        if let Ok(flags) = &parsed {
            if let Some(role) = flags.role {
                setup_glog(role, flags, &cwd);
                glog!(Severity::Fatal, "{reason}");
            }
        }
        eprintln!("openmldb: fatal: {reason}");
        return ExitCode::from(1);
    }
    let flags = match parsed {
        Ok(flags) => flags,
        Err(e) => {
            eprintln!("openmldb: {e}");
            return ExitCode::from(1);
        }
    };
    let version = installed_version(executable.as_deref());
    if flags.print_version {
        // gflags' --version output (C§1.4 item 2, O§4.1)
        println!("openmldb version {version}");
        return ExitCode::SUCCESS;
    }
    if flags.cli_role.is_some() {
        // ns_client / client / sql_client (C§5): always exit code 0, like OpenMLDB's CLI.
        return super::cli::run(&flags, &version);
    }
    let Some(role) = flags.role else {
        eprintln!("openmldb: --role must be nameserver or tablet");
        return ExitCode::from(1);
    };
    setup_glog(role, &flags, &cwd);
    if let Err(e) = flags.validate_server() {
        glog!(Severity::Warning, "{e}");
        eprintln!("openmldb: {e}");
        return ExitCode::from(1);
    }
    setup_tracing(&flags);
    let mut flags = flags;
    if let Err(e) = flags.apply_real_endpoint() {
        glog!(Severity::Warning, "{e}");
        eprintln!("openmldb: {e}");
        return ExitCode::from(1);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            glog!(Severity::Warning, "cannot start the runtime: {e}");
            eprintln!("openmldb: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(async move {
        let listen = flags.listen_endpoint().to_string();
        let listener = match TcpListener::bind(&listen).await {
            Ok(listener) => listener,
            Err(e) => {
                glog!(Severity::Warning, "cannot listen on {listen}: {e}");
                glog!(Severity::Warning, "Fail to start server");
                eprintln!("openmldb: cannot listen on {listen}: {e}");
                return ExitCode::from(1);
            }
        };
        let shutdown = CancellationToken::new();
        tokio::spawn(async move {
            if let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                term.recv().await;
                // Exit at once, leaving the ZooKeeper session to time out: real OpenMLDB
                // never calls zookeeper_close (C§1.3, C§3.8).
                std::process::exit(0);
            }
        });
        let role_name = role_name(role);
        glog!(Severity::Info, "start {role_name} on endpoint {listen} with version {version}");
        eprintln!("start {role_name} on endpoint {listen} with version {version}");
        // The log line prints the compiled-in version either way; /version serves what the
        // server was given.
        let version =
            if leaves_version_unset(executable.as_deref(), role_name) { UNSET_VERSION.to_string() } else { version };
        let result = match role {
            Role::NameServer => run_nameserver(listener, flags, version, shutdown).await.map_err(|e| {
                let step = match e {
                    // `LOG(ERROR)` and exit(1) in `NameServerImpl::OnLocked` (C§1.2).
                    NameServerError::TooFewTablets { .. } => None,
                    _ => Some("Fail to init"),
                };
                (e.to_string(), step)
            }),
            Role::Tablet => run_tablet(listener, flags, version, shutdown).await.map_err(|e| {
                let step = match e {
                    TabletError::DbRoot { .. } | TabletError::BadFlag(_) | TabletError::Zk(ZkError::Connect { .. }) => {
                        "fail to init tablet"
                    }
                    _ => "Fail to register zk",
                };
                (e.to_string(), Some(step))
            }),
            Role::ApiServer => run_apiserver(listener, flags, version, shutdown)
                .await
                .map_err(|e| (e.to_string(), Some("Fail to init"))),
        };
        match result {
            Ok(()) => ExitCode::SUCCESS,
            Err((e, step)) => {
                match step {
                    Some(step) => {
                        glog!(Severity::Warning, "{e}");
                        glog!(Severity::Warning, "{step}");
                    }
                    None => glog!(Severity::Error, "{e}"),
                }
                eprintln!("openmldb: {e}");
                ExitCode::from(1)
            }
        }
    })
}

/// `--role`'s name, the glog program name.
fn role_name(role: Role) -> &'static str {
    match role {
        Role::NameServer => "nameserver",
        Role::Tablet => "tablet",
        Role::ApiServer => "apiserver",
    }
}

/// `SetupLog()` (`src/cmd/openmldb.cc`): glog under `--openmldb_log_dir`.
fn setup_glog(role: Role, flags: &SimFlags, cwd: &Path) {
    if let Err(e) = glog::init(role_name(role), &flags.openmldb_log_dir, cwd) {
        eprintln!("openmldb: cannot create --openmldb_log_dir {}: {e}", flags.openmldb_log_dir);
    }
}

/// Tracing events: to stderr as before (warnings; `SIM_LOG` takes a filter for more), and to
/// glog from INFO, or DEBUG with `--log_level=debug`.
fn setup_tracing(flags: &SimFlags) {
    let stderr_filter = tracing_subscriber::EnvFilter::try_from_env("SIM_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,zookeeper_client=error"));
    let glog_level = if flags.log_level == "debug" { tracing::Level::DEBUG } else { tracing::Level::INFO };
    let _ = tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_ansi(false).with_filter(stderr_filter))
        .with(GlogLayer.with_filter(Targets::new().with_target("mldb_upgrade", glog_level)))
        .try_init();
}

/// `taskmanager/bin/taskmanager.sh` runs this from inside `taskmanager/bin` (O§1.2).
fn run_taskmanager_process(cwd: &Path, broken: Option<&str>) -> ExitCode {
    if let Some(reason) = broken {
        // stderr first: start.sh may have pointed it at the log file itself (`job.log.path`
        // `./logs/`), and the log appends after it.
        eprintln!("openmldb: fatal: {reason}");
        log_start_failure(cwd, reason);
        return ExitCode::from(1);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("taskmanager: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(async move {
        tokio::spawn(async move {
            if let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                term.recv().await;
                std::process::exit(0);
            }
        });
        // The log (file and stdout) tells why a start failed; nothing else goes to stderr,
        // which may be that same file.
        match run_taskmanager(cwd, CancellationToken::new()).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(_) => ExitCode::from(1),
        }
    })
}
