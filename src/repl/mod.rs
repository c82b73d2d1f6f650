//! `mldb-upgrade repl`: the cluster primitives interactively.
//!
//! - [`session`]: the logic (scope, accumulated functions, multi-line input, commands), with
//!   no terminal I/O, so tests feed it lines.
//! - [`complete`]: tab completion as a pure function of the line and the session.
//! - [`render`]: how results print (uniform lists of maps as tables).
//! - [`cluster`]: the `:cluster` summary.
//! - [`editor`]: the thin rustyline front end: prompt, history file, Ctrl-C and Ctrl-D.

pub mod cluster;
pub mod complete;
pub mod editor;
pub mod render;
pub mod session;

pub use editor::{history_path, run, Options};
pub use session::{Reply, Session};
