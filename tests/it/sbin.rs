//! The sandbox release's `sbin/`: stand-ins of OpenMLDB's deploy and start/stop scripts that lay a
//! cluster out from `conf/hosts` the way an operator does it (O§2.4, O§2.5).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use mldb_upgrade::sandbox::release::{place_spark_tgz, SPARK_DIST};

use crate::support;

const SCRIPTS: [&str; 17] = [
    "init.sh",
    "deploy-all.sh",
    "deploy.sh",
    "start-all.sh",
    "stop-all.sh",
    "start-tablets.sh",
    "stop-tablets.sh",
    "start-nameservers.sh",
    "stop-nameservers.sh",
    "start-apiservers.sh",
    "stop-apiservers.sh",
    "start-taskmanagers.sh",
    "stop-taskmanagers.sh",
    "start-zks.sh",
    "stop-zks.sh",
    "clear-all.sh",
    "openmldb-cli.sh",
];

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs `<release>/sbin/<script> args` from `cwd`, as an operator would, with the sandbox's waits
/// shrunk.
fn sbin(release: &Path, script: &str, args: &[&str], cwd: &Path, path: Option<&str>) -> Out {
    let mut cmd = Command::new(release.join("sbin").join(script));
    cmd.args(args).current_dir(cwd).env_remove("OPENMLDB_MODE").env("SANDBOX_SLEEP_SCALE", "0.01");
    if let Some(path) = path {
        cmd.env("PATH", path);
    }
    let out = cmd.output().unwrap();
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn read(path: impl AsRef<Path>) -> String {
    let path = path.as_ref();
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Edits `conf/openmldb-env.sh` the way its users do: replaces whole `export NAME=...` lines,
/// each of which must be there.
fn set_env(release: &Path, settings: &[(&str, &str)]) {
    let file = release.join("conf/openmldb-env.sh");
    let mut text = read(&file);
    for (name, value) in settings {
        let prefix = format!("export {name}=");
        let line = text.lines().find(|l| l.starts_with(&prefix)).unwrap_or_else(|| panic!("{name} in {text}"));
        text = text.replacen(line, &format!("{prefix}{value}"), 1);
    }
    std::fs::write(file, text).unwrap();
}

/// The value of the last uncommented `key=value` line: what the component reads.
fn active(text: &str, key: &str) -> Option<String> {
    text.lines().rev().find_map(|l| l.strip_prefix(&format!("{key}=")).map(str::to_string))
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

#[test]
fn sbin_scripts_are_shipped_executable_and_parse() {
    let tmp = tempfile::tempdir().unwrap();
    let release = support::release(tmp.path(), "0.9.3", &[]);
    assert_eq!(entries(&release.join("sbin")), {
        let mut s: Vec<String> = SCRIPTS.iter().map(|s| s.to_string()).collect();
        s.sort();
        s
    });
    for name in SCRIPTS {
        let path = release.join("sbin").join(name);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o755, "{name}");
        let text = read(&path);
        assert!(text.starts_with("#! /usr/bin/env bash\n"), "{name}");
        assert!(text.contains(&format!("the stand-in of OpenMLDB's\n# release/sbin/{name}")), "{name}");
        let check = Command::new("bash").arg("-n").arg(&path).output().unwrap();
        assert!(check.status.success(), "bash -n {name}: {}", String::from_utf8_lossy(&check.stderr));
    }
    // conf/openmldb-env.sh has the real file's variables in its order and carries the version.
    let env = read(release.join("conf/openmldb-env.sh"));
    let names: Vec<&str> =
        env.lines().filter_map(|l| l.strip_prefix("export ")).map(|l| l.split('=').next().unwrap()).collect();
    assert_eq!(
        names,
        [
            "OPENMLDB_VERSION",
            "OPENMLDB_MODE",
            "OPENMLDB_HOME",
            "SPARK_HOME",
            "RUNNER_EXISTING_SPARK_HOME",
            "OPENMLDB_USE_EXISTING_ZK_CLUSTER",
            "OPENMLDB_ZK_HOME",
            "OPENMLDB_ZK_CLUSTER",
            "OPENMLDB_ZK_ROOT_PATH",
            "OPENMLDB_FORCE_LOCAL",
            "RUNNER_JAVA_HOME",
            "CLEAR_OPENMLDB_INSTALL_DIR",
            "OPENMLDB_TABLET_PORT",
            "OPENMLDB_NAMESERVER_PORT",
            "OPENMLDB_TASKMANAGER_PORT",
            "OPENMLDB_APISERVER_PORT",
            "OPENMLDB_ZK_CLUSTER_CLIENT_PORT",
            "OPENMLDB_ZK_CLUSTER_PEER_PORT",
            "OPENMLDB_ZK_CLUSTER_ELECTION_PORT",
        ]
    );
    assert!(env.contains("\nexport OPENMLDB_VERSION=0.9.3\n"), "{env}");
    assert!(env.contains("\nexport OPENMLDB_MODE=${OPENMLDB_MODE:=cluster}\n"), "{env}");
    // The default inventory is the real one.
    let hosts = read(release.join("conf/hosts"));
    let lines: Vec<&str> = hosts.lines().filter(|l| !l.starts_with('#') && !l.is_empty()).collect();
    assert_eq!(
        lines,
        [
            "[tablet]",
            "localhost:10921 /tmp/openmldb/tablet-1",
            "localhost:10922 /tmp/openmldb/tablet-2",
            "[nameserver]",
            "localhost:7527",
            "[apiserver]",
            "localhost:9080",
            "[taskmanager]",
            "localhost:9902",
            "[zookeeper]",
            "localhost:2181:2888:3888 /tmp/openmldb/zk-1",
        ]
    );
}

#[test]
fn deploy_all_lays_the_cluster_out_from_conf_hosts_and_start_all_runs_each_start_sh_o2_4() {
    let tmp = tempfile::tempdir().unwrap();
    let release = support::release(tmp.path(), "0.9.3", &[]);
    let spark = tmp.path().join(format!("{SPARK_DIST}-0.9.3"));
    let tgz = place_spark_tgz(&release, &spark).unwrap();
    assert_eq!(tgz, release.join("spark-3.2.1-bin-openmldbspark.tgz"));

    let w = tmp.path().join("w");
    let (tablet1, tablet2, shared) = (w.join("tablet-1"), w.join("tablet-2"), w.join("shared"));
    std::fs::write(
        release.join("conf/hosts"),
        format!(
            "# the test's cluster\n[tablet]\n127.0.0.2:10931 {}\n127.0.0.3 {}\n\n[nameserver]\n127.0.0.4\n\
             127.0.0.5:17528 {}\n\n[apiserver]\n127.0.0.4\n\n[taskmanager]\n127.0.0.4:9902\n127.0.0.5:19903 {}\n\n\
             [zookeeper]\nlocalhost:2181:2888:3888 /tmp/openmldb/zk-1\n",
            tablet1.display(),
            tablet2.display(),
            shared.display(),
            shared.display()
        ),
    )
    .unwrap();
    set_env(
        &release,
        &[
            ("OPENMLDB_FORCE_LOCAL", "true"),
            ("OPENMLDB_USE_EXISTING_ZK_CLUSTER", "true"),
            ("OPENMLDB_ZK_CLUSTER", "127.0.0.1:21810,127.0.0.1:21811"),
            ("OPENMLDB_ZK_ROOT_PATH", "/sbin-test"),
        ],
    );

    let out = sbin(&release, "deploy-all.sh", &[], tmp.path(), None);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let home = release.display().to_string();
    assert!(out.stdout.contains(&format!("OPENMLDB_HOME={home}\n")), "{}", out.stdout);
    assert_eq!(out.stdout.matches(&format!("skip rsync as dest=src: {home}\n")).count(), 3, "{}", out.stdout);
    assert!(out.stdout.contains("Skip downloading openmldbspark as spark-3.2.1-bin-openmldbspark.tgz already exists"));

    // Tablets: copies of bin sbin conf udf, with their own flags.
    for (dir, endpoint) in [(&tablet1, "127.0.0.2:10931"), (&tablet2, "127.0.0.3:10921")] {
        assert_eq!(entries(dir), ["bin", "conf", "sbin", "udf"], "{}", dir.display());
        assert_eq!(read(dir.join("bin/start.sh")), read(release.join("bin/start.sh")));
        let flags = read(dir.join("conf/tablet.flags"));
        assert!(flags.starts_with("# This file is generated automatically from conf/tablet.flags.template\n\n"));
        assert!(
            flags.ends_with(&format!(
                "\n# below configs are generated automatically\n--zk_cluster=127.0.0.1:21810,127.0.0.1:21811\n\
                 --zk_root_path=/sbin-test\n--endpoint={endpoint}\n"
            )),
            "{flags}"
        );
    }

    // The release directory itself runs the nameserver, apiserver and taskmanager on 127.0.0.4.
    let ns = read(release.join("conf/nameserver.flags"));
    let commented = ns.find("\n# --endpoint=127.0.0.1:7527\n").expect(&ns);
    let appended = ns.find("\n--endpoint=127.0.0.4:7527\n").expect(&ns);
    assert!(commented < appended, "{ns}");
    assert!(ns.contains("\n# --zk_cluster=127.0.0.1:2181\n") && ns.contains("\n# --zk_root_path=/openmldb\n"));
    assert_eq!(active(&ns, "--zk_cluster").as_deref(), Some("127.0.0.1:21810,127.0.0.1:21811"));
    assert_eq!(active(&ns, "--zk_root_path").as_deref(), Some("/sbin-test"));
    assert_eq!(ns.lines().filter(|l| l.starts_with("--endpoint=")).count(), 1, "{ns}");
    let api = read(release.join("conf/apiserver.flags"));
    assert_eq!(active(&api, "--endpoint").as_deref(), Some("127.0.0.4:9080"));
    let spark_home = release.join("spark");
    let tm = read(release.join("conf/taskmanager.properties"));
    assert!(tm.contains("\n# server.host=0.0.0.0\n") && tm.contains("\n# spark.home=\n"), "{tm}");
    assert_eq!(active(&tm, "server.host").as_deref(), Some("127.0.0.4"));
    assert_eq!(active(&tm, "server.port").as_deref(), Some("9902"));
    assert_eq!(active(&tm, "spark.home"), Some(spark_home.display().to_string()));
    assert_eq!(active(&tm, "zookeeper.cluster").as_deref(), Some("127.0.0.1:21810,127.0.0.1:21811"));
    assert_eq!(active(&tm, "zookeeper.root_path").as_deref(), Some("/sbin-test"));

    // $OPENMLDB_HOME/spark: a symlink to the tarball unpacked in the release directory.
    let unpacked = release.join(SPARK_DIST);
    assert_eq!(std::fs::read_link(&spark_home).unwrap(), unpacked);
    assert!(spark_home.join("jars/openmldb-batch-0.9.3.jar").is_file());

    // The shared WORKDIR got bin sbin conf udf for its nameserver and taskmanager/ for its
    // taskmanager.
    assert_eq!(entries(&shared), ["bin", "conf", "sbin", "taskmanager", "udf"]);
    let shared_tm = read(shared.join("conf/taskmanager.properties"));
    assert_eq!(active(&shared_tm, "server.host").as_deref(), Some("127.0.0.5"));
    assert_eq!(active(&shared_tm, "server.port").as_deref(), Some("19903"));
    assert_eq!(active(&shared_tm, "spark.home"), Some(spark_home.display().to_string()));
    // As with the real scripts: the taskmanager's rsync of conf/ (after the nameservers were
    // configured) copies the release directory's nameserver.flags over the shared WORKDIR's,
    // whenever the two differ in size or in mtime second (here in size: 7527 vs 17528). The second
    // nameserver then claims the first one's endpoint. Whoever shares a WORKDIR between roles
    // while another instance runs from the release directory inherits this.
    let shared_ns = read(shared.join("conf/nameserver.flags"));
    assert_eq!(active(&shared_ns, "--endpoint").as_deref(), Some("127.0.0.4:7527"), "{shared_ns}");

    // start-all.sh / stop-all.sh run every instance's bin/start.sh in its WORKDIR in the real
    // order, passing `mon` through; a stand-in start.sh records the calls.
    let calls = tmp.path().join("calls");
    let recorder = format!("#!/bin/sh\necho \"$(pwd) $*\" >> {}\n", calls.display());
    for dir in [&release, &tablet1, &tablet2, &shared] {
        std::fs::write(dir.join("bin/start.sh"), &recorder).unwrap();
    }
    let out = sbin(&release, "start-all.sh", &["mon"], tmp.path(), None);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("Recovering data failed. Pls check log in logs/recover.log"), "{}", out.stdout);
    assert!(out.stdout.ends_with("OpenMLDB start success\n"), "{}", out.stdout);
    let out = sbin(&release, "stop-all.sh", &["ignored"], tmp.path(), None);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.ends_with("OpenMLDB stopped\n"), "{}", out.stdout);
    let (r, t1, t2, s) = (home.as_str(), tablet1.display(), tablet2.display(), shared.display());
    let expected = [
        format!("{t1} start tablet mon"),
        format!("{t2} start tablet mon"),
        format!("{r} start nameserver mon"),
        format!("{s} start nameserver mon"),
        format!("{r} start apiserver mon"),
        format!("{r} start taskmanager mon"),
        format!("{s} start taskmanager mon"),
        format!("{r} stop apiserver"),
        format!("{r} stop taskmanager"),
        format!("{s} stop taskmanager"),
        format!("{r} stop nameserver"),
        format!("{s} stop nameserver"),
        format!("{t1} stop tablet"),
        format!("{t2} stop tablet"),
    ];
    assert_eq!(read(&calls).lines().collect::<Vec<_>>(), expected);
}

#[test]
fn deploy_all_without_the_spark_tarball_stops_instead_of_downloading() {
    let tmp = tempfile::tempdir().unwrap();
    let release = support::release(tmp.path(), "0.9.3", &[]);
    let tablet = tmp.path().join("w/tablet");
    std::fs::write(
        release.join("conf/hosts"),
        format!("[tablet]\n127.0.0.2 {}\n[taskmanager]\n127.0.0.4\n", tablet.display()),
    )
    .unwrap();
    set_env(&release, &[("OPENMLDB_FORCE_LOCAL", "true"), ("OPENMLDB_USE_EXISTING_ZK_CLUSTER", "true")]);
    // A curl that records being called: the stand-in must not call it.
    let fake_bin = tmp.path().join("fake-bin");
    std::fs::create_dir_all(&fake_bin).unwrap();
    let curl_called = tmp.path().join("curl-called");
    std::fs::write(fake_bin.join("curl"), format!("#!/bin/sh\ntouch {}\nexit 1\n", curl_called.display())).unwrap();
    std::fs::set_permissions(fake_bin.join("curl"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", fake_bin.display(), std::env::var("PATH").unwrap());

    let out = sbin(&release, "deploy-all.sh", &[], tmp.path(), Some(&path));
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains(&format!("{}/spark-3.2.1-bin-openmldbspark.tgz is missing", release.display()))
            && out.stderr.contains("no network")
            && out.stderr.contains("https://github.com/4paradigm/spark/releases/download/v3.2.1-openmldb0.9.3/"),
        "{}",
        out.stderr
    );
    assert!(!curl_called.exists());
    assert!(std::fs::symlink_metadata(release.join("spark")).is_err(), "no SPARK_HOME link");
    assert!(!release.join("conf/taskmanager.properties").exists());
    // What came before the taskmanagers stays deployed, as in the real script.
    assert!(tablet.join("conf/tablet.flags").is_file());
}

#[test]
fn deploy_all_deploys_zookeeper_from_an_existing_zk_home_and_start_zks_runs_it() {
    let tmp = tempfile::tempdir().unwrap();
    let release = support::release(tmp.path(), "0.9.3", &[]);
    let (zk1, zk2, tablet) = (tmp.path().join("w/zk-1"), tmp.path().join("w/zk-2"), tmp.path().join("w/tablet"));
    std::fs::write(
        release.join("conf/hosts"),
        format!(
            "[tablet]\n127.0.0.2 {}\n[zookeeper]\n127.0.0.1:2181:2888:3888 {}\n127.0.0.1:2182:2889:3889 {}\n",
            tablet.display(),
            zk1.display(),
            zk2.display()
        ),
    )
    .unwrap();
    set_env(&release, &[("OPENMLDB_FORCE_LOCAL", "true")]);

    // No $OPENMLDB_ZK_HOME and no zookeeper-3.4.14.tar.gz: nothing to deploy it from.
    let out = sbin(&release, "deploy-all.sh", &[], tmp.path(), None);
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("zookeeper-3.4.14.tar.gz is missing"), "{}", out.stderr);

    // A ZooKeeper home at the default $OPENMLDB_HOME/zookeeper, with a zkServer.sh that says
    // what it was asked.
    let zk_home = release.join("zookeeper");
    std::fs::create_dir_all(zk_home.join("bin")).unwrap();
    std::fs::create_dir_all(zk_home.join("conf")).unwrap();
    std::fs::write(zk_home.join("bin/zkServer.sh"), "#!/bin/sh\necho \"zkServer.sh $* in $(pwd)\"\n").unwrap();
    std::fs::set_permissions(zk_home.join("bin/zkServer.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(zk_home.join("conf/zoo_sample.cfg"), "tickTime=2000\ndataDir=/tmp/zookeeper\nclientPort=2181\n")
        .unwrap();
    let out = sbin(&release, "deploy-all.sh", &[], tmp.path(), None);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    // OPENMLDB_ZK_CLUSTER came from the [zookeeper] entries.
    let flags = read(tablet.join("conf/tablet.flags"));
    assert_eq!(active(&flags, "--zk_cluster").as_deref(), Some("127.0.0.1:2181,127.0.0.1:2182"));
    let cfg = read(zk2.join("conf/zoo.cfg"));
    assert_eq!(
        cfg,
        format!(
            "# This file is generated automatically from conf/zoo_sample.cfg\n\ntickTime=2000\n# dataDir=/tmp/zookeeper\n\
             # clientPort=2181\n\n# below configs are generated automatically\nclientPort=2182\ndataDir={}/data\n\
             initLimit=5\nsyncLimit=2\nmaxClientCnxns=120\nserver.1=127.0.0.1:2888:3888\nserver.2=127.0.0.1:2889:3889\n",
            zk2.display()
        )
    );
    assert_eq!(read(zk1.join("data/myid")), "1\n");
    assert_eq!(read(zk2.join("data/myid")), "2\n");
    assert!(zk2.join("sbin/deploy.sh").is_file());

    let out = sbin(&release, "start-zks.sh", &[], tmp.path(), None);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    for zk in [&zk1, &zk2] {
        let z = zk.display();
        assert!(out.stdout.contains(&format!("zkServer.sh start {z}/conf/zoo.cfg in {z}\n")), "{}", out.stdout);
    }
    let out = sbin(&release, "stop-zks.sh", &[], tmp.path(), None);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains(&format!("zkServer.sh stop in {}\n", zk1.display())), "{}", out.stdout);
}
