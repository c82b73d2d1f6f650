//! Command-line arguments and the subcommands they run. `main` only calls [`run`].

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::ClusterConfig;
use crate::error::Error;
use crate::repl;
use crate::script::{self, docs, Host, Output, ScriptEngine};

mod sandbox;
use sandbox::{run_sandbox, SandboxCommand};

#[derive(Debug, Parser)]
#[command(
    name = "mldb-upgrade",
    version,
    about = "Rolling upgrades of a live OpenMLDB cluster, driven by Rhai scripts"
)]
pub struct Cli {
    /// More log output (-v debug, -vv trace).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// Only errors in the log.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    quiet: bool,
    /// Log format on stderr; `json` gives one structured event per line (the audit log).
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true, env = "MLDB_LOG_FORMAT")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a script against a cluster.
    Run(RunArgs),
    /// Show what a run would do: the script in --dry-run, as ordered steps. Touches nothing.
    Plan(RunArgs),
    /// Show the cluster (components, versions, leaders, ops, auto_failover), the journal and the lock.
    Status {
        /// The cluster config (cluster.toml).
        #[arg(long, env = "MLDB_CLUSTER", value_name = "FILE")]
        cluster: PathBuf,
    },
    /// Unwind a stopped run to a safe state: leaders restored, temporary replicas removed,
    /// auto_failover restored. Upgrades nothing further.
    Abort {
        /// The cluster config (cluster.toml).
        #[arg(long, env = "MLDB_CLUSTER", value_name = "FILE")]
        cluster: PathBuf,
    },
    /// Compile scripts and the modules they import, without running them.
    Check {
        /// Script files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Directories searched first for `import "name"`.
        #[arg(long = "lib", value_name = "DIR")]
        lib_dirs: Vec<PathBuf>,
    },
    /// Print every function scripts can call, with its documentation.
    Docs {
        /// Only this function, namespace or stock module (e.g. `zk`, `ssh::exec`, `rolling`), or
        /// a script file (`scripts/upgrade.rhai`) for the settings it declares.
        name: Option<String>,
        /// Print the Rhai definitions file (`.d.rhai`) for editors instead.
        #[arg(long, conflicts_with = "name")]
        definitions: bool,
    },
    /// Script statements interactively against a cluster, with history, completion and :help.
    Repl(ReplArgs),
    /// Local rehearsal clusters on this machine.
    #[command(subcommand)]
    Sandbox(SandboxCommand),
    /// Write a cluster.toml from what a running cluster knows (ZooKeeper, and the processes on
    /// each host over ssh). Changes nothing on the cluster.
    Discover(DiscoverArgs),
    /// Print the shell completion script for SHELL (e.g. `source <(mldb-upgrade completions bash)`).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), or write one page per command into DIR.
    Man {
        /// Write `mldb-upgrade.1`, `mldb-upgrade-run.1`, ... into this directory.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

#[derive(Debug, Args)]
struct DiscoverArgs {
    /// The cluster's ZooKeeper, as its --zk_cluster: HOST:PORT[,HOST:PORT...].
    #[arg(long, value_name = "HOST:PORT[,..]")]
    zk: String,
    /// The cluster's --zk_root_path.
    #[arg(long, default_value = "/openmldb", value_name = "PATH")]
    zk_root: String,
    /// How the hosts are reached: openssh (your ssh config), ssh2, local (this machine) or auto.
    #[arg(long, default_value = "openssh", value_parser = ["openssh", "ssh2", "local", "auto"])]
    transport: String,
    /// The ssh config file for the openssh transport (`ssh -F`); default: yours.
    #[arg(long, value_name = "FILE")]
    ssh_config: Option<PathBuf>,
    /// The ssh user; default: your ssh config's (or $USER).
    #[arg(long)]
    user: Option<String>,
    /// The cluster's conf/hosts (as sbin/deploy-all.sh reads it): its [apiserver] entries are
    /// the apiservers, which ZooKeeper does not list. Default: those found on the hosts.
    #[arg(long, value_name = "FILE")]
    hosts: Option<PathBuf>,
    /// Where to write the config.
    #[arg(long, default_value = "cluster.toml", value_name = "FILE")]
    out: PathBuf,
    /// Replace FILE when it exists.
    #[arg(long)]
    force: bool,
}

#[derive(Debug, Args)]
struct RunArgs {
    /// The script to run.
    script: PathBuf,
    /// The cluster config (cluster.toml).
    #[arg(long, env = "MLDB_CLUSTER", value_name = "FILE")]
    cluster: Option<PathBuf>,
    /// A setting scripts read with setting("key"); repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = parse_setting)]
    settings: Vec<(String, String)>,
    /// Say what would change, change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Answer yes to confirmation gates.
    #[arg(long)]
    yes: bool,
    /// Directories searched first for `import "name"`.
    #[arg(long = "lib", value_name = "DIR")]
    lib_dirs: Vec<PathBuf>,
}

#[derive(Debug, Args)]
struct ReplArgs {
    /// The cluster config (cluster.toml).
    #[arg(long, env = "MLDB_CLUSTER", value_name = "FILE")]
    cluster: Option<PathBuf>,
    /// A sandbox directory: use DIR/cluster.toml (wins over --cluster).
    #[arg(long, value_name = "DIR")]
    sandbox: Option<PathBuf>,
    /// Start in dry-run (`:dry-run off` switches it off).
    #[arg(long)]
    dry_run: bool,
    /// A setting scripts read with setting("key"); repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = parse_setting)]
    settings: Vec<(String, String)>,
    /// Directories searched first for `import "name"`.
    #[arg(long = "lib", value_name = "DIR")]
    lib_dirs: Vec<PathBuf>,
    /// The history file [default: ~/.mldb-upgrade/history].
    #[arg(long, env = "MLDB_HISTORY", value_name = "FILE")]
    history: Option<PathBuf>,
    /// Keep no history file.
    #[arg(long, conflicts_with = "history")]
    no_history: bool,
}

pub(crate) fn parse_duration_arg(text: &str) -> Result<std::time::Duration, String> {
    crate::config::parse_duration(text)
}

fn parse_setting(text: &str) -> Result<(String, String), String> {
    let (key, value) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}` is not KEY=VALUE, e.g. --set release=/opt/openmldb-0.9.3-linux.tar.gz"))?;
    if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.') {
        return Err(format!("`{key}` is not a setting name (letters, digits, _ - .)"));
    }
    Ok((key.to_string(), value.to_string()))
}

/// Parses `args`, runs the command and returns the process exit code.
pub fn run<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    init_tracing(&cli);
    let result = execute(cli.command);
    crate::cluster::component::staging::remove_packed_archives();
    let requests = crate::cluster::rpc::requests_sent();
    tracing::debug!(requests, "{requests} request(s) sent to OpenMLDB servers");
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// `discover`: finds the cluster, checks the file it would write, then writes it.
fn discover(args: DiscoverArgs) -> Result<(), Error> {
    use crate::discover;
    if args.out.exists() && !args.force {
        return Err(Error::Usage(format!(
            "{} exists; pass --force to replace it, or --out another file",
            args.out.display()
        )));
    }
    let transport = match args.transport.as_str() {
        "ssh2" => crate::config::TransportKind::Ssh2,
        "local" => crate::config::TransportKind::Local,
        "auto" => crate::config::TransportKind::Auto,
        _ => crate::config::TransportKind::Openssh,
    };
    let options = discover::Options {
        zk: args.zk,
        zk_root: args.zk_root,
        transport,
        ssh_config: args.ssh_config.map(|p| std::path::absolute(&p).unwrap_or(p)),
        user: args.user,
        hosts_file: args.hosts,
    };
    let rt = runtime()?;
    let found = rt.block_on(discover::discover(&options))?;
    let text = discover::render(&options, &found);
    // What is written must load as a cluster config.
    ClusterConfig::parse(&args.out, &text, &crate::config::ProcessEnv)
        .map_err(|e| Error::Operation(format!("discover made a config that does not load (a bug): {e}\n{text}")))?;
    std::fs::write(&args.out, &text)
        .map_err(|e| Error::Usage(format!("cannot write {}: {e}; pass --out a writable file", args.out.display())))?;
    println!("wrote {} ({} components):", args.out.display(), found.len());
    for d in &found {
        let mode = if d.daemon { ", under mon" } else { "" };
        println!("  {:<11} {:<22} {} on {}, {}{mode}", d.role.as_str(), d.endpoint, d.dir, d.host, d.version_text());
    }
    let out = args.out.display();
    println!(
        "next: `mldb-upgrade status --cluster {out}`, then `mldb-upgrade plan scripts/upgrade.rhai --cluster {out}`"
    );
    Ok(())
}

/// The completion script for `shell`.
fn completions(shell: clap_complete::Shell) -> String {
    let mut command = <Cli as clap::CommandFactory>::command();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, "mldb-upgrade", &mut script);
    let script = String::from_utf8_lossy(&script).into_owned();
    if shell != clap_complete::Shell::Bash {
        return script;
    }
    // clap_complete's bash script spells a subcommand's state `mldb__upgrade__subcmd__run` in
    // its dispatch loop but `mldb__subcmd__upgrade__subcmd__run` in the arms that complete it,
    // for any bin name with a hyphen (clap-rs/clap#6421): no option after a subcommand would
    // ever complete. The arms are spelled as the loop spells them.
    script.replace("mldb__subcmd__upgrade", "mldb__upgrade")
}

/// The man page of the tool on stdout, or a page per command written into `dir`.
fn man_pages(dir: Option<&Path>) -> Result<(), Error> {
    let command = <Cli as clap::CommandFactory>::command();
    let Some(dir) = dir else {
        let mut page = Vec::new();
        clap_mangen::Man::new(command)
            .render(&mut page)
            .map_err(|e| Error::Operation(format!("cannot render the man page: {e}")))?;
        print!("{}", String::from_utf8_lossy(&page));
        return Ok(());
    };
    let cannot = |e: std::io::Error| {
        Error::Usage(format!("cannot write man pages into {}: {e}; give a writable directory", dir.display()))
    };
    std::fs::create_dir_all(dir).map_err(cannot)?;
    clap_mangen::generate_to(command, dir).map_err(cannot)?;
    Ok(())
}

fn init_tracing(cli: &Cli) {
    // Step events (target `audit`) duplicate the progress lines on a terminal; with
    // `--log-format json` they are the audit log, one structured event per step.
    let audit = if cli.log_format == LogFormat::Json { "audit=info" } else { "audit=off" };
    let default = match (cli.quiet, cli.verbose) {
        (true, _) => "error".to_string(),
        (false, 0) => format!("warn,script=info,mldb_upgrade=info,zookeeper_client=error,{audit}"),
        (false, 1) => format!("info,mldb_upgrade=debug,script=debug,{audit}"),
        _ => format!("debug,mldb_upgrade=trace,script=trace,{audit}"),
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("MLDB_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // Colours only for a terminal, and never with NO_COLOR set (https://no-color.org).
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let builder =
        tracing_subscriber::fmt().with_env_filter(filter).with_ansi(colour).with_writer(|| crate::progress::Stderr);
    let _ = match cli.log_format {
        LogFormat::Text => builder.with_target(false).try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    // Live indicators of long waits, on a terminal only.
    if cli.log_format == LogFormat::Text && !cli.quiet && std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        crate::progress::enable();
    }
}

pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::Operation(format!("cannot start the async runtime: {e}")))
}

fn execute(command: Command) -> Result<(), Error> {
    match command {
        Command::Run(args) => run_script(args),
        Command::Plan(mut args) => {
            args.dry_run = true;
            run_script(args)
        }
        Command::Status { cluster } => status(&cluster),
        Command::Abort { cluster } => abort(&cluster),
        Command::Check { files, lib_dirs } => check(&files, lib_dirs),
        Command::Docs { name, definitions } => {
            let rt = runtime()?;
            let host = Arc::new(Host::new(rt.handle().clone(), None, BTreeMap::new(), false, Output::stdout()));
            let engine = ScriptEngine::new(host, Vec::new());
            if definitions {
                print!("{}", docs::definitions(&engine.engine));
                return Ok(());
            }
            // A script file: the settings it and its modules declare.
            if let Some(path) = name.as_deref().map(Path::new).filter(|p| p.extension().is_some_and(|e| e == "rhai")) {
                let script = engine.compile_file(path)?;
                println!("settings of {} (`--set name=value`, checked before a run starts):\n", path.display());
                print!("{}", docs::render_settings(&script.settings));
                if !script.settings_read.is_empty() {
                    println!("also read, undeclared: {}", script.settings_read.join(", "));
                }
                return Ok(());
            }
            let text = docs::render(&docs::all(&engine.engine), name.as_deref());
            if text.is_empty() {
                return Err(Error::Usage(format!(
                    "no function or namespace named `{}` (stock modules and script files work too); run `mldb-upgrade docs` for the full list",
                    name.unwrap_or_default()
                )));
            }
            print!("{text}");
            Ok(())
        }
        Command::Repl(args) => run_repl(args),
        Command::Sandbox(cmd) => run_sandbox(cmd),
        Command::Discover(args) => discover(args),
        Command::Completions { shell } => {
            print!("{}", completions(shell));
            Ok(())
        }
        Command::Man { dir } => man_pages(dir.as_deref()),
    }
}

fn load_config(path: Option<&Path>) -> Result<Option<Arc<ClusterConfig>>, Error> {
    Ok(match path {
        Some(p) => Some(Arc::new(ClusterConfig::load(p)?)),
        None => None,
    })
}

fn run_script(args: RunArgs) -> Result<(), Error> {
    let config = load_config(args.cluster.as_deref())?;
    let settings: BTreeMap<String, String> = args.settings.into_iter().collect();
    let rt = runtime()?;
    let host =
        Arc::new(Host::new(rt.handle().clone(), config.clone(), settings.clone(), args.dry_run, Output::stdout()));
    host.set_yes(args.yes);
    let engine = ScriptEngine::new(host.clone(), args.lib_dirs);
    let script = engine.compile_file(&args.script)?;
    // Everything below is checked before the script runs: nothing has changed yet.
    if let (None, Some(call)) = (&config, &script.needs_cluster) {
        return Err(Error::Usage(format!(
            "{} works on a cluster ({call}): pass --cluster FILE, the cluster config (or set MLDB_CLUSTER)",
            args.script.display()
        )));
    }
    let context = script::settings::Context {
        config: config.as_deref(),
        can_confirm: args.yes || std::io::stdin().is_terminal(),
    };
    if let Err(problems) = script::settings::validate(&script.settings, &script.settings_read, &settings, &context) {
        return Err(Error::Usage(format!(
            "bad --set values for {}; nothing was changed:\n{}\n  = help: `mldb-upgrade docs {}` lists its settings",
            args.script.display(),
            problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"),
            args.script.display()
        )));
    }
    let ast = script.ast;
    // First Ctrl-C stops the script cleanly; a second one ends the process.
    let interrupt = host.interrupt.clone();
    let mirror = config.as_deref().and_then(crate::cluster::upgrade::mirror_path);
    let abort = format!(
        "mldb-upgrade abort --cluster {}",
        config.as_deref().map(|c| c.path.display().to_string()).unwrap_or_else(|| "FILE".into())
    );
    // Registered before the script starts, not lazily in the task: a Ctrl-C that came before the
    // task first ran would otherwise find SIGINT's default action and end the process uncleanly.
    let mut sigint = handle_sigint(&rt)?;
    rt.spawn(async move {
        if sigint.recv().await.is_some() {
            eprintln!(
                "\ninterrupt: stopping the script, then lifting its fences and putting auto_failover back (press Ctrl-C again to exit at once)"
            );
            interrupt.raise();
            if sigint.recv().await.is_some() {
                let left = mirror
                    .and_then(|path| std::fs::read_to_string(path).ok())
                    .map(|text| crate::journal::Outstanding::from_mirror(&text).lines())
                    .unwrap_or_default();
                if left.is_empty() {
                    eprintln!("interrupt: exiting at once; the lock is left held: `{abort}` releases it");
                } else {
                    eprintln!("interrupt: exiting at once, leaving (as journalled on this machine):");
                    for line in left {
                        eprintln!("  - {line}");
                    }
                    eprintln!("and the lock held: `{abort}` undoes all of it (or re-run the same command)");
                }
                crate::cluster::component::staging::remove_packed_archives();
                std::process::exit(130);
            }
        }
    });
    // A panic inside a primitive still leaves the cluster serving before the process ends.
    let result = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| engine.run_ast(&ast))) {
        Ok(result) => result,
        Err(_) => {
            host.release(true);
            return Err(Error::Operation(
                "mldb-upgrade failed inside a primitive (a bug: the message above says where); the cluster was left serving as far as shown above".into(),
            ));
        }
    };
    // Where the time went, also when the run failed (the steps so far).
    host.report_timing();
    host.release(result.is_err());
    result.map(|_| ())?;
    Ok(())
}

/// Takes SIGINT over now, on the calling thread, so a Ctrl-C that arrives before the task reading
/// the stream first runs is queued for it instead of finding the default action (process ends).
pub(crate) fn handle_sigint(rt: &tokio::runtime::Runtime) -> Result<tokio::signal::unix::Signal, Error> {
    let _runtime = rt.enter();
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .map_err(|e| Error::Operation(format!("cannot handle Ctrl-C: {e}")))
}

fn run_repl(args: ReplArgs) -> Result<(), Error> {
    let cluster = args.sandbox.map(|dir| dir.join("cluster.toml")).or(args.cluster);
    let config = load_config(cluster.as_deref())?;
    let target = match &cluster {
        Some(path) => format!("cluster {}", path.display()),
        None => "no cluster (cluster primitives need --cluster FILE or --sandbox DIR)".to_string(),
    };
    let rt = runtime()?;
    let settings = args.settings.into_iter().collect();
    let host = Arc::new(Host::new(rt.handle().clone(), config, settings, args.dry_run, Output::stdout()));
    let engine = ScriptEngine::new(host.clone(), args.lib_dirs);
    // Ctrl-C while a statement runs stops that statement. At a terminal prompt rustyline sees
    // Ctrl-C as a key, not a signal; with piped input a signal there ends the REPL.
    let evaluating = Arc::new(AtomicBool::new(false));
    // Registered here, before the first prompt, not lazily in the task: SIGINT must never find
    // the default action (which would end the process and the session with it).
    let mut sigint = handle_sigint(&rt)?;
    {
        let interrupt = host.interrupt.clone();
        let evaluating = evaluating.clone();
        rt.spawn(async move {
            while sigint.recv().await.is_some() {
                if evaluating.load(Ordering::SeqCst) {
                    interrupt.raise();
                } else if !std::io::stdin().is_terminal() {
                    crate::cluster::component::staging::remove_packed_archives();
                    std::process::exit(130);
                }
            }
        });
    }
    let history = if args.no_history { None } else { args.history.or_else(repl::history_path) };
    repl::run(repl::Session::new(engine), repl::Options { history, target }, evaluating)
}

fn check(files: &[PathBuf], lib_dirs: Vec<PathBuf>) -> Result<(), Error> {
    let rt = runtime()?;
    let host = Arc::new(Host::new(rt.handle().clone(), None, BTreeMap::new(), true, Output::stdout()));
    let engine = ScriptEngine::new(host, lib_dirs);
    let mut first_error = None;
    for file in files {
        match engine.check_file(file) {
            Ok(()) => println!("ok: {}", file.display()),
            Err(e) => {
                eprintln!("{e}");
                first_error.get_or_insert(e);
            }
        }
    }
    match first_error {
        Some(e) => Err(Error::Usage(format!(
            "{} of {} scripts failed the check ({})",
            files.len() - files.iter().filter(|f| engine.check_file(f).is_ok()).count(),
            files.len(),
            e.message
        ))),
        None => Ok(()),
    }
}

/// A host for commands that act on a cluster without a script.
fn cluster_host(path: &Path) -> Result<(tokio::runtime::Runtime, Arc<Host>), Error> {
    let config = load_config(Some(path))?;
    let rt = runtime()?;
    let host = Arc::new(Host::new(rt.handle().clone(), config, BTreeMap::new(), false, Output::stdout()));
    Ok((rt, host))
}

fn status(path: &Path) -> Result<(), Error> {
    let (rt, host) = cluster_host(path)?;
    let (config, upgrader) = host.cluster_parts("status").map_err(|e| Error::Operation(e.to_string()))?;
    let status = rt
        .block_on(crate::cluster::status::ClusterStatus::read(config, upgrader))
        .map_err(|e| Error::Operation(e.to_string()))?;
    print!("{status}");
    Ok(())
}

fn abort(path: &Path) -> Result<(), Error> {
    let (rt, host) = cluster_host(path)?;
    // Like a run's lines: a reader that went away (`abort | head`) must not stop the unwinding.
    let say = |line: &str| host.output.line(line);
    let (_, upgrader) = host.cluster_parts("abort").map_err(|e| Error::Operation(e.to_string()))?;
    let control = host.control("abort", &say).map_err(|e| Error::Operation(e.to_string()))?;
    let command: Vec<String> = std::env::args().collect();
    let report =
        rt.block_on(upgrader.abort(&control, &command.join(" "), &say)).map_err(|e| Error::Operation(e.to_string()))?;
    if !report.left.is_empty() {
        let left: Vec<String> = report.left.iter().map(|l| format!("  - {l}")).collect();
        return Err(Error::Operation(format!(
            "abort could not undo everything; the run stays recorded so that abort can be run again:\n{}",
            left.join("\n")
        )));
    }
    say("aborted: no run is recorded any more; components the run replaced stay replaced, leaders are restored");
    Ok(())
}
