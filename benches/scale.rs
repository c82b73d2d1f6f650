//! Benchmark: mldb-upgrade on a cluster at scale, 20 tablets holding about 50 000 partition
//! replicas (3-replica tables) at OpenMLDB's real timing flags (a sandbox without `--fast`).
//! For `status`, `plan` of the stock upgrade, its pre-flight, and one tablet's drain + restore,
//! each a separate `mldb-upgrade` process, it prints the wall time, the requests sent to
//! OpenMLDB servers and the process's peak RSS (target < 100 MB).
//!
//! `cargo bench --bench scale` (cargo builds the binaries first). SCALE_REPLICAS=n changes the
//! number of replicas created (default 50000), SCALE_TABLETS=n the tablets (default 20).
//! SCALE_FAST=1 starts the sandbox with `--fast`: a quick look at memory and request counts,
//! whose times are not OpenMLDB's.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Partitions per created table.
const PARTITIONS: u32 = 500;
const REPLICAS: u32 = 3;

/// One measured command: wall time, requests to OpenMLDB servers, peak RSS.
struct Measured {
    what: String,
    wall: Duration,
    requests: Option<u64>,
    peak_rss_kb: u64,
    ok: bool,
}

/// The peak RSS so far of a running process (VmHWM, in kB).
fn peak_rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Runs mldb-upgrade with `args`, sampling its peak RSS until it exits; the request count
/// comes from its exit line (`N request(s) sent to OpenMLDB servers`, logged at debug).
fn measure(bin: &Path, what: &str, args: &[&str]) -> Measured {
    let started = Instant::now();
    let mut child = Command::new(bin)
        .args(args)
        .env("MLDB_LOG", "warn,script=info,mldb_upgrade=info,mldb_upgrade::cli=debug")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let stderr = child.stderr.take().expect("stderr");
    // Warnings and errors are shown as they come; the whole log is kept for a failure.
    let shown = what.to_string();
    let reader = std::thread::spawn(move || {
        let mut log = String::new();
        for line in std::io::BufRead::lines(std::io::BufReader::new(stderr)).map_while(Result::ok) {
            if line.contains(" WARN ") || line.contains(" ERROR ") || line.contains(" one by one") {
                println!("  [{shown}] {line}");
            }
            log.push_str(&line);
            log.push('\n');
        }
        log
    });
    let mut peak = 0;
    let status = loop {
        if let Some(kb) = peak_rss_kb(child.id()) {
            peak = peak.max(kb);
        }
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let wall = started.elapsed();
    let log = reader.join().unwrap_or_default();
    let requests = log
        .lines()
        .find_map(|l| l.split(" request(s) sent to OpenMLDB servers").next().filter(|_| l.contains("request(s) sent")))
        .and_then(|l| l.split_whitespace().last()?.parse().ok());
    if !status.success() {
        eprintln!(
            "{what} failed:\n{}",
            log.lines().rev().take(30).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }
    Measured { what: what.into(), wall, requests, peak_rss_kb: peak, ok: status.success() }
}

fn env_number(name: &str, default: u32) -> u32 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() {
    // `cargo bench` passes --bench; a test run (`cargo test --benches`) only checks it builds.
    if !std::env::args().any(|a| a == "--bench") {
        println!("scale benchmark: run it with `cargo bench --bench scale`");
        return;
    }
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_mldb-upgrade"));
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let tablets = env_number("SCALE_TABLETS", 20);
    let replicas = env_number("SCALE_REPLICAS", 50_000);
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("sb");
    let d = dir.to_str().expect("utf-8");
    let t = tablets.to_string();
    let fast = std::env::var("SCALE_FAST").is_ok_and(|v| v == "1");
    let started = Instant::now();
    let up = Command::new(&bin)
        .args(["sandbox", "up", "--dir", d, "--nameservers", "1", "--tablets", &t, "--apiservers", "0"])
        .args(["--taskmanagers", "0"])
        .args(fast.then_some("--fast"))
        .output()
        .expect("sandbox up");
    assert!(up.status.success(), "{}", String::from_utf8_lossy(&up.stderr));
    println!("sandbox of {tablets} tablets up in {:.1}s", started.elapsed().as_secs_f64());
    let result = std::panic::catch_unwind(|| {
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        let state = mldb_upgrade::sandbox::load_state(&dir).expect("state");
        let tables = replicas.div_ceil(PARTITIONS * REPLICAS);
        let started = Instant::now();
        rt.block_on(async {
            let db = mldb_upgrade::sandbox::ns_call(&state, "CreateDatabase", serde_json::json!({"db": "scale"}))
                .await
                .expect("db");
            assert_eq!(db["code"], 0, "{db}");
            // One CreateTable makes PARTITIONS x REPLICAS replicas on the tablets, one request each.
            let leader = mldb_upgrade::sandbox::nameserver_leader(&state).await.expect("nameserver leader");
            for n in 0..tables {
                let info = serde_json::json!({"name": format!("t{n}"), "db": "scale", "partition_num": PARTITIONS,
                                              "replica_num": REPLICAS});
                let one = Instant::now();
                let body = serde_json::json!({"table_info": info});
                let path = "/NameServer/CreateTable";
                let made = mldb_upgrade::sim::http::call(&leader, path, &body, Duration::from_secs(600))
                    .await
                    .unwrap_or_else(|e| panic!("CreateTable scale.t{n}: {e}"));
                assert_eq!(made["code"], 0, "scale.t{n}: {made}");
                if n % 5 == 0 || n + 1 == tables {
                    println!("  table scale.t{n} created in {:.1}s", one.elapsed().as_secs_f64());
                }
            }
        });
        println!(
            "created {tables} tables of {PARTITIONS} partitions x {REPLICAS} replicas ({} replicas) in {:.1}s",
            tables * PARTITIONS * REPLICAS,
            started.elapsed().as_secs_f64()
        );
        let rel = tmp.path().join("release");
        let made = Command::new(&bin)
            .args(["sandbox", "release", "--version", "0.9.3", "--out", rel.to_str().expect("utf-8")])
            .output()
            .expect("sandbox release");
        assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
        let release = format!("release={}", rel.join("openmldb-0.9.3-linux").display());
        let cluster = dir.join("cluster.toml");
        let cluster = cluster.to_str().expect("utf-8");
        let upgrade = root.join("scripts/upgrade.rhai");
        let upgrade = upgrade.to_str().expect("utf-8");
        let tablet = state.components.iter().find(|c| c.role.as_str() == "tablet").expect("tablet").endpoint.clone();
        let preflight = tmp.path().join("preflight.rhai");
        std::fs::write(
            &preflight,
            "import \"rolling\" as rolling;\njournal::begin(\"scale pre-flight\");\nrolling::preflight(setting(\"release\"), rolling::policies());\njournal::finish();\n",
        )
        .expect("write");
        let drain = tmp.path().join("drain.rhai");
        std::fs::write(
            &drain,
            "let ep = setting(\"tablet\");\nupgrade::with_auto_failover_off(|| {\n    upgrade::drain_leaders(ep);\n    upgrade::restore_leaders(ep);\n});\n",
        )
        .expect("write");
        let tablet_set = format!("tablet={tablet}");
        let runs = [
            measure(&bin, "status", &["status", "--cluster", cluster]),
            measure(&bin, "plan (stock upgrade)", &["plan", upgrade, "--cluster", cluster, "--set", &release]),
            measure(
                &bin,
                "pre-flight",
                &["run", preflight.to_str().expect("utf-8"), "--cluster", cluster, "--set", &release],
            ),
            measure(
                &bin,
                &format!("drain + restore {tablet}"),
                &["run", drain.to_str().expect("utf-8"), "--cluster", cluster, "--set", &tablet_set],
            ),
        ];
        println!("{:<40} {:>10} {:>10} {:>14}", "what", "wall", "requests", "peak RSS");
        for m in &runs {
            let requests = m.requests.map_or("?".to_string(), |n| n.to_string());
            let state = if m.ok { "" } else { "  FAILED" };
            println!(
                "RESULT {:<33} {:>9.1}s {:>10} {:>11.1} MB{state}",
                m.what,
                m.wall.as_secs_f64(),
                requests,
                m.peak_rss_kb as f64 / 1024.0
            );
        }
        assert!(runs.iter().all(|m| m.ok), "a measured command failed (its log is above)");
    });
    let _ = mldb_upgrade::sandbox::down(&dir);
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}
