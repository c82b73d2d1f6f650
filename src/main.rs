fn main() -> std::process::ExitCode {
    exit_quietly_when_stdout_closes();
    mldb_upgrade::run(std::env::args_os())
}

/// `mldb-upgrade status | head` closes our stdout early; the next `println!` then panics.
/// Such a reader wanted no more output: end as a process killed by SIGPIPE would (141),
/// without a backtrace. Rust ignores SIGPIPE so that ssh and RPC sockets see EPIPE instead of
/// killing the tool, so that signal cannot be restored instead.
fn exit_quietly_when_stdout_closes() {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if message.starts_with("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(141);
        }
        default_hook(info);
    }));
}
