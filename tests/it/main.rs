//! Integration tests: the real binary against a real ZooKeeper and a real OpenSSH server.
#![allow(clippy::unwrap_used)]

mod support;

mod bad_input;
mod batches;
mod checks;
mod cli;
mod component;
mod deploy;
mod discover;
mod docs;
mod errors;
mod flow;
mod interrupt;
mod recover;
mod repl;
mod sandbox;
mod sbin;
mod scripts;
mod sdk;
mod ssh;
mod tables;
mod upgrade;
mod yarn;
mod zk;
