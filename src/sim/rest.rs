//! A plain HTTP server for the components that are not brpc C++ servers: the APIServer's REST
//! face and the TaskManager's brpc-java HTTP face. No per-connection authentication: the
//! APIServer has no authenticator (C§2.1) and brpc-java's TaskManager none either.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// What a handler answers: a status, a content type and a body.
pub struct Reply {
    pub status: StatusCode,
    pub content_type: &'static str,
    pub body: String,
}

impl Reply {
    pub fn text(status: StatusCode, body: impl Into<String>) -> Self {
        Reply { status, content_type: "text/plain", body: body.into() }
    }
    pub fn json(value: &serde_json::Value) -> Self {
        Reply { status: StatusCode::OK, content_type: "application/json", body: value.to_string() }
    }
}

pub type Handler =
    Arc<dyn Fn(Method, String, Bytes) -> Pin<Box<dyn Future<Output = Reply> + Send>> + Send + Sync + 'static>;

/// Serves `handler` until `shutdown` is cancelled.
pub async fn serve(listener: TcpListener, handler: Handler, shutdown: CancellationToken) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let Ok((stream, _)) = accepted else { continue };
        let handler = handler.clone();
        connections.spawn(async move {
            let service = hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
                let handler = handler.clone();
                async move {
                    let method = request.method().clone();
                    let path = request.uri().path().to_string();
                    let body = request.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                    let reply = handler(method, path, body).await;
                    let mut response = Response::new(Full::new(Bytes::from(reply.body)));
                    *response.status_mut() = reply.status;
                    response
                        .headers_mut()
                        .insert("content-type", hyper::header::HeaderValue::from_static(reply.content_type));
                    Ok::<_, std::convert::Infallible>(response)
                }
            });
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
        while connections.try_join_next().is_some() {}
    }
    connections.abort_all();
}
