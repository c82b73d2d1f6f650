//! The TaskManager: `FailoverWatcher.java` / `TaskManagerServer.java` / `TaskManagerConfig.java`
//! (leader node value, binding, standby), the properties copy it reads, and its log4j log
//! (`java/openmldb-taskmanager/src/main/resources/log4j.properties`).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{free_port, wait_for, SimCluster, SimProcess, SIM};

const VERSION: &str = "0.9.3-c5ffa75";

/// `<dir>/taskmanager/{bin,conf,lib}` with `taskmanager.properties`, the version and batch-job jars, and a
/// Spark home; returns `taskmanager/bin`.
fn install(dir: &Path, properties: &str) -> PathBuf {
    let tm = dir.join("taskmanager");
    for sub in ["bin", "conf", "lib"] {
        std::fs::create_dir_all(tm.join(sub)).expect("mkdir");
    }
    std::fs::write(tm.join("lib/openmldb-taskmanager-0.9.3.jar"), format!("{VERSION}\n")).expect("jar");
    // What an empty batchjob.jar.path is filled in with (BatchJobUtil.findLocalBatchJobJar).
    std::fs::write(tm.join("lib/openmldb-batchjob-0.9.3.jar"), format!("{VERSION}\n")).expect("batchjob jar");
    std::fs::create_dir_all(dir.join("spark/jars")).expect("spark");
    std::fs::write(dir.join("spark/jars/openmldb-batch-0.9.3.jar"), format!("{VERSION}\n")).expect("batch jar");
    let properties = format!("{properties}\nspark.home={}\n", dir.join("spark").display());
    std::fs::write(tm.join("conf/taskmanager.properties"), properties).expect("properties");
    tm.join("bin")
}

/// Runs `binary --role=taskmanager` in `bin` like taskmanager.sh, stdout and stderr to `out`
/// (truncated, as start.sh's `>` does).
fn spawn(binary: &Path, bin: &Path, out: &Path) -> SimProcess {
    std::fs::create_dir_all(out.parent().expect("parent")).expect("mkdir");
    let file = File::create(out).expect("out");
    let child = Command::new(binary)
        .arg("--role=taskmanager")
        .current_dir(bin)
        .env_remove("SPARK_HOME")
        .stdin(Stdio::null())
        .stdout(file.try_clone().expect("dup"))
        .stderr(file)
        .spawn()
        .expect("spawn the TaskManager");
    SimProcess { child, log: out.to_path_buf() }
}

fn log_of(bin: &Path) -> String {
    std::fs::read_to_string(bin.join("logs/taskmanager.log")).unwrap_or_default()
}

/// `%d %p [%c] - %m`: returns (level, category, message) of a log4j line.
fn log4j_line(line: &str) -> Option<(&str, &str, &str)> {
    let (date, rest) = line.split_at_checked(23)?;
    let shape = date.chars().enumerate().all(|(i, c)| match i {
        4 | 7 => c == '-',
        10 => c == ' ',
        13 | 16 => c == ':',
        19 => c == ',',
        _ => c.is_ascii_digit(),
    });
    let (level, rest) = rest.strip_prefix(' ')?.split_once(" [")?;
    let (category, message) = rest.split_once("] - ")?;
    (shape && ["INFO", "WARN", "ERROR", "FATAL"].contains(&level)).then_some((level, category, message))
}

fn has_line(log: &str, level: &str, class: &str, message: &str) -> bool {
    let category = format!("com._4paradigm.openmldb.taskmanager.{class}");
    log.lines().filter_map(log4j_line).any(|(l, c, m)| l == level && c == category && m == message)
}

async fn get_version(http: reqwest::Client, address: String) -> Option<serde_json::Value> {
    let url = format!("http://{address}/openmldb.taskmanager.TaskManagerServer/GetVersion");
    http.post(url).body("{}").send().await.ok()?.json().await.ok()
}

fn refused(address: &str) -> bool {
    matches!(std::net::TcpStream::connect(address), Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused)
}

/// FailoverWatcher.java + TaskManagerServer.java: the leader node holds
/// `server.host:server.port` verbatim (`0.0.0.0:<port>` with the template's host); the RPC
/// port is bound on every interface whatever `server.host` is (`new RpcServer(port, ...)`); a
/// standby logs who is active and does not listen until the node goes. log4j.properties: both
/// log to `taskmanager/bin/logs/taskmanager.log` in `%d %p [%c] - %m%n`, with a console copy
/// on stdout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn taskmanager_server_java_leader_value_binding_and_standby() {
    let cluster = SimCluster::new("/tm_failover");
    let zk = cluster.zk_cluster();
    let base = format!("zookeeper.cluster={zk}\nzookeeper.root_path=/tm_failover\njob.log.path=./logs/\n");
    let (port_a, port_b) = (free_port(), free_port());
    let bin_a = install(&cluster.path().join("a"), &format!("server.host=0.0.0.0\nserver.port={port_a}\n{base}"));
    let out_a = cluster.path().join("a-stdout.log");
    let mut a = spawn(Path::new(SIM), &bin_a, &out_a);
    let client = cluster.zk_client().await;
    let leader = "/tm_failover/taskmanager/leader";
    let value = wait_for("TaskManager A leads", Duration::from_secs(15), || async {
        client.get_data(leader).await.ok().map(|(data, _)| String::from_utf8_lossy(&data).to_string())
    })
    .await;
    assert_eq!(value, format!("0.0.0.0:{port_a}"));
    let http = cluster.http.clone();
    let reply = wait_for("A answers on 127.0.0.1", Duration::from_secs(10), || {
        get_version(http.clone(), format!("127.0.0.1:{port_a}"))
    })
    .await;
    assert_eq!(reply["taskmanagerVersion"], VERSION);
    assert_eq!(reply["batchVersion"], VERSION);
    assert!(get_version(http.clone(), format!("127.0.0.2:{port_a}")).await.is_some(), "0.0.0.0: every interface");

    let log_a = log_of(&bin_a);
    let first = log_a.lines().next().expect("a first line");
    assert!(log4j_line(first).is_some(), "not log4j's layout: {first}");
    let udf = "The external function dir does not exist, try to create directory: ./udf/";
    assert!(has_line(&log_a, "INFO", "config.TaskManagerConfig", udf), "{log_a}");
    assert!(bin_a.join("udf").is_dir(), "created under taskmanager/bin like the real one");
    assert!(has_line(&log_a, "INFO", "config.TaskManagerConfig", "Final TaskManager config: "), "{log_a}");
    assert!(log_a.contains("\nserver.host = 0.0.0.0\n") && log_a.contains(&format!("\nserver.port = {port_a}\n")));
    for (class, message) in [
        ("server.TaskManagerServer", "The server runs and prepares for leader election".to_string()),
        ("zk.FailoverWatcher", format!("Become active master in 0.0.0.0:{port_a}")),
        ("server.TaskManagerServer", "The server becomes active master and prepare to do business logic".into()),
        ("server.TaskManagerServer", format!("Start TaskManager on {port_a} with worker thread number 16")),
    ] {
        assert!(has_line(&log_a, "INFO", class, &message), "missing {message:?} in\n{log_a}");
    }
    assert_eq!(std::fs::read_to_string(&out_a).expect("stdout"), log_a, "the console copy is the same lines");

    // A standby with a specific host: waits, not listening, until the node goes.
    let bin_b = install(&cluster.path().join("b"), &format!("server.host=127.0.0.1\nserver.port={port_b}\n{base}"));
    let _b = spawn(Path::new(SIM), &bin_b, &cluster.path().join("b-stdout.log"));
    let waiting =
        format!("Another master 0.0.0.0:{port_a} is the active master, 127.0.0.1:{port_b}; waiting to become the next active master");
    wait_for("B waits as a standby", Duration::from_secs(15), || async {
        has_line(&log_of(&bin_b), "INFO", "zk.FailoverWatcher", &waiting).then_some(())
    })
    .await;
    assert!(refused(&format!("127.0.0.1:{port_b}")), "a standby does not listen");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(refused(&format!("127.0.0.1:{port_b}")), "still not listening");

    // A dies; its node goes when its session ends (deleted here rather than waited for).
    let _ = a.child.kill();
    let _ = a.child.wait();
    client.delete(leader, None).await.expect("delete the dead leader's node");
    let value = wait_for("B leads", Duration::from_secs(15), || async {
        client.get_data(leader).await.ok().map(|(data, _)| String::from_utf8_lossy(&data).to_string())
    })
    .await;
    assert_eq!(value, format!("127.0.0.1:{port_b}"));
    wait_for("B answers", Duration::from_secs(10), || get_version(http.clone(), format!("127.0.0.1:{port_b}"))).await;
    assert!(
        get_version(http.clone(), format!("127.0.0.2:{port_b}")).await.is_some(),
        "server.host=127.0.0.1 still binds every interface"
    );
}

/// start.sh copies `conf/taskmanager.properties` to `taskmanager/conf/`, which is what the
/// TaskManager reads (TaskManagerConfig.java, class path): deploy.sh's `# key=value` lines are
/// ignored and later keys win, and a missing `server.host` means `0.0.0.0`. With stdout sent to
/// the log file itself (start.sh's `> ./logs/taskmanager.log` from `taskmanager/bin`) each
/// line is there once. FailoverWatcher.java: restarted before its old session ended, it finds
/// its own `host:port` in the node, deletes it and leads at once. A bad config, a missing
/// batch-job jar (BatchJobUtil.scala) and a broken build end the start with
/// `Fail to start TaskManager` and the reason in the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn taskmanager_config_java_properties_copy_restart_and_failures() {
    let cluster = SimCluster::new("/tm_config");
    let zk = cluster.zk_cluster();
    let port = free_port();
    let root = cluster.path().join("install");
    let properties = format!(
        "# taskmanager\n# server.host=127.0.0.9\nserver.port=9902\njob.log.path=./logs/\n\
         zookeeper.cluster=127.0.0.1:2181\nzookeeper.root_path=/openmldb\nzookeeper.session_timeout=20000\n\
         # server.port=9902\nserver.port={port}\n# zookeeper.cluster=127.0.0.1:2181\nzookeeper.cluster={zk}\n\
         # zookeeper.root_path=/openmldb\nzookeeper.root_path=/tm_config\n"
    );
    let bin = install(&root, &properties);
    // The install's own conf/ is not what the TaskManager reads.
    std::fs::create_dir_all(root.join("conf")).expect("conf");
    std::fs::write(root.join("conf/taskmanager.properties"), "server.port=1\n").expect("root conf");
    let log = bin.join("logs/taskmanager.log");
    let mut first = spawn(Path::new(SIM), &bin, &log);
    let client = cluster.zk_client().await;
    let leader = "/tm_config/taskmanager/leader";
    let owner = wait_for("the TaskManager leads", Duration::from_secs(15), || async {
        let (data, stat) = client.get_data(leader).await.ok()?;
        (String::from_utf8_lossy(&data) == format!("0.0.0.0:{port}")).then_some(stat.ephemeral_owner)
    })
    .await;
    let http = cluster.http.clone();
    wait_for("it answers", Duration::from_secs(10), || get_version(http.clone(), format!("127.0.0.1:{port}"))).await;
    let text = log_of(&bin);
    assert_eq!(text.matches("Become active master in").count(), 1, "one copy of each line:\n{text}");
    assert!(text.lines().all(|l| log4j_line(l).is_some() || !l.contains(" - ")), "{text}");

    // SIGTERM leaves the session (and the node) behind; the next process takes it over.
    first.terminate();
    assert!(client.get_data(leader).await.is_ok(), "the old node outlives the process");
    let restarted = Instant::now();
    let _second = spawn(Path::new(SIM), &bin, &log);
    wait_for("the restarted TaskManager leads", Duration::from_secs(10), || async {
        let (_, stat) = client.get_data(leader).await.ok()?;
        (stat.ephemeral_owner != owner).then_some(())
    })
    .await;
    assert!(restarted.elapsed() < Duration::from_secs(10), "well before the 20 s session timeout");
    wait_for("the restarted one answers", Duration::from_secs(10), || {
        get_version(http.clone(), format!("127.0.0.1:{port}"))
    })
    .await;
    let restart_message =
        format!("Current master has this master's address, 0.0.0.0:{port}; master was restarted? Deleting node.");
    assert!(has_line(&log_of(&bin), "INFO", "zk.FailoverWatcher", &restart_message), "{}", log_of(&bin));

    // A bad value: the exception under `Fail to start TaskManager`, and the process ends.
    let bad_bin = install(&cluster.path().join("bad"), &format!("zookeeper.cluster={zk}\nserver.port=99o2\n"));
    let mut bad = spawn(Path::new(SIM), &bad_bin, &bad_bin.join("logs/taskmanager.log"));
    assert!(!bad.child.wait().expect("exits").success());
    let text = log_of(&bad_bin);
    let fail = "ERROR [com._4paradigm.openmldb.taskmanager.server.TaskManagerServer] - Fail to start TaskManager\n\
                java.lang.NumberFormatException: For input string: \"99o2\"\n";
    assert!(text.ends_with(fail), "{text}");

    // No batch-job jar in ../lib and an empty batchjob.jar.path: BatchJobUtil.findLocalBatchJobJar
    // throws, and the start fails.
    let no_jar_bin = install(&cluster.path().join("nojar"), &format!("zookeeper.cluster={zk}\nbatchjob.jar.path=\n"));
    std::fs::remove_file(no_jar_bin.join("../lib/openmldb-batchjob-0.9.3.jar")).expect("remove the jar");
    let mut no_jar = spawn(Path::new(SIM), &no_jar_bin, &no_jar_bin.join("logs/taskmanager.log"));
    assert!(!no_jar.child.wait().expect("exits").success());
    let text = log_of(&no_jar_bin);
    assert!(
        text.ends_with("Fail to start TaskManager\njava.io.IOException: Fail to find default batch job jar\n"),
        "{text}"
    );

    // A broken build: stderr's line, then the log's.
    let broken_bin = install(&cluster.path().join("broken"), &format!("zookeeper.cluster={zk}\n"));
    let binary = broken_bin.join("../lib/openmldb-taskmanager-sim");
    if std::fs::hard_link(SIM, &binary).is_err() {
        std::fs::copy(SIM, &binary).expect("copy the simulator");
    }
    let reason = "sandbox release 0.9.4 was built with --broken";
    std::fs::write(broken_bin.join("../lib/openmldb.broken"), format!("{reason}\n")).expect("marker");
    let mut broken = spawn(&binary, &broken_bin, &broken_bin.join("logs/taskmanager.log"));
    assert_eq!(broken.child.wait().expect("exits").code(), Some(1));
    let text = log_of(&broken_bin);
    assert!(text.starts_with(&format!("openmldb: fatal: {reason}\n")), "{text}");
    assert!(text.ends_with(&format!("] - Fail to start TaskManager\n{reason}\n")), "{text}");
    assert!(has_line(&text, "ERROR", "server.TaskManagerServer", "Fail to start TaskManager"), "{text}");
}
