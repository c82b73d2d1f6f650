//! What `bin/openmldb` does with its command line: `--version`, or start a server of
//! `--role` on `--endpoint` (O§1.2, C§1.4). The binary `openmldb-sim` is a thin shell over
//! [`main_with_args`].

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::apiserver::run_apiserver;
use super::flags::{Role, SimFlags};
use super::nameserver::run_nameserver;
use super::tablet::run_tablet;
use super::taskmanager::run_taskmanager;

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

/// Runs the simulated `openmldb` binary with `args` (without argv\[0\]).
pub fn main_with_args(args: Vec<String>) -> ExitCode {
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let executable = std::env::current_exe().ok();
    let is_server = !args.iter().any(|a| a == "--version" || a == "--version=true");
    if let Some(reason) = executable
        .as_deref()
        .and_then(Path::parent)
        .and_then(|dir| std::fs::read_to_string(dir.join(BROKEN_FILE)).ok())
        .filter(|_| is_server)
    {
        eprintln!("openmldb: fatal: {}", reason.trim());
        return ExitCode::from(1);
    }
    if args.iter().any(|a| a == "--role=taskmanager") {
        return run_taskmanager_process(&cwd);
    }
    let flags = match SimFlags::parse(&args, &cwd) {
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
    if let Err(e) = flags.validate_server() {
        eprintln!("openmldb: {e}");
        return ExitCode::from(1);
    }
    // Warnings (failed tasks, refused calls) go to stderr, which start.sh sends to the
    // component's log; `SIM_LOG` takes a tracing filter for more.
    let filter = tracing_subscriber::EnvFilter::try_from_env("SIM_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,zookeeper_client=error"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(false).try_init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("openmldb: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(async move {
        let listener = match TcpListener::bind(&flags.endpoint).await {
            Ok(listener) => listener,
            Err(e) => {
                eprintln!("openmldb: cannot listen on {}: {e}", flags.endpoint);
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
        let role_name = match role {
            Role::NameServer => "nameserver",
            Role::Tablet => "tablet",
            Role::ApiServer => "apiserver",
        };
        eprintln!("start {role_name} on endpoint {} with version {version}", flags.endpoint);
        let result = match role {
            Role::NameServer => run_nameserver(listener, flags, version, shutdown).await.map_err(|e| e.to_string()),
            Role::Tablet => run_tablet(listener, flags, version, shutdown).await.map_err(|e| e.to_string()),
            Role::ApiServer => run_apiserver(listener, flags, version, shutdown).await.map_err(|e| e.to_string()),
        };
        match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("openmldb: {e}");
                ExitCode::from(1)
            }
        }
    })
}

/// `taskmanager/bin/taskmanager.sh` runs this from inside `taskmanager/bin` (O§1.2).
fn run_taskmanager_process(cwd: &Path) -> ExitCode {
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
        match run_taskmanager(cwd, CancellationToken::new()).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("taskmanager: {e}");
                ExitCode::from(1)
            }
        }
    })
}
