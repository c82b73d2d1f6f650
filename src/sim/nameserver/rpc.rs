//! `openmldb.nameserver.NameServer` RPCs with the preconditions and codes of C§2.3.

use std::sync::Arc;

use serde_json::{json, Value};

use super::{is_hidden_db, NameServer};
use crate::sim::http::{RpcError, RpcFuture, RpcService};
use crate::sim::proto::{
    general, ok, Body, OpStatus, OpType, PartitionMeta, StorageMode, TableInfo, TablePartition, TabletStatus,
    TaskStatus, TermPair,
};

type Reply = Result<Value, RpcError>;

fn not_leader() -> Value {
    general(300, "nameserver is not leader")
}

fn auto_failover_on() -> Value {
    general(301, "auto_failover is enabled")
}

impl RpcService for NameServer {
    fn short_name(&self) -> &'static str {
        "NameServer"
    }

    fn full_name(&self) -> &'static str {
        "openmldb.nameserver.NameServer"
    }

    fn call(self: Arc<Self>, method: String, body: Value, _attachment: Vec<u8>) -> RpcFuture {
        Box::pin(async move {
            let known = matches!(
                method.as_str(),
                "ShowTablet"
                    | "ShowFunction"
                    | "ShowTable"
                    | "ShowDatabase"
                    | "ShowOPStatus"
                    | "ChangeLeader"
                    | "AddReplicaNS"
                    | "DelReplicaNS"
                    | "Migrate"
                    | "RecoverTable"
                    | "RecoverEndpoint"
                    | "OfflineEndpoint"
                    | "UpdateTableAliveStatus"
                    | "GetTablePartition"
                    | "SetTablePartition"
                    | "ConfGet"
                    | "ConfSet"
                    | "CancelOP"
                    | "DeleteOP"
                    | "CreateDatabase"
                    | "CreateTable"
                    | "DropTable"
                    | "UseDatabase"
            );
            if !known || self.flags.sim_missing_methods.contains(&method) {
                return Err(RpcError::NoMethod(method));
            }
            // Required fields are checked by brpc before the method runs (C§2.1).
            let required: (&'static str, &[&'static str]) = match method.as_str() {
                "ChangeLeader" => ("openmldb.nameserver.ChangeLeaderRequest", &["name", "pid"]),
                "AddReplicaNS" => ("openmldb.nameserver.AddReplicaNSRequest", &["name", "pid", "endpoint"]),
                "DelReplicaNS" => ("openmldb.nameserver.DelReplicaNSRequest", &["name", "pid", "endpoint"]),
                "Migrate" => ("openmldb.nameserver.MigrateRequest", &["src_endpoint", "name", "des_endpoint"]),
                "RecoverTable" => ("openmldb.nameserver.RecoverTableRequest", &["name", "pid", "endpoint"]),
                "RecoverEndpoint" => ("openmldb.nameserver.RecoverEndpointRequest", &["endpoint"]),
                "OfflineEndpoint" => ("openmldb.nameserver.OfflineEndpointRequest", &["endpoint"]),
                "ConfSet" => ("openmldb.nameserver.ConfSetRequest", &["conf"]),
                "CreateTable" => ("openmldb.nameserver.CreateTableRequest", &["table_info"]),
                "DropTable" => ("openmldb.nameserver.DropTableRequest", &["name"]),
                _ => ("openmldb.nameserver.GeneralRequest", &[]),
            };
            let request = Body::new(&body, required.0);
            request.require(required.1)?;
            if method == "ConfSet" {
                if let Some(conf) = request.message("conf", "openmldb.nameserver.Pair") {
                    conf.require(&["key", "value"])?;
                }
            }
            if method == "SetTablePartition" {
                if let Some(partition) = request.message("table_partition", "openmldb.nameserver.TablePartition") {
                    partition.require(&["pid"])?;
                    for meta in partition.raw("partition_meta").and_then(Value::as_array).into_iter().flatten() {
                        Body::new(meta, "openmldb.nameserver.PartitionMeta").require(&["endpoint", "is_leader"])?;
                    }
                    for term in partition.raw("term_offset").and_then(Value::as_array).into_iter().flatten() {
                        Body::new(term, "openmldb.nameserver.TermPair").require(&["term", "offset"])?;
                    }
                }
            }
            // ShowFunction answers on any nameserver (NameServerImpl::ShowFunction checks no
            // leadership); the simulator registers no UDF.
            if method == "ShowFunction" {
                return Ok(ok());
            }
            if !self.is_running() {
                return Ok(not_leader());
            }
            match method.as_str() {
                "ShowTablet" => self.show_tablet().await,
                "ShowTable" => self.show_table(&request).await,
                "ShowDatabase" => self.show_database().await,
                "ShowOPStatus" => self.show_op_status(&request).await,
                "ChangeLeader" => self.change_leader(&request).await,
                "AddReplicaNS" => self.add_replica(&request).await,
                "DelReplicaNS" => self.del_replica(&request).await,
                "Migrate" => self.migrate(&request).await,
                "RecoverTable" => self.recover_table(&request).await,
                "RecoverEndpoint" => self.recover_endpoint(&request).await,
                "OfflineEndpoint" => self.offline_endpoint(&request).await,
                "UpdateTableAliveStatus" => self.update_table_alive(&request).await,
                "GetTablePartition" => self.get_table_partition(&request).await,
                "SetTablePartition" => self.set_table_partition(&request).await,
                "ConfGet" => self.conf_get().await,
                "ConfSet" => self.conf_set(&request).await,
                "CancelOP" => self.cancel_op(&request).await,
                "DeleteOP" => self.delete_op(&request).await,
                "CreateDatabase" => self.create_database(&request).await,
                "CreateTable" => self.create_table(&request).await,
                "DropTable" => self.drop_table(&request).await,
                "UseDatabase" => self.use_database(&request).await,
                _ => Err(RpcError::NoMethod(method)),
            }
        })
    }
}

/// A `TablePartition` read field by field as json2pb reads it (required fields were checked
/// before): an optional field of the wrong type is dropped.
fn table_partition_of(body: &Body<'_>) -> TablePartition {
    let messages = |name: &str| body.raw(name).and_then(Value::as_array).cloned().unwrap_or_default();
    let partition_meta = messages("partition_meta")
        .iter()
        .map(|m| {
            let m = Body::new(m, "openmldb.nameserver.PartitionMeta");
            PartitionMeta {
                endpoint: m.str("endpoint").unwrap_or_default(),
                is_leader: m.bool("is_leader").unwrap_or(false),
                is_alive: m.bool("is_alive"),
                offset: m.u64("offset"),
                record_cnt: m.u64("record_cnt"),
                record_byte_size: m.u64("record_byte_size"),
                tablet_has_partition: m.bool("tablet_has_partition"),
                diskused: m.u64("diskused"),
            }
        })
        .collect();
    let term_offset = messages("term_offset")
        .iter()
        .map(|t| {
            let t = Body::new(t, "openmldb.nameserver.TermPair");
            TermPair { term: t.u64("term").unwrap_or(0), offset: t.u64("offset").unwrap_or(0) }
        })
        .collect();
    TablePartition {
        pid: body.u32("pid").unwrap_or(0),
        partition_meta,
        term_offset,
        record_cnt: body.u64("record_cnt"),
        record_byte_size: body.u64("record_byte_size"),
        diskused: body.u64("diskused"),
    }
}

impl NameServer {
    async fn show_tablet(&self) -> Reply {
        let state = self.lock().await;
        let tablets: Vec<TabletStatus> = state
            .tablets
            .iter()
            .map(|(endpoint, record)| TabletStatus {
                endpoint: endpoint.clone(),
                state: record.health.name().to_string(),
                age: record.since.elapsed().as_millis() as u64,
            })
            .collect();
        drop(state);
        let mut listed = json!(tablets);
        if self.flags.use_name {
            // `real_endpoint` only with use_name, "-" when unknown (NS:1354-1381).
            for t in listed.as_array_mut().into_iter().flatten() {
                let name = t["endpoint"].as_str().unwrap_or_default().to_string();
                t["real_endpoint"] = json!(self.real_endpoints.known(&name).await.unwrap_or_else(|| "-".into()));
            }
        }
        let mut reply = json!({ "code": 0, "msg": "ok" });
        if !tablets.is_empty() {
            reply["tablets"] = listed;
        }
        Ok(reply)
    }

    async fn show_table(&self, request: &Body<'_>) -> Reply {
        let name = request.str("name");
        let db = request.str("db").unwrap_or_default();
        let show_all = request.bool("show_all").unwrap_or(false);
        // Copied under the lock (as the real one copies into the response), encoded after it:
        // other requests do not wait while a large cluster's reply is encoded.
        let state = self.lock().await;
        let mut tables: Vec<TableInfo> = state
            .tables
            .values()
            .filter(|t| name.as_ref().is_none_or(|n| *n == t.name))
            .filter(|t| t.db.is_empty() || show_all || t.db == db)
            .cloned()
            .collect();
        drop(state);
        // Legacy tables by name, then by db and name: OpenMLDB's maps (`NS:2969-3023`).
        tables.sort_by(|a, b| (&a.db, &a.name).cmp(&(&b.db, &b.name)));
        let mut reply = json!({ "code": 0, "msg": "ok" });
        if !tables.is_empty() {
            reply["table_info"] = json!(tables);
        }
        Ok(reply)
    }

    async fn show_database(&self) -> Reply {
        let state = self.lock().await;
        let dbs: Vec<&String> = state.dbs.iter().filter(|d| !is_hidden_db(d)).collect();
        let mut reply = json!({ "code": 0, "msg": "ok" });
        if !dbs.is_empty() {
            reply["db"] = json!(dbs);
        }
        Ok(reply)
    }

    async fn show_op_status(&self, request: &Body<'_>) -> Reply {
        let name = request.str("name");
        let pid = request.u32("pid");
        let db = request.str("db");
        let op_id = request.u64("op_id");
        let state = self.lock().await;
        let mut ops: Vec<OpStatus> = state
            .done_ops
            .iter()
            .chain(state.queues.iter().flatten())
            .filter(|op| name.as_ref().is_none_or(|n| *n == op.info.name))
            .filter(|op| pid.is_none_or(|p| p == op.info.pid))
            .filter(|op| db.as_ref().is_none_or(|d| *d == op.info.db))
            .filter(|op| op_id.is_none_or(|id| id == op.info.op_id))
            .map(|op| op.status())
            .collect();
        ops.sort_by_key(|o| o.op_id);
        ops.dedup_by_key(|o| o.op_id);
        let mut reply = json!({ "code": 0, "msg": "ok" });
        if !ops.is_empty() {
            reply["op_status"] = json!(ops);
        }
        Ok(reply)
    }

    /// ChangeLeader (C§2.3, C§3.5).
    async fn change_leader(&self, request: &Body<'_>) -> Reply {
        let name = request.str("name").unwrap_or_default();
        let pid = request.u32("pid").unwrap_or(0);
        let db = request.str("db").unwrap_or_default();
        let has_candidate = request.has("candidate_leader");
        let mut state = self.lock().await;
        if state.auto_failover {
            return Ok(auto_failover_on());
        }
        let Some(table) = state.table(&name, &db) else {
            return Ok(general(100, "table does not exist"));
        };
        if pid >= table.partition_num {
            return Ok(general(308, "pid does not exist"));
        }
        let Some(partition) = table.partition(pid) else {
            return Ok(general(308, "pid does not exist"));
        };
        if partition.partition_meta.len() < 2 {
            return Ok(general(134, "no follower"));
        }
        let mut alive_followers = 0;
        for meta in &partition.partition_meta {
            if meta.is_leader {
                if meta.alive() && !has_candidate {
                    return Ok(general(309, "leader is alive"));
                }
            } else if meta.alive() {
                alive_followers += 1;
            }
        }
        if alive_followers == 0 {
            return Ok(general(310, "no alive follower"));
        }
        // "auto" means no candidate, but only after the alive-leader check (C§3.5).
        let candidate = request.str("candidate_leader").filter(|c| c != "auto");
        let concurrency = self.flags.name_server_task_concurrency;
        match self.create_change_leader_op(&mut state, &name, &db, pid, candidate, false, concurrency).await {
            Ok(_) => Ok(ok()),
            Err((code, msg)) => Ok(general(code, &msg)),
        }
    }

    /// AddReplicaNS (C§2.3): one op per pid, always in queue 0.
    async fn add_replica(&self, request: &Body<'_>) -> Reply {
        let name = request.str("name").unwrap_or_default();
        let db = request.str("db").unwrap_or_default();
        let endpoint = request.str("endpoint").unwrap_or_default();
        let mut pids = request.u32_list("pid_group");
        if pids.is_empty() {
            pids.push(request.u32("pid").unwrap_or(0));
        }
        let mut state = self.lock().await;
        if !state.is_healthy(&endpoint) {
            return Ok(general(303, "tablet is not healthy"));
        }
        let Some(table) = state.table(&name, &db) else {
            return Ok(general(100, "table does not exist"));
        };
        if pids.iter().any(|p| *p >= table.partition_num) {
            return Ok(general(307, "invalid parameter"));
        }
        for pid in &pids {
            if table.partition(*pid).is_some_and(|p| p.meta(&endpoint).is_some()) {
                return Ok(general(317, &format!("pid {pid} is exist in {endpoint}")));
            }
        }
        for pid in pids {
            let created = self
                .create_simple_op(&mut state, OpType::kAddReplicaOP, &name, &db, pid, &endpoint, 1, None, |_| {})
                .await;
            if let Err((code, msg)) = created {
                return Ok(general(code, &msg));
            }
        }
        Ok(ok())
    }

    /// DelReplicaNS (C§2.3).
    async fn del_replica(&self, request: &Body<'_>) -> Reply {
        let name = request.str("name").unwrap_or_default();
        let db = request.str("db").unwrap_or_default();
        let endpoint = request.str("endpoint").unwrap_or_default();
        let mut pids = request.u32_list("pid_group");
        if pids.is_empty() {
            pids.push(request.u32("pid").unwrap_or(0));
        }
        let mut state = self.lock().await;
        let Some(table) = state.table(&name, &db) else {
            return Ok(general(100, "table does not exist"));
        };
        if !state.is_healthy(&endpoint) {
            return Ok(general(303, "tablet is not healthy"));
        }
        if pids.iter().any(|p| *p >= table.partition_num) {
            return Ok(general(307, "max pid is greater than partition size"));
        }
        for pid in &pids {
            match table.partition(*pid).and_then(|p| p.meta(&endpoint)) {
                None => return Ok(general(308, &format!("pid {pid} is not in {endpoint}"))),
                Some(meta) if meta.is_leader => {
                    return Ok(general(102, &format!("can not del leader. pid {pid} endpoint {endpoint}")))
                }
                Some(_) => {}
            }
        }
        let concurrency = self.flags.name_server_task_concurrency;
        for pid in pids {
            let created = self
                .create_simple_op(
                    &mut state,
                    OpType::kDelReplicaOP,
                    &name,
                    &db,
                    pid,
                    &endpoint,
                    concurrency,
                    None,
                    |_| {},
                )
                .await;
            if let Err((code, msg)) = created {
                return Ok(general(code, &msg));
            }
        }
        Ok(ok())
    }

    /// Migrate (C§2.3).
    async fn migrate(&self, request: &Body<'_>) -> Reply {
        let src = request.str("src_endpoint").unwrap_or_default();
        let des = request.str("des_endpoint").unwrap_or_default();
        let name = request.str("name").unwrap_or_default();
        let db = request.str("db").unwrap_or_default();
        let pids = request.u32_list("pid");
        let mut state = self.lock().await;
        if state.auto_failover {
            return Ok(auto_failover_on());
        }
        if !state.is_healthy(&src) {
            return Ok(general(318, "src_endpoint does not exist or not healthy"));
        }
        if !state.is_healthy(&des) {
            return Ok(general(319, "des_endpoint does not exist or not healthy"));
        }
        let Some(table) = state.table(&name, &db) else {
            return Ok(general(100, "table does not exist"));
        };
        for pid in &pids {
            let Some(partition) = table.partition(*pid) else {
                return Ok(general(320, &format!("src_endpoint[{src}] has not partition[{pid}]. name[{name}]")));
            };
            let leader = partition.alive_leader().map(|m| m.endpoint.clone()).unwrap_or_default();
            if leader.is_empty() {
                return Ok(general(320, &format!("leader endpoint is empty. name[{name}] pid[{pid}]")));
            }
            if leader == src {
                return Ok(general(320, &format!("cannot migrate leader. name[{name}] pid[{pid}]")));
            }
            if !state.is_healthy(&leader) {
                return Ok(general(320, &format!("leader[{leader}] is offline. name[{name}] pid[{pid}]")));
            }
            if !partition.meta(&src).is_some_and(|m| m.alive()) {
                return Ok(general(320, &format!("src_endpoint[{src}] has not partition[{pid}]. name[{name}]")));
            }
            if partition.meta(&des).is_some() {
                return Ok(general(320, &format!("partition[{pid}] is already in des_endpoint[{des}]. name[{name}]")));
            }
        }
        let concurrency = self.flags.name_server_task_concurrency;
        for pid in pids {
            let des = des.clone();
            let created = self
                .create_simple_op(&mut state, OpType::kMigrateOP, &name, &db, pid, &src, concurrency, None, |d| {
                    d.des_endpoint = des
                })
                .await;
            if let Err((code, msg)) = created {
                return Ok(general(code, &msg));
            }
        }
        Ok(ok())
    }

    /// RecoverTable (C§2.3).
    async fn recover_table(&self, request: &Body<'_>) -> Reply {
        let name = request.str("name").unwrap_or_default();
        let db = request.str("db").unwrap_or_default();
        let pid = request.u32("pid").unwrap_or(0);
        let endpoint = request.str("endpoint").unwrap_or_default();
        let mut state = self.lock().await;
        if state.auto_failover {
            return Ok(auto_failover_on());
        }
        let Some(tablet) = state.tablets.get(&endpoint) else {
            return Ok(general(302, "endpoint does not exist"));
        };
        if tablet.health != super::TabletHealth::Healthy {
            return Ok(general(303, "tablet is not healthy"));
        }
        let Some(table) = state.table(&name, &db) else {
            return Ok(general(100, "table does not exist"));
        };
        let Some(meta) = table.partition(pid).and_then(|p| p.meta(&endpoint)) else {
            return Ok(general(308, "pid does not exist"));
        };
        if meta.alive() {
            return Ok(general(311, "table is alive, need not recover"));
        }
        let is_leader = meta.is_leader;
        let delta = self.flags.check_binlog_sync_progress_delta;
        let concurrency = self.flags.name_server_task_concurrency;
        let created =
            self.create_recover_table_op(&mut state, &name, &db, pid, &endpoint, is_leader, delta, concurrency).await;
        if let Err((code, msg)) = created {
            // OpenMLDB ignores this failure and answers ok; the log is all that tells.
            tracing::warn!("RecoverTable {db}.{name} pid {pid} on {endpoint}: no op: {code} {msg}");
        }
        Ok(ok())
    }

    fn concurrency_of(&self, request: &Body<'_>) -> Result<u32, Value> {
        match request.u32("concurrency") {
            Some(c) if c > self.flags.name_server_task_max_concurrency => Err(general(307, "invalid parameter")),
            Some(c) => Ok(c),
            None => Ok(self.flags.name_server_task_concurrency),
        }
    }

    /// RecoverEndpoint (C§2.3).
    async fn recover_endpoint(&self, request: &Body<'_>) -> Reply {
        let endpoint = request.str("endpoint").unwrap_or_default();
        let need_restore = request.bool("need_restore").unwrap_or(false);
        let mut state = self.lock().await;
        if state.auto_failover {
            return Ok(auto_failover_on());
        }
        let concurrency = match self.concurrency_of(request) {
            Ok(c) => c,
            Err(reply) => return Ok(reply),
        };
        let Some(tablet) = state.tablets.get(&endpoint) else {
            return Ok(general(302, "endpoint does not exist"));
        };
        if tablet.health != super::TabletHealth::Healthy {
            return Ok(general(303, "tablet is not healthy"));
        }
        self.recover_endpoint_ops(&mut state, &endpoint, need_restore, concurrency).await;
        Ok(ok())
    }

    /// OfflineEndpoint (C§2.3); health is not required.
    async fn offline_endpoint(&self, request: &Body<'_>) -> Reply {
        let endpoint = request.str("endpoint").unwrap_or_default();
        let mut state = self.lock().await;
        if state.auto_failover {
            return Ok(auto_failover_on());
        }
        let concurrency = match self.concurrency_of(request) {
            Ok(c) => c,
            Err(reply) => return Ok(reply),
        };
        if !state.tablets.contains_key(&endpoint) {
            return Ok(general(302, "endpoint does not exist"));
        }
        self.offline_endpoint_ops(&mut state, &endpoint, concurrency).await;
        Ok(ok())
    }

    /// UpdateTableAliveStatus (C§2.3): metadata only.
    async fn update_table_alive(&self, request: &Body<'_>) -> Reply {
        let name = request.str("name").unwrap_or_default();
        let db = request.str("db").unwrap_or_default();
        let endpoint = request.str("endpoint").unwrap_or_default();
        let pid = request.u32("pid");
        let is_alive = request.bool("is_alive").unwrap_or(false);
        let mut state = self.lock().await;
        if state.auto_failover {
            return Ok(auto_failover_on());
        }
        if !state.tablets.contains_key(&endpoint) {
            return Ok(general(302, "endpoint does not exist"));
        }
        let Some(table) = state.table_mut(&name, &db) else {
            return Ok(general(100, "table does not exist"));
        };
        let mut updated = false;
        for partition in table.table_partition.iter_mut().filter(|p| pid.is_none_or(|pid| pid == p.pid)) {
            if let Some(meta) = partition.meta_mut(&endpoint) {
                meta.is_alive = Some(is_alive);
                updated = true;
            }
        }
        if !updated {
            return Ok(general(321, "no pid has update"));
        }
        let table = table.clone();
        drop(state);
        if self.persist_table(&table).await.is_err() {
            return Ok(general(304, "set zk failed"));
        }
        Ok(ok())
    }

    /// GetTablePartition (`name_server_impl.cc:2040-2070`): a copy of one partition's metadata;
    /// answers on the leader whatever auto_failover is. A pid the table does not have answers
    /// ok without `table_partition`.
    async fn get_table_partition(&self, request: &Body<'_>) -> Reply {
        let name = request.str("name").unwrap_or_default();
        let db = request.str("db").unwrap_or_default();
        let pid = request.u32("pid").unwrap_or(0);
        let state = self.lock().await;
        let Some(table) = state.table(&name, &db) else {
            return Ok(general(100, "table does not exist"));
        };
        let mut reply = ok();
        if let Some(partition) = table.table_partition.iter().find(|p| p.pid == pid) {
            reply["table_partition"] = json!(partition);
        }
        Ok(reply)
    }

    /// SetTablePartition (`name_server_impl.cc:2072-2116`): replaces the partition of the
    /// request's pid with the request's, as it is (no check of its replicas, leaders or terms),
    /// and writes the table's node; refused while auto_failover is on. Without
    /// `table_partition` the default message (pid 0, no replicas) replaces pid 0, as
    /// `request->table_partition()` does in the source; a pid the table does not have changes
    /// nothing and answers ok.
    async fn set_table_partition(&self, request: &Body<'_>) -> Reply {
        let name = request.str("name").unwrap_or_default();
        let db = request.str("db").unwrap_or_default();
        let partition = request
            .message("table_partition", "openmldb.nameserver.TablePartition")
            .map(|body| table_partition_of(&body))
            .unwrap_or_default();
        let mut state = self.lock().await;
        if state.auto_failover {
            return Ok(auto_failover_on());
        }
        let Some(table) = state.table_mut(&name, &db) else {
            return Ok(general(100, "table does not exist"));
        };
        let Some(slot) = table.table_partition.iter_mut().find(|p| p.pid == partition.pid) else {
            return Ok(ok());
        };
        *slot = partition;
        let table = table.clone();
        drop(state);
        if self.persist_table(&table).await.is_err() {
            return Ok(general(304, "set zk failed"));
        }
        Ok(ok())
    }

    async fn conf_get(&self) -> Reply {
        let state = self.lock().await;
        Ok(json!({ "code": 0, "msg": "ok",
                   "conf": [{ "key": "auto_failover", "value": state.auto_failover.to_string() }] }))
    }

    /// ConfSet (C§2.3): only `auto_failover`, value true/false in any case, lower-cased.
    async fn conf_set(&self, request: &Body<'_>) -> Reply {
        let Some(conf) = request.message("conf", "openmldb.nameserver.Pair") else {
            return Ok(general(307, "invalid parameter"));
        };
        let key = conf.str("key").unwrap_or_default();
        let value = conf.str("value").unwrap_or_default().to_ascii_lowercase();
        if key != "auto_failover" || (value != "true" && value != "false") {
            return Ok(general(307, "invalid parameter"));
        }
        let mut state = self.lock().await;
        if self.zk().await.put(&self.paths.auto_failover(), &value).await.is_err() {
            return Ok(general(304, "set zk failed"));
        }
        state.auto_failover = value == "true";
        Ok(ok())
    }

    /// CancelOP (C§2.3): flips the op and its tasks to kCanceled and tells the tablets.
    async fn cancel_op(&self, request: &Body<'_>) -> Reply {
        let op_id = request.u64("op_id").unwrap_or(0);
        let mut state = self.lock().await;
        if state.auto_failover {
            return Ok(auto_failover_on());
        }
        let op = state.queues.iter_mut().flatten().find(|o| o.info.op_id == op_id);
        let Some(op) = op.filter(|o| matches!(o.info.task_status, TaskStatus::kInited | TaskStatus::kDoing)) else {
            return Ok(general(312, "op status is not kDoing or kInited"));
        };
        cancel(op);
        let tablets = state.healthy_tablets();
        drop(state);
        for endpoint in tablets {
            let _ = self.call_tablet(&endpoint, "CancelOP", &json!({ "op_id": op_id })).await;
        }
        self.wake_ops.notify_one();
        Ok(ok())
    }

    /// DeleteOP (C§2.3, ≥0.8.5): removes finished ops from the done list.
    async fn delete_op(&self, request: &Body<'_>) -> Reply {
        let op_id = request.u64("op_id");
        let db = request.str("db");
        let status = request.enum_name("status", TaskStatus::ALL).and_then(|s| TaskStatus::from_name(&s));
        let mut state = self.lock().await;
        match op_id {
            Some(op_id) => {
                let before = state.done_ops.len();
                let mut removed = Vec::new();
                state.done_ops.retain(|o| {
                    let hit = o.info.op_id == op_id;
                    if hit {
                        removed.push(o.info.op_id);
                    }
                    !hit
                });
                if state.done_ops.len() == before {
                    return Ok(general(136, "op id does not exist"));
                }
                drop(state);
                let zk = self.zk().await;
                for id in removed {
                    let _ = zk.delete(&self.paths.op_data(id)).await;
                }
            }
            None => {
                if matches!(status, Some(TaskStatus::kInited | TaskStatus::kDoing)) {
                    return Ok(general(307, "cannot delete the Inited OP"));
                }
                let mut removed = Vec::new();
                state.done_ops.retain(|o| {
                    let hit =
                        status.is_none_or(|s| s == o.info.task_status) && db.as_ref().is_none_or(|d| *d == o.info.db);
                    if hit {
                        removed.push(o.info.op_id);
                    }
                    !hit
                });
                drop(state);
                let zk = self.zk().await;
                for id in removed {
                    let _ = zk.delete(&self.paths.op_data(id)).await;
                }
            }
        }
        Ok(ok())
    }

    async fn create_database(&self, request: &Body<'_>) -> Reply {
        let db = request.str("db").unwrap_or_default();
        let if_not_exists = request.bool("if_not_exists").unwrap_or(false);
        if db.is_empty() {
            return Ok(general(307, "invalid parameter"));
        }
        let exists = self.lock().await.dbs.contains(&db);
        if exists {
            return Ok(if if_not_exists { ok() } else { general(801, "database already exists") });
        }
        let zk = self.zk().await;
        if zk.create_if_missing(&self.paths.db(&db), "").await.is_err() {
            return Ok(general(450, "create zk failed"));
        }
        self.lock().await.dbs.insert(db);
        Ok(ok())
    }

    async fn use_database(&self, request: &Body<'_>) -> Reply {
        let db = request.str("db").unwrap_or_default();
        if self.lock().await.dbs.contains(&db) {
            Ok(ok())
        } else {
            Ok(general(802, "database not found"))
        }
    }

    /// CreateTable: `table_info{name, db, partition_num, replica_num, column_desc...}`.
    async fn create_table(&self, request: &Body<'_>) -> Reply {
        let Some(info) = request.message("table_info", "openmldb.nameserver.TableInfo") else {
            return Ok(general(307, "invalid parameter"));
        };
        let name = info.str("name").unwrap_or_default();
        let db = info.str("db").unwrap_or_default();
        if name.is_empty() {
            return Ok(general(307, "invalid parameter"));
        }
        if !db.is_empty() && !self.lock().await.dbs.contains(&db) {
            return Ok(general(802, "database not found"));
        }
        let partition_num = info.u32("partition_num").unwrap_or(8);
        let replica_num = info.u32("replica_num").unwrap_or(3);
        let columns = |field| info.raw(field).and_then(Value::as_array).cloned().unwrap_or_default();
        // `TableInfo.storage_mode`, kMemory when unset (its proto default).
        let storage_mode = info
            .enum_name("storage_mode", StorageMode::ALL)
            .and_then(|m| StorageMode::from_name(&m))
            .unwrap_or(StorageMode::kMemory);
        match self
            .create_table_internal(
                &name,
                &db,
                partition_num,
                replica_num,
                storage_mode,
                columns("column_desc"),
                columns("column_key"),
            )
            .await
        {
            Ok(_) => Ok(ok()),
            Err((code, msg)) => Ok(general(code, &msg)),
        }
    }

    /// DropTable (`NameServerImpl::DropTable` → `DropTableInternel`,
    /// `src/nameserver/name_server_impl.cc:3063-3245`; what OpenMLDB's SDK sends for `DROP
    /// TABLE`): 100 for an unknown table; otherwise DropTable on every alive replica of a
    /// healthy tablet (a failure makes the answer 313 "drop table error" but the drop goes on),
    /// the ZooKeeper node deleted, the table's inited or running ops canceled (on the tablets
    /// too), and `/table/notify` bumped. The simulator has no deployments, so none stops it.
    async fn drop_table(&self, request: &Body<'_>) -> Reply {
        let name = request.str("name").unwrap_or_default();
        let db = request.str("db").unwrap_or_default();
        let mut state = self.lock().await;
        let Some(table) = state.table(&name, &db).cloned() else {
            return Ok(general(100, "table does not exist!"));
        };
        let healthy = state.healthy_tablets();
        let mut canceled = Vec::new();
        for op in state.queues.iter_mut().flatten() {
            let running = matches!(op.info.task_status, TaskStatus::kInited | TaskStatus::kDoing);
            if running && op.info.db == db && op.info.name == name {
                cancel(op);
                canceled.push(op.info.op_id);
            }
        }
        state.tables.remove(&table.tid);
        drop(state);
        let mut code = 0;
        let mut endpoints = std::collections::BTreeSet::new();
        for partition in &table.table_partition {
            for meta in &partition.partition_meta {
                if !meta.alive() || !healthy.contains(&meta.endpoint) {
                    continue;
                }
                endpoints.insert(meta.endpoint.clone());
                let dropped = self
                    .call_tablet(&meta.endpoint, "DropTable", &json!({ "tid": table.tid, "pid": partition.pid }))
                    .await;
                if !matches!(dropped, Ok(reply) if crate::sim::http::reply_code(&reply) == 0) {
                    code = 313;
                }
            }
        }
        let zk = self.zk().await;
        if zk.delete(&self.paths.table_data(table.tid)).await.is_err() {
            code = 304;
        }
        for op_id in canceled {
            for endpoint in &endpoints {
                let _ = self.call_tablet(endpoint, "CancelOP", &json!({ "op_id": op_id })).await;
            }
        }
        let _ = zk.add_to_counter(&self.paths.table_notify(), 1, 1).await;
        self.wake_ops.notify_one();
        Ok(if code == 0 { ok() } else { general(code, "drop table error") })
    }
}

/// Flips an op and its tasks to kCanceled (CancelOP, and DropTable for the table's ops).
fn cancel(op: &mut super::ops::Op) {
    op.info.task_status = TaskStatus::kCanceled;
    for task in op.tasks.iter_mut() {
        task.status = TaskStatus::kCanceled;
    }
}
