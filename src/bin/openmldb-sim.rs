//! The simulated `bin/openmldb`: see `mldb_upgrade::sim`.
fn main() -> std::process::ExitCode {
    mldb_upgrade::sim::process::main_with_args(std::env::args().skip(1).collect())
}
