//! `--role=ns_client`: `StartNsClient` and the `HandleNS*` commands of `src/cmd/openmldb.cc`
//! (C§5's table; dispatch `CLI:3768-3870`).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};
use zookeeper_client as zk;

use super::printer::{human_readable_size, human_readable_time, local_time, split_string, TPrinter};
use super::{
    call, connect_zk, emit, from_chars_u32, from_chars_u64, is_number, paths, read_line, zk_children, zk_value,
};
use super::{Reply, SimFlags};

/// `StartNsClient`: find the nameserver (ZooKeeper leader or `--endpoint`), then run `--cmd`
/// once or read commands from stdin.
pub(super) async fn start(flags: &SimFlags, version: &str) {
    if flags.cmd.is_empty() {
        emit(&format!("Welcome to openmldb with version {version}\n"));
    }
    let mut zk_client = None;
    let endpoint = if !flags.zk_cluster.is_empty() {
        let Some(client) = connect_zk(flags).await else {
            emit("zk client init failed\n");
            return;
        };
        let leader_dir = paths(flags).leader();
        let Some(first) = zk_children(&client, &leader_dir).await.and_then(|c| c.into_iter().next()) else {
            emit("get children failed\n");
            return;
        };
        let Some(endpoint) = zk_value(&client, &format!("{leader_dir}/{first}")).await else {
            emit("get leader failed\n");
            return;
        };
        emit(&format!("ns leader: {endpoint}\n"));
        zk_client = Some(client);
        endpoint
    } else if !flags.endpoint.is_empty() {
        flags.endpoint.clone()
    } else {
        emit("Start failed! not set endpoint or zk_cluster\n");
        return;
    };
    let mut ns = NsClient { endpoint, db: String::new(), zk: zk_client, flags };
    loop {
        let buffer = if !flags.cmd.is_empty() {
            if !flags.database.is_empty() {
                // The outcome is ignored: the db stays "" on failure (C§5).
                let database = flags.database.clone();
                let _ = ns.use_db(&database).await;
            }
            flags.cmd.clone()
        } else {
            match read_line(&format!("{} {}> ", ns.endpoint, ns.db)) {
                None => return,
                Some(line) if line.is_empty() || line.starts_with('/') => continue,
                Some(line) => line,
            }
        };
        let parts = split_string(&buffer, ' ');
        if parts.is_empty() {
            if flags.cmd.is_empty() {
                continue;
            }
            return;
        }
        if !ns.dispatch(&parts).await || !flags.cmd.is_empty() {
            // With --cmd the command runs once (see the module docs of `cli`).
            return;
        }
    }
}

struct NsClient<'a> {
    endpoint: String,
    db: String,
    zk: Option<zk::Client>,
    flags: &'a SimFlags,
}

/// A JSON field as text / number / bool, with proto2 defaults for absent fields.
fn text(value: &Value, field: &str) -> String {
    value.get(field).and_then(Value::as_str).unwrap_or_default().to_string()
}

fn number(value: &Value, field: &str) -> u64 {
    value.get(field).and_then(Value::as_u64).unwrap_or(0)
}

fn list<'v>(value: &'v Value, field: &str) -> &'v [Value] {
    value.get(field).and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default()
}

fn out_line(out: &mut String, line: &str) {
    out.push_str(line);
    out.push('\n');
}

/// `SplitPidGroup` (`CLI:370-415`): `N`, `A-B` or `a,b,c`; `None` on a format error.
fn split_pid_group(group: &str) -> Result<BTreeSet<u32>, String> {
    let bad_pid = || "Invalid args. pid should be uint32_t\n".to_string();
    let format_error = String::new();
    let mut pids = BTreeSet::new();
    if is_number(group) {
        pids.insert(from_chars_u32(group).ok_or_else(bad_pid)?);
    } else if group.contains('-') {
        let range: Vec<&str> = group.split('-').collect();
        if range.len() != 2 || !is_number(range[0]) || !is_number(range[1]) {
            return Err(format_error);
        }
        let start = from_chars_u32(range[0]).ok_or_else(bad_pid)?;
        let end = from_chars_u32(range[1]).ok_or_else(bad_pid)?;
        pids.extend(start..=end);
    } else if group.contains(',') {
        for pid in group.split(',') {
            if !is_number(pid) {
                return Err(format_error);
            }
            pids.insert(from_chars_u32(pid).ok_or_else(bad_pid)?);
        }
    } else {
        return Err(format_error);
    }
    Ok(pids)
}

/// Parses a pid group the way `HandleNSAddReplica` & co. do, printing their complaints.
fn pid_group_or_complain(group: &str, out: &mut String) -> Option<BTreeSet<u32>> {
    match split_pid_group(group) {
        Ok(pids) if pids.is_empty() => {
            out_line(out, "has not valid pid");
            None
        }
        Ok(pids) => Some(pids),
        Err(printed) => {
            // A failed from_chars prints its own line before the format error.
            out.push_str(&printed);
            out_line(out, &format!("pid group[{group}] format error"));
            None
        }
    }
}

/// `add_pid_group` only when more than one pid; `pid` is the smallest (`NsClient::AddReplica`).
fn with_pid_group(mut body: Value, pids: &BTreeSet<u32>) -> Value {
    body["pid"] = json!(pids.iter().next().copied().unwrap_or(0));
    if pids.len() > 1 {
        body["pid_group"] = json!(pids.iter().collect::<Vec<_>>());
    }
    body
}

impl NsClient<'_> {
    async fn rpc(&self, method: &str, body: Value) -> Reply {
        call(&self.endpoint, "NameServer", method, &body).await
    }

    fn printer(&self, header: &[&str]) -> TPrinter {
        TPrinter::with_header(header, self.flags.max_col_display_length)
    }

    /// `NsClient::Use`: the db changes only on success.
    async fn use_db(&mut self, db: &str) -> Result<(), String> {
        let reply = self.rpc("UseDatabase", json!({ "db": db })).await;
        if reply.ok() {
            self.db = db.to_string();
            Ok(())
        } else {
            Err(reply.msg())
        }
    }

    /// Runs one command; false for `exit`/`quit`.
    async fn dispatch(&mut self, parts: &[&str]) -> bool {
        let mut out = String::new();
        match parts[0] {
            "showtablet" => self.show_tablet(&mut out).await,
            "showns" => self.show_ns(&mut out).await,
            "showopstatus" => self.show_op_status(parts, &mut out).await,
            "addreplica" => self.add_replica(parts, &mut out).await,
            "delreplica" => self.del_replica(parts, &mut out).await,
            "showtable" => self.show_table(parts, &mut out).await,
            "confset" => self.conf_set(parts, &mut out).await,
            "confget" => self.conf_get(parts, &mut out).await,
            "changeleader" => self.change_leader(parts, &mut out).await,
            "offlineendpoint" => self.offline_endpoint(parts, &mut out).await,
            "migrate" => self.migrate(parts, &mut out).await,
            "recoverendpoint" => self.recover_endpoint(parts, &mut out).await,
            "recovertable" => self.recover_table(parts, &mut out).await,
            "updatetablealive" => self.update_table_alive(parts, &mut out).await,
            "cancelop" => self.cancel_op(parts, &mut out).await,
            "deleteop" => self.delete_op(parts, &mut out).await,
            "showdb" => self.show_db(&mut out).await,
            "use" => self.use_command(parts, &mut out).await,
            "exit" | "quit" => {
                emit("bye\n");
                return false;
            }
            _ => out_line(&mut out, "unsupported cmd"),
        }
        emit(&out);
        true
    }

    /// `HandleNSShowTablet` (`CLI:571-595`).
    async fn show_tablet(&self, out: &mut String) {
        let mut printer = self.printer(&["endpoint", "real_endpoint", "state", "age"]);
        let reply = self.rpc("ShowTablet", json!({})).await;
        if !reply.ok() {
            out_line(out, &format!("Fail to show tablets. error msg: {}", reply.msg()));
            return;
        }
        for tablet in list(&reply.body, "tablets") {
            printer.add_row(vec![
                text(tablet, "endpoint"),
                text(tablet, "real_endpoint"),
                text(tablet, "state"),
                human_readable_time(number(tablet, "age")),
            ]);
        }
        out.push_str(&printer.render(true));
    }

    /// `HandleNSShowNameServer` (`CLI:668-721`): ZooKeeper only, no RPC.
    async fn show_ns(&self, out: &mut String) {
        let Some(client) = self.zk.as_ref().filter(|_| !self.flags.zk_cluster.is_empty()) else {
            out_line(out, "Show nameserver failed. zk_cluster is empty");
            return;
        };
        let leader_dir = paths(self.flags).leader();
        let children = zk_children(client, &leader_dir).await.unwrap_or_default();
        if children.is_empty() {
            out_line(out, "get children failed");
            return;
        }
        let mut endpoints: Vec<String> = Vec::new();
        for child in children {
            let path = format!("{leader_dir}/{child}");
            let Some(endpoint) = zk_value(client, &path).await else {
                out_line(out, &format!("get endpoint failed. path {path}"));
                return;
            };
            if !endpoints.contains(&endpoint) {
                endpoints.push(endpoint);
            }
        }
        let mut printer = self.printer(&["endpoint", "real_endpoint", "role"]);
        for (i, endpoint) in endpoints.into_iter().enumerate() {
            let role = if i == 0 { "leader" } else { "standby" };
            printer.add_row(vec![endpoint, "-".to_string(), role.to_string()]);
        }
        out.push_str(&printer.render(true));
    }

    /// `HandleNSShowOPStatus` (`CLI:2725-2805`).
    async fn show_op_status(&self, parts: &[&str], out: &mut String) {
        let mut printer = self.printer(&[
            "op_id",
            "op_type",
            "name",
            "pid",
            "status",
            "start_time",
            "execute_time",
            "end_time",
            "cur_task",
            "for_replica_cluster",
        ]);
        let mut request = json!({});
        if !self.db.is_empty() {
            request["db"] = json!(self.db);
        }
        if let Some(name) = parts.get(1) {
            request["name"] = json!(name);
        }
        if let Some(pid) = parts.get(2) {
            let Some(pid) = from_chars_u32(pid) else {
                out_line(out, "Invalid args. pid should be uint32_t");
                return;
            };
            if pid != u32::MAX {
                request["pid"] = json!(pid);
            }
        }
        let reply = self.rpc("ShowOPStatus", request).await;
        if !reply.ok() {
            // sic: the real CLI says "tablets" here (C§5)
            out_line(out, &format!("Fail to show tablets. error msg: {}", reply.msg()));
            return;
        }
        let now =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default();
        for op in list(&reply.body, "op_status") {
            let mut row = vec![number(op, "op_id").to_string(), text(op, "op_type")];
            row.push(op.get("name").and_then(Value::as_str).map(str::to_string).unwrap_or_else(|| "-".to_string()));
            match op.get("pid").and_then(Value::as_u64) {
                Some(pid) if pid != u64::from(u32::MAX) => row.push(pid.to_string()),
                _ => row.push("-".to_string()),
            }
            row.push(text(op, "status"));
            let start = number(op, "start_time");
            let end = number(op, "end_time");
            if start > 0 {
                row.push(local_time(start));
                if end != 0 {
                    row.push(format!("{}s", end.wrapping_sub(start)));
                    row.push(local_time(end));
                } else {
                    row.push(format!("{}s", now.wrapping_sub(start)));
                    row.push("-".to_string());
                }
            } else {
                row.extend(["-", "-", "-"].map(str::to_string));
            }
            row.push(text(op, "task_type"));
            let for_replica_cluster = op.get("for_replica_cluster").and_then(Value::as_i64) == Some(1);
            row.push(if for_replica_cluster { "yes" } else { "no" }.to_string());
            printer.add_row(row);
        }
        out.push_str(&printer.render(true));
    }

    /// `HandleNSAddReplica` (`CLI:742-763`).
    async fn add_replica(&self, parts: &[&str], out: &mut String) {
        self.change_replica(parts, out, "AddReplicaNS", "addreplica", "AddReplica ok").await;
    }

    /// `HandleNSDelReplica` (`CLI:765-785`).
    async fn del_replica(&self, parts: &[&str], out: &mut String) {
        self.change_replica(parts, out, "DelReplicaNS", "delreplica", "DelReplica ok").await;
    }

    /// `<cmd> name pid_group endpoint`, the shape addreplica and delreplica share.
    async fn change_replica(&self, parts: &[&str], out: &mut String, method: &str, command: &str, ok: &str) {
        if parts.len() < 4 {
            out_line(out, "Bad format");
            return;
        }
        let Some(pids) = pid_group_or_complain(parts[2], out) else {
            return;
        };
        let body = with_pid_group(json!({ "name": parts[1], "endpoint": parts[3], "db": self.db }), &pids);
        let (code, msg) = self.rpc(method, body).await.status();
        if code != 0 {
            out_line(out, &format!("Fail to {command}. error msg:{msg}"));
            return;
        }
        out_line(out, ok);
    }

    /// `HandleNSClientShowTable` + `PrintTableInfo` (`display.h:218-295`).
    async fn show_table(&self, parts: &[&str], out: &mut String) {
        let mut request = json!({ "db": self.db, "show_all": false });
        if let Some(name) = parts.get(1) {
            request["name"] = json!(name);
        }
        let reply = self.rpc("ShowTable", request).await;
        if !reply.ok() {
            out_line(out, &format!("failed to showtable. error msg: {}", reply.msg()));
            return;
        }
        let header =
            ["name", "tid", "pid", "endpoint", "role", "is_alive", "offset", "record_cnt", "memused", "diskused"];
        let mut printer = self.printer(&header);
        let dashes = |row: &mut Vec<String>| row.resize(header.len(), "-".to_string());
        for table in list(&reply.body, "table_info") {
            let name = text(table, "name");
            let tid = number(table, "tid").to_string();
            let partitions = list(table, "table_partition");
            if partitions.is_empty() {
                let mut row = vec![name.clone(), tid.clone()];
                dashes(&mut row);
                printer.add_row(row);
                continue;
            }
            for partition in partitions {
                let pid = number(partition, "pid").to_string();
                let metas = list(partition, "partition_meta");
                if metas.is_empty() {
                    let mut row = vec![name.clone(), tid.clone(), pid];
                    dashes(&mut row);
                    printer.add_row(row);
                    continue;
                }
                for meta in metas {
                    let is_leader = meta.get("is_leader").and_then(Value::as_bool).unwrap_or(false);
                    let is_alive = meta.get("is_alive").and_then(Value::as_bool).unwrap_or(true);
                    let optional = |field: &str| meta.get(field).and_then(Value::as_u64);
                    printer.add_row(vec![
                        name.clone(),
                        tid.clone(),
                        pid.clone(),
                        text(meta, "endpoint"),
                        if is_leader { "leader" } else { "follower" }.to_string(),
                        if is_alive { "yes" } else { "no" }.to_string(),
                        optional("offset").map_or_else(|| "-".to_string(), |v| v.to_string()),
                        optional("record_cnt").map_or_else(|| "-".to_string(), |v| v.to_string()),
                        optional("record_byte_size").map_or_else(|| "-".to_string(), |v| human_readable_size(v as i64)),
                        human_readable_size(number(meta, "diskused") as i64),
                    ]);
                }
            }
        }
        out.push_str(&printer.render(true));
    }

    /// `HandleNSClientConfSet` (`CLI:902-914`).
    async fn conf_set(&self, parts: &[&str], out: &mut String) {
        if parts.len() < 3 {
            out_line(out, "Bad format");
            return;
        }
        let reply = self.rpc("ConfSet", json!({ "conf": { "key": parts[1], "value": parts[2] } })).await;
        if !reply.ok() {
            out_line(out, &format!("failed to set {}. error msg: {}", parts[1], reply.msg()));
            return;
        }
        out_line(out, &format!("set {} ok", parts[1]));
    }

    /// `HandleNSClientConfGet` (`CLI:916-944`); its error text says "set" (sic).
    async fn conf_get(&self, parts: &[&str], out: &mut String) {
        let key = parts.get(1).copied().unwrap_or_default();
        let reply = self.rpc("ConfGet", json!({})).await;
        let mut confs: BTreeMap<String, String> = BTreeMap::new();
        let mut msg = reply.msg();
        let mut ok = reply.ok();
        if ok {
            for conf in list(&reply.body, "conf") {
                let (k, v) = (text(conf, "key"), text(conf, "value"));
                if key.is_empty() {
                    confs.entry(k).or_insert(v);
                } else if k == key {
                    confs.insert(k, v);
                    break;
                }
            }
            if !key.is_empty() && confs.is_empty() {
                msg = format!("cannot found key {key}");
                ok = false;
            }
        }
        if !ok {
            out_line(out, &format!("failed to set {key}. error msg: {msg}"));
            return;
        }
        let mut printer = self.printer(&["key", "value"]);
        for (k, v) in confs {
            printer.add_row(vec![k, v]);
        }
        out.push_str(&printer.render(true));
    }

    /// `HandleNSClientChangeLeader` (`CLI:946-968`); `auto` is sent as the candidate.
    async fn change_leader(&self, parts: &[&str], out: &mut String) {
        if parts.len() < 3 {
            out_line(out, "Bad format");
            return;
        }
        let Some(pid) = from_chars_u32(parts[2]) else {
            out_line(out, "Invalid args. pid should be uint32_t");
            return;
        };
        let mut body = json!({ "name": parts[1], "pid": pid, "db": self.db });
        if let Some(candidate) = parts.get(3) {
            body["candidate_leader"] = json!(candidate);
        }
        let (code, msg) = self.rpc("ChangeLeader", body).await.status();
        if code != 0 {
            out_line(out, &format!("failed to change leader. error msg: {msg}"));
            return;
        }
        out_line(
            out,
            "change leader ok. If there are writing operations while changing a leader, it may cause data loss.",
        );
    }

    /// `HandleNSClientOfflineEndpoint` (`CLI:970-995`).
    async fn offline_endpoint(&self, parts: &[&str], out: &mut String) {
        if parts.len() < 2 {
            out_line(out, "Bad format");
            return;
        }
        let mut body = json!({ "endpoint": parts[1] });
        if let Some(concurrency) = parts.get(2) {
            // boost::lexical_cast<int32_t> then <uint32_t>: the whole text must be a number.
            match concurrency.parse::<i32>() {
                Ok(c) if c <= 0 => {
                    out_line(out, "Invalid args. concurrency should be greater than 0");
                    return;
                }
                Ok(_) => match concurrency.parse::<u32>() {
                    Ok(c) => body["concurrency"] = json!(c),
                    Err(_) => {
                        out_line(out, "Invalid args. concurrency should be uint32_t");
                        return;
                    }
                },
                Err(_) => {
                    out_line(out, "Invalid args. concurrency should be uint32_t");
                    return;
                }
            }
        }
        let reply = self.rpc("OfflineEndpoint", body).await;
        if !reply.ok() {
            out_line(out, &format!("failed to offline endpoint. error msg: {}", reply.msg()));
            return;
        }
        out_line(out, "offline endpoint ok");
    }

    /// `HandleNSClientMigrate` (`CLI:997-1024`).
    async fn migrate(&self, parts: &[&str], out: &mut String) {
        if parts.len() < 5 {
            out_line(out, "Bad format. eg, migrate 127.0.0.1:9991 table1 1-10 127.0.0.1:9992");
            return;
        }
        if parts[1] == parts[4] {
            out_line(out, "migrate error. src_endpoint is same as des_endpoint");
            return;
        }
        let Some(pids) = pid_group_or_complain(parts[3], out) else {
            return;
        };
        let body = json!({
            "src_endpoint": parts[1],
            "name": parts[2],
            "des_endpoint": parts[4],
            "db": self.db,
            "pid": pids.iter().collect::<Vec<_>>(),
        });
        let (code, msg) = self.rpc("Migrate", body).await.status();
        if code != 0 {
            out_line(out, &format!("failed to migrate partition. error msg: {msg}"));
            return;
        }
        out_line(out, "partition migrate ok");
    }

    /// `HandleNSClientRecoverEndpoint` (`CLI:1026-1059`).
    async fn recover_endpoint(&self, parts: &[&str], out: &mut String) {
        if parts.len() < 2 {
            out_line(out, "Bad format");
            return;
        }
        let need_restore = match parts.get(2).map(|v| v.to_ascii_lowercase()) {
            None => false,
            Some(v) if v == "true" => true,
            Some(v) if v == "false" => false,
            Some(_) => {
                out_line(out, "Invalid args. need_restore should be true or false");
                return;
            }
        };
        let mut body = json!({ "endpoint": parts[1], "need_restore": need_restore });
        if let Some(concurrency) = parts.get(3) {
            match from_chars_u32(concurrency) {
                Some(c) if c > 0 => body["concurrency"] = json!(c),
                Some(_) => {}
                None => {
                    out_line(out, "Invalid args. concurrency should be uint32");
                    return;
                }
            }
        }
        let reply = self.rpc("RecoverEndpoint", body).await;
        if !reply.ok() {
            out_line(out, &format!("failed to recover endpoint. error msg: {}", reply.msg()));
            return;
        }
        out_line(out, "recover endpoint ok");
    }

    /// `HandleNSClientRecoverTable` (`CLI:1061-1077`).
    async fn recover_table(&self, parts: &[&str], out: &mut String) {
        if parts.len() < 4 {
            out_line(out, "Bad format");
            return;
        }
        let Some(pid) = from_chars_u32(parts[2]) else {
            out_line(out, "Invalid args. pid should be uint32_t");
            return;
        };
        let body = json!({ "name": parts[1], "pid": pid, "endpoint": parts[3], "db": self.db });
        let (code, msg) = self.rpc("RecoverTable", body).await.status();
        if code != 0 {
            out_line(out, &format!("Fail to recover table. error msg:{msg}"));
            return;
        }
        out_line(out, "recover table ok");
    }

    /// `HandleNSClientUpdateTableAlive` (`CLI:2694-2723`): `*` omits the pid.
    async fn update_table_alive(&self, parts: &[&str], out: &mut String) {
        if parts.len() < 5 {
            out_line(out, "Bad format");
            return;
        }
        let is_alive = match parts[4] {
            "yes" => true,
            "no" => false,
            _ => {
                out_line(out, "is_alive should be yes or no");
                return;
            }
        };
        let mut body = json!({ "endpoint": parts[3], "name": parts[1], "is_alive": is_alive, "db": self.db });
        if parts[2] != "*" {
            let Some(pid) = from_chars_u32(parts[2]) else {
                out_line(out, "Invalid args. pid should be uint32_t");
                return;
            };
            if pid < u32::MAX {
                body["pid"] = json!(pid);
            }
        }
        let (code, msg) = self.rpc("UpdateTableAliveStatus", body).await.status();
        if code != 0 {
            out_line(out, &format!("Fail to update table alive. error msg: {msg}"));
            return;
        }
        out_line(out, "update ok");
    }

    /// `HandleNSClientCancelOP` (`CLI:523-539`): the error shows `ReturnCode[<code>]<msg>`.
    async fn cancel_op(&self, parts: &[&str], out: &mut String) {
        if parts.len() < 2 {
            out_line(out, "bad cancelop format, eg cancelop 1002");
            return;
        }
        let Some(op_id) = from_chars_u64(parts[1]) else {
            out_line(out, "Invalid args. op_id should be uint64_t");
            return;
        };
        let (code, msg) = self.rpc("CancelOP", json!({ "op_id": op_id })).await.status();
        if code == 0 {
            out_line(out, "Cancel op ok");
        } else {
            out_line(out, &format!("Cancel op failed, error msg: ReturnCode[{code}]{msg}"));
        }
    }

    /// `HandleNSClientDeleteOP` (`CLI:541-569`).
    async fn delete_op(&self, parts: &[&str], out: &mut String) {
        if parts.len() < 2 {
            out_line(out, "bad deleteop format, eg: deleteop 1002, deleteop doing");
            return;
        }
        let mut body = json!({});
        if !self.db.is_empty() {
            body["db"] = json!(self.db);
        }
        match parts[1].parse::<u64>() {
            Ok(op_id) => body["op_id"] = json!(op_id),
            Err(_) => {
                let status = match parts[1].to_ascii_lowercase().as_str() {
                    "done" => "kDone",
                    "failed" => "kFailed",
                    "canceled" => "kCanceled",
                    _ => {
                        out_line(out, "invalid args");
                        return;
                    }
                };
                body["status"] = json!(status);
            }
        }
        let (code, msg) = self.rpc("DeleteOP", body).await.status();
        if code == 0 {
            out_line(out, "Delete op ok");
        } else {
            out_line(out, &format!("Delete op failed, error msg: ReturnCode[{code}]{msg}"));
        }
    }

    /// `HandleNSShowDB` (`CLI:1340-1358`): failures print an empty table.
    async fn show_db(&self, out: &mut String) {
        let reply = self.rpc("ShowDatabase", json!({})).await;
        let mut printer = self.printer(&["#", "name"]);
        for (i, db) in list(&reply.body, "db").iter().enumerate() {
            printer.add_row(vec![(i + 1).to_string(), db.as_str().unwrap_or_default().to_string()]);
        }
        out.push_str(&printer.render(true));
    }

    /// `HandleNsUseDb` (`CLI:1231-1243`).
    async fn use_command(&mut self, parts: &[&str], out: &mut String) {
        let Some(db) = parts.get(1) else {
            self.db.clear();
            out_line(out, "Use default database");
            return;
        };
        match self.use_db(db).await {
            Ok(()) => out_line(out, &format!("Use database: {db}")),
            Err(msg) => out_line(out, &format!("Use database failed. error msg: {msg}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pid_groups() {
        let set = |pids: &[u32]| pids.iter().copied().collect::<BTreeSet<u32>>();
        assert_eq!(split_pid_group("3"), Ok(set(&[3])));
        assert_eq!(split_pid_group("1-3"), Ok(set(&[1, 2, 3])));
        assert_eq!(split_pid_group("3-1"), Ok(set(&[])));
        assert_eq!(split_pid_group("4,1,4"), Ok(set(&[1, 4])));
        assert_eq!(split_pid_group("1-2-3"), Err(String::new()));
        assert_eq!(split_pid_group("a"), Err(String::new()));
        assert_eq!(split_pid_group("1,x"), Err(String::new()));
        assert_eq!(split_pid_group("99999999999"), Err("Invalid args. pid should be uint32_t\n".to_string()));
    }

    #[test]
    fn pid_group_complaints() {
        let mut out = String::new();
        assert_eq!(pid_group_or_complain("x", &mut out), None);
        assert_eq!(out, "pid group[x] format error\n");
        out.clear();
        assert_eq!(pid_group_or_complain("5-1", &mut out), None);
        assert_eq!(out, "has not valid pid\n");
    }

    #[test]
    fn pid_group_request_fields() {
        let one = with_pid_group(json!({}), &[2].into_iter().collect());
        assert_eq!(one, json!({ "pid": 2 }));
        let many = with_pid_group(json!({}), &[3, 1].into_iter().collect());
        assert_eq!(many, json!({ "pid": 1, "pid_group": [1, 3] }));
    }
}
