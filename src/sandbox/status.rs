//! `sandbox status` and `sandbox down`: what runs in a sandbox, and stopping all of it.

use std::path::Path;
use std::time::Duration;

use serde::Serialize;
use serde_json::json;

use super::{
    http_get, load_state, nameserver_leader, ns_call, zk_client, SandboxComponent, SandboxError, SandboxState,
};
use crate::cluster::component::taskmanagers::{match_leader, LeaderMatch};
use crate::cluster::topology::{Endpoint, Role};
use crate::process::{is_running, stop_pid};

/// One line of `sandbox status`.
#[derive(Debug, Clone, Serialize)]
pub struct ComponentStatus {
    pub name: String,
    pub role: Role,
    pub endpoint: String,
    pub pid: Option<u32>,
    pub running: bool,
    /// Running version (`/version`, or GetVersion for a TaskManager).
    pub version: Option<String>,
    /// `leader`/`standby` for nameservers and taskmanagers, `kHealthy`/`kOffline` for tablets.
    pub detail: String,
}

fn read_pid(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim_matches(|c: char| c.is_whitespace() || c == '\0').parse().ok()
}

/// The pid of the component process itself (the `.pid.child` in mon mode, O§1.3).
pub fn component_pid(c: &SandboxComponent) -> Option<u32> {
    let pid_file = c.dir.join(format!("bin/{}.pid", c.start_sh_name()));
    read_pid(&pid_file.with_extension("pid.child")).or_else(|| read_pid(&pid_file))
}

/// What runs in the sandbox now.
pub async fn status(dir: &Path) -> Result<(SandboxState, bool, Vec<ComponentStatus>), SandboxError> {
    let state = load_state(dir)?;
    let zk_running = is_running(state.zookeeper_pid);
    let leader = if zk_running { nameserver_leader(&state).await } else { None };
    let tablets = if leader.is_some() { ns_call(&state, "ShowTablet", json!({})).await.ok() } else { None };
    let tm_value = match zk_client(&state).await.filter(|_| zk_running) {
        Some(zk) => zk.get("taskmanager/leader").await.ok().and_then(|d| String::from_utf8(d).ok()),
        None => None,
    };
    // The node holds server.host:port, which may be 0.0.0.0 (C§1.1).
    let taskmanagers: Vec<Endpoint> = state
        .components
        .iter()
        .filter(|c| c.role == Role::Taskmanager)
        .filter_map(|c| c.endpoint.parse().ok())
        .collect();
    let tm_leader = tm_value.and_then(|value| match match_leader(&value, &taskmanagers) {
        LeaderMatch::Is(endpoint) => Some(endpoint),
        _ => None,
    });
    let mut lines = Vec::new();
    for c in &state.components {
        let pid = component_pid(c);
        let running = pid.is_some_and(is_running);
        let version = if !running {
            None
        } else if c.role == Role::Taskmanager {
            crate::sim::http::call(
                &c.endpoint,
                "/openmldb.taskmanager.TaskManagerServer/GetVersion",
                &json!({}),
                Duration::from_secs(3),
            )
            .await
            .ok()
            .and_then(|v| v["taskmanagerVersion"].as_str().map(str::to_string))
        } else {
            http_get(&c.endpoint, "/version").await.map(|v| v.trim().to_string())
        };
        let detail = match c.role {
            Role::Nameserver if leader.as_deref() == Some(c.endpoint.as_str()) => "leader".into(),
            Role::Nameserver if running => "standby".into(),
            Role::Taskmanager if tm_leader.as_deref() == Some(c.endpoint.as_str()) => "leader".into(),
            Role::Taskmanager if running => "standby".into(),
            Role::Tablet => tablets
                .as_ref()
                .and_then(|t| t["tablets"].as_array())
                .and_then(|ts| ts.iter().find(|t| super::tablet_row_endpoint(t) == Some(c.endpoint.as_str())))
                .and_then(|t| t["state"].as_str())
                .unwrap_or("-")
                .to_string(),
            _ => "-".into(),
        };
        lines.push(ComponentStatus {
            name: c.name.clone(),
            role: c.role,
            endpoint: c.endpoint.clone(),
            pid,
            running,
            version,
            detail,
        });
    }
    Ok((state, zk_running, lines))
}

/// Stops everything the sandbox in `dir` started; returns the pids stopped.
pub fn down(dir: &Path) -> Result<Vec<u32>, SandboxError> {
    let state = load_state(dir)?;
    let mut stopped = Vec::new();
    let inside = state.dir.canonicalize().unwrap_or(state.dir.clone());
    // Only the sandbox's own processes: a pid file may point at a reused pid.
    let ours = processes_inside(&inside);
    for c in state.components.iter().rev() {
        let pid_file = c.dir.join(format!("bin/{}.pid", c.start_sh_name()));
        // The mon pid first, so it does not restart the component (O§1.8).
        for file in [pid_file.clone(), pid_file.with_extension("pid.child")] {
            if let Some(pid) = read_pid(&file).filter(|p| ours.contains(p) && is_running(*p)) {
                stop_pid(pid, Duration::from_secs(5));
                stopped.push(pid);
            }
            let _ = std::fs::remove_file(&file);
        }
    }
    for pid in processes_inside(&inside) {
        stop_pid(pid, Duration::from_secs(2));
        stopped.push(pid);
    }
    if let Some(sshd) = state.sshd.as_ref().filter(|s| is_running(s.pid)) {
        stop_pid(sshd.pid, Duration::from_secs(5));
        stopped.push(sshd.pid);
    }
    if is_running(state.zookeeper_pid) {
        stop_pid(state.zookeeper_pid, Duration::from_secs(10));
        stopped.push(state.zookeeper_pid);
    }
    Ok(stopped)
}

/// Live processes whose executable or working directory lies inside `dir` (not this one).
pub fn processes_inside(dir: &Path) -> Vec<u32> {
    let me = std::process::id();
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| *pid != me && is_running(*pid))
        .filter(|pid| {
            ["exe", "cwd"].iter().any(|link| {
                std::fs::read_link(format!("/proc/{pid}/{link}")).is_ok_and(|target| target.starts_with(dir))
            })
        })
        .collect()
}
