//! `mldb-upgrade run` end to end.

use crate::support::{self, sshd::Sshd, TestZk};

/// The issue's acceptance test: one script lists ZooKeeper children and runs `uname -a` over ssh.
#[test]
fn run_lists_zookeeper_children_and_runs_uname_over_ssh() {
    let zk = TestZk::start();
    let sshd = Sshd::start();
    let dir = tempfile::tempdir().unwrap();
    let cluster = support::write(
        dir.path(),
        "cluster.toml",
        &format!(
            "zk_cluster = \"{zk}\"\nzk_root_path = \"/tour\"\n\n[ssh]\ntransport = \"ssh2\"\nuser = \"{user}\"\n\
             port = {port}\nidentity_file = \"{key}\"\nknown_hosts = \"{kh}\"\n",
            zk = zk.addr(),
            user = sshd.user,
            port = sshd.port,
            key = sshd.client_key.display(),
            kh = sshd.known_hosts.display()
        ),
    );
    let script = support::write(
        dir.path(),
        "tour.rhai",
        r#"
        zk::create("nodes/127.0.0.1:10921", "startup_127.0.0.1:10921");
        zk::create("nodes/127.0.0.1:10922", "startup_127.0.0.1:10922");
        let tablets = zk::children("nodes");
        print("tablets: " + tablets);
        print("value: " + zk::get("nodes/" + tablets[0]));
        let r = ssh::exec("127.0.0.1", "uname -a");
        print("uname exit " + r.exit_code + ": " + r.stdout);
        "#,
    );
    let out = support::run(&["run", &script, "--cluster", &cluster]);
    assert_eq!(out.code, 0, "stderr: {}", out.stderr);
    assert!(out.stdout.contains("tablets: [\"127.0.0.1:10921\", \"127.0.0.1:10922\"]"), "{}", out.stdout);
    assert!(out.stdout.contains("value: startup_127.0.0.1:10921"), "{}", out.stdout);
    let uname = std::process::Command::new("uname").arg("-a").output().unwrap();
    let expected = format!("uname exit 0: {}", String::from_utf8_lossy(&uname.stdout));
    assert!(out.stdout.contains(expected.trim_end()), "{}", out.stdout);
}

#[test]
fn settings_reach_the_script_and_missing_ones_say_which_flag() {
    let dir = tempfile::tempdir().unwrap();
    let script =
        support::write(dir.path(), "s.rhai", "print(setting(\"release\")); print(setting(\"order\", \"config\"));");
    let out = support::run(&["run", &script, "--set", "release=/opt/r.tar.gz"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout, "/opt/r.tar.gz\nconfig\n");
    let out = support::run(&["run", &script]);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("setting `release` is not set: pass --set release=VALUE"), "{}", out.stderr);
    let out = support::run(&["run", &script, "--set", "no-equals"]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("is not KEY=VALUE"), "{}", out.stderr);
}

#[test]
fn dry_run_changes_nothing_but_reads_still_read() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("marker");
    let script = support::write(
        dir.path(),
        "d.rhai",
        &format!(
            "let r = ssh::exec(\"127.0.0.1\", \"touch {m}\"); print(r.dry_run);\n\
             print(ssh::query(\"127.0.0.1\", \"echo read\").stdout); print(dry_run());",
            m = marker.display()
        ),
    );
    let out = support::run(&["run", &script, "--dry-run"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(!marker.exists(), "dry run touched the file");
    assert!(
        out.stdout.contains(&format!("[dry-run] 127.0.0.1: would run `touch {}`", marker.display())),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("true\nread\n\ntrue"), "{}", out.stdout);
    let out = support::run(&["run", &script]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(marker.exists());
}

#[test]
fn ctrl_c_stops_a_script_even_inside_try() {
    let dir = tempfile::tempdir().unwrap();
    let script = support::write(
        dir.path(),
        "loop.rhai",
        "print(\"started\");\nloop { try { sleep(\"60s\"); } catch (e) { print(\"caught \" + e); } }\n",
    );
    let mut child = std::process::Command::new(support::binary())
        .args(["run", &script])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 8];
    std::io::Read::read_exact(&mut stdout, &mut first).unwrap();
    assert_eq!(&first, b"started\n");
    let started = std::time::Instant::now();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGINT).unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(started.elapsed() < std::time::Duration::from_secs(30), "did not stop promptly");
    assert!(stderr.contains("error: interrupted"), "{stderr}");
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    assert!(!rest.contains("caught"), "try caught the interrupt: {rest}");
}

#[test]
fn version_and_usage_exit_codes() {
    let out = support::run(&["--version"]);
    assert_eq!(out.code, 0);
    assert_eq!(out.stdout, format!("mldb-upgrade {}\n", env!("CARGO_PKG_VERSION")));
    let out = support::run(&["frobnicate"]);
    assert_eq!(out.code, 2);
    let out = support::run(&["run"]);
    assert_eq!(out.code, 2);
}

/// `status` shows the cluster (components with versions and states, leaders per tablet,
/// auto_failover, ops), the active and standby TaskManagers, the lock holder and the journal of
/// an unfinished run.
#[test]
fn status_shows_components_leaders_lock_holder_and_journal() {
    let sb = crate::support::Sandbox::up(&["--taskmanagers", "2"]);
    let mut holder =
        sb.spawn(r#"journal::begin("status rehearsal"); journal::step("first step", || 1); sleep("60s");"#);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let out = loop {
        let out = support::run(&["status", "--cluster", &sb.cluster()]);
        // The holder records its step right after taking the lock: wait for both.
        let settled = out.stdout.contains("held by") && out.stdout.contains("done     first step");
        if settled || std::time::Instant::now() > deadline {
            break out;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    let _ = holder.kill();
    let _ = holder.wait();
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let text = out.stdout;
    assert!(text.contains(&format!("lock        held by pid {} on ", holder.id())), "{text}");
    assert!(text.contains("journal     unfinished run `status rehearsal`"), "{text}");
    assert!(text.contains("done     first step"), "{text}");
    assert!(text.contains("auto_failover true"), "{text}");
    assert!(text.contains("0 pending, 0 failed or canceled"), "{text}");
    // Every partition has its leader on one of the three tablets, each shown with its count.
    let led: usize = text
        .lines()
        .filter(|l| l.trim_start().starts_with("tablet"))
        .map(|l| {
            assert!(l.contains("kHealthy, leads "), "{l}");
            l.split("leads ").nth(1).and_then(|r| r.split(' ').next()).and_then(|n| n.parse::<usize>().ok()).unwrap()
        })
        .sum();
    let partitions = sb.run(r#"print(ns::partitions().filter(|r| r.leader && r.alive).len());"#);
    assert_eq!(led.to_string(), partitions.stdout.trim(), "{text}");
    let tms: Vec<&str> = text.lines().filter(|l| l.trim_start().starts_with("taskmanager")).collect();
    assert_eq!(tms.len(), 2, "{text}");
    let active = tms.iter().find(|l| l.trim_end().ends_with("leader")).expect("an active TaskManager");
    let active_ep = active.split_whitespace().nth(1).unwrap();
    let standby = tms.iter().find(|l| !l.trim_end().ends_with("leader")).unwrap();
    assert!(standby.contains(&format!("standby or stopped (active: {active_ep})")), "{text}");
}

/// `make install PREFIX=...` (its copying half, `install-files`, from the binaries this suite
/// built): the installed tool works from anywhere, the stock scripts check, the bash completion
/// loads and completes, the man pages are there, and the simulator is found next to the tool.
#[test]
fn make_install_into_a_prefix_gives_a_working_tool_with_completions_and_man_pages() {
    let prefix = tempfile::tempdir().unwrap();
    let p = prefix.path();
    let bin_dir = support::binary().parent().unwrap().to_path_buf();
    let made = std::process::Command::new("make")
        .args(["-s", "install-files"])
        .arg(format!("PREFIX={}", p.display()))
        .arg(format!("BIN_DIR={}", bin_dir.display()))
        .current_dir(support::repo())
        .output()
        .expect("make");
    let said = format!("{}{}", String::from_utf8_lossy(&made.stdout), String::from_utf8_lossy(&made.stderr));
    assert!(made.status.success(), "make install-files failed:\n{said}");
    assert!(said.contains(&format!("installed mldb-upgrade into {}", p.display())), "{said}");

    let installed = p.join("bin/mldb-upgrade");
    let tool = |args: &[&str]| {
        let out = std::process::Command::new(&installed).args(args).current_dir(p).output().expect("installed tool");
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        (out.status.success(), text)
    };
    let (ok, docs) = tool(&["docs"]);
    assert!(ok && docs.contains("upgrade::drain_leaders"), "{docs}");
    let scripts = p.join("share/mldb-upgrade/scripts");
    let upgrade = scripts.join("upgrade.rhai").display().to_string();
    let rollback = scripts.join("rollback.rhai").display().to_string();
    let (ok, checked) = tool(&["check", &upgrade, &rollback]);
    assert!(ok, "the installed stock scripts do not check:\n{checked}");
    assert!(p.join("share/mldb-upgrade/definitions/mldb-upgrade.d.rhai").is_file());

    // The simulator is found next to the installed tool.
    let release = p.join("release");
    let (ok, made) = tool(&["sandbox", "release", "--version", "0.9.3", "--out", release.to_str().unwrap()]);
    assert!(ok, "{made}");
    assert!(release.join("openmldb-0.9.3-linux/bin/openmldb").is_file());

    // The bash completion loads and completes subcommands and their options.
    let completion = p.join("share/bash-completion/completions/mldb-upgrade");
    let complete = |words: &str| {
        let script = format!(
            "source {}; f=$(complete -p mldb-upgrade | sed -E 's/.*-F ([^ ]+).*/\\1/'); COMP_WORDS=({words}); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1)); COMP_LINE=\"{words}\"; COMP_POINT=${{#COMP_LINE}}; $f mldb-upgrade \"${{COMP_WORDS[-1]}}\" \"${{COMP_WORDS[-2]}}\"; echo \"${{COMPREPLY[@]}}\"",
            completion.display()
        );
        let out = std::process::Command::new("bash").args(["-c", &script]).output().expect("bash");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let words = complete("mldb-upgrade sa");
    assert!(words.split_whitespace().any(|w| w == "sandbox"), "`mldb-upgrade sa<TAB>` gave {words:?}");
    let words = complete("mldb-upgrade run --dr");
    assert!(words.split_whitespace().any(|w| w == "--dry-run"), "`mldb-upgrade run --dr<TAB>` gave {words:?}");
    let words = complete("mldb-upgrade sandbox up --fa");
    assert!(words.split_whitespace().any(|w| w == "--fast"), "`mldb-upgrade sandbox up --fa<TAB>` gave {words:?}");
    for shell in ["zsh/site-functions/_mldb-upgrade", "fish/vendor_completions.d/mldb-upgrade.fish"] {
        let text = std::fs::read_to_string(p.join("share").join(shell)).unwrap();
        assert!(text.contains("mldb-upgrade"), "{shell}");
    }

    // A man page per command, roff with the command's own text.
    let man = p.join("share/man/man1");
    let main = std::fs::read_to_string(man.join("mldb-upgrade.1")).unwrap();
    assert!(
        main.contains(".TH mldb-upgrade 1") && main.contains("Rolling upgrades of a live OpenMLDB cluster"),
        "{main}"
    );
    let run = std::fs::read_to_string(man.join("mldb-upgrade-run.1")).unwrap();
    assert!(run.contains("dry\\-run"), "{run}");
}

/// `mldb-upgrade docs | head -1`: a reader that stops reading ends the tool as SIGPIPE would
/// (141), without a panic message on the operator's screen.
#[test]
fn output_into_a_closed_pipe_ends_the_tool_quietly() {
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    let out = std::process::Command::new(support::binary())
        .arg("docs")
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .expect("run mldb-upgrade");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(141), "stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
