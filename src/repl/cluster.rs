//! `:cluster`: what an operator looks at first (nameserver leader, auto_failover, tablets and
//! their state, ops not finished), read through the same clients the `ns::` primitives use.
//! A part that cannot be read says why; the rest is still shown.

use super::render::grid;
use super::session::Reply;
use crate::script::{CallError, Host};

fn reason(e: CallError) -> String {
    match e {
        CallError::Interrupted => "interrupted".into(),
        CallError::Failed(m) => m,
    }
}

/// The status summary, or an error when the session has no cluster.
pub fn summary(host: &Host) -> Reply {
    let u = match host.upgrader(":cluster") {
        Ok(u) => u,
        Err(e) => return Reply::Error(reason(e)),
    };
    host.interrupt.reset();
    let mut out = String::new();
    let leader =
        host.block_on(u.cluster.ns.discover_leader()).unwrap_or_else(|e| format!("unavailable: {}", reason(e)));
    out.push_str(&format!("nameserver leader  {leader}\n"));
    let failover = match host.block_on(u.cluster.ns.auto_failover()) {
        Ok(true) => "on".to_string(),
        Ok(false) => "off".to_string(),
        Err(e) => format!("unavailable: {}", reason(e)),
    };
    out.push_str(&format!("auto_failover      {failover}\n"));
    match host.block_on(u.cluster.ns.show_tablet()) {
        Ok(tablets) => {
            let healthy = tablets.iter().filter(|t| t.is_healthy()).count();
            out.push_str(&format!("tablets            {} ({healthy} healthy)\n", tablets.len()));
            let rows = tablets
                .into_iter()
                .map(|t| vec![t.endpoint, t.state.to_string(), humantime::format_duration(ms(t.age)).to_string()])
                .collect();
            out.push_str(&grid(vec!["endpoint".into(), "state".into(), "age".into()], rows));
            out.push('\n');
        }
        Err(e) => out.push_str(&format!("tablets            unavailable: {}\n", reason(e))),
    }
    match host.block_on(u.cluster.ns.show_op_status(None, None, None)) {
        Ok(ops) => {
            let failed = ops.iter().filter(|o| o.is_failure()).count();
            let pending: Vec<_> = ops.into_iter().filter(|o| !o.is_finished()).collect();
            if pending.is_empty() {
                out.push_str(&format!("pending ops        none ({failed} failed)"));
            } else {
                out.push_str(&format!("pending ops        {} ({failed} failed)\n", pending.len()));
                let rows = pending
                    .into_iter()
                    .map(|o| {
                        let pid = o.pid.map_or("-".to_string(), |p| p.to_string());
                        vec![
                            o.op_id.to_string(),
                            o.op_type,
                            format!("{}.{}", o.db, o.name),
                            pid,
                            o.status.to_string(),
                            o.task_type,
                        ]
                    })
                    .collect();
                let header = ["op_id", "op_type", "table", "pid", "status", "task"];
                out.push_str(&grid(header.iter().map(|h| h.to_string()).collect(), rows));
            }
        }
        Err(e) => out.push_str(&format!("pending ops        unavailable: {}", reason(e))),
    }
    Reply::Output(out)
}

fn ms(age: u64) -> std::time::Duration {
    // Whole seconds are enough to tell a tablet that just came back from one that has been up.
    std::time::Duration::from_secs(age / 1000)
}
