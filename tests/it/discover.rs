//! `mldb-upgrade discover`: a cluster.toml from ZooKeeper and the processes on the hosts, that
//! names the same components as the sandbox's own and drives the stock upgrade; an unreachable
//! host is a clear error and nothing is written.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use mldb_upgrade::config::ClusterConfig;

use crate::flow::{assert_safe_end_state, line, state};
use crate::support::{self, Sandbox};

/// `(role, endpoint, host, dir, daemon)` of every component a config names.
fn components(path: &Path) -> BTreeSet<(String, String, String, String, bool)> {
    let config = ClusterConfig::load(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    config
        .components
        .iter()
        .map(|c| (c.role.to_string(), c.endpoint.to_string(), c.host.clone(), c.dir.clone(), c.daemon))
        .collect()
}

/// How many components of each role, and how many under mon, a config names.
fn shape(path: &Path) -> (BTreeMap<String, usize>, usize) {
    let mut counts = BTreeMap::new();
    let all = components(path);
    for c in &all {
        *counts.entry(c.0.clone()).or_default() += 1;
    }
    (counts, all.iter().filter(|c| c.4).count())
}

/// issue 17 (rehearse on a sandbox with the same shape): `sandbox up --like FILE` copies the
/// shape of the cluster FILE describes; returns that sandbox's config.
fn assert_sandbox_like(file: &Path) -> String {
    let like = Sandbox::up_exactly(&["--like", file.to_str().unwrap()]);
    assert_eq!(shape(&like.dir.join("cluster.toml")), shape(file));
    std::fs::read_to_string(like.dir.join("cluster.toml")).unwrap()
}

fn zk_of(sb: &Sandbox) -> String {
    mldb_upgrade::sandbox::load_state(&sb.dir).unwrap().zk_cluster
}

/// issue: discovery of a sandbox (mon mode, 2 nameservers, 2 tablets, an apiserver ZooKeeper
/// does not list, an active and a standby TaskManager) names exactly its components, and the
/// discovered file drives the whole stock upgrade to the same end state as the sandbox's own.
#[test]
fn a_discovered_config_names_the_sandbox_components_and_upgrades_it() {
    let sb = Sandbox::up_exactly(&[
        "--nameservers",
        "2",
        "--tablets",
        "2",
        "--apiservers",
        "1",
        "--taskmanagers",
        "2",
        "--daemon",
    ]);
    let work = tempfile::tempdir().unwrap();
    let out_file = work.path().join("discovered.toml");
    let out_path = out_file.to_str().unwrap();
    let zk = zk_of(&sb);
    let found = support::run(&["discover", "--zk", &zk, "--transport", "local", "--out", out_path]);
    assert_eq!(found.code, 0, "{}\n{}", found.stdout, found.stderr);
    assert!(found.stdout.contains("wrote ") && found.stdout.contains("(7 components)"), "{}", found.stdout);
    let discovered = components(&out_file);
    assert_eq!(discovered, components(&sb.dir.join("cluster.toml")), "discovered:\n{}", found.stdout);
    assert!(discovered.iter().all(|c| c.4), "mon mode not seen: {discovered:?}");
    let text = std::fs::read_to_string(&out_file).unwrap();
    for comment in ["(ZooKeeper lists no apiserver)", "(a standby: ZooKeeper lists the active one only)", "under mon"] {
        assert!(text.contains(comment), "no {comment:?} in:\n{text}");
    }
    // It passes `check`'s loader, and a second discover does not overwrite it unasked.
    let again = support::run(&["discover", "--zk", &zk, "--transport", "local", "--out", out_path]);
    assert_eq!(again.code, 2, "{}", again.stderr);
    assert!(again.stderr.contains("exists; pass --force"), "{}", again.stderr);
    assert_sandbox_like(&out_file);

    // The stock upgrade through the discovered file (releases staged under a home of its own).
    let rel = tempfile::tempdir().unwrap();
    let release = support::release(rel.path(), "0.9.3", &["--tar"]);
    let tarball = release.with_file_name("openmldb-0.9.3-linux.tar.gz");
    let spark = rel.path().join("spark-3.2.1-bin-openmldbspark-0.9.3");
    let before = state(&sb);
    let home = work.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let upgrade = support::repo().join("scripts/upgrade.rhai");
    let args = [
        "run",
        upgrade.to_str().unwrap(),
        "--cluster",
        out_path,
        "--set",
        &format!("release={}", tarball.display()),
        "--set",
        &format!("spark_release={}", spark.display()),
    ];
    let run = support::run_in(&support::repo(), &args, &[("HOME", home.to_str().unwrap())]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let after = state(&sb);
    assert_eq!(line(&after, "versions"), format!("versions {:?}", vec!["0.9.3"; 7]));
    assert_safe_end_state(&before, &after);
}

/// issue: a host that cannot be reached stops discovery with what to check, and no file is
/// written.
#[test]
fn discovery_of_an_unreachable_host_is_a_clear_error_and_writes_nothing() {
    let sb = Sandbox::up(&["--tablets", "1"]);
    let work = tempfile::tempdir().unwrap();
    // Every host through a port nothing listens on.
    let port = mldb_upgrade::sandbox::zookeeper::free_loopback_port().unwrap();
    let ssh_config = support::write(
        work.path(),
        "ssh_config",
        &format!("Host *\n  Port {port}\n  StrictHostKeyChecking yes\n  UserKnownHostsFile /dev/null\n"),
    );
    let out_file = work.path().join("cluster.toml");
    let args = ["discover", "--zk", &zk_of(&sb), "--ssh-config", &ssh_config, "--out", out_file.to_str().unwrap()];
    let found = support::run(&args);
    assert_eq!(found.code, 1, "{}\n{}", found.stdout, found.stderr);
    for expected in
        ["discover: cannot read the processes on 127.0.0.", &format!(":{port} over ssh"), "Nothing was written"]
    {
        assert!(found.stderr.contains(expected), "no {expected:?} in:\n{}", found.stderr);
    }
    assert!(!out_file.exists(), "a file was written");

    // A wrong ZooKeeper root: nothing there, said so.
    let wrong_root = ["discover", "--zk", &zk_of(&sb), "--zk-root", "/nothing", "--transport", "local"];
    let found = support::run_in(work.path(), &wrong_root, &[]);
    assert_eq!(found.code, 1, "{}", found.stderr);
    assert!(found.stderr.contains("lists no nameserver and no tablet under /nothing"), "{}", found.stderr);
    assert!(!work.path().join("cluster.toml").exists());

    // A conf/hosts naming an apiserver that does not run: which one, and nothing written.
    let hosts = support::write(work.path(), "hosts", &format!("[apiserver]\n127.0.0.1:{port}\n"));
    let listed = ["discover", "--zk", &zk_of(&sb), "--transport", "local", "--hosts", &hosts];
    let found = support::run_in(work.path(), &listed, &[]);
    assert_eq!(found.code, 1, "{}", found.stderr);
    let expected = format!("{hosts}:2 lists apiserver 127.0.0.1:{port}, but no apiserver of this cluster listens");
    assert!(found.stderr.contains(&expected), "no {expected:?} in:\n{}", found.stderr);
    assert!(!work.path().join("cluster.toml").exists());
}

/// issue: a deploy-layout sandbox (laid out by `sbin/deploy-all.sh`, components sharing
/// `$OPENMLDB_HOME`, reached over ssh) is discovered through the openssh transport and an ssh
/// config that alone says how to log in; the file names the same components as the sandbox's
/// `conf/hosts` import, and drives the stock upgrade over that transport to the same end state.
#[test]
fn a_deploy_layout_is_discovered_over_openssh_with_only_an_ssh_config() {
    let sb = crate::deploy::deploy_sandbox("2");
    let own = sb.dir.join("cluster.toml");
    let config = ClusterConfig::load(&own).unwrap();
    let access = config.host_access(&config.components[0].host);
    let work = tempfile::tempdir().unwrap();
    let ssh_config = support::write(
        work.path(),
        "ssh_config",
        &format!(
            "Host 127.0.0.*\n  User {}\n  Port {}\n  IdentityFile {}\n  IdentitiesOnly yes\n  UserKnownHostsFile {}\n  \
             StrictHostKeyChecking yes\n",
            access.user,
            access.port,
            access.identity_files[0].display(),
            access.known_hosts.display()
        ),
    );
    let out_file = work.path().join("discovered.toml");
    let out_path = out_file.to_str().unwrap();
    // The apiservers from the cluster's conf/hosts, as an operator with a deploy layout has it.
    let hosts_file = mldb_upgrade::sandbox::load_state(&sb.dir).unwrap().home.unwrap().join("conf/hosts");
    let hosts_file = hosts_file.to_str().unwrap();
    let args = ["discover", "--zk", &zk_of(&sb), "--ssh-config", &ssh_config, "--hosts", hosts_file, "--out", out_path];
    let found = support::run(&args);
    assert_eq!(found.code, 0, "{}\n{}", found.stdout, found.stderr);
    assert_eq!(components(&out_file), components(&own), "discovered:\n{}", found.stdout);
    let text = std::fs::read_to_string(&out_file).unwrap();
    assert!(text.contains("transport = \"openssh\"") && text.contains(&ssh_config), "{text}");
    let like = assert_sandbox_like(&out_file);
    assert!(
        like.contains("sandbox up --layout deploy`"),
        "components sharing a directory, not a deploy layout:\n{like}"
    );

    let rel = tempfile::tempdir().unwrap();
    let release = support::release(rel.path(), "0.9.3", &["--tar"]);
    let upgrade = support::repo().join("scripts/upgrade.rhai");
    let release_set = format!("release={}", release.with_file_name("openmldb-0.9.3-linux.tar.gz").display());
    let spark_set = format!("spark_release={}", rel.path().join("spark-3.2.1-bin-openmldbspark-0.9.3.tgz").display());
    let before = state(&sb);
    let home = work.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let args = ["run", upgrade.to_str().unwrap(), "--cluster", out_path, "--set", &release_set, "--set", &spark_set];
    let run = support::run_in(&support::repo(), &args, &[("HOME", home.to_str().unwrap())]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let after = state(&sb);
    assert_eq!(line(&after, "versions"), format!("versions {:?}", vec!["0.9.3"; 7]));
    assert_safe_end_state(&before, &after);
}
