//! Benchmark: the stock upgrade 0.9.2 → 0.9.3 at OpenMLDB's real timing flags (a sandbox
//! without `--fast`) on 2 nameservers, 4 tablets, 1 apiserver and 2 TaskManagers, under 100
//! writes/s without client retries. Prints the run's time against its lower bound (both from
//! the timing breakdown the run prints, measured in the same run; target ≤ 1.3×), and what the
//! writers saw: acknowledged writes lost (target 0), writes refused, and the longest outage of
//! one partition.
//!
//! `cargo bench --bench flow` (about 6 minutes; cargo builds the binaries first).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn mldb(bin: &Path, args: &[&str]) -> std::process::Output {
    Command::new(bin).args(args).output().unwrap_or_else(|e| panic!("{} {args:?}: {e}", bin.display()))
}

fn main() {
    // `cargo bench` passes --bench; a test run (`cargo test --benches`) only checks it builds.
    if !std::env::args().any(|a| a == "--bench") {
        println!("flow benchmark: run it with `cargo bench --bench flow`");
        return;
    }
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_mldb-upgrade"));
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("sb");
    let d = dir.to_str().expect("utf-8");
    let rel = tmp.path().join("release");
    let up = mldb(
        &bin,
        &[
            "sandbox",
            "up",
            "--dir",
            d,
            "--version",
            "0.9.2",
            "--nameservers",
            "2",
            "--tablets",
            "4",
            "--apiservers",
            "1",
            "--taskmanagers",
            "2",
        ],
    );
    assert!(up.status.success(), "{}", String::from_utf8_lossy(&up.stderr));
    let result = std::panic::catch_unwind(|| {
        let made = mldb(&bin, &["sandbox", "release", "--version", "0.9.3", "--out", rel.to_str().expect("utf-8")]);
        assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
        let report = tmp.path().join("load.jsonl");
        let report = report.to_str().expect("utf-8");
        let mut load = Command::new(&bin)
            .args(["sandbox", "load", "--dir", d, "--rate", "100", "--duration", "60m", "--report", report])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("sandbox load");
        std::thread::sleep(std::time::Duration::from_secs(5));
        let started = std::time::Instant::now();
        let release = rel.join("openmldb-0.9.3-linux");
        let run = mldb(
            &bin,
            &[
                "run",
                root.join("scripts/upgrade.rhai").to_str().expect("utf-8"),
                "--cluster",
                dir.join("cluster.toml").to_str().expect("utf-8"),
                "--set",
                &format!("release={}", release.display()),
            ],
        );
        let wall = started.elapsed();
        std::thread::sleep(std::time::Duration::from_secs(3));
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(load.id() as i32), nix::sys::signal::Signal::SIGINT);
        let _ = load.wait();
        let stdout = String::from_utf8_lossy(&run.stdout);
        assert!(run.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&run.stderr));
        let timing: Vec<&str> = stdout
            .lines()
            .skip_while(|l| !l.starts_with("where the run's time went"))
            .take_while(|l| !l.is_empty())
            .collect();
        println!("{}", timing.join("\n"));
        let ratio = stdout.lines().find(|l| l.starts_with("run time / lower bound")).unwrap_or("no ratio printed");
        let verify = mldb(&bin, &["sandbox", "verify", "--report", report, "--json"]);
        let v: serde_json::Value = serde_json::from_slice(&verify.stdout).expect("verify --json");
        let longest = v["partitions"]
            .as_array()
            .into_iter()
            .flatten()
            .max_by_key(|p| p["longest_outage_ms"].as_u64().unwrap_or(0))
            .map(|p| {
                format!("{} ms ({}.{} pid {})", p["longest_outage_ms"], p["db"], p["table"], p["pid"]).replace('"', "")
            })
            .unwrap_or_default();
        println!();
        println!("full flow at real timing (wall {:.1}s, 100 writes/s, no client retries):", wall.as_secs_f64());
        println!("  {ratio}   (target <= 1.3x)");
        println!(
            "  acknowledged writes lost: {} of {}   (target 0)",
            v["missing"].as_array().map_or(0, Vec::len),
            v["acknowledged"]
        );
        println!("  writes refused: {}", v["failed"]);
        println!("  longest write outage of one partition: {longest}");
    });
    let _ = mldb(&bin, &["sandbox", "down", "--dir", d]);
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}
