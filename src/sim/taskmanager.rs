//! The TaskManager stand-in, started by `taskmanager/bin/taskmanager.sh` from inside
//! `taskmanager/bin` (O§1.2).
//!
//! # Configuration
//!
//! It reads `../conf/taskmanager.properties`, i.e. `taskmanager/conf/taskmanager.properties`:
//! the real one loads `taskmanager.properties` from its class path, whose first entry is
//! `taskmanager/conf/`, and start.sh copies the install's `conf/taskmanager.properties` there on
//! every start. The file is read like `java.util.Properties.load(InputStream)`
//! ([`load_properties`]): ISO 8859-1, `#`/`!` comment lines (so `sbin/deploy.sh`'s
//! `# key=value` leftovers are ignored), `=`, `:` or whitespace between key and value, escapes
//! and `\` line continuations, trailing blanks kept in values, and a later key replacing an
//! earlier one. [`TaskManagerConfig::from_properties`] applies `TaskManagerConfig.java`'s
//! defaults and checks in its order, with its messages (O§3.4); a bad config ends the start.
//!
//! # Election and serving (`FailoverWatcher.java`, `TaskManagerServer.java`, C§1.1, C§3.8)
//!
//! * The leader node `<zookeeper.root_path>/taskmanager/leader` is EPHEMERAL and holds
//!   `server.host + ":" + server.port` (`HostPort.getHostPort`) verbatim: `server.host`
//!   defaults to `0.0.0.0` only when the key is missing, so the template's `server.host=0.0.0.0`
//!   gives `0.0.0.0:9902`, and an empty `server.host=` gives `:9902`.
//! * A standby (the node exists) logs who is active and waits for the node to change, serving
//!   nothing: the RPC port opens only once it is the leader. If the node holds this process's
//!   own `host:port` ("master was restarted?"), it deletes the node and takes over at once.
//! * The RPC server binds `server.port` on **all interfaces, whatever `server.host` says**:
//!   `TaskManagerServer.startRpcServer` calls `new RpcServer(port, options)`, and brpc-java then
//!   binds the port alone (`CommunicationServer.start`: `bootstrap.bind(port)` when host is
//!   null). The simulator binds `0.0.0.0:<port>` (the JVM binds the dual-stack `::`).
//! * The active one answers `/openmldb.taskmanager.TaskManagerServer/GetVersion` with
//!   `taskmanagerVersion` and `batchVersion` (O§4.3). Versions come from the install, so
//!   replacing files changes them: `taskmanagerVersion` is the content of
//!   `../lib/openmldb-taskmanager-<ver>.jar` and `batchVersion` that of
//!   `<spark home>/jars/openmldb-batch-<ver>.jar` (placeholder files in sandbox releases whose
//!   names carry the version as the real jars' do).
//!
//! # Log
//!
//! Log lines go where the shipped `log4j.properties` sends them, in its layout (see
//! [`super::log4j`]): appended to `taskmanager/bin/logs/taskmanager.log` (relative to the
//! working directory) and copied to stdout. The messages and logger categories are the real
//! ones (`TaskManagerConfig`, `FailoverWatcher`, `TaskManagerServer`); a failed start ends with
//! `ERROR [...TaskManagerServer] - Fail to start TaskManager` and the exception line (or a
//! `FATAL [...FailoverWatcher]` line when ZooKeeper cannot be reached).
//!
//! An empty `batchjob.jar.path` is filled in as `BatchJobUtil.findLocalBatchJobJar` does
//! (`BatchJobUtil.scala` lines 33-70): the first `openmldb-batchjob*.jar` (not javadoc or
//! sources) in `../lib/`, then `./openmldb-batchjob/target/`, then
//! `openmldb-taskmanager/src/test/resources/`; none fails the start with
//! `java.io.IOException: Fail to find default batch job jar`. A set value is taken as it is
//! (the real one does not look at it before a job runs, so a YARN `hdfs://` path is fine).
//!
//! Simplifications: no offline jobs, job tracker or UDF handling; no ZooKeeper reconnect thread
//! after a session expiry; the config print is sorted by key (Java prints hash order); when a
//! directory holds several batch-job jars the first by name is taken (Java takes the first
//! `File.listFiles` returns, in no specified order); a start failure exits 1 (the JVM ends 0
//! when `main` returns or `System.exit(0)` is called).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hyper::StatusCode;
use serde_json::json;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use zookeeper_client as zk;

use super::flags::SimFlags;
use super::log4j::{Level, Log4j};
use super::rest::{self, Handler, Reply};
use super::zk::Zk;

/// Logger categories (`%c`): the classes that log.
pub const CONFIG_LOGGER: &str = "com._4paradigm.openmldb.taskmanager.config.TaskManagerConfig";
pub const WATCHER_LOGGER: &str = "com._4paradigm.openmldb.taskmanager.zk.FailoverWatcher";
pub const SERVER_LOGGER: &str = "com._4paradigm.openmldb.taskmanager.server.TaskManagerServer";

/// Why the TaskManager did not start, as the Java exception it would be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigError {
    /// `new ConfigException(config, message)`.
    Config { key: &'static str, message: String },
    /// `Integer.parseInt` on a value that is not an int.
    NumberFormat { input: String },
    /// `java.io.IOException` from `BatchJobUtil.findLocalBatchJobJar`.
    Io { message: String },
}

impl ConfigError {
    fn config(key: &'static str, message: impl Into<String>) -> Self {
        ConfigError::Config { key, message: message.into() }
    }
}

impl std::fmt::Display for ConfigError {
    /// The exception's `toString()`, the line log4j prints under the failure.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConfigError::Config { key, message } => write!(
                f,
                "com._4paradigm.openmldb.taskmanager.config.ConfigException: Error of config '{key}': {message}"
            ),
            ConfigError::NumberFormat { input } => {
                write!(f, "java.lang.NumberFormatException: For input string: \"{input}\"")
            }
            ConfigError::Io { message } => write!(f, "java.io.IOException: {message}"),
        }
    }
}

impl std::error::Error for ConfigError {}

/// The keys the stand-in uses, after `TaskManagerConfig.init()`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskManagerConfig {
    /// `server.host` as written (may be empty); only ever written to ZooKeeper.
    pub host: String,
    pub port: u16,
    pub worker_threads: i32,
    pub zk_cluster: String,
    pub zk_root_path: String,
    pub zk_session_timeout: Duration,
    pub zk_cert: Option<String>,
    pub spark_home: PathBuf,
    /// Set when `spark.home` came from `SPARK_HOME`.
    pub spark_home_from_env: bool,
    pub spark_master: String,
    pub job_log_path: String,
    pub external_function_dir: String,
    /// Every property after defaults, as `TaskManagerConfig.print()` logs them.
    pub properties: BTreeMap<String, String>,
}

/// `java.util.Properties.load(InputStream)`: the bytes are ISO 8859-1.
pub fn load_properties(bytes: &[u8]) -> BTreeMap<String, String> {
    let text: String = bytes.iter().map(|&b| char::from(b)).collect();
    parse_properties(&text)
}

/// `java.util.Properties.load`'s grammar on text; a later key replaces an earlier one.
pub fn parse_properties(text: &str) -> BTreeMap<String, String> {
    let is_blank = |c: char| c == ' ' || c == '\t' || c == '\x0c';
    // Line terminators: `\n`, `\r` or `\r\n`.
    let text = text.replace("\r\n", "\n");
    let natural: Vec<&str> = text.split(['\n', '\r']).collect();
    let mut props = BTreeMap::new();
    let mut i = 0;
    while i < natural.len() {
        let first = natural[i].trim_start_matches(is_blank);
        i += 1;
        if first.is_empty() || first.starts_with('#') || first.starts_with('!') {
            continue;
        }
        // A line ending in an odd number of backslashes continues on the next one, whose
        // leading blanks are dropped.
        let mut logical = String::new();
        let mut part = first;
        loop {
            let trailing = part.len() - part.trim_end_matches('\\').len();
            if trailing % 2 == 0 {
                logical.push_str(part);
                break;
            }
            logical.push_str(&part[..part.len() - 1]);
            if i >= natural.len() {
                break;
            }
            part = natural[i].trim_start_matches(is_blank);
            i += 1;
        }
        let (key, value) = split_key_value(&logical, is_blank);
        props.insert(unescape(key), unescape(value));
    }
    props
}

/// The key ends at the first unescaped `=`, `:` or blank; blanks and one `=`/`:` follow it.
fn split_key_value(line: &str, is_blank: impl Fn(char) -> bool) -> (&str, &str) {
    let mut escaped = false;
    let mut key_end = line.len();
    let mut separator = false;
    for (at, c) in line.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == '=' || c == ':' || is_blank(c) {
            key_end = at;
            separator = c == '=' || c == ':';
            break;
        }
    }
    let mut rest = line.get(key_end..).unwrap_or_default();
    if !rest.is_empty() {
        rest = &rest[1..];
    }
    rest = rest.trim_start_matches(&is_blank);
    if !separator && (rest.starts_with('=') || rest.starts_with(':')) {
        rest = rest[1..].trim_start_matches(&is_blank);
    }
    (&line[..key_end], rest)
}

/// `Properties.loadConvert`: `\uXXXX`, `\t`, `\n`, `\r`, `\f`, and `\x` for any other x.
fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('u') => {
                let hex: String = chars.by_ref().take(4).collect();
                if let Some(decoded) = u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32) {
                    out.push(decoded);
                }
            }
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('f') => out.push('\x0c'),
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

/// `Integer.parseInt`: an optional sign and decimal digits within the int range.
fn java_int(text: &str) -> Result<i32, ConfigError> {
    let digits = text.strip_prefix(['+', '-']).unwrap_or(text);
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
        return Err(ConfigError::NumberFormat { input: text.to_string() });
    }
    text.parse::<i32>().map_err(|_| ConfigError::NumberFormat { input: text.to_string() })
}

impl TaskManagerConfig {
    /// `TaskManagerConfig.init()` on loaded properties, in its order and with its messages
    /// (O§3.4); `env` reads environment variables (`SPARK_HOME`, `HADOOP_CONF_DIR`) and
    /// `local_batchjob_jar` is `BatchJobUtil.findLocalBatchJobJar` ([`find_local_batchjob_jar`]).
    pub fn from_properties(
        loaded: &BTreeMap<String, String>,
        env: &dyn Fn(&str) -> Option<String>,
        local_batchjob_jar: &dyn Fn() -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let mut p = loaded.clone();
        let default = |p: &mut BTreeMap<String, String>, key: &str, value: &str| {
            p.entry(key.to_string()).or_insert_with(|| value.to_string());
        };
        let int = |p: &BTreeMap<String, String>, key: &str| java_int(p.get(key).map(String::as_str).unwrap_or(""));
        let positive = |p: &mut BTreeMap<String, String>, key: &'static str, value: &str| {
            p.entry(key.to_string()).or_insert_with(|| value.to_string());
            let n = java_int(&p[key])?;
            if n <= 0 {
                return Err(ConfigError::config(key, "should be larger than 0"));
            }
            Ok(n)
        };
        // `server.host will be used by RunBatchSql, it's not good to be null`
        default(&mut p, "server.host", "0.0.0.0");
        default(&mut p, "server.port", "9902");
        let port = int(&p, "server.port")?;
        if !(1..=65535).contains(&port) {
            return Err(ConfigError::config("server.port", "invalid port, should be in range of 1 through 65535"));
        }
        let worker_threads = positive(&mut p, "server.worker_threads", "16")?;
        positive(&mut p, "server.io_threads", "4")?;
        positive(&mut p, "server.channel_keep_alive_time", "1800")?;
        default(&mut p, "zookeeper.session_timeout", "5000");
        default(&mut p, "user", "root");
        default(&mut p, "password", "");
        let session_timeout = int(&p, "zookeeper.session_timeout")?;
        if session_timeout <= 0 {
            return Err(ConfigError::config("zookeeper.session_timeout", "should be larger than 0"));
        }
        if !p.contains_key("zookeeper.cluster") {
            // Sic: the real code sets an empty key here, and the check below fails anyway.
            p.insert(String::new(), String::new());
        }
        let zk_cluster = p.get("zookeeper.cluster").cloned().unwrap_or_default();
        if zk_cluster.is_empty() {
            return Err(ConfigError::config("zookeeper.cluster", "should not be empty"));
        }
        positive(&mut p, "zookeeper.connection_timeout", "5000")?;
        positive(&mut p, "zookeeper.base_sleep_time", "1000")?;
        positive(&mut p, "zookeeper.max_retries", "10")?;
        positive(&mut p, "zookeeper.max_connect_waitTime", "30000")?;
        let master = p.get("spark.master").map(|m| m.to_lowercase()).unwrap_or_else(|| "local[*]".to_string());
        p.insert("spark.master".into(), master.clone());
        if !master.starts_with("local")
            && !["yarn", "yarn-cluster", "yarn-client", "k8s", "kubernetes"].contains(&master.as_str())
        {
            return Err(ConfigError::config(
                "spark.master",
                "should be local, yarn, yarn-cluster, yarn-client, k8s or kubernetes",
            ));
        }
        let yarn = master.starts_with("yarn");
        let k8s = master == "k8s" || master == "kubernetes";
        default(&mut p, "spark.yarn.jars", "");
        if yarn && p["spark.yarn.jars"].starts_with("file://") {
            return Err(ConfigError::config("spark.yarn.jars", "should not use local filesystem for yarn mode"));
        }
        let spark_home_missing =
            || ConfigError::config("spark.home", "should set config 'spark.home' or environment variable 'SPARK_HOME'");
        let mut spark_home_from_env = false;
        if p.get("spark.home").is_none_or(String::is_empty) {
            let from_env = env("SPARK_HOME").ok_or_else(spark_home_missing)?;
            spark_home_from_env = true;
            p.insert("spark.home".into(), from_env);
        }
        let spark_home = p["spark.home"].clone();
        if spark_home.is_empty() {
            return Err(spark_home_missing());
        }
        let prefetch = {
            default(&mut p, "prefetch.jobid.num", "1");
            int(&p, "prefetch.jobid.num")?
        };
        if prefetch < 1 {
            return Err(ConfigError::config("prefetch.jobid.num", "should be larger or equal to 1"));
        }
        default(&mut p, "job.log.path", "../log/");
        let job_log_path = p["job.log.path"].clone();
        if job_log_path.starts_with("hdfs") || job_log_path.starts_with("s3") {
            return Err(ConfigError::config("job.log.path", "only support local filesystem"));
        }
        default(&mut p, "external.function.dir", "./udf/");
        let external_function_dir = p["external.function.dir"].clone();
        default(&mut p, "track.unfinished.jobs", "true");
        positive(&mut p, "job.tracker.interval", "30")?;
        default(&mut p, "spark.default.conf", "");
        for conf in p["spark.default.conf"].split(';').filter(|c| !c.is_empty()) {
            let kv: Vec<&str> = conf.split('=').filter(|s| !s.is_empty()).collect();
            if kv.len() < 2 {
                return Err(ConfigError::config("spark.default.conf", format!("error format of {conf}")));
            }
            if !kv[0].starts_with("spark") {
                return Err(ConfigError::config(
                    "spark.default.conf",
                    format!("config key should start with 'spark' but get {}", kv[0]),
                ));
            }
        }
        default(&mut p, "spark.eventLog.dir", "");
        if yarn && p["spark.eventLog.dir"].starts_with("file://") {
            return Err(ConfigError::config("spark.eventLog.dir", "should not use local filesystem for yarn mode"));
        }
        positive(&mut p, "spark.yarn.maxAppAttempts", "1")?;
        default(&mut p, "offline.data.prefix", "file:///tmp/openmldb_offline_storage/");
        let prefix = &p["offline.data.prefix"];
        if prefix.is_empty() {
            return Err(ConfigError::config("offline.data.prefix", "should not be null"));
        }
        if (yarn || k8s) && prefix.starts_with("file://") {
            return Err(ConfigError::config(
                "offline.data.prefix",
                "should not use local filesystem for yarn mode or k8s mode",
            ));
        }
        if p.get("batchjob.jar.path").is_none_or(String::is_empty) {
            let found = local_batchjob_jar()
                .ok_or_else(|| ConfigError::Io { message: "Fail to find default batch job jar".into() })?;
            p.insert("batchjob.jar.path".into(), found);
        }
        let hadoop_conf =
            p.get("hadoop.conf.dir").cloned().filter(|d| !d.is_empty()).or_else(|| env("HADOOP_CONF_DIR"));
        if yarn && hadoop_conf.as_deref().is_none_or(str::is_empty) {
            return Err(ConfigError::config(
                "hadoop.conf.dir",
                "should set config 'hadoop.conf.dir' or environment variable 'HADOOP_CONF_DIR'",
            ));
        }
        if let Some(dir) = hadoop_conf {
            p.insert("hadoop.conf.dir".into(), dir);
        }
        let timeout_ms = u64::try_from(session_timeout).unwrap_or(5000);
        Ok(TaskManagerConfig {
            host: p["server.host"].clone(),
            port: u16::try_from(port).unwrap_or(9902),
            worker_threads,
            zk_cluster,
            zk_root_path: p.get("zookeeper.root_path").cloned().unwrap_or_else(|| "/openmldb".to_string()),
            zk_session_timeout: Duration::from_millis(timeout_ms),
            zk_cert: p.get("zookeeper.cert").cloned().filter(|c| !c.is_empty()),
            spark_home: PathBuf::from(spark_home),
            spark_home_from_env,
            spark_master: master,
            job_log_path,
            external_function_dir,
            properties: p,
        })
    }

    /// `HostPort.getHostPort()`: what the leader node holds.
    pub fn host_port(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// `TaskManagerConfig.print()`'s text.
    pub fn print(&self) -> String {
        let mut text = String::from("Final TaskManager config: \n");
        for (key, value) in &self.properties {
            let _ = writeln!(text, "{key} = {value}");
        }
        text
    }

    /// Creates `job.log.path` and `external.function.dir` under `cwd` when missing, logging it.
    fn create_dirs(&self, cwd: &Path, log: &Log4j) -> Result<(), ConfigError> {
        let dirs = [
            (&self.job_log_path, "The log path does not exist, try to create directory: ", "fail to create log path: "),
            (
                &self.external_function_dir,
                "The external function dir does not exist, try to create directory: ",
                "fail to create external function path: ",
            ),
        ];
        for (dir, creating, failed) in dirs {
            let path = cwd.join(dir);
            if !path.exists() {
                log.log(Level::Info, CONFIG_LOGGER, &format!("{creating}{dir}"));
                if std::fs::create_dir_all(&path).is_err() {
                    // Sic: both failures name job.log.path.
                    return Err(ConfigError::config("job.log.path", format!("{failed}{dir}")));
                }
            }
        }
        Ok(())
    }
}

/// `BatchJobUtil.findLocalBatchJobJar` run from `bin_dir`: the absolute path (as
/// `File.getAbsolutePath` gives it, not normalised) of the first batch-job jar in `../lib/`,
/// `./openmldb-batchjob/target/` or `openmldb-taskmanager/src/test/resources/`.
pub fn find_local_batchjob_jar(bin_dir: &Path) -> Option<String> {
    let is_batchjob_jar = |name: &str| {
        name.starts_with("openmldb-batchjob")
            && name.ends_with(".jar")
            && !name.contains("javadoc")
            && !name.contains("sources")
    };
    ["../lib/", "./openmldb-batchjob/target/", "openmldb-taskmanager/src/test/resources/"].iter().find_map(|dir| {
        let dir = bin_dir.join(dir);
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .ok()?
            .filter_map(Result::ok)
            .filter(|e| std::fs::metadata(e.path()).is_ok_and(|m| m.is_file()))
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| is_batchjob_jar(n))
            .collect();
        names.sort();
        names.first().map(|n| dir.join(n).display().to_string())
    })
}

/// Content of the first file in `dir` named `<prefix><version>.jar`.
pub fn jar_version(dir: &Path, prefix: &str) -> Option<String> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(prefix) && n.ends_with(".jar"))
        })
        .collect();
    names.sort();
    let path = names.first()?;
    let content = std::fs::read_to_string(path).ok()?;
    Some(content.trim().to_string())
}

/// How a start failed: the log line and the exception under it.
#[derive(Debug)]
struct Failure {
    level: Level,
    category: &'static str,
    message: String,
    throwable: String,
}

impl Failure {
    /// `TaskManagerServer.main`'s catch.
    fn start(throwable: impl std::fmt::Display) -> Failure {
        Failure {
            level: Level::Error,
            category: SERVER_LOGGER,
            message: "Fail to start TaskManager".into(),
            throwable: throwable.to_string(),
        }
    }
}

/// Runs the TaskManager from `taskmanager/bin` (the working directory) until `shutdown`,
/// logging to `./logs/taskmanager.log` there. The error is the failure's exception text.
pub async fn run_taskmanager(bin_dir: &Path, shutdown: CancellationToken) -> Result<(), String> {
    let log = Log4j::open(bin_dir);
    match run(bin_dir, &log, shutdown).await {
        Ok(()) => Ok(()),
        Err(failure) => {
            log.log_throwable(failure.level, failure.category, &failure.message, &failure.throwable);
            Err(failure.throwable)
        }
    }
}

/// A start refused before anything runs (a `--broken` sandbox release), logged as the
/// TaskManager logs a failed start.
pub fn log_start_failure(bin_dir: &Path, reason: &str) {
    Log4j::open(bin_dir).log_throwable(Level::Error, SERVER_LOGGER, "Fail to start TaskManager", reason);
}

async fn run(bin_dir: &Path, log: &Log4j, shutdown: CancellationToken) -> Result<(), Failure> {
    let properties_path = bin_dir.join("../conf/taskmanager.properties");
    let bytes = std::fs::read(&properties_path).map_err(|e| {
        Failure::start(format!(
            "com._4paradigm.openmldb.taskmanager.config.ConfigException: cannot read {}: {e}",
            properties_path.display()
        ))
    })?;
    let config = TaskManagerConfig::from_properties(&load_properties(&bytes), &|key| std::env::var(key).ok(), &|| {
        find_local_batchjob_jar(bin_dir)
    })
    .map_err(Failure::start)?;
    if config.spark_home_from_env {
        log.log(
            Level::Info,
            CONFIG_LOGGER,
            &format!("Use SPARK_HOME from environment variable: {}", config.spark_home.display()),
        );
    }
    config.create_dirs(bin_dir, log).map_err(Failure::start)?;
    log.log(Level::Info, CONFIG_LOGGER, &config.print());
    let tm_version = jar_version(&bin_dir.join("../lib"), "openmldb-taskmanager-")
        .ok_or_else(|| Failure::start("java.io.FileNotFoundException: no openmldb-taskmanager-*.jar in ../lib"))?;

    let host_port = config.host_port();
    let base = format!("{}/taskmanager", config.zk_root_path);
    let leader = format!("{base}/leader");
    // `FailoverWatcher()`: connect, then create the base znodes or exit.
    log.log(Level::Info, WATCHER_LOGGER, &format!("Connecting ZooKeeper {}", config.zk_cluster));
    let flags = SimFlags {
        zk_cluster: config.zk_cluster.clone(),
        zk_root_path: config.zk_root_path.clone(),
        zk_session_timeout: config.zk_session_timeout,
        zk_cert: config.zk_cert.clone(),
        ..SimFlags::default()
    };
    let cannot_create = |cause: String| Failure {
        level: Level::Fatal,
        category: WATCHER_LOGGER,
        message: format!("Error to create znode {base}, exit immediately"),
        throwable: cause,
    };
    let zk = Zk::connect(&flags).await.map_err(|e| cannot_create(e.to_string()))?;
    log.log(Level::Info, WATCHER_LOGGER, &format!("{host_port} sync connect from ZooKeeper"));
    log.log(
        Level::Info,
        WATCHER_LOGGER,
        &format!("{host_port} init ZooKeeper object successfully, session id is 0x{:x}", zk.client().session_id().0),
    );
    zk.mkdir(&base).await.map_err(|e| cannot_create(e.to_string()))?;

    log.log(Level::Info, SERVER_LOGGER, "The server runs and prepares for leader election");
    if block_until_active(&zk, &leader, &host_port, log, &shutdown).await {
        log.log(Level::Info, SERVER_LOGGER, "The server becomes active master and prepare to do business logic");
        // brpc-java binds the port on every interface: `new RpcServer(port, options)`.
        let listener = TcpListener::bind(("0.0.0.0", config.port))
            .await
            .map_err(|e| Failure::start(format!("java.net.BindException: {e}")))?;
        log.log(
            Level::Info,
            SERVER_LOGGER,
            &format!("Start TaskManager on {} with worker thread number {}", config.port, config.worker_threads),
        );
        let spark_jars = config.spark_home.join("jars");
        rest::serve(listener, version_handler(tm_version, spark_jars), shutdown).await;
    }
    log.log(Level::Info, SERVER_LOGGER, "The server exits after running business logic");
    drop(zk);
    Ok(())
}

/// `FailoverWatcher.blockUntilActive`: true once this process holds the leader node, false
/// on shutdown or an unexpected ZooKeeper error.
async fn block_until_active(zk: &Zk, leader: &str, me: &str, log: &Log4j, shutdown: &CancellationToken) -> bool {
    loop {
        match zk.create(leader, me, zk::CreateMode::Ephemeral).await {
            Ok(_) => {
                log.log(Level::Info, WATCHER_LOGGER, &format!("Become active master in {me}"));
                return true;
            }
            Err(zk::Error::NodeExists) => {}
            Err(e) => {
                log.log_throwable(
                    Level::Error,
                    WATCHER_LOGGER,
                    "Received an unexpected KeeperException when block to become active, aborting",
                    &format!("org.apache.zookeeper.KeeperException: {e}"),
                );
                return false;
            }
        }
        let (message, watcher) = match zk.client().get_and_watch_data(leader).await {
            Ok((data, _, watcher)) => {
                let active = String::from_utf8_lossy(&data).to_string();
                if active == me {
                    // Hurry along the expiration of our own previous node.
                    let _ = zk.delete(leader).await;
                    (
                        format!("Current master has this master's address, {me}; master was restarted? Deleting node."),
                        None,
                    )
                } else {
                    (
                        format!(
                            "Another master {active} is the active master, {me}; waiting to become the next active master"
                        ),
                        Some(watcher),
                    )
                }
            }
            Err(zk::Error::NoNode) => (
                "A master was detected, but went down before its address could be read.  \
                 Attempting to become the next active master"
                    .to_string(),
                None,
            ),
            Err(e) => {
                log.log_throwable(
                    Level::Error,
                    WATCHER_LOGGER,
                    "Received an unexpected KeeperException when block to become active, aborting",
                    &format!("org.apache.zookeeper.KeeperException: {e}"),
                );
                return false;
            }
        };
        log.log(Level::Info, WATCHER_LOGGER, &message);
        if let Some(watcher) = watcher {
            // Wait for the node to change (deleted when the active one's session ends); the
            // timeout only guards against a lost watch.
            tokio::select! {
                _ = shutdown.cancelled() => return false,
                _ = watcher.changed() => {}
                _ = tokio::time::sleep(Duration::from_secs(5)) => {}
            }
        } else if shutdown.is_cancelled() {
            return false;
        }
    }
}

fn version_handler(tm_version: String, spark_jars: PathBuf) -> Handler {
    Arc::new(move |_method, path, _body| {
        let (tm_version, spark_jars) = (tm_version.clone(), spark_jars.clone());
        Box::pin(async move {
            match path.trim_end_matches('/') {
                "/openmldb.taskmanager.TaskManagerServer/GetVersion" | "/TaskManagerServer/GetVersion" => {
                    let batch = jar_version(&spark_jars, "openmldb-batch-").unwrap_or_else(|| "unknown".into());
                    Reply::json(&json!({
                        "code": 0, "msg": "ok", "taskmanagerVersion": tm_version, "batchVersion": batch
                    }))
                }
                other => Reply::text(StatusCode::NOT_FOUND, format!("Fail to find method on `{other}'")),
            }
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(text: &str) -> BTreeMap<String, String> {
        parse_properties(text)
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn a_lib_jar() -> Option<String> {
        Some("/tm/bin/../lib/openmldb-batchjob-0.9.3.jar".into())
    }

    fn config(text: &str) -> Result<TaskManagerConfig, ConfigError> {
        TaskManagerConfig::from_properties(&props(text), &no_env, &a_lib_jar)
    }

    #[test]
    fn reads_template_keys_o3_4() {
        let c =
            config("# c\nserver.host=127.0.0.8\nserver.port = 9902\nzookeeper.cluster=127.0.0.1:2181\nspark.home=/s\n")
                .unwrap();
        assert_eq!((c.host.as_str(), c.port, c.spark_master.as_str()), ("127.0.0.8", 9902, "local[*]"));
        assert_eq!(c.spark_home, PathBuf::from("/s"));
        assert_eq!((c.job_log_path.as_str(), c.worker_threads), ("../log/", 16));
    }

    /// `TaskManagerConfig.java`: `server.host` defaults to 0.0.0.0 only when the key is
    /// missing; `HostPort.getHostPort()` is `host + ":" + port`.
    #[test]
    fn server_host_default_and_leader_value_task_manager_config_java() {
        let base = "zookeeper.cluster=z:1\nspark.home=/s\n";
        assert_eq!(config(base).unwrap().host_port(), "0.0.0.0:9902");
        assert_eq!(config(&format!("{base}server.host=\nserver.port=+0030002\n")).unwrap().host_port(), ":30002");
        assert_eq!(config(&format!("{base}server.host=tm-1.example\n")).unwrap().host_port(), "tm-1.example:9902");
    }

    #[test]
    fn rejects_invalid_config_like_the_real_one_o3_4() {
        let base = "zookeeper.cluster=z:1\nspark.home=/s\n";
        let err = config(&format!("{base}spark.master=mesos")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "com._4paradigm.openmldb.taskmanager.config.ConfigException: Error of config 'spark.master': \
             should be local, yarn, yarn-cluster, yarn-client, k8s or kubernetes"
        );
        let yarn = format!(
            "{base}spark.master=YARN\nspark.yarn.jars=file:///x/*\noffline.data.prefix=hdfs:///o\nhadoop.conf.dir=/h\n"
        );
        assert!(config(&yarn).unwrap_err().to_string().contains("'spark.yarn.jars'"));
        let kubernetes = format!("{base}spark.master=kubernetes\n");
        assert!(config(&kubernetes).unwrap_err().to_string().contains("'offline.data.prefix'"));
        let yarn_no_hadoop = format!("{base}spark.master=yarn\noffline.data.prefix=hdfs:///o\n");
        assert!(config(&yarn_no_hadoop).unwrap_err().to_string().contains("'hadoop.conf.dir'"));
        assert!(config("zookeeper.cluster=z:1\n").unwrap_err().to_string().contains("'spark.home'"));
        let from_env = TaskManagerConfig::from_properties(
            &props("zookeeper.cluster=z:1\n"),
            &|k| (k == "SPARK_HOME").then(|| "/env/spark".to_string()),
            &a_lib_jar,
        )
        .unwrap();
        assert!(from_env.spark_home_from_env && from_env.spark_home == Path::new("/env/spark"));
        assert_eq!(
            config(&format!("{base}server.port=")).unwrap_err(),
            ConfigError::NumberFormat { input: String::new() }
        );
        assert!(config(&format!("{base}server.port=70000")).unwrap_err().to_string().contains("1 through 65535"));
        assert!(config(&format!("{base}server.port=0")).is_err());
        assert!(config(&format!("{base}zookeeper.session_timeout=-1")).is_err());
        assert!(config("spark.home=/s\n")
            .unwrap_err()
            .to_string()
            .contains("'zookeeper.cluster': should not be empty"));
    }

    /// YARN mode as the docs set it up (`docs/en/deploy/conf.md`, yarn section): HDFS paths for
    /// the Spark jars, the batch-job jar and the offline data, a Hadoop conf dir. A set
    /// batchjob.jar.path is taken as it is; an empty one is looked up in the install, and a
    /// start without one fails (BatchJobUtil.findLocalBatchJobJar).
    #[test]
    fn yarn_config_and_the_batchjob_jar_lookup_batch_job_util_scala() {
        let yarn = "zookeeper.cluster=z:1\nspark.home=/s\nspark.master=yarn\nhadoop.conf.dir=/etc/hadoop\n\
                    spark.yarn.jars=hdfs://nn/openmldb/jars/*\noffline.data.prefix=hdfs://nn/openmldb/offline/\n\
                    batchjob.jar.path=hdfs://nn/openmldb/openmldb-batchjob-0.9.2.jar\n";
        let c = TaskManagerConfig::from_properties(&props(yarn), &no_env, &|| None).unwrap();
        assert_eq!(c.properties["batchjob.jar.path"], "hdfs://nn/openmldb/openmldb-batchjob-0.9.2.jar");
        assert_eq!(c.spark_master, "yarn");
        let local = "zookeeper.cluster=z:1\nspark.home=/s\nbatchjob.jar.path=\n";
        assert_eq!(config(local).unwrap().properties["batchjob.jar.path"], a_lib_jar().unwrap());
        let err = TaskManagerConfig::from_properties(&props(local), &no_env, &|| None).unwrap_err();
        assert_eq!(err.to_string(), "java.io.IOException: Fail to find default batch job jar");

        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("taskmanager/bin");
        let lib = dir.path().join("taskmanager/lib");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::create_dir_all(&lib).unwrap();
        assert_eq!(find_local_batchjob_jar(&bin), None);
        for name in
            ["openmldb-batchjob-0.9.3-sources.jar", "openmldb-taskmanager-0.9.3.jar", "openmldb-batchjob-0.9.3.jar"]
        {
            std::fs::write(lib.join(name), "").unwrap();
        }
        assert_eq!(
            find_local_batchjob_jar(&bin),
            Some(bin.join("../lib/openmldb-batchjob-0.9.3.jar").display().to_string())
        );
    }

    /// `java.util.Properties.load`: comments, separators, escapes, continuations, last wins
    /// (what `sbin/deploy.sh`'s commented-out keys rely on, O§2.4).
    #[test]
    fn java_properties_grammar_and_later_keys_win() {
        let p = props(
            "server.port=9902\n# server.port=1\n  ! server.host=bad\nserver.port=30002\n\
             server.host 127.0.0.5\nzookeeper.cluster : z1:2181,\\\n    z2:2181\r\n\
             spark.home=/opt/spark  \nkey\\=with\\:sep=v\\u0041\\t\nempty\n",
        );
        assert_eq!(p["server.port"], "30002");
        assert_eq!(p["server.host"], "127.0.0.5");
        assert_eq!(p["zookeeper.cluster"], "z1:2181,z2:2181");
        assert_eq!(p["spark.home"], "/opt/spark  ", "trailing blanks stay in the value");
        assert_eq!(p["key=with:sep"], "vA\t");
        assert_eq!(p["empty"], "");
        assert_eq!(p.len(), 6, "{p:?}");
        assert_eq!(load_properties(b"a=\xe9\n")["a"], "\u{e9}", "ISO 8859-1");
    }
}
