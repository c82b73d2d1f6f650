//! `--role=sql_client`: the cluster SQL shell of `src/cmd/sql_cmd.h`, for the one statement
//! the operation tools use, `SHOW TABLE STATUS [LIKE '<pattern>']` (O§5.8), computed like
//! `SQLClusterRouter::ExecuteShowTableStatus` / `CheckTableStatus`
//! (`src/sdk/sql_cluster_router.cc`) from the nameserver's ShowTable and every registered
//! tablet's GetTableStatus, and printed as a result set (hybridse `TextTable` plus
//! `N rows in set`).
//!
//! Before any statement the shell runs `CheckAllTableStatus`, printing one `ERROR: table ...
//! is broken` line per table with unalive replicas or warnings, then a `HINT` line.
//!
//! Simplification: the "not connected to leader" / "fail to get from tablet" warnings come
//! from the leader tablet's GetTableFollower, which the simulated tablet does not serve, so
//! they are never produced. Other SQL statements answer with an `Error:` line.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::printer::TextTable;
use super::{call, connect_zk, emit, paths, read_line, zk_children, zk_value, SimFlags};

/// The columns of `GetTableStatusSchema` (O§5.8).
const COLUMNS: [&str; 14] = [
    "Table_id",
    "Table_name",
    "Database_name",
    "Storage_type",
    "Rows",
    "Memory_data_size",
    "Disk_data_size",
    "Partition",
    "Partition_unalive",
    "Replica",
    "Offline_path",
    "Offline_format",
    "Offline_symbolic_paths",
    "Warnings",
];

/// The internal databases hidden when no pattern and no db select them (`IsHiddenDb`).
const HIDDEN_DBS: [&str; 3] = ["__INTERNAL_DB", "__PRE_AGG_DB", "INFORMATION_SCHEMA"];

/// The cluster as the SDK sees it: the nameserver leader and the registered tablets.
struct Cluster {
    ns: String,
    tablets: Vec<String>,
}

pub(super) async fn start(flags: &SimFlags, version: &str) {
    let Some(cluster) = connect(flags).await else {
        emit("ERROR: Failed to connect to db\n");
        return;
    };
    if !check_all_table_status(&cluster).await {
        emit("HINT: Use `openmldb_tool inspect` to get full report.\n");
    }
    if !flags.cmd.is_empty() {
        // `ns->Use(db)` may fail; the router's db is set anyway (`Shell`, sql_cmd.h).
        let _ = call(&cluster.ns, "NameServer", "UseDatabase", &json!({ "db": flags.database })).await;
        emit(&exec_fetch(&cluster, &flags.database, &flags.cmd).await);
        return;
    }
    if flags.interactive {
        emit(&format!("{LOGO}\nv{version}\n"));
    }
    let db = String::new();
    let mut sql = String::new();
    loop {
        let prompt = if sql.is_empty() { format!("{}/{db}> ", cluster.ns) } else { "-> ".to_string() };
        let Some(line) = read_line(&prompt) else {
            return;
        };
        if line.is_empty() || line.starts_with('/') {
            continue;
        }
        sql.push_str(&line);
        if sql.ends_with(';') {
            emit(&exec_fetch(&cluster, &db, &sql).await);
            sql.clear();
        } else {
            sql.push('\n');
        }
    }
}

const LOGO: &str = "  _____                    ______  _       _____   ______   \n \
/ ___ \\                  |  ___ \\| |     (____ \\ (____  \\  \n\
| |   | |____   ____ ____ | | _ | | |      _   \\ \\ ____)  ) \n\
| |   | |  _ \\ / _  )  _ \\| || || | |     | |   | |  __  (  \n\
| |___| | | | ( (/ /| | | | || || | |_____| |__/ /| |__)  ) \n \
\\_____/| ||_/ \\____)_| |_|_||_||_|_______)_____/ |______/  \n        \
|_|                                                 \n";

/// `InitClusterSDK`: ZooKeeper, the nameserver leader and the tablets under `<root>/nodes`.
async fn connect(flags: &SimFlags) -> Option<Cluster> {
    if flags.zk_cluster.is_empty() {
        return None;
    }
    let client = connect_zk(flags).await?;
    let paths = paths(flags);
    let leader_dir = paths.leader();
    let first = zk_children(&client, &leader_dir).await?.into_iter().next()?;
    let ns = zk_value(&client, &format!("{leader_dir}/{first}")).await?;
    let tablets = zk_children(&client, &paths.nodes()).await.unwrap_or_default();
    Some(Cluster { ns, tablets })
}

/// `ExecFetch`: runs one statement and renders its result set or error.
async fn exec_fetch(cluster: &Cluster, db: &str, sql: &str) -> String {
    let Some(pattern) = parse_show_table_status(sql) else {
        return format!(
            "Error: [1000] the simulated sql_client only runs SHOW TABLE STATUS [LIKE '<pattern>'], not: {}\n",
            sql.trim()
        );
    };
    let rows = show_table_status(cluster, db, &pattern).await;
    let mut table = TextTable::new();
    table.add_row(COLUMNS.iter().map(|c| c.to_string()).collect());
    let count = rows.len();
    for row in rows {
        table.add_row(row);
    }
    format!("{}\n{count} rows in set\n", table.render())
}

/// The pattern of `SHOW TABLE STATUS [LIKE '<pattern>']` (keywords in any case, optional
/// `;`), `""` without LIKE; `None` for any other statement.
fn parse_show_table_status(sql: &str) -> Option<String> {
    let sql = sql.trim().trim_end_matches(';').trim();
    let words: Vec<&str> = sql.splitn(4, char::is_whitespace).filter(|w| !w.is_empty()).collect();
    let keywords = ["show", "table", "status"];
    if words.len() < 3 || !words.iter().zip(keywords).all(|(w, k)| w.eq_ignore_ascii_case(k)) {
        return None;
    }
    let Some(rest) = words.get(3).map(|r| r.trim()) else {
        return Some(String::new());
    };
    let (like, quoted) = rest.split_at(rest.find(char::is_whitespace)?);
    if !like.eq_ignore_ascii_case("like") {
        return None;
    }
    let quoted = quoted.trim();
    let quote = quoted.chars().next().filter(|q| *q == '\'' || *q == '"')?;
    let inner = quoted.strip_prefix(quote)?.strip_suffix(quote)?;
    Some(inner.to_string())
}

/// SQL `LIKE` with `%`, `_` and the escape character `\` (hybridse `udf::v1::like`).
fn like(text: &str, pattern: &str) -> bool {
    fn matches(text: &[char], pattern: &[char]) -> bool {
        match pattern.split_first() {
            None => text.is_empty(),
            Some(('%', rest)) => (0..=text.len()).any(|skip| matches(&text[skip..], rest)),
            Some(('_', rest)) => !text.is_empty() && matches(&text[1..], rest),
            Some(('\\', rest)) if !rest.is_empty() => text.first() == rest.first() && matches(&text[1..], &rest[1..]),
            Some((c, rest)) => text.first() == Some(c) && matches(&text[1..], rest),
        }
    }
    let text: Vec<char> = text.chars().collect();
    let pattern: Vec<char> = pattern.chars().collect();
    matches(&text, &pattern)
}

/// Status of one replica per `tid → pid → endpoint`.
type StatusMap = BTreeMap<u64, BTreeMap<u64, BTreeMap<String, Value>>>;

fn number(value: &Value, field: &str) -> u64 {
    value.get(field).and_then(Value::as_u64).unwrap_or(0)
}

fn text(value: &Value, field: &str) -> String {
    value.get(field).and_then(Value::as_str).unwrap_or_default().to_string()
}

fn list<'v>(value: &'v Value, field: &str) -> &'v [Value] {
    value.get(field).and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default()
}

/// `ExecuteShowTableStatus`: one row of [`COLUMNS`] per table, in the reverse order of
/// ShowTable (`tables.rbegin()`).
async fn show_table_status(cluster: &Cluster, db: &str, pattern: &str) -> Vec<Vec<String>> {
    let reply = call(&cluster.ns, "NameServer", "ShowTable", &json!({ "db": "", "show_all": true })).await;
    let mut statuses: StatusMap = BTreeMap::new();
    for tablet in &cluster.tablets {
        let reply = call(tablet, "TabletServer", "GetTableStatus", &json!({})).await;
        if reply.status().0 != 0 {
            continue; // logged as a warning by the real SDK
        }
        for status in list(&reply.body, "all_table_status") {
            statuses
                .entry(number(status, "tid"))
                .or_default()
                .entry(number(status, "pid"))
                .or_default()
                .insert(tablet.clone(), status.clone());
        }
    }
    let mut rows = Vec::new();
    for table in list(&reply.body, "table_info").iter().rev() {
        let table_db = text(table, "db");
        if !pattern.is_empty() {
            if !like(&table_db, pattern) {
                continue;
            }
        } else if !db.is_empty() {
            if db != table_db {
                continue;
            }
        } else if HIDDEN_DBS.contains(&table_db.as_str()) {
            continue;
        }
        let tid = number(table, "tid");
        let storage_mode = table.get("storage_mode").and_then(Value::as_str).unwrap_or("kMemory");
        let storage_type = storage_mode.strip_prefix('k').unwrap_or(storage_mode).to_ascii_lowercase();
        let (mut rows_count, mut mem_bytes, mut disk_bytes, mut unalive) = (0u64, 0u64, 0u64, 0u32);
        let mut warnings = String::new();
        for partition in list(table, "table_partition") {
            rows_count += number(partition, "record_cnt");
            mem_bytes += number(partition, "record_byte_size");
            disk_bytes += number(partition, "diskused");
            for meta in list(partition, "partition_meta") {
                if !meta.get("is_alive").and_then(Value::as_bool).unwrap_or(true) {
                    unalive += 1;
                }
            }
            check_partition(tid, partition, &statuses, &mut warnings);
        }
        rows.push(vec![
            tid.to_string(),
            text(table, "name"),
            table_db,
            storage_type,
            rows_count.to_string(),
            mem_bytes.to_string(),
            disk_bytes.to_string(),
            number(table, "partition_num").to_string(),
            unalive.to_string(),
            number(table, "replica_num").to_string(),
            "NULL".to_string(),
            "NULL".to_string(),
            "NULL".to_string(),
            warnings,
        ]);
    }
    rows
}

/// `CheckTableStatus` for one partition: appends `[pid=P][leader|follower][ep]: <error>`
/// lines (newline-separated) to `warnings`.
fn check_partition(tid: u64, partition: &Value, statuses: &StatusMap, warnings: &mut String) {
    let pid = number(partition, "pid");
    let mut append = |is_leader: Option<bool>, endpoint: &str, error: &str| {
        if !warnings.is_empty() {
            warnings.push('\n');
        }
        warnings.push_str(&format!("[pid={pid}]"));
        if let Some(is_leader) = is_leader {
            warnings.push_str(if is_leader { "[leader]" } else { "[follower]" });
        }
        if !endpoint.is_empty() {
            warnings.push_str(&format!("[{endpoint}]"));
        }
        warnings.push_str(&format!(": {error}"));
    };
    let metas = list(partition, "partition_meta");
    let Some(replicas) = statuses.get(&tid).and_then(|pids| pids.get(&pid)) else {
        append(None, "", &format!("real replica number 0 does not match the configured replicanum {}", metas.len()));
        return;
    };
    if metas.len() != replicas.len() {
        append(
            None,
            "",
            &format!("real replica number {} does not match the configured replicanum {}", replicas.len(), metas.len()),
        );
    }
    for meta in metas {
        let endpoint = text(meta, "endpoint");
        let meta_leader = meta.get("is_leader").and_then(Value::as_bool).unwrap_or(false);
        let Some(status) = replicas.get(&endpoint) else {
            append(Some(meta_leader), &endpoint, "state is kNotFound");
            continue;
        };
        let is_leader = match status.get("mode").and_then(Value::as_str) {
            Some(mode) => mode == "kTableLeader",
            None => meta_leader,
        };
        if is_leader != meta_leader {
            append(Some(is_leader), &endpoint, "leader/follower mode inconsistent");
        }
        let state = status.get("state").and_then(Value::as_str).unwrap_or("kTableUndefined");
        if state == "kTableUndefined" || (is_leader && state == "kTableLoading") {
            append(Some(is_leader), &endpoint, &format!("state is {state}"));
        }
    }
}

/// `CheckAllTableStatus`: false (after printing `ERROR:` lines) when a table is broken.
async fn check_all_table_status(cluster: &Cluster) -> bool {
    let mut all_ok = true;
    for row in show_table_status(cluster, "", "%").await {
        let (table, db, unalive, warnings) = (&row[1], &row[2], &row[8], &row[13]);
        let mut msg = format!("table {db}.{table} is broken, `show table status` to check detail");
        let mut broken = false;
        if unalive != "0" {
            broken = true;
            msg.push_str(&format!(", unalive partition: {unalive}"));
        }
        if !warnings.is_empty() {
            broken = true;
            let mut cut = warnings.len().min(100);
            while !warnings.is_char_boundary(cut) {
                cut -= 1;
            }
            msg.push_str(&format!(", warning preview: {}", &warnings[..cut]));
        }
        if broken {
            all_ok = false;
            emit(&format!("ERROR: {msg}\n"));
        }
    }
    all_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statement_forms() {
        assert_eq!(parse_show_table_status("show table status like '%';"), Some("%".to_string()));
        assert_eq!(parse_show_table_status("SHOW TABLE STATUS LIKE \"db_\""), Some("db_".to_string()));
        assert_eq!(parse_show_table_status(" show  table status ; "), Some(String::new()));
        assert_eq!(parse_show_table_status("show tables;"), None);
        assert_eq!(parse_show_table_status("show table status where x"), None);
    }

    #[test]
    fn like_patterns() {
        assert!(like("db1", "%"));
        assert!(like("", "%"));
        assert!(like("db1", "db_"));
        assert!(!like("db12", "db_"));
        assert!(like("__INTERNAL_DB", "\\_\\_%"));
        assert!(!like("xx_INTERNAL_DB", "\\_\\_%"));
        assert!(like("abc", "a%c"));
        assert!(!like("ABC", "abc"));
    }

    #[test]
    fn partition_warnings() {
        let partition = json!({ "pid": 1, "partition_meta": [
            { "endpoint": "a", "is_leader": true },
            { "endpoint": "b", "is_leader": false },
            { "endpoint": "c", "is_leader": false },
        ]});
        let mut statuses: StatusMap = BTreeMap::new();
        let replicas = statuses.entry(7).or_default().entry(1).or_default();
        replicas.insert("a".into(), json!({ "mode": "kTableFollower", "state": "kTableNormal" }));
        replicas.insert("b".into(), json!({ "mode": "kTableFollower", "state": "kTableUndefined" }));
        let mut warnings = String::new();
        check_partition(7, &partition, &statuses, &mut warnings);
        assert_eq!(
            warnings,
            "[pid=1]: real replica number 2 does not match the configured replicanum 3\n\
             [pid=1][follower][a]: leader/follower mode inconsistent\n\
             [pid=1][follower][b]: state is kTableUndefined\n\
             [pid=1][follower][c]: state is kNotFound"
        );
        let mut missing = String::new();
        check_partition(8, &partition, &statuses, &mut missing);
        assert_eq!(missing, "[pid=1]: real replica number 0 does not match the configured replicanum 3");
    }
}
