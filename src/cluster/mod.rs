//! The OpenMLDB side: topology types, ZooKeeper access and component control. Async, no Rhai in here.
pub mod component;
pub mod topology;
pub mod zk;
