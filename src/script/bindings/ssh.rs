//! `ssh::`: commands and files on hosts. The namespace is `ssh::` whatever the host's
//! transport (`ssh2` or `local`, set per host in the cluster config).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rhai::{EvalAltResult, Map, Module, NativeCallContext};

use super::{duration_arg, Doc, Effect};
use crate::remote::ExecOutput;
use crate::script::Host;

type Res<T> = Result<T, Box<EvalAltResult>>;

/// Default time limit of one remote command.
pub const DEFAULT_EXEC_TIMEOUT: Duration = Duration::from_secs(120);

fn output_map(out: &ExecOutput, dry_run: bool) -> Map {
    let mut m = Map::new();
    m.insert("host".into(), out.host.clone().into());
    m.insert("command".into(), out.command.clone().into());
    m.insert("exit_code".into(), (out.exit_code as i64).into());
    m.insert("ok".into(), (out.exit_code == 0).into());
    m.insert("stdout".into(), out.stdout.clone().into());
    m.insert("stderr".into(), out.stderr.clone().into());
    m.insert("duration_ms".into(), (out.duration.as_millis() as i64).into());
    m.insert("dry_run".into(), dry_run.into());
    m
}

fn timeout_option(options: &Map) -> Res<Duration> {
    match options.get("timeout") {
        None => Ok(DEFAULT_EXEC_TIMEOUT),
        Some(v) if v.is_string() => duration_arg(&v.clone().into_string()?),
        Some(v) => Ok(Duration::from_millis(
            v.as_int().map_err(|t| format!("timeout must be a duration string or milliseconds, not {t}"))?.max(0)
                as u64,
        )),
    }
}

fn exec(ctx: &NativeCallContext, h: &Host, host: &str, command: &str, timeout: Duration, changes: bool) -> Res<Map> {
    if changes && h.dry_run() {
        h.say(&format!("[dry-run] {host}: would run `{command}`"));
        let out = ExecOutput {
            host: host.to_string(),
            command: command.to_string(),
            exit_code: 0,
            stdout: String::new(),
            stderr: String::new(),
            duration: Duration::ZERO,
        };
        return Ok(output_map(&out, true));
    }
    let out = h.block_on(h.remotes.exec(host, command, timeout, &h.interrupt)).map_err(|e| e.at(ctx))?;
    Ok(output_map(&out, false))
}

pub fn module(host: &Arc<Host>) -> Module {
    let mut m = Module::new();
    let h = host.clone();
    Doc::new(
        "exec",
        &["host: string", "command: string"],
        "map",
        Effect::Changes,
        "Runs a shell command on a host and returns #{host, command, exit_code, ok, stdout, stderr,\nduration_ms, dry_run}. A non-zero exit code is returned, not thrown (see remote::run for\nthat). Time limit 120s; throws on timeout, on a refused host key and on failed login.\n\nExample: `let r = ssh::exec(\"10.0.0.1\", \"df -h /data\"); print(r.stdout);`",
    )
    .set_into(&mut m, move |ctx: NativeCallContext, host: &str, command: &str| exec(&ctx, &h, host, command, DEFAULT_EXEC_TIMEOUT, true));
    let h = host.clone();
    Doc::new(
        "exec",
        &["host: string", "command: string", "options: map"],
        "map",
        Effect::Changes,
        "Like exec(host, command) with options: #{timeout: \"10m\"} (a duration or milliseconds).\n\nExample: `ssh::exec(ep_host, \"bin/start.sh stop tablet\", #{timeout: \"2m\"});`",
    )
    .set_into(&mut m, move |ctx: NativeCallContext, host: &str, command: &str, options: Map| {
        let timeout = timeout_option(&options)?;
        exec(&ctx, &h, host, command, timeout, true)
    });
    let h = host.clone();
    Doc::new(
        "query",
        &["host: string", "command: string"],
        "map",
        Effect::ReadOnly,
        "Runs a command that changes nothing (uname, cat, test, --version) and returns the same map\nas exec. Unlike exec it also runs in --dry-run, so plans can read real state; never use it\nfor a command with side effects.\n\nExample: `let v = ssh::query(host, dir + \"/bin/openmldb --version\").stdout;`",
    )
    .set_into(&mut m, move |ctx: NativeCallContext, host: &str, command: &str| exec(&ctx, &h, host, command, DEFAULT_EXEC_TIMEOUT, false));
    let h = host.clone();
    Doc::new(
        "upload",
        &["host: string", "local_path: string", "remote_path: string"],
        "int",
        Effect::Changes,
        "Copies a file from this machine to a host (file mode kept) and returns the bytes copied.\n\nExample: `ssh::upload(host, \"openmldb-0.9.3-linux.tar.gz\", \"/tmp/openmldb-0.9.3-linux.tar.gz\");`",
    )
    .set_into(&mut m, move |ctx: NativeCallContext, host: &str, local: &str, remote: &str| -> Res<i64> {
        if h.dry_run() {
            h.say(&format!("[dry-run] {host}: would upload {local} to {remote}"));
            return Ok(0);
        }
        Ok(h.block_on(h.remotes.upload(host, Path::new(local), remote)).map_err(|e| e.at(&ctx))? as i64)
    });
    let h = host.clone();
    Doc::new(
        "download",
        &["host: string", "remote_path: string", "local_path: string"],
        "int",
        Effect::Changes,
        "Copies a file from a host to this machine and returns the bytes copied.\n\nExample: `ssh::download(host, dir + \"/conf/tablet.flags\", \"backup/tablet.flags\");`",
    )
    .set_into(&mut m, move |ctx: NativeCallContext, host: &str, remote: &str, local: &str| -> Res<i64> {
        if h.dry_run() {
            h.say(&format!("[dry-run] {host}: would download {remote} to {local}"));
            return Ok(0);
        }
        Ok(h.block_on(h.remotes.download(host, remote, Path::new(local))).map_err(|e| e.at(&ctx))? as i64)
    });
    let h = host.clone();
    Doc::new(
        "path_kind",
        &["host: string", "path: string"],
        "string",
        Effect::ReadOnly,
        "What is at a path on a host: \"file\", \"dir\", \"missing\" or \"other\" (symlinks followed).\n\nExample: `if ssh::path_kind(host, dir + \"/bin\") != \"dir\" { throw \"no bin/ in \" + dir; }`",
    )
    .set_into(&mut m, move |ctx: NativeCallContext, host: &str, path: &str| -> Res<String> {
        Ok(h.block_on(h.remotes.path_kind(host, path)).map_err(|e| e.at(&ctx))?.as_str().to_string())
    });
    let h = host.clone();
    Doc::new(
        "exists",
        &["host: string", "path: string"],
        "bool",
        Effect::ReadOnly,
        "True when something exists at a path on a host.\n\nExample: `ssh::exists(host, dir + \"/bin/tablet.pid\")`",
    )
    .set_into(&mut m, move |ctx: NativeCallContext, host: &str, path: &str| -> Res<bool> {
        Ok(h.block_on(h.remotes.path_kind(host, path)).map_err(|e| e.at(&ctx))? != crate::remote::PathKind::Missing)
    });
    m
}
