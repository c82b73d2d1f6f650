//! Integration tests of the simulated OpenMLDB cluster against a real ZooKeeper. Each test
//! is named after the section of `reference/openmldb-cluster.md` (C§) or the OpenMLDB source
//! file it checks.

mod c1_1_use_name;
mod c1_3_reload;
mod c1_zookeeper;
mod c2_4_data;
mod c2_rpc;
mod c3_4_load;
mod c3_5_replication;
mod c3_ops;
mod c4_send_data;
mod c4_snapshot;
mod c4_storage;
mod cli_compat;
mod glog_wrapper;
mod in_process;
mod replicator;
mod sandbox_options;
mod support;
mod taskmanager;
