//! The top-level error: what `main` prints and which exit code it returns.
//!
//! Exit codes: 0 success, 1 the script or an operation failed, 2 bad usage or bad input.

use crate::config::ConfigError;
use crate::script::{ScriptError, ScriptErrorKind};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Wrong arguments or values given on the command line.
    #[error("error: {0}")]
    Usage(String),
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Script(#[from] ScriptError),
    /// Something failed while acting on a cluster or a sandbox.
    #[error("error: {0}")]
    Operation(String),
}

impl Error {
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_) | Error::Config(_) => 2,
            Error::Script(e) if e.kind == ScriptErrorKind::Input => 2,
            Error::Script(_) | Error::Operation(_) => 1,
        }
    }
}
