//! The load written by OpenMLDB's own Python SDK (`openmldb` from PyPI, the native C++ client
//! behind a Python wrapper), unmodified: the SDK routes each INSERT from the table metadata in
//! ZooKeeper and sends it to the partition's leader over baidu_std, as applications do.
//!
//! The driver (`sdk_load.py`, compiled into the tool) runs in the Python that has the SDK
//! installed (`make sdk` makes `.venv-sdk`); it reports each write on its stdout and the load
//! report is written here, in the same format as the tool's own client's, so `sandbox verify`
//! reads both. Acknowledged writes name `sdk` as their endpoint: the SDK does not say which
//! tablet took a write.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio_util::sync::CancellationToken;

use super::{now_ms, LoadError, LoadOptions, LoadSummary, ReportLine, ReportWriter};
use crate::sandbox::client::partition_of;

/// The driver's source.
const DRIVER: &str = include_str!("sdk_load.py");

/// The SDK's version `make sdk` installs, the one the tests were run with.
pub const SDK_VERSION: &str = "0.9.2";

/// The Python with the SDK: `$MLDB_SDK_PYTHON`, else `.venv-sdk/bin/python` in the current
/// directory or beside the tool's source.
pub fn default_python() -> std::path::PathBuf {
    if let Some(python) = std::env::var_os("MLDB_SDK_PYTHON") {
        return python.into();
    }
    let here = Path::new(".venv-sdk/bin/python");
    if here.exists() {
        return here.to_path_buf();
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv-sdk/bin/python")
}

/// Runs the load through the SDK in `python` until `options.duration` has passed or `stop`.
pub async fn run_sdk_load(
    options: LoadOptions,
    python: &Path,
    stop: CancellationToken,
) -> Result<LoadSummary, LoadError> {
    if options.rate == 0 {
        return Err(LoadError::ZeroRate);
    }
    if !python.exists() {
        return Err(LoadError::Sdk(format!(
            "no Python with OpenMLDB's SDK at {}: run `make sdk` (a virtual environment with `pip install \
             openmldb=={SDK_VERSION}` in .venv-sdk), or set MLDB_SDK_PYTHON",
            python.display()
        )));
    }
    // The tables and their partition counts, for the report's pids (the SDK routes by the same
    // hash).
    let (client, tables) = super::connect(&options).await?;
    let mut partitions = Vec::new();
    for table in &tables {
        partitions.push(client.route(table).await.map_err(LoadError::Connect)?.partition_num);
    }
    let driver = tempfile::Builder::new().prefix("mldb-sdk-load").suffix(".py").tempfile().map_err(LoadError::SdkIo)?;
    std::fs::write(driver.path(), DRIVER).map_err(LoadError::SdkIo)?;
    let report = ReportWriter::start(&options, &tables)?;
    let names: Vec<String> = tables.iter().map(|t| format!("{}.{}", t.db, t.name)).collect();
    let mut child = tokio::process::Command::new(python)
        .arg(driver.path())
        .args(["--zk", &options.zk_cluster, "--zk-root", &options.zk_root_path])
        .args(["--rate", &options.rate.to_string(), "--duration", &options.duration.as_secs_f64().to_string()])
        .args(["--tables", &names.join(","), "--run", &format!("sdk{}", now_ms())])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| LoadError::Sdk(format!("cannot run {}: {e}", python.display())))?;
    let mut lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
    let stderr = child.stderr.take().expect("piped stderr");
    // The SDK logs (glog, ZooKeeper) go to stderr: kept for an error message.
    let log = tokio::spawn(async move {
        let mut lines = BufReader::new(stderr).lines();
        let mut tail = std::collections::VecDeque::new();
        while let Ok(Some(line)) = lines.next_line().await {
            if tail.len() == 20 {
                tail.pop_front();
            }
            tail.push_back(line);
        }
        tail.into_iter().collect::<Vec<_>>().join("\n")
    });
    let mut started = Instant::now();
    let (mut attempted, mut acknowledged, mut failed, mut connected) = (0u64, 0u64, 0u64, false);
    let mut stopping = false;
    loop {
        let line = tokio::select! {
            _ = stop.cancelled(), if !stopping => {
                stopping = true;
                // SIGTERM: the driver finishes the write in flight and stops.
                if let Some(pid) = child.id().and_then(|pid| i32::try_from(pid).ok()) {
                    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGTERM);
                }
                continue;
            }
            line = lines.next_line() => line,
        };
        let Ok(Some(line)) = line else { break };
        let Ok(event) = serde_json::from_str::<Value>(&line) else { continue };
        if event.get("connected").is_some() {
            // The rate counts from here: importing and connecting the SDK takes seconds.
            (connected, started) = (true, Instant::now());
            continue;
        }
        let (index, kind) = match (event["ack"].as_u64(), event["fail"].as_u64()) {
            (Some(i), _) => (i as usize, true),
            (None, Some(i)) => (i as usize, false),
            _ => continue,
        };
        let (Some(table), Some(key)) = (tables.get(index), event["key"].as_str()) else { continue };
        let pid = partition_of(key, partitions[index]);
        let at_ms = event["at_ms"].as_u64().unwrap_or_else(now_ms);
        attempted += 1;
        let line = if kind {
            acknowledged += 1;
            ReportLine::Ack {
                at_ms,
                db: table.db.clone(),
                table: table.name.clone(),
                pid,
                key: key.to_string(),
                endpoint: "sdk".into(),
                retries: 0,
                retried_ms: 0,
            }
        } else {
            failed += 1;
            let error = event["error"].as_str().unwrap_or_default().to_string();
            ReportLine::Fail {
                at_ms,
                db: table.db.clone(),
                table: table.name.clone(),
                pid,
                key: key.to_string(),
                error,
            }
        };
        report.write(&line)?;
    }
    let status = child.wait().await.map_err(LoadError::SdkIo)?;
    let log = log.await.unwrap_or_default();
    if !connected {
        return Err(LoadError::Sdk(format!(
            "OpenMLDB's SDK did not connect to ZooKeeper {} (root {}); it said:\n{log}",
            options.zk_cluster, options.zk_root_path
        )));
    }
    if !status.success() && !stopping {
        return Err(LoadError::Sdk(format!("the SDK's driver stopped with {status}; it said:\n{log}")));
    }
    report.write(&ReportLine::End { at_ms: now_ms(), attempted, acknowledged, failed })?;
    let elapsed = started.elapsed().max(Duration::from_millis(1));
    Ok(LoadSummary { tables, attempted, acknowledged, retried: 0, failed, elapsed })
}
