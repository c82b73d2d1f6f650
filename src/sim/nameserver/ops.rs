//! The op engine (C§3): ops with task chains in 10 serial queues, tablet tasks polled with
//! GetTaskStatus, ops persisted in `<root>/op/op_data/<id>` so a new leader resumes them.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use super::{now_ms, NameServer, NsState};
use crate::sim::http;
use crate::sim::proto::{OpStatus, OpType, PartitionMeta, TableInfo, TableMode, TaskStatus, TaskType, TermPair};

/// The placeholder endpoint of RecoverEndpoint(need_restore)'s second RecoverTable op: "the dead
/// leader of this partition" (C§3.1).
pub const OFFLINE_LEADER_ENDPOINT: &str = "OFFLINE_LEADER_ENDPOINT";

/// `openmldb.api.OPInfo`, stored as JSON in `<root>/op/op_data/<op_id>`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OpInfo {
    pub op_id: u64,
    pub op_type: OpType,
    /// Number of tasks already done.
    pub task_index: u32,
    /// The op-specific data ([`OpData`]) as JSON text.
    pub data: String,
    pub task_status: TaskStatus,
    pub start_time: u64,
    pub end_time: u64,
    pub name: String,
    pub pid: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<u64>,
    pub vec_idx: u32,
    pub for_replica_cluster: i32,
    pub db: String,
}

/// The data every op type needs, in one struct (real OpenMLDB has one message per op type).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct OpData {
    pub tid: u32,
    /// The replica the op is about (added, removed, recovered, offlined).
    #[serde(default)]
    pub endpoint: String,
    /// The alive leader when the op was created (task chains address it).
    #[serde(default)]
    pub leader: String,
    #[serde(default)]
    pub des_endpoint: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub candidate_leader: Option<String>,
    #[serde(default)]
    pub followers: Vec<String>,
    #[serde(default)]
    pub is_leader: bool,
    #[serde(default)]
    pub is_alive: bool,
    #[serde(default)]
    pub offset_delta: u64,
    #[serde(default)]
    pub concurrency: u32,
    /// Filled by SelectLeader.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_leader: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub term: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
}

/// One step of an op.
#[derive(Debug, Clone)]
pub struct Task {
    pub task_type: TaskType,
    /// The tablet that runs it; `None` for tasks the nameserver runs itself.
    pub endpoint: Option<String>,
    pub status: TaskStatus,
    pub is_rpc_send: bool,
    /// Tablet replies seen while kDoing (C§3.2: a lost task fails after more than 5).
    pub check_num: u32,
    /// Reloaded after a nameserver failover: fails on the first poll if the tablet lost it.
    pub after_failover: bool,
}

#[derive(Debug, Clone)]
pub struct Op {
    pub info: OpInfo,
    pub data: OpData,
    pub tasks: VecDeque<Task>,
}

impl Op {
    pub fn status(&self) -> OpStatus {
        let task_type = match (self.info.task_status, self.tasks.front()) {
            (TaskStatus::kInited, _) | (_, None) => "-".to_string(),
            (_, Some(task)) => task.task_type.name().to_string(),
        };
        OpStatus {
            op_id: self.info.op_id,
            op_type: self.info.op_type.name().to_string(),
            status: self.info.task_status.name().to_string(),
            start_time: self.info.start_time,
            end_time: self.info.end_time,
            task_type,
            name: Some(self.info.name.clone()),
            pid: Some(self.info.pid),
            for_replica_cluster: Some(self.info.for_replica_cluster),
            db: Some(self.info.db.clone()),
        }
    }
}

fn tablet_task(task_type: TaskType, endpoint: &str) -> Task {
    Task {
        task_type,
        endpoint: Some(endpoint.to_string()),
        status: TaskStatus::kInited,
        is_rpc_send: false,
        check_num: 0,
        after_failover: false,
    }
}

fn local_task(task_type: TaskType) -> Task {
    Task {
        task_type,
        endpoint: None,
        status: TaskStatus::kInited,
        is_rpc_send: false,
        check_num: 0,
        after_failover: false,
    }
}

/// The task chain of each op type (C§3.1), derived from the op data only, so a new leader
/// rebuilds exactly the same chain.
pub fn build_tasks(op_type: OpType, data: &OpData) -> Vec<Task> {
    use TaskType::*;
    let leader = data.leader.as_str();
    let ep = data.endpoint.as_str();
    match op_type {
        OpType::kChangeLeaderOP => {
            vec![local_task(kSelectLeader), local_task(kChangeLeader), local_task(kUpdateLeaderInfo)]
        }
        OpType::kAddReplicaOP => vec![
            tablet_task(kPauseSnapshot, leader),
            tablet_task(kSendSnapshot, leader),
            tablet_task(kLoadTable, ep),
            tablet_task(kAddReplica, leader),
            tablet_task(kRecoverSnapshot, leader),
            local_task(kAddTableInfo),
            local_task(kCheckBinlogSyncProgress),
            local_task(kUpdatePartitionStatus),
        ],
        OpType::kDelReplicaOP => {
            vec![tablet_task(kDelReplica, leader), local_task(kDelTableInfo), tablet_task(kDropTable, ep)]
        }
        OpType::kMigrateOP => vec![
            tablet_task(kPauseSnapshot, leader),
            tablet_task(kSendSnapshot, leader),
            tablet_task(kRecoverSnapshot, leader),
            tablet_task(kLoadTable, &data.des_endpoint),
            tablet_task(kAddReplica, leader),
            local_task(kAddTableInfo),
            local_task(kCheckBinlogSyncProgress),
            tablet_task(kDelReplica, leader),
            local_task(kUpdateTableInfo),
            tablet_task(kDropTable, ep),
        ],
        OpType::kOfflineReplicaOP => vec![tablet_task(kDelReplica, leader), local_task(kUpdatePartitionStatus)],
        OpType::kUpdatePartitionStatusOP => vec![local_task(kUpdatePartitionStatus)],
        OpType::kRecoverTableOP => {
            let mut tasks = Vec::new();
            if !data.is_leader {
                tasks.push(tablet_task(kDelReplica, leader));
            }
            tasks.push(local_task(kRecoverTable));
            tasks
        }
        OpType::kReAddReplicaOP => vec![
            tablet_task(kPauseSnapshot, leader),
            tablet_task(kSendSnapshot, leader),
            tablet_task(kLoadTable, ep),
            tablet_task(kAddReplica, leader),
            tablet_task(kRecoverSnapshot, leader),
            local_task(kCheckBinlogSyncProgress),
            local_task(kUpdatePartitionStatus),
        ],
        OpType::kReAddReplicaNoSendOP => vec![
            tablet_task(kPauseSnapshot, leader),
            tablet_task(kLoadTable, ep),
            tablet_task(kAddReplica, leader),
            tablet_task(kRecoverSnapshot, leader),
            local_task(kCheckBinlogSyncProgress),
            local_task(kUpdatePartitionStatus),
        ],
        OpType::kReAddReplicaWithDropOP => vec![
            tablet_task(kPauseSnapshot, leader),
            tablet_task(kDropTable, ep),
            tablet_task(kSendSnapshot, leader),
            tablet_task(kLoadTable, ep),
            tablet_task(kAddReplica, leader),
            tablet_task(kRecoverSnapshot, leader),
            local_task(kCheckBinlogSyncProgress),
            local_task(kUpdatePartitionStatus),
        ],
        OpType::kReAddReplicaSimplifyOP => {
            vec![
                tablet_task(kAddReplica, leader),
                local_task(kCheckBinlogSyncProgress),
                local_task(kUpdatePartitionStatus),
            ]
        }
        OpType::kReLoadTableOP => vec![tablet_task(kLoadTable, ep), local_task(kUpdatePartitionStatus)],
        OpType::kMakeSnapshotOP => vec![tablet_task(kMakeSnapshot, leader)],
    }
}

/// Rebuilds the queues from `op_data` after a failover (C§3.2): done/canceled skipped, failed
/// to the done list, others resume after their completed tasks.
pub fn reload_ops(state: &mut NsState, infos: Vec<OpInfo>, max_op_num: usize) {
    let mut infos = infos;
    infos.sort_by_key(|i| i.op_id);
    let queue_count = state.queues.len().max(1);
    for info in infos {
        let data: OpData = serde_json::from_str(&info.data).unwrap_or_default();
        let mut tasks: VecDeque<Task> = build_tasks(info.op_type, &data).into();
        for _ in 0..info.task_index {
            tasks.pop_front();
        }
        let mut op = Op { info, data, tasks };
        match op.info.task_status {
            TaskStatus::kDone | TaskStatus::kCanceled => continue,
            TaskStatus::kFailed => {
                push_done(state, op, max_op_num);
                continue;
            }
            _ => {}
        }
        if let Some(front) = op.tasks.front_mut() {
            if front.endpoint.is_some() && op.info.task_status == TaskStatus::kDoing {
                // A tablet task is re-polled and fails if the tablet no longer knows it.
                front.status = TaskStatus::kDoing;
                front.is_rpc_send = true;
                front.after_failover = true;
            }
        }
        let idx = (op.info.vec_idx as usize).min(queue_count - 1);
        let queue = &mut state.queues[idx];
        match op.info.parent_id.and_then(|p| queue.iter().position(|o| o.info.op_id == p)) {
            Some(pos) => {
                // after the parent and any earlier children of it
                let mut at = pos + 1;
                while at < queue.len() && queue[at].info.parent_id == op.info.parent_id {
                    at += 1;
                }
                queue.insert(at, op)
            }
            None => queue.push_back(op),
        }
    }
}

fn push_done(state: &mut NsState, op: Op, max_op_num: usize) {
    state.done_ops.push_back(op);
    while state.done_ops.len() > max_op_num {
        state.done_ops.pop_front();
    }
}

/// Why an op could not be created: `(code, msg)` for the RPC reply.
pub type CreateOpError = (i32, String);

impl NameServer {
    /// Queue index of C§3.3.
    fn queue_index(&self, pid: u32, concurrency: u32) -> usize {
        let queues = self.flags.op_queue_count() as u32;
        let idx = if concurrency > 0 && concurrency < queues { pid % concurrency } else { pid % queues };
        idx as usize
    }

    async fn persist_op(&self, info: &OpInfo) -> bool {
        let zk = self.zk().await;
        zk.put(&self.paths.op_data(info.op_id), &serde_json::to_string(info).unwrap_or_default()).await.is_ok()
    }

    /// Creates an op (C§3.2 "Creation"): the id is taken from `op_index` first, the chain
    /// must only address healthy tablets, the op is persisted and queued. A child op goes
    /// right after its parent.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn create_op(
        &self,
        state: &mut NsState,
        op_type: OpType,
        name: &str,
        db: &str,
        pid: u32,
        data: OpData,
        concurrency: u32,
        parent_id: Option<u64>,
    ) -> Result<u64, CreateOpError> {
        let zk = self.zk().await;
        let op_id =
            zk.add_to_counter(&self.paths.op_index(), 1, 0).await.map_err(|_| (304, "set zk failed".to_string()))?;
        let tasks = build_tasks(op_type, &data);
        for task in &tasks {
            if let Some(endpoint) = &task.endpoint {
                if endpoint.is_empty() || !state.is_healthy(endpoint) {
                    return Err((305, "create op failed".to_string()));
                }
            }
        }
        let parent_queue = parent_id
            .and_then(|p| state.queues.iter().position(|q| q.iter().any(|o| o.info.op_id == p)).map(|q| (q, p)));
        let vec_idx = match parent_queue {
            Some((q, _)) => q,
            None => self.queue_index(pid, concurrency),
        };
        let info = OpInfo {
            op_id,
            op_type,
            task_index: 0,
            data: serde_json::to_string(&data).unwrap_or_default(),
            task_status: TaskStatus::kInited,
            start_time: 0,
            end_time: 0,
            name: name.to_string(),
            pid,
            parent_id,
            vec_idx: vec_idx as u32,
            for_replica_cluster: 0,
            db: db.to_string(),
        };
        if !self.persist_op(&info).await {
            return Err((306, "add op data failed".to_string()));
        }
        let op = Op { info, data, tasks: tasks.into() };
        let queue = &mut state.queues[vec_idx];
        match parent_queue.and_then(|(_, p)| queue.iter().position(|o| o.info.op_id == p)) {
            Some(pos) => queue.insert(pos + 1, op),
            None => queue.push_back(op),
        }
        self.wake_ops.notify_one();
        Ok(op_id)
    }

    /// `CreateChangeLeaderOP` (C§3.5): `Ok(None)` when no alive follower sits on a healthy
    /// tablet (the RPC then answers OK without an op).
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn create_change_leader_op(
        &self,
        state: &mut NsState,
        name: &str,
        db: &str,
        pid: u32,
        candidate: Option<String>,
        need_restore: bool,
        concurrency: u32,
    ) -> Result<Option<u64>, CreateOpError> {
        let Some(table) = state.table(name, db) else {
            return Err((100, "table does not exist".to_string()));
        };
        let Some(partition) = table.partition(pid) else {
            return Err((308, "pid does not exist".to_string()));
        };
        let mut followers: Vec<String> = partition
            .partition_meta
            .iter()
            .filter(|m| m.alive() && !m.is_leader && state.is_healthy(&m.endpoint))
            .map(|m| m.endpoint.clone())
            .collect();
        // RecoverEndpoint(need_restore) names the recovering replica, not alive yet (C§3.4).
        if let Some(candidate) = candidate.as_ref().filter(|c| need_restore && !followers.contains(c)) {
            followers.push(candidate.clone());
        }
        if followers.is_empty() {
            return Ok(None);
        }
        if let Some(candidate) = &candidate {
            if !followers.contains(candidate) {
                return Err((305, "create op failed".to_string()));
            }
        }
        let data = OpData {
            tid: table.tid,
            leader: partition.alive_leader().map(|m| m.endpoint.clone()).unwrap_or_default(),
            candidate_leader: candidate,
            followers,
            concurrency,
            ..OpData::default()
        };
        self.create_op(state, OpType::kChangeLeaderOP, name, db, pid, data, concurrency, None).await.map(Some)
    }

    /// Common data of ops that address the partition's alive leader.
    fn op_data_for(state: &NsState, name: &str, db: &str, pid: u32, endpoint: &str) -> Result<OpData, CreateOpError> {
        let table = state.table(name, db).ok_or((100, "table does not exist".to_string()))?;
        let partition = table.partition(pid).ok_or((308, "pid does not exist".to_string()))?;
        Ok(OpData {
            tid: table.tid,
            endpoint: endpoint.to_string(),
            leader: partition.alive_leader().map(|m| m.endpoint.clone()).unwrap_or_default(),
            ..OpData::default()
        })
    }

    /// kRecoverTableOP (C§3.1, C§3.4).
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn create_recover_table_op(
        &self,
        state: &mut NsState,
        name: &str,
        db: &str,
        pid: u32,
        endpoint: &str,
        is_leader: bool,
        offset_delta: u64,
        concurrency: u32,
    ) -> Result<u64, CreateOpError> {
        let mut data = Self::op_data_for(state, name, db, pid, endpoint)?;
        if !is_leader && (data.leader.is_empty() || data.leader == endpoint) {
            return Err((305, "create op failed".to_string()));
        }
        data.is_leader = is_leader;
        data.offset_delta = offset_delta;
        data.concurrency = concurrency;
        self.create_op(state, OpType::kRecoverTableOP, name, db, pid, data, concurrency, None).await
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn create_simple_op(
        &self,
        state: &mut NsState,
        op_type: OpType,
        name: &str,
        db: &str,
        pid: u32,
        endpoint: &str,
        concurrency: u32,
        parent_id: Option<u64>,
        adjust: impl FnOnce(&mut OpData),
    ) -> Result<u64, CreateOpError> {
        let mut data = Self::op_data_for(state, name, db, pid, endpoint)?;
        data.concurrency = concurrency;
        adjust(&mut data);
        self.create_op(state, op_type, name, db, pid, data, concurrency, parent_id).await
    }

    /// `UpdateEndpointTableAlive(ep, false)` (C§3.4 step 1): every meta on `ep` goes dead,
    /// except a partition's last alive replica.
    pub(crate) async fn mark_endpoint_dead(&self, state: &mut NsState, endpoint: &str) {
        let mut changed = Vec::new();
        for table in state.tables.values_mut() {
            let mut touched = false;
            for partition in table.table_partition.iter_mut() {
                let alive = partition.partition_meta.iter().filter(|m| m.alive()).count();
                if let Some(meta) = partition.meta_mut(endpoint) {
                    if meta.alive() && alive != 1 {
                        meta.is_alive = Some(false);
                        touched = true;
                    }
                }
            }
            if touched {
                changed.push(table.clone());
            }
        }
        for table in changed {
            let _ = self.persist_table(&table).await;
        }
    }

    /// `OfflineEndpointInternal` (C§3.4 step 2).
    pub(crate) async fn offline_endpoint_ops(&self, state: &mut NsState, endpoint: &str, concurrency: u32) {
        let mut todo = Vec::new();
        for table in state.tables.values() {
            for partition in &table.table_partition {
                let Some(meta) = partition.meta(endpoint) else { continue };
                let alive_leader = partition.alive_leader().map(|m| m.endpoint.clone());
                let kind = if partition.partition_meta.len() == 1 {
                    Some(OpType::kUpdatePartitionStatusOP)
                } else if meta.is_leader || alive_leader.is_none() {
                    (alive_leader.is_none() || alive_leader.as_deref() == Some(endpoint))
                        .then_some(OpType::kChangeLeaderOP)
                } else {
                    Some(OpType::kOfflineReplicaOP)
                };
                if let Some(kind) = kind {
                    todo.push((kind, table.name.clone(), table.db.clone(), partition.pid));
                }
            }
        }
        for (kind, name, db, pid) in todo {
            let result = match kind {
                OpType::kChangeLeaderOP => {
                    self.create_change_leader_op(state, &name, &db, pid, None, false, concurrency).await.map(|_| 0)
                }
                OpType::kUpdatePartitionStatusOP => {
                    self.create_simple_op(state, kind, &name, &db, pid, endpoint, concurrency, None, |d| {
                        d.is_leader = true;
                        d.is_alive = false;
                    })
                    .await
                }
                _ => self.create_simple_op(state, kind, &name, &db, pid, endpoint, concurrency, None, |_| {}).await,
            };
            if let Err((code, msg)) = result {
                tracing::warn!("offline {endpoint}: cannot create {kind} for {db}.{name} pid {pid}: {code} {msg}");
            }
        }
    }

    /// `RecoverEndpointInternal` (C§3.4).
    pub(crate) async fn recover_endpoint_ops(
        &self,
        state: &mut NsState,
        endpoint: &str,
        need_restore: bool,
        concurrency: u32,
    ) {
        let mut todo = Vec::new();
        for table in state.tables.values() {
            for partition in &table.table_partition {
                let Some(meta) = partition.meta(endpoint) else { continue };
                if meta.alive() && partition.partition_meta.len() > 1 {
                    continue;
                }
                todo.push((table.name.clone(), table.db.clone(), partition.pid, meta.is_leader));
            }
        }
        for (name, db, pid, is_leader) in todo {
            let delta = if need_restore { 0 } else { self.flags.check_binlog_sync_progress_delta };
            let created =
                self.create_recover_table_op(state, &name, &db, pid, endpoint, is_leader, delta, concurrency).await;
            if let Err((code, msg)) = created {
                tracing::warn!("recover {endpoint}: no RecoverTable op for {db}.{name} pid {pid}: {code} {msg}");
            }
            if need_restore && is_leader {
                let _ = self
                    .create_change_leader_op(state, &name, &db, pid, Some(endpoint.to_string()), true, concurrency)
                    .await;
                // The leader replaced by that ChangeLeader, whichever it is then (C§3.4).
                let delta = self.flags.check_binlog_sync_progress_delta;
                let _ = self
                    .create_recover_table_op(state, &name, &db, pid, OFFLINE_LEADER_ENDPOINT, true, delta, concurrency)
                    .await;
            }
        }
    }
}

/// `OnTabletOffline` (C§3.4).
pub async fn on_tablet_offline(ns: Arc<NameServer>, endpoint: String, startup: bool) {
    let Some(token) = ns.leadership_token() else { return };
    loop {
        if !ns.is_running() || token.is_cancelled() {
            return;
        }
        {
            let mut state = ns.lock().await;
            let Some(record) = state.tablets.get(&endpoint) else { return };
            let Some(&offline_at) = state.offline_since.get(&endpoint) else { return };
            if !startup && record.health == super::TabletHealth::Healthy {
                return;
            }
            if state.tables.is_empty() {
                return;
            }
            let due = offline_at + ns.flags.tablet_heartbeat_timeout.as_millis() as u64;
            if startup || now_ms() >= due {
                if state.auto_failover {
                    ns.mark_endpoint_dead(&mut state, &endpoint).await;
                    ns.offline_endpoint_ops(&mut state, &endpoint, ns.flags.name_server_task_concurrency).await;
                }
                return;
            }
        }
        tokio::select! {
            _ = token.cancelled() => return,
            _ = tokio::time::sleep(ns.flags.tablet_offline_check_interval) => {}
        }
    }
}

/// `OnTabletOnline` (C§3.4).
pub async fn on_tablet_online(ns: Arc<NameServer>, endpoint: String) {
    if !ns.is_running() {
        return;
    }
    let value = ns.zk().await.get(&ns.paths.node(&endpoint)).await.ok().flatten();
    {
        let mut state = ns.lock().await;
        if !state.auto_failover {
            state.offline_since.remove(&endpoint);
            return;
        }
        let Some(&offline_at) = state.offline_since.get(&endpoint) else { return };
        let Some(value) = &value else {
            state.offline_since.remove(&endpoint);
            return;
        };
        if state.tables.is_empty() {
            state.offline_since.remove(&endpoint);
            return;
        }
        if !value.starts_with("startup_")
            && now_ms() < offline_at + ns.flags.tablet_heartbeat_timeout.as_millis() as u64
        {
            // a ZooKeeper flap, not a restart
            state.offline_since.remove(&endpoint);
            return;
        }
    }
    if value.as_deref().is_some_and(|v| v.starts_with("startup_")) {
        on_tablet_offline(ns.clone(), endpoint.clone(), true).await;
    }
    let mut state = ns.lock().await;
    ns.recover_endpoint_ops(&mut state, &endpoint, false, ns.flags.name_server_task_concurrency).await;
    state.offline_since.remove(&endpoint);
}

/// `ProcessTask` (C§3.2): looks at the front op of every queue, starts its front task, pops
/// done tasks, and retires finished ops.
pub async fn process_ops_loop(ns: Arc<NameServer>, token: CancellationToken) {
    loop {
        if token.is_cancelled() {
            return;
        }
        let mut to_start: Vec<(u64, Task, OpType, OpData, String, u32)> = Vec::new();
        let mut to_finish: Vec<u64> = Vec::new();
        {
            let mut state = ns.lock().await;
            for qi in 0..state.queues.len() {
                let Some(op) = state.queues[qi].front_mut() else { continue };
                if op.info.task_status == TaskStatus::kInited {
                    op.info.task_status = TaskStatus::kDoing;
                    op.info.start_time = now_ms() / 1000;
                    let info = op.info.clone();
                    ns.persist_op(&info).await;
                }
                let Some(op) = state.queues[qi].front_mut() else { continue };
                loop {
                    let front_status = op.tasks.front().map(|t| t.status);
                    match front_status {
                        Some(TaskStatus::kDone) => {
                            op.tasks.pop_front();
                            op.info.task_index += 1;
                            let info = op.info.clone();
                            ns.persist_op(&info).await;
                        }
                        _ => break,
                    }
                }
                let canceled = op.info.task_status == TaskStatus::kCanceled;
                match op.tasks.front_mut() {
                    None => to_finish.push(op.info.op_id),
                    Some(task) if canceled || task.status == TaskStatus::kFailed => to_finish.push(op.info.op_id),
                    Some(task) if task.status == TaskStatus::kInited => {
                        task.status = TaskStatus::kDoing;
                        to_start.push((
                            op.info.op_id,
                            task.clone(),
                            op.info.op_type,
                            op.data.clone(),
                            op.info.name.clone(),
                            op.info.pid,
                        ));
                    }
                    Some(_) => {}
                }
            }
        }
        for (op_id, task, op_type, data, name, pid) in to_start {
            tokio::spawn(run_task(ns.clone(), op_id, task, op_type, data, name, pid));
        }
        for op_id in to_finish {
            finish_op(&ns, op_id).await;
        }
        tokio::select! {
            _ = token.cancelled() => return,
            _ = ns.wake_ops.notified() => {}
            _ = tokio::time::sleep(ns.flags.name_server_task_wait_time) => {}
        }
    }
}

/// `DeleteTask` + retirement (C§3.2): every healthy tablet must drop the op's tasks first.
async fn finish_op(ns: &Arc<NameServer>, op_id: u64) {
    let tablets = ns.lock().await.healthy_tablets();
    for endpoint in tablets {
        let reply = ns.call_tablet(&endpoint, "DeleteOPTask", &json!({ "op_id": [op_id] })).await;
        if !matches!(reply, Ok(ref r) if http::reply_code(r) == 0) {
            return; // retried on the next round
        }
    }
    let zk = ns.zk().await;
    let mut state = ns.lock().await;
    let Some(qi) = state.queues.iter().position(|q| q.front().is_some_and(|o| o.info.op_id == op_id)) else {
        return;
    };
    let Some(mut op) = state.queues[qi].pop_front() else { return };
    op.info.end_time = now_ms() / 1000;
    if op.info.task_status == TaskStatus::kCanceled {
        let _ = zk.delete(&ns.paths.op_data(op_id)).await;
    } else if op.tasks.is_empty() {
        op.info.task_status = TaskStatus::kDone;
        let _ = zk.delete(&ns.paths.op_data(op_id)).await;
    } else {
        op.info.task_status = TaskStatus::kFailed;
        ns.persist_op(&op.info).await;
    }
    tracing::info!(op_id, op_type = %op.info.op_type, status = %op.info.task_status, "op finished");
    push_done(&mut state, op, ns.flags.max_op_num);
    drop(state);
    ns.wake_ops.notify_one();
}

/// Sets the status of an op's front task, if it is still the one running.
async fn set_task_status(ns: &NameServer, op_id: u64, task_type: TaskType, status: TaskStatus) {
    let mut state = ns.lock().await;
    for queue in state.queues.iter_mut() {
        if let Some(op) = queue.front_mut().filter(|o| o.info.op_id == op_id) {
            if let Some(task) = op.tasks.front_mut().filter(|t| t.task_type == task_type) {
                if task.status == TaskStatus::kDoing {
                    task.status = status;
                }
            }
        }
    }
    drop(state);
    ns.wake_ops.notify_one();
}

/// Runs one task: a tablet task is sent to its tablet (then polled); a local task runs here.
async fn run_task(ns: Arc<NameServer>, op_id: u64, task: Task, op_type: OpType, data: OpData, name: String, pid: u32) {
    let status = match &task.endpoint {
        Some(endpoint) => {
            let request = tablet_request(op_id, &task, op_type, &data, &name, pid, &ns).await;
            let method = tablet_method(task.task_type);
            tracing::debug!(op_id, %op_type, task_type = %task.task_type, "sending {method} to {endpoint}");
            match ns.call_tablet(endpoint, method, &request).await {
                Ok(reply) if http::reply_code(&reply) == 0 => {
                    mark_sent(&ns, op_id, task.task_type).await;
                    return;
                }
                Ok(reply) => {
                    tracing::warn!(op_id, "{method} on {endpoint} failed: {}", http::reply_msg(&reply));
                    TaskStatus::kFailed
                }
                Err(e) => {
                    tracing::warn!(op_id, "{method} on {endpoint} failed: {e}");
                    TaskStatus::kFailed
                }
            }
        }
        None => run_local_task(&ns, op_id, task.task_type, op_type, data, &name, pid).await,
    };
    set_task_status(&ns, op_id, task.task_type, status).await;
}

async fn mark_sent(ns: &NameServer, op_id: u64, task_type: TaskType) {
    let mut state = ns.lock().await;
    // Bumped before the task counts as sent, under the lock the poll checks it under.
    ns.task_rpc_version.fetch_add(1, Ordering::AcqRel);
    for queue in state.queues.iter_mut() {
        if let Some(op) = queue.front_mut().filter(|o| o.info.op_id == op_id) {
            if let Some(task) = op.tasks.front_mut().filter(|t| t.task_type == task_type) {
                task.is_rpc_send = true;
            }
        }
    }
}

fn tablet_method(task_type: TaskType) -> &'static str {
    match task_type {
        TaskType::kPauseSnapshot => "PauseSnapshot",
        TaskType::kRecoverSnapshot => "RecoverSnapshot",
        TaskType::kSendSnapshot => "SendSnapshot",
        TaskType::kLoadTable => "LoadTable",
        TaskType::kAddReplica => "AddReplica",
        TaskType::kDelReplica => "DelReplica",
        TaskType::kDropTable => "DropTable",
        _ => "MakeSnapshot",
    }
}

async fn tablet_request(
    op_id: u64,
    task: &Task,
    op_type: OpType,
    data: &OpData,
    name: &str,
    pid: u32,
    ns: &NameServer,
) -> Value {
    let tid = data.tid;
    let task_info = json!({
        "op_id": op_id, "op_type": op_type.name(), "task_type": task.task_type.name(),
        "status": "kInited", "endpoint": task.endpoint, "tid": tid, "pid": pid,
    });
    // The replica a leader-side task is about (the new/old follower).
    let target = if op_type == OpType::kMigrateOP && task.task_type != TaskType::kDelReplica {
        data.des_endpoint.clone()
    } else {
        data.endpoint.clone()
    };
    match task.task_type {
        TaskType::kLoadTable => {
            let state = ns.lock().await;
            let table = state.tables.get(&tid);
            let term =
                table.and_then(|t| t.partition(pid)).and_then(|p| p.term_offset.last().map(|t| t.term)).unwrap_or(0);
            // ReLoadTable loads a single replica as leader (C§3.1).
            let mode =
                if op_type == OpType::kReLoadTableOP { TableMode::kTableLeader } else { TableMode::kTableFollower };
            // The table's storage mode, as `LoadTableTaskMeta` carries it
            // (`src/nameserver/name_server_impl.cc:10227-10242`): the tablet picks the root by it.
            let mut meta = json!({ "tid": tid, "pid": pid, "name": name, "mode": mode.name(), "term": term,
                                   "storage_mode": table_storage_mode(table) });
            if let Some(table) = table {
                meta["db"] = json!(table.db);
            }
            json!({ "table_meta": meta, "task_info": task_info })
        }
        TaskType::kSendSnapshot | TaskType::kAddReplica | TaskType::kDelReplica => {
            json!({ "tid": tid, "pid": pid, "endpoint": target, "task_info": task_info })
        }
        _ => json!({ "tid": tid, "pid": pid, "task_info": task_info }),
    }
}

/// A table's `storage_mode` by name, kMemory when unset.
fn table_storage_mode(table: Option<&TableInfo>) -> String {
    table.and_then(|t| t.storage_mode.clone()).unwrap_or_else(|| "kMemory".to_string())
}

async fn persist_op_data(ns: &NameServer, op_id: u64, data: &OpData) {
    let mut state = ns.lock().await;
    let mut info = None;
    for queue in state.queues.iter_mut() {
        if let Some(op) = queue.iter_mut().find(|o| o.info.op_id == op_id) {
            op.data = data.clone();
            op.info.data = serde_json::to_string(data).unwrap_or_default();
            info = Some(op.info.clone());
        }
    }
    drop(state);
    if let Some(info) = info {
        ns.persist_op(&info).await;
    }
}

/// Tasks the nameserver runs itself (C§3.1 "N").
async fn run_local_task(
    ns: &Arc<NameServer>,
    op_id: u64,
    task_type: TaskType,
    op_type: OpType,
    mut data: OpData,
    name: &str,
    pid: u32,
) -> TaskStatus {
    let tid = data.tid;
    let ok = match task_type {
        TaskType::kSelectLeader => select_leader(ns, op_id, &mut data, pid).await,
        TaskType::kChangeLeader => change_leader(ns, &data, pid).await,
        TaskType::kUpdateLeaderInfo => update_leader_info(ns, &data, pid).await,
        TaskType::kAddTableInfo => {
            let endpoint =
                if op_type == OpType::kMigrateOP { data.des_endpoint.clone() } else { data.endpoint.clone() };
            edit_partition(ns, tid, pid, |p| {
                if p.meta(&endpoint).is_none() {
                    p.partition_meta.push(PartitionMeta {
                        endpoint: endpoint.clone(),
                        is_leader: false,
                        is_alive: Some(false),
                        ..PartitionMeta::default()
                    });
                }
                true
            })
            .await
        }
        TaskType::kCheckBinlogSyncProgress => check_binlog_sync(ns, op_id, op_type, &data, pid).await,
        TaskType::kUpdatePartitionStatus => {
            let (is_leader, is_alive) = match op_type {
                OpType::kUpdatePartitionStatusOP => (data.is_leader, data.is_alive),
                OpType::kOfflineReplicaOP => (false, false),
                OpType::kReLoadTableOP => (true, true),
                _ => (false, true),
            };
            let endpoint = data.endpoint.clone();
            edit_partition(ns, tid, pid, |p| match p.meta_mut(&endpoint) {
                Some(meta) => {
                    meta.is_leader = is_leader;
                    meta.is_alive = Some(is_alive);
                    true
                }
                None => false,
            })
            .await
        }
        TaskType::kDelTableInfo => {
            let endpoint = data.endpoint.clone();
            edit_partition(ns, tid, pid, |p| {
                p.partition_meta.retain(|m| m.endpoint != endpoint);
                true
            })
            .await
        }
        TaskType::kUpdateTableInfo => {
            let (src, des) = (data.endpoint.clone(), data.des_endpoint.clone());
            edit_partition(ns, tid, pid, |p| {
                if let Some(meta) = p.meta_mut(&des) {
                    meta.is_leader = false;
                    meta.is_alive = Some(true);
                }
                p.partition_meta.retain(|m| m.endpoint != src);
                true
            })
            .await
        }
        TaskType::kRecoverTable => recover_table(ns, op_id, &data, name, pid).await,
        _ => false,
    };
    if ok {
        TaskStatus::kDone
    } else {
        TaskStatus::kFailed
    }
}

/// Applies an edit to one partition's metadata and persists the table.
async fn edit_partition(
    ns: &NameServer,
    tid: u32,
    pid: u32,
    edit: impl FnOnce(&mut crate::sim::proto::TablePartition) -> bool,
) -> bool {
    let mut state = ns.lock().await;
    let Some(table) = state.tables.get_mut(&tid) else { return false };
    let Some(partition) = table.partition_mut(pid) else { return false };
    if !edit(partition) {
        return false;
    }
    let table = table.clone();
    drop(state);
    ns.persist_table(&table).await.is_ok()
}

/// SelectLeader (C§3.5): term += 2, FollowOfNoOne on every follower, pick the candidate or a
/// follower with the highest offset.
async fn select_leader(ns: &Arc<NameServer>, op_id: u64, data: &mut OpData, pid: u32) -> bool {
    {
        let state = ns.lock().await;
        let alive_leader =
            state.tables.get(&data.tid).and_then(|t| t.partition(pid)).and_then(|p| p.alive_leader().cloned());
        if state.auto_failover && alive_leader.is_some() {
            return false;
        }
    }
    let zk = ns.zk().await;
    let Ok(term) = zk.add_to_counter(&ns.paths.term(), 2, 1).await else { return false };
    let cur_term = term - 1;
    let mut best: Vec<(String, u64)> = Vec::new();
    for follower in &data.followers {
        let request = json!({ "tid": data.tid, "pid": pid, "term": cur_term, "pre_log_index": 0 });
        match ns.call_tablet(follower, "AppendEntries", &request).await {
            Ok(reply) if http::reply_code(&reply) == 0 => {
                best.push((follower.clone(), reply.get("log_offset").and_then(Value::as_u64).unwrap_or(0)));
            }
            _ => return false,
        }
    }
    let max_offset = best.iter().map(|(_, o)| *o).max().unwrap_or(0);
    let new_leader = match &data.candidate_leader {
        Some(candidate) => candidate.clone(),
        None => {
            let top: Vec<&String> = best.iter().filter(|(_, o)| *o == max_offset).map(|(e, _)| e).collect();
            if top.is_empty() {
                return false;
            }
            top[random_index(top.len())].clone()
        }
    };
    data.new_leader = Some(new_leader);
    data.term = Some(cur_term);
    data.offset = Some(max_offset);
    persist_op_data(ns, op_id, data).await;
    true
}

fn random_index(len: usize) -> usize {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(now_ms());
    (hasher.finish() as usize) % len.max(1)
}

/// ChangeLeader task: ChangeRole(leader, term+1, other followers) on the new leader. The old
/// leader is neither told nor included (C§3.5).
async fn change_leader(ns: &NameServer, data: &OpData, pid: u32) -> bool {
    let (Some(new_leader), Some(term)) = (&data.new_leader, data.term) else { return false };
    let replicas: Vec<&String> = data.followers.iter().filter(|f| *f != new_leader).collect();
    let request = json!({ "tid": data.tid, "pid": pid, "mode": "kTableLeader", "term": term + 1,
                          "replicas": replicas });
    matches!(ns.call_tablet(new_leader, "ChangeRole", &request).await, Ok(r) if http::reply_code(&r) == 0)
}

/// UpdateLeaderInfo (C§3.5): old alive leader ⇒ is_alive=false (keeps is_leader), new ⇒
/// leader, TermPair{term+1, max_offset+1} appended.
async fn update_leader_info(ns: &NameServer, data: &OpData, pid: u32) -> bool {
    let (Some(new_leader), Some(term), Some(offset)) = (data.new_leader.clone(), data.term, data.offset) else {
        return false;
    };
    edit_partition(ns, data.tid, pid, |p| {
        for meta in p.partition_meta.iter_mut() {
            if meta.is_leader && meta.alive() && meta.endpoint != new_leader {
                meta.is_alive = Some(false);
            }
        }
        let Some(meta) = p.meta_mut(&new_leader) else { return false };
        meta.is_leader = true;
        meta.is_alive = Some(true);
        p.term_offset.push(TermPair { term: term + 1, offset: offset + 1 });
        true
    })
    .await
}

/// CheckBinlogSyncProgress (C§3.6): wait until leader_offset ≤ follower_offset + delta,
/// judged from the offsets of the periodic status refresh.
async fn check_binlog_sync(ns: &NameServer, op_id: u64, op_type: OpType, data: &OpData, pid: u32) -> bool {
    let endpoint = if op_type == OpType::kMigrateOP { data.des_endpoint.clone() } else { data.endpoint.clone() };
    let delta = if matches!(op_type, OpType::kAddReplicaOP | OpType::kMigrateOP) {
        ns.flags.check_binlog_sync_progress_delta
    } else {
        data.offset_delta
    };
    let Some(token) = ns.leadership_token() else { return false };
    loop {
        {
            let state = ns.lock().await;
            let op_alive = state
                .queues
                .iter()
                .any(|q| q.front().is_some_and(|o| o.info.op_id == op_id && o.info.task_status == TaskStatus::kDoing));
            if !op_alive {
                return false;
            }
            let Some(partition) = state.tables.get(&data.tid).and_then(|t| t.partition(pid)) else { return false };
            if partition.partition_meta.len() <= 1
                || partition.partition_meta.iter().any(|m| m.tablet_has_partition == Some(false))
            {
                return true;
            }
            let leader_offset = partition.alive_leader().and_then(|m| m.offset).unwrap_or(0);
            let follower_offset = partition.meta(&endpoint).and_then(|m| m.offset).unwrap_or(0);
            if leader_offset <= follower_offset + delta {
                return true;
            }
        }
        tokio::select! {
            _ = token.cancelled() => return false,
            _ = tokio::time::sleep(ns.flags.get_table_status_interval) => {}
        }
    }
}

/// RecoverTable task (C§3.1, `NameServerImpl::RecoverEndpointTable`,
/// `src/nameserver/name_server_impl.cc:5791-5931`): inspect the replica and spawn one child
/// op. The replica's GetTermPair is weighed by [`match_term_offset`], and the short ops
/// (Simplify when loaded, NoSend when not) also need its offset to reach the leader's snapshot
/// offset (GetManifest of the leader, `:5906-5927`).
async fn recover_table(ns: &Arc<NameServer>, op_id: u64, data: &OpData, name: &str, pid: u32) -> bool {
    let tid = data.tid;
    let mut endpoint = data.endpoint.clone();
    let (db, has_follower, term_offset, storage_mode, leader) = {
        let state = ns.lock().await;
        let Some(table) = state.tables.get(&tid) else { return false };
        let Some(partition) = table.partition(pid) else { return false };
        if endpoint == OFFLINE_LEADER_ENDPOINT {
            // The placeholder stands for the partition's dead leader at the time the task runs;
            // without one there is no tablet to recover and the task fails (C§3.4).
            match partition.partition_meta.iter().find(|m| m.is_leader && !m.alive()) {
                Some(dead_leader) => endpoint = dead_leader.endpoint.clone(),
                None => return false,
            }
        }
        if let Some(leader) = partition.alive_leader() {
            if !state.is_healthy(&leader.endpoint) {
                return false;
            }
        }
        let Some(meta) = partition.meta(&endpoint) else { return false };
        if meta.alive() {
            return true; // nothing to recover
        }
        if !state.is_healthy(&endpoint) {
            return false;
        }
        let has_follower = partition.partition_meta.len() > 1;
        if has_follower && partition.alive_leader().is_none() {
            return false;
        }
        let leader = partition.alive_leader().map(|m| m.endpoint.clone());
        (table.db.clone(), has_follower, partition.term_offset.clone(), table_storage_mode(Some(table)), leader)
    };
    // GetTermPair and DeleteBinlog name the table's storage mode, so the tablet looks under
    // its root (`RecoverEndpointTable`, `src/nameserver/name_server_impl.cc:5791-5916`).
    let by_mode = json!({ "tid": tid, "pid": pid, "storage_mode": storage_mode });
    let Ok(pair) = ns.call_tablet(&endpoint, "GetTermPair", &by_mode).await else {
        return false;
    };
    if http::reply_code(&pair) != 0 {
        return false;
    }
    let has_table = pair.get("has_table").and_then(Value::as_bool).unwrap_or(false);
    let is_leader = pair.get("is_leader").and_then(Value::as_bool).unwrap_or(false);
    let term = pair.get("term").and_then(Value::as_u64).unwrap_or(0);
    let offset = pair.get("offset").and_then(Value::as_u64).unwrap_or(0);
    let concurrency = data.concurrency;
    if !has_follower {
        let mut state = ns.lock().await;
        let created = if has_table {
            ns.create_simple_op(
                &mut state,
                OpType::kUpdatePartitionStatusOP,
                name,
                &db,
                pid,
                &endpoint,
                concurrency,
                Some(op_id),
                |d| {
                    d.is_leader = true;
                    d.is_alive = true;
                },
            )
            .await
        } else {
            ns.create_simple_op(
                &mut state,
                OpType::kReLoadTableOP,
                name,
                &db,
                pid,
                &endpoint,
                concurrency,
                Some(op_id),
                |_| {},
            )
            .await
        };
        return created.is_ok();
    }
    if has_table && is_leader {
        let request = json!({ "tid": tid, "pid": pid, "mode": "kTableFollower", "term": 0 });
        if !matches!(ns.call_tablet(&endpoint, "ChangeRole", &request).await, Ok(r) if http::reply_code(&r) == 0) {
            return false;
        }
    }
    if !has_table
        && !matches!(ns.call_tablet(&endpoint, "DeleteBinlog", &by_mode).await, Ok(r) if http::reply_code(&r) == 0)
    {
        return false;
    }
    let Some(leader) = leader else { return false };
    let Ok(manifest) = ns.call_tablet(&leader, "GetManifest", &by_mode).await else {
        return false;
    };
    if http::reply_code(&manifest) != 0 {
        return false;
    }
    let snapshot_offset = manifest.pointer("/manifest/offset").and_then(Value::as_u64).unwrap_or(0);
    let matched = match_term_offset(has_table, term, offset, &term_offset) && offset >= snapshot_offset;
    let child = match (has_table, matched) {
        (true, true) => OpType::kReAddReplicaSimplifyOP,
        (true, false) => OpType::kReAddReplicaWithDropOP,
        (false, true) => OpType::kReAddReplicaNoSendOP,
        (false, false) => OpType::kReAddReplicaOP,
    };
    let mut state = ns.lock().await;
    let delta = data.offset_delta;
    ns.create_simple_op(&mut state, child, name, &db, pid, &endpoint, concurrency, Some(op_id), |d| {
        d.offset_delta = delta
    })
    .await
    .is_ok()
}

/// `UpdateTaskStatus` (C§3.2): poll GetTaskStatus on every healthy tablet and copy the
/// status of running tablet tasks; fail tasks whose tablet lost them or stayed offline too long.
pub async fn update_task_status_loop(ns: Arc<NameServer>, token: CancellationToken) {
    loop {
        tokio::select! {
            _ = token.cancelled() => return,
            _ = tokio::time::sleep(ns.flags.get_task_status_interval) => {}
        }
        let tablets = ns.lock().await.healthy_tablets();
        let version = ns.task_rpc_version.load(Ordering::Acquire);
        let mut changed = false;
        for reporter in tablets {
            let Ok(reply) = ns.call_tablet(&reporter, "GetTaskStatus", &json!({})).await else { continue };
            let tasks = reply.get("task").and_then(Value::as_array).cloned().unwrap_or_default();
            let mut state = ns.lock().await;
            // A task sent since this round began may be missing from replies gathered before it
            // reached its tablet: the round stops rather than fail it (C§3.2).
            if ns.task_rpc_version.load(Ordering::Acquire) != version {
                break;
            }
            for queue in state.queues.iter_mut() {
                let Some(op) = queue.front_mut() else { continue };
                let op_id = op.info.op_id;
                let Some(task) = op.tasks.front_mut() else { continue };
                let Some(endpoint) = task.endpoint.clone() else { continue };
                if task.status != TaskStatus::kDoing {
                    continue;
                }
                task.check_num += 1;
                if reporter != endpoint {
                    continue;
                }
                let found = tasks.iter().find(|t| {
                    t.get("op_id").and_then(Value::as_u64) == Some(op_id)
                        && t.get("task_type").and_then(Value::as_str) == Some(task.task_type.name())
                });
                match found.and_then(|t| t.get("status")).and_then(Value::as_str).and_then(TaskStatus::from_name) {
                    Some(status @ (TaskStatus::kDone | TaskStatus::kFailed | TaskStatus::kCanceled)) => {
                        task.status = status;
                        changed = true;
                    }
                    Some(_) => {}
                    None => {
                        if task.is_rpc_send && (task.check_num > 5 || task.after_failover) {
                            task.status = TaskStatus::kFailed;
                            changed = true;
                        }
                    }
                }
                task.after_failover = false;
            }
        }
        let mut state = ns.lock().await;
        let offline_since = state.offline_since.clone();
        let heartbeat = ns.flags.tablet_heartbeat_timeout.as_millis() as u64;
        for queue in state.queues.iter_mut() {
            let Some(op) = queue.front_mut() else { continue };
            let Some(task) = op.tasks.front_mut() else { continue };
            let Some(endpoint) = task.endpoint.clone() else { continue };
            if task.status == TaskStatus::kDoing {
                if let Some(since) = offline_since.get(&endpoint) {
                    if now_ms() >= since + heartbeat {
                        task.status = TaskStatus::kFailed;
                        changed = true;
                    }
                }
            }
        }
        drop(state);
        if changed {
            ns.wake_ops.notify_one();
        }
    }
}

/// `NameServerImpl::MatchTermOffset` (`src/nameserver/name_server_impl.cc:6683-6732`): whether
/// a replica that reports (`term`, `offset`) holds a prefix of the partition's history. An
/// unloaded replica at offset 0 (no snapshot) never matches; the term must be one the
/// partition had (the first entry of a term wins, as `std::map::insert` keeps it). An offset
/// below its term's start matches only when it is just below the last term's start; otherwise
/// it must not reach the next term's start.
pub fn match_term_offset(has_table: bool, term: u64, offset: u64, term_offset: &[TermPair]) -> bool {
    if !has_table && offset == 0 {
        return false;
    }
    let mut starts = BTreeMap::new();
    for pair in term_offset {
        starts.entry(pair.term).or_insert(pair.offset);
    }
    match starts.get(&term) {
        None => false,
        Some(&start) if start > offset => starts.values().next_back() == Some(&(offset + 1)),
        Some(_) => match starts.range(term + 1..).next() {
            None => true,
            Some((_, &next_start)) => next_start > offset,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn history(pairs: &[(u64, u64)]) -> Vec<TermPair> {
        pairs.iter().map(|&(term, offset)| TermPair { term, offset }).collect()
    }

    #[test]
    fn match_term_offset_is_the_nameservers_check() {
        // Terms 1 from offset 0, 3 from 101, 4 from 251 (name_server_impl.cc:6683-6732).
        let h = history(&[(1, 0), (3, 101), (4, 251)]);
        // An unloaded replica without a snapshot never matches; a loaded empty one needs its term.
        assert!(!match_term_offset(false, 1, 0, &h));
        assert!(match_term_offset(true, 1, 0, &h));
        // A loaded follower no leader has probed answers term 0, which no partition has.
        assert!(!match_term_offset(true, 0, 120, &h));
        // Within its term and short of the next term's start.
        assert!(match_term_offset(true, 3, 200, &h));
        assert!(match_term_offset(true, 3, 250, &h));
        assert!(!match_term_offset(true, 3, 251, &h), "it holds entries the next term rewrote");
        // The last term matches at any offset past its start.
        assert!(match_term_offset(false, 4, 9_000, &h));
        // An offset below its term's start matches only just below the last term's start.
        assert!(match_term_offset(true, 4, 250, &h));
        assert!(!match_term_offset(true, 3, 50, &h));
        // An unknown term never matches.
        assert!(!match_term_offset(true, 2, 120, &h));
    }
}
