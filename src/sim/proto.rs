//! The protobuf messages of `name_server.proto` and `tablet.proto` that the simulator speaks,
//! as serde types with brpc's json2pb conventions (C§2.1): proto field names, enums by name,
//! unset optional fields and empty repeated fields omitted, 64-bit integers as numbers.
//!
//! Requests are read field by field from a `serde_json::Value` ([`Body`]) rather than
//! deserialized: json2pb silently drops an optional field of the wrong type and fails only on
//! a missing *required* field, which this reproduces exactly.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Why a request body could not become a request message (brpc `EREQUEST`, HTTP 400).
#[derive(Debug, Clone, thiserror::Error)]
#[error("Fail to parse http body as {type_name}, Missing required field: {field}")]
pub struct MissingField {
    pub type_name: &'static str,
    pub field: &'static str,
}

/// A request body, read the way json2pb reads it.
#[derive(Debug, Clone)]
pub struct Body<'a> {
    value: &'a Value,
    type_name: &'static str,
}

static EMPTY: Value = Value::Null;

impl<'a> Body<'a> {
    pub fn new(value: &'a Value, type_name: &'static str) -> Self {
        Body { value, type_name }
    }

    fn field(&self, name: &str) -> Option<&'a Value> {
        self.value.get(name).filter(|v| !v.is_null())
    }

    /// Fails like brpc when any of `fields` is absent.
    pub fn require(&self, fields: &[&'static str]) -> Result<(), MissingField> {
        for field in fields {
            if self.field(field).is_none() {
                return Err(MissingField { type_name: self.type_name, field });
            }
        }
        Ok(())
    }

    pub fn has(&self, name: &str) -> bool {
        self.field(name).is_some()
    }

    pub fn str(&self, name: &str) -> Option<String> {
        self.field(name).and_then(Value::as_str).map(str::to_string)
    }

    pub fn u64(&self, name: &str) -> Option<u64> {
        match self.field(name)? {
            Value::Number(n) => n.as_u64(),
            // recent brpc accepts decimal strings for 64-bit fields (C§2.1)
            Value::String(s) => s.parse().ok(),
            _ => None,
        }
    }

    pub fn u32(&self, name: &str) -> Option<u32> {
        self.u64(name).and_then(|v| u32::try_from(v).ok())
    }

    pub fn bool(&self, name: &str) -> Option<bool> {
        self.field(name).and_then(Value::as_bool)
    }

    /// An enum field given by name or by number (json2pb accepts both).
    pub fn enum_name(&self, name: &str, names: &[(&str, i64)]) -> Option<String> {
        match self.field(name)? {
            Value::String(s) => names.iter().find(|(n, _)| n == s).map(|(n, _)| n.to_string()),
            Value::Number(n) => {
                let n = n.as_i64()?;
                names.iter().find(|(_, v)| *v == n).map(|(name, _)| name.to_string())
            }
            _ => None,
        }
    }

    pub fn u32_list(&self, name: &str) -> Vec<u32> {
        match self.field(name) {
            Some(Value::Array(items)) => {
                items.iter().filter_map(|v| v.as_u64().and_then(|v| u32::try_from(v).ok())).collect()
            }
            _ => Vec::new(),
        }
    }

    pub fn u64_list(&self, name: &str) -> Vec<u64> {
        match self.field(name) {
            Some(Value::Array(items)) => items.iter().filter_map(Value::as_u64).collect(),
            _ => Vec::new(),
        }
    }

    pub fn str_list(&self, name: &str) -> Vec<String> {
        match self.field(name) {
            Some(Value::Array(items)) => items.iter().filter_map(|v| v.as_str().map(str::to_string)).collect(),
            _ => Vec::new(),
        }
    }

    /// A nested message field.
    pub fn message(&self, name: &str, type_name: &'static str) -> Option<Body<'a>> {
        self.field(name).filter(|v| v.is_object()).map(|v| Body::new(v, type_name))
    }

    pub fn raw(&self, name: &str) -> Option<&'a Value> {
        self.field(name)
    }

    pub fn empty(type_name: &'static str) -> Body<'static> {
        Body { value: &EMPTY, type_name }
    }
}

macro_rules! proto_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident = $value:expr),+ $(,)? }) => {
        $(#[$meta])*
        // Variants keep the proto names: they are what the JSON shows (C§2.1).
        #[allow(non_camel_case_types)]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [(&'static str, i64)] = &[$((stringify!($variant), $value)),+];

            pub fn name(self) -> &'static str {
                match self { $($name::$variant => stringify!($variant)),+ }
            }

            pub fn from_name(name: &str) -> Option<Self> {
                match name { $(stringify!($variant) => Some($name::$variant),)+ _ => None }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

proto_enum!(
    /// `openmldb.api.TaskStatus`, used for ops and tasks (C§3.2).
    TaskStatus { kInited = 1, kDoing = 2, kDone = 3, kFailed = 4, kCanceled = 5 }
);

proto_enum!(
    /// `openmldb.api.TableMode` (C§4).
    TableMode { kTableLeader = 1, kTableFollower = 2 }
);

proto_enum!(
    /// `openmldb.api.TableState` (C§4).
    TableState { kTableUndefined = 0, kTableNormal = 1, kTableLoading = 2, kMakingSnapshot = 3, kSnapshotPaused = 4 }
);

proto_enum!(
    /// `openmldb.common.StorageMode`: where a table's replicas keep their data (C§2.4
    /// `TableMeta.storage_mode`, default kMemory).
    StorageMode { kUnknown = 0, kMemory = 1, kSSD = 2, kHDD = 3 }
);

proto_enum!(
    /// `openmldb.api.OPType` (C§3.1), the types the simulator creates.
    OpType {
        kMakeSnapshotOP = 1,
        kAddReplicaOP = 2,
        kDelReplicaOP = 3,
        kChangeLeaderOP = 4,
        kOfflineReplicaOP = 5,
        kReAddReplicaOP = 6,
        kReAddReplicaNoSendOP = 7,
        kReAddReplicaWithDropOP = 8,
        kReAddReplicaSimplifyOP = 9,
        kMigrateOP = 11,
        kReLoadTableOP = 12,
        kUpdatePartitionStatusOP = 13,
        kRecoverTableOP = 14,
    }
);

proto_enum!(
    /// `openmldb.api.TaskType` (C§3.1), the types the simulator's task chains use.
    TaskType {
        kMakeSnapshot = 1,
        kPauseSnapshot = 2,
        kRecoverSnapshot = 3,
        kSendSnapshot = 4,
        kLoadTable = 5,
        kAddReplica = 6,
        kAddTableInfo = 7,
        kDelReplica = 8,
        kDelTableInfo = 9,
        kChangeLeader = 10,
        kUpdatePartitionStatus = 11,
        kDropTable = 12,
        kUpdateTableInfo = 14,
        kSelectLeader = 15,
        kUpdateLeaderInfo = 16,
        kRecoverTable = 17,
        kCheckBinlogSyncProgress = 18,
    }
);

fn is_false(b: &bool) -> bool {
    !*b
}

/// `openmldb.nameserver.PartitionMeta` (C§2.2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct PartitionMeta {
    pub endpoint: String,
    pub is_leader: bool,
    /// Absent means true (proto2 default), C§2.2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_alive: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record_cnt: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record_byte_size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tablet_has_partition: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diskused: Option<u64>,
}

impl PartitionMeta {
    pub fn alive(&self) -> bool {
        self.is_alive.unwrap_or(true)
    }
}

/// `openmldb.nameserver.TermPair`: the first offset of a term.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TermPair {
    pub term: u64,
    pub offset: u64,
}

/// `openmldb.nameserver.TablePartition`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct TablePartition {
    pub pid: u32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub partition_meta: Vec<PartitionMeta>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub term_offset: Vec<TermPair>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record_cnt: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record_byte_size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diskused: Option<u64>,
}

impl TablePartition {
    /// The meta the cluster routes to: leader and alive (C§3.6).
    pub fn alive_leader(&self) -> Option<&PartitionMeta> {
        self.partition_meta.iter().find(|m| m.is_leader && m.alive())
    }

    pub fn meta(&self, endpoint: &str) -> Option<&PartitionMeta> {
        self.partition_meta.iter().find(|m| m.endpoint == endpoint)
    }

    pub fn meta_mut(&mut self, endpoint: &str) -> Option<&mut PartitionMeta> {
        self.partition_meta.iter_mut().find(|m| m.endpoint == endpoint)
    }
}

/// `openmldb.nameserver.TableInfo`; stored as JSON in `<root>/table/db_table_data/<tid>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct TableInfo {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seg_cnt: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub table_partition: Vec<TablePartition>,
    pub tid: u32,
    pub partition_num: u32,
    pub replica_num: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compress_type: Option<String>,
    /// Schema columns, kept opaque (`openmldb.common.ColumnDesc`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub column_desc: Vec<Value>,
    /// Indexes, kept opaque (`openmldb.common.ColumnKey`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub column_key: Vec<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format_version: Option<u32>,
    pub db: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_mode: Option<String>,
}

impl TableInfo {
    pub fn partition(&self, pid: u32) -> Option<&TablePartition> {
        self.table_partition.iter().find(|p| p.pid == pid)
    }

    pub fn partition_mut(&mut self, pid: u32) -> Option<&mut TablePartition> {
        self.table_partition.iter_mut().find(|p| p.pid == pid)
    }
}

/// `openmldb.nameserver.TabletStatus` (C§2.2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TabletStatus {
    pub endpoint: String,
    pub state: String,
    pub age: u64,
}

/// `openmldb.nameserver.OPStatus` (C§2.2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpStatus {
    pub op_id: u64,
    pub op_type: String,
    pub status: String,
    pub start_time: u64,
    pub end_time: u64,
    pub task_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub for_replica_cluster: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub db: Option<String>,
}

/// `openmldb.api.TaskInfo` (C§4): how the nameserver tells a tablet which task it runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskInfo {
    pub op_id: u64,
    pub op_type: OpType,
    pub task_type: TaskType,
    pub status: TaskStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub is_rpc_send: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
}

impl TaskInfo {
    /// Reads a `task_info` field; `None` when absent or malformed.
    pub fn from_body(body: &Body<'_>) -> Option<TaskInfo> {
        Some(TaskInfo {
            op_id: body.u64("op_id")?,
            op_type: OpType::from_name(&body.enum_name("op_type", OpType::ALL)?)?,
            task_type: TaskType::from_name(&body.enum_name("task_type", TaskType::ALL)?)?,
            status: TaskStatus::from_name(&body.enum_name("status", TaskStatus::ALL)?)?,
            endpoint: body.str("endpoint"),
            is_rpc_send: body.bool("is_rpc_send").unwrap_or(false),
            tid: body.u32("tid"),
            pid: body.u32("pid"),
        })
    }
}

/// `openmldb.api.TableStatus` (C§2.4): one loaded partition replica on a tablet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableStatus {
    pub tid: u32,
    pub pid: u32,
    pub offset: u64,
    pub mode: TableMode,
    pub state: TableState,
    /// Memory tables only, like `record_byte_size`, `record_idx_byte_size`, `record_pk_cnt`,
    /// `skiplist_height` and `idx_cnt` (`TabletImpl::GetTableStatus`,
    /// `src/tablet/tablet_impl.cc:2529-2551`): unset, so absent, for disk tables.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_expire: Option<bool>,
    pub time_offset: i64,
    pub record_cnt: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idx_cnt: Option<u64>,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record_byte_size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record_idx_byte_size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record_pk_cnt: Option<u64>,
    pub compress_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skiplist_height: Option<u32>,
    pub diskused: u64,
    pub storage_mode: StorageMode,
    /// Disk tables only: the snapshot directory and the (absolute) binlog directory
    /// (`src/tablet/tablet_impl.cc:2552-2580`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binlog_path: Option<String>,
}

/// A `{code, msg}` reply (`GeneralResponse` of either service).
pub fn general(code: i32, msg: &str) -> Value {
    serde_json::json!({ "code": code, "msg": msg })
}

pub fn ok() -> Value {
    general(0, "ok")
}
