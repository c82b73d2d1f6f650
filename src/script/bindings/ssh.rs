//! `ssh::`: commands and files on hosts ([`crate::ssh`]), whatever the host's transport (`ssh2`
//! or `local`, set per host in the cluster config).

use super::{to_map, Call, Options, RhaiResultOf};
use crate::ssh::{ExecOutput, PathKind, SshError};
use rhai::plugin::*;
use rhai::Map;
use serde::Serialize;
use std::future::Future;
use std::path::Path;
use std::time::Duration;

const NS: &str = "ssh";

/// Default time limit of one remote command.
const DEFAULT_EXEC_TIMEOUT: Duration = Duration::from_secs(120);

/// What scripts see of a finished command.
#[derive(Serialize)]
struct ExecResult<'a> {
    host: &'a str,
    command: &'a str,
    exit_code: i32,
    ok: bool,
    stdout: &'a str,
    stderr: &'a str,
    duration_ms: u64,
    dry_run: bool,
}

#[export_module]
pub mod api {
    use super::*;

    /// Runs a shell command on a host and returns #{host, command, exit_code, ok, stdout, stderr,
    /// duration_ms, dry_run}. A non-zero exit code is returned, not thrown (see remote::run for
    /// that). Time limit 120s; throws on timeout, on a refused host key and on failed login.
    /// Changes the host: in --dry-run it prints the command and runs nothing.
    ///
    /// Example: `let r = ssh::exec("10.0.0.1", "df -h /data"); print(r.stdout);`
    #[rhai_fn(volatile, return_raw)]
    pub fn exec(ctx: NativeCallContext, host: &str, command: &str) -> RhaiResultOf<Map> {
        run_command(&Call::new(&ctx, NS)?, host, command, DEFAULT_EXEC_TIMEOUT, true)
    }

    /// Like exec(host, command) with options: #{timeout: "10m"} (a duration or milliseconds).
    /// Changes the host: in --dry-run it prints the command and runs nothing.
    ///
    /// Example: `ssh::exec(ep_host, "bin/start.sh stop tablet", #{timeout: "2m"});`
    #[rhai_fn(name = "exec", volatile, return_raw)]
    pub fn exec_with(ctx: NativeCallContext, host: &str, command: &str, options: Map) -> RhaiResultOf<Map> {
        let call = Call::new(&ctx, NS)?;
        let timeout = Options::new(&call, &options, &["timeout"])?.duration("timeout", DEFAULT_EXEC_TIMEOUT)?;
        run_command(&call, host, command, timeout, true)
    }

    /// Runs a command that changes nothing (uname, cat, test, --version) and returns the same map
    /// as exec. Unlike exec it also runs in --dry-run, so plans can read real state; never use it
    /// for a command with side effects.
    ///
    /// Example: `let v = ssh::query(host, dir + "/bin/openmldb --version").stdout;`
    #[rhai_fn(volatile, return_raw)]
    pub fn query(ctx: NativeCallContext, host: &str, command: &str) -> RhaiResultOf<Map> {
        run_command(&Call::new(&ctx, NS)?, host, command, DEFAULT_EXEC_TIMEOUT, false)
    }

    /// Copies a file from this machine to a host (file mode kept) and returns the bytes copied.
    /// Changes the host: in --dry-run it prints what it would copy and copies nothing.
    ///
    /// Example: `ssh::upload(host, "openmldb-0.9.3-linux.tar.gz", "/tmp/openmldb-0.9.3-linux.tar.gz");`
    #[rhai_fn(volatile, return_raw)]
    pub fn upload(ctx: NativeCallContext, host: &str, local_path: &str, remote_path: &str) -> RhaiResultOf<i64> {
        let call = Call::new(&ctx, NS)?;
        let what = format!("{host}: would upload {local_path} to {remote_path}");
        copy_file(&call, &what, call.host.ssh.upload(host, Path::new(local_path), remote_path))
    }

    /// Copies a file from a host to this machine and returns the bytes copied.
    /// Changes this machine: in --dry-run it prints what it would copy and copies nothing.
    ///
    /// Example: `ssh::download(host, dir + "/conf/tablet.flags", "backup/tablet.flags");`
    #[rhai_fn(volatile, return_raw)]
    pub fn download(ctx: NativeCallContext, host: &str, remote_path: &str, local_path: &str) -> RhaiResultOf<i64> {
        let call = Call::new(&ctx, NS)?;
        let what = format!("{host}: would download {remote_path} to {local_path}");
        copy_file(&call, &what, call.host.ssh.download(host, remote_path, Path::new(local_path)))
    }

    /// What is at a path on a host: "file", "dir", "missing" or "other" (symlinks followed).
    ///
    /// Example: `if ssh::path_kind(host, dir + "/bin") != "dir" { throw "no bin/ in " + dir; }`
    #[rhai_fn(volatile, return_raw)]
    pub fn path_kind(ctx: NativeCallContext, host: &str, path: &str) -> RhaiResultOf<String> {
        let call = Call::new(&ctx, NS)?;
        Ok(call.run(call.host.ssh.path_kind(host, path))?.as_str().to_string())
    }

    /// True when something exists at a path on a host.
    ///
    /// Example: `ssh::exists(host, dir + "/bin/tablet.pid")`
    #[rhai_fn(volatile, return_raw)]
    pub fn exists(ctx: NativeCallContext, host: &str, path: &str) -> RhaiResultOf<bool> {
        let call = Call::new(&ctx, NS)?;
        Ok(call.run(call.host.ssh.path_kind(host, path))? != PathKind::Missing)
    }
}

/// Runs `command` on `host`; a command that `changes` something only prints in dry-run.
fn run_command(call: &Call, host: &str, command: &str, timeout: Duration, changes: bool) -> RhaiResultOf<Map> {
    let dry_run = changes && call.dry_run();
    let out = if dry_run {
        call.say(&format!("[dry-run] {host}: would run `{command}`"));
        ExecOutput::not_run(host, command)
    } else {
        call.run(call.host.ssh.exec(host, command, timeout, &call.host.interrupt))?
    };
    to_map(&ExecResult {
        host: &out.host,
        command: &out.command,
        exit_code: out.exit_code,
        ok: out.exit_code == 0,
        stdout: &out.stdout,
        stderr: &out.stderr,
        duration_ms: out.duration.as_millis() as u64,
        dry_run,
    })
}

/// A file copy between this machine and a host; in dry-run only `what` it would do. Returns the
/// bytes copied.
fn copy_file(call: &Call, what: &str, copy: impl Future<Output = Result<u64, SshError>>) -> RhaiResultOf<i64> {
    if call.dry_run() {
        call.say(&format!("[dry-run] {what}"));
        return Ok(0);
    }
    Ok(call.run(copy)? as i64)
}
