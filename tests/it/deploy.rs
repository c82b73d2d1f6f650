//! Clusters laid out by OpenMLDB's own `sbin/deploy-all.sh` (`sandbox up --layout deploy`),
//! reached through a real sshd with the ssh2 transport, key authentication and strict host keys
//! (`--ssh`): the nameserver, apiserver and taskmanager of the first service host share
//! `$OPENMLDB_HOME` (O§2.2), and the first TaskManager serves on 0.0.0.0.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::flow::{assert_safe_end_state, kill_upgrade_at, line, run_upgrade, spawn_upgrade, state};
use crate::support::{self, Sandbox};

/// A deploy-layout sandbox over ssh with `tablets` tablets, 2 nameservers, 1 apiserver and 2
/// taskmanagers.
pub fn deploy_sandbox(tablets: &str) -> Sandbox {
    Sandbox::up_exactly(&[
        "--layout",
        "deploy",
        "--ssh",
        "--tablets",
        tablets,
        "--nameservers",
        "2",
        "--apiservers",
        "1",
        "--taskmanagers",
        "2",
    ])
}

/// `$OPENMLDB_HOME` of a deploy-layout sandbox.
fn home(sb: &Sandbox) -> PathBuf {
    mldb_upgrade::sandbox::load_state(&sb.dir).unwrap().home.expect("a deploy layout has a home")
}

/// The distinct hosts of the sandbox.
fn hosts(sb: &Sandbox) -> Vec<String> {
    let mut hosts: Vec<String> =
        mldb_upgrade::sandbox::load_state(&sb.dir).unwrap().components.iter().map(|c| c.host.clone()).collect();
    hosts.dedup();
    hosts
}

fn pid_in(file: &Path) -> Option<u32> {
    std::fs::read_to_string(file).ok()?.trim().parse().ok()
}

/// The config is the sandbox's conf/hosts import over ssh2: no component list, no local transport.
#[test]
fn the_deploy_layout_shares_openmldb_home_and_is_reached_over_ssh2() {
    let sb = deploy_sandbox("2");
    let config = std::fs::read_to_string(sb.cluster()).unwrap();
    assert!(config.contains(&format!("hosts = \"{}/conf/hosts\"", home(&sb).display())), "{config}");
    assert!(config.contains("transport = \"ssh2\"") && !config.contains("transport = \"local\""), "{config}");
    assert!(!config.contains("[[component]]"), "{config}");
    let hosts_file = std::fs::read_to_string(home(&sb).join("conf/hosts")).unwrap();
    let nameserver = hosts_file.lines().skip_while(|l| *l != "[nameserver]").nth(1).unwrap();
    assert!(!nameserver.contains(' '), "the first nameserver line has no WORKDIR: {hosts_file}");
    let spark = home(&sb).join("spark");
    assert!(std::fs::symlink_metadata(&spark).unwrap().file_type().is_symlink(), "{}", spark.display());
    // What scripts see: the shared directory and the active TaskManager behind 0.0.0.0.
    let out = sb.run(
        "for d in config::shared_dirs() { print(`shared ${d.dir}: ${d.components.len()}`); }\n\
         print(`active ${component::active_taskmanager()}`);\n\
         print(`leader node ${zk::get(\"taskmanager/leader\")}`);\n",
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains(&format!("shared {}: 3", home(&sb).display())), "{}", out.stdout);
    let state = mldb_upgrade::sandbox::load_state(&sb.dir).unwrap();
    let first_tm = state.components.iter().find(|c| c.role.as_str() == "taskmanager").unwrap();
    let port = first_tm.endpoint.rsplit(':').next().unwrap();
    assert!(out.stdout.contains(&format!("leader node 0.0.0.0:{port}")), "{}", out.stdout);
    assert!(out.stdout.contains(&format!("active {}", first_tm.endpoint)), "{}", out.stdout);

    // The plan names the shared directory before anything else.
    let rel = tempfile::tempdir().unwrap();
    let release = support::release(rel.path(), "0.9.3", &[]);
    let mut args = crate::flow::upgrade_args(&sb, release.to_str().unwrap());
    args[0] = "plan".into();
    let plan = support::run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(plan.code, 0, "{}\n{}", plan.stdout, plan.stderr);
    assert!(
        plan.stdout.contains(&format!("shared directory {}:{} (nameserver ", first_tm.host, home(&sb).display())),
        "{}",
        plan.stdout
    );
    assert!(plan.stdout.contains("is installed earlier in this plan: it would be left as it is"), "{}", plan.stdout);

    // Start and stop get what sbin/start-taskmanagers.sh gives bin/start.sh: SPARK_HOME from
    // conf/openmldb-env.sh's defaults (O§2.1).
    let tm = &first_tm.endpoint;
    let plan = sb.run_with(&format!("component::stop(\"{tm}\"); component::start(\"{tm}\");"), &["--dry-run"]);
    assert_eq!(plan.code, 0, "{}", plan.stderr);
    let spark_home = home(&sb).join("spark");
    assert!(
        plan.stdout.contains(&format!(
            "would run `cd {} && export SPARK_HOME=\"{}\" && bash bin/start.sh start taskmanager`",
            home(&sb).display(),
            spark_home.display()
        )),
        "{}",
        plan.stdout
    );

    // A new bin/ under a running sharer: it keeps running the binary it loaded, its pid file
    // stays, and the tool tells its running version from the installed one.
    let ns = state.components.iter().find(|c| c.role.as_str() == "nameserver").unwrap().endpoint.clone();
    let api = state.components.iter().find(|c| c.role.as_str() == "apiserver").unwrap().endpoint.clone();
    let script = format!(
        "component::stop(\"{ns}\");\ncomponent::install(\"{ns}\", \"{}\");\ncomponent::start(\"{ns}\");\n\
         let s = component::status(\"{api}\");\n\
         print(`api running ${{s.running}} runs ${{s.running_version}} installed ${{s.installed_version}} replaced ${{s.binary_replaced}}`);\n",
        release.display()
    );
    let out = sb.run(&script);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let line = out.stdout.lines().find(|l| l.starts_with("api running")).unwrap_or_default();
    assert!(line.starts_with("api running true runs 0.9.2-") && line.contains("installed 0.9.3-"), "{}", out.stdout);
    assert!(line.ends_with("replaced true"), "{}", out.stdout);
}

/// A→B under write load over ssh, then back: nothing acknowledged is lost, every component
/// reports B, leaders, replicas and auto_failover as before; the shared directory is installed
/// once and no running sharer loses its pid file; the release is uploaded once per host; the
/// rollback returns every component to A the same way.
#[test]
fn deploy_layout_upgrades_under_load_over_ssh_and_rolls_back() {
    let sb = deploy_sandbox("2");
    let rel = tempfile::tempdir().unwrap();
    let release = support::release(rel.path(), "0.9.3", &["--tar"]);
    let tarball = release.with_file_name("openmldb-0.9.3-linux.tar.gz");
    let spark = rel.path().join("spark-3.2.1-bin-openmldbspark-0.9.3.tgz");
    let before = state(&sb);
    assert!(line(&before, "versions").contains("\"0.9.2\""), "{before}");
    let load = sb.load(100);
    std::thread::sleep(Duration::from_secs(2));
    let out = run_upgrade(&sb, tarball.to_str().unwrap(), &["--set", &format!("spark_release={}", spark.display())]);
    let (summary, verified) = load.finish();
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    eprintln!("load: {summary}");
    assert!(verified["acknowledged"].as_u64().unwrap() > 1000, "{summary}");
    assert_eq!(verified["missing"], serde_json::json!([]), "acknowledged writes lost: {summary}");
    let after = state(&sb);
    assert_eq!(line(&after, "versions"), format!("versions {:?}", vec!["0.9.3"; 7]));
    assert_safe_end_state(&before, &after);

    // Uploaded once per host, never per component.
    let uploads: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.starts_with("uploading ") && l.contains("openmldb-0.9.3-linux.tar.gz"))
        .collect();
    let mut uploaded_to: Vec<&str> = uploads.iter().filter_map(|l| l.split(" to ").nth(1)?.split(':').next()).collect();
    uploaded_to.sort();
    let mut expected = hosts(&sb);
    expected.sort();
    assert_eq!(uploaded_to, expected, "{}", out.stdout);
    // The shared directory: installed with the nameserver, left alone for the others.
    let home = home(&sb);
    assert!(
        out.stdout.contains(&format!("bin/ in {} on ", home.display())) && out.stdout.contains("already holds 0.9.3-"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("shared directory 127.0.0."), "{}", out.stdout);
    // Every process running from it still has its pid file, and it is that process.
    for role in ["nameserver", "apiserver", "taskmanager"] {
        let pid = pid_in(&home.join(format!("bin/{role}.pid"))).unwrap_or_else(|| panic!("{role} lost its pid file"));
        assert!(mldb_upgrade::sandbox::is_running(pid), "{role} pid {pid}");
    }
    // The shared directory was backed up once, for all three.
    let backups: Vec<_> = std::fs::read_dir(home.join("backup")).unwrap().flatten().collect();
    assert_eq!(backups.len(), 1, "{backups:?}");
    assert!(backups[0].path().join("bin").is_dir() && backups[0].path().join("taskmanager").is_dir());
    // The staged copies are gone at the end.
    let staged: Vec<PathBuf> = std::fs::read_dir(sb.dir.join("hosts"))
        .unwrap()
        .flatten()
        .flat_map(|h| std::fs::read_dir(h.path().join("staging")).into_iter().flatten().flatten())
        .map(|e| e.path())
        .collect();
    assert!(staged.is_empty(), "{staged:?}");

    let rollback = crate::flow::run_rollback(&sb);
    assert_eq!(rollback.code, 0, "{}\n{}", rollback.stdout, rollback.stderr);
    assert!(rollback.stdout.contains("after rollback the cluster is healthy"), "{}", rollback.stdout);
    let back = state(&sb);
    assert_eq!(line(&back, "versions"), line(&before, "versions"));
    assert_safe_end_state(&before, &back);
    assert!(home.join("spark/jars/openmldb-batch-0.9.2.jar").exists(), "Spark was not put back");
    for role in ["nameserver", "apiserver", "taskmanager"] {
        let pid = pid_in(&home.join(format!("bin/{role}.pid"))).unwrap_or_else(|| panic!("{role} lost its pid file"));
        assert!(mldb_upgrade::sandbox::is_running(pid), "{role} pid {pid}");
    }
}

/// Over ssh: a run killed with kill -9 while a tablet is stopped is unwound by `abort`; the next
/// run is killed after a tablet's install and re-run, resuming without uploading again, to the
/// same end state as an uninterrupted run.
#[test]
fn deploy_layout_killed_runs_abort_and_resume_over_ssh() {
    let sb = deploy_sandbox("2");
    let rel = tempfile::tempdir().unwrap();
    let release = support::release(rel.path(), "0.9.3", &["--tar"]);
    let tarball = release.with_file_name("openmldb-0.9.3-linux.tar.gz");
    let tarball = tarball.to_str().unwrap();
    let before = state(&sb);
    let tablet = sb.tablet(1);

    kill_upgrade_at(&sb, tarball, &format!("tablet {tablet}: stop"), "done");
    let out = support::run(&["abort", "--cluster", &sb.cluster()]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains(&format!("starting tablet {tablet} on ")), "{}", out.stdout);
    assert_safe_end_state(&before, &state(&sb));

    let second = sb.tablet(2);
    let journal = sb.journal_file();
    let offset = std::fs::read_to_string(&journal).map(|t| t.len()).unwrap_or(0);
    let mut run = spawn_upgrade(&sb, tarball);
    run.wait_step(offset, &format!("tablet {second}: install bin"), "done", Duration::from_secs(400));
    run.kill();
    let last = run_upgrade(&sb, tarball, &[]);
    assert_eq!(last.code, 0, "{}\n{}", last.stdout, last.stderr);
    assert!(last.stdout.contains("resuming `upgrade to 0.9.3 from "), "{}", last.stdout);
    assert!(!last.stdout.contains("uploading "), "a resumed run uploads nothing: {}", last.stdout);
    assert!(last.stdout.contains("is already staged on "), "{}", last.stdout);
    let after = state(&sb);
    assert_eq!(line(&after, "versions"), format!("versions {:?}", vec!["0.9.3"; 7]));
    assert_safe_end_state(&before, &after);
}

/// A pid file pointing at an unrelated live process (a reused pid): stop and start never signal
/// it, say what they found, and move the stale file aside.
#[test]
fn a_stale_pid_file_pointing_at_an_unrelated_process_is_left_alone() {
    let sb = deploy_sandbox("2");
    let home = home(&sb);
    let state = mldb_upgrade::sandbox::load_state(&sb.dir).unwrap();
    let api = state.components.iter().find(|c| c.role.as_str() == "apiserver").unwrap().endpoint.clone();
    let stopped = sb.run(&format!("component::stop(\"{api}\");"));
    assert_eq!(stopped.code, 0, "{}", stopped.stderr);
    let mut unrelated = std::process::Command::new("sleep").arg("600").spawn().unwrap();
    let pid_file = home.join("bin/apiserver.pid");
    std::fs::write(&pid_file, format!("{}\n", unrelated.id())).unwrap();

    let status = sb.run(&format!(
        "let s = component::status(\"{api}\"); print(`running ${{s.running}}`); print(s.stale_pid_files);"
    ));
    assert_eq!(status.code, 0, "{}", status.stderr);
    assert!(status.stdout.contains("running false"), "{}", status.stdout);
    assert!(status.stdout.contains(&format!("pid {} (`sleep 600`", unrelated.id())), "{}", status.stdout);
    let stop = sb.run(&format!("component::stop(\"{api}\");"));
    assert_eq!(stop.code, 0, "{}", stop.stderr);
    assert!(stop.stdout.contains("which is not the apiserver but another process: left it alone"), "{}", stop.stdout);
    assert!(unrelated.try_wait().unwrap().is_none(), "the unrelated process was signalled");
    std::fs::write(&pid_file, format!("{}\n", unrelated.id())).unwrap();
    let start = sb.run(&format!("print(component::start(\"{api}\").version);"));
    assert_eq!(start.code, 0, "{}\n{}", start.stdout, start.stderr);
    assert!(start.stdout.contains("moved the stale pid file to bin/apiserver.pid.stale"), "{}", start.stdout);
    assert!(start.stdout.contains("0.9.2-"), "{}", start.stdout);
    assert!(unrelated.try_wait().unwrap().is_none(), "the unrelated process was signalled");
    let now = pid_in(&pid_file).unwrap();
    assert_ne!(now, unrelated.id(), "the apiserver's own pid is in its pid file again");
    unrelated.kill().unwrap();
    unrelated.wait().unwrap();
}

/// What a run checks before it changes anything, each a short error: a conf/hosts line under an
/// unknown role, an unreachable host, a host key that changed, an install directory without
/// bin/start.sh. The cluster is unchanged after each.
#[test]
fn deploy_layout_bad_input_is_refused_before_anything_changes() {
    let sb = deploy_sandbox("2");
    let rel = tempfile::tempdir().unwrap();
    let release = support::release(rel.path(), "0.9.3", &["--tar"]);
    let tarball = release.with_file_name("openmldb-0.9.3-linux.tar.gz").display().to_string();
    let before = state(&sb);
    let home = home(&sb);
    let hosts = std::fs::read_to_string(home.join("conf/hosts")).unwrap();
    let config = std::fs::read_to_string(sb.cluster()).unwrap();
    let scratch = sb.dir.join("bad");
    std::fs::create_dir_all(scratch.join("conf")).unwrap();
    std::fs::copy(home.join("conf/openmldb-env.sh"), scratch.join("conf/openmldb-env.sh")).unwrap();
    // A cluster config like the sandbox's, over a changed copy of conf/hosts (and known_hosts).
    let variant = |name: &str, hosts_text: &str, known_hosts: Option<&str>| -> String {
        std::fs::write(scratch.join("conf/hosts"), hosts_text).unwrap();
        let mut text = config
            .replace(&home.join("conf/hosts").display().to_string(), &scratch.join("conf/hosts").display().to_string());
        text = text.replacen("\nhosts = ", &format!("\nopenmldb_home = \"{}\"\nhosts = ", home.display()), 1);
        if let Some(kh) = known_hosts {
            let file = scratch.join("known_hosts");
            std::fs::write(&file, kh).unwrap();
            let state = mldb_upgrade::sandbox::load_state(&sb.dir).unwrap();
            text = text.replace(&state.sshd.unwrap().known_hosts.display().to_string(), &file.display().to_string());
        }
        support::write(&scratch, name, &text)
    };
    let upgrade = |cluster: &str| {
        support::run(&[
            "run",
            support::repo().join("scripts/upgrade.rhai").to_str().unwrap(),
            "--cluster",
            cluster,
            "--set",
            &format!("release={tarball}"),
        ])
    };
    let check = |what: &str, out: &support::Run, expected: &[&str]| {
        assert_ne!(out.code, 0, "{what}: {}", out.stdout);
        for e in expected {
            assert!(out.stderr.contains(e), "{what}: missing {e:?} in\n{}", out.stderr);
        }
        assert!(out.stderr.lines().count() <= 25, "{what}: more than a screen:\n{}", out.stderr);
        assert!(!out.stdout.contains(": stop ..."), "{what}: something was stopped\n{}", out.stdout);
    };

    let unknown_role = hosts.replace("[apiserver]", "[apiservers]");
    let out = upgrade(&variant("role.toml", &unknown_role, None));
    check("unknown role", &out, &["unknown section [apiservers]", "conf/hosts:"]);
    assert_eq!(out.code, 2);

    let unreachable = hosts.replacen("[tablet]\n", "[tablet]\n127.0.0.99:4000 /tmp/nowhere\n", 1);
    let out = upgrade(&variant("unreachable.toml", &unreachable, None));
    check("unreachable host", &out, &["cannot work on these hosts over ssh", "127.0.0.99"]);

    let state = mldb_upgrade::sandbox::load_state(&sb.dir).unwrap();
    let sshd = state.sshd.clone().unwrap();
    let other = scratch.join("other_key");
    let keygen = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&other)
        .status()
        .unwrap();
    assert!(keygen.success());
    let other_key: String = std::fs::read_to_string(other.with_extension("pub"))
        .unwrap()
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ");
    let kh = std::fs::read_to_string(&sshd.known_hosts).unwrap();
    let changed_host = &state.components[0].host;
    let changed: String = kh
        .lines()
        .map(|l| {
            if l.starts_with(&format!("[{changed_host}]:")) {
                format!("[{changed_host}]:{} {other_key}\n", sshd.port)
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    let out = upgrade(&variant("hostkey.toml", &hosts, Some(&changed)));
    check("changed host key", &out, &[changed_host, "HOST KEY CHANGED", "ssh-keygen -R"]);

    let empty = scratch.join("empty-workdir");
    std::fs::create_dir_all(&empty).unwrap();
    let tablet_dir = state.components[0].dir.display().to_string();
    let no_start_sh = hosts.replace(&tablet_dir, &empty.display().to_string());
    let out = upgrade(&variant("nostart.toml", &no_start_sh, None));
    check("no bin/start.sh", &out, &["has no bin/start.sh", &empty.display().to_string()]);

    let after = crate::flow::state(&sb);
    assert_eq!(line(&after, "versions"), line(&before, "versions"));
    assert_safe_end_state(&before, &after);
}

/// A tablet an earlier scale-in left behind: gone, shown `kOffline` by ShowTablet (C§3.4), not
/// in the cluster config, holding no replica. The pre-flight checks report it and go on.
#[test]
fn a_stale_offline_tablet_outside_the_config_is_reported_not_fatal() {
    let sb = Sandbox::up(&["--tablets", "2"]);
    let state = mldb_upgrade::sandbox::load_state(&sb.dir).unwrap();
    let tablet = state.components.iter().find(|c| c.role.as_str() == "tablet").unwrap();
    // A third tablet joins after the tables exist (so it holds nothing), then is scaled in.
    let extra = sb.dir.join("tablet-scaled-in");
    mldb_upgrade::sandbox::copy_tree(&tablet.dir.join("bin"), &extra.join("bin")).unwrap();
    mldb_upgrade::sandbox::copy_tree(&tablet.dir.join("conf"), &extra.join("conf")).unwrap();
    for pid_file in ["bin/tablet.pid", "bin/tablet.pid.child"] {
        let _ = std::fs::remove_file(extra.join(pid_file));
    }
    let listener = std::net::TcpListener::bind("127.0.0.50:0").unwrap();
    let endpoint = format!("127.0.0.50:{}", listener.local_addr().unwrap().port());
    drop(listener);
    let flags = extra.join("conf/tablet.flags");
    let text = std::fs::read_to_string(&flags).unwrap();
    // As sbin/deploy.sh sets a key: the old line commented out, the new one appended.
    let text = text.replace("\n--endpoint=", "\n# --endpoint=");
    std::fs::write(&flags, format!("{text}\n--endpoint={endpoint}\n")).unwrap();
    let start_sh = |op: &str| {
        let out = std::process::Command::new("bash")
            .arg("bin/start.sh")
            .args([op, "tablet"])
            .current_dir(&extra)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    start_sh("start");
    let shown = |wanted: &str| {
        let out = sb.run(&format!("print(ns::tablets().filter(|t| t.endpoint == \"{endpoint}\").map(|t| t.state));"));
        out.stdout.contains(wanted)
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !shown("kHealthy") {
        assert!(std::time::Instant::now() < deadline, "the extra tablet never registered");
        std::thread::sleep(Duration::from_millis(300));
    }
    start_sh("stop");
    while !shown("kOffline") {
        assert!(std::time::Instant::now() < deadline, "the extra tablet never went offline");
        std::thread::sleep(Duration::from_millis(300));
    }
    let check = sb.run("let v = upgrade::verify(0); print(`healthy ${v.healthy}`); print(`stale ${v.stale_tablets}`);");
    assert_eq!(check.code, 0, "{}", check.stderr);
    assert!(check.stdout.contains("healthy true"), "{}", check.stdout);
    assert!(check.stdout.contains(&format!("{endpoint} (kOffline)")), "{}", check.stdout);
    let rel = tempfile::tempdir().unwrap();
    let release = support::release(rel.path(), "0.9.3", &[]);
    let mut args = crate::flow::upgrade_args(&sb, release.to_str().unwrap());
    args[0] = "plan".into();
    let plan = support::run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(plan.code, 0, "{}\n{}", plan.stdout, plan.stderr);
    assert!(
        plan.stdout.contains(&format!(
            "note: the nameserver still lists tablet {endpoint} (kOffline), which is not in the cluster config"
        )),
        "{}",
        plan.stdout
    );
}
