//! `log::`: diagnostic messages into the tool's log (stderr, `-v`, `--log-format json`).
//! User-facing output is `print`.

use rhai::plugin::*;

#[export_module]
pub mod api {
    /// Logs an informational message (shown at the default verbosity).
    ///
    /// Example: `log::info("draining " + ep);`
    #[rhai_fn(volatile)]
    pub fn info(message: &str) {
        tracing::info!(target: "script", "{message}");
    }

    /// Logs a warning.
    ///
    /// Example: `log::warn("follower lags by " + lag);`
    #[rhai_fn(volatile)]
    pub fn warn(message: &str) {
        tracing::warn!(target: "script", "{message}");
    }

    /// Logs an error without stopping the script (use `throw` to stop).
    ///
    /// Example: `log::error("tablet " + ep + " did not come back");`
    #[rhai_fn(volatile)]
    pub fn error(message: &str) {
        tracing::error!(target: "script", "{message}");
    }

    /// Logs a debug message (shown with -v).
    ///
    /// Example: `log::debug("raw reply: " + reply);`
    #[rhai_fn(volatile)]
    pub fn debug(message: &str) {
        tracing::debug!(target: "script", "{message}");
    }
}
