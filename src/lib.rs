//! mldb-upgrade: rolling upgrades of a live OpenMLDB cluster.
pub mod sandbox;
pub mod sim;
