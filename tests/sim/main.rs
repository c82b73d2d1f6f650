//! Integration tests of the simulated OpenMLDB cluster against a real ZooKeeper. Each test
//! is named after the section of `reference/openmldb-cluster.md` (C§) it checks.

mod c1_zookeeper;
mod c2_rpc;
mod c3_ops;
mod cli_compat;
mod in_process;
mod support;
