//! OpenMLDB's own command-line clients, spoken by the simulated `bin/openmldb` (C§5, O§5.2):
//! `--role=ns_client` (nameserver commands), `--role=client` (tablet commands) and
//! `--role=sql_client` (`show table status`), so that `tools/openmldb_ops.py` runs unmodified
//! against a sandbox.
//!
//! What is reproduced from `src/cmd/openmldb.cc`, `src/cmd/sql_cmd.h`, `src/cmd/display.h`
//! and `src/client/*_client.cc`: the command words and argument checks, the RPCs and fields
//! they send, the ok/error texts (quirks included), the table layouts ([`printer`]), the
//! `ns leader: <ep>` line printed when the nameserver is found through ZooKeeper, `--database`
//! handling (UseDatabase; on failure the db silently stays `""`) and the exit code, which is
//! **0 whatever happens** (C§5).
//!
//! Simplifications: transport failures are reported with brpc-like texts (`[E111]...`), not
//! brpc's exact ones; `--use_name` (`<root>/map/names`) is not read, so `real_endpoint` is
//! always `-`; with `--interactive=true` *and* `--cmd` the real ns_client repeats the command
//! forever, the simulator runs it once; interactive sessions read plain lines from stdin
//! (no line editing or history).

mod ns_client;
pub mod printer;
mod sql_client;
mod tablet_client;

use std::io::{BufRead, Write};
use std::process::ExitCode;
use std::time::Duration;

use serde_json::Value;
use zookeeper_client as zk;

use super::flags::{CliRole, SimFlags};
use super::http::{self, CallError};
use super::zk::ZkPaths;

/// `--request_timeout_ms` default (`src/flags.cc:114`).
const REQUEST_TIMEOUT: Duration = Duration::from_millis(20_000);

/// Runs the client named by `flags.cli_role`; prints to stdout; always exit code 0.
pub fn run(flags: &SimFlags, version: &str) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("openmldb: cannot start the runtime: {e}");
            return ExitCode::SUCCESS;
        }
    };
    runtime.block_on(async {
        match flags.cli_role {
            Some(CliRole::NsClient) => ns_client::start(flags, version).await,
            Some(CliRole::Client) => tablet_client::start(flags, version).await,
            Some(CliRole::SqlClient) => sql_client::start(flags, version).await,
            None => {}
        }
    });
    let _ = std::io::stdout().flush();
    ExitCode::SUCCESS
}

/// Prints `text` at once (the real CLI writes to `std::cout` as it goes).
fn emit(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes());
    let _ = stdout.flush();
}

/// Reads one line for an interactive session after printing `prompt`; `None` at EOF.
fn read_line(prompt: &str) -> Option<String> {
    emit(prompt);
    let mut line = String::new();
    match std::io::stdin().lock().read_line(&mut line) {
        Ok(0) | Err(_) => None,
        Ok(_) => Some(line.trim().to_string()),
    }
}

/// `std::from_chars` into an unsigned number: the leading digits (at least one) are used
/// and the rest of the text is ignored; overflow fails.
fn from_chars_u64(text: &str) -> Option<u64> {
    let digits: &str = &text[..text.bytes().take_while(u8::is_ascii_digit).count()];
    if digits.is_empty() {
        return None;
    }
    digits.parse().ok()
}

fn from_chars_u32(text: &str) -> Option<u32> {
    from_chars_u64(text).and_then(|v| u32::try_from(v).ok())
}

/// `openmldb::base::IsNumber`: non-empty and all ASCII digits.
fn is_number(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())
}

/// The outcome of one RPC as OpenMLDB's clients see it.
#[derive(Debug, Clone)]
struct Reply {
    /// The transport worked (brpc `cntl.Failed()` was false).
    transported: bool,
    /// The response message (empty object when the transport failed).
    body: Value,
    /// brpc's error text when the transport failed.
    rpc_error: String,
}

impl Reply {
    fn code(&self) -> i64 {
        http::reply_code(&self.body)
    }

    fn msg(&self) -> String {
        http::reply_msg(&self.body)
    }

    /// The `bool`-returning client methods: `ok && response.code() == 0`.
    fn ok(&self) -> bool {
        self.transported && self.code() == 0
    }

    /// The `base::Status`-returning methods: the transport error (code 1004, `kRPCError`)
    /// or the response's code and msg.
    fn status(&self) -> (i64, String) {
        if self.transported {
            (self.code(), self.msg())
        } else {
            (1004, self.rpc_error.clone())
        }
    }
}

/// brpc-like text of a failed call.
fn rpc_error_text(error: &CallError) -> String {
    match error {
        CallError::Connect { endpoint, source } => format!("[E111]Fail to connect {endpoint}: {source}"),
        CallError::Http { endpoint, source, .. } => format!("[E1014]Got EOF of {endpoint}: {source}"),
        CallError::Timeout { endpoint, timeout, .. } => {
            format!("[E1008]Reached timeout={}ms @{endpoint}", timeout.as_millis())
        }
        CallError::Status { status, body, .. } => format!("[E{status}]{body}"),
        CallError::NotJson { body, .. } => format!("[E2001]Fail to parse response: {body}"),
    }
}

/// Calls `/<service>/<method>` on `endpoint` (with `Authorization: sdefault`, C§2.1).
async fn call(endpoint: &str, service: &str, method: &str, body: &Value) -> Reply {
    match http::call(endpoint, &format!("/{service}/{method}"), body, REQUEST_TIMEOUT).await {
        Ok(body) => Reply { transported: true, body, rpc_error: String::new() },
        Err(error) => {
            Reply { transported: false, body: Value::Object(Default::default()), rpc_error: rpc_error_text(&error) }
        }
    }
}

/// A ZooKeeper session for a client (closed when dropped, unlike the servers' sessions).
async fn connect_zk(flags: &SimFlags) -> Option<zk::Client> {
    let mut connector = zk::Client::connector()
        .with_session_timeout(flags.zk_session_timeout)
        .with_connection_timeout(flags.zk_session_timeout);
    if let Some(cert) = &flags.zk_cert {
        connector = connector.with_auth("digest", cert.as_bytes());
    }
    connector.connect(&flags.zk_cluster).await.ok()
}

/// Sorted children of `path` (`ZkClient::GetChildren` sorts, C§1.2); `None` on failure.
async fn zk_children(client: &zk::Client, path: &str) -> Option<Vec<String>> {
    let mut children = client.list_children(path).await.ok()?;
    children.sort();
    Some(children)
}

async fn zk_value(client: &zk::Client, path: &str) -> Option<String> {
    client.get_data(path).await.ok().map(|(data, _)| String::from_utf8_lossy(&data).to_string())
}

fn paths(flags: &SimFlags) -> ZkPaths {
    ZkPaths::new(&flags.zk_root_path)
}
