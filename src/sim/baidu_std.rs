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
//! handed, with the request's attachment, to the same [`RpcService`] the HTTP front calls;
//! the JSON reply is encoded back as the method's response message. Only the methods [`codec`]
//! knows are served this way; any other gets brpc's `ENOMETHOD` (1002).
//!
//! [`Channel`] is the client side, as a tablet's `FileSender` uses it: one connection, one
//! request at a time, the attachment after the message.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use prost::Message;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
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

    /// `api.SendDataRequest`: one block of a file a tablet sends another; the block's bytes
    /// are the request's attachment (`src/tablet/file_sender.cc` `FileSender::WriteData`).
    #[derive(Clone, PartialEq, Message)]
    pub struct SendDataRequest {
        #[prost(uint32, required, tag = "1")]
        pub tid: u32,
        #[prost(uint32, required, tag = "2")]
        pub pid: u32,
        #[prost(string, required, tag = "3")]
        pub file_name: String,
        #[prost(uint64, required, tag = "4")]
        pub block_id: u64,
        #[prost(uint32, optional, tag = "5")]
        pub block_size: Option<u32>,
        #[prost(bool, optional, tag = "6")]
        pub eof: Option<bool>,
        #[prost(string, optional, tag = "7")]
        pub dir_name: Option<String>,
        #[prost(int32, optional, tag = "8")]
        pub storage_mode: Option<i32>,
    }

    /// `api.CheckFileRequest`: the size a sent file must have on the receiver.
    #[derive(Clone, PartialEq, Message)]
    pub struct CheckFileRequest {
        #[prost(uint32, optional, tag = "1")]
        pub tid: Option<u32>,
        #[prost(uint32, optional, tag = "2")]
        pub pid: Option<u32>,
        #[prost(string, optional, tag = "3")]
        pub file: Option<String>,
        #[prost(uint64, optional, tag = "4")]
        pub size: Option<u64>,
        #[prost(string, optional, tag = "5")]
        pub dir_name: Option<String>,
        #[prost(int32, optional, tag = "6")]
        pub storage_mode: Option<i32>,
    }

    /// `api.GeneralResponse` as a client reads it.
    #[derive(Clone, PartialEq, Message)]
    pub struct ApiGeneralResponse {
        #[prost(int32, optional, tag = "1")]
        pub code: Option<i32>,
        #[prost(string, optional, tag = "2")]
        pub msg: Option<String>,
    }

    /// `api.QueryRequest` (batch mode; a parameter row would come in the attachment, and
    /// the simulator's queries take none).
    #[derive(Clone, PartialEq, Message)]
    struct QueryRequest {
        #[prost(string, optional, tag = "1")]
        sql: Option<String>,
        #[prost(string, optional, tag = "2")]
        db: Option<String>,
        #[prost(bool, optional, tag = "3")]
        is_batch: Option<bool>,
        #[prost(bool, optional, tag = "4")]
        is_debug: Option<bool>,
        #[prost(uint32, optional, tag = "10")]
        parameter_row_size: Option<u32>,
    }

    /// `api.QueryResponse`; the rows are the response's attachment.
    #[derive(Clone, PartialEq, Message)]
    pub struct QueryResponse {
        #[prost(int32, optional, tag = "1")]
        pub code: Option<i32>,
        #[prost(string, optional, tag = "2")]
        pub msg: Option<String>,
        #[prost(uint32, optional, tag = "3")]
        pub count: Option<u32>,
        #[prost(uint32, optional, tag = "4")]
        pub byte_size: Option<u32>,
        #[prost(bytes = "vec", optional, tag = "5")]
        pub schema: Option<Vec<u8>>,
        #[prost(uint32, optional, tag = "6")]
        pub row_slices: Option<u32>,
    }

    /// `nameserver.DropTableRequest`.
    #[derive(Clone, PartialEq, Message)]
    struct DropTableRequest {
        #[prost(string, required, tag = "1")]
        name: String,
        #[prost(string, optional, tag = "4")]
        db: Option<String>,
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
            ("openmldb.nameserver.NameServer", "DropTable") => {
                DropTableRequest::decode(bytes).map(|r| json!({ "name": r.name, "db": r.db }))
            }
            ("openmldb.api.TabletServer", "Query") => QueryRequest::decode(bytes).map(|r| {
                json!({ "sql": r.sql, "db": r.db, "is_batch": r.is_batch, "is_debug": r.is_debug,
                        "parameter_row_size": r.parameter_row_size })
            }),
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
            ("openmldb.api.TabletServer", "SendData") => SendDataRequest::decode(bytes).map(|r| {
                json!({ "tid": r.tid, "pid": r.pid, "file_name": r.file_name, "block_id": r.block_id,
                        "block_size": r.block_size, "eof": r.eof, "dir_name": r.dir_name,
                        "storage_mode": r.storage_mode })
            }),
            ("openmldb.api.TabletServer", "CheckFile") => CheckFileRequest::decode(bytes).map(|r| {
                json!({ "tid": r.tid, "pid": r.pid, "file": r.file, "size": r.size, "dir_name": r.dir_name,
                        "storage_mode": r.storage_mode })
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

    /// The response message of `method` for the JSON `reply`, and the response's attachment:
    /// a Query's rows, which the reply carries as `rows` (base64).
    pub fn response(method: &str, reply: &Value) -> (Vec<u8>, Vec<u8>) {
        use base64::Engine;
        let engine = base64::engine::general_purpose::STANDARD;
        if method == "Query" {
            let rows: Vec<u8> = reply["rows"]
                .as_array()
                .map(|rows| {
                    rows.iter().filter_map(Value::as_str).filter_map(|r| engine.decode(r).ok()).flatten().collect()
                })
                .unwrap_or_default();
            let number = |field: &str| reply[field].as_u64().and_then(|n| u32::try_from(n).ok());
            let message = QueryResponse {
                code: Some(code(reply)),
                msg: msg(reply),
                count: number("count"),
                byte_size: number("byte_size"),
                schema: reply["schema"].as_str().and_then(|s| engine.decode(s).ok()),
                row_slices: None,
            };
            return (message.encode_to_vec(), rows);
        }
        let message = match method {
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
        };
        (message, Vec::new())
    }
}

/// One frame: its meta, message and attachment.
struct Frame {
    meta: RpcMeta,
    message: Vec<u8>,
    attachment: Vec<u8>,
}

/// Reads a frame; `None` at the end of the connection or on bytes that are not one.
async fn read_frame(reader: &mut (impl AsyncRead + Unpin)) -> Option<Frame> {
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
    let attachment_size = meta.attachment_size.unwrap_or(0).max(0) as usize;
    let payload = &body[meta_size..];
    let split = payload.len().checked_sub(attachment_size)?;
    let (message, attachment) = (payload[..split].to_vec(), payload[split..].to_vec());
    Some(Frame { meta, message, attachment })
}

/// A frame of `meta`, `message` and `attachment` (the meta's `attachment_size` must say its size).
fn encode_frame(meta: &RpcMeta, message: &[u8], attachment: &[u8]) -> Vec<u8> {
    let meta = meta.encode_to_vec();
    let body = meta.len() + message.len() + attachment.len();
    let mut frame = Vec::with_capacity(12 + body);
    frame.extend_from_slice(MAGIC);
    frame.extend_from_slice(&(body as u32).to_be_bytes());
    frame.extend_from_slice(&(meta.len() as u32).to_be_bytes());
    frame.extend_from_slice(&meta);
    frame.extend_from_slice(message);
    frame.extend_from_slice(attachment);
    frame
}

/// A response frame for `correlation_id`: `error_code` 0 with `message` and `attachment`, or
/// an error without either.
fn response_frame(correlation_id: i64, error: Option<(i32, String)>, message: &[u8], attachment: &[u8]) -> Vec<u8> {
    let failed = error.is_some();
    let (error_code, error_text) = match error {
        Some((code, text)) => (Some(code), Some(text)),
        None => (Some(0), None),
    };
    let (message, attachment) = if failed { (&[][..], &[][..]) } else { (message, attachment) };
    let meta = RpcMeta {
        response: Some(RpcResponseMeta { error_code, error_text }),
        compress_type: Some(0),
        correlation_id: Some(correlation_id),
        attachment_size: (!attachment.is_empty()).then_some(attachment.len() as i32),
        ..RpcMeta::default()
    };
    encode_frame(&meta, message, attachment)
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
            let reply = call(&service, &request, &frame.message, frame.attachment).await;
            let bytes = match reply {
                Ok((message, attachment)) => response_frame(correlation_id, None, &message, &attachment),
                Err(error) => response_frame(correlation_id, Some(error), &[], &[]),
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
    attachment: Vec<u8>,
) -> Result<(Vec<u8>, Vec<u8>), (i32, String)> {
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
    match service.clone().call(method.to_string(), body, attachment).await {
        Ok(reply) => Ok(codec::response(method, &reply)),
        Err(RpcError::NoMethod(_)) => Err(no_method()),
        Err(RpcError::MissingField(missing)) => Err((EREQUEST, missing.to_string())),
    }
}

/// A failed call through a [`Channel`].
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    #[error("cannot reach {endpoint}: {source}")]
    Connect {
        endpoint: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{method} to {endpoint}: connection failed: {source}")]
    Io {
        endpoint: String,
        method: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{method} to {endpoint}: no answer within {timeout:?}")]
    Timeout { endpoint: String, method: String, timeout: Duration },
    #[error("{method} to {endpoint}: the connection closed or sent bytes that are not a baidu_std frame")]
    BadFrame { endpoint: String, method: String },
    #[error("{method} to {endpoint}: [E{code}] {text}")]
    Rpc { endpoint: String, method: String, code: i32, text: String },
}

/// A baidu_std client of one server over one connection, requests one at a time (a brpc
/// `Channel` with the single connection type, as `FileSender` uses it). It connects on the
/// first call and again after a failed one; a connection's first request carries the
/// credential every OpenMLDB server-to-server channel sends, `sdefault` (`BRPCAuthenticator`'s
/// service token).
pub struct Channel {
    endpoint: String,
    stream: Option<TcpStream>,
    next_correlation_id: i64,
}

impl Channel {
    pub fn new(endpoint: &str) -> Channel {
        Channel { endpoint: endpoint.to_string(), stream: None, next_correlation_id: 1 }
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Calls `service`'s `method` with the encoded `request` and `attachment` within
    /// `timeout` (connecting included); the encoded response message.
    pub async fn call(
        &mut self,
        service: &str,
        method: &str,
        request: &[u8],
        attachment: &[u8],
        timeout: Duration,
    ) -> Result<Vec<u8>, ChannelError> {
        let endpoint = self.endpoint.clone();
        let result = match tokio::time::timeout(timeout, self.exchange(service, method, request, attachment)).await {
            Ok(result) => result,
            Err(_) => Err(ChannelError::Timeout { endpoint, method: method.to_string(), timeout }),
        };
        if !matches!(result, Ok(_) | Err(ChannelError::Rpc { .. })) {
            // What is left of the connection may hold half a frame.
            self.stream = None;
        }
        result
    }

    async fn exchange(
        &mut self,
        service: &str,
        method: &str,
        request: &[u8],
        attachment: &[u8],
    ) -> Result<Vec<u8>, ChannelError> {
        let endpoint = self.endpoint.clone();
        let first_on_connection = self.stream.is_none();
        if first_on_connection {
            let stream = TcpStream::connect(&endpoint)
                .await
                .map_err(|source| ChannelError::Connect { endpoint: endpoint.clone(), source })?;
            let _ = stream.set_nodelay(true);
            self.stream = Some(stream);
        }
        let Some(stream) = self.stream.as_mut() else { unreachable!("connected above") };
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id += 1;
        let meta = RpcMeta {
            request: Some(RpcRequestMeta {
                service_name: service.to_string(),
                method_name: method.to_string(),
                log_id: None,
            }),
            correlation_id: Some(correlation_id),
            attachment_size: (!attachment.is_empty()).then_some(attachment.len() as i32),
            authentication_data: first_on_connection.then(|| b"sdefault".to_vec()),
            ..RpcMeta::default()
        };
        let io = |source| ChannelError::Io { endpoint: endpoint.clone(), method: method.to_string(), source };
        stream.write_all(&encode_frame(&meta, request, attachment)).await.map_err(io)?;
        let bad_frame = || ChannelError::BadFrame { endpoint: endpoint.clone(), method: method.to_string() };
        let reply = read_frame(stream).await.ok_or_else(bad_frame)?;
        if reply.meta.correlation_id != Some(correlation_id) {
            return Err(bad_frame());
        }
        let error = reply.meta.response.and_then(|r| r.error_code.filter(|&c| c != 0).map(|c| (c, r.error_text)));
        match error {
            Some((code, text)) => Err(ChannelError::Rpc {
                endpoint: endpoint.clone(),
                method: method.to_string(),
                code,
                text: text.unwrap_or_default(),
            }),
            None => Ok(reply.message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_response_frame_is_header_meta_message() {
        let (message, _) = codec::response("UseDatabase", &json!({"code": 0}));
        let frame = response_frame(8_589_934_594, None, &message, &[]);
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
        assert!(codec::request("openmldb.api.TabletServer", "Scan", &[]).is_none());
    }
}
