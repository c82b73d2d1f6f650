//! The OpenMLDB side: topology types and ZooKeeper access. Async, no Rhai in here.
pub mod topology;
pub mod zk;
