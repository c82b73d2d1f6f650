//! `log::`: diagnostic messages into the tool's log (stderr, `-v`, `--log-format json`).
//! User-facing output is `print`.

use rhai::Module;

use super::{Doc, Effect};

pub fn module() -> Module {
    let mut m = Module::new();
    Doc::new(
        "info",
        &["message: string"],
        "()",
        Effect::ReadOnly,
        "Logs an informational message (shown at the default verbosity).\n\nExample: `log::info(\"draining \" + ep);`",
    )
    .set_into(&mut m, |msg: &str| tracing::info!(target: "script", "{msg}"));
    Doc::new(
        "warn",
        &["message: string"],
        "()",
        Effect::ReadOnly,
        "Logs a warning.\n\nExample: `log::warn(\"follower lags by \" + lag);`",
    )
    .set_into(&mut m, |msg: &str| tracing::warn!(target: "script", "{msg}"));
    Doc::new("error", &["message: string"], "()", Effect::ReadOnly, "Logs an error without stopping the script (use `throw` to stop).\n\nExample: `log::error(\"tablet \" + ep + \" did not come back\");`")
        .set_into(&mut m, |msg: &str| tracing::error!(target: "script", "{msg}"));
    Doc::new(
        "debug",
        &["message: string"],
        "()",
        Effect::ReadOnly,
        "Logs a debug message (shown with -v).\n\nExample: `log::debug(\"raw reply: \" + reply);`",
    )
    .set_into(&mut m, |msg: &str| tracing::debug!(target: "script", "{msg}"));
    m
}
