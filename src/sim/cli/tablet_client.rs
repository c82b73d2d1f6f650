//! `--role=client --endpoint=<tablet>`: `StartClient` and `HandleClientGetTableStatus` of
//! `src/cmd/openmldb.cc` with `PrintTableStatus` of `src/cmd/display.h:297-334` (C§5).

use serde_json::{json, Value};

use super::printer::{human_readable_size, split_string, TPrinter};
use super::{call, emit, from_chars_u32, read_line, SimFlags};

pub(super) async fn start(flags: &SimFlags, version: &str) {
    if flags.endpoint.is_empty() {
        emit("Start failed! not set endpoint\n");
        return;
    }
    if flags.interactive {
        emit(&format!("Welcome to openmldb with version {version}\n"));
    }
    loop {
        let buffer = if !flags.interactive {
            flags.cmd.clone()
        } else {
            match read_line(&format!("{}> ", flags.endpoint)) {
                None => return,
                Some(line) if line.is_empty() || line.starts_with('/') => continue,
                Some(line) => line,
            }
        };
        let parts = split_string(&buffer, ' ');
        if parts.is_empty() {
            if flags.interactive {
                continue;
            }
            // The real client spins here forever on an empty --cmd; stop instead.
            return;
        }
        match parts[0] {
            "gettablestatus" => emit(&get_table_status(flags, &parts).await),
            "exit" | "quit" => {
                emit("bye\n");
                return;
            }
            _ => emit("unsupported cmd\n"),
        }
        if !flags.interactive {
            return;
        }
    }
}

/// `gettablestatus [tid pid]`. With tid and pid the client copies the first status or
/// keeps a default one, so an unloaded partition prints `0 0 0 kTableLeader kTableUndefined`.
async fn get_table_status(flags: &SimFlags, parts: &[&str]) -> String {
    let mut out = String::new();
    let mut statuses: Vec<Value> = Vec::new();
    match parts.len() {
        3 => {
            let Some(tid) = from_chars_u32(parts[1]) else {
                return "Invalid args, tid should be uint32_t\n".to_string();
            };
            let Some(pid) = from_chars_u32(parts[2]) else {
                return "Invalid args, pid should be uint32_t\n".to_string();
            };
            let request = json!({ "tid": tid, "pid": pid, "need_schema": false });
            let reply = call(&flags.endpoint, "TabletServer", "GetTableStatus", &request).await;
            let (code, msg) = reply.status();
            if code == 0 {
                let first = reply.body.get("all_table_status").and_then(Value::as_array).and_then(|s| s.first());
                statuses.push(first.cloned().unwrap_or_else(|| json!({})));
            } else {
                // The real client prints the error and still prints the (empty) table.
                out.push_str(&format!("gettablestatus failed, error msg: {msg}\n"));
            }
        }
        1 => {
            let reply = call(&flags.endpoint, "TabletServer", "GetTableStatus", &json!({})).await;
            let (code, msg) = reply.status();
            if code != 0 {
                return format!("gettablestatus failed, error msg: {msg}\n");
            }
            if let Some(all) = reply.body.get("all_table_status").and_then(Value::as_array) {
                statuses.extend(all.iter().cloned());
            }
        }
        _ => return "Bad gettablestatus format\n".to_string(),
    }
    out.push_str(&print_table_status(&statuses, flags.max_col_display_length));
    out
}

/// `PrintTableStatus`; absent fields take their proto2 defaults (`mode` kTableLeader,
/// `state` kTableUndefined, `compress_type` kNoCompress).
fn print_table_status(statuses: &[Value], max_col_width: usize) -> String {
    let mut printer = TPrinter::with_header(
        &[
            "tid",
            "pid",
            "offset",
            "mode",
            "state",
            "enable_expire",
            "ttl",
            "ttl_offset",
            "memused",
            "compress_type",
            "skiplist_height",
        ],
        max_col_width,
    );
    for status in statuses {
        let number = |field: &str| status.get(field).and_then(Value::as_u64).unwrap_or(0);
        let name =
            |field: &str, default: &str| status.get(field).and_then(Value::as_str).unwrap_or(default).to_string();
        let expire = status.get("is_expire").and_then(Value::as_bool).unwrap_or(false);
        let time_offset = status.get("time_offset").and_then(Value::as_i64).unwrap_or(0);
        printer.add_row(vec![
            number("tid").to_string(),
            number("pid").to_string(),
            number("offset").to_string(),
            name("mode", "kTableLeader"),
            name("state", "kTableUndefined"),
            expire.to_string(),
            "0min".to_string(),
            format!("{time_offset}s"),
            human_readable_size((number("record_byte_size") + number("record_idx_byte_size")) as i64),
            name("compress_type", "kNoCompress"),
            number("skiplist_height").to_string(),
        ]);
    }
    printer.render(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_status_row_of_an_unloaded_partition() {
        let text = print_table_status(&[json!({})], 256);
        let row = text.lines().nth(2).unwrap_or_default().split_whitespace().collect::<Vec<_>>();
        assert_eq!(
            row,
            ["0", "0", "0", "kTableLeader", "kTableUndefined", "false", "0min", "0s", "0.000", "kNoCompress", "0"]
        );
    }
}
