//! `component::`: stopping, starting, backing up and installing OpenMLDB components on their
//! hosts, and reading their versions. Components are named by their endpoint as written in the
//! cluster config. The work is done by [`crate::cluster::component`].

use std::sync::Arc;
use std::time::Duration;

use rhai::{Array, Dynamic, EvalAltResult, Map, Module, NativeCallContext};

use super::{duration_arg, Doc, Effect};
use crate::cluster::component::{Control, InstallReport, Parts, StartReport, StopOptions, StopReport};
use crate::script::{CallError, Host};

type Res<T> = Result<T, Box<EvalAltResult>>;

/// Default time limit of `start`'s checks (and of its wait for an old ZooKeeper node).
pub const DEFAULT_START_TIMEOUT: Duration = Duration::from_secs(120);

/// Runs `$body` (a future using the [`Control`] bound to `$c`) over the host's cluster.
macro_rules! with_control {
    ($ctx:expr, $h:expr, $function:expr, |$c:ident| $body:expr) => {{
        let (ctx, h): (&NativeCallContext, &Host) = (&$ctx, &$h);
        let config = h.config.as_deref().ok_or_else(|| {
            CallError::Failed(format!("{} needs a cluster: pass --cluster FILE (a cluster.toml)", $function)).at(ctx)
        })?;
        let zk = h.zk($function).map_err(|e| e.at(ctx))?;
        let say = |text: &str| h.say(text);
        let $c = Control { config, remotes: &h.remotes, zk, interrupt: &h.interrupt, dry_run: h.dry_run(), say: &say };
        h.block_on($body).map_err(|e| e.at(ctx))
    }};
}

/// Reads a duration option given as text ("2m") or milliseconds.
fn duration_option(options: &Map, key: &str, default: Duration) -> Res<Duration> {
    match options.get(key) {
        None => Ok(default),
        Some(v) if v.is_string() => duration_arg(&v.clone().into_string()?),
        Some(v) => Ok(Duration::from_millis(
            v.as_int().map_err(|t| format!("{key} must be a duration such as \"2m\" or milliseconds, not {t}"))?.max(0)
                as u64,
        )),
    }
}

fn check_keys(function: &str, options: &Map, known: &[&str]) -> Res<()> {
    match options.keys().find(|k| !known.contains(&k.as_str())) {
        Some(bad) => Err(format!("{function}: unknown option `{bad}`; known options: {}", known.join(", ")).into()),
        None => Ok(()),
    }
}

fn pid(p: Option<u32>) -> Dynamic {
    p.map_or(Dynamic::UNIT, |p| Dynamic::from(p as i64))
}

fn stop_map(r: StopReport) -> Map {
    let mut m = Map::new();
    m.insert("endpoint".into(), r.endpoint.into());
    m.insert("host".into(), r.host.into());
    m.insert("mon_pid".into(), pid(r.mon_pid));
    m.insert("pid".into(), pid(r.pid));
    m.insert("stopped".into(), r.stopped.iter().map(|p| Dynamic::from(*p as i64)).collect::<Array>().into());
    m.insert("killed".into(), r.killed.into());
    m.insert("duration_ms".into(), (r.duration.as_millis() as i64).into());
    m.insert("dry_run".into(), r.dry_run.into());
    m
}

fn start_map(r: StartReport) -> Map {
    let mut m = Map::new();
    m.insert("endpoint".into(), r.endpoint.into());
    m.insert("host".into(), r.host.into());
    m.insert("mon_pid".into(), pid(r.mon_pid));
    m.insert("pid".into(), pid(r.pid));
    m.insert("version".into(), r.version.into());
    m.insert("registered".into(), r.registered.into());
    m.insert("already_running".into(), r.already_running.into());
    m.insert("duration_ms".into(), (r.duration.as_millis() as i64).into());
    m.insert("dry_run".into(), r.dry_run.into());
    m
}

fn install_map(r: InstallReport) -> Map {
    let mut m = Map::new();
    m.insert("endpoint".into(), r.endpoint.into());
    m.insert("host".into(), r.host.into());
    m.insert("path".into(), r.path.into());
    m.insert("dirs".into(), r.dirs.into_iter().map(Dynamic::from).collect::<Array>().into());
    m.insert("version".into(), r.version.into());
    m.insert("previous".into(), r.previous.map_or(Dynamic::UNIT, Dynamic::from));
    m.insert("dry_run".into(), r.dry_run.into());
    m
}

fn parts(what: &str) -> Res<Parts> {
    Parts::parse(what).map_err(|e| e.into())
}

pub fn module(host: &Arc<Host>) -> Module {
    let mut m = Module::new();

    let h = host.clone();
    Doc::new(
        "stop",
        &["endpoint: string"],
        "map",
        Effect::Changes,
        "Stops a component with its own `bin/start.sh stop <role>`, then waits until every process in its\npid files (mon and component in mon mode) is really gone, SIGKILLing after 30s (the mon first,\nso it cannot restart the component), and until its port is free. start.sh's exit code is not\ntrusted. Returns #{endpoint, host, mon_pid, pid, stopped, killed, duration_ms, dry_run}.\n\nExample: `let r = component::stop(\"10.0.0.5:10921\"); print(`stopped ${r.stopped} in ${r.duration_ms}ms`);`",
    )
    .set_into(&mut m, move |ctx: NativeCallContext, endpoint: &str| -> Res<Map> {
        with_control!(ctx, h, "component::stop", |c| c.stop(endpoint, StopOptions::default())).map(stop_map)
    });
    let h = host.clone();
    Doc::new(
        "stop",
        &["endpoint: string", "options: map"],
        "map",
        Effect::Changes,
        "Like stop(endpoint) with options: #{grace: \"30s\"} (how long after SIGTERM before SIGKILL),\n#{timeout: \"1m\"} (how long to wait after SIGKILL, and for the port to be free).\n\nExample: `component::stop(ep, #{grace: \"10s\", timeout: \"2m\"});`",
    )
    .set_into(&mut m, move |ctx: NativeCallContext, endpoint: &str, options: Map| -> Res<Map> {
        check_keys("component::stop", &options, &["grace", "timeout"])?;
        let defaults = StopOptions::default();
        let options = StopOptions {
            grace: duration_option(&options, "grace", defaults.grace)?,
            timeout: duration_option(&options, "timeout", defaults.timeout)?,
        };
        with_control!(ctx, h, "component::stop", |c| c.stop(endpoint, options)).map(stop_map)
    });

    let h = host.clone();
    Doc::new(
        "start",
        &["endpoint: string"],
        "map",
        Effect::Changes,
        "Starts a component with `bin/start.sh start <role>` (plus `mon` when the config says daemon)\nand waits up to 2m until its process runs, it answers its version (GET /version, or\nGetVersion on the active TaskManager) and it is registered in ZooKeeper (a tablet's\nnodes/<endpoint>, a nameserver's leader election node). A tablet restarted before its old\nZooKeeper node expired would exit at once, so start first waits for that node to go.\nOn failure the error shows the tail of the component's log. Returns #{endpoint, host, pid,\nmon_pid, version, registered, already_running, duration_ms, dry_run}.\n\nExample: `let r = component::start(\"10.0.0.5:10921\"); print(r.version);`",
    )
    .set_into(&mut m, move |ctx: NativeCallContext, endpoint: &str| -> Res<Map> {
        with_control!(ctx, h, "component::start", |c| c.start(endpoint, DEFAULT_START_TIMEOUT)).map(start_map)
    });
    let h = host.clone();
    Doc::new(
        "start",
        &["endpoint: string", "options: map"],
        "map",
        Effect::Changes,
        "Like start(endpoint) with options: #{timeout: \"5m\"} (for the old ZooKeeper node to expire,\nand for the checks to pass).\n\nExample: `component::start(ep, #{timeout: \"5m\"});`",
    )
    .set_into(&mut m, move |ctx: NativeCallContext, endpoint: &str, options: Map| -> Res<Map> {
        check_keys("component::start", &options, &["timeout"])?;
        let timeout = duration_option(&options, "timeout", DEFAULT_START_TIMEOUT)?;
        with_control!(ctx, h, "component::start", |c| c.start(endpoint, timeout)).map(start_map)
    });

    let h = host.clone();
    Doc::new(
        "backup",
        &["endpoint: string"],
        "string",
        Effect::Changes,
        "Copies the component's bin/ (and taskmanager/ for a TaskManager, O§6.1) to a dated\n<install>/backup/<YYYYmmdd-HHMMSS>/ and returns that path. Refuses when `df` shows too little\nroom.\n\nExample: `let saved = component::backup(ep);`",
    )
    .set_into(&mut m, move |ctx: NativeCallContext, endpoint: &str| -> Res<String> {
        let what = h.config.as_ref().and_then(|c| c.component(endpoint)).map(|c| Parts::default_for(c.role));
        let what = what.unwrap_or(Parts { bin: true, taskmanager: false });
        with_control!(ctx, h, "component::backup", |c| c.backup(endpoint, what)).map(|r| r.path)
    });
    let h = host.clone();
    Doc::new(
        "backup",
        &["endpoint: string", "what: string"],
        "string",
        Effect::Changes,
        "Like backup(endpoint) for the directories named in `what`: \"bin\", \"taskmanager\" or\n\"bin,taskmanager\".\n\nExample: `let saved = component::backup(tm, \"bin,taskmanager\");`",
    )
    .set_into(&mut m, move |ctx: NativeCallContext, endpoint: &str, what: &str| -> Res<String> {
        let what = parts(what)?;
        with_control!(ctx, h, "component::backup", |c| c.backup(endpoint, what)).map(|r| r.path)
    });

    let h = host.clone();
    Doc::new(
        "install",
        &["endpoint: string", "release: string"],
        "map",
        Effect::Changes,
        "Replaces the component's bin/ (and taskmanager/ for a TaskManager) from a release: a release\ndirectory or an openmldb-X.Y.Z-linux.tar.gz on the component's host, or a local path that is\nuploaded first. The release is checked first (its bin/openmldb --version must run); each\ndirectory is copied to <dir>.installing and then swapped in, so a failed copy never leaves a\nhalf-replaced bin/. The component must be stopped. Returns #{endpoint, host, path, dirs,\nversion, previous, dry_run}.\n\nExample: `component::install(ep, \"/opt/openmldb-0.9.3-linux.tar.gz\");`",
    )
    .set_into(&mut m, move |ctx: NativeCallContext, endpoint: &str, release: &str| -> Res<Map> {
        let what = h.config.as_ref().and_then(|c| c.component(endpoint)).map(|c| Parts::default_for(c.role));
        let what = what.unwrap_or(Parts { bin: true, taskmanager: false });
        with_control!(ctx, h, "component::install", |c| c.install(endpoint, release, what)).map(install_map)
    });
    let h = host.clone();
    Doc::new(
        "install",
        &["endpoint: string", "release: string", "what: string"],
        "map",
        Effect::Changes,
        "Like install(endpoint, release) for the directories named in `what`: \"bin\", \"taskmanager\"\nor \"bin,taskmanager\".\n\nExample: `component::install(tm, release, \"bin,taskmanager\");`",
    )
    .set_into(&mut m, move |ctx: NativeCallContext, endpoint: &str, release: &str, what: &str| -> Res<Map> {
        let what = parts(what)?;
        with_control!(ctx, h, "component::install", |c| c.install(endpoint, release, what)).map(install_map)
    });

    let h = host.clone();
    Doc::new(
        "install_spark",
        &["endpoint: string", "spark_dir: string"],
        "map",
        Effect::Changes,
        "Replaces a TaskManager's OpenMLDB Spark distribution at its spark.home (O§6.1: do this before\nreplacing the TaskManager). `spark_dir` is a directory or .tgz on the host, or a local path.\nIt must hold jars/openmldb-batch-*.jar. The old distribution is kept beside it; its path is in\n`previous`.\n\nExample: `component::install_spark(tm, \"/opt/spark-3.2.1-bin-openmldbspark-0.9.3\");`",
    )
    .set_into(&mut m, move |ctx: NativeCallContext, endpoint: &str, spark_dir: &str| -> Res<Map> {
        with_control!(ctx, h, "component::install_spark", |c| c.install_spark(endpoint, spark_dir))
            .map(install_map)
    });

    let h = host.clone();
    Doc::new(
        "rollback_install",
        &["endpoint: string", "backup_dir: string"],
        "map",
        Effect::Changes,
        "Restores bin/ (and taskmanager/, when the backup has it) from a directory made by\ncomponent::backup, the same copy-then-swap way as install. The component must be stopped.\nReturns the same map as install; `version` is the version restored.\n\nExample: `component::rollback_install(ep, saved);`",
    )
    .set_into(&mut m, move |ctx: NativeCallContext, endpoint: &str, backup_dir: &str| -> Res<Map> {
        with_control!(ctx, h, "component::rollback_install", |c| c.rollback_install(endpoint, backup_dir))
            .map(install_map)
    });

    let h = host.clone();
    Doc::new(
        "installed_version",
        &["endpoint: string"],
        "string",
        Effect::ReadOnly,
        "The version installed on the component's host: `bin/openmldb --version` as \"X.Y.Z-hash\"\n(O§4.1), or for a TaskManager \"X.Y.Z\" from taskmanager/lib/openmldb-taskmanager-X.Y.Z.jar.\n\nExample: `print(component::installed_version(ep));`",
    )
    .set_into(&mut m, move |ctx: NativeCallContext, endpoint: &str| -> Res<String> {
        with_control!(ctx, h, "component::installed_version", |c| c.installed_version(endpoint))
    });
    let h = host.clone();
    Doc::new(
        "running_version",
        &["endpoint: string"],
        "string",
        Effect::ReadOnly,
        "The version the running component reports: GET /version (tablet, nameserver, apiserver;\nC§1.4) or GetVersion's taskmanagerVersion (the active TaskManager; O§4.3), as \"X.Y.Z-hash\".\nThrows when it does not answer.\n\nExample: `if !component::running_version(ep).starts_with(\"0.9.3-\") { throw \"not upgraded\"; }`",
    )
    .set_into(&mut m, move |ctx: NativeCallContext, endpoint: &str| -> Res<String> {
        with_control!(ctx, h, "component::running_version", |c| c.running_version(endpoint))
    });
    m
}
