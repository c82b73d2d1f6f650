//! A terminal for tests: a tmux session on a private socket running one command, for what
//! needs a real terminal (the REPL, a y/N question).

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// A tmux session on a private socket running one command, killed when dropped.
pub struct Tmux {
    socket: String,
}

impl Tmux {
    pub fn start(command: &str, env: &[(&str, String)]) -> Tmux {
        let socket = format!("mldb-test-{}-{}", std::process::id(), super::unique());
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

    pub fn tmux(&self, args: &[&str]) -> Output {
        Command::new("tmux").arg("-L").arg(&self.socket).args(args).output().expect("tmux runs")
    }

    /// Once the REPL has ended, how: `status 0`, or `signal 2`, or `status ` when tmux saw the
    /// terminal close before it collected the exit status.
    pub fn exit_status(&self) -> Option<String> {
        let format = "#{pane_dead}|#{pane_dead_status}|#{pane_dead_signal}";
        let out = self.tmux(&["display-message", "-p", "-t", "0", format]);
        let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
        match text.split('|').collect::<Vec<_>>()[..] {
            ["1", status, ""] => Some(format!("status {status}")),
            ["1", _, signal] => Some(format!("signal {signal}")),
            _ => None,
        }
    }

    pub fn screen(&self) -> String {
        String::from_utf8_lossy(&self.tmux(&["capture-pane", "-p", "-t", "0"]).stdout).into_owned()
    }

    pub fn wait_for(&self, what: &str, timeout: Duration, done: impl Fn(&str) -> bool) -> String {
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
    pub fn line(&self, text: &str) {
        // tmux reads a trailing `;` as its own command separator.
        let escaped = match text.strip_suffix(';') {
            Some(head) => format!("{head}\\;"),
            None => text.to_string(),
        };
        let out = self.tmux(&["send-keys", "-t", "0", "-l", &escaped]);
        assert!(out.status.success(), "send-keys: {}", String::from_utf8_lossy(&out.stderr));
        self.keys("Enter");
    }

    pub fn keys(&self, key: &str) {
        let out = self.tmux(&["send-keys", "-t", "0", key]);
        assert!(out.status.success(), "send-keys {key}: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// Everything the pane has shown, scrollback included.
    pub fn transcript(&self) -> String {
        String::from_utf8_lossy(&self.tmux(&["capture-pane", "-p", "-J", "-S", "-", "-t", "0"]).stdout).into_owned()
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.tmux(&["kill-server"]);
    }
}

/// The last non-empty line of a screen.
pub fn last_line(screen: &str) -> &str {
    screen.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("")
}

/// A path quoted for the shell tmux runs the command in.
pub fn shell_quote(path: &Path) -> String {
    shlex::try_quote(&path.display().to_string()).unwrap().into_owned()
}
