//! `component::`: stopping, starting, backing up and installing OpenMLDB components on their
//! hosts, and reading their versions ([`crate::cluster::component`]). Components are named by
//! their endpoint as written in the cluster config.

use super::{string_list, to_array, to_map, Call, Options, RhaiResultOf};
use crate::cluster::component::records::{Backup, PropertyEdits, SparkSwap};
use crate::cluster::component::{Control, Parts, StopOptions};
use rhai::plugin::*;
use rhai::{Array, Dynamic, Map};
use std::time::Duration;

const NS: &str = "component";

/// Runs `$body`, a future of the [`Control`] bound to `$c`, over the call's cluster.
macro_rules! with_control {
    ($call:expr, |$c:ident| $body:expr) => {{
        let call: &Call = $call;
        let say = |text: &str| call.host.say(text);
        let $c = control(call, &say)?;
        call.run($body)
    }};
}

/// Default time limit of `start`'s checks (and of its wait for an old ZooKeeper node).
const DEFAULT_START_TIMEOUT: Duration = Duration::from_secs(120);

#[export_module]
pub mod api {
    use super::*;

    /// Stops a component with its own `bin/start.sh stop <role>`, then waits until every process
    /// in its pid files (mon and component in mon mode) is really gone, SIGKILLing after 30s (the
    /// mon first, so it cannot restart the component), and until its port is free. start.sh's exit
    /// code is not trusted. Returns #{endpoint, host, mon_pid, pid, stopped, killed, duration_ms,
    /// dry_run}. Changes the host: in --dry-run it prints what it would do and does nothing.
    ///
    /// Example: `let r = component::stop("10.0.0.5:10921"); print(`stopped ${r.stopped} in ${r.duration_ms}ms`);`
    #[rhai_fn(volatile, return_raw)]
    pub fn stop(ctx: NativeCallContext, endpoint: &str) -> RhaiResultOf<Map> {
        let call = Call::new(&ctx, NS)?;
        to_map(&with_control!(&call, |c| c.stop(endpoint, StopOptions::default()))?)
    }

    /// Like stop(endpoint) with options: #{grace: "30s"} (how long after SIGTERM before SIGKILL),
    /// #{timeout: "1m"} (how long to wait after SIGKILL, and for the port to be free).
    /// Changes the host: in --dry-run it prints what it would do and does nothing.
    ///
    /// Example: `component::stop(ep, #{grace: "10s", timeout: "2m"});`
    #[rhai_fn(name = "stop", volatile, return_raw)]
    pub fn stop_with(ctx: NativeCallContext, endpoint: &str, options: Map) -> RhaiResultOf<Map> {
        let call = Call::new(&ctx, NS)?;
        let options = Options::new(&call, &options, &["grace", "timeout"])?;
        let defaults = StopOptions::default();
        let stop = StopOptions {
            grace: options.duration("grace", defaults.grace)?,
            timeout: options.duration("timeout", defaults.timeout)?,
        };
        to_map(&with_control!(&call, |c| c.stop(endpoint, stop))?)
    }

    /// Stops several components at the same time (a batch of tablets), each as stop(endpoint)
    /// does; returns their maps in the order given. When any fails the others still finish,
    /// and the error names each one that failed. Changes the hosts: in --dry-run it prints what
    /// it would do and does nothing.
    ///
    /// Example: `component::stop(["10.0.0.5:10921", "10.0.0.6:10921"]);`
    #[rhai_fn(name = "stop", volatile, return_raw)]
    pub fn stop_many(ctx: NativeCallContext, endpoints: Array) -> RhaiResultOf<Array> {
        let call = Call::new(&ctx, NS)?;
        let endpoints = string_list(&call, endpoints, "endpoints")?;
        let reports = with_control!(&call, |c| all_of(&endpoints, |ep| c.stop(ep, StopOptions::default())))?;
        to_array(reports)
    }

    /// Starts several components at the same time (a batch of tablets), each as start(endpoint,
    /// options) does; returns their maps in the order given. When any fails the others still
    /// finish, and the error names each one that failed. Options: #{timeout: "5m"}.
    /// Changes the hosts: in --dry-run it prints what it would do and does nothing.
    ///
    /// Example: `component::start(["10.0.0.5:10921", "10.0.0.6:10921"], #{timeout: "10m"});`
    #[rhai_fn(name = "start", volatile, return_raw)]
    pub fn start_many(ctx: NativeCallContext, endpoints: Array, options: Map) -> RhaiResultOf<Array> {
        let call = Call::new(&ctx, NS)?;
        let timeout = Options::new(&call, &options, &["timeout"])?.duration("timeout", DEFAULT_START_TIMEOUT)?;
        let endpoints = string_list(&call, endpoints, "endpoints")?;
        let reports = with_control!(&call, |c| all_of(&endpoints, |ep| c.start(ep, timeout)))?;
        to_array(reports)
    }

    /// Starts a component with `bin/start.sh start <role>` (plus `mon` when the config says daemon)
    /// and waits up to 2m until its process runs, it answers its version (GET /version, or
    /// GetVersion on the active TaskManager) and it is registered in ZooKeeper (a tablet's
    /// nodes/<endpoint>, a nameserver's leader election node). A tablet restarted before its old
    /// ZooKeeper node expired would exit at once, so start first waits for that node to go.
    /// On failure the error shows the tail of the component's log. Returns #{endpoint, host, pid,
    /// mon_pid, version, registered, already_running, duration_ms, dry_run}.
    /// Changes the host: in --dry-run it prints what it would do and does nothing.
    ///
    /// Example: `let r = component::start("10.0.0.5:10921"); print(r.version);`
    #[rhai_fn(volatile, return_raw)]
    pub fn start(ctx: NativeCallContext, endpoint: &str) -> RhaiResultOf<Map> {
        let call = Call::new(&ctx, NS)?;
        to_map(&with_control!(&call, |c| c.start(endpoint, DEFAULT_START_TIMEOUT))?)
    }

    /// Like start(endpoint) with options: #{timeout: "5m"} (for the old ZooKeeper node to expire,
    /// and for the checks to pass).
    /// Changes the host: in --dry-run it prints what it would do and does nothing.
    ///
    /// Example: `component::start(ep, #{timeout: "5m"});`
    #[rhai_fn(name = "start", volatile, return_raw)]
    pub fn start_with(ctx: NativeCallContext, endpoint: &str, options: Map) -> RhaiResultOf<Map> {
        let call = Call::new(&ctx, NS)?;
        let timeout = Options::new(&call, &options, &["timeout"])?.duration("timeout", DEFAULT_START_TIMEOUT)?;
        to_map(&with_control!(&call, |c| c.start(endpoint, timeout))?)
    }

    /// Starts a component a failed step or a stopped run left down: as installed, and when that
    /// does not start and a backup of it is recorded (component::backup records its last one),
    /// from that backup, the version it ran before. Throws, saying the component is DOWN and the
    /// command to start it by hand, when neither starts. Returns start's map plus `from_backup`
    /// (the backup path, or ()). Changes the host: in --dry-run it prints what it would do.
    ///
    /// Example: `try { component::install(ep, release); } catch (e) { component::start_again(ep); throw e; }`
    #[rhai_fn(volatile, return_raw)]
    pub fn start_again(ctx: NativeCallContext, endpoint: &str) -> RhaiResultOf<Map> {
        let call = Call::new(&ctx, NS)?;
        to_map(&with_control!(&call, |c| c.start_again(endpoint, DEFAULT_START_TIMEOUT))?)
    }

    /// The last backup component::backup made of a component: #{path, version, dirs}, or () when
    /// there is none.
    ///
    /// Example: `let saved = component::last_backup(ep); if saved != () { print(saved.version); }`
    #[rhai_fn(volatile, return_raw)]
    pub fn last_backup(ctx: NativeCallContext, endpoint: &str) -> RhaiResultOf<Dynamic> {
        let call = Call::new(&ctx, NS)?;
        let backup = with_control!(&call, |c| c.recorded::<Backup>("backups", endpoint))?;
        backup.map_or(Ok(Dynamic::UNIT), |b| to_map(&b).map(Dynamic::from))
    }

    /// Copies the component's bin/ (and taskmanager/ for a TaskManager) to a dated
    /// <install>/backup/<YYYYmmdd-HHMMSS>/ and returns that path. Refuses when `df` shows too little
    /// room. In a directory shared with other components the backup made earlier in the same run
    /// is reused. Changes the host: in --dry-run it prints what it would do and does nothing.
    ///
    /// Example: `let saved = component::backup(ep);`
    #[rhai_fn(volatile, return_raw)]
    pub fn backup(ctx: NativeCallContext, endpoint: &str) -> RhaiResultOf<String> {
        let call = Call::new(&ctx, NS)?;
        let parts = default_parts(&call, endpoint)?;
        Ok(with_control!(&call, |c| c.backup(endpoint, parts))?.path)
    }

    /// Like backup(endpoint) for the directories named in `what`: "bin", "taskmanager" or
    /// "bin,taskmanager". Changes the host: in --dry-run it prints what it would do and does nothing.
    ///
    /// Example: `let saved = component::backup(tm, "bin,taskmanager");`
    #[rhai_fn(name = "backup", volatile, return_raw)]
    pub fn backup_parts(ctx: NativeCallContext, endpoint: &str, what: &str) -> RhaiResultOf<String> {
        let call = Call::new(&ctx, NS)?;
        let parts = Parts::parse(what).map_err(|e| call.fail(e))?;
        Ok(with_control!(&call, |c| c.backup(endpoint, parts))?.path)
    }

    /// Replaces the component's bin/ (and taskmanager/ for a TaskManager) from a release: a local
    /// openmldb-X.Y.Z-linux directory or .tar.gz (staged on the host once, see release::stage), or
    /// one on the component's host. The release is checked on the host first (its
    /// bin/openmldb --version must run there); each directory is copied to <dir>.installing and
    /// then swapped in, so a failed copy never leaves a half-replaced bin/. A directory that
    /// already holds the release's version (shared with a component installed earlier) is left
    /// as it is; running components sharing it keep their pid files. The component must be
    /// stopped. Returns #{endpoint, host, path, dirs, version, skipped, shared_with, dry_run}.
    /// Changes the host: in --dry-run it prints what it would do and does nothing.
    ///
    /// Example: `component::install(ep, "/opt/openmldb-0.9.3-linux.tar.gz");`
    #[rhai_fn(volatile, return_raw)]
    pub fn install(ctx: NativeCallContext, endpoint: &str, release: &str) -> RhaiResultOf<Map> {
        let call = Call::new(&ctx, NS)?;
        let parts = default_parts(&call, endpoint)?;
        to_map(&with_control!(&call, |c| c.install(endpoint, release, parts))?)
    }

    /// Like install(endpoint, release) for the directories named in `what`: "bin", "taskmanager"
    /// or "bin,taskmanager". Changes the host: in --dry-run it prints what it would do and does
    /// nothing.
    ///
    /// Example: `component::install(tm, release, "bin,taskmanager");`
    #[rhai_fn(name = "install", volatile, return_raw)]
    pub fn install_parts(ctx: NativeCallContext, endpoint: &str, release: &str, what: &str) -> RhaiResultOf<Map> {
        let call = Call::new(&ctx, NS)?;
        let parts = Parts::parse(what).map_err(|e| call.fail(e))?;
        to_map(&with_control!(&call, |c| c.install(endpoint, release, parts))?)
    }

    /// Replaces a TaskManager's OpenMLDB Spark distribution at its spark.home (do this before
    /// replacing the TaskManager). `spark_dir` is a directory or .tgz on the host, or a local path.
    /// It must hold jars/openmldb-batch-*.jar. The old distribution is kept beside it; its path is in
    /// `previous`. Changes the host: in --dry-run it prints what it would do and does nothing.
    ///
    /// Example: `component::install_spark(tm, "/opt/spark-3.2.1-bin-openmldbspark-0.9.3");`
    #[rhai_fn(volatile, return_raw)]
    pub fn install_spark(ctx: NativeCallContext, endpoint: &str, spark_dir: &str) -> RhaiResultOf<Map> {
        let call = Call::new(&ctx, NS)?;
        to_map(&with_control!(&call, |c| c.install_spark(endpoint, spark_dir))?)
    }

    /// Puts back the Spark distribution component::install_spark replaced on a TaskManager (the
    /// one it kept beside spark.home); the replaced one is kept as <spark.home>.rolled-back-<time>.
    /// Returns the same map as install (`version` is the openmldb-batch version put back), or ()
    /// when no replacement is recorded. Changes the host: in --dry-run it prints what it would do.
    ///
    /// Example: `component::rollback_spark(tm);`
    #[rhai_fn(volatile, return_raw)]
    pub fn rollback_spark(ctx: NativeCallContext, endpoint: &str) -> RhaiResultOf<Dynamic> {
        let call = Call::new(&ctx, NS)?;
        let report = with_control!(&call, |c| c.rollback_spark(endpoint))?;
        report.map_or(Ok(Dynamic::UNIT), |r| to_map(&r).map(Dynamic::from))
    }

    /// The Spark replacement component::install_spark recorded for a TaskManager:
    /// #{spark_home, previous, previous_version}, or () when there is none.
    ///
    /// Example: `let swap = component::spark_replaced(tm);`
    #[rhai_fn(volatile, return_raw)]
    pub fn spark_replaced(ctx: NativeCallContext, endpoint: &str) -> RhaiResultOf<Dynamic> {
        let call = Call::new(&ctx, NS)?;
        let swap = with_control!(&call, |c| c.recorded::<SparkSwap>("spark", endpoint))?;
        swap.map_or(Ok(Dynamic::UNIT), |s| to_map(&s).map(Dynamic::from))
    }

    /// The TaskManager's Spark distribution: #{endpoint, host, home (spark.home, or SPARK_HOME
    /// from the cluster config when spark.home is empty, as an absolute path on its host),
    /// batch_version (of its jars/openmldb-batch-<version>.jar, "" when there is none)}.
    ///
    /// Example: `let spark = component::spark(tm); print(`${spark.home}/jars`);`
    #[rhai_fn(volatile, return_raw)]
    pub fn spark(ctx: NativeCallContext, endpoint: &str) -> RhaiResultOf<Map> {
        let call = Call::new(&ctx, NS)?;
        to_map(&with_control!(&call, |c| c.spark(endpoint))?)
    }

    /// The TaskManager's conf/taskmanager.properties as the TaskManager reads it
    /// (java.util.Properties: comments, `key = value`, continuations, the last definition
    /// wins): a map of every key to its value, exactly (trailing blanks kept). Reads only.
    ///
    /// Example: `let p = component::properties(tm); print(p["spark.master"] ?? "local[*]");`
    #[rhai_fn(volatile, return_raw)]
    pub fn properties(ctx: NativeCallContext, endpoint: &str) -> RhaiResultOf<Map> {
        let call = Call::new(&ctx, NS)?;
        to_map(&with_control!(&call, |c| c.properties(endpoint))?)
    }

    /// Sets a key in the TaskManager's conf/taskmanager.properties (used from its next start):
    /// the definition that counts is replaced in place with `key=value` (sed on the host), or the
    /// line appended; everything else in the file stays as it was. The old value is recorded
    /// first, for component::rollback_properties. Then the file is read again: unless `key`
    /// reads `value` and no other key changed, it throws. Returns #{endpoint, host, file, key,
    /// before, after, changed, note, dry_run} (`before` is () when the key was not set).
    /// Changes the host: in --dry-run it prints what it would do and does nothing.
    ///
    /// Example: `component::set_property(tm, "batchjob.jar.path", "hdfs://nn/openmldb/openmldb-batchjob-0.9.3.jar");`
    #[rhai_fn(volatile, return_raw)]
    pub fn set_property(ctx: NativeCallContext, endpoint: &str, key: &str, value: &str) -> RhaiResultOf<Map> {
        let call = Call::new(&ctx, NS)?;
        to_map(&with_control!(&call, |c| c.set_property(endpoint, key, value))?)
    }

    /// What component::set_property changed in the TaskManager's conf/taskmanager.properties
    /// and has not been put back: #{file, run, changes: [#{key, before, after}]}, or () when
    /// nothing is recorded.
    ///
    /// Example: `let edits = component::properties_changed(tm); if edits != () { print(edits.changes); }`
    #[rhai_fn(volatile, return_raw)]
    pub fn properties_changed(ctx: NativeCallContext, endpoint: &str) -> RhaiResultOf<Dynamic> {
        let call = Call::new(&ctx, NS)?;
        let edits = with_control!(&call, |c| c.recorded::<PropertyEdits>("properties", endpoint))?;
        edits.map_or(Ok(Dynamic::UNIT), |e| to_map(&e).map(Dynamic::from))
    }

    /// Puts back the values component::set_property replaced in the TaskManager's
    /// conf/taskmanager.properties, each edit checked the same way; a key changed by hand since
    /// is left as it is (its `note` says so). Returns one map per key, like set_property's (an
    /// empty array when nothing is recorded). Changes the host: in --dry-run it prints what it
    /// would do and does nothing.
    ///
    /// Example: `for change in component::rollback_properties(tm) { print(change.note); }`
    #[rhai_fn(volatile, return_raw)]
    pub fn rollback_properties(ctx: NativeCallContext, endpoint: &str) -> RhaiResultOf<Array> {
        let call = Call::new(&ctx, NS)?;
        to_array(with_control!(&call, |c| c.rollback_properties(endpoint))?)
    }

    /// Restores bin/ (and taskmanager/ for a TaskManager) from a directory made by
    /// component::backup, the same copy-then-swap way as install; a part that already holds the
    /// backup's version is left as it is. The component must be stopped.
    /// Returns the same map as install; `version` is the version restored. Changes the host: in
    /// --dry-run it prints what it would do and does nothing.
    ///
    /// Example: `component::rollback_install(ep, saved);`
    #[rhai_fn(volatile, return_raw)]
    pub fn rollback_install(ctx: NativeCallContext, endpoint: &str, backup_dir: &str) -> RhaiResultOf<Map> {
        let call = Call::new(&ctx, NS)?;
        to_map(&with_control!(&call, |c| c.rollback_install(endpoint, backup_dir))?)
    }

    /// One component as its host sees it, changing nothing: #{endpoint, role, host, dir,
    /// shared_with (endpoints running from the same directory), has_start_sh, running, pid,
    /// mon_pid, stale_pid_files (pid files pointing at an unrelated process), installed_version,
    /// running_version, binary_replaced (it runs a binary its directory no longer holds: restart
    /// it to run what is installed)}.
    ///
    /// Example: `let s = component::status(ep); if s.running_version != s.installed_version { print("restart it"); }`
    #[rhai_fn(volatile, return_raw)]
    pub fn status(ctx: NativeCallContext, endpoint: &str) -> RhaiResultOf<Map> {
        let call = Call::new(&ctx, NS)?;
        to_map(&with_control!(&call, |c| c.status(endpoint))?)
    }

    /// The endpoint of the active TaskManager, or "" when none of the configured ones is. The
    /// leader node in ZooKeeper holds server.host:server.port, which may be 0.0.0.0 or a host
    /// name: it is matched by port and address, and when that leaves several, by which one's
    /// process listens on its port.
    ///
    /// Example: `let active = component::active_taskmanager();`
    #[rhai_fn(volatile, return_raw)]
    pub fn active_taskmanager(ctx: NativeCallContext) -> RhaiResultOf<String> {
        let call = Call::new(&ctx, NS)?;
        Ok(with_control!(&call, |c| c.active_taskmanager())?.unwrap_or_default())
    }

    /// The version installed on the component's host: `bin/openmldb --version` as "X.Y.Z-hash",
    /// or for a TaskManager "X.Y.Z" from taskmanager/lib/openmldb-taskmanager-X.Y.Z.jar.
    ///
    /// Example: `print(component::installed_version(ep));`
    #[rhai_fn(volatile, return_raw)]
    pub fn installed_version(ctx: NativeCallContext, endpoint: &str) -> RhaiResultOf<String> {
        let call = Call::new(&ctx, NS)?;
        with_control!(&call, |c| c.installed_version(endpoint))
    }

    /// The version the running component reports: GET /version (tablet, nameserver, apiserver;
    /// ) or GetVersion's taskmanagerVersion (the active TaskManager), as "X.Y.Z-hash".
    /// Throws when it does not answer.
    ///
    /// Example: `if !component::running_version(ep).starts_with("0.9.3-") { throw "not upgraded"; }`
    #[rhai_fn(volatile, return_raw)]
    pub fn running_version(ctx: NativeCallContext, endpoint: &str) -> RhaiResultOf<String> {
        let call = Call::new(&ctx, NS)?;
        with_control!(&call, |c| c.running_version(endpoint))
    }
}

/// Runs `action` for every endpoint at the same time and waits for all of them; the error names
/// each endpoint that failed.
async fn all_of<'a, T, E, F, Fut>(endpoints: &'a [String], action: F) -> Result<Vec<T>, String>
where
    F: Fn(&'a str) -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
    E: std::fmt::Display,
{
    let results = futures::future::join_all(endpoints.iter().map(|ep| action(ep))).await;
    let mut done = Vec::new();
    let mut failed = Vec::new();
    for (ep, result) in endpoints.iter().zip(results) {
        match result {
            Ok(report) => done.push(report),
            Err(e) => failed.push(format!("{ep}: {e}")),
        }
    }
    match failed.len() {
        0 => Ok(done),
        1 => Err(failed.remove(0)),
        n => Err(format!("{n} of {} failed:\n{}", endpoints.len(), failed.join("\n"))),
    }
}

/// The component control of the call's cluster; `say` prints its progress lines.
fn control<'a>(call: &'a Call, say: &'a (dyn Fn(&str) + Send + Sync)) -> RhaiResultOf<Control<'a>> {
    call.host.control(&call.name, say).map_err(|e| call.error(e))
}

/// What the documented procedure replaces for the component's role.
fn default_parts(call: &Call, endpoint: &str) -> RhaiResultOf<Parts> {
    let role = call.config()?.component(endpoint).map(|c| c.role);
    Ok(role.map_or(Parts { bin: true, taskmanager: false }, Parts::default_for))
}
