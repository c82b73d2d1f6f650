//! brpc's HTTP face, as OpenMLDB servers show it (C§2.1, C§1.4).
//!
//! * `/<Service>/<Method>` and `/<full.package.Service>/<Method>`, GET or POST, JSON body.
//! * App errors are HTTP 200 `{"code":N,"msg":..}`; a missing required field is HTTP 400 with
//!   brpc's text; an unknown service or method is 404.
//! * Authentication is per connection: the first request of a connection to a non-builtin
//!   path must carry `Authorization`; a failed check closes the socket without any response.
//! * Built-in pages need no auth: `/version`, `/health`, and `/status` only with
//!   `--enable_status_service=true` (OpenMLDB's brpc patch disables it otherwise).
//!
//! The client half is what the nameserver uses to reach tablets: one connection per call,
//! `Authorization: sdefault` like OpenMLDB's own `NsClient`/`TabletClient` (C§2.1).
//! [`ConnectionPool`] keeps connections open for the busy callers (replication, the
//! sandbox data client).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use super::proto::MissingField;

/// What a service call can end with besides a JSON reply.
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    #[error("Fail to find method on `{0}'")]
    NoMethod(String),
    #[error(transparent)]
    MissingField(#[from] MissingField),
}

pub type RpcFuture = Pin<Box<dyn Future<Output = Result<Value, RpcError>> + Send>>;

/// One protobuf service served over HTTP+JSON.
pub trait RpcService: Send + Sync + 'static {
    /// `NameServer` / `TabletServer`.
    fn short_name(&self) -> &'static str;
    /// `openmldb.nameserver.NameServer` / `openmldb.api.TabletServer`.
    fn full_name(&self) -> &'static str;
    /// Runs `method` on the JSON form of its request. `attachment` is the bytes that came
    /// after a baidu_std request's message (always empty over HTTP+JSON).
    fn call(self: Arc<Self>, method: String, body: Value, attachment: Vec<u8>) -> RpcFuture;
}

/// `"1" + hex(sha256(password))`, OpenMLDB's stored password form (`src/codec/encrypt.h`).
pub fn password_hash(password: &str) -> String {
    let digest = Sha256::digest(password.as_bytes());
    let mut out = String::from("1");
    for byte in digest {
        out.push_str(&format!("{byte:02x}"));
    }
    out
}

/// `BRPCAuthenticator::VerifyCredential` (C§2.1).
#[derive(Debug, Clone)]
pub struct Authenticator {
    pub skip_grant_tables: bool,
}

impl Authenticator {
    pub fn verify(&self, credential: &str) -> bool {
        if self.skip_grant_tables {
            return true;
        }
        if let Some(token) = credential.strip_prefix('s') {
            return token == "default";
        }
        if let Some(user_and_hash) = credential.strip_prefix('u') {
            // The simulator's USER table holds only the default root entry with the empty
            // password (C§2.1); see the module docs of `sim`.
            return user_and_hash
                .split_once(':')
                .is_some_and(|(user, hash)| user == "root" && hash == password_hash(""));
        }
        false
    }
}

/// Everything the HTTP front needs besides the service.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    pub version: String,
    pub enable_status_service: bool,
    pub authenticator: Authenticator,
    pub started: Instant,
}

/// The error a service returns to make hyper drop the connection without a response.
#[derive(Debug, thiserror::Error)]
#[error("authentication failed; closing the connection")]
struct ConnectionRejected;

fn text(status: StatusCode, body: impl Into<String>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.into())));
    *response.status_mut() = status;
    response.headers_mut().insert("content-type", hyper::header::HeaderValue::from_static("text/plain"));
    response
}

fn json(value: &Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(value.to_string())));
    response.headers_mut().insert("content-type", hyper::header::HeaderValue::from_static("application/json"));
    response
}

/// Serves `service` on `listener` until `shutdown` is cancelled; then open connections are
/// dropped too.
pub async fn serve(
    listener: TcpListener,
    service: Arc<dyn RpcService>,
    config: Arc<HttpConfig>,
    shutdown: CancellationToken,
) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let Ok((stream, _peer)) = accepted else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let service = service.clone();
        let config = config.clone();
        connections.spawn(async move {
            // One port, two protocols: brpc tells baidu_std from HTTP by the first bytes.
            if speaks_baidu_std(&stream).await {
                return super::baidu_std::serve_connection(stream, service, config).await;
            }
            // brpc verifies the credential once per connection (C§2.1).
            let verified = Arc::new(AtomicBool::new(false));
            let handler = hyper::service::service_fn(move |request| {
                handle(request, service.clone(), config.clone(), verified.clone())
            });
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), handler).await;
        });
        while connections.try_join_next().is_some() {}
    }
    connections.abort_all();
}

/// Whether the connection's first bytes are a baidu_std frame's (waits for 4 bytes, or fewer
/// when the client stops sending: HTTP requests are longer than that).
async fn speaks_baidu_std(stream: &TcpStream) -> bool {
    let mut first = [0u8; 4];
    for _ in 0..50 {
        match stream.peek(&mut first).await {
            Ok(n) if n >= 4 => return &first == super::baidu_std::MAGIC,
            Ok(0) | Err(_) => return false,
            Ok(n) if first[..n] != super::baidu_std::MAGIC[..n] => return false,
            Ok(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
    false
}

async fn handle(
    request: Request<hyper::body::Incoming>,
    service: Arc<dyn RpcService>,
    config: Arc<HttpConfig>,
    verified: Arc<AtomicBool>,
) -> Result<Response<Full<Bytes>>, ConnectionRejected> {
    let path = request.uri().path().to_string();
    match path.as_str() {
        "/version" => return Ok(text(StatusCode::OK, config.version.clone())),
        "/health" => return Ok(text(StatusCode::OK, "OK")),
        // Disabled by OpenMLDB's brpc patch unless --enable_status_service (C§1.4).
        "/status" if !config.enable_status_service => {
            return Ok(text(StatusCode::NOT_FOUND, "Fail to find method on `/status'"))
        }
        "/status" => {
            let page = format!(
                "{}\nversion: {}\nuptime: {}s\n",
                service.full_name(),
                config.version,
                config.started.elapsed().as_secs()
            );
            return Ok(text(StatusCode::OK, page));
        }
        _ => {}
    }
    if !verified.load(Ordering::SeqCst) {
        let credential =
            request.headers().get(hyper::header::AUTHORIZATION).and_then(|v| v.to_str().ok()).map(str::to_string);
        match credential {
            Some(credential) if config.authenticator.verify(&credential) => verified.store(true, Ordering::SeqCst),
            _ => return Err(ConnectionRejected),
        }
    }
    let mut segments = path.trim_start_matches('/').splitn(2, '/');
    let service_name = segments.next().unwrap_or_default();
    let method = segments.next().unwrap_or_default().trim_end_matches('/').to_string();
    // A first segment with a dot is a full service name, otherwise the short one (C§2.1).
    let known = if service_name.contains('.') {
        service_name == service.full_name()
    } else {
        service_name == service.short_name()
    };
    if !known || method.is_empty() || method.contains('/') {
        return Ok(text(StatusCode::NOT_FOUND, format!("Fail to find method on `{path}'")));
    }
    let body = match request.into_body().collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return Ok(text(StatusCode::BAD_REQUEST, "Fail to read http body")),
    };
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        Value::Object(Default::default())
    } else {
        match serde_json::from_slice::<Value>(&body) {
            Ok(value @ Value::Object(_)) => value,
            _ => {
                return Ok(text(
                    StatusCode::BAD_REQUEST,
                    format!("Fail to parse http body as request of {method}: invalid JSON object"),
                ))
            }
        }
    };
    match service.call(method, body, Vec::new()).await {
        Ok(reply) => Ok(json(&reply)),
        Err(RpcError::NoMethod(_)) => Ok(text(StatusCode::NOT_FOUND, format!("Fail to find method on `{path}'"))),
        Err(RpcError::MissingField(missing)) => Ok(text(StatusCode::BAD_REQUEST, missing.to_string())),
    }
}

/// A failed call from one simulated process to another.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("cannot reach {endpoint}: {source}")]
    Connect {
        endpoint: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{endpoint}{path}: {source}")]
    Http {
        endpoint: String,
        path: String,
        #[source]
        source: hyper::Error,
    },
    #[error("{endpoint}{path}: no answer within {timeout:?}")]
    Timeout { endpoint: String, path: String, timeout: Duration },
    #[error("{endpoint}{path}: HTTP {status}: {body}")]
    Status { endpoint: String, path: String, status: u16, body: String },
    #[error("{endpoint}{path}: reply is not JSON: {body}")]
    NotJson { endpoint: String, path: String, body: String },
}

/// POSTs `body` to `http://<endpoint><path>` and returns the JSON reply of an HTTP 200.
pub async fn call(endpoint: &str, path: &str, body: &Value, timeout: Duration) -> Result<Value, CallError> {
    match tokio::time::timeout(timeout, call_inner(endpoint, path, body)).await {
        Ok(result) => result,
        Err(_) => Err(CallError::Timeout { endpoint: endpoint.to_string(), path: path.to_string(), timeout }),
    }
}

async fn call_inner(endpoint: &str, path: &str, body: &Value) -> Result<Value, CallError> {
    let http_err = |source| CallError::Http { endpoint: endpoint.to_string(), path: path.to_string(), source };
    let stream = TcpStream::connect(endpoint)
        .await
        .map_err(|source| CallError::Connect { endpoint: endpoint.to_string(), source })?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake::<_, Full<Bytes>>(TokioIo::new(stream)).await.map_err(http_err)?;
    let driver = tokio::spawn(async move {
        let _ = connection.await;
    });
    let request = Request::post(path)
        .header(hyper::header::HOST, endpoint)
        .header(hyper::header::AUTHORIZATION, "sdefault")
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body.to_string())));
    let Ok(request) = request else {
        driver.abort();
        return Err(CallError::Status {
            endpoint: endpoint.to_string(),
            path: path.to_string(),
            status: 0,
            body: "invalid request path".to_string(),
        });
    };
    let result = async {
        let response = sender.send_request(request).await.map_err(http_err)?;
        let status = response.status().as_u16();
        let bytes = response.into_body().collect().await.map_err(http_err)?.to_bytes();
        decode_reply(endpoint, path, status, &bytes)
    }
    .await;
    driver.abort();
    result
}

/// Keep-alive connections per endpoint, for callers that talk to the same servers many times a
/// second (replication between tablets, the sandbox client): one connection per call would
/// leave tens of thousands of sockets in TIME_WAIT. Every request carries
/// `Authorization: sdefault`, so a fresh connection always passes brpc's check (C§2.1).
#[derive(Default)]
pub struct ConnectionPool {
    idle:
        std::sync::Mutex<std::collections::HashMap<String, Vec<hyper::client::conn::http1::SendRequest<Full<Bytes>>>>>,
}

/// Idle connections kept per endpoint.
const MAX_IDLE_PER_ENDPOINT: usize = 32;

impl ConnectionPool {
    pub fn new() -> Self {
        ConnectionPool::default()
    }

    fn take_idle(&self, endpoint: &str) -> Option<hyper::client::conn::http1::SendRequest<Full<Bytes>>> {
        let mut idle = self.idle.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let senders = idle.get_mut(endpoint)?;
        while let Some(sender) = senders.pop() {
            if sender.is_ready() {
                return Some(sender);
            }
        }
        None
    }

    fn put_idle(&self, endpoint: &str, sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>) {
        let mut idle = self.idle.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let senders = idle.entry(endpoint.to_string()).or_default();
        if senders.len() < MAX_IDLE_PER_ENDPOINT {
            senders.push(sender);
        }
    }

    /// POSTs `body` to `http://<endpoint><path>` on a pooled connection and returns the JSON
    /// reply of an HTTP 200. A pooled connection the server closed meanwhile is replaced
    /// once, and only when the request was provably not sent.
    pub async fn call(&self, endpoint: &str, path: &str, body: &Value, timeout: Duration) -> Result<Value, CallError> {
        let attempt = async {
            if let Some(sender) = self.take_idle(endpoint) {
                match self.send(endpoint, path, body, sender).await {
                    Err(CallError::Http { source, .. }) if source.is_canceled() => {}
                    other => return other,
                }
            }
            let stream = TcpStream::connect(endpoint)
                .await
                .map_err(|source| CallError::Connect { endpoint: endpoint.to_string(), source })?;
            let _ = stream.set_nodelay(true);
            let (sender, connection) = hyper::client::conn::http1::handshake::<_, Full<Bytes>>(TokioIo::new(stream))
                .await
                .map_err(|source| CallError::Http { endpoint: endpoint.to_string(), path: path.to_string(), source })?;
            // The driver ends when the server closes the connection or the sender is dropped.
            tokio::spawn(async move {
                let _ = connection.await;
            });
            self.send(endpoint, path, body, sender).await
        };
        match tokio::time::timeout(timeout, attempt).await {
            Ok(result) => result,
            Err(_) => Err(CallError::Timeout { endpoint: endpoint.to_string(), path: path.to_string(), timeout }),
        }
    }

    async fn send(
        &self,
        endpoint: &str,
        path: &str,
        body: &Value,
        mut sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    ) -> Result<Value, CallError> {
        let http_err = |source| CallError::Http { endpoint: endpoint.to_string(), path: path.to_string(), source };
        sender.ready().await.map_err(http_err)?;
        let request = Request::post(path)
            .header(hyper::header::HOST, endpoint)
            .header(hyper::header::AUTHORIZATION, "sdefault")
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body.to_string())))
            .map_err(|_| CallError::Status {
                endpoint: endpoint.to_string(),
                path: path.to_string(),
                status: 0,
                body: "invalid request path".to_string(),
            })?;
        let response = sender.send_request(request).await.map_err(http_err)?;
        let status = response.status().as_u16();
        let bytes = response.into_body().collect().await.map_err(http_err)?.to_bytes();
        self.put_idle(endpoint, sender);
        decode_reply(endpoint, path, status, &bytes)
    }
}

/// The JSON of an HTTP 200 reply, or why there is none.
fn decode_reply(endpoint: &str, path: &str, status: u16, bytes: &[u8]) -> Result<Value, CallError> {
    let text = String::from_utf8_lossy(bytes).to_string();
    if status != 200 {
        return Err(CallError::Status { endpoint: endpoint.to_string(), path: path.to_string(), status, body: text });
    }
    serde_json::from_str(&text).map_err(|_| CallError::NotJson {
        endpoint: endpoint.to_string(),
        path: path.to_string(),
        body: text,
    })
}

/// The `code` of a reply; absent means 0 (proto2 default).
pub fn reply_code(reply: &Value) -> i64 {
    reply.get("code").and_then(Value::as_i64).unwrap_or(0)
}

pub fn reply_msg(reply: &Value) -> String {
    reply.get("msg").and_then(Value::as_str).unwrap_or_default().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_hash_of_empty_password_matches_openmldb() {
        assert_eq!(password_hash(""), "1e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    }

    #[test]
    fn credentials() {
        let strict = Authenticator { skip_grant_tables: false };
        assert!(strict.verify("sdefault"));
        assert!(!strict.verify("sother"));
        assert!(strict.verify(&format!("uroot:{}", password_hash(""))));
        assert!(!strict.verify("uroot:1abc"));
        assert!(!strict.verify("foo"));
        assert!(Authenticator { skip_grant_tables: true }.verify("foo"));
    }
}
