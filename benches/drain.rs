//! Benchmark: drain plus restore of a tablet leading 200 partitions, with mldb-upgrade's
//! primitives versus the same operations run sequentially with fixed polling as
//! `tools/openmldb_ops.py` does. Same sandbox, default concurrency flags and OpenMLDB's real
//! timing flags (C§7: a sandbox without `--fast`), and the tool's fixed 2 s poll.
//!
//! `cargo bench --bench drain` (cargo builds the binaries first; the sequential side alone takes
//! over an hour); prints both times and the ratio.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    // `cargo bench` passes --bench; a test run (`cargo test --benches`) only checks it builds.
    if !std::env::args().any(|a| a == "--bench") {
        println!("drain benchmark: run it with `cargo bench --bench drain`");
        return;
    }
    // Cargo builds the binaries for the bench profile and says where, wherever its target
    // directory is (CARGO_TARGET_DIR included); the simulator is found next to it.
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_mldb-upgrade"));
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("sb");
    let d = dir.to_str().expect("utf-8");
    let up = Command::new(&bin)
        .args([
            "sandbox",
            "up",
            "--dir",
            d,
            "--nameservers",
            "1",
            "--tablets",
            "3",
            "--apiservers",
            "0",
            "--taskmanagers",
            "0",
        ])
        .output()
        .expect("sandbox up");
    assert!(up.status.success(), "{}", String::from_utf8_lossy(&up.stderr));
    let result = std::panic::catch_unwind(|| {
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        let state = mldb_upgrade::sandbox::load_state(&dir).expect("state");
        // 600 partitions over 3 tablets with 2 replicas: the first tablet leads about 200.
        rt.block_on(async {
            let db = mldb_upgrade::sandbox::ns_call(&state, "CreateDatabase", serde_json::json!({"db": "bench"}))
                .await
                .expect("db");
            assert_eq!(db["code"], 0, "{db}");
            let info = serde_json::json!({"name": "wide", "db": "bench", "partition_num": 600, "replica_num": 2});
            let t = mldb_upgrade::sandbox::ns_call(&state, "CreateTable", serde_json::json!({"table_info": info}))
                .await
                .expect("table");
            assert_eq!(t["code"], 0, "{t}");
        });
        let tablet = state.components.iter().find(|c| c.role.as_str() == "tablet").expect("tablet").endpoint.clone();
        let out = Command::new(&bin)
            .args(["run", root.join("benches/drain.rhai").to_str().expect("utf-8"), "--cluster"])
            .arg(dir.join("cluster.toml"))
            .args(["--set", &format!("tablet={tablet}")])
            .status()
            .expect("run bench script");
        assert!(out.success(), "the bench script failed: {out}");
    });
    let _ = mldb_upgrade::sandbox::down(&dir);
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}
