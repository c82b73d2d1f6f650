//! gflags-style command line of `bin/openmldb`, as far as the simulator needs it.
//!
//! `--flagfile=conf/<role>.flags` is read first (lines `--key=value`, `#` comments, blank
//! lines); flags given on the command line override it whatever their position (gflags
//! applies the flagfile where it appears, but start.sh only ever passes
//! `--flagfile=... --enable_status_service=true`, O§1.2, so "command line wins" is what
//! matters). Unknown flags are accepted and ignored: real flagfiles carry many flags the
//! simulator has no use for. Defaults are those of `src/flags.cc` (C§7).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum FlagsError {
    #[error("cannot read flagfile {path}: {source}")]
    Flagfile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("flag --{name}: cannot parse {value:?} as {kind}")]
    BadValue { name: String, value: String, kind: &'static str },
    #[error("--role must be nameserver or tablet, not {0:?}")]
    BadRole(String),
    #[error("--endpoint is required")]
    MissingEndpoint,
    #[error("--zk_cluster is required")]
    MissingZkCluster,
}

/// The component a process plays (`--role`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    NameServer,
    Tablet,
    /// The REST APIServer (`--role=apiserver`, O§3.3).
    ApiServer,
}

/// The command-line clients of `bin/openmldb` (`--role=ns_client|client|sql_client`, C§5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CliRole {
    NsClient,
    Client,
    SqlClient,
}

/// Every flag the simulator honours, with OpenMLDB's defaults (C§7).
#[derive(Debug, Clone)]
pub struct SimFlags {
    pub role: Option<Role>,
    pub endpoint: String,
    pub zk_cluster: String,
    pub zk_root_path: String,
    pub zk_session_timeout: Duration,
    /// `user:password` for ZooKeeper digest auth (C§1.1 "ACL").
    pub zk_cert: Option<String>,
    /// `--use_name`: the server is known by the name in `<data_dir>/name.txt` ([`super::names`]).
    pub use_name: bool,
    /// `--data_dir` (default `./data`), where `name.txt` lives.
    pub data_dir: PathBuf,
    /// `--port`: with an empty `--endpoint`, the server listens on `<local ip>:<port>`.
    pub port: u16,
    /// Simulator-only `--sim_local_ip`: the address `GetLocalIp` would find ([`super::names`]).
    pub sim_local_ip: Option<String>,
    /// Simulator-only `--sim_missing_methods` (comma-separated): RPCs the server answers as a
    /// build without them would ("Fail to find method", HTTP 404), to rehearse a cluster whose
    /// servers lack a method the tool can do without.
    pub sim_missing_methods: Vec<String>,
    /// Not a flag: the `ip:port` the server listens on when `--endpoint` was empty and `--port`
    /// given (`GetRealEndpoint`); empty otherwise. Set by [`SimFlags::apply_real_endpoint`].
    pub real_endpoint: String,
    pub zk_keep_alive_check_interval: Duration,
    /// `--db_root_path` (default `/tmp/`): where kMemory replicas live; a comma-separated list
    /// of disks, empty pieces dropped (`base::SplitString`, `TabletImpl::Init`,
    /// `src/tablet/tablet_impl.cc:190`). Relative paths resolve against the working directory.
    pub db_root_path: Vec<PathBuf>,
    /// `--ssd_root_path` / `--hdd_root_path` (default empty: no root for kSSD / kHDD tables,
    /// `src/flags.cc:122-123`), lists like `db_root_path`.
    pub ssd_root_path: Vec<PathBuf>,
    pub hdd_root_path: Vec<PathBuf>,
    /// `--recycle_bin_root_path` (default `/tmp/recycle`), `--recycle_bin_ssd_root_path`,
    /// `--recycle_bin_hdd_root_path` (default empty) and `--recycle_bin_enabled` (default true,
    /// `src/flags.cc:148-151`): where DropTable and DeleteBinlog move a replica's files.
    pub recycle_bin_root_path: Vec<PathBuf>,
    pub recycle_bin_ssd_root_path: Vec<PathBuf>,
    pub recycle_bin_hdd_root_path: Vec<PathBuf>,
    pub recycle_bin_enabled: bool,
    /// `--make_snapshot_time` (default 23, `src/flags.cc:134`): the local hour in which the
    /// tablet snapshots its replicas; outside 0..=23 the tablet does not start.
    pub make_snapshot_time: i64,
    /// `--make_snapshot_check_interval` (default 10 min, `src/flags.cc:135`).
    pub make_snapshot_check_interval: Duration,
    /// `--make_snapshot_threshold_offset` (default 100000, `src/flags.cc:137`): entries past the
    /// last snapshot needed before a scheduled snapshot is made.
    pub make_snapshot_threshold_offset: u64,
    /// `--make_snapshot_offline_interval` (default 1 day, `src/flags.cc:139`): a replica the
    /// nameserver had snapshotted (MakeSnapshot with a task) this recently is skipped.
    pub make_snapshot_offline_interval: Duration,
    /// Replication (`src/flags.cc:90-98`, `src/replica/replicate_node.cc:99-142`):
    /// `--binlog_notify_on_put` (default false) wakes the followers' workers on every Put;
    /// otherwise they look for new entries every `--binlog_sync_wait_time` (100 ms). A worker
    /// sends at most `--binlog_sync_batch_size` (32) entries per AppendEntries, pauses
    /// `--binlog_coffee_time` (1000 ms) after a failed send, and retries its first contact
    /// every `--binlog_match_logoffset_interval` (1000 ms).
    pub binlog_notify_on_put: bool,
    pub binlog_sync_wait_time: Duration,
    pub binlog_sync_batch_size: usize,
    pub binlog_coffee_time: Duration,
    pub binlog_match_logoffset_interval: Duration,
    /// `--request_timeout_ms` (default 20000, `src/flags.cc:114`): the timeout of a replication call
    /// and of each call a file sender makes.
    pub request_timeout: Duration,
    /// Sending files to another tablet (`src/flags.cc:127-131`, `src/tablet/file_sender.cc`):
    /// blocks of `--stream_block_size` bytes (1 × 1204 × 1024, sic), at most
    /// `--stream_bandwidth_limit` bytes/s (10 × 1204 × 1024; 0 is none), a pause of
    /// `--stream_close_wait_time_ms` (1000) after each attempt at a file, `--send_file_max_try`
    /// (3) attempts, the n-th retry after n × `--retry_send_file_wait_time_ms` (3000).
    pub stream_block_size: usize,
    pub stream_bandwidth_limit: u64,
    pub stream_close_wait_time: Duration,
    pub send_file_max_try: u32,
    pub retry_send_file_wait_time: Duration,
    pub enable_status_service: bool,
    /// `--openmldb_log_dir` (default `./logs`, relative to the working directory): where a
    /// server's glog files go; empty means stderr (`src/base/glog_wrapper.h`, see `glog`).
    pub openmldb_log_dir: String,
    /// `--log_level` (default `debug`; the release templates say `info`): `debug` lets
    /// `DEBUGLOG` lines into the log.
    pub log_level: String,
    pub skip_grant_tables: bool,
    pub auto_failover: bool,
    pub system_table_replica_num: u32,
    pub tablet_heartbeat_timeout: Duration,
    pub tablet_offline_check_interval: Duration,
    pub get_task_status_interval: Duration,
    pub get_table_status_interval: Duration,
    pub name_server_task_pool_size: u32,
    pub name_server_task_concurrency: u32,
    pub name_server_task_concurrency_for_replica_cluster: u32,
    pub name_server_task_max_concurrency: u32,
    pub name_server_task_wait_time: Duration,
    pub name_server_op_execute_timeout: Duration,
    pub max_op_num: usize,
    pub check_binlog_sync_progress_delta: u64,
    /// `--version` was given: print the version and exit.
    pub print_version: bool,
    /// `--role` names a command-line client (then `role` is `None`).
    pub cli_role: Option<CliRole>,
    /// CLI flags (`src/flags.cc`, `src/cmd/sql_cmd.h`): `--cmd`, `--interactive` (default
    /// true), `--database`, `--max_col_display_length` (default 256).
    pub cmd: String,
    pub interactive: bool,
    pub database: String,
    pub max_col_display_length: usize,
}

impl Default for SimFlags {
    fn default() -> Self {
        SimFlags {
            role: None,
            endpoint: String::new(),
            zk_cluster: String::new(),
            zk_root_path: "/openmldb".to_string(),
            zk_session_timeout: Duration::from_millis(2000),
            zk_cert: None,
            use_name: false,
            data_dir: PathBuf::from("./data"),
            port: 0,
            sim_local_ip: None,
            sim_missing_methods: Vec::new(),
            real_endpoint: String::new(),
            zk_keep_alive_check_interval: Duration::from_millis(15000),
            db_root_path: vec![PathBuf::from("/tmp/")],
            ssd_root_path: Vec::new(),
            hdd_root_path: Vec::new(),
            recycle_bin_root_path: vec![PathBuf::from("/tmp/recycle")],
            recycle_bin_ssd_root_path: Vec::new(),
            recycle_bin_hdd_root_path: Vec::new(),
            recycle_bin_enabled: true,
            make_snapshot_time: 23,
            make_snapshot_check_interval: Duration::from_millis(600_000),
            make_snapshot_threshold_offset: 100_000,
            make_snapshot_offline_interval: Duration::from_secs(86_400),
            binlog_notify_on_put: false,
            binlog_sync_wait_time: Duration::from_millis(100),
            binlog_sync_batch_size: 32,
            binlog_coffee_time: Duration::from_millis(1000),
            binlog_match_logoffset_interval: Duration::from_millis(1000),
            request_timeout: Duration::from_millis(20_000),
            stream_block_size: 1204 * 1024,
            stream_bandwidth_limit: 10 * 1204 * 1024,
            stream_close_wait_time: Duration::from_millis(1000),
            send_file_max_try: 3,
            retry_send_file_wait_time: Duration::from_millis(3000),
            enable_status_service: false,
            openmldb_log_dir: "./logs".to_string(),
            log_level: "debug".to_string(),
            skip_grant_tables: true,
            auto_failover: false,
            system_table_replica_num: 1,
            tablet_heartbeat_timeout: Duration::from_millis(300_000),
            tablet_offline_check_interval: Duration::from_millis(1000),
            get_task_status_interval: Duration::from_millis(2000),
            get_table_status_interval: Duration::from_millis(2000),
            name_server_task_pool_size: 8,
            name_server_task_concurrency: 2,
            name_server_task_concurrency_for_replica_cluster: 2,
            name_server_task_max_concurrency: 8,
            name_server_task_wait_time: Duration::from_millis(1000),
            name_server_op_execute_timeout: Duration::from_millis(7_200_000),
            max_op_num: 10000,
            check_binlog_sync_progress_delta: 100_000,
            print_version: false,
            cli_role: None,
            cmd: String::new(),
            interactive: true,
            database: String::new(),
            max_col_display_length: 256,
        }
    }
}

/// Splits `--key=value`, `-key=value`, `--key` (boolean true) into key and value.
fn split_flag(arg: &str) -> Option<(String, Option<String>)> {
    let body = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-'))?;
    if body.is_empty() {
        return None;
    }
    match body.split_once('=') {
        Some((k, v)) => Some((k.to_string(), Some(v.to_string()))),
        None => Some((body.to_string(), None)),
    }
}

/// A comma-separated list of paths as `base::SplitString` splits it (empty pieces dropped),
/// relative ones resolved against `cwd`.
fn path_list(text: &str, cwd: &Path) -> Vec<PathBuf> {
    text.split(',').filter(|p| !p.is_empty()).map(|p| cwd.join(p)).collect()
}

/// Parses the lines of a flagfile into key/value pairs (later lines win).
pub fn parse_flagfile_text(text: &str) -> Vec<(String, Option<String>)> {
    text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).filter_map(split_flag).collect()
}

impl SimFlags {
    /// Parses process arguments (without argv\[0\]); relative paths resolve against `cwd`.
    pub fn parse<I, S>(args: I, cwd: &Path) -> Result<SimFlags, FlagsError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut command_line: Vec<(String, Option<String>)> = Vec::new();
        let mut flagfiles: Vec<PathBuf> = Vec::new();
        for arg in args {
            let Some((key, value)) = split_flag(arg.as_ref()) else {
                continue; // gflags leaves positional arguments alone
            };
            if key == "flagfile" {
                if let Some(v) = value {
                    flagfiles.push(cwd.join(v));
                }
            } else {
                command_line.push((key, value));
            }
        }
        let mut merged: BTreeMap<String, Option<String>> = BTreeMap::new();
        for path in flagfiles {
            let text =
                std::fs::read_to_string(&path).map_err(|source| FlagsError::Flagfile { path: path.clone(), source })?;
            merged.extend(parse_flagfile_text(&text));
        }
        merged.extend(command_line);
        let mut flags = SimFlags::default();
        for (key, value) in merged {
            flags.apply(&key, value, cwd)?;
        }
        Ok(flags)
    }

    fn apply(&mut self, key: &str, value: Option<String>, cwd: &Path) -> Result<(), FlagsError> {
        let text = value.clone().unwrap_or_else(|| "true".to_string());
        let bad = |kind: &'static str| FlagsError::BadValue { name: key.to_string(), value: text.clone(), kind };
        let ms = |t: &str| t.parse::<u64>().map(Duration::from_millis).map_err(|_| bad("milliseconds"));
        let num = |t: &str| t.parse::<u64>().map_err(|_| bad("an unsigned number"));
        let boolean = |t: &str| match t.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "t" | "y" => Ok(true),
            "false" | "0" | "no" | "f" | "n" => Ok(false),
            _ => Err(bad("a boolean")),
        };
        match key {
            "version" => self.print_version = boolean(&text)?,
            "role" => {
                self.role = Some(match text.as_str() {
                    "nameserver" => Role::NameServer,
                    "tablet" => Role::Tablet,
                    "apiserver" => Role::ApiServer,
                    "ns_client" | "client" | "sql_client" => {
                        self.cli_role = Some(match text.as_str() {
                            "ns_client" => CliRole::NsClient,
                            "client" => CliRole::Client,
                            _ => CliRole::SqlClient,
                        });
                        return Ok(());
                    }
                    other => return Err(FlagsError::BadRole(other.to_string())),
                })
            }
            "endpoint" => self.endpoint = text,
            "use_name" => self.use_name = boolean(&text)?,
            "data_dir" => self.data_dir = cwd.join(text),
            "port" => self.port = num(&text)? as u16,
            "sim_local_ip" => self.sim_local_ip = value.filter(|v| !v.is_empty()),
            "sim_missing_methods" => {
                self.sim_missing_methods =
                    text.split(',').map(str::trim).filter(|m| !m.is_empty()).map(str::to_string).collect()
            }
            "zk_cluster" => self.zk_cluster = text,
            "zk_root_path" => self.zk_root_path = text,
            "zk_session_timeout" => self.zk_session_timeout = ms(&text)?,
            "zk_cert" => self.zk_cert = value.filter(|v| !v.is_empty()),
            "zk_keep_alive_check_interval" => self.zk_keep_alive_check_interval = ms(&text)?,
            "db_root_path" => self.db_root_path = path_list(&value.unwrap_or_default(), cwd),
            "ssd_root_path" => self.ssd_root_path = path_list(&value.unwrap_or_default(), cwd),
            "hdd_root_path" => self.hdd_root_path = path_list(&value.unwrap_or_default(), cwd),
            "recycle_bin_root_path" => self.recycle_bin_root_path = path_list(&value.unwrap_or_default(), cwd),
            "recycle_bin_ssd_root_path" => self.recycle_bin_ssd_root_path = path_list(&value.unwrap_or_default(), cwd),
            "recycle_bin_hdd_root_path" => self.recycle_bin_hdd_root_path = path_list(&value.unwrap_or_default(), cwd),
            "recycle_bin_enabled" => self.recycle_bin_enabled = boolean(&text)?,
            "make_snapshot_time" => {
                self.make_snapshot_time = text.parse::<i64>().map_err(|_| bad("a number"))?;
            }
            "make_snapshot_check_interval" => self.make_snapshot_check_interval = ms(&text)?,
            "make_snapshot_threshold_offset" => self.make_snapshot_threshold_offset = num(&text)?,
            "make_snapshot_offline_interval" => self.make_snapshot_offline_interval = Duration::from_secs(num(&text)?),
            "binlog_notify_on_put" => self.binlog_notify_on_put = boolean(&text)?,
            "binlog_sync_wait_time" => self.binlog_sync_wait_time = ms(&text)?,
            "binlog_sync_batch_size" => self.binlog_sync_batch_size = num(&text)? as usize,
            "binlog_coffee_time" => self.binlog_coffee_time = ms(&text)?,
            "binlog_match_logoffset_interval" => self.binlog_match_logoffset_interval = ms(&text)?,
            "request_timeout_ms" => self.request_timeout = ms(&text)?,
            "stream_block_size" => self.stream_block_size = num(&text)? as usize,
            "stream_bandwidth_limit" => {
                // An int32 flag; only a positive limit limits (`FileSender::Init`).
                self.stream_bandwidth_limit = text.parse::<i64>().map_err(|_| bad("a number"))?.max(0) as u64;
            }
            "stream_close_wait_time_ms" => self.stream_close_wait_time = ms(&text)?,
            "send_file_max_try" => self.send_file_max_try = num(&text)? as u32,
            "retry_send_file_wait_time_ms" => self.retry_send_file_wait_time = ms(&text)?,
            "enable_status_service" => self.enable_status_service = boolean(&text)?,
            "openmldb_log_dir" => self.openmldb_log_dir = value.unwrap_or_default(),
            "log_level" => self.log_level = text,
            "skip_grant_tables" => self.skip_grant_tables = boolean(&text)?,
            "auto_failover" => self.auto_failover = boolean(&text)?,
            "system_table_replica_num" => self.system_table_replica_num = num(&text)? as u32,
            "tablet_heartbeat_timeout" => self.tablet_heartbeat_timeout = ms(&text)?,
            "tablet_offline_check_interval" => self.tablet_offline_check_interval = ms(&text)?,
            "get_task_status_interval" => self.get_task_status_interval = ms(&text)?,
            "get_table_status_interval" => self.get_table_status_interval = ms(&text)?,
            "name_server_task_pool_size" => self.name_server_task_pool_size = num(&text)? as u32,
            "name_server_task_concurrency" => self.name_server_task_concurrency = num(&text)? as u32,
            "name_server_task_concurrency_for_replica_cluster" => {
                self.name_server_task_concurrency_for_replica_cluster = num(&text)? as u32
            }
            "name_server_task_max_concurrency" => self.name_server_task_max_concurrency = num(&text)? as u32,
            "name_server_task_wait_time" => self.name_server_task_wait_time = ms(&text)?,
            "name_server_op_execute_timeout" => self.name_server_op_execute_timeout = ms(&text)?,
            "max_op_num" => self.max_op_num = num(&text)? as usize,
            "check_binlog_sync_progress_delta" => self.check_binlog_sync_progress_delta = num(&text)?,
            "cmd" => self.cmd = value.unwrap_or_default(),
            "interactive" => self.interactive = boolean(&text)?,
            "database" => self.database = value.unwrap_or_default(),
            "max_col_display_length" => self.max_col_display_length = num(&text)? as usize,
            _ => {} // accepted and ignored, like the many flags real flagfiles carry
        }
        Ok(())
    }

    /// `GetRealEndpoint` (src/cmd/openmldb.cc:105-132): with an empty `--endpoint` and a
    /// `--port`, the server listens on `<local ip>:<port>` and is known by its name
    /// (`--use_name`) or by that address.
    pub fn apply_real_endpoint(&mut self) -> Result<(), super::names::NameError> {
        if !self.endpoint.is_empty() || self.port == 0 {
            return Ok(());
        }
        let ip = match &self.sim_local_ip {
            Some(ip) => ip.clone(),
            None => super::names::local_ip()?,
        };
        self.real_endpoint = format!("{ip}:{}", self.port);
        self.endpoint =
            if self.use_name { super::names::server_name(&self.data_dir)? } else { self.real_endpoint.clone() };
        Ok(())
    }

    /// The address the server listens on: its real endpoint, or `--endpoint`.
    pub fn listen_endpoint(&self) -> &str {
        if self.real_endpoint.is_empty() {
            &self.endpoint
        } else {
            &self.real_endpoint
        }
    }

    /// Whether the server registers a name (`RegisterName` runs with `--use_name`; with an
    /// explicit `--endpoint` the name is the endpoint and maps to nothing).
    pub fn registers_name(&self) -> bool {
        self.use_name
    }

    /// Number of op queues: max concurrency plus the replica-cluster queues (C§3.3).
    pub fn op_queue_count(&self) -> usize {
        (self.name_server_task_max_concurrency + self.name_server_task_concurrency_for_replica_cluster) as usize
    }

    /// Checks the flags a server role needs.
    pub fn validate_server(&self) -> Result<(), FlagsError> {
        if self.endpoint.is_empty() && self.port == 0 {
            return Err(FlagsError::MissingEndpoint);
        }
        if self.zk_cluster.is_empty() {
            return Err(FlagsError::MissingZkCluster);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flagfile_then_command_line_override() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("conf")).expect("mkdir");
        std::fs::write(
            dir.path().join("conf/tablet.flags"),
            "# comment\n\n--role=tablet\n--endpoint=127.0.0.1:1\n--zk_session_timeout=10000\n\
             --db_root_path=./db\n--some_unknown_flag=3\n--enable_status_service=false\n",
        )
        .expect("write");
        let flags = SimFlags::parse(
            ["--flagfile=conf/tablet.flags", "--enable_status_service=true", "--endpoint=127.0.0.1:2"],
            dir.path(),
        )
        .expect("parse");
        assert_eq!(flags.role, Some(Role::Tablet));
        assert_eq!(flags.endpoint, "127.0.0.1:2");
        assert_eq!(flags.zk_session_timeout, Duration::from_secs(10));
        assert!(flags.enable_status_service);
        assert_eq!(flags.db_root_path, vec![dir.path().join("./db")]);
        assert_eq!(flags.op_queue_count(), 10);
    }

    #[test]
    fn root_paths_split_like_base_split_string() {
        let flags = SimFlags::parse(
            ["--db_root_path=./a,,/b,", "--ssd_root_path=", "--hdd_root_path=./hdd", "--make_snapshot_time=-1"],
            Path::new("/w"),
        )
        .expect("parse");
        assert_eq!(flags.db_root_path, vec![PathBuf::from("/w/./a"), PathBuf::from("/b")]);
        assert!(flags.ssd_root_path.is_empty());
        assert_eq!(flags.hdd_root_path, vec![PathBuf::from("/w/./hdd")]);
        assert_eq!(flags.make_snapshot_time, -1);
        assert_eq!(flags.recycle_bin_root_path, vec![PathBuf::from("/tmp/recycle")]);
        assert_eq!(flags.binlog_sync_batch_size, 32);
        assert!(!flags.binlog_notify_on_put);
    }

    #[test]
    fn bad_boolean_is_an_error() {
        let err = SimFlags::parse(["--auto_failover=maybe"], Path::new("/")).expect_err("must fail");
        assert!(err.to_string().contains("auto_failover"));
    }
}
