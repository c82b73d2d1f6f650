//! `sandbox up --storage-modes mixed --snapshot-window AFTER`: the shapes of C§4 (disk tables,
//! a snapshot window) in a sandbox, through the tablet flag templates both layouts edit
//! (O§2.4 `deploy.sh` for the deploy layout).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};

use crate::support::wait_for;

fn mldb_upgrade(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_mldb-upgrade")).args(args).output().expect("run mldb-upgrade");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "mldb-upgrade {args:?}: {text}");
    text
}

/// Stops the sandbox when the test ends, passed or not.
struct Down<'a>(&'a Path);

impl Drop for Down<'_> {
    fn drop(&mut self) {
        let _ = Command::new(env!("CARGO_BIN_EXE_mldb-upgrade"))
            .args(["sandbox", "down", "--dir", &self.0.display().to_string()])
            .output();
    }
}

async fn post(endpoint: &str, path: &str, body: Value) -> Value {
    let reply = reqwest::Client::new()
        .post(format!("http://{endpoint}{path}"))
        .header("Authorization", "sdefault")
        .json(&body)
        .send()
        .await
        .expect("reply");
    reply.json().await.expect("JSON")
}

/// Both options in the deploy layout: every tablet's generated `conf/tablet.flags` has the SSD
/// root and the snapshot window; the SSD and HDD tables' replicas sit under those roots with
/// their storage mode, and the window fires (MANIFESTs appear) without anything else asked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn o2_4_sandbox_mixed_storage_modes_and_snapshot_window_reach_the_tablets() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("sb");
    let dir_arg = dir.display().to_string();
    let _down = Down(&dir);
    mldb_upgrade(&[
        "sandbox",
        "up",
        "--dir",
        &dir_arg,
        "--fast",
        "--layout",
        "deploy",
        "--nameservers",
        "1",
        "--apiservers",
        "0",
        "--taskmanagers",
        "0",
        "--storage-modes",
        "mixed",
        "--snapshot-window",
        "4s",
    ]);
    let state = mldb_upgrade_state(&dir);
    let tablets: Vec<(String, std::path::PathBuf)> = state
        .components
        .iter()
        .filter(|c| c.role.as_str() == "tablet")
        .map(|c| (c.endpoint.clone(), c.dir.clone()))
        .collect();
    for (_, workdir) in &tablets {
        let flags = std::fs::read_to_string(workdir.join("conf/tablet.flags")).expect("tablet.flags");
        for line in [
            "--ssd_root_path=./db_ssd",
            "--hdd_root_path=./db_hdd",
            "--binlog_notify_on_put=true",
            "--make_snapshot_check_interval=4000",
            "--make_snapshot_threshold_offset=0",
        ] {
            assert!(flags.lines().any(|l| l == line), "{line} in {flags}");
        }
    }

    let mut seen = std::collections::BTreeSet::new();
    for (endpoint, workdir) in &tablets {
        let status = post(endpoint, "/TabletServer/GetTableStatus", json!({})).await;
        for replica in status["all_table_status"].as_array().expect("replicas") {
            let mode = replica["storage_mode"].as_str().expect("storage_mode").to_string();
            let root = match mode.as_str() {
                "kSSD" => "db_ssd",
                "kHDD" => "db_hdd",
                _ => "db",
            };
            let files = workdir.join(root).join(format!("{}_{}", replica["tid"], replica["pid"]));
            assert!(files.join("table_meta.json").is_file(), "{replica} in {}", files.display());
            seen.insert((replica["name"].as_str().unwrap_or_default().to_string(), mode));
        }
    }
    for (name, mode) in [
        ("ssd_single", "kSSD"),
        ("ssd_triple", "kSSD"),
        ("hdd_single", "kHDD"),
        ("hdd_double", "kHDD"),
        ("hdd_triple", "kHDD"),
    ] {
        assert!(seen.contains(&(name.to_string(), mode.to_string())), "{name}: {seen:?}");
    }

    wait_for("the snapshot window fired on every tablet", Duration::from_secs(20), || async {
        tablets
            .iter()
            .all(|(_, workdir)| {
                ["db", "db_ssd", "db_hdd"].iter().any(|root| {
                    std::fs::read_dir(workdir.join(root))
                        .map(|dirs| dirs.flatten().any(|d| d.path().join("snapshot/MANIFEST").is_file()))
                        .unwrap_or(false)
                })
            })
            .then_some(())
    })
    .await;
}

fn mldb_upgrade_state(dir: &Path) -> mldb_upgrade::sandbox::SandboxState {
    mldb_upgrade::sandbox::load_state(dir).expect("sandbox.json")
}
