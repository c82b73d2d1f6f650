//! Global helpers: waiting, durations, settings (`--set`), environment, dry-run.

use std::sync::Arc;
use std::time::Duration;

use rhai::{Dynamic, Engine, EvalAltResult, Map, NativeCallContext};

use super::{duration_arg, Doc, Effect};
use crate::script::Host;

pub fn register(engine: &mut Engine, host: &Arc<Host>) {
    let h = host.clone();
    Doc::new(
        "sleep",
        &["duration: string"],
        "()",
        Effect::ReadOnly,
        "Waits for a duration such as \"500ms\", \"10s\" or \"2m\". Ctrl-C ends the wait at once.\n\nExample: `sleep(\"5s\"); // bake time`",
    )
    .register(engine, move |ctx: NativeCallContext, text: &str| -> Result<(), Box<EvalAltResult>> {
        let d = duration_arg(text)?;
        h.block_on(async move {
            tokio::time::sleep(d).await;
            Ok::<_, String>(())
        }).map_err(|e| e.at(&ctx))
    });
    let h = host.clone();
    Doc::new(
        "sleep",
        &["milliseconds: int"],
        "()",
        Effect::ReadOnly,
        "Waits for a number of milliseconds. Ctrl-C ends the wait at once.\n\nExample: `sleep(250);`",
    )
    .register(engine, move |ctx: NativeCallContext, ms: i64| -> Result<(), Box<EvalAltResult>> {
        let d = Duration::from_millis(ms.max(0) as u64);
        h.block_on(async move {
            tokio::time::sleep(d).await;
            Ok::<_, String>(())
        })
        .map_err(|e| e.at(&ctx))
    });
    Doc::new(
        "duration_ms",
        &["text: string"],
        "int",
        Effect::ReadOnly,
        "Milliseconds in a duration such as \"1m30s\"; throws on text that is not a duration.\n\nExample: `let timeout = duration_ms(setting(\"tablet_timeout\", \"10m\"));`",
    )
    .register(engine, |text: &str| -> Result<i64, Box<EvalAltResult>> {
        Ok(duration_arg(text)?.as_millis() as i64)
    });
    Doc::new(
        "env",
        &["name: string"],
        "string or ()",
        Effect::ReadOnly,
        "The value of an environment variable of the mldb-upgrade process, or () when unset.\n\nExample: `let pager = env(\"PAGER_URL\");`",
    )
    .register(engine, |name: &str| -> Dynamic { std::env::var(name).map(Dynamic::from).unwrap_or(Dynamic::UNIT) });
    Doc::new(
        "env",
        &["name: string", "default: string"],
        "string",
        Effect::ReadOnly,
        "The value of an environment variable, or `default` when unset.\n\nExample: `let user = env(\"USER\", \"openmldb\");`",
    )
    .register(engine, |name: &str, default: &str| -> String { std::env::var(name).unwrap_or_else(|_| default.to_string()) });
    let h = host.clone();
    Doc::new(
        "dry_run",
        &[],
        "bool",
        Effect::ReadOnly,
        "True when running with --dry-run (or `:dry-run on` in the REPL): primitives that change\nanything only say what they would do.\n\nExample: `if dry_run() { print(\"plan only\"); }`",
    )
    .register(engine, move || h.dry_run());
    let h = host.clone();
    Doc::new(
        "setting",
        &["name: string"],
        "string",
        Effect::ReadOnly,
        "The value given with --set name=value; throws, naming the flag to pass, when it was not given.\n\nExample: `let release = setting(\"release\");`",
    )
    .register(engine, move |name: &str| -> Result<String, Box<EvalAltResult>> {
        h.settings.get(name).cloned().ok_or_else(|| {
            format!("setting `{name}` is not set: pass --set {name}=VALUE").into()
        })
    });
    let h = host.clone();
    Doc::new(
        "setting",
        &["name: string", "default: string"],
        "string",
        Effect::ReadOnly,
        "The value given with --set name=value, or `default`.\n\nExample: `let policy = setting(\"single_replica\", \"add_replica\");`",
    )
    .register(engine, move |name: &str, default: &str| -> String {
        h.settings.get(name).cloned().unwrap_or_else(|| default.to_string())
    });
    let h = host.clone();
    Doc::new(
        "settings",
        &[],
        "map",
        Effect::ReadOnly,
        "All --set values as a map.\n\nExample: `for k in settings().keys() { print(k); }`",
    )
    .register(engine, move || -> Map {
        h.settings.iter().map(|(k, v)| (k.as_str().into(), Dynamic::from(v.clone()))).collect()
    });
}
