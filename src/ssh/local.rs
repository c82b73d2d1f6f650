//! The `local` transport: this machine, no ssh.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use super::{ExecOutput, PathKind, Result, SshError};
use crate::interrupt::Interrupt;

pub(super) async fn exec(host: &str, command: &str, timeout: Duration, stop: &Interrupt) -> Result<ExecOutput> {
    let started = Instant::now();
    let io = |context: &str, source| SshError::Io { host: host.to_string(), context: context.to_string(), source };
    // Its own process group, so a timeout or Ctrl-C can stop the whole command, not just `sh`.
    let child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| io("cannot start sh", e))?;
    let pid = child.id();
    let kill_group = || {
        if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
            let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        }
    };
    tokio::select! {
        output = child.wait_with_output() => {
            let output = output.map_err(|e| io("waiting for the command", e))?;
            Ok(ExecOutput {
                host: host.to_string(),
                command: command.to_string(),
                exit_code: output.status.code().unwrap_or(-1),
                stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
                duration: started.elapsed(),
            })
        }
        _ = tokio::time::sleep(timeout) => {
            kill_group();
            Err(SshError::Timeout { host: host.to_string(), command: command.to_string(), after: timeout })
        }
        _ = stop.raised() => {
            kill_group();
            Err(SshError::Interrupted { host: host.to_string(), command: command.to_string() })
        }
    }
}

pub(super) async fn copy(host: &str, from: &Path, to: &Path) -> Result<u64> {
    tokio::fs::copy(from, to).await.map_err(|source| SshError::Io {
        host: host.to_string(),
        context: format!("cannot copy {} to {}", from.display(), to.display()),
        source,
    })
}

pub(super) fn path_kind(path: &Path) -> PathKind {
    match std::fs::metadata(path) {
        Err(_) => PathKind::Missing,
        Ok(m) if m.is_dir() => PathKind::Dir,
        Ok(m) if m.is_file() => PathKind::File,
        Ok(_) => PathKind::Other,
    }
}
