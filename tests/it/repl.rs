//! The REPL as an operator uses it: the real binary in a real terminal (tmux) against a sandbox.
//! Tables print, Ctrl-C stops a long wait and keeps the session, `:help` works, `:quit` leaves.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use mldb_upgrade::sandbox;

use crate::support;
use crate::support::tmux::{last_line, shell_quote, Tmux};

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

/// What the REPL tests need of the terminal beyond the generic harness.
trait Repl {
    fn wait_prompt(&self, timeout: Duration) -> String;
    fn output_of(&self, command: &str, timeout: Duration) -> String;
    fn run(&self, command: &str, timeout: Duration) -> String;
}

impl Repl for Tmux {
    /// Waits until the last non-empty line of the screen is the prompt.
    fn wait_prompt(&self, timeout: Duration) -> String {
        self.wait_for("the prompt", timeout, |s| last_line(s).trim_end() == "mldb>")
    }

    /// What `command` printed, once the prompt is back after it: the text after the last line
    /// that echoes it.
    fn output_of(&self, command: &str, timeout: Duration) -> String {
        let echo = format!("mldb> {command}");
        let started = Instant::now();
        loop {
            let transcript = self.transcript();
            if let Some(i) = transcript.rfind(&echo) {
                let after = &transcript[i + echo.len()..];
                if let Some((_, output)) = after.split_once('\n') {
                    if last_line(output).trim_end() == "mldb>" {
                        let end = output.trim_end().len() - "mldb>".len();
                        return output[..end].to_string();
                    }
                }
            }
            if started.elapsed() > timeout {
                panic!(
                    "waited {timeout:?} for the output of `{command}`; the screen:\n{}\nthe REPL ended: {:?}",
                    self.screen(),
                    self.exit_status()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Types `command` at the prompt and returns what it printed.
    fn run(&self, command: &str, timeout: Duration) -> String {
        self.line(command);
        self.output_of(command, timeout)
    }
}

#[test]
fn repl_in_a_terminal_against_a_sandbox() {
    let sb = Sandbox::up();
    let history = sb.dir.join("history");
    let command = format!("{} repl --sandbox {}", shell_quote(&support::binary()), shell_quote(&sb.dir));
    let tmux = Tmux::start(&command, &[("MLDB_HISTORY", history.display().to_string()), ("NO_COLOR", "1".into())]);
    let screen = tmux.wait_prompt(Duration::from_secs(20));
    assert!(screen.contains("mldb-upgrade repl: cluster"), "{screen}");

    // Timeouts are generous: the whole suite runs sandboxes in parallel on two cores.
    let t = Duration::from_secs(30);
    assert_eq!(tmux.run("let before = 41;", t).trim(), "");

    let table = tmux.run("ns::tablets()", t);
    let header = table.lines().find(|l| l.contains("endpoint")).unwrap_or_else(|| panic!("no header:\n{table}"));
    assert!(header.contains("age_ms") && header.contains("state") && header.starts_with('|'), "{table}");
    assert_eq!(table.matches("kHealthy").count(), 2, "{table}");
    assert!(table.contains("(2 rows)"), "{table}");

    // A long wait, stopped by Ctrl-C; the session and its variables survive.
    let sleep = "sleep(\"60s\"); before = 0;";
    tmux.line(sleep);
    tmux.wait_for("the statement to start", t, |s| s.contains("mldb> sleep(\"60s\")"));
    std::thread::sleep(Duration::from_millis(800));
    assert_ne!(last_line(&tmux.screen()).trim_end(), "mldb>", "sleep returned at once:\n{}", tmux.screen());
    let pressed = Instant::now();
    tmux.keys("C-c");
    let stopped = tmux.output_of(sleep, t);
    assert!(pressed.elapsed() < Duration::from_secs(10), "Ctrl-C took {:?}", pressed.elapsed());
    assert!(stopped.contains("interrupted"), "{stopped}");
    assert_eq!(tmux.run("before + 1", t).trim(), "42");

    let summary = tmux.run(":cluster", t);
    assert!(summary.contains("auto_failover      on"), "{summary}");
    assert!(summary.contains("tablets            2 (2 healthy)"), "{summary}");
    assert!(summary.contains("pending ops"), "{summary}");

    let help = tmux.run(":help ns", t);
    assert!(help.contains("ns::tablets() -> array") && help.contains("Example:"), "{help}");
    assert!(!help.contains("zk::"), "{help}");

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
