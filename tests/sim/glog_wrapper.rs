//! `src/base/glog_wrapper.h` (and glog v0.6.0's file naming): where the C++ servers' log
//! files are, what they are called, and that startup and start failures are in them.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::{free_port, wait_for, SimCluster, SIM};

/// Checks `I20241202 13:05:01.123456  4242 process.rs:12] ` and returns the message after it.
fn glog_message(line: &str, severity: char) -> Option<&str> {
    let rest = line.strip_prefix(severity)?;
    let (date, rest) = rest.split_at_checked(8)?;
    let rest = rest.strip_prefix(' ')?;
    let (time, rest) = rest.split_at_checked(15)?;
    let digits = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit());
    let time_ok = time.len() == 15
        && time.chars().enumerate().all(|(i, c)| match i {
            2 | 5 => c == ':',
            8 => c == '.',
            _ => c.is_ascii_digit(),
        });
    if !digits(date) || !time_ok {
        return None;
    }
    let rest = rest.strip_prefix(' ')?.trim_start();
    let (tid, rest) = rest.split_once(' ')?;
    let (location, message) = rest.split_once("] ")?;
    let (file, line_no) = location.rsplit_once(':')?;
    (digits(tid) && file.ends_with(".rs") && !file.contains('/') && digits(line_no)).then_some(message)
}

/// The file a glog symlink points at, checked to be `<role>.<kind>.log.<YYYYMMDD-HHMMSS>.<pid>`
/// in the same directory.
fn linked_file(dir: &Path, role: &str, severity: &str, pid: u32) -> PathBuf {
    let link = dir.join(format!("{role}.{severity}"));
    let target = std::fs::read_link(&link).unwrap_or_else(|e| panic!("{} is not a symlink: {e}", link.display()));
    let name = target.to_str().expect("utf-8 name").to_string();
    assert!(!name.contains('/'), "relative link in the same directory: {name}");
    let prefix = format!("{role}.{}.log.", severity.to_lowercase());
    let stamp = name.strip_prefix(&prefix).unwrap_or_else(|| panic!("{name} does not start with {prefix}"));
    let (time, file_pid) = stamp.rsplit_once('.').expect("time.pid");
    assert_eq!(file_pid, pid.to_string(), "{name}");
    let (day, clock) = time.split_once('-').expect("YYYYMMDD-HHMMSS");
    assert!(day.len() == 8 && clock.len() == 6, "{name}");
    assert!(day.chars().chain(clock.chars()).all(|c| c.is_ascii_digit()), "{name}");
    let file = dir.join(&name);
    assert!(file.is_file(), "{} exists", file.display());
    file
}

fn lines_with(text: &str, severity: char) -> Vec<&str> {
    text.lines().filter_map(|l| glog_message(l, severity)).collect()
}

/// glog_wrapper.h: with `--openmldb_log_dir`, a tablet and a nameserver log to
/// `<dir>/<role>.info.log.<date>-<time>.<pid>` behind `<dir>/<role>.INFO`, starting with
/// glog's header and then `openmldb.cc`'s startup line, and a WARNING file only for
/// warnings; a nameserver that exits because too
/// few tablets are registered (C§1.2) has the reason as an `E` line in its INFO and WARNING
/// files, and stderr (start.sh's `<role>.log`) is as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn glog_wrapper_h_info_and_warning_files_symlinks_and_startup_line() {
    let mut cluster = SimCluster::new("/glog_wrapper");
    let tablet = cluster.start_tablet(&[]).await;
    let pid = cluster.procs[&tablet].child.id();
    let dir = cluster.glog_dir(&tablet);
    let info = linked_file(&dir, "tablet", "INFO", pid);
    let text = std::fs::read_to_string(&info).expect("INFO file");
    let header: Vec<&str> = text.lines().take(4).collect();
    assert!(header[0].starts_with("Log file created at: "), "{text}");
    assert!(header[1].starts_with("Running on machine: "), "{text}");
    assert!(header[2].starts_with("Running duration (h:mm:ss): "), "{text}");
    assert_eq!(header[3], "Log line format: [IWEF]yyyymmdd hh:mm:ss.uuuuuu threadid file:line] msg");
    let started = format!("start tablet on endpoint {tablet} with version ");
    assert!(lines_with(&text, 'I').iter().any(|m| m.starts_with(&started)), "{text}");
    // `TabletImpl::Init` warns about the disk roots it was not given
    // (`src/tablet/tablet_impl.cc:258,267`); nothing else is a warning.
    let warning = std::fs::read_to_string(linked_file(&dir, "tablet", "WARNING", pid)).expect("WARNING file");
    assert_eq!(lines_with(&warning, 'W'), vec!["ssd_root_path is not set", "hdd_root_path is not set"], "{warning}");
    assert!(cluster.procs[&tablet].log_text().contains(&started), "stderr keeps its line");

    let endpoint = format!("127.0.0.1:{}", free_port());
    let process = cluster.spawn("nameserver", &endpoint, &["--system_table_replica_num=2"]);
    let status = process.child.wait().expect("nameserver exits");
    assert_eq!(status.code(), Some(1));
    let pid = process.child.id();
    assert!(process.log_text().ends_with("openmldb: tablet num 1 is less then system table replica num 2\n"));
    let dir = cluster.glog_dir(&endpoint);
    let reason = "tablet num 1 is less then system table replica num 2";
    let info = std::fs::read_to_string(linked_file(&dir, "nameserver", "INFO", pid)).expect("INFO");
    assert!(lines_with(&info, 'I').iter().any(|m| m.starts_with("start nameserver on endpoint")), "{info}");
    assert_eq!(lines_with(&info, 'E').last(), Some(&reason), "{info}");
    let warning = std::fs::read_to_string(linked_file(&dir, "nameserver", "WARNING", pid)).expect("WARNING");
    assert_eq!(lines_with(&warning, 'E'), vec![reason], "{warning}");
    assert!(lines_with(&warning, 'I').is_empty(), "{warning}");

    // A tablet given every root has nothing to warn about.
    let ssd = format!("--ssd_root_path={}", cluster.path().join("ssd").display());
    let hdd = format!("--hdd_root_path={}", cluster.path().join("hdd").display());
    let recycle_ssd = format!("--recycle_bin_ssd_root_path={}", cluster.path().join("recycle_ssd").display());
    let recycle_hdd = format!("--recycle_bin_hdd_root_path={}", cluster.path().join("recycle_hdd").display());
    let both = cluster.start_tablet(&[&ssd, &hdd, &recycle_ssd, &recycle_hdd]).await;
    let both_dir = cluster.glog_dir(&both);
    assert!(both_dir.join("tablet.INFO").exists() && !both_dir.join("tablet.WARNING").exists(), "no warning, no file");
}

/// An install root laid out like a release: `bin/openmldb` (the simulator), `conf/<role>.flags`.
fn install(root: &Path, role: &str, flags: &str) -> PathBuf {
    let bin = root.join("bin");
    std::fs::create_dir_all(&bin).expect("bin");
    std::fs::create_dir_all(root.join("conf")).expect("conf");
    let binary = bin.join("openmldb");
    if std::fs::hard_link(SIM, &binary).is_err() {
        std::fs::copy(SIM, &binary).expect("copy the simulator");
    }
    std::fs::write(root.join(format!("conf/{role}.flags")), flags).expect("flags");
    binary
}

/// Runs `bin/openmldb --flagfile=./conf/<role>.flags` from the install root, as start.sh
/// does, and returns its exit code and stderr.
fn run_from_root(root: &Path, role: &str) -> (Option<i32>, String) {
    let output = Command::new(root.join("bin/openmldb"))
        .current_dir(root)
        .args([format!("--flagfile=./conf/{role}.flags"), "--enable_status_service=true".to_string()])
        .stdin(Stdio::null())
        .output()
        .expect("run openmldb");
    (output.status.code(), String::from_utf8_lossy(&output.stderr).to_string())
}

/// glog_wrapper.h + openmldb.cc: start failures are in the INFO log before the exit. A
/// `--broken` release's reason is an `F` line (default `--openmldb_log_dir`, `./logs` under
/// the working directory); an endpoint that cannot be bound logs `Fail to start server` at
/// WARNING; an empty `--openmldb_log_dir` writes no files.
#[test]
fn glog_wrapper_h_start_failures_are_in_the_info_log() {
    let tmp = tempfile::tempdir().expect("tempdir");

    let broken = tmp.path().join("broken");
    install(&broken, "apiserver", "--role=apiserver\n--endpoint=127.0.0.1:1\n--zk_cluster=127.0.0.1:1\n");
    let reason = "sandbox release 0.9.4 was built with --broken";
    std::fs::write(broken.join("bin/openmldb.broken"), format!("{reason}\n")).expect("broken marker");
    let (code, stderr) = run_from_root(&broken, "apiserver");
    assert_eq!(code, Some(1));
    assert_eq!(stderr, format!("openmldb: fatal: {reason}\n"), "stderr unchanged");
    let logs = broken.join("logs");
    let link = std::fs::read_link(logs.join("apiserver.INFO")).expect("apiserver.INFO");
    let info = std::fs::read_to_string(logs.join(&link)).expect("INFO file");
    assert_eq!(lines_with(&info, 'F'), vec![reason], "{info}");
    let warning = std::fs::read_to_string(logs.join("apiserver.WARNING")).expect("WARNING file");
    assert_eq!(lines_with(&warning, 'F'), vec![reason], "{warning}");

    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let endpoint = taken.local_addr().expect("addr").to_string();
    let busy = tmp.path().join("busy");
    let flags = format!(
        "--role=tablet\n--endpoint={endpoint}\n--zk_cluster=127.0.0.1:1\n--openmldb_log_dir=./logs\n--db_root_path=./db\n--recycle_bin_root_path=./recycle\n"
    );
    install(&busy, "tablet", &flags);
    let (code, stderr) = run_from_root(&busy, "tablet");
    assert_eq!(code, Some(1));
    assert!(stderr.starts_with(&format!("openmldb: cannot listen on {endpoint}: ")), "{stderr}");
    let info = std::fs::read_to_string(busy.join("logs/tablet.INFO")).expect("INFO");
    let warnings = lines_with(&info, 'W');
    assert_eq!(warnings.len(), 2, "{info}");
    assert!(warnings[0].starts_with(&format!("cannot listen on {endpoint}: ")), "{info}");
    assert_eq!(warnings[1], "Fail to start server");
    let warning = std::fs::read_to_string(busy.join("logs/tablet.WARNING")).expect("WARNING");
    assert_eq!(lines_with(&warning, 'W'), warnings);
    drop(taken);

    let quiet = tmp.path().join("quiet");
    let flags = format!("--role=tablet\n--endpoint={endpoint}\n--zk_cluster=127.0.0.1:1\n--openmldb_log_dir=\n");
    install(&quiet, "tablet", &flags);
    std::fs::write(quiet.join("bin/openmldb.broken"), format!("{reason}\n")).expect("broken marker");
    let (code, _) = run_from_root(&quiet, "tablet");
    assert_eq!(code, Some(1));
    let entries: Vec<String> = std::fs::read_dir(&quiet)
        .expect("root")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into())
        .collect();
    assert!(!entries.iter().any(|e| e == "logs"), "empty --openmldb_log_dir: stderr only, {entries:?}");
}

/// openmldb.cc `StartAPIServer`: an APIServer that cannot reach ZooKeeper logs why and
/// `Fail to init` before it exits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openmldb_cc_apiserver_without_zookeeper_logs_fail_to_init() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path().join("api");
    let dead_zk = format!("127.0.0.1:{}", free_port());
    let endpoint = format!("127.0.0.1:{}", free_port());
    install(&root, "apiserver", &format!("--role=apiserver\n--endpoint={endpoint}\n--zk_cluster={dead_zk}\n"));
    let (code, stderr) = tokio::task::spawn_blocking(move || run_from_root(&root, "apiserver")).await.expect("join");
    assert_eq!(code, Some(1), "{stderr}");
    let root = tmp.path().join("api");
    let info = wait_for("INFO log", Duration::from_secs(1), || async {
        std::fs::read_to_string(root.join("logs/apiserver.INFO")).ok()
    })
    .await;
    let warnings = lines_with(&info, 'W');
    assert_eq!(warnings.last(), Some(&"Fail to init"), "{info}");
    assert!(warnings.iter().any(|w| w.starts_with(&format!("cannot connect to ZooKeeper {dead_zk}"))), "{info}");
}
