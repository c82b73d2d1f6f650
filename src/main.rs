fn main() -> std::process::ExitCode {
    mldb_upgrade::run(std::env::args_os())
}
