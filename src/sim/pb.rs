//! `openmldb.nameserver.TableInfo` in its binary protobuf form, as a nameserver stores it in
//! `<root>/table/db_table_data/<tid>` (`NameServerImpl` serializes it with
//! `SerializeToString`; the SDK reads it back with `TableInfo::ParseFromString` in
//! `src/sdk/db_sdk.cc` `UpdateCatalog`, and skips a node it cannot parse).
//!
//! The messages are written here with the field numbers and labels of OpenMLDB 0.9.2's
//! `src/proto/name_server.proto` (TableInfo, TablePartition, PartitionMeta, TermPair),
//! `src/proto/common.proto` (ColumnDesc, ColumnKey, TTLSt) and `src/proto/type.proto` (the
//! enums, encoded as their numbers). proto2 `required` fields are always encoded, zero values
//! included: a parser rejects a message without them.
//!
//! The simulator keeps tables as [`TableInfo`] (json2pb's JSON form, enums by name);
//! [`encode_table`] and [`decode_table`] convert. Fields the simulator does not keep
//! (`added_column_desc`, `partition_key`, `schema_versions`, `offline_table_info`,
//! `base_table_tid`, `remote_partition_meta`, a column's `schema`) are not written.

use prost::Message;
use serde_json::{json, Map, Value};

use super::proto::{PartitionMeta, TableInfo, TablePartition, TermPair};

#[derive(Clone, PartialEq, Message)]
struct TableInfoPb {
    #[prost(string, optional, tag = "1")]
    name: Option<String>,
    #[prost(uint32, optional, tag = "2")]
    seg_cnt: Option<u32>,
    #[prost(message, repeated, tag = "3")]
    table_partition: Vec<TablePartitionPb>,
    #[prost(uint32, optional, tag = "4")]
    tid: Option<u32>,
    #[prost(uint32, optional, tag = "5")]
    partition_num: Option<u32>,
    #[prost(uint32, optional, tag = "6")]
    replica_num: Option<u32>,
    /// `openmldb.type.CompressType`.
    #[prost(int32, optional, tag = "7")]
    compress_type: Option<i32>,
    #[prost(message, repeated, tag = "9")]
    column_desc: Vec<ColumnDescPb>,
    #[prost(message, repeated, tag = "10")]
    column_key: Vec<ColumnKeyPb>,
    #[prost(uint32, optional, tag = "12")]
    format_version: Option<u32>,
    #[prost(string, optional, tag = "13")]
    db: Option<String>,
    /// `openmldb.common.StorageMode`.
    #[prost(int32, optional, tag = "17")]
    storage_mode: Option<i32>,
}

#[derive(Clone, PartialEq, Message)]
struct TablePartitionPb {
    #[prost(uint32, required, tag = "1")]
    pid: u32,
    #[prost(message, repeated, tag = "2")]
    partition_meta: Vec<PartitionMetaPb>,
    #[prost(message, repeated, tag = "3")]
    term_offset: Vec<TermPairPb>,
    #[prost(uint64, optional, tag = "4")]
    record_cnt: Option<u64>,
    #[prost(uint64, optional, tag = "5")]
    record_byte_size: Option<u64>,
    #[prost(uint64, optional, tag = "6")]
    diskused: Option<u64>,
}

#[derive(Clone, PartialEq, Message)]
struct PartitionMetaPb {
    #[prost(string, required, tag = "1")]
    endpoint: String,
    #[prost(bool, required, tag = "2")]
    is_leader: bool,
    #[prost(bool, optional, tag = "3")]
    is_alive: Option<bool>,
    #[prost(uint64, optional, tag = "4")]
    offset: Option<u64>,
    #[prost(uint64, optional, tag = "5")]
    record_cnt: Option<u64>,
    #[prost(uint64, optional, tag = "6")]
    record_byte_size: Option<u64>,
    #[prost(bool, optional, tag = "7")]
    tablet_has_partition: Option<bool>,
    #[prost(uint64, optional, tag = "8")]
    diskused: Option<u64>,
}

#[derive(Clone, PartialEq, Message)]
struct TermPairPb {
    #[prost(uint64, required, tag = "1")]
    term: u64,
    #[prost(uint64, required, tag = "2")]
    offset: u64,
}

#[derive(Clone, PartialEq, Message)]
struct ColumnDescPb {
    #[prost(string, required, tag = "1")]
    name: String,
    /// `openmldb.type.DataType`.
    #[prost(int32, optional, tag = "2")]
    data_type: Option<i32>,
    #[prost(bool, optional, tag = "3")]
    not_null: Option<bool>,
    #[prost(bool, optional, tag = "4")]
    is_constant: Option<bool>,
    #[prost(string, optional, tag = "5")]
    default_value: Option<String>,
}

#[derive(Clone, PartialEq, Message)]
struct ColumnKeyPb {
    #[prost(string, optional, tag = "1")]
    index_name: Option<String>,
    #[prost(string, repeated, tag = "2")]
    col_name: Vec<String>,
    #[prost(string, optional, tag = "3")]
    ts_name: Option<String>,
    #[prost(uint32, optional, tag = "4")]
    flag: Option<u32>,
    #[prost(message, optional, tag = "5")]
    ttl: Option<TtlPb>,
    /// `openmldb.common.IndexType`.
    #[prost(int32, optional, tag = "6")]
    index_type: Option<i32>,
}

#[derive(Clone, PartialEq, Message)]
struct TtlPb {
    /// `openmldb.type.TTLType`.
    #[prost(int32, optional, tag = "1")]
    ttl_type: Option<i32>,
    #[prost(uint64, optional, tag = "2")]
    abs_ttl: Option<u64>,
    #[prost(uint64, optional, tag = "3")]
    lat_ttl: Option<u64>,
}

/// `openmldb.type.DataType` (type.proto).
pub const DATA_TYPES: &[(&str, i32)] = &[
    ("kBool", 1),
    ("kSmallInt", 2),
    ("kInt", 3),
    ("kBigInt", 4),
    ("kFloat", 5),
    ("kDouble", 6),
    ("kDate", 7),
    ("kTimestamp", 8),
    ("kVarchar", 13),
    ("kString", 14),
];
/// `openmldb.type.TTLType` (type.proto).
const TTL_TYPES: &[(&str, i32)] =
    &[("kAbsoluteTime", 1), ("kRelativeTime", 2), ("kLatestTime", 3), ("kAbsAndLat", 4), ("kAbsOrLat", 5)];
/// `openmldb.type.CompressType` (type.proto).
const COMPRESS_TYPES: &[(&str, i32)] = &[("kNoCompress", 0), ("kSnappy", 1)];
/// `openmldb.common.StorageMode` (common.proto).
const STORAGE_MODES: &[(&str, i32)] = &[("kUnknown", 0), ("kMemory", 1), ("kSSD", 2), ("kHDD", 3)];
/// `openmldb.common.IndexType` (common.proto).
const INDEX_TYPES: &[(&str, i32)] = &[("kCovering", 0), ("kClustered", 1), ("kSecondary", 2)];

/// An enum given by name or number (as json2pb accepts it), as its number.
fn enum_number(value: Option<&Value>, names: &[(&str, i32)]) -> Option<i32> {
    match value? {
        Value::String(s) => names.iter().find(|(n, _)| n == s).map(|(_, v)| *v),
        Value::Number(n) => n.as_i64().and_then(|n| i32::try_from(n).ok()),
        _ => None,
    }
}

fn enum_name(number: i32, names: &[(&str, i32)]) -> Value {
    names.iter().find(|(_, v)| *v == number).map_or(json!(number), |(n, _)| json!(n))
}

fn column_desc(value: &Value) -> Option<ColumnDescPb> {
    Some(ColumnDescPb {
        name: value["name"].as_str()?.to_string(),
        data_type: enum_number(value.get("data_type"), DATA_TYPES),
        not_null: value["not_null"].as_bool(),
        is_constant: value["is_constant"].as_bool(),
        default_value: value["default_value"].as_str().map(str::to_string),
    })
}

fn column_key(value: &Value) -> ColumnKeyPb {
    let ttl = value.get("ttl").filter(|t| t.is_object()).map(|ttl| TtlPb {
        ttl_type: enum_number(ttl.get("ttl_type"), TTL_TYPES),
        abs_ttl: ttl["abs_ttl"].as_u64(),
        lat_ttl: ttl["lat_ttl"].as_u64(),
    });
    ColumnKeyPb {
        index_name: value["index_name"].as_str().map(str::to_string),
        col_name: value["col_name"]
            .as_array()
            .map(|names| names.iter().filter_map(Value::as_str).map(str::to_string).collect())
            .unwrap_or_default(),
        ts_name: value["ts_name"].as_str().map(str::to_string),
        flag: value["flag"].as_u64().and_then(|f| u32::try_from(f).ok()),
        ttl,
        index_type: enum_number(value.get("type"), INDEX_TYPES),
    }
}

/// The bytes a nameserver writes for `table`.
pub fn encode_table(table: &TableInfo) -> Vec<u8> {
    let message = TableInfoPb {
        name: Some(table.name.clone()),
        seg_cnt: table.seg_cnt,
        table_partition: table
            .table_partition
            .iter()
            .map(|p| TablePartitionPb {
                pid: p.pid,
                partition_meta: p
                    .partition_meta
                    .iter()
                    .map(|m| PartitionMetaPb {
                        endpoint: m.endpoint.clone(),
                        is_leader: m.is_leader,
                        is_alive: m.is_alive,
                        offset: m.offset,
                        record_cnt: m.record_cnt,
                        record_byte_size: m.record_byte_size,
                        tablet_has_partition: m.tablet_has_partition,
                        diskused: m.diskused,
                    })
                    .collect(),
                term_offset: p.term_offset.iter().map(|t| TermPairPb { term: t.term, offset: t.offset }).collect(),
                record_cnt: p.record_cnt,
                record_byte_size: p.record_byte_size,
                diskused: p.diskused,
            })
            .collect(),
        tid: Some(table.tid),
        partition_num: Some(table.partition_num),
        replica_num: Some(table.replica_num),
        compress_type: table.compress_type.as_deref().and_then(|c| enum_number(Some(&json!(c)), COMPRESS_TYPES)),
        column_desc: table.column_desc.iter().filter_map(column_desc).collect(),
        column_key: table.column_key.iter().map(column_key).collect(),
        format_version: table.format_version,
        db: Some(table.db.clone()),
        storage_mode: table.storage_mode.as_deref().and_then(|m| enum_number(Some(&json!(m)), STORAGE_MODES)),
    };
    message.encode_to_vec()
}

/// Sets `object[key]` when `value` is there.
fn set(object: &mut Map<String, Value>, key: &str, value: Option<Value>) {
    if let Some(value) = value {
        object.insert(key.to_string(), value);
    }
}

/// A table from the bytes of its ZooKeeper node; `None` when they are not a `TableInfo` (as
/// the SDK and a recovering nameserver skip such a node).
pub fn decode_table(bytes: &[u8]) -> Option<TableInfo> {
    let message = TableInfoPb::decode(bytes).ok()?;
    let column_desc = message
        .column_desc
        .into_iter()
        .map(|c| {
            let mut object = Map::new();
            object.insert("name".into(), json!(c.name));
            set(&mut object, "data_type", c.data_type.map(|t| enum_name(t, DATA_TYPES)));
            set(&mut object, "not_null", c.not_null.map(Value::Bool));
            set(&mut object, "is_constant", c.is_constant.map(Value::Bool));
            set(&mut object, "default_value", c.default_value.map(Value::String));
            Value::Object(object)
        })
        .collect();
    let column_key = message
        .column_key
        .into_iter()
        .map(|k| {
            let mut object = Map::new();
            set(&mut object, "index_name", k.index_name.map(Value::String));
            if !k.col_name.is_empty() {
                object.insert("col_name".into(), json!(k.col_name));
            }
            set(&mut object, "ts_name", k.ts_name.map(Value::String));
            set(&mut object, "flag", k.flag.map(|f| json!(f)));
            set(
                &mut object,
                "ttl",
                k.ttl.map(|t| {
                    let mut ttl = Map::new();
                    set(&mut ttl, "ttl_type", t.ttl_type.map(|n| enum_name(n, TTL_TYPES)));
                    set(&mut ttl, "abs_ttl", t.abs_ttl.map(|n| json!(n)));
                    set(&mut ttl, "lat_ttl", t.lat_ttl.map(|n| json!(n)));
                    Value::Object(ttl)
                }),
            );
            set(&mut object, "type", k.index_type.map(|n| enum_name(n, INDEX_TYPES)));
            Value::Object(object)
        })
        .collect();
    let name_of = |n: i32, names: &[(&str, i32)]| enum_name(n, names).as_str().map(str::to_string);
    Some(TableInfo {
        name: message.name?,
        seg_cnt: message.seg_cnt,
        table_partition: message
            .table_partition
            .into_iter()
            .map(|p| TablePartition {
                pid: p.pid,
                partition_meta: p
                    .partition_meta
                    .into_iter()
                    .map(|m| PartitionMeta {
                        endpoint: m.endpoint,
                        is_leader: m.is_leader,
                        is_alive: m.is_alive,
                        offset: m.offset,
                        record_cnt: m.record_cnt,
                        record_byte_size: m.record_byte_size,
                        tablet_has_partition: m.tablet_has_partition,
                        diskused: m.diskused,
                    })
                    .collect(),
                term_offset: p.term_offset.into_iter().map(|t| TermPair { term: t.term, offset: t.offset }).collect(),
                record_cnt: p.record_cnt,
                record_byte_size: p.record_byte_size,
                diskused: p.diskused,
            })
            .collect(),
        tid: message.tid?,
        partition_num: message.partition_num.unwrap_or_default(),
        replica_num: message.replica_num.unwrap_or_default(),
        compress_type: message.compress_type.and_then(|c| name_of(c, COMPRESS_TYPES)),
        column_desc,
        column_key,
        format_version: message.format_version,
        db: message.db.unwrap_or_default(),
        storage_mode: message.storage_mode.and_then(|m| name_of(m, STORAGE_MODES)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table the real SDK (openmldb 0.9.2 from PyPI) was seen to accept from ZooKeeper:
    /// demo.t1 (c1 string, c2 bigint, index idx0 on c1, absolute TTL 0), tid 1, 2 partitions
    /// each led by 127.0.0.1:29528, memory storage.
    fn sdk_accepted_table() -> TableInfo {
        let meta = |_| PartitionMeta {
            endpoint: "127.0.0.1:29528".into(),
            is_leader: true,
            is_alive: Some(true),
            ..PartitionMeta::default()
        };
        TableInfo {
            name: "t1".into(),
            table_partition: (0..2)
                .map(|pid| TablePartition { pid, partition_meta: vec![meta(pid)], ..TablePartition::default() })
                .collect(),
            tid: 1,
            partition_num: 2,
            replica_num: 1,
            column_desc: vec![
                json!({"name": "c1", "data_type": "kString"}),
                json!({"name": "c2", "data_type": "kBigInt"}),
            ],
            column_key: vec![
                json!({"index_name": "idx0", "col_name": ["c1"], "ttl": {"ttl_type": "kAbsoluteTime", "abs_ttl": 0}}),
            ],
            db: "demo".into(),
            storage_mode: Some("kMemory".into()),
            ..TableInfo::default()
        }
    }

    /// The bytes the SDK accepted, encoded by hand from name_server.proto's field numbers.
    /// The bytes the SDK accepted (issue 18 research: built field by field from
    /// name_server.proto's numbers and read by `UpdateCatalog` without complaint).
    const SDK_ACCEPTED: &str = "0a0274311a19080012150a0f3132372e302e302e313a3239353238100118011a19080112150a0f31\
        32372e302e302e313a3239353238100118012001280230014a060a026331100e4a060a0263321004\
        52100a0469647830120263312a04080110006a0464656d6f880101";

    #[test]
    fn a_table_encodes_to_the_bytes_the_real_sdk_accepted() {
        let expected: Vec<u8> = (0..SDK_ACCEPTED.len() / 2)
            .map(|i| u8::from_str_radix(&SDK_ACCEPTED[2 * i..2 * i + 2], 16).unwrap())
            .collect();
        assert_eq!(encode_table(&sdk_accepted_table()), expected);
    }

    #[test]
    fn required_fields_are_written_when_zero_and_a_table_decodes_to_itself() {
        let mut table = sdk_accepted_table();
        table.table_partition[0].partition_meta[0].is_leader = false;
        table.table_partition[0].term_offset = vec![TermPair { term: 1, offset: 0 }];
        table.compress_type = Some("kNoCompress".into());
        let bytes = encode_table(&table);
        // pid 0 (field 1 = 0) and is_leader false (field 2 = 0) are on the wire.
        assert_eq!((bytes[4], &bytes[6..8]), (0x1a, &[0x08, 0x00][..]), "{bytes:02x?}");
        let endpoint_end = 12 + "127.0.0.1:29528".len();
        assert_eq!(&bytes[endpoint_end..endpoint_end + 2], &[0x10, 0x00], "{bytes:02x?}");
        assert_eq!(decode_table(&bytes), Some(table));
        assert_eq!(decode_table(b"{\"name\":\"t1\"}"), None, "JSON is not a TableInfo");
    }
}
