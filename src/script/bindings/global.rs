//! Global functions: waiting, durations, settings (`--set`), environment, dry-run, asking the
//! operator, tables.

use std::io::IsTerminal;
use std::time::Duration;

use rhai::plugin::*;
use rhai::{Array, Dynamic, Map};

use super::{Call, RhaiResultOf};

#[export_module]
pub mod api {
    use super::*;

    /// Waits for a duration such as "500ms", "10s" or "2m". Ctrl-C ends the wait at once.
    ///
    /// Example: `sleep("5s"); // bake time`
    #[rhai_fn(name = "sleep", volatile, return_raw)]
    pub fn sleep_for(ctx: NativeCallContext, duration: &str) -> RhaiResultOf<()> {
        let call = Call::new(&ctx, "")?;
        pause(&call, call.duration(duration)?)
    }

    /// Waits for a number of milliseconds. Ctrl-C ends the wait at once.
    ///
    /// Example: `sleep(250);`
    #[rhai_fn(name = "sleep", volatile, return_raw)]
    pub fn sleep_ms(ctx: NativeCallContext, milliseconds: i64) -> RhaiResultOf<()> {
        pause(&Call::new(&ctx, "")?, Duration::from_millis(milliseconds.max(0) as u64))
    }

    /// Milliseconds in a duration such as "1m30s"; throws on text that is not a duration.
    ///
    /// Example: `let timeout = duration_ms(setting("tablet_timeout", "10m"));`
    #[rhai_fn(volatile, return_raw)]
    pub fn duration_ms(text: &str) -> RhaiResultOf<i64> {
        let duration = crate::config::parse_duration(text).map_err(|m| -> Box<EvalAltResult> { m.into() })?;
        Ok(duration.as_millis() as i64)
    }

    /// The value of an environment variable of the mldb-upgrade process, or () when unset.
    ///
    /// Example: `let pager = env("PAGER_URL");`
    #[rhai_fn(volatile)]
    pub fn env(name: &str) -> Dynamic {
        std::env::var(name).map(Dynamic::from).unwrap_or(Dynamic::UNIT)
    }

    /// The value of an environment variable, or `default` when unset.
    ///
    /// Example: `let user = env("USER", "openmldb");`
    #[rhai_fn(name = "env", volatile)]
    pub fn env_or(name: &str, default: &str) -> String {
        std::env::var(name).unwrap_or_else(|_| default.to_string())
    }

    /// True when running with --dry-run (or `:dry-run on` in the REPL): primitives that change
    /// anything only say what they would do.
    ///
    /// Example: `if dry_run() { print("plan only"); }`
    #[rhai_fn(volatile, return_raw)]
    pub fn dry_run(ctx: NativeCallContext) -> RhaiResultOf<bool> {
        Ok(Call::new(&ctx, "")?.dry_run())
    }

    /// The value given with --set name=value, or the default the script declares for it (its
    /// SETTINGS constant); throws, naming the flag to pass, when there is neither.
    ///
    /// Example: `let release = setting("release");`
    #[rhai_fn(volatile, return_raw)]
    pub fn setting(ctx: NativeCallContext, name: &str) -> RhaiResultOf<String> {
        let call = Call::new(&ctx, "")?;
        call.host
            .setting(name)
            .ok_or_else(|| call.fail(format!("setting `{name}` is not set: pass --set {name}=VALUE")))
    }

    /// The value given with --set name=value, or `default`.
    ///
    /// Example: `let policy = setting("single_replica", "add_replica");`
    #[rhai_fn(name = "setting", volatile, return_raw)]
    pub fn setting_or(ctx: NativeCallContext, name: &str, default: &str) -> RhaiResultOf<String> {
        let call = Call::new(&ctx, "")?;
        let value = call.host.settings.get(name).cloned();
        Ok(value.unwrap_or_else(|| default.to_string()))
    }

    /// Asks the operator a yes/no question on the terminal and returns the answer (yes only for
    /// "y" or "yes"). With --yes it answers yes without asking; in --dry-run it says what it
    /// would ask and answers yes. Throws when there is no terminal to ask on (pass --yes).
    ///
    /// Example: `if !confirm("upgrade the tablets now?") { throw "stopped by the operator"; }`
    #[rhai_fn(volatile, return_raw)]
    pub fn confirm(ctx: NativeCallContext, question: &str) -> RhaiResultOf<bool> {
        let call = Call::new(&ctx, "")?;
        if call.dry_run() {
            call.say(&format!("[dry-run] would ask: {question} [y/N]"));
            return Ok(true);
        }
        if call.host.yes() {
            call.say(&format!("{question} yes (--yes)"));
            return Ok(true);
        }
        if !std::io::stdin().is_terminal() {
            return Err(
                call.fail(format!("cannot ask \"{question}\": there is no terminal; run it from one, or pass --yes"))
            );
        }
        let answer = call.run(ask(question))?;
        Ok(matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes"))
    }

    /// An array of maps as an aligned table of the given columns, in that order (a missing key
    /// shows as -).
    ///
    /// Example: `print(table([#{name: "ns", version: "0.9.2"}], ["name", "version"]));`
    #[rhai_fn(volatile)]
    pub fn table(rows: Array, columns: Array) -> String {
        let columns: Vec<String> = columns.into_iter().map(|c| c.to_string()).collect();
        let mut table = comfy_table::Table::new();
        table.load_preset(comfy_table::presets::NOTHING);
        table.set_header(columns.iter());
        for row in rows {
            let row = row.try_cast::<Map>().unwrap_or_default();
            table.add_row(columns.iter().map(|c| row.get(c.as_str()).map_or("-".to_string(), |v| v.to_string())));
        }
        table.to_string()
    }

    /// All --set values as a map.
    ///
    /// Example: `for k in settings().keys() { print(k); }`
    #[rhai_fn(volatile, return_raw)]
    pub fn settings(ctx: NativeCallContext) -> RhaiResultOf<Map> {
        let call = Call::new(&ctx, "")?;
        Ok(call.host.settings.iter().map(|(k, v)| (k.as_str().into(), Dynamic::from(v.clone()))).collect())
    }
}

/// Waits for `duration`; Ctrl-C ends the wait at once.
fn pause(call: &Call, duration: Duration) -> RhaiResultOf<()> {
    call.run(async move {
        tokio::time::sleep(duration).await;
        Ok::<_, String>(())
    })
}

/// Reads one line from the terminal after printing `question`; Ctrl-C ends the wait.
async fn ask(question: &str) -> Result<String, String> {
    crate::progress::suspend(|| {
        eprint!("{question} [y/N] ");
        let _ = std::io::Write::flush(&mut std::io::stderr());
    });
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let read = std::io::stdin().read_line(&mut line).map(|_| line).map_err(|e| e.to_string());
        let _ = tx.send(read);
    });
    rx.await.map_err(|_| "the terminal closed".to_string())?
}
