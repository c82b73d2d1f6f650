//! The simulated `bin/openmldb` (see `mldb_upgrade::sim`). Installed as `bin/mon` it is the
//! daemon-mode supervisor instead (`mldb_upgrade::sim::mon`), like a multi-call binary.
fn main() -> std::process::ExitCode {
    let mut args = std::env::args();
    let argv0 = args.next().unwrap_or_default();
    let rest: Vec<String> = args.collect();
    if std::path::Path::new(&argv0).file_name().is_some_and(|name| name == "mon") {
        return mldb_upgrade::sim::mon::main_with_args(rest);
    }
    mldb_upgrade::sim::process::main_with_args(rest)
}
