//! The data RPCs: Put, Get, Scan (C§2.4, codes C§2.5).

use serde_json::{json, Value};

use super::storage::append_log;
use super::{Replica, Tablet, TabletState};
use crate::sim::proto::{general, ok, Body, TableMode, TableState};

impl Tablet {
    /// `CheckTable` in front of the data RPCs, ChangeRole and AppendEntries (`TB` CheckTable,
    /// `src/tablet/tablet_impl.cc:1379-1394`, codes C§2.5): 100 when the partition is not
    /// loaded here, 103 for a follower when only a leader may answer (Put), 104 while the
    /// table loads. kMakingSnapshot and kSnapshotPaused pass.
    pub(super) fn check_table(
        state: &mut TabletState,
        tid: u32,
        pid: u32,
        leader_only: bool,
    ) -> Result<&mut Replica, Value> {
        let Some(replica) = state.replicas.get_mut(&(tid, pid)) else {
            return Err(general(100, "table does not exist"));
        };
        if leader_only && replica.mode() == TableMode::kTableFollower {
            return Err(general(103, "table is follower"));
        }
        if matches!(replica.state, TableState::kTableLoading | TableState::kTableUndefined) {
            return Err(general(104, "table is loading"));
        }
        Ok(replica)
    }

    /// Put (`tablet.proto` PutRequest, `TabletImpl::Put`, `src/tablet/tablet_impl.cc:714-871`):
    /// only a replica in leader mode takes writes, in any state but loading (a snapshot does
    /// not hold writes up). It does not ask anyone whether it is still the partition's leader:
    /// a leader replaced by a live ChangeLeader keeps accepting writes that are then lost
    /// (C§3.5, C§6 item 6). The entry is in the leader's log when the reply goes out; followers
    /// get it asynchronously, their nodes woken at once with `--binlog_notify_on_put`.
    pub(super) fn put(&self, body: &Body<'_>) -> Value {
        let (tid, pid) = Self::tid_pid(body);
        let key = body
            .raw("dimensions")
            .and_then(Value::as_array)
            .and_then(|dims| dims.first())
            .and_then(|d| d.get("key"))
            .and_then(Value::as_str)
            .map(str::to_string)
            .or_else(|| body.str("pk"));
        let ts = body.u64("time").filter(|t| *t > 0).unwrap_or_else(super::now_ms);
        let value = body.str("value");
        let mut state = self.lock();
        let replica = match Self::check_table(&mut state, tid, pid, true) {
            Ok(replica) => replica,
            Err(error) => return error,
        };
        let Some(key) = key.filter(|k| !k.is_empty()) else {
            return general(115, "invalid dimension parameter");
        };
        let term = replica.term;
        let entry = replica.log.write(term, key, value, ts);
        if append_log(&replica.dir, &[entry]).is_err() {
            return general(127, "write data failed");
        }
        if self.flags.binlog_notify_on_put {
            replica.notify_nodes();
        }
        replica.appended.notify_waiters();
        ok()
    }

    /// Get (`tablet.proto` GetRequest): any loaded replica answers, a follower from its own
    /// (possibly lagging) data, like `TB` Get, which does not check the leader.
    pub(super) fn get(&self, body: &Body<'_>) -> Value {
        let (tid, pid) = Self::tid_pid(body);
        let key = body.str("key").unwrap_or_default();
        let ts = body.u64("ts").unwrap_or(0);
        let mut state = self.lock();
        let replica = match Self::check_table(&mut state, tid, pid, false) {
            Ok(replica) => replica,
            Err(error) => return error,
        };
        match replica.log.get(&key, ts) {
            Some(entry) => json!({ "code": 0, "msg": "ok", "key": key, "ts": entry.ts.unwrap_or(0),
                                   "value": entry.value.clone().unwrap_or_default() }),
            None => general(109, "key not found"),
        }
    }

    /// Scan (`tablet.proto` ScanRequest): rows of `pk` with `et < ts <= st`, newest first.
    pub(super) fn scan(&self, body: &Body<'_>) -> Value {
        let (tid, pid) = Self::tid_pid(body);
        let st = body.u64("st").unwrap_or(0);
        let et = body.u64("et").unwrap_or(0);
        if st < et {
            return general(117, "starttime less than endtime");
        }
        let key = body.str("pk").unwrap_or_default();
        let limit = body.u32("limit").unwrap_or(0) as usize;
        let mut state = self.lock();
        let replica = match Self::check_table(&mut state, tid, pid, false) {
            Ok(replica) => replica,
            Err(error) => return error,
        };
        let pairs: Vec<Value> = replica
            .log
            .scan(&key, st, et, limit)
            .into_iter()
            .map(|e| json!({ "ts": e.ts.unwrap_or(0), "value": e.value.clone().unwrap_or_default() }))
            .collect();
        let mut reply = json!({ "code": 0, "msg": "ok", "count": pairs.len(), "is_finish": true });
        if !pairs.is_empty() {
            reply["pairs"] = Value::Array(pairs);
        }
        reply
    }
}
