//! SendData and CheckFile, the receiving end of a snapshot sent from tablet to tablet
//! (`TabletImpl::SendData`, `src/tablet/tablet_impl.cc:2770-2884`; `TabletImpl::CheckFile`,
//! `:3937-3981`; `src/tablet/file_receiver.cc`), spoken over baidu_std as `FileSender` speaks
//! it: each block's bytes in the request's attachment.

use std::time::Duration;

use mldb_upgrade::sim::baidu_std::codec::{ApiGeneralResponse, CheckFileRequest, SendDataRequest};
use mldb_upgrade::sim::baidu_std::Channel;
use prost::Message;
use serde_json::json;

use crate::support::SimCluster;

const SERVICE: &str = "openmldb.api.TabletServer";
const TIMEOUT: Duration = Duration::from_secs(5);

fn block(file_name: &str, block_id: u64, block_size: usize, eof: bool) -> Vec<u8> {
    SendDataRequest {
        tid: 52,
        pid: 0,
        file_name: file_name.to_string(),
        block_id,
        block_size: Some(block_size as u32),
        eof: eof.then_some(true),
        dir_name: None,
        storage_mode: Some(1),
    }
    .encode_to_vec()
}

/// The (code, msg) of a SendData or CheckFile answer.
async fn call(channel: &mut Channel, method: &str, request: &[u8], attachment: &[u8]) -> (i32, String) {
    let reply = channel.call(SERVICE, method, request, attachment, TIMEOUT).await.expect("baidu_std call");
    let response = ApiGeneralResponse::decode(reply.as_slice()).expect("GeneralResponse");
    (response.code.unwrap_or(0), response.msg.unwrap_or_default())
}

fn check(file: &str, size: u64) -> Vec<u8> {
    CheckFileRequest {
        tid: Some(52),
        pid: Some(0),
        file: Some(file.to_string()),
        size: Some(size),
        dir_name: None,
        storage_mode: Some(1),
    }
    .encode_to_vec()
}

/// Block 0 opens `<file>.tmp`; blocks must come in order (125) with exactly `block_size`
/// bytes of attachment (126); a repeated block is ok and not written twice; `eof` moves the
/// file into place (the MANIFEST under `snapshot/`) and an older one aside; CheckFile compares
/// sizes. Over HTTP+JSON there is no attachment, so a block's bytes cannot arrive in a JSON
/// member. A file whose last block is full never gets its `eof` (the sender marks only a short
/// block), stays `.tmp`, and CheckFile fails on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_data_takes_blocks_from_the_attachment_in_order_and_check_file_compares_sizes() {
    let mut cluster = SimCluster::new("/c4_send_data");
    let tablet = cluster.start_tablet(&[]).await;
    let dir = cluster.path().join(format!("db-{}", tablet.replace(':', "_"))).join("52_0");
    let mut channel = Channel::new(&tablet);

    assert_eq!(call(&mut channel, "SendData", &block("MANIFEST", 0, 0, false), &[]).await, (0, "ok".into()));
    assert!(dir.join("snapshot/MANIFEST.tmp").is_file());
    let out_of_order = call(&mut channel, "SendData", &block("MANIFEST", 2, 3, true), b"xyz").await;
    assert_eq!(out_of_order, (125, "block_id mismatch".into()));
    let short = call(&mut channel, "SendData", &block("MANIFEST", 1, 4, false), b"abc").await;
    assert_eq!(short, (126, "receive data error".into()));
    assert_eq!(call(&mut channel, "SendData", &block("MANIFEST", 1, 3, false), b"abc").await, (0, "ok".into()));
    // Sent again (a retried call): ok, and not appended twice.
    assert_eq!(call(&mut channel, "SendData", &block("MANIFEST", 1, 3, false), b"abc").await, (0, "ok".into()));
    assert_eq!(call(&mut channel, "SendData", &block("MANIFEST", 2, 2, true), b"de").await, (0, "ok".into()));
    assert_eq!(std::fs::read(dir.join("snapshot/MANIFEST")).expect("received"), b"abcde");
    assert!(!dir.join("snapshot/MANIFEST.tmp").exists());
    assert_eq!(call(&mut channel, "CheckFile", &check("MANIFEST", 5), &[]).await, (0, "ok".into()));
    assert_eq!(call(&mut channel, "CheckFile", &check("MANIFEST", 6), &[]).await, (-1, "check size failed".into()));
    // The receiver is gone after eof.
    let late = call(&mut channel, "SendData", &block("MANIFEST", 3, 1, true), b"f").await;
    assert_eq!(late, (124, "cannot find receiver".into()));

    // A second MANIFEST moves the first aside.
    assert_eq!(call(&mut channel, "SendData", &block("MANIFEST", 0, 0, false), &[]).await.0, 0);
    assert_eq!(call(&mut channel, "SendData", &block("MANIFEST", 1, 1, true), b"z").await.0, 0);
    let aside: Vec<_> = std::fs::read_dir(dir.join("snapshot"))
        .expect("snapshot dir")
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .filter(|name| name.starts_with("MANIFEST."))
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert_eq!(std::fs::read(dir.join("snapshot").join(&aside[0])).expect("aside"), b"abcde");
    assert_eq!(std::fs::read(dir.join("snapshot/MANIFEST")).expect("received"), b"z");

    // A last block that is full carries no eof: the file stays .tmp.
    assert_eq!(call(&mut channel, "SendData", &block("table_meta.json", 0, 0, false), &[]).await.0, 0);
    assert_eq!(call(&mut channel, "SendData", &block("table_meta.json", 1, 4, false), b"{}\n\n").await.0, 0);
    assert!(dir.join("table_meta.json.tmp").is_file());
    let unfinished = call(&mut channel, "CheckFile", &check("table_meta.json", 4), &[]).await;
    assert_eq!(unfinished, (-1, "get size failed".into()));

    // HTTP+JSON: a JSON member is not an attachment.
    let http = json!({ "tid": 52, "pid": 0, "file_name": "binlog.jsonl", "block_id": 0, "block_size": 0 });
    assert_eq!(cluster.tablet(&tablet, "SendData", http).await["code"], 0);
    let http = json!({ "tid": 52, "pid": 0, "file_name": "binlog.jsonl", "block_id": 1, "block_size": 5,
                       "eof": true, "data": "hello" });
    assert_eq!(cluster.tablet(&tablet, "SendData", http).await, json!({"code": 126, "msg": "receive data error"}));
    assert!(!dir.join("binlog.jsonl").exists());

    // Block 0 for a partition this tablet has loaded: 101.
    let meta = json!({ "tid": 52, "pid": 0, "name": "t52", "db": "db", "mode": "kTableFollower",
                       "column_key": [{ "index_name": "k", "col_name": ["k"] }] });
    assert_eq!(cluster.tablet(&tablet, "CreateTable", json!({ "table_meta": meta })).await["code"], 0);
    let loaded = call(&mut channel, "SendData", &block("MANIFEST", 0, 0, false), &[]).await;
    assert_eq!(loaded, (101, "table already exists".into()));
}
