//! brpc's HTTP+JSON face of OpenMLDB servers (C§2.1): `POST /<Service>/<Method>`, a JSON body,
//! enums as names, app errors as HTTP 200 with `code`/`msg`, and an `Authorization` header on
//! every request (brpc checks it on a connection's first request; sending it always is simplest).
//!
//! Only transport failures are retried here, with backoff; what a code means is for callers.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::config::Credentials;

#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    #[error("cannot reach {endpoint} for {method} after {attempts} attempts: {reason}")]
    Transport { endpoint: String, method: String, attempts: u32, reason: String },
    /// A changing request that may have reached the server: its outcome has to be read from
    /// the cluster's state before anything is sent again.
    #[error("{method} may have reached {endpoint} but no answer came back ({reason}); its outcome is unknown")]
    OutcomeUnknown { endpoint: String, method: String, reason: String },
    #[error("{endpoint} answered {method} with HTTP {status}: {body}")]
    Http { endpoint: String, method: String, status: u16, body: String },
    #[error("{endpoint} answered {method} with something that is not JSON or not its reply: {body}")]
    NotJson { endpoint: String, method: String, body: String },
    #[error("{endpoint} answered {method} without the expected {field}: {body}")]
    Incomplete { endpoint: String, method: String, field: String, body: String },
}

impl RpcError {
    /// True when the server could not be reached at all (worth re-discovering the leader).
    pub fn is_transport(&self) -> bool {
        matches!(self, RpcError::Transport { .. })
    }

    /// True when a changing request may or may not have been carried out.
    pub fn is_outcome_unknown(&self) -> bool {
        matches!(self, RpcError::OutcomeUnknown { .. })
    }
}

/// The `Authorization` value (C§2.1): `u<user>:<"1" + hex(sha256(password))>` with credentials,
/// else `sdefault`, which every server accepts.
pub fn authorization(credentials: Option<&Credentials>) -> String {
    match credentials {
        Some(c) => {
            let digest = Sha256::digest(c.password.expose().as_bytes());
            let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
            format!("u{}:1{hex}", c.user)
        }
        None => "sdefault".to_string(),
    }
}

/// Requests this process sent to OpenMLDB servers, every attempt counted.
static REQUESTS_SENT: AtomicU64 = AtomicU64::new(0);

/// How many requests this process sent to OpenMLDB servers (logged at exit with `-v`; the scale
/// benchmark reads it).
pub fn requests_sent() -> u64 {
    REQUESTS_SENT.load(Ordering::Relaxed)
}

/// A transport error with its causes: reqwest's own text ("error sending request for url ...")
/// does not say whether the request timed out, was refused or lost its connection.
fn transport_error(e: &reqwest::Error, timeout: Duration) -> String {
    if e.is_timeout() {
        return format!("no answer within {}", humantime::format_duration(timeout));
    }
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text = format!("{text}: {cause_text}");
        }
        source = cause.source();
    }
    text
}

/// An HTTP+JSON RPC client with a per-call timeout and bounded retries of transport errors.
#[derive(Clone)]
pub struct RpcClient {
    http: reqwest::Client,
    authorization: String,
    pub timeout: Duration,
    pub attempts: u32,
}

impl RpcClient {
    pub fn new(credentials: Option<&Credentials>, timeout: Duration) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(3))
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .unwrap_or_default();
        RpcClient { http, authorization: authorization(credentials), timeout, attempts: 3 }
    }

    /// The same client (connections shared) with another per-call timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The same client (connections shared) making at most `attempts` tries per call.
    pub fn with_attempts(mut self, attempts: u32) -> Self {
        self.attempts = attempts.max(1);
        self
    }

    /// Calls `service`.`method` on `endpoint` with `body`; returns the JSON reply. Transport
    /// errors are retried: for reads, and for changes that may be repeated.
    pub async fn call(&self, endpoint: &str, service: &str, method: &str, body: &Value) -> Result<Value, RpcError> {
        self.call_with(endpoint, service, method, body, true).await
    }

    /// Like [`RpcClient::call`], the reply read straight into `T` without a JSON tree in
    /// between: for the large replies (ShowTable of a big cluster), whose tree would take
    /// several times the memory of the typed value.
    pub async fn call_as<T: serde::de::DeserializeOwned>(
        &self,
        endpoint: &str,
        service: &str,
        method: &str,
        body: &Value,
    ) -> Result<T, RpcError> {
        self.call_with(endpoint, service, method, body, true).await
    }

    /// Calls a method that changes the cluster and must not happen twice (one that creates an
    /// op). Only a connection that could not be made is retried (nothing was sent); a request
    /// that was sent and got no answer (a timeout, a connection closed before the reply) is
    /// [`RpcError::OutcomeUnknown`], for the caller to reconcile from the cluster's state.
    pub async fn call_change(
        &self,
        endpoint: &str,
        service: &str,
        method: &str,
        body: &Value,
    ) -> Result<Value, RpcError> {
        self.call_with(endpoint, service, method, body, false).await
    }

    /// [`RpcClient::call_change`] with the reply read into `T`.
    pub async fn call_change_as<T: serde::de::DeserializeOwned>(
        &self,
        endpoint: &str,
        service: &str,
        method: &str,
        body: &Value,
    ) -> Result<T, RpcError> {
        self.call_with(endpoint, service, method, body, false).await
    }

    async fn call_with<T: serde::de::DeserializeOwned>(
        &self,
        endpoint: &str,
        service: &str,
        method: &str,
        body: &Value,
        retry_sent: bool,
    ) -> Result<T, RpcError> {
        let url = format!("http://{endpoint}/{service}/{method}");
        let mut delay = Duration::from_millis(100);
        let mut last = String::new();
        for attempt in 1..=self.attempts {
            REQUESTS_SENT.fetch_add(1, Ordering::Relaxed);
            let sent = self
                .http
                .post(&url)
                .header("Authorization", &self.authorization)
                .timeout(self.timeout)
                .json(body)
                .send()
                .await;
            match sent {
                Ok(response) => {
                    let status = response.status().as_u16();
                    let text = response.text().await.unwrap_or_default();
                    if status != 200 {
                        return Err(RpcError::Http {
                            endpoint: endpoint.into(),
                            method: method.into(),
                            status,
                            body: text,
                        });
                    }
                    tracing::trace!(endpoint, method, %body, reply = %text, "rpc");
                    return serde_json::from_str(&text).map_err(|e| {
                        let shown: String = text.chars().take(500).collect();
                        let more = if shown.len() < text.len() { " ..." } else { "" };
                        RpcError::NotJson {
                            endpoint: endpoint.into(),
                            method: method.into(),
                            body: format!("{shown}{more} ({e})"),
                        }
                    });
                }
                Err(e) => {
                    last = transport_error(&e, self.timeout);
                    tracing::debug!(endpoint, method, attempt, error = %last, "rpc transport error");
                    if !retry_sent && !e.is_connect() {
                        return Err(RpcError::OutcomeUnknown {
                            endpoint: endpoint.into(),
                            method: method.into(),
                            reason: last,
                        });
                    }
                    if attempt < self.attempts {
                        tokio::time::sleep(delay).await;
                        delay *= 3;
                    }
                }
            }
        }
        Err(RpcError::Transport {
            endpoint: endpoint.into(),
            method: method.into(),
            attempts: self.attempts,
            reason: last,
        })
    }

    /// GET a built-in text page (`/version`, `/health`, C§1.4).
    pub async fn get_text(&self, endpoint: &str, path: &str) -> Result<String, RpcError> {
        let url = format!("http://{endpoint}{path}");
        let response = self.http.get(&url).timeout(self.timeout).send().await.map_err(|e| RpcError::Transport {
            endpoint: endpoint.into(),
            method: path.into(),
            attempts: 1,
            reason: e.to_string(),
        })?;
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        if status != 200 {
            return Err(RpcError::Http { endpoint: endpoint.into(), method: path.into(), status, body: text });
        }
        Ok(text)
    }
}

/// An enum OpenMLDB sends by name (json2pb's default, C§2.1) or, with brpc's
/// `-pb_enum_as_number`, by number. Values this tool does not know are kept as `Other` and shown
/// as they came, never a parse failure. Serialized back by name, so scripts see OpenMLDB's words.
macro_rules! openmldb_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident { $( $(#[$vmeta:meta])* $variant:ident = $text:literal / $number:literal ),+ $(,)? }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
            /// A value this tool does not know, as OpenMLDB sent it.
            Other(String),
        }

        impl $name {
            /// OpenMLDB's name of the value.
            pub fn as_str(&self) -> &str {
                match self {
                    $( $name::$variant => $text, )+
                    $name::Other(text) => text,
                }
            }

            fn from_name(text: &str) -> Self {
                match text {
                    $( $text => $name::$variant, )+
                    other => $name::Other(other.to_string()),
                }
            }

            fn from_number(number: i64) -> Self {
                match number {
                    $( $number => $name::$variant, )+
                    other => $name::Other(other.to_string()),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                Ok(match serde_json::Value::deserialize(deserializer)? {
                    serde_json::Value::String(text) => $name::from_name(&text),
                    serde_json::Value::Number(n) => n.as_i64().map_or_else(|| $name::Other(n.to_string()), $name::from_number),
                    other => $name::Other(other.to_string()),
                })
            }
        }
    };
}
pub(crate) use openmldb_enum;

/// A reply's `code` and `msg` (app errors come as HTTP 200 with them, C§2.1), for replies read
/// into their own types.
pub trait Coded {
    fn code(&self) -> i64;
    fn msg(&self) -> String;
}

impl Coded for Value {
    fn code(&self) -> i64 {
        code(self)
    }
    fn msg(&self) -> String {
        msg(self)
    }
}

/// The `code` of a reply; absent means 0 (proto2 default, C§2.1).
pub fn code(reply: &Value) -> i64 {
    reply.get("code").and_then(Value::as_i64).unwrap_or(0)
}

/// The `msg` of a reply.
pub fn msg(reply: &Value) -> String {
    reply.get("msg").and_then(Value::as_str).unwrap_or_default().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    #[test]
    fn authorization_forms_c2_1() {
        assert_eq!(authorization(None), "sdefault");
        let root = Credentials { user: "root".into(), password: Secret::new("") };
        // The default root entry: hash of the empty password (C§2.1).
        assert_eq!(
            authorization(Some(&root)),
            "uroot:1e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    /// A server that reads each request and closes the connection without an answer; counts
    /// the requests it got.
    async fn silent_server() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        use tokio::io::AsyncReadExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let seen = count.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let mut buf = [0u8; 4096];
                if socket.read(&mut buf).await.unwrap_or(0) > 0 {
                    seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
            }
        });
        (addr, count)
    }

    #[tokio::test]
    async fn a_change_sent_without_an_answer_is_not_sent_again() {
        let (addr, count) = silent_server().await;
        let rpc = RpcClient::new(None, Duration::from_secs(2));
        let body = serde_json::json!({"name": "t", "pid": 0});
        let e = rpc.call_change(&addr, "NameServer", "ChangeLeader", &body).await.unwrap_err();
        assert!(e.is_outcome_unknown(), "{e}");
        assert!(e.to_string().contains("its outcome is unknown"), "{e}");
        assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 1);
        // A read is retried.
        let e = rpc.call(&addr, "NameServer", "ShowTable", &body).await.unwrap_err();
        assert!(e.is_transport(), "{e}");
        assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 1 + 3);
    }

    #[tokio::test]
    async fn a_change_that_could_not_connect_is_tried_again() {
        // Nothing listens there: nothing was sent, so trying again is safe.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let rpc = RpcClient::new(None, Duration::from_secs(2));
        let e =
            rpc.call_change(&format!("127.0.0.1:{port}"), "NameServer", "ChangeLeader", &serde_json::json!({})).await;
        assert!(matches!(e, Err(RpcError::Transport { attempts: 3, .. })), "{e:?}");
    }
}
