//! Files from one tablet to another, as `SendSnapshot` ships a replica: the sender's
//! `FileSender` (`src/tablet/file_sender.cc`) and the receiver's `SendData` and `CheckFile`
//! with its `FileReceiver`s (`src/tablet/tablet_impl.cc:2770-2884`, `:3937-3981`,
//! `src/tablet/file_receiver.cc`), over baidu_std with each block's bytes in the request's
//! attachment.
//!
//! Sending one file (`FileSender::SendFile`): block 0 with no bytes opens the receiver, then
//! blocks 1, 2, … of `--stream_block_size` bytes (1 232 896), the last one shorter and
//! marked `eof`; then `CheckFile` compares the size the receiver wrote. After each attempt the
//! sender waits `--stream_close_wait_time_ms` (1000); a failed attempt is retried up to
//! `--send_file_max_try` (3) times in all, the n-th retry after n × `--retry_send_file_wait_time_ms`
//! (3000). A block larger than half the block size takes at least the time
//! `--stream_bandwidth_limit` (10 × 1204 × 1024 bytes/s) allows for a whole block.
//!
//! Receiving: block 0 refuses a partition this tablet has loaded (101) and (re)opens
//! `<file>.tmp`; a block repeated is answered ok and not written again, one out of order is
//! 125, one whose attachment is not `block_size` bytes is 126; `eof` moves the file into place,
//! an existing one aside to `<file>.<YYYYmmddHHMMSS>`. Real senders never mark an empty file's
//! end, nor that of a file whose size is a multiple of the block size: such a file stays
//! `.tmp` and `CheckFile` fails on it. The simulator keeps that.
//!
//! Simplification: the sender reads the file's bytes when the send starts (under the tablet's
//! lock), where the real one reads an immutable snapshot file; the simulator's stand-in for
//! that file, the log, keeps growing while it is sent.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use prost::Message;
use serde_json::Value;

use super::snapshot::SNAPSHOT_DIR;
use super::storage::{now_time, request_mode, BINLOG_FILE, META_FILE};
use super::Tablet;
use crate::sim::baidu_std::codec::{ApiGeneralResponse, CheckFileRequest, SendDataRequest};
use crate::sim::baidu_std::Channel;
use crate::sim::flags::SimFlags;
use crate::sim::glog::{glog, Severity};
use crate::sim::proto::{general, ok, Body, StorageMode};

const TABLET_SERVICE: &str = "openmldb.api.TabletServer";

/// One file being received (`FileReceiver`): written to `<dir>/<name>.tmp` block by block.
#[derive(Debug)]
pub(super) struct FileReceiver {
    dir: PathBuf,
    file_name: String,
    file: Option<std::fs::File>,
    block_id: u64,
}

impl FileReceiver {
    fn new(dir: PathBuf, file_name: String) -> FileReceiver {
        FileReceiver { dir, file_name, file: None, block_id: 0 }
    }

    fn tmp_path(&self) -> PathBuf {
        self.dir.join(format!("{}.tmp", self.file_name))
    }

    /// `FileReceiver::Init`: the directory made, `.tmp` truncated, back at block 0.
    fn init(&mut self) -> bool {
        self.file = std::fs::create_dir_all(&self.dir).and_then(|_| std::fs::File::create(self.tmp_path())).ok();
        self.block_id = 0;
        self.file.is_some()
    }

    fn write(&mut self, data: &[u8], block_id: u64) -> bool {
        if block_id <= self.block_id {
            return true;
        }
        let Some(file) = self.file.as_mut() else { return false };
        if file.write_all(data).is_err() {
            return false;
        }
        self.block_id = block_id;
        true
    }

    /// `FileReceiver::SaveFile`.
    fn save(&mut self) {
        self.file = None;
        let target = self.dir.join(&self.file_name);
        if target.exists() {
            let _ = std::fs::rename(&target, self.dir.join(format!("{}.{}", self.file_name, now_time())));
        }
        let _ = std::fs::rename(self.tmp_path(), &target);
    }
}

/// Where a received file goes under the replica's directory: the simulator's meta and log
/// beside it, like the real `table_meta.txt`; with a `dir_name`, `snapshot/<dir_name>/`
/// (`index/` as is); everything else, the MANIFEST included, under `snapshot/`.
fn receive_dir(replica_dir: &Path, file_name: &str, dir_name: &str) -> PathBuf {
    if !dir_name.is_empty() {
        let base = if dir_name == "index" { replica_dir.to_path_buf() } else { replica_dir.join(SNAPSHOT_DIR) };
        return base.join(dir_name);
    }
    if file_name == META_FILE || file_name == BINLOG_FILE {
        replica_dir.to_path_buf()
    } else {
        replica_dir.join(SNAPSHOT_DIR)
    }
}

impl Tablet {
    /// SendData: one block of a file for a partition that is not loaded here, under the root
    /// of the request's storage mode (138 without one).
    pub(super) fn send_data(&self, body: &Body<'_>, attachment: &[u8]) -> Value {
        let (tid, pid) = Self::tid_pid(body);
        let Some(replica_dir) = self.roots.dir(tid, pid, request_mode(body)) else {
            return general(138, "fail to get db root path");
        };
        let file_name = body.str("file_name").unwrap_or_default();
        let dir_name = body.str("dir_name").unwrap_or_default();
        let block_id = body.u64("block_id").unwrap_or(0);
        let key = format!("{tid}_{pid}_{file_name}");
        let mut state = self.lock();
        if block_id == 0 {
            if state.replicas.contains_key(&(tid, pid)) && dir_name != "index" {
                return general(101, "table already exists");
            }
            let receiver = state
                .receivers
                .entry(key.clone())
                .or_insert_with(|| FileReceiver::new(receive_dir(&replica_dir, &file_name, &dir_name), file_name));
            if !receiver.init() {
                state.receivers.remove(&key);
                return general(123, "file receiver init failed");
            }
            // Block 0 carries no bytes: the receiver's block id is 0 again, so it is done here.
            return ok();
        }
        let Some(receiver) = state.receivers.get_mut(&key) else {
            return general(124, "cannot find receiver");
        };
        if receiver.block_id == block_id {
            return ok();
        }
        if block_id != receiver.block_id + 1 {
            return general(125, "block_id mismatch");
        }
        if attachment.len() as u64 != body.u64("block_size").unwrap_or(0) {
            return general(126, "receive data error");
        }
        if !receiver.write(attachment, block_id) {
            return general(127, "write data failed");
        }
        if body.bool("eof").unwrap_or(false) {
            receiver.save();
            state.receivers.remove(&key);
        }
        ok()
    }

    /// CheckFile: whether the file a sender finished has the size it sent (-1 otherwise, or
    /// when it is not there), under the root of the request's storage mode (138 without one).
    pub(super) fn check_file(&self, body: &Body<'_>) -> Value {
        let (tid, pid) = Self::tid_pid(body);
        let Some(replica_dir) = self.roots.dir(tid, pid, request_mode(body)) else {
            return general(138, "fail to get db root path");
        };
        let file_name = body.str("file").unwrap_or_default();
        let dir_name = body.str("dir_name").unwrap_or_default();
        let path = receive_dir(&replica_dir, &file_name, &dir_name).join(&file_name);
        match std::fs::metadata(&path) {
            Err(_) => general(-1, "get size failed"),
            Ok(meta) if Some(meta.len()) != body.u64("size") => general(-1, "check size failed"),
            Ok(_) => ok(),
        }
    }
}

/// The timing flags of a [`FileSender`].
#[derive(Debug, Clone)]
pub(super) struct SendTiming {
    block_size: usize,
    /// The least time a full block may take (`limit_time_`), zero without a bandwidth limit.
    block_min_time: Duration,
    close_wait: Duration,
    max_try: u32,
    retry_wait: Duration,
    request_timeout: Duration,
}

impl SendTiming {
    pub(super) fn from_flags(flags: &SimFlags) -> SendTiming {
        let block_size = flags.stream_block_size.max(1);
        let block_min_time = match flags.stream_bandwidth_limit {
            0 => Duration::ZERO,
            limit => Duration::from_micros(block_size as u64 * 1_000_000 / limit),
        };
        SendTiming {
            block_size,
            block_min_time,
            close_wait: flags.stream_close_wait_time,
            max_try: flags.send_file_max_try,
            retry_wait: flags.retry_send_file_wait_time,
            request_timeout: flags.request_timeout,
        }
    }
}

/// `FileSender`: sends files of one partition to one tablet over one channel.
pub(super) struct FileSender {
    tid: u32,
    pid: u32,
    storage_mode: StorageMode,
    channel: Channel,
    timing: SendTiming,
}

impl FileSender {
    pub(super) fn new(tid: u32, pid: u32, storage_mode: StorageMode, endpoint: &str, timing: SendTiming) -> Self {
        FileSender { tid, pid, storage_mode, channel: Channel::new(endpoint), timing }
    }

    /// `SendFile`: `data` as `file_name`, checked, with the retries; the last failure's words.
    pub(super) async fn send_file(&mut self, file_name: &str, data: &[u8]) -> Result<(), String> {
        glog!(
            Severity::Info,
            "send file {file_name} to {}. size[{}] tid[{}] pid[{}]",
            self.channel.endpoint(),
            data.len(),
            self.tid,
            self.pid
        );
        let mut failure = String::new();
        for attempt in 0..self.timing.max_try.max(1) {
            if attempt > 0 {
                tokio::time::sleep(self.timing.retry_wait * attempt).await;
            }
            let sent = self.send_blocks(file_name, data).await;
            tokio::time::sleep(self.timing.close_wait).await;
            match sent {
                Ok(()) => match self.check(file_name, data.len() as u64).await {
                    Ok(()) => return Ok(()),
                    Err(e) => failure = e,
                },
                Err(e) => failure = e,
            }
            glog!(Severity::Warning, "send file {file_name} failed. tid[{}] pid[{}]: {failure}", self.tid, self.pid);
        }
        Err(failure)
    }

    /// `SendFileInternal`: block 0, then the data in blocks, the last short one with `eof`.
    async fn send_blocks(&mut self, file_name: &str, data: &[u8]) -> Result<(), String> {
        self.write_block(file_name, 0, &[]).await?;
        for (index, block) in data.chunks(self.timing.block_size).enumerate() {
            let started = Instant::now();
            self.write_block(file_name, index as u64 + 1, block).await?;
            if block.len() > self.timing.block_size / 2 {
                let least = self.timing.block_min_time;
                if let Some(rest) = least.checked_sub(started.elapsed()) {
                    tokio::time::sleep(rest).await;
                }
            }
        }
        Ok(())
    }

    /// `WriteData`: one SendData call; the bytes go in the attachment.
    async fn write_block(&mut self, file_name: &str, block_id: u64, block: &[u8]) -> Result<(), String> {
        let request = SendDataRequest {
            tid: self.tid,
            pid: self.pid,
            file_name: file_name.to_string(),
            block_id,
            block_size: Some(block.len() as u32),
            eof: (!block.is_empty() && block.len() < self.timing.block_size).then_some(true),
            dir_name: None,
            storage_mode: Some(self.storage_mode as i32),
        };
        self.general_call("SendData", &request.encode_to_vec(), block).await
    }

    async fn check(&mut self, file_name: &str, size: u64) -> Result<(), String> {
        let request = CheckFileRequest {
            tid: Some(self.tid),
            pid: Some(self.pid),
            file: Some(file_name.to_string()),
            size: Some(size),
            dir_name: None,
            storage_mode: Some(self.storage_mode as i32),
        };
        self.general_call("CheckFile", &request.encode_to_vec(), &[]).await
    }

    async fn general_call(&mut self, method: &str, request: &[u8], attachment: &[u8]) -> Result<(), String> {
        let timeout = self.timing.request_timeout;
        let reply = self.channel.call(TABLET_SERVICE, method, request, attachment, timeout).await;
        let reply = reply.map_err(|e| e.to_string())?;
        let response = ApiGeneralResponse::decode(reply.as_slice()).map_err(|e| format!("{method}: {e}"))?;
        match response.code.unwrap_or(0) {
            0 => Ok(()),
            code => Err(format!("{method}: [{code}] {}", response.msg.unwrap_or_default())),
        }
    }
}
