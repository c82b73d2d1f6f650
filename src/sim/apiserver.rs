//! The APIServer stand-in (`--role=apiserver`): a stateless SDK client with a REST face
//! (C§3.8, O§3.3). It registers nothing in ZooKeeper (C§1.1) and has no authenticator (C§2.1).
//!
//! Answers `/version`, `/health` (`OK`), `/status` (with `--enable_status_service`) and
//! `GET /dbs` → `{"code":0,"msg":"ok","dbs":[...]}` (`api_server_impl.cc`), the databases read
//! from `<root>/db` without the internal ones. Simplification: no SQL or deployment endpoints.

use std::sync::Arc;
use std::time::Instant;

use hyper::{Method, StatusCode};
use serde_json::json;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::flags::SimFlags;
use super::rest::{self, Handler, Reply};
use super::zk::{Zk, ZkError, ZkPaths};

/// Databases ShowDatabase and `/dbs` hide (C§2.3 ShowDatabase).
pub const INTERNAL_DBS: [&str; 3] = ["__INTERNAL_DB", "__PRE_AGG_DB", "INFORMATION_SCHEMA"];

/// Runs the APIServer on `listener` until `shutdown`.
pub async fn run_apiserver(
    listener: TcpListener,
    flags: SimFlags,
    version: String,
    shutdown: CancellationToken,
) -> Result<(), ZkError> {
    // The SDK client needs ZooKeeper before the server starts, as for real.
    let zk = Arc::new(Zk::connect(&flags).await?);
    let paths = Arc::new(ZkPaths::new(&flags.zk_root_path));
    let started = Instant::now();
    let status_enabled = flags.enable_status_service;
    let handler: Handler = Arc::new(move |method, path, _body| {
        let (zk, paths, version) = (zk.clone(), paths.clone(), version.clone());
        Box::pin(async move {
            match (method, path.as_str()) {
                (_, "/version") => Reply::text(StatusCode::OK, version),
                (_, "/health") => Reply::text(StatusCode::OK, "OK"),
                (_, "/status") if status_enabled => Reply::text(
                    StatusCode::OK,
                    format!("openmldb.apiserver\nversion: {version}\nuptime: {}s\n", started.elapsed().as_secs()),
                ),
                (Method::GET, "/dbs") => match zk.children(&paths.dbs()).await {
                    Ok(mut dbs) => {
                        dbs.retain(|d| !INTERNAL_DBS.contains(&d.as_str()));
                        dbs.sort();
                        Reply::json(&json!({"code": 0, "msg": "ok", "dbs": dbs}))
                    }
                    Err(e) => Reply::json(&json!({"code": -1, "msg": e.to_string()})),
                },
                (_, other) => Reply::text(StatusCode::NOT_FOUND, format!("Fail to find method on `{other}'")),
            }
        })
    });
    rest::serve(listener, handler, shutdown).await;
    Ok(())
}
