//! Faults for rehearsals: what goes wrong on real clusters during an upgrade, done to a sandbox
//! on purpose (`mldb-upgrade sandbox fault ...`, and the fault-injection suite in
//! `tests/faults/`).
//!
//! * [`kill_component`]: SIGKILL of a component's own process, as a crash or the OOM killer
//!   does. In daemon mode it is the `.pid.child` (O§1.3), so the mon starts it again, as on a
//!   real host; otherwise it stays down until someone starts it.
//! * [`restart_zookeeper`]: ZooKeeper killed and started again on the same port and data
//!   after `down`. When `down` exceeds the sessions' timeout (`zk_session_timeout`), every
//!   client's session expires and its ephemeral nodes go: tablets and nameservers register
//!   again, the nameserver leader lock is taken again (C§1.2), as after a real ZooKeeper outage.
//! * [`drop_ssh_connections`]: the sandbox sshd's per-connection processes killed, so every open
//!   ssh session breaks mid-command, as a network drop or a restarted sshd does; the listener
//!   stays, so new connections work.

use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::status::component_pid;
use super::zookeeper::ZooKeeperServer;
use super::{io_err, save_state, SandboxError, SandboxState};
use crate::process::is_running;

/// A fault that could not be done.
fn refused(what: impl Into<String>) -> SandboxError {
    SandboxError::Fault(what.into())
}

/// SIGKILLs the component with this endpoint or sandbox name (`tablet-2`); returns its pid.
pub fn kill_component(state: &SandboxState, which: &str) -> Result<u32, SandboxError> {
    let c = state.components.iter().find(|c| c.endpoint == which || c.name == which).ok_or_else(|| {
        let known: Vec<&str> = state.components.iter().map(|c| c.name.as_str()).collect();
        refused(format!("no component {which} in this sandbox; it has {}", known.join(", ")))
    })?;
    let pid = component_pid(c)
        .filter(|pid| is_running(*pid))
        .ok_or_else(|| refused(format!("{} ({}) is not running", c.name, c.endpoint)))?;
    kill(Pid::from_raw(pid as i32), Signal::SIGKILL).map_err(|e| refused(format!("kill -9 {pid}: {e}")))?;
    Ok(pid)
}

/// Kills the sandbox's ZooKeeper, waits `down`, and starts it again on the same port and data
/// directory; returns the new server's pid (recorded in `sandbox.json` for `sandbox down`).
pub fn restart_zookeeper(state: &mut SandboxState, down: Duration) -> Result<u32, SandboxError> {
    let port: u16 = state
        .zk_cluster
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| refused(format!("zk_cluster {} has no port", state.zk_cluster)))?;
    if is_running(state.zookeeper_pid) {
        kill(Pid::from_raw(state.zookeeper_pid as i32), Signal::SIGKILL)
            .map_err(|e| refused(format!("kill -9 {}: {e}", state.zookeeper_pid)))?;
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while is_running(state.zookeeper_pid) && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    std::thread::sleep(down);
    let server = ZooKeeperServer::start_on(&state.dir.join("zookeeper"), Some(port))?;
    state.zookeeper_pid = server.detach().unwrap_or_default();
    save_state(state)?;
    Ok(state.zookeeper_pid)
}

/// Kills every connection process of the sandbox's sshd (its children), leaving the listener;
/// returns how many were killed.
pub fn drop_ssh_connections(state: &SandboxState) -> Result<usize, SandboxError> {
    let sshd = state.sshd.as_ref().ok_or_else(|| refused("this sandbox has no sshd: start it with --ssh"))?;
    let mut killed = 0;
    let proc_dir = std::fs::read_dir("/proc").map_err(io_err(&state.dir))?;
    for entry in proc_dir.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        // pid (comm) state ppid ...: comm may hold spaces, so read after the last ')'.
        let ppid = stat.rsplit(')').next().and_then(|rest| rest.split_whitespace().nth(1)?.parse::<u32>().ok());
        if ppid == Some(sshd.pid) && kill(Pid::from_raw(pid as i32), Signal::SIGKILL).is_ok() {
            killed += 1;
        }
    }
    Ok(killed)
}
