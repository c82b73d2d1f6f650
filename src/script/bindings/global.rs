//! Global functions: waiting, durations, settings (`--set`), environment, dry-run.

use super::{Call, RhaiResultOf};
use rhai::plugin::*;
use rhai::{Dynamic, Map};
use std::time::Duration;

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

    /// The value given with --set name=value; throws, naming the flag to pass, when it was not given.
    ///
    /// Example: `let release = setting("release");`
    #[rhai_fn(volatile, return_raw)]
    pub fn setting(ctx: NativeCallContext, name: &str) -> RhaiResultOf<String> {
        let call = Call::new(&ctx, "")?;
        let value = call.host.settings.get(name).cloned();
        value.ok_or_else(|| format!("setting `{name}` is not set: pass --set {name}=VALUE").into())
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
