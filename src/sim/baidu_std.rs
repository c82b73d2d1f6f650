//! brpc's `baidu_std` protocol, which OpenMLDB's SDK and servers speak to each other, served
//! on the same port as HTTP+JSON as a real server does (brpc tries the protocols a connection
//! could speak by its first bytes; `PRPC` is baidu_std, `docs/en/new_protocol.md`).
//!
//! A frame (`src/brpc/policy/baidu_rpc_protocol.cpp`) is `"PRPC"`, the body size and the meta
//! size (both u32, big-endian), then a `brpc.policy.RpcMeta` (`baidu_rpc_meta.proto`), the
//! message, and `attachment_size` bytes of attachment. Requests on one connection may overlap;
//! each reply carries its request's `correlation_id`. The credential
//! (`authentication_data`) comes with a connection's first request only and is checked as
//! the HTTP front checks its `Authorization` header; a failed check closes the connection.
//!
//! Each request message is decoded into the JSON object json2pb would have made of it and
//! handed to the same [`RpcService`] the HTTP front calls; the JSON reply is encoded back as
//! the method's response message. Only the methods [`codec`] knows are served this way; any
//! other gets brpc's `ENOMETHOD` (1002).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use prost::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Mutex;

use super::http::{HttpConfig, RpcError, RpcService};

/// The first bytes of every baidu_std frame.
pub const MAGIC: &[u8; 4] = b"PRPC";

/// brpc's error codes (`src/brpc/errno.proto`).
const ENOSERVICE: i32 = 1001;
const ENOMETHOD: i32 = 1002;
const EREQUEST: i32 = 1003;

#[derive(Clone, PartialEq, Message)]
struct RpcMeta {
    #[prost(message, optional, tag = "1")]
    request: Option<RpcRequestMeta>,
    #[prost(message, optional, tag = "2")]
    response: Option<RpcResponseMeta>,
    #[prost(int32, optional, tag = "3")]
    compress_type: Option<i32>,
    #[prost(int64, optional, tag = "4")]
    correlation_id: Option<i64>,
    #[prost(int32, optional, tag = "5")]
    attachment_size: Option<i32>,
    #[prost(bytes = "vec", optional, tag = "7")]
    authentication_data: Option<Vec<u8>>,
}

#[derive(Clone, PartialEq, Message)]
struct RpcRequestMeta {
    #[prost(string, required, tag = "1")]
    service_name: String,
    #[prost(string, required, tag = "2")]
    method_name: String,
    #[prost(int64, optional, tag = "3")]
    log_id: Option<i64>,
}

#[derive(Clone, PartialEq, Message)]
struct RpcResponseMeta {
    #[prost(int32, optional, tag = "1")]
    error_code: Option<i32>,
    #[prost(string, optional, tag = "2")]
    error_text: Option<String>,
}

/// The request and response messages of the methods served over baidu_std, with the field
/// numbers of OpenMLDB 0.9.2's `src/proto/name_server.proto` and `src/proto/tablet.proto`.
pub mod codec {
    use prost::Message;
    use serde_json::{json, Value};

    /// `ShowFunctionRequest`.
    #[derive(Clone, PartialEq, Message)]
    struct ShowFunctionRequest {
        #[prost(string, optional, tag = "1")]
        name: Option<String>,
    }

    /// `UseDatabaseRequest`.
    #[derive(Clone, PartialEq, Message)]
    struct UseDatabaseRequest {
        #[prost(string, optional, tag = "1")]
        db: Option<String>,
    }

    /// `GeneralRequest`: no fields.
    #[derive(Clone, PartialEq, Message)]
    struct GeneralRequest {}

    /// `nameserver.GeneralResponse`: `code` is `required`, so it is written when 0.
    #[derive(Clone, PartialEq, Message)]
    struct GeneralResponse {
        #[prost(int32, required, tag = "1")]
        code: i32,
        #[prost(string, optional, tag = "2")]
        msg: Option<String>,
    }

    /// `ShowFunctionResponse` (`fun`, the registered UDFs, is never filled: the simulator has
    /// none).
    #[derive(Clone, PartialEq, Message)]
    struct ShowFunctionResponse {
        #[prost(int32, optional, tag = "1")]
        code: Option<i32>,
        #[prost(string, optional, tag = "2")]
        msg: Option<String>,
    }

    /// `ShowDatabaseResponse`.
    #[derive(Clone, PartialEq, Message)]
    struct ShowDatabaseResponse {
        #[prost(int32, optional, tag = "1")]
        code: Option<i32>,
        #[prost(string, optional, tag = "2")]
        msg: Option<String>,
        #[prost(string, repeated, tag = "3")]
        db: Vec<String>,
    }

    /// `api.Dimension`.
    #[derive(Clone, PartialEq, Message)]
    struct Dimension {
        #[prost(string, optional, tag = "1")]
        key: Option<String>,
        #[prost(uint32, optional, tag = "2")]
        idx: Option<u32>,
    }

    /// `api.PutRequest` (tablet.proto; `put_if_absent`, `check_exists` and `memory_limit`
    /// are read but not acted on: see the simulator's module docs).
    #[derive(Clone, PartialEq, Message)]
    struct PutRequest {
        #[prost(string, optional, tag = "1")]
        pk: Option<String>,
        #[prost(int64, optional, tag = "2")]
        time: Option<i64>,
        #[prost(bytes = "vec", optional, tag = "3")]
        value: Option<Vec<u8>>,
        #[prost(uint32, optional, tag = "4")]
        tid: Option<u32>,
        #[prost(uint32, optional, tag = "5")]
        pid: Option<u32>,
        #[prost(message, repeated, tag = "6")]
        dimensions: Vec<Dimension>,
        #[prost(uint32, optional, tag = "9")]
        memory_limit: Option<u32>,
        #[prost(bool, optional, tag = "10")]
        put_if_absent: Option<bool>,
        #[prost(bool, optional, tag = "11")]
        check_exists: Option<bool>,
    }

    /// `api.PutResponse`.
    #[derive(Clone, PartialEq, Message)]
    struct PutResponse {
        #[prost(int32, optional, tag = "1")]
        code: Option<i32>,
        #[prost(string, optional, tag = "2")]
        msg: Option<String>,
    }

    fn code(reply: &Value) -> i32 {
        reply["code"].as_i64().and_then(|c| i32::try_from(c).ok()).unwrap_or_default()
    }

    fn msg(reply: &Value) -> Option<String> {
        reply["msg"].as_str().map(str::to_string)
    }

    /// The JSON object of a request of `service`'s `method`; `None` for a method not served
    /// over baidu_std, `Some(Err)` for bytes that are not its request message.
    pub fn request(service: &str, method: &str, bytes: &[u8]) -> Option<Result<Value, prost::DecodeError>> {
        let decoded = match (service, method) {
            ("openmldb.nameserver.NameServer", "ShowFunction") => {
                ShowFunctionRequest::decode(bytes).map(|r| json!({ "name": r.name }))
            }
            ("openmldb.nameserver.NameServer", "ShowDatabase") => GeneralRequest::decode(bytes).map(|_| json!({})),
            ("openmldb.nameserver.NameServer", "UseDatabase") => {
                UseDatabaseRequest::decode(bytes).map(|r| json!({ "db": r.db }))
            }
            ("openmldb.api.TabletServer", "Put") => PutRequest::decode(bytes).map(|r| {
                use base64::Engine;
                // json2pb's form of a bytes field is base64 (Json2PbOptions::base64_to_bytes).
                let value = r.value.map(|v| base64::engine::general_purpose::STANDARD.encode(v));
                let dimensions: Vec<Value> =
                    r.dimensions.into_iter().map(|d| json!({ "key": d.key, "idx": d.idx.unwrap_or(0) })).collect();
                json!({ "pk": r.pk, "time": r.time, "value": value, "tid": r.tid, "pid": r.pid,
                        "dimensions": dimensions, "put_if_absent": r.put_if_absent, "check_exists": r.check_exists,
                        "memory_limit": r.memory_limit })
            }),
            _ => return None,
        };
        Some(decoded.map(|mut value| {
            // json2pb leaves an unset field out.
            if let Some(object) = value.as_object_mut() {
                object.retain(|_, v| !v.is_null());
            }
            value
        }))
    }

    /// The response message of `method` for the JSON `reply`.
    pub fn response(method: &str, reply: &Value) -> Vec<u8> {
        match method {
            "ShowFunction" => ShowFunctionResponse { code: Some(code(reply)), msg: msg(reply) }.encode_to_vec(),
            "ShowDatabase" => ShowDatabaseResponse {
                code: Some(code(reply)),
                msg: msg(reply),
                db: reply["db"]
                    .as_array()
                    .map(|dbs| dbs.iter().filter_map(Value::as_str).map(str::to_string).collect())
                    .unwrap_or_default(),
            }
            .encode_to_vec(),
            "Put" => PutResponse { code: Some(code(reply)), msg: msg(reply) }.encode_to_vec(),
            _ => GeneralResponse { code: code(reply), msg: msg(reply) }.encode_to_vec(),
        }
    }
}

/// One frame: its meta, message and attachment.
struct Frame {
    meta: RpcMeta,
    message: Vec<u8>,
}

/// Reads a frame; `None` at the end of the connection or on bytes that are not one.
async fn read_frame(reader: &mut tokio::net::tcp::OwnedReadHalf) -> Option<Frame> {
    let mut header = [0u8; 12];
    reader.read_exact(&mut header).await.ok()?;
    if &header[..4] != MAGIC {
        return None;
    }
    let body_size = u32::from_be_bytes(header[4..8].try_into().ok()?) as usize;
    let meta_size = u32::from_be_bytes(header[8..12].try_into().ok()?) as usize;
    // brpc's default max_body_size.
    if meta_size > body_size || body_size > 64 << 20 {
        return None;
    }
    let mut body = vec![0u8; body_size];
    reader.read_exact(&mut body).await.ok()?;
    let meta = RpcMeta::decode(&body[..meta_size]).ok()?;
    let attachment = meta.attachment_size.unwrap_or(0).max(0) as usize;
    let payload = &body[meta_size..];
    let message = payload.get(..payload.len().checked_sub(attachment)?)?.to_vec();
    Some(Frame { meta, message })
}

/// A response frame for `correlation_id`: `error_code` 0 with `message`, or an error without
/// a message.
fn response_frame(correlation_id: i64, error: Option<(i32, String)>, message: &[u8]) -> Vec<u8> {
    let failed = error.is_some();
    let (error_code, error_text) = match error {
        Some((code, text)) => (Some(code), Some(text)),
        None => (Some(0), None),
    };
    let meta = RpcMeta {
        response: Some(RpcResponseMeta { error_code, error_text }),
        compress_type: Some(0),
        correlation_id: Some(correlation_id),
        ..RpcMeta::default()
    }
    .encode_to_vec();
    let message = if failed { &[][..] } else { message };
    let mut frame = Vec::with_capacity(12 + meta.len() + message.len());
    frame.extend_from_slice(MAGIC);
    frame.extend_from_slice(&((meta.len() + message.len()) as u32).to_be_bytes());
    frame.extend_from_slice(&(meta.len() as u32).to_be_bytes());
    frame.extend_from_slice(&meta);
    frame.extend_from_slice(message);
    frame
}

/// Serves baidu_std requests on `stream` until it closes.
pub async fn serve_connection(stream: TcpStream, service: Arc<dyn RpcService>, config: Arc<HttpConfig>) {
    let (mut reader, writer) = stream.into_split();
    let writer = Arc::new(Mutex::new(writer));
    let verified = AtomicBool::new(false);
    let mut calls = tokio::task::JoinSet::new();
    while let Some(frame) = read_frame(&mut reader).await {
        if !verified.load(Ordering::SeqCst) {
            let credential = frame.meta.authentication_data.as_deref().map(String::from_utf8_lossy);
            match credential {
                Some(credential) if config.authenticator.verify(&credential) => verified.store(true, Ordering::SeqCst),
                _ => break,
            }
        }
        let correlation_id = frame.meta.correlation_id.unwrap_or_default();
        let Some(request) = frame.meta.request else { break };
        let service = service.clone();
        let writer = writer.clone();
        calls.spawn(async move {
            let reply = call(&service, &request, &frame.message).await;
            let bytes = match reply {
                Ok(message) => response_frame(correlation_id, None, &message),
                Err(error) => response_frame(correlation_id, Some(error), &[]),
            };
            let _ = writer.lock().await.write_all(&bytes).await;
        });
        while calls.try_join_next().is_some() {}
    }
    calls.abort_all();
}

/// Runs one request; the response message, or brpc's error code and text.
async fn call(
    service: &Arc<dyn RpcService>,
    request: &RpcRequestMeta,
    message: &[u8],
) -> Result<Vec<u8>, (i32, String)> {
    let (name, method) = (request.service_name.as_str(), request.method_name.as_str());
    if name != service.full_name() {
        return Err((ENOSERVICE, format!("Fail to find service={name}")));
    }
    let no_method = || (ENOMETHOD, format!("Fail to find method={method}"));
    let body = match codec::request(name, method, message) {
        None => return Err(no_method()),
        Some(Err(e)) => return Err((EREQUEST, format!("Fail to parse request message, {e}"))),
        Some(Ok(body)) => body,
    };
    match service.clone().call(method.to_string(), body).await {
        Ok(reply) => Ok(codec::response(method, &reply)),
        Err(RpcError::NoMethod(_)) => Err(no_method()),
        Err(RpcError::MissingField(missing)) => Err((EREQUEST, missing.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_response_frame_is_header_meta_message() {
        let frame = response_frame(8_589_934_594, None, &codec::response("UseDatabase", &json!({"code": 0})));
        assert_eq!(&frame[..4], MAGIC);
        let body = u32::from_be_bytes(frame[4..8].try_into().unwrap()) as usize;
        let meta_size = u32::from_be_bytes(frame[8..12].try_into().unwrap()) as usize;
        assert_eq!(frame.len(), 12 + body);
        let meta = RpcMeta::decode(&frame[12..12 + meta_size]).unwrap();
        assert_eq!(meta.correlation_id, Some(8_589_934_594));
        assert_eq!(meta.response.unwrap().error_code, Some(0));
        // GeneralResponse.code is required: `08 00` even for 0.
        assert_eq!(&frame[12 + meta_size..], &[0x08, 0x00]);
    }

    #[test]
    fn requests_decode_into_what_json2pb_would_make_of_them() {
        // UseDatabaseRequest{db: "demo"}: field 1, length 4.
        let use_db = [0x0a, 0x04, b'd', b'e', b'm', b'o'];
        let value = codec::request("openmldb.nameserver.NameServer", "UseDatabase", &use_db).unwrap().unwrap();
        assert_eq!(value, json!({"db": "demo"}));
        let empty = codec::request("openmldb.nameserver.NameServer", "ShowFunction", &[]).unwrap().unwrap();
        assert_eq!(empty, json!({}));
        // PutRequest{value: [1, 2], tid: 1, pid: 0, dimensions: [{key: "k", idx: 0}]}, as the SDK
        // sends it (idx written even when 0).
        let put = [0x1a, 0x02, 0x01, 0x02, 0x20, 0x01, 0x28, 0x00, 0x32, 0x05, 0x0a, 0x01, b'k', 0x10, 0x00];
        let value = codec::request("openmldb.api.TabletServer", "Put", &put).unwrap().unwrap();
        assert_eq!(value, json!({"tid": 1, "pid": 0, "value": "AQI=", "dimensions": [{"key": "k", "idx": 0}]}));
        assert!(codec::request("openmldb.api.TabletServer", "Query", &[]).is_none());
    }
}
