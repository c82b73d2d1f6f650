//! Script errors as operators should see them: the message, `file:line:col`, the source line
//! with a caret, and the call chain across modules, innermost last.
//!
//! ```text
//! error: version `0.9` is not X.Y.Z
//!   --> stdlib/version.rhai:12:9
//!    |
//! 12 |         throw `version \`${text}\` is not X.Y.Z`;
//!    |         ^
//!   = call chain:
//!       scripts/check.rhai:3:13      calls version::parse
//!       stdlib/version.rhai:12:9     throws here
//! ```

use rhai::{EvalAltResult, Position};

use super::resolver::SourceMap;
use crate::diagnostic::{self, Location};

/// How a script failed, which decides the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScriptErrorKind {
    /// The script is wrong: syntax, a missing module, an unknown function (exit 2).
    Input,
    /// The script ran and something failed (exit 1).
    Failed,
    /// Stopped by Ctrl-C (exit 1).
    Interrupted,
}

#[derive(Debug, Clone)]
pub struct ScriptError {
    pub kind: ScriptErrorKind,
    pub message: String,
    /// Innermost place the error happened.
    pub location: Option<Location>,
    /// Call sites from the outermost script to the failing line.
    pub chain: Vec<Frame>,
    rendered: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub location: Location,
    pub note: String,
}

impl std::fmt::Display for ScriptError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.rendered)
    }
}

impl std::error::Error for ScriptError {}

fn location(source: &str, pos: Position) -> Option<Location> {
    Some(Location { file: source.to_string(), line: pos.line()?, column: pos.position().unwrap_or(1) })
}

impl ScriptError {
    /// Builds the error for `err` raised while running the script labelled `main_source`.
    pub fn from_eval(err: &EvalAltResult, main_source: &str, sources: &SourceMap) -> Self {
        let mut chain = Vec::new();
        let mut current_source = main_source.to_string();
        let mut err = err;
        loop {
            match err {
                EvalAltResult::ErrorInFunctionCall(name, fn_source, inner, pos) => {
                    if let Some(location) = location(&current_source, *pos) {
                        chain.push(Frame { location, note: format!("calls {name}()") });
                    }
                    if !fn_source.is_empty() {
                        current_source = fn_source.clone();
                    }
                    err = inner;
                }
                EvalAltResult::ErrorInModule(module, inner, pos) => {
                    if let Some(location) = location(&current_source, *pos) {
                        chain.push(Frame { location, note: format!("imports {module}") });
                    }
                    current_source = module.clone();
                    err = inner;
                }
                leaf => {
                    let message = leaf_message(leaf);
                    let kind = match leaf {
                        EvalAltResult::ErrorParsing(..)
                        | EvalAltResult::ErrorFunctionNotFound(..)
                        | EvalAltResult::ErrorModuleNotFound(..)
                        | EvalAltResult::ErrorVariableNotFound(..) => ScriptErrorKind::Input,
                        EvalAltResult::ErrorTerminated(..) => ScriptErrorKind::Interrupted,
                        _ => ScriptErrorKind::Failed,
                    };
                    let location = location(&current_source, leaf.position());
                    if let Some(loc) = &location {
                        let note =
                            if matches!(leaf, EvalAltResult::ErrorRuntime(..)) { "fails here" } else { "error here" };
                        chain.push(Frame { location: loc.clone(), note: note.into() });
                    }
                    return Self::assemble(kind, message, location, chain, sources);
                }
            }
        }
    }

    /// A parse error in the main script.
    pub fn from_parse(err: &rhai::ParseError, source: &str, sources: &SourceMap) -> Self {
        let message = err.err_type().to_string();
        let location = location(source, err.position());
        Self::assemble(ScriptErrorKind::Input, message, location, Vec::new(), sources)
    }

    /// A problem found at a place in a script before it runs.
    pub fn at(kind: ScriptErrorKind, message: String, source: &str, pos: Position, sources: &SourceMap) -> Self {
        let location = location(source, pos);
        Self::assemble(kind, message, location, Vec::new(), sources)
    }

    /// A problem with the script as a whole (unreadable file).
    pub fn plain(kind: ScriptErrorKind, message: String) -> Self {
        let rendered = format!("error: {message}");
        ScriptError { kind, message, location: None, chain: Vec::new(), rendered }
    }

    fn assemble(
        kind: ScriptErrorKind,
        message: String,
        location: Option<Location>,
        chain: Vec<Frame>,
        sources: &SourceMap,
    ) -> Self {
        let mut out = format!("error: {message}\n");
        if let Some(loc) = &location {
            let text = sources.get(&loc.file);
            diagnostic::write_snippet(&mut out, loc, text.as_deref(), 1);
        }
        if chain.len() > 1 {
            out.push_str("  = call chain:\n");
            let width = chain.iter().map(|f| f.location.to_string().len()).max().unwrap_or(0);
            for frame in &chain {
                out.push_str(&format!("      {:<width$}  {}\n", frame.location.to_string(), frame.note));
            }
        }
        if kind == ScriptErrorKind::Interrupted {
            out.push_str(
                "  = the script was stopped by Ctrl-C; run `mldb-upgrade status` to see where it left the cluster\n",
            );
        }
        let rendered = out.trim_end().to_string();
        ScriptError { kind, message, location, chain, rendered }
    }
}

fn leaf_message(err: &EvalAltResult) -> String {
    match err {
        // A `throw` of a string shows the string itself, not Rhai's "Runtime error: " prefix.
        EvalAltResult::ErrorRuntime(value, _) => match value.clone().into_immutable_string() {
            Ok(s) => s.to_string(),
            Err(_) => value.to_string(),
        },
        EvalAltResult::ErrorTerminated(..) => "interrupted".into(),
        EvalAltResult::ErrorFunctionNotFound(sig, _) => {
            // Rhai appends the argument types, e.g. `zk::chilren (&str | ImmutableString | String)`.
            let name = sig.split(" (").next().unwrap_or(sig);
            format!("unknown function {name}; `mldb-upgrade docs` lists the functions scripts can call")
        }
        EvalAltResult::ErrorModuleNotFound(name, _) => format!(
            "module `{name}` not found: looked for {name}.rhai in --lib directories, next to the script, and in the stock modules"
        ),
        other => {
            let mut text = other.to_string();
            // Rhai appends " (line L, position C)"; the location is shown separately.
            if let Some(i) = text.rfind(" (line ") {
                text.truncate(i);
            }
            text
        }
    }
}
