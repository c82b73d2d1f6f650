//! Local rehearsal clusters: a real ZooKeeper plus simulated OpenMLDB components.
pub mod zookeeper;
