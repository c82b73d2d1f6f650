//! The REPL as an operator uses it: the real binary in a real terminal (tmux) against a sandbox.
//! Tables print, Ctrl-C stops a long wait and keeps the session, `:help` works, `:quit` leaves.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use mldb_upgrade::sandbox;

use crate::support;

/// A fast sandbox with one nameserver and two tablets, stopped when dropped.
struct Sandbox {
    dir: PathBuf,
    _tmp: tempfile::TempDir,
}

impl Sandbox {
    fn up() -> Sandbox {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("sb");
        let dir_arg = dir.display().to_string();
        let args = [
            "sandbox",
            "up",
            "--dir",
            &dir_arg,
            "--fast",
            "--nameservers",
            "1",
            "--tablets",
            "2",
            "--apiservers",
            "0",
            "--taskmanagers",
            "0",
        ];
        let out = support::run(&args);
        let sb = Sandbox { dir, _tmp: tmp };
        assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
        sb
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = sandbox::down(&self.dir);
    }
}

/// A tmux session on a private socket running one command, killed when dropped.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn start(command: &str, env: &[(&str, String)]) -> Tmux {
        let socket = format!("mldb-repl-test-{}", std::process::id());
        let tmux = Tmux { socket };
        let mut args: Vec<String> =
            ["-f", "/dev/null", "new-session", "-d", "-x", "200", "-y", "50"].map(String::from).to_vec();
        for (k, v) in env {
            args.push("-e".into());
            args.push(format!("{k}={v}"));
        }
        args.push(command.into());
        // Keep the pane after the REPL ends, so the test sees how it ended.
        args.extend([";", "set-option", "remain-on-exit", "on"].map(String::from));
        let out = tmux.tmux(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(out.status.success(), "tmux new-session: {}", String::from_utf8_lossy(&out.stderr));
        tmux
    }

    fn tmux(&self, args: &[&str]) -> Output {
        Command::new("tmux").arg("-L").arg(&self.socket).args(args).output().expect("tmux runs")
    }

    /// Once the REPL has ended, how: `status 0`, or `signal 2`, or `status ` when tmux saw the
    /// terminal close before it collected the exit status.
    fn exit_status(&self) -> Option<String> {
        let format = "#{pane_dead}|#{pane_dead_status}|#{pane_dead_signal}";
        let out = self.tmux(&["display-message", "-p", "-t", "0", format]);
        let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
        match text.split('|').collect::<Vec<_>>()[..] {
            ["1", status, ""] => Some(format!("status {status}")),
            ["1", _, signal] => Some(format!("signal {signal}")),
            _ => None,
        }
    }

    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.tmux(&["capture-pane", "-p", "-t", "0"]).stdout).into_owned()
    }

    /// Waits until the last non-empty line of the screen is the prompt.
    fn wait_prompt(&self, timeout: Duration) -> String {
        self.wait_for("the prompt", timeout, |s| last_line(s).trim_end() == "mldb>")
    }

    fn wait_for(&self, what: &str, timeout: Duration, done: impl Fn(&str) -> bool) -> String {
        let started = Instant::now();
        loop {
            let screen = self.screen();
            if done(&screen) {
                return screen;
            }
            if started.elapsed() > timeout {
                let capture = self.tmux(&["capture-pane", "-p", "-t", "0"]);
                panic!(
                    "waited {timeout:?} for {what}; the screen:\n{screen}\nthe REPL ended: {:?}; tmux: {}",
                    self.exit_status(),
                    String::from_utf8_lossy(&capture.stderr)
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Types `text` and Enter (the prompt must be showing).
    fn line(&self, text: &str) {
        // tmux reads a trailing `;` as its own command separator.
        let escaped = match text.strip_suffix(';') {
            Some(head) => format!("{head}\\;"),
            None => text.to_string(),
        };
        let out = self.tmux(&["send-keys", "-t", "0", "-l", &escaped]);
        assert!(out.status.success(), "send-keys: {}", String::from_utf8_lossy(&out.stderr));
        self.keys("Enter");
    }

    fn keys(&self, key: &str) {
        let out = self.tmux(&["send-keys", "-t", "0", key]);
        assert!(out.status.success(), "send-keys {key}: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// Clears the screen and the scrollback, so each step reads only its own output.
    fn clear(&self) {
        self.keys("C-l");
        let _ = self.tmux(&["clear-history", "-t", "0"]);
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.tmux(&["kill-server"]);
    }
}

fn last_line(screen: &str) -> &str {
    screen.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("")
}

fn shell_quote(path: &Path) -> String {
    shlex::try_quote(&path.display().to_string()).unwrap().into_owned()
}

#[test]
fn repl_in_a_terminal_against_a_sandbox() {
    let sb = Sandbox::up();
    let history = sb.dir.join("history");
    let command = format!("{} repl --sandbox {}", shell_quote(&support::binary()), shell_quote(&sb.dir));
    let tmux = Tmux::start(&command, &[("MLDB_HISTORY", history.display().to_string()), ("NO_COLOR", "1".into())]);
    let screen = tmux.wait_prompt(Duration::from_secs(20));
    assert!(screen.contains("mldb-upgrade repl: cluster"), "{screen}");

    tmux.line("let before = 41;");
    tmux.wait_prompt(Duration::from_secs(10));

    tmux.clear();
    tmux.wait_prompt(Duration::from_secs(5));
    tmux.line("ns::tablets()");
    let screen = tmux.wait_for("the tablets table", Duration::from_secs(20), |s| {
        s.contains("(2 rows)") && last_line(s).trim_end() == "mldb>"
    });
    let header = screen.lines().find(|l| l.contains("endpoint")).unwrap_or_else(|| panic!("no header:\n{screen}"));
    assert!(header.contains("age_ms") && header.contains("state") && header.starts_with('|'), "{screen}");
    assert_eq!(screen.matches("kHealthy").count(), 2, "{screen}");

    // A long wait, stopped by Ctrl-C; the session and its variables survive.
    tmux.clear();
    tmux.wait_prompt(Duration::from_secs(5));
    tmux.line("sleep(\"60s\"); before = 0;");
    std::thread::sleep(Duration::from_millis(800));
    assert_ne!(last_line(&tmux.screen()).trim_end(), "mldb>", "sleep returned at once:\n{}", tmux.screen());
    let pressed = Instant::now();
    tmux.keys("C-c");
    let screen = tmux.wait_prompt(Duration::from_secs(10));
    assert!(pressed.elapsed() < Duration::from_secs(10));
    assert!(screen.contains("interrupted"), "{screen}");
    tmux.clear();
    tmux.wait_prompt(Duration::from_secs(5));
    tmux.line("before + 1");
    let screen = tmux.wait_for("the variable", Duration::from_secs(10), |s| {
        s.lines().any(|l| l.trim() == "42") && last_line(s).trim_end() == "mldb>"
    });
    assert!(!screen.contains("error"), "{screen}");

    tmux.clear();
    tmux.wait_prompt(Duration::from_secs(5));
    tmux.line(":cluster");
    let screen = tmux.wait_for("the cluster summary", Duration::from_secs(10), |s| {
        s.contains("pending ops") && last_line(s).trim_end() == "mldb>"
    });
    assert!(screen.contains("auto_failover      on"), "{screen}");
    assert!(screen.contains("tablets            2 (2 healthy)"), "{screen}");

    tmux.clear();
    tmux.wait_prompt(Duration::from_secs(5));
    tmux.line(":help ns");
    let screen = tmux.wait_for("the ns docs", Duration::from_secs(10), |s| {
        s.contains("ns::tablets() -> array") && last_line(s).trim_end() == "mldb>"
    });
    assert!(screen.contains("Example:"), "{screen}");

    tmux.line(":quit");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = tmux.exit_status() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(10) {
            panic!("the REPL did not quit:\n{}", tmux.screen());
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status == "status 0" || status == "status ", "the REPL ended with {status}:\n{}", tmux.screen());
    let saved = std::fs::read_to_string(&history).unwrap();
    assert!(saved.contains("let before = 41;") && saved.contains(":help ns"), "{saved}");
}
