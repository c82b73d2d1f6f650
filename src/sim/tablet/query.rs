//! Query in batch mode (`TabletImpl::Query` → `ProcessQuery`, `src/tablet/tablet_impl.cc:1716-
//! 1810`) for the statements OpenMLDB's SDK sends on its own: `select * from GLOBAL_VARIABLES`
//! when it connects (`SQLClusterRouter::Init`, `src/sdk/sql_cluster_router.cc:184-203`) and
//! for `SHOW GLOBAL VARIABLES`, and `SELECT aggr_db, aggr_table FROM PRE_AGG_META_INFO WHERE
//! base_table = … AND base_db = …` before a DROP TABLE.
//!
//! The simulator has no SQL engine. It answers `SELECT <* | column, …> FROM [db.]table
//! [WHERE column = 'value' [AND …]] [CONFIG (…)]` over a table whose partitions are all
//! loaded on this tablet and whose columns are strings (the system tables the SDK queries
//! are such tables, with one partition); anything else is `kSQLCompileError` (1000) with
//! what it can answer. Rows come in log order; under a `kLatestTime` index only each key's
//! newest `lat_ttl` rows count, as the real table's TTL hides the others.
//!
//! The answer is the real one's shape: `schema` (hybridse's `SchemaCodec`: u16 column count,
//! then per column `is_constant`, the hybridse type, the name's length and the name), `count`,
//! `byte_size`, and the encoded rows back to back in the response attachment, which the JSON
//! reply carries as `rows` (base64, one per row) for the baidu_std front to move there.

use std::collections::HashMap;

use base64::Engine;
use serde_json::{json, Value};

use super::Tablet;
use crate::sim::proto::{general, Body};
use crate::sim::row_codec;

const SQL_COMPILE_ERROR: i32 = 1000;
const SQL_RUN_ERROR: i32 = 1001;

const SUPPORTED: &str = "the simulator answers only SELECT <* | column, ...> FROM [db.]table \
                         [WHERE column = 'value' [AND ...]] over a table with string columns whose partitions \
                         are all on this tablet";

/// A parsed `SELECT`.
#[derive(Debug, PartialEq)]
struct Select {
    /// `None` for `*`.
    columns: Option<Vec<String>>,
    db: Option<String>,
    table: String,
    /// `column = 'value'` conditions, all of which must hold.
    filters: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Text(String),
    Symbol(char),
}

fn tokens(sql: &str) -> Option<Vec<Token>> {
    let mut out = Vec::new();
    let mut chars = sql.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c.is_alphanumeric() || c == '_' {
            let mut word = String::new();
            while let Some(&c) = chars.peek().filter(|c| c.is_alphanumeric() || **c == '_') {
                word.push(c);
                chars.next();
            }
            out.push(Token::Word(word));
        } else if c == '`' {
            chars.next();
            let word: String = chars.by_ref().take_while(|&c| c != '`').collect();
            out.push(Token::Word(word));
        } else if c == '\'' || c == '"' {
            chars.next();
            let mut text = String::new();
            loop {
                match chars.next()? {
                    q if q == c && chars.peek() == Some(&c) => {
                        text.push(c);
                        chars.next();
                    }
                    q if q == c => break,
                    other => text.push(other),
                }
            }
            out.push(Token::Text(text));
        } else {
            out.push(Token::Symbol(c));
            chars.next();
        }
    }
    Some(out)
}

fn parse(sql: &str) -> Option<Select> {
    let tokens = tokens(sql)?;
    let mut at = tokens.iter().peekable();
    let keyword = |t: Option<&Token>, k: &str| matches!(t, Some(Token::Word(w)) if w.eq_ignore_ascii_case(k));
    let word = |t: Option<&Token>| match t {
        Some(Token::Word(w)) => Some(w.clone()),
        _ => None,
    };
    if !keyword(at.next(), "select") {
        return None;
    }
    let columns = if at.peek() == Some(&&Token::Symbol('*')) {
        at.next();
        None
    } else {
        let mut columns = vec![word(at.next())?];
        while at.peek() == Some(&&Token::Symbol(',')) {
            at.next();
            columns.push(word(at.next())?);
        }
        Some(columns)
    };
    if !keyword(at.next(), "from") {
        return None;
    }
    let mut table = word(at.next())?;
    let mut db = None;
    if at.peek() == Some(&&Token::Symbol('.')) {
        at.next();
        db = Some(std::mem::replace(&mut table, word(at.next())?));
    }
    let mut filters = Vec::new();
    if keyword(at.peek().copied(), "where") {
        at.next();
        loop {
            let column = word(at.next())?;
            if at.next() != Some(&Token::Symbol('=')) {
                return None;
            }
            let Some(Token::Text(value)) = at.next() else { return None };
            filters.push((column, value.clone()));
            if !keyword(at.peek().copied(), "and") {
                break;
            }
            at.next();
        }
    }
    // `CONFIG (execute_mode = 'online')` says how to run it, not what to answer.
    if keyword(at.peek().copied(), "config") {
        at.next();
        if at.next() != Some(&Token::Symbol('(')) {
            return None;
        }
        while at.next()? != &Token::Symbol(')') {}
    }
    while at.peek() == Some(&&Token::Symbol(';')) {
        at.next();
    }
    at.next().is_none().then_some(Select { columns, db, table, filters })
}

/// hybridse's `type::Type` of an OpenMLDB `DataType` (`SchemaAdapter::ConvertType`).
fn hybridse_type(data_type: &str) -> Option<u8> {
    Some(match data_type {
        "kBool" => 0,
        "kSmallInt" => 1,
        "kInt" => 3,
        "kBigInt" => 5,
        "kFloat" => 7,
        "kDouble" => 8,
        "kString" | "kVarchar" => 9,
        "kDate" => 10,
        "kTimestamp" => 11,
        _ => return None,
    })
}

/// `SchemaCodec::Encode` of `(name, hybridse type)` columns.
fn encode_schema(columns: &[(String, u8)]) -> Vec<u8> {
    let mut bytes = (columns.len() as u16).to_le_bytes().to_vec();
    for (name, kind) in columns {
        bytes.extend_from_slice(&[0, *kind, name.len() as u8]);
        bytes.extend_from_slice(name.as_bytes());
    }
    bytes
}

impl Tablet {
    /// Query (batch mode); see the module docs for what it answers.
    pub(super) async fn query(&self, body: &Body<'_>) -> Value {
        let sql = body.str("sql").unwrap_or_default();
        let Some(select) = parse(&sql) else {
            return general(SQL_COMPILE_ERROR, &format!("cannot compile {sql:?}: {SUPPORTED}"));
        };
        let db = select.db.clone().or_else(|| body.str("db")).unwrap_or_default();
        let partitions = self.partition_count(&db, &select.table).await;
        let state = self.lock();
        let replicas: Vec<_> =
            state.replicas.values().filter(|r| r.meta.db == db && r.meta.name == select.table).collect();
        let Some(first) = replicas.first() else {
            return general(SQL_COMPILE_ERROR, &format!("table {} not exists in database [{db}]", select.table));
        };
        if partitions != Some(replicas.len()) {
            return general(SQL_COMPILE_ERROR, &format!("{db}.{}: {SUPPORTED}", select.table));
        }
        let schema: Vec<(String, u8)> = first
            .meta
            .column_desc
            .iter()
            .filter_map(|c| Some((c["name"].as_str()?.to_string(), hybridse_type(c["data_type"].as_str()?)?)))
            .collect();
        let position = |name: &str| schema.iter().position(|(n, _)| n == name);
        let projection: Vec<usize> = match &select.columns {
            None => (0..schema.len()).collect(),
            Some(names) => match names.iter().map(|n| position(n)).collect::<Option<Vec<_>>>() {
                Some(positions) => positions,
                None => return general(SQL_COMPILE_ERROR, &format!("a column of {names:?} is not in the table")),
            },
        };
        let filters: Option<Vec<(usize, &str)>> =
            select.filters.iter().map(|(c, v)| Some((position(c)?, v.as_str()))).collect();
        let Some(filters) = filters else {
            return general(SQL_COMPILE_ERROR, "a column in WHERE is not in the table");
        };
        let latest = latest_per_key(&first.meta.column_key);
        let mut rows = Vec::new();
        for replica in &replicas {
            let mut kept: HashMap<&str, usize> = HashMap::new();
            // Newest first, so a kLatestTime index keeps each key's newest rows.
            for entry in replica.log.entries().iter().rev() {
                if let (Some(limit), Some(key)) = (latest, entry.pk.as_deref()) {
                    let seen = kept.entry(key).or_default();
                    *seen += 1;
                    if *seen > limit {
                        continue;
                    }
                }
                let stored = entry.value.as_deref().unwrap_or_default();
                let decoded = base64::engine::general_purpose::STANDARD
                    .decode(stored)
                    .ok()
                    .filter(|_| schema.iter().all(|(_, kind)| *kind == 9))
                    .and_then(|bytes| row_codec::decode_strings(&bytes, schema.len()));
                let Some(values) = decoded else {
                    return general(
                        SQL_RUN_ERROR,
                        &format!("a row of {db}.{} is not an encoded row of string columns: {SUPPORTED}", select.table),
                    );
                };
                if filters.iter().all(|(i, v)| values[*i].as_deref() == Some(*v)) {
                    let projected: Vec<Option<&str>> = projection.iter().map(|&i| values[i].as_deref()).collect();
                    rows.push(row_codec::encode_strings(&projected));
                }
            }
        }
        rows.reverse();
        let columns: Vec<(String, u8)> = projection.iter().map(|&i| schema[i].clone()).collect();
        let byte_size: usize = rows.iter().map(Vec::len).sum();
        let engine = base64::engine::general_purpose::STANDARD;
        json!({ "code": 0, "count": rows.len(), "byte_size": byte_size,
                "schema": engine.encode(encode_schema(&columns)),
                "rows": rows.iter().map(|r| engine.encode(r)).collect::<Vec<_>>() })
    }

    /// The partition count of `db.table` in ZooKeeper, as the tablet's catalog knows it.
    async fn partition_count(&self, db: &str, table: &str) -> Option<usize> {
        let tids: Vec<u32> = {
            let state = self.lock();
            state.replicas.values().filter(|r| r.meta.db == db && r.meta.name == table).map(|r| r.meta.tid).collect()
        };
        let tid = *tids.first()?;
        let zk = self.names_zk.get_or_try_init(|| crate::sim::zk::Zk::connect(&self.flags)).await.ok()?;
        let paths = crate::sim::zk::ZkPaths::new(&self.flags.zk_root_path);
        let bytes = zk.get_bytes(&paths.table_data(tid)).await.ok()??;
        Some(crate::sim::pb::decode_table(&bytes)?.table_partition.len())
    }
}

/// `lat_ttl` of a table whose first index keeps the latest rows per key.
fn latest_per_key(column_key: &[Value]) -> Option<usize> {
    let ttl = &column_key.first()?["ttl"];
    (ttl["ttl_type"] == "kLatestTime").then(|| ttl["lat_ttl"].as_u64()).flatten().filter(|&n| n > 0).map(|n| n as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sdks_own_queries_parse() {
        // As the SDK sends them: pretty-printed by its planner, or as written.
        let global = parse("SELECT\n  *\nFROM\n  GLOBAL_VARIABLES\n").unwrap();
        assert_eq!(global, Select { columns: None, db: None, table: "GLOBAL_VARIABLES".into(), filters: vec![] });
        let pre_agg = parse(
            "select aggr_db, aggr_table from __INTERNAL_DB.PRE_AGG_META_INFO where base_table = 'events' \
             and base_db = \"shop\" CONFIG (execute_mode='online');",
        )
        .unwrap();
        assert_eq!(pre_agg.columns, Some(vec!["aggr_db".to_string(), "aggr_table".to_string()]));
        assert_eq!(pre_agg.db.as_deref(), Some("__INTERNAL_DB"));
        assert_eq!(pre_agg.filters, vec![("base_table".into(), "events".into()), ("base_db".into(), "shop".into())]);
        assert_eq!(parse("select * from t where k = 'it''s'").unwrap().filters, vec![("k".into(), "it's".into())]);
        for unsupported in ["select count(*) from t", "select * from t where k > 'a'", "delete from t", "select *"] {
            assert_eq!(parse(unsupported), None, "{unsupported}");
        }
    }

    #[test]
    fn a_schema_encodes_as_hybridse_schema_codec() {
        let bytes = encode_schema(&[("k".into(), 9), ("n".into(), 5)]);
        assert_eq!(bytes, vec![2, 0, 0, 9, 1, b'k', 0, 5, 1, b'n']);
    }
}
