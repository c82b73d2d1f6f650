//! A simulated OpenMLDB control plane: nameserver and tablet processes that behave like
//! `bin/openmldb --role=nameserver|tablet` against a real ZooKeeper, following
//! `reference/openmldb-cluster.md` (cited C§) and `reference/openmldb-operations.md` (O§).
//!
//! # Starting components
//!
//! In-process (tests, sandbox): bind a [`tokio::net::TcpListener`], build [`SimFlags`] (for
//! example with [`SimFlags::parse`]) whose `endpoint` is the listener's address, then
//! `run_nameserver(listener, flags, version, shutdown)` or
//! `run_tablet(listener, flags, version, shutdown)`; cancel `shutdown` to stop. Stopping
//! never closes the ZooKeeper session, exactly like a killed OpenMLDB process.
//!
//! As a process: the `openmldb-sim` binary takes the real command line, e.g.
//! `openmldb-sim --flagfile=./conf/tablet.flags --enable_status_service=true`, and reads its
//! version from `openmldb.version` next to the executable ([`process::installed_version`]).
//!
//! As a command-line client (`--role=ns_client|client|sql_client` with `--cmd`,
//! `--interactive`, `--database`), the binary prints what OpenMLDB's CLI prints (C§5, O§5.8),
//! always with exit code 0; see [`cli`].
//!
//! # Logs (what a process writes where)
//!
//! * nameserver, tablet, apiserver ([`process`], [`glog`]): stderr as before (start.sh's
//!   `<log_dir>/<role>.log`), plus glog files under `--openmldb_log_dir` (default `./logs`,
//!   relative to the working directory, i.e. the install dir under start.sh):
//!   `<role>.info.log.<YYYYMMDD-HHMMSS>.<pid>` (every line) and `<role>.warning.log.<...>`
//!   (WARNING and above), each created with its first line, behind the symlinks `<role>.INFO`
//!   and `<role>.WARNING`, lines in glog v0.6.0's format (`I20241202 13:05:01.123456  4242
//!   process.rs:144] start tablet on endpoint ...`). A failed start (a `--broken` release, an
//!   endpoint that cannot be bound, ZooKeeper trouble) is logged there before the exit. An
//!   empty `--openmldb_log_dir` writes no files.
//! * taskmanager ([`taskmanager`], [`log4j`]): `./logs/taskmanager.log` under its working
//!   directory `taskmanager/bin`, appended in the shipped `log4j.properties` layout
//!   (`2024-12-02 13:05:01,123 INFO [com._4paradigm...TaskManagerServer] - ...`), with a copy on
//!   stdout unless stdout already is that file.
//!
//! # What is faithful
//!
//! ZooKeeper layout and election (C§1), RPC names, URL forms, JSON shapes, error codes and
//! per-connection authentication (C§2), op types, task chains, queues, polling, failover
//! resume and ShowOPStatus retention (C§3), tablet replica modes and states (C§4), flag
//! names and defaults (C§7). Following OpenMLDB's source (`src/tablet/tablet_impl.cc`,
//! `src/replica/*.cc`) more closely than the reference notes:
//!
//! * Storage modes ([`tablet`]'s `storage`): kMemory, kSSD and kHDD replicas live under the
//!   root of their mode (`--db_root_path`, `--ssd_root_path`, `--hdd_root_path`, several
//!   roots picked by tid/pid hash), and every RPC that touches files picks the root by the
//!   storage mode it is given: LoadTable by the request's (a mode without a root is 138 and
//!   fails the task; with the wrong mode the table's files are not where it looks, so the meta
//!   written there has no index and the table cannot be made: 131 "fail to init table" for
//!   kMemory, a failed load task for a disk mode, an empty table only when the request brings
//!   a schema), SendData, GetManifest, GetTermPair and DeleteBinlog likewise. A disk table
//!   being loaded appears only once the load task runs. DropTable moves the directory to the mode's
//!   `--recycle_bin_*root_path`; without one the task fails and the replica stays. The
//!   nameserver sends the table's `storage_mode` in CreateTable and in every LoadTable,
//!   GetTermPair and DeleteBinlog of its ops.
//! * Snapshots ([`tablet`]'s `snapshot`): the tablet's own schedule (`--make_snapshot_time`
//!   in local time, `--make_snapshot_check_interval`, `--make_snapshot_threshold_offset`,
//!   `--make_snapshot_offline_interval`, one snapshot at a time), the MakeSnapshot RPC, the
//!   kMakingSnapshot state and what each RPC answers in it and in kSnapshotPaused.
//! * Replication ([`tablet`]'s `replication`): per-follower nodes with the real timing:
//!   first contact retried every `--binlog_match_logoffset_interval`, new entries sent when a
//!   Put notifies (`--binlog_notify_on_put`) or after `--binlog_sync_wait_time`, batches of
//!   `--binlog_sync_batch_size` back to back, a failed request resent as it was after
//!   `--binlog_coffee_time`; ChangeRole(follower), DelReplica and DropTable stop nodes, and
//!   what a stopped node had not sent is never sent.
//!
//! # Simplifications versus real OpenMLDB
//!
//! * Table metadata in ZooKeeper is binary protobuf as in OpenMLDB ([`pb`]:
//!   `table/db_table_data/<tid>` holds a serialized `TableInfo` with its schema and indexes,
//!   what the SDK reads), but op data is **JSON**: `op/op_data/<id>` holds an `OPInfo` as
//!   JSON whose `data` field is the JSON of one merged op-data struct (real OpenMLDB uses one
//!   binary message per op type; only nameservers read these). Legacy
//!   `table/table_data/<name>` (tables without a db) is never written.
//! * HTTP+JSON serves every RPC (no `application/proto` bodies); brpc's baidu_std, on the
//!   same port, only what OpenMLDB's SDK needs to connect, write, read the global variables
//!   and drop a table, and what tablets send each other files with ([`baidu_std`]):
//!   ShowFunction, ShowDatabase, UseDatabase, DropTable, Put, Query, SendData and CheckFile
//!   (others get `ENOMETHOD`; in particular the SDK's CREATE TABLE fails). Query answers only
//!   a `SELECT` of columns with `column = 'value'` conditions over a table of string columns
//!   whose partitions are all on the tablet asked, which covers the SDK's own queries of
//!   GLOBAL_VARIABLES and PRE_AGG_META_INFO (`tablet`'s `query`). Put ignores `put_if_absent` and `check_exists`, and
//!   stores the value in json2pb's form (a bytes field as base64): a value our own HTTP
//!   clients send is stored as given, not base64-decoded as real brpc would. Built-in pages
//!   are `/version`, `/health` and `/status` (with `--enable_status_service`). The status
//!   page is a short text with a `version: <ver>` line. `/version` is answered from the
//!   start, while real tablets set it only after registering in ZooKeeper.
//! * Authentication: a connection is verified on its first request to a non-builtin path.
//!   With `--skip_grant_tables=false` the accepted credentials are `sdefault` and the
//!   default root user with the empty password (`uroot:<hash>`); the USER table's rows are
//!   not modelled, so other users cannot be added.
//! * The internal databases (`__INTERNAL_DB`, `__PRE_AGG_DB`, `INFORMATION_SCHEMA`) and
//!   their system tables are created as metadata with one partition and
//!   `--system_table_replica_num` replicas (at least 1); GLOBAL_VARIABLES gets its four
//!   default rows when it is created, as `InitGlobalVarTable` puts them; the others hold no
//!   rows.
//! * Tables need no schema: every table CreateTable makes counts as indexed; only a
//!   LoadTable that finds no meta on disk and gets no `column_key` fails for the lack of one.
//! * Tablets keep a replica's metadata and log under `<root of its storage mode>/<tid>_<pid>/`
//!   (`table_meta.json`, and `binlog.jsonl` with one `LogEntry` per line, appended as rows
//!   arrive). The log is the table: there is no separate memtable, RocksDB or snapshot data
//!   file, and disk tables hold their rows in memory like memory tables. Data lives in the
//!   root directories, so it survives process restarts and a replaced `bin/`.
//!   `table_meta.json` is rewritten when the replica's role or followers change (the real
//!   `table_meta.txt` only at CreateTable and LoadTable). The term a replica answers is its
//!   replicator's, kept apart from the meta's as the real tablet keeps it: a replica created or
//!   loaded as a follower answers 0 until its leader's first AppendEntries without entries.
//! * A snapshot writes only `snapshot/MANIFEST` (JSON: `offset`, `name`, `count`, `term`,
//!   named like the real ones); no entry is dropped from the log, so no row is lost and
//!   loading still replays every entry. It holds the replica in kMakingSnapshot for
//!   [`tablet::SNAPSHOT_MIN`] (200 ms) plus, for a memory table, its rows at
//!   [`tablet::SNAPSHOT_ROWS_PER_SECOND`] (50 000 rows/s); a disk table's checkpoint does not
//!   grow with the data. `GetManifest` reports that MANIFEST (only `offset: 0` without one).
//!   `SendSnapshot` ships files as the real tablet does (`tablet`'s `file_transfer`: SendData
//!   over baidu_std, each block in the attachment, `eof`, CheckFile, the `--stream_*` and
//!   `--send_file_*` flags): `table_meta.json`, then, only when there is a MANIFEST, the log
//!   as it was when the send began (the stand-in for the snapshot's data file) and the
//!   MANIFEST; without one the replicator sends every entry. `DeleteBinlog` does nothing (the
//!   log doubles as the snapshot). `diskused` is always 0.
//! * Loading (kTableUndefined → kTableLoading → kTableNormal) runs in the background:
//!   100 ms undefined (a disk table: not listed yet), then 100 ms plus the replay at
//!   100 000 rows/s ([`tablet::load_duration`]) of every entry for a memory table and of the
//!   entries past its snapshot for a disk table. kTableUndefined answers data RPCs like
//!   kTableLoading (104).
//! * Rows: `Put` takes the key from `dimensions[0].key` (else `pk`), the value as a string
//!   (bytes in the real proto) and `time` (now when absent); there is no schema, no
//!   multi-index, no TTL and no `put_if_absent`/`check_exists`. `Get` returns the newest row
//!   of a key, or the one with exactly `ts`; `Scan` returns rows with `et < ts <= st`
//!   (`st` 0: no bound), newest first, `limit`ed, and its `pairs` is a JSON array of
//!   `{ts, value}` instead of the real binary-encoded bytes. As in `TB` `CheckTable`, Put
//!   needs leader mode (103 otherwise) but Get and Scan are served by followers too, from
//!   their own, possibly lagging, data.
//! * Replication: the nodes send `AppendEntries` over HTTP+JSON, one call per batch; a
//!   request already on the wire when its node stops still lands. Followers refuse an older
//!   term (code 122), so after a leader change the replaced leader's unsent entries never
//!   reach the new term; a follower appends only entries that continue its log (the real one
//!   applies any entry past its offset), and one with more entries than its new leader (only
//!   possible with an explicit, lagging `candidate_leader`) keeps them. The replaced leader
//!   loses its extra entries when RecoverTable re-adds it with a drop. Offsets are the real
//!   log indexes and flow through GetTableStatus, FollowOfNoOne (leader choice, C§3.5),
//!   GetTermPair and the periodic status refresh (ShowTable, C§3.7).
//! * RecoverTable's child-op choice is the real one (`RecoverEndpointTable`,
//!   `MatchTermOffset`): GetTermPair of the replica (a loaded follower no leader has probed
//!   answers term 0, which never matches; an unloaded replica answers its snapshot MANIFEST,
//!   0/0 without one, which never matches either), then the leader's GetManifest. So the
//!   choice is Simplify (loaded, matched), WithDrop (loaded, not matched), NoSend (not loaded,
//!   matched) or ReAddReplica (not loaded, not matched).
//! * Replica placement of CreateTable is round-robin over the healthy tablets starting at
//!   `tid`, the first replica of each partition being its leader.
//! * The NS notices a tablet restart only through `/nodes` children changes (the old
//!   ephemeral node must expire first, which a real restart also needs, C§1.3).
//! * `--use_name` ([`names`]): names, `map/names`, nodes and lock values by name, ShowTablet's
//!   `real_endpoint`, the nameserver resolving names on every `nodes` change and tablets
//!   replicating by name are modelled. The local ip is `--sim_local_ip` when given; a tablet
//!   reads `map/names` itself instead of taking the nameserver's UpdateRealEndpointMap, and
//!   does not refuse an unknown name in ChangeRole/AddReplica with 155 (its replicate node
//!   retries like one to a tablet that is down).
//! * `--sim_missing_methods=A,B` (simulator-only) makes the nameserver answer those RPCs as a
//!   build without them would (HTTP 404 "Fail to find method"), to rehearse the tool's
//!   fallbacks.
//! * Multi-cluster (replica cluster) ops, the nameserver's own snapshot
//!   schedule (`NameServerImpl::SchedMakeSnapshot`, which sends MakeSnapshot with each
//!   partition's lowest offset in the same hour), SQL, deployments, procedures and UDFs are
//!   not simulated; `name_server_task_pool_size` and
//!   `name_server_op_execute_timeout` are parsed but have no effect (tasks run as async tasks).
//! * CLI (`cli`): transport failures print brpc-like texts (`[E111]Fail to connect ...`), not
//!   brpc's exact ones; `real_endpoint` is always `-`; `--interactive=true` with `--cmd` runs
//!   the command once (the real ns_client repeats it forever); interactive sessions read plain
//!   stdin lines; `sql_client` runs only `SHOW TABLE STATUS [LIKE '...']` and never produces
//!   the "not connected to leader" warning (the simulated tablet has no GetTableFollower).
//! * The nameserver calls tablets over HTTP+JSON with `Authorization: sdefault`, one
//!   connection per call.
//! * Logs: a glog line's `file:line` is the simulator's own source location; there are no
//!   glog ERROR/FATAL files in glog's default directory, no size rollover and no
//!   `--log_overdue_days` cleaner; the TaskManager does not read
//!   `taskmanager/conf/log4j.properties` (it always acts as the shipped one) and does not roll
//!   its file daily. Details in [`glog`] and [`log4j`].

pub mod apiserver;
pub mod baidu_std;
pub mod cli;
pub mod flags;
pub mod glog;
pub mod http;
pub mod log4j;
pub mod mon;
pub mod names;
pub mod nameserver;
pub mod pb;
pub mod process;
pub mod proto;
pub mod rest;
pub mod row_codec;
pub mod tablet;
pub mod taskmanager;
pub mod zk;

pub use flags::{Role, SimFlags};
pub use nameserver::run_nameserver;
pub use tablet::run_tablet;
