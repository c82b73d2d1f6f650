//! The OpenMLDB side: topology types, ZooKeeper, the NameServer and TabletServer RPCs, waits and
//! the upgrade operations built on them, component control. Async, no Rhai in here.
pub mod component;
pub mod health;
pub mod nameserver;
pub mod rpc;
pub mod tablet;
pub mod topology;
pub mod upgrade;
pub mod zk;
