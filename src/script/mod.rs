//! The Rhai host: the only part of the crate that depends on rhai.
//!
//! The engine runs on a plain (non-runtime) thread and reaches async primitives through
//! [`Host::block_on`], which also races every call against the [`Interrupt`] so Ctrl-C stops a
//! wait at once. Primitives are registered as documented modules, one namespace per file in
//! [`bindings`]; `mldb-upgrade docs` and the REPL's `:help` read those docs back from the engine.

pub mod bindings;
pub mod docs;
pub mod error;
pub mod lint;
pub mod program;
pub mod resolver;
pub mod settings;

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use rhai::{Dynamic, Engine, EvalAltResult, Position, AST};

use crate::cluster::component::Control;
use crate::cluster::upgrade::Upgrader;
use crate::cluster::zk::Zk;
use crate::cluster::Cluster;
use crate::config::ClusterConfig;
use crate::interrupt::Interrupt;
use crate::ssh::SshClient;
use crate::timing::{Timing, TimingReport};
pub use error::{ScriptError, ScriptErrorKind};
use program::Program;
use resolver::{Resolver, SourceMap};

/// Where `print` and progress lines go: stdout, or a buffer in tests and the REPL.
#[derive(Clone, Default)]
pub struct Output {
    capture: Option<Arc<Mutex<String>>>,
}

impl Output {
    pub fn stdout() -> Self {
        Output { capture: None }
    }
    pub fn captured() -> (Self, Arc<Mutex<String>>) {
        let buf = Arc::new(Mutex::new(String::new()));
        (Output { capture: Some(buf.clone()) }, buf)
    }
    pub fn line(&self, text: &str) {
        match &self.capture {
            Some(buf) => {
                let mut buf = buf.lock().unwrap_or_else(|p| p.into_inner());
                buf.push_str(text);
                buf.push('\n');
            }
            None => crate::progress::suspend(|| {
                use std::io::Write;
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{text}");
                let _ = out.flush();
            }),
        }
    }
}

/// Everything the bindings share: the cluster, its connections, the settings and the switches.
pub struct Host {
    runtime: tokio::runtime::Handle,
    pub config: Option<Arc<ClusterConfig>>,
    zk: Option<Arc<Zk>>,
    upgrader: Option<Upgrader>,
    pub ssh: SshClient,
    pub interrupt: Interrupt,
    dry_run: AtomicBool,
    /// `--yes`: confirmation gates are answered yes.
    yes: AtomicBool,
    /// The `--set` values.
    pub settings: BTreeMap<String, String>,
    /// What the running script declares ([`settings`]): defaults for `setting(name)`.
    declared: Mutex<Vec<settings::Setting>>,
    /// In a plan (`--dry-run`), the unfinished run of the same name it continues: its done steps
    /// are shown as skipped.
    pub planned_run: Mutex<Option<crate::journal::run::RunRecord>>,
    /// Releases staged on hosts and what a plan installs, for every component call of the run.
    pub staging: crate::cluster::component::staging::StagingMemory,
    /// Where the run's time goes: steps (`journal::step`) and the waits on OpenMLDB in them.
    pub timing: Arc<Timing>,
    pub output: Output,
}

/// What a primitive failed with, before it becomes a Rhai error.
#[derive(Debug)]
pub enum CallError {
    Interrupted,
    Failed(String),
}

impl From<CallError> for Box<EvalAltResult> {
    fn from(e: CallError) -> Self {
        match e {
            // Not catchable by `try`: Ctrl-C must stop the script.
            CallError::Interrupted => EvalAltResult::ErrorTerminated(Dynamic::UNIT, Position::NONE).into(),
            CallError::Failed(msg) => EvalAltResult::ErrorRuntime(msg.into(), Position::NONE).into(),
        }
    }
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Interrupted => f.write_str("interrupted by Ctrl-C"),
            CallError::Failed(msg) => f.write_str(msg),
        }
    }
}

impl CallError {
    /// The Rhai error, placed at the call (Rhai leaves namespaced calls without a position).
    pub fn at(self, ctx: &rhai::NativeCallContext) -> Box<EvalAltResult> {
        let mut err: Box<EvalAltResult> = self.into();
        err.set_position(ctx.call_position());
        err
    }
}

impl Host {
    pub fn new(
        runtime: tokio::runtime::Handle,
        config: Option<Arc<ClusterConfig>>,
        settings: BTreeMap<String, String>,
        dry_run: bool,
        output: Output,
    ) -> Self {
        let zk = config.as_ref().map(|c| Arc::new(Zk::new(c.zk.clone())));
        let upgrader = config.as_ref().zip(zk.as_ref()).map(|(c, zk)| Upgrader::for_cluster(c, zk.clone()));
        Host {
            runtime,
            zk,
            upgrader,
            ssh: SshClient::new(config.clone()),
            config,
            interrupt: Interrupt::new(),
            dry_run: AtomicBool::new(dry_run),
            yes: AtomicBool::new(false),
            settings,
            declared: Mutex::new(Vec::new()),
            planned_run: Mutex::new(None),
            staging: Default::default(),
            timing: Arc::new(Timing::new()),
            output,
        }
    }

    pub fn dry_run(&self) -> bool {
        self.dry_run.load(Ordering::SeqCst)
    }

    pub fn set_dry_run(&self, on: bool) {
        self.dry_run.store(on, Ordering::SeqCst);
    }

    /// Whether `--yes` was given: gates are answered yes.
    pub fn yes(&self) -> bool {
        self.yes.load(Ordering::SeqCst)
    }

    pub fn set_yes(&self, on: bool) {
        self.yes.store(on, Ordering::SeqCst);
    }

    /// Records settings a compiled script or module declares, for `setting(name)`'s defaults.
    pub fn declare_settings(&self, settings: &[settings::Setting]) {
        let mut declared = self.declared.lock().unwrap_or_else(|p| p.into_inner());
        for setting in settings {
            declared.retain(|s| s.name != setting.name);
            declared.push(setting.clone());
        }
    }

    /// The value of setting `name`: given with `--set`, else its declared default.
    pub fn setting(&self, name: &str) -> Option<String> {
        if let Some(value) = self.settings.get(name) {
            return Some(value.clone());
        }
        let declared = self.declared.lock().unwrap_or_else(|p| p.into_inner());
        declared.iter().find(|s| s.name == name).and_then(|s| s.default.clone())
    }

    /// The ZooKeeper client, or an error telling the operator to pass a cluster.
    pub fn zk(&self, function: &str) -> Result<&Zk, CallError> {
        self.zk.as_deref().ok_or_else(|| no_cluster(function))
    }

    /// The upgrade operations, or an error telling the operator to pass a cluster.
    pub fn upgrader(&self, function: &str) -> Result<&Upgrader, CallError> {
        self.upgrader.as_ref().ok_or_else(|| no_cluster(function))
    }

    /// The cluster's servers, or an error telling the operator to pass a cluster.
    pub fn cluster(&self, function: &str) -> Result<&Cluster, CallError> {
        Ok(&self.upgrader(function)?.cluster)
    }

    /// Component control over the cluster for `function`; `say` prints its progress lines.
    pub fn control<'a>(
        &'a self,
        function: &str,
        say: &'a (dyn Fn(&str) + Send + Sync),
    ) -> Result<Control<'a>, CallError> {
        let (config, upgrader) = self.cluster_parts(function)?;
        Ok(Control {
            config,
            ssh: &self.ssh,
            cluster: &upgrader.cluster,
            interrupt: &self.interrupt,
            dry_run: self.dry_run(),
            say,
            journal: Some(&upgrader.journal),
            memory: &self.staging,
        })
    }

    /// The cluster config and its upgrader, or an error telling the operator to pass a cluster.
    pub fn cluster_parts(&self, function: &str) -> Result<(&ClusterConfig, &Upgrader), CallError> {
        let config = self.config.as_deref().ok_or_else(|| no_cluster(function))?;
        Ok((config, self.upgrader(function)?))
    }

    /// Runs a future to completion even after Ctrl-C: for clean-up that must happen (putting
    /// auto_failover back) on the way out of an interrupted script.
    pub fn block_on_to_completion<T>(&self, fut: impl Future<Output = T>) -> T {
        self.runtime.block_on(fut)
    }

    /// Runs a future to completion on the runtime, giving up at once on Ctrl-C.
    pub fn block_on<T, E: std::fmt::Display>(&self, fut: impl Future<Output = Result<T, E>>) -> Result<T, CallError> {
        if self.interrupt.is_raised() {
            return Err(CallError::Interrupted);
        }
        let interrupt = self.interrupt.clone();
        // Waits on OpenMLDB inside report to the run's timing ledger.
        let fut = crate::timing::recording(self.timing.clone(), fut);
        self.runtime.block_on(async {
            tokio::select! {
                result = fut => result.map_err(|e| CallError::Failed(e.to_string())),
                _ = interrupt.raised() => Err(CallError::Interrupted),
            }
        })
    }

    /// Lets go of what this process holds in the cluster: the upgrade lock. After a failed run
    /// that holds it, first drops the run record when the run changed nothing
    /// ([`Upgrader::forget_untouched_run`]), saying so, and otherwise leaves the cluster serving
    /// ([`Host::leave_serving`]).
    pub fn release(&self, failed: bool) {
        if let Some(u) = self.upgrader.as_ref().filter(|u| u.journal.took_lock()) {
            // Only a run holding the lock (`journal::begin`, the stock scripts) cleans up: what a
            // script without it leaves may belong to another run. A script that never took it
            // (one that only runs ssh commands, say) does not even reach ZooKeeper here.
            let holds_lock =
                self.runtime.block_on(u.journal.lock_holder()).ok().flatten().is_some_and(|holder| holder.is_me());
            if failed && holds_lock && !self.dry_run() {
                let forgotten = matches!(
                    self.runtime.block_on(async {
                        tokio::time::timeout(std::time::Duration::from_secs(10), u.forget_untouched_run()).await
                    }),
                    Ok(Ok(true))
                );
                if forgotten {
                    self.say("nothing was changed: the run is not kept, so the next one starts afresh");
                } else {
                    self.leave_serving(u);
                }
            }
            let _ = self
                .runtime
                .block_on(async { tokio::time::timeout(std::time::Duration::from_secs(5), u.journal.unlock()).await });
        }
    }

    /// On the way out of a run that stopped early: lifts its fences and puts auto_failover back
    /// (bounded), then says what is left for `abort` ([`Upgrader::leave_serving`]). Runs to the
    /// end even after Ctrl-C; a second Ctrl-C exits at once.
    fn leave_serving(&self, u: &Upgrader) {
        let cluster = self.config.as_deref().map(|c| c.path.display().to_string()).unwrap_or_else(|| "FILE".into());
        let header = std::sync::Once::new();
        let say = |line: &str| {
            header.call_once(|| {
                self.say("the run stopped early: leaving the cluster serving before letting go of the lock")
            });
            self.say(&format!("  {line}"));
        };
        let left = self.runtime.block_on(async { tokio::time::timeout(LEAVE_TIMEOUT, u.leave_serving(&say)).await });
        let abort = format!("`mldb-upgrade abort --cluster {cluster}`");
        match left {
            Ok(Ok(left)) => {
                if left.fences_lifted > 0 {
                    say(&format!("{} leader(s) take writes again", left.fences_lifted));
                }
                let mut todo = Vec::new();
                if !left.fences_left.is_empty() {
                    todo.push(format!("fenced while their ops still run: {}", left.fences_left.join(", ")));
                }
                if !left.stopped.is_empty() {
                    todo.push(format!("stopped by the run: {}", left.stopped.join(", ")));
                }
                if !left.drained.is_empty() {
                    todo.push(format!("leaders moved off, not moved back: {}", left.drained.join(", ")));
                }
                if left.auto_failover_held.is_some() {
                    todo.push("auto_failover off (see above why)".to_string());
                }
                if left.needs_abort() {
                    self.say(&format!(
                        "left for a re-run of the same command or {abort}:\n{}",
                        todo.iter().map(|t| format!("  - {t}")).collect::<Vec<_>>().join("\n")
                    ));
                }
            }
            Ok(Err(e)) => self.say(&format!("could not finish: {e}; run {abort}")),
            Err(_) => self.say(&format!(
                "gave up after {}s; fences or auto_failover may be left as they are: run {abort}",
                LEAVE_TIMEOUT.as_secs()
            )),
        }
    }

    /// At the end of a run that ran steps (not a plan): prints where its time went and emits the
    /// same numbers as one `audit` event ([`TimingReport`]). Returns the report printed.
    pub fn report_timing(&self) -> Option<TimingReport> {
        let report = self.timing.report();
        if self.dry_run() || !report.has_steps() {
            return None;
        }
        self.say("");
        self.say(&report.render());
        let json = serde_json::to_string(&report).unwrap_or_default();
        tracing::info!(
            target: "audit",
            run_ms = report.run_ms,
            waiting_ms = report.waiting_ms,
            own_ms = report.own_ms,
            lower_bound_ms = report.lower_bound_ms,
            ratio = report.ratio,
            resumed = report.resumed,
            skipped_steps = report.skipped_steps,
            report = %json,
            "timing"
        );
        Some(report)
    }

    /// Prints a user-facing line.
    pub fn say(&self, text: &str) {
        self.output.line(text);
    }
}

/// How long the clean-up of a run that stopped early may take.
const LEAVE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

fn no_cluster(function: &str) -> CallError {
    CallError::Failed(format!("{function} needs a cluster: pass --cluster FILE (a cluster.toml)"))
}

/// Namespaces whose functions need the cluster config (`--cluster`).
const CLUSTER_NAMESPACES: [&str; 8] = ["zk", "ns", "tablet", "wait", "upgrade", "component", "journal", "config"];

/// A script compiled and checked, with what it declares.
pub struct Script {
    pub ast: AST,
    /// The settings the script and its modules declare.
    pub settings: Vec<settings::Setting>,
    /// Settings read with a literal `setting("name", ...)` that no declaration names.
    pub settings_read: Vec<String>,
    /// The first call that needs a cluster, as `zk::children at s.rhai:3`, if any.
    pub needs_cluster: Option<String>,
}

/// A configured Rhai engine bound to a [`Host`].
pub struct ScriptEngine {
    pub engine: Engine,
    pub host: Arc<Host>,
    pub sources: SourceMap,
    resolver: Arc<Resolver>,
}

impl ScriptEngine {
    pub fn new(host: Arc<Host>, lib_dirs: Vec<PathBuf>) -> Self {
        let sources = SourceMap::default();
        let resolver = Arc::new(Resolver::new(lib_dirs, sources.clone()));
        let mut engine = Engine::new();
        engine.set_max_expr_depths(256, 256);
        // Rhai's default is 8 levels in debug builds; stock flows nest steps, modules and closures.
        engine.set_max_call_levels(128);
        engine.set_module_resolver(SharedResolver(resolver.clone()));
        {
            let interrupt = host.interrupt.clone();
            engine.on_progress(move |_| interrupt.is_raised().then_some(Dynamic::UNIT));
        }
        {
            let out = host.output.clone();
            engine.on_print(move |text| out.line(text));
        }
        engine.on_debug(|text, source, pos| {
            tracing::debug!(target: "script", source = source.unwrap_or(""), line = pos.line(), "{text}");
        });
        bindings::register_all(&mut engine, &host);
        ScriptEngine { engine, host, sources, resolver }
    }

    /// Compiles a script file and every module it imports, and checks them ([`Program`]).
    pub fn compile_file(&self, path: &Path) -> Result<Script, ScriptError> {
        let label = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| ScriptError::plain(ScriptErrorKind::Input, format!("cannot read script {label}: {e}")))?;
        self.resolver.set_script_dir(path.parent().map(Path::to_path_buf));
        self.compile_text(&label, &text)
    }

    /// Compiles script text labelled `label` in errors, with every module it imports, and
    /// rejects what cannot run: a missing module, a call to a function that does not exist
    /// ([`lint`]), a bad settings declaration ([`settings`]).
    pub fn compile_text(&self, label: &str, text: &str) -> Result<Script, ScriptError> {
        let program = self.load_program(label, text, None)?;
        let declared = program.declared_settings(&self.sources)?;
        self.host.declare_settings(&declared);
        let settings_read =
            program.settings_read().into_iter().filter(|name| !declared.iter().any(|s| &s.name == name)).collect();
        let needs_cluster =
            program.calls().into_iter().find(|c| CLUSTER_NAMESPACES.contains(&c.namespace.as_str())).map(|c| {
                let unit = &program.units[c.unit].label;
                let line = c.position.line().map_or(String::new(), |l| format!(":{l}"));
                format!("{}::{} at {unit}{line}", c.namespace, c.name)
            });
        let ast = program.units.into_iter().next().map(|u| u.ast).unwrap_or_default();
        Ok(Script { ast, settings: declared, settings_read, needs_cluster })
    }

    /// Compiles one REPL input: like [`ScriptEngine::compile_text`], with the functions earlier
    /// inputs defined (`session`) counted as defined.
    pub fn compile_input(&self, label: &str, text: &str, session: &AST) -> Result<AST, ScriptError> {
        let program = self.load_program(label, text, Some(session))?;
        self.host.declare_settings(&program.declared_settings(&self.sources)?);
        Ok(program.units.into_iter().next().map(|u| u.ast).unwrap_or_default())
    }

    fn load_program(&self, label: &str, text: &str, session: Option<&AST>) -> Result<Program, ScriptError> {
        self.sources.insert(label, text);
        let mut ast = self.engine.compile(text).map_err(|e| ScriptError::from_parse(&e, label, &self.sources))?;
        ast.set_source(label);
        let program = Program::load(&self.engine, &self.resolver, &self.sources, label, ast)?;
        if let Some(bad) = lint::check(&self.engine, &program, session).into_iter().next() {
            let unit = &program.units[bad.unit].label;
            return Err(ScriptError::at(ScriptErrorKind::Input, bad.message, unit, bad.position, &self.sources));
        }
        Ok(program)
    }

    /// Compiles a file and every module it imports, without running anything (`check`).
    pub fn check_file(&self, path: &Path) -> Result<(), ScriptError> {
        self.compile_file(path).map(|_| ())
    }

    /// Runs a compiled script to the end.
    pub fn run_ast(&self, ast: &AST) -> Result<Dynamic, ScriptError> {
        let label = ast.source().unwrap_or("<script>").to_string();
        let mut scope = rhai::Scope::new();
        self.engine
            .eval_ast_with_scope::<Dynamic>(&mut scope, ast)
            .map_err(|e| ScriptError::from_eval(&e, &label, &self.sources))
    }

    /// Compiles and runs a script file.
    pub fn run_file(&self, path: &Path) -> Result<Dynamic, ScriptError> {
        let script = self.compile_file(path)?;
        self.run_ast(&script.ast)
    }
}

/// Lets the engine own a resolver that `ScriptEngine` also keeps.
struct SharedResolver(Arc<Resolver>);

impl rhai::ModuleResolver for SharedResolver {
    fn resolve(
        &self,
        engine: &Engine,
        source: Option<&str>,
        path: &str,
        pos: Position,
    ) -> Result<rhai::Shared<rhai::Module>, Box<EvalAltResult>> {
        self.0.resolve(engine, source, path, pos)
    }
}
