//! mldb-upgrade: rolling upgrades of a live OpenMLDB cluster, driven by Rhai scripts.
//!
//! Module map:
//! - [`cli`]: command-line arguments and the subcommands they run.
//! - [`config`]: the cluster config file (`cluster.toml`) and OpenMLDB's `conf/hosts`.
//! - [`error`]: the top-level error and its exit codes.
//! - [`diagnostic`]: rendering errors that point into a file (line, caret).
//! - [`interrupt`]: Ctrl-C and cancellation shared by the engine and the primitives.
//! - [`cluster`]: the OpenMLDB side (topology, ZooKeeper); async, no Rhai.
//! - [`journal`]: the run journal in ZooKeeper (and a local mirror): what to resume or undo.
//! - [`remote`]: commands and files on hosts (ssh2 or local).
//! - [`script`]: the Rhai engine, bindings, stock modules and error rendering.
//! - [`repl`]: `mldb-upgrade repl`: a session (pure, tested) behind a rustyline front end.
//! - [`sandbox`]: local rehearsal clusters (real ZooKeeper, simulated OpenMLDB).
//! - [`sim`]: the simulated OpenMLDB nameserver and tablet (`openmldb-sim`).

pub mod cli;
pub mod cluster;
pub mod config;
pub mod diagnostic;
pub mod error;
pub mod interrupt;
pub mod journal;
pub mod progress;
pub mod remote;
pub mod repl;
pub mod sandbox;
pub mod script;
pub mod sim;

pub use cli::run;
