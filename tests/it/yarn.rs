//! TaskManagers in YARN mode (stdlib/yarn.rhai) end to end, on sandboxes started with
//! `--spark-master yarn`: their batchjob.jar.path and spark.yarn.jars point into the sandbox's
//! stand-in HDFS (`<sandbox>/hdfs/bin/hdfs`, a script keeping "HDFS" in `<sandbox>/hdfs/root`,
//! see src/sandbox/hdfs.sh), where `sandbox up` uploaded the 0.9.2 jars.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use mldb_upgrade::cluster::component::properties;
use mldb_upgrade::sandbox::hdfs::Hdfs;

use crate::flow::{assert_safe_end_state, line, run_upgrade, state};
use crate::support::{self, Sandbox};

const BATCHJOB_DIR: &str = "hdfs://sandbox-nn:8020/openmldb/batchjob";
const SPARK_JARS: &str = "hdfs://sandbox-nn:8020/openmldb/spark/jars";

/// A one-tablet sandbox (its single-replica partitions wait out the restart) with a YARN
/// TaskManager.
fn yarn_sandbox() -> Sandbox {
    Sandbox::up(&["--tablets", "1", "--taskmanagers", "1", "--spark-master", "yarn"])
}

/// The TaskManager's install directory and host.
fn taskmanager(sb: &Sandbox) -> (PathBuf, String, String) {
    let state = mldb_upgrade::sandbox::load_state(&sb.dir).unwrap();
    let tm = state.components.iter().find(|c| c.role.as_str() == "taskmanager").unwrap();
    (tm.dir.clone(), tm.host.clone(), tm.endpoint.clone())
}

/// The TaskManager's conf/taskmanager.properties as it reads it.
fn props(dir: &Path) -> BTreeMap<String, String> {
    properties::parse(&std::fs::read_to_string(dir.join("conf/taskmanager.properties")).unwrap())
}

/// Name → content (binaries lossily) of the files in a directory.
fn files(dir: &Path) -> BTreeMap<String, String> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap())
        .map(|e| {
            let content = String::from_utf8_lossy(&std::fs::read(e.path()).unwrap()).into_owned();
            (e.file_name().to_string_lossy().into_owned(), content)
        })
        .collect()
}

/// With `--set hdfs=...`: the release's own batch-job jar is uploaded next to the old one and
/// batchjob.jar.path names it; the new Spark distribution's jars replace the old ones in the
/// spark.yarn.jars directory (the old openmldb-batch jar deleted); the TaskManager runs the new
/// version. The rollback puts batchjob.jar.path and the Spark jars on HDFS back.
#[test]
fn yarn_upgrade_with_an_hdfs_command_uploads_the_jars_and_the_rollback_puts_them_back() {
    let sb = yarn_sandbox();
    let hdfs = Hdfs::new(&sb.dir);
    let (tm_dir, _, _) = taskmanager(&sb);
    let rel = tempfile::tempdir().unwrap();
    let release = support::release(rel.path(), "0.9.3", &[]);
    let spark = rel.path().join("spark-3.2.1-bin-openmldbspark-0.9.3");
    let old_spark_jars = files(&hdfs.local(SPARK_JARS));
    assert!(old_spark_jars.contains_key("openmldb-batch-0.9.2.jar"), "{old_spark_jars:?}");
    let old_path = format!("{BATCHJOB_DIR}/openmldb-batchjob-0.9.2.jar");
    assert_eq!(props(&tm_dir)["batchjob.jar.path"], old_path);
    let before = state(&sb);

    let out = run_upgrade(
        &sb,
        release.to_str().unwrap(),
        &[
            "--set",
            &format!("spark_release={}", spark.display()),
            "--set",
            &format!("hdfs={}", hdfs.command()),
            "--set",
            "single_replica=allow_unavailable",
        ],
    );
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(!out.stdout.contains("ACTION NEEDED"), "{}", out.stdout);

    // The jar name is the release's own: the one batch-job jar in its taskmanager/lib.
    let lib = files(&release.join("taskmanager/lib"));
    let jars: Vec<&String> = lib.keys().filter(|n| n.starts_with("openmldb-batchjob")).collect();
    assert_eq!(jars.len(), 1, "{lib:?}");
    let new_path = format!("{BATCHJOB_DIR}/{}", jars[0]);
    let p = props(&tm_dir);
    assert_eq!(p["batchjob.jar.path"], new_path);
    assert_eq!(p["spark.yarn.jars"], format!("{SPARK_JARS}/*"), "spark.yarn.jars names the same directory");
    assert_eq!(std::fs::read_to_string(hdfs.local(&new_path)).unwrap(), lib[jars[0]], "the release's jar is there");
    assert!(hdfs.local(&old_path).exists(), "the old jar stays for a rollback");
    assert_eq!(files(&hdfs.local(SPARK_JARS)), files(&spark.join("jars")), "exactly the new distribution's jars");
    assert!(out.stdout.contains(&format!("set batchjob.jar.path={new_path} in ")), "{}", out.stdout);
    assert!(out.stdout.contains(&format!("{old_path} is left on HDFS")), "{}", out.stdout);
    assert!(out.stdout.contains("[\"openmldb-batch-0.9.2.jar\"]"), "says which old jars it deleted: {}", out.stdout);
    let after = state(&sb);
    assert_eq!(line(&after, "versions"), "versions [\"0.9.3\", \"0.9.3\", \"0.9.3\"]");
    assert_safe_end_state(&before, &after);

    let rollback = support::repo().join("scripts/rollback.rhai").display().to_string();
    let hdfs_setting = format!("hdfs={}", hdfs.command());
    let args = [
        "run",
        &rollback,
        "--cluster",
        &sb.cluster(),
        "--set",
        &hdfs_setting,
        "--set",
        "single_replica=allow_unavailable",
    ];
    let out = support::run(&args);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(props(&tm_dir)["batchjob.jar.path"], old_path, "{}", out.stdout);
    assert_eq!(files(&hdfs.local(SPARK_JARS)), old_spark_jars, "{}", out.stdout);
    let back = state(&sb);
    assert_eq!(line(&back, "versions"), line(&before, "versions"));
    assert_safe_end_state(&before, &back);
}

/// A typo in the hdfs command, and a release without exactly one batch-job jar, are refused
/// by the pre-flight checks: nothing changed, auto_failover on. Without an hdfs command the
/// upgrade runs, rewrites batchjob.jar.path, uploads nothing, and names every upload (host,
/// files, destination) as ACTION NEEDED, again at the end.
#[test]
fn yarn_bad_hdfs_command_or_release_is_refused_up_front_and_without_one_the_uploads_are_named() {
    let sb = yarn_sandbox();
    let hdfs = Hdfs::new(&sb.dir);
    let (tm_dir, tm_host, tm_ep) = taskmanager(&sb);
    let rel = tempfile::tempdir().unwrap();
    let release = support::release(rel.path(), "0.9.3", &[]);
    let spark = rel.path().join("spark-3.2.1-bin-openmldbspark-0.9.3");
    let spark_setting = format!("spark_release={}", spark.display());
    let hdfs_root_before = snapshot(&hdfs.root());
    let before = state(&sb);
    let unchanged = |what: &str| {
        let now = state(&sb);
        assert_eq!(line(&now, "versions"), line(&before, "versions"), "{what}");
        assert_eq!(line(&now, "auto_failover"), "auto_failover true", "{what}");
        assert_eq!(line(&now, "run"), "run ", "{what}");
        assert_eq!(snapshot(&hdfs.root()), hdfs_root_before, "{what}: HDFS changed");
        assert_eq!(props(&tm_dir)["batchjob.jar.path"], format!("{BATCHJOB_DIR}/openmldb-batchjob-0.9.2.jar"));
    };

    let typo = format!("hdfs={}", hdfs.command().replace("bin/hdfs", "bin/hdsf"));
    let single = "single_replica=allow_unavailable";
    let out = run_upgrade(&sb, release.to_str().unwrap(), &["--set", &spark_setting, "--set", &typo, "--set", single]);
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("pre-flight checks: FAILED"), "{}", out.stdout);
    for expected in [
        format!("the hdfs command does not work for taskmanager {tm_ep} (YARN mode)"),
        format!("failed on {tm_host} with exit code 127"),
        "bin/hdsf dfs -ls".to_string(),
        "Nothing has been changed.".to_string(),
    ] {
        assert!(out.stderr.contains(&expected), "{expected}: {}", out.stderr);
    }
    unchanged("after the typo");

    // Two batch-job jars: the TaskManager would take either (BatchJobUtil.scala), so which one
    // batchjob.jar.path should name is unknown.
    std::fs::write(release.join("taskmanager/lib/openmldb-batchjob-0.9.3-extra.jar"), "x").unwrap();
    let out = run_upgrade(&sb, release.to_str().unwrap(), &["--set", &spark_setting, "--set", single]);
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("must hold exactly one taskmanager/lib/openmldb-batchjob-*.jar")
            && out.stderr.contains("openmldb-batchjob-0.9.3-extra.jar, openmldb-batchjob-0.9.3.jar"),
        "{}",
        out.stderr
    );
    unchanged("after the release with two batch-job jars");
    std::fs::remove_file(release.join("taskmanager/lib/openmldb-batchjob-0.9.3-extra.jar")).unwrap();

    let out = run_upgrade(&sb, release.to_str().unwrap(), &["--set", &spark_setting, "--set", single]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let jar_line = format!(
        "ACTION NEEDED: taskmanager {tm_ep} (YARN): on {tm_host}, upload {jar} to {BATCHJOB_DIR}/openmldb-batchjob-0.9.3.jar \
         (e.g. hdfs dfs -put -f {jar} {BATCHJOB_DIR}/openmldb-batchjob-0.9.3.jar) before the next offline job: \
         batchjob.jar.path names it now.",
        jar = tm_dir.join("taskmanager/lib/openmldb-batchjob-0.9.3.jar").display(),
    );
    let jars = tm_dir.join("spark/jars").display().to_string();
    let spark_line = format!(
        "ACTION NEEDED: taskmanager {tm_ep} (YARN): on {tm_host}, upload every file of {jars}/ into {SPARK_JARS}/ \
         (e.g. hdfs dfs -put -f {jars}/* {SPARK_JARS}/), then delete from {SPARK_JARS}/ [\"openmldb-batch-0.9.2.jar\"], \
         before the next offline job: spark.yarn.jars ({SPARK_JARS}/*) loads every jar there."
    );
    for expected in [&jar_line, &spark_line] {
        assert_eq!(out.stdout.matches(expected.as_str()).count(), 1, "{expected}\n{}", out.stdout);
        let again = expected.replace("ACTION NEEDED: ", "  ");
        assert!(out.stdout.contains(&format!("\n{again}\n")), "repeated at the end: {}", out.stdout);
    }
    assert!(out.stdout.contains("ACTION NEEDED (2, also printed above as they came up):"), "{}", out.stdout);
    assert_eq!(snapshot(&hdfs.root()), hdfs_root_before, "nothing uploaded without an hdfs command");
    assert_eq!(props(&tm_dir)["batchjob.jar.path"], format!("{BATCHJOB_DIR}/openmldb-batchjob-0.9.3.jar"));
    let after = state(&sb);
    assert_eq!(line(&after, "versions"), "versions [\"0.9.3\", \"0.9.3\", \"0.9.3\"]");
    assert_safe_end_state(&before, &after);
}

/// Every file under `dir` with its content, by path.
fn snapshot(dir: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let rel = path.strip_prefix(dir).unwrap().display().to_string();
                out.insert(rel, std::fs::read_to_string(&path).unwrap());
            }
        }
    }
    out
}
