//! mldb-upgrade: rolling upgrades of a live OpenMLDB cluster, driven by Rhai scripts.
//! ARCHITECTURE.md walks one leader move through these modules and states the layer rules.
//!
//! Module map:
//! - [`cli`]: command-line arguments; parses and prints, decides nothing.
//! - [`config`]: the cluster config file (`cluster.toml`) and OpenMLDB's `conf/hosts`.
//! - [`error`]: the top-level error and its exit codes.
//! - [`diagnostic`]: rendering errors that point into a file (line, caret).
//! - [`interrupt`]: Ctrl-C and cancellation shared by the engine and the primitives.
//! - [`progress`]: live lines for long waits on a terminal.
//! - [`timing`]: where a run's time goes (waiting on OpenMLDB versus own work) and its lower bound.
//! - [`process`]: processes on this machine (is a pid alive, stop one).
//! - [`cluster`]: the OpenMLDB side (ZooKeeper, RPCs, waits, components, upgrade operations,
//!   status); async, no Rhai.
//! - [`journal`]: the run journal and lock in ZooKeeper (and a local mirror): what to resume or undo.
//! - [`ssh`]: commands and files on hosts (ssh2 or local).
//! - [`release`]: an OpenMLDB release package on this machine.
//! - [`script`]: the Rhai engine, bindings, stock modules, docs and error rendering.
//! - [`repl`]: `mldb-upgrade repl`: a session (pure, tested) behind a rustyline front end.
//! - [`sandbox`]: local rehearsal clusters (real ZooKeeper, simulated OpenMLDB).
//! - [`sim`]: the simulated OpenMLDB processes (`openmldb-sim`).

pub mod cli;
pub mod cluster;
pub mod config;
pub mod diagnostic;
pub mod discover;
pub mod error;
pub mod interrupt;
pub mod journal;
pub mod process;
pub mod progress;
pub mod release;
pub mod repl;
pub mod sandbox;
pub mod script;
pub mod sim;
pub mod ssh;
pub mod timing;

pub use cli::run;
