//! `component::` against sandbox clusters: stop and start judged by our own checks (O§1, O§8),
//! mon mode (O§1.3, O§1.8), backup/install/rollback of releases (O§4.4, O§6.1), versions
//! (C§1.4, O§4.3), dry-run and bad endpoints.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::Duration;

use mldb_upgrade::sandbox::{self, is_running, release::full_version, SandboxState};

use crate::support::{self, Run};

/// Stops the sandbox even when an assertion fails.
struct Down(PathBuf);
impl Drop for Down {
    fn drop(&mut self) {
        let _ = sandbox::down(&self.0);
    }
}

/// A small `--fast` sandbox in a temp dir, torn down on drop (fields drop in order).
struct Sandbox {
    state: SandboxState,
    _down: Down,
    tmp: tempfile::TempDir,
}

impl Sandbox {
    fn up(tablets: &str, taskmanagers: &str, daemon: bool) -> Sandbox {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("sb");
        let down = Down(dir.clone());
        let d = dir.to_str().unwrap();
        let mut args = vec![
            "sandbox",
            "up",
            "--dir",
            d,
            "--fast",
            "--nameservers",
            "1",
            "--tablets",
            tablets,
            "--apiservers",
            "0",
            "--taskmanagers",
            taskmanagers,
        ];
        if daemon {
            args.push("--daemon");
        }
        let out = support::run(&args);
        assert_eq!(out.code, 0, "sandbox up failed:\n{}\n{}", out.stdout, out.stderr);
        let state = sandbox::load_state(&dir).unwrap();
        Sandbox { state, _down: down, tmp }
    }

    fn endpoint(&self, role: &str, n: usize) -> String {
        self.state.components.iter().filter(|c| c.role.as_str() == role).nth(n).unwrap().endpoint.clone()
    }

    fn dir_of(&self, endpoint: &str) -> PathBuf {
        self.state.components.iter().find(|c| c.endpoint == endpoint).unwrap().dir.clone()
    }

    fn run(&self, name: &str, script: &str, extra: &[&str]) -> Run {
        self.run_env(name, script, extra, &[])
    }

    fn run_env(&self, name: &str, script: &str, extra: &[&str], env: &[(&str, &str)]) -> Run {
        let path = support::write(self.tmp.path(), name, script);
        let toml = self.state.cluster_toml.display().to_string();
        let mut args = vec!["run", path.as_str(), "--cluster", toml.as_str()];
        args.extend_from_slice(extra);
        support::run_in(&support::repo(), &args, env)
    }
}

/// `key=value` lines a script printed.
fn value(out: &Run, key: &str) -> String {
    let prefix = format!("{key}=");
    out.stdout
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {key}= in output:\n{}\n{}", out.stdout, out.stderr))
        .to_string()
}

fn pids(text: &str) -> Vec<u32> {
    text.trim_matches(|c| c == '[' || c == ']').split(',').filter_map(|p| p.trim().parse().ok()).collect()
}

/// Processes running the tablet of install dir `dir` (by command line), zombies excluded.
fn tablet_processes(dir: &Path) -> Vec<u32> {
    sandbox::processes_inside(&dir.canonicalize().unwrap())
        .into_iter()
        .filter(|p| is_running(*p))
        .filter(|p| std::fs::read_to_string(format!("/proc/{p}/cmdline")).is_ok_and(|c| c.contains("tablet.flags")))
        .collect()
}

fn port_free(endpoint: &str) -> bool {
    TcpListener::bind(endpoint).is_ok()
}

const STOP: &str = r#"
let r = component::stop(ep);
print(`stopped=${r.stopped}`);
print(`pid=${r.pid}`);
print(`mon_pid=${r.mon_pid}`);
print(`killed=${r.killed}`);
"#;

const START: &str = r#"
let r = component::start(ep);
print(`pid=${r.pid}`);
print(`mon_pid=${r.mon_pid}`);
print(`registered=${r.registered}`);
print(`version=${r.version}`);
print(`running=${component::running_version(ep)}`);
print(`node=${zk::exists("nodes/" + ep)}`);
"#;

/// Normal mode: stop leaves no process and a free port; start brings the tablet back registered
/// and reporting its version. Dry-run prints the exact commands and changes nothing first.
#[test]
fn stop_then_start_tablet_normal_mode_with_dry_run_first() {
    let sb = Sandbox::up("2", "1", false);
    let ep = sb.endpoint("tablet", 0);
    let dir = sb.dir_of(&ep);
    let d = dir.display().to_string();
    let before = tablet_processes(&dir);
    assert_eq!(before.len(), 1, "{before:?}");
    let release = sb.tmp.path().join("rel");
    let out = support::run(&["sandbox", "release", "--version", "0.9.3", "--out", release.to_str().unwrap()]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let release_dir = release.join("openmldb-0.9.3-linux").display().to_string();

    // Dry-run: exact commands, nothing changed.
    let script = format!(
        "let ep = \"{ep}\";\ncomponent::stop(ep);\nlet b = component::backup(ep);\nprint(`backup=${{b}}`);\n\
         component::install(ep, \"{release_dir}\");\ncomponent::start(ep);\n"
    );
    let out = sb.run("dry.rhai", &script, &["--dry-run"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let host = ep.split(':').next().unwrap();
    for expected in [
        format!("[dry-run] {host}: would run `cd {d} && bash bin/start.sh stop tablet`"),
        format!("[dry-run] {host}: would run `cd {d} && mkdir -p {d}/backup/"),
        // A local release directory is packed and staged on the host once (checked by its sha256).
        format!("[dry-run] {host}: would upload "),
        "/openmldb-0.9.3-linux.tar.gz and check its checksum".to_string(),
        format!("[dry-run] {host}: would unpack it into {}/hosts/{host}/staging/", sb.state.dir.display()),
        // The swap: copy, then the running sharers' pid files along (none here), then the swap.
        format!("[dry-run] {host}: would run `cd {d} && rm -rf bin.installing && cp -a {}/hosts/{host}/staging/", sb.state.dir.display()),
        "/openmldb-0.9.3-linux/bin bin.installing && rm -f bin.installing/*.pid bin.installing/*.pid.child && for f in bin/*.pid"
            .to_string(),
        "case \"${f##*/}\" in tablet.pid|tablet.pid.child) ;; *) cp -p \"$f\" bin.installing/ ;; esac; done && rm -rf bin.old && \
         if [ -e bin ]; then mv bin bin.old; fi && { mv bin.installing bin || { mv bin.old bin; exit 1; }; } && rm -rf bin.old`"
            .to_string(),
        format!("[dry-run] {host}: would run `cd {d} && bash bin/start.sh start tablet`"),
    ] {
        assert!(out.stdout.contains(&expected), "missing {expected:?} in:\n{}", out.stdout);
    }
    assert_eq!(tablet_processes(&dir), before, "dry-run stopped the tablet");
    assert!(!dir.join("backup").exists(), "dry-run made a backup");
    assert_eq!(std::fs::read_to_string(dir.join("bin/openmldb.version")).unwrap().trim(), full_version("0.9.2"));

    // Stop: the process is gone (zombies count as gone) and the port is free.
    let out = sb.run("stop.rhai", &format!("let ep = \"{ep}\";\n{STOP}"), &[]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(pids(&value(&out, "stopped")), before);
    assert_eq!(value(&out, "killed"), "false");
    assert!(!is_running(before[0]), "pid {} still alive", before[0]);
    assert!(tablet_processes(&dir).is_empty());
    assert!(port_free(&ep), "port of {ep} still in use after stop");

    // Start: registered in ZooKeeper and reporting the version (C§1.3, C§1.4).
    let out = sb.run("start.rhai", &format!("let ep = \"{ep}\";\n{START}"), &[]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let pid: u32 = value(&out, "pid").parse().unwrap();
    assert!(is_running(pid));
    assert_eq!(value(&out, "registered"), "true");
    assert_eq!(value(&out, "node"), "true");
    assert_eq!(value(&out, "version"), full_version("0.9.2"));
    assert_eq!(value(&out, "running"), full_version("0.9.2"));
    assert!(
        out.stdout.contains("to expire before starting: a tablet started now would exit at once"),
        "{}",
        out.stdout
    );

    // TaskManager versions: the jar name installed, GetVersion running (O§4.3).
    let tm = sb.endpoint("taskmanager", 0);
    let out = sb.run(
        "tm.rhai",
        &format!(
            "print(`installed=${{component::installed_version(\"{tm}\")}}`);\n\
             print(`running=${{component::running_version(\"{tm}\")}}`);"
        ),
        &[],
    );
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(value(&out, "installed"), "0.9.2");
    assert_eq!(value(&out, "running"), full_version("0.9.2"));
}

/// Mon mode: stop removes both the mon and the component, and the mon does not bring the
/// component back (O§1.8); start gives both pids again.
#[test]
fn stop_then_start_tablet_mon_mode() {
    let sb = Sandbox::up("1", "0", true);
    let ep = sb.endpoint("tablet", 0);
    let dir = sb.dir_of(&ep);
    let out = sb.run("stop.rhai", &format!("let ep = \"{ep}\";\n{STOP}"), &[]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let mon: u32 = value(&out, "mon_pid").parse().unwrap();
    let child: u32 = value(&out, "pid").parse().unwrap();
    assert_ne!(mon, child);
    assert_eq!(pids(&value(&out, "stopped")), [mon, child]);
    assert!(!is_running(mon) && !is_running(child), "mon {mon} or tablet {child} still alive");
    // The sandbox's mon restarts after 1 s: nothing may come back.
    std::thread::sleep(Duration::from_millis(2500));
    assert!(tablet_processes(&dir).is_empty(), "the tablet came back: {:?}", tablet_processes(&dir));
    assert!(port_free(&ep));

    let out = sb.run("start.rhai", &format!("let ep = \"{ep}\";\n{START}"), &[]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let mon: u32 = value(&out, "mon_pid").parse().unwrap();
    let child: u32 = value(&out, "pid").parse().unwrap();
    assert!(is_running(mon) && is_running(child));
    assert!(std::fs::read_link(format!("/proc/{mon}/exe")).unwrap().ends_with("bin/mon"));
    assert_eq!(value(&out, "registered"), "true");
    assert_eq!(value(&out, "running"), full_version("0.9.2"));
}

/// Backup, install a newer release from its tarball, start: the new version runs; rollback
/// brings the old one back. A broken release fails to start with the log's tail, exit code 1.
#[test]
fn install_newer_release_then_rollback_and_broken_release_fails() {
    let sb = Sandbox::up("2", "0", false);
    let ep = sb.endpoint("tablet", 1);
    let dir = sb.dir_of(&ep);
    let releases = sb.tmp.path().join("releases");
    let r = releases.to_str().unwrap();
    for args in [
        &["sandbox", "release", "--version", "0.9.3", "--out", r, "--tar"][..],
        &["sandbox", "release", "--version", "0.9.4", "--out", r, "--broken"][..],
    ] {
        let out = support::run(args);
        assert_eq!(out.code, 0, "{}", out.stderr);
    }
    let tarball = releases.join("openmldb-0.9.3-linux.tar.gz").display().to_string();
    let script = format!(
        r#"let ep = "{ep}";
component::stop(ep);
let saved = component::backup(ep);
print(`backup=${{saved}}`);
let i = component::install(ep, "{tarball}");
print(`installed=${{i.version}}`);
print(`installed_version=${{component::installed_version(ep)}}`);
component::start(ep);
print(`new=${{component::running_version(ep)}}`);
component::stop(ep);
let back = component::rollback_install(ep, saved);
print(`restored=${{back.version}}`);
component::start(ep);
print(`old=${{component::running_version(ep)}}`);
"#
    );
    let out = sb.run("upgrade.rhai", &script, &[]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let backup = value(&out, "backup");
    assert!(backup.starts_with(&format!("{}/backup/", dir.display())), "{backup}");
    assert!(Path::new(&backup).join("bin/openmldb").exists());
    assert_eq!(value(&out, "installed"), full_version("0.9.3"));
    assert_eq!(value(&out, "installed_version"), full_version("0.9.3"));
    assert_eq!(value(&out, "new"), full_version("0.9.3"));
    assert_eq!(value(&out, "restored"), full_version("0.9.2"));
    assert_eq!(value(&out, "old"), full_version("0.9.2"));
    assert!(!dir.join("bin.installing").exists() && !dir.join("bin.old").exists());
    assert!(!dir.join(".mldb-staging").exists(), "staging dir left behind");

    // A broken build: start.sh exits 0, our checks fail with the log's tail. It is a directory,
    // so the run packs it into an archive first; the failed run still removes that archive.
    let broken = releases.join("openmldb-0.9.4-linux").display().to_string();
    let script = format!(
        "let ep = \"{ep}\";\ncomponent::stop(ep);\ncomponent::install(ep, \"{broken}\");\ncomponent::start(ep, #{{timeout: \"30s\"}});\n"
    );
    let own_tmp = sb.tmp.path().join("tmp");
    std::fs::create_dir_all(&own_tmp).unwrap();
    let out = sb.run_env("broken.rhai", &script, &[], &[("TMPDIR", own_tmp.to_str().unwrap())]);
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("openmldb-0.9.4-linux.tar.gz"), "the directory was not packed:\n{}", out.stdout);
    let left: Vec<_> = std::fs::read_dir(&own_tmp).unwrap().map(|e| e.unwrap().path()).collect();
    assert!(left.is_empty(), "the run left {left:?} in its temporary directory");
    let host = ep.split(':').next().unwrap();
    for expected in [
        format!("tablet {ep} did not start on {host}"),
        // glog's INFO log first (src/base/glog_wrapper.h), then start.sh's redirect of stderr.
        format!("last lines of {}/logs/tablet.INFO on {host}:\n```\n", dir.display()),
        "] sandbox release 0.9.4 was built with --broken".to_string(),
        format!("last lines of {}/logs/tablet.log on {host}:\n```\n", dir.display()),
        "openmldb: fatal: sandbox release 0.9.4 was built with --broken\n```".to_string(),
        "component::rollback_install".to_string(),
        "broken.rhai:4".to_string(),
    ] {
        assert!(out.stderr.contains(&expected), "missing {expected:?} in:\n{}", out.stderr);
    }
}

#[test]
fn unknown_endpoint_is_rejected_naming_the_known_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let toml = support::write(
        tmp.path(),
        "cluster.toml",
        "zk_cluster = \"127.0.0.1:1\"\n[ssh]\ntransport = \"local\"\n\n\
         [[component]]\nrole = \"tablet\"\nendpoint = \"127.0.0.2:10921\"\ndir = \"/nonexistent/t\"\n\n\
         [[component]]\nrole = \"nameserver\"\nendpoint = \"127.0.0.3:7527\"\ndir = \"/nonexistent/n\"\n",
    );
    let script = support::write(tmp.path(), "s.rhai", "component::stop(\"127.0.0.9:1\");\n");
    let out = support::run(&["run", &script, "--cluster", &toml]);
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains(
            "no component with endpoint 127.0.0.9:1 in {toml}; known endpoints: 127.0.0.2:10921 (tablet), 127.0.0.3:7527 (nameserver)"
                .replace("{toml}", &toml)
                .as_str()
        ),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("s.rhai:1"), "{}", out.stderr);
}
