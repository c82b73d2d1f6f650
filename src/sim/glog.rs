//! The log files of the simulated C++ servers (nameserver, tablet, apiserver), where and how
//! OpenMLDB's glog setup writes them.
//!
//! # What real OpenMLDB does
//!
//! `src/cmd/openmldb.cc` calls `SetupLog()` first thing in `StartNameServer`, `StartTablet` and
//! `StartAPIServer`; it ends in `UnprotectedSetupGlog` (`src/base/glog_wrapper.h`):
//!
//! * `--openmldb_log_dir` (default `./logs`, `src/flags.cc`; the release templates also say
//!   `./logs`, relative to the working directory, which start.sh makes the install dir) empty:
//!   everything goes to stderr.
//! * Otherwise the directory is created, glog is initialised with the program name
//!   `<dir>/<role>`, and INFO and WARNING get the base names `<dir>/<role>.info.log.` and
//!   `<dir>/<role>.warning.log.`, with `FLAGS_logbufsecs = 0` (every line flushed).
//!
//! With the glog OpenMLDB bundles (v0.6.0: `third-party/cmake/FetchGlog.cmake`, and the
//! `contrib/glog` submodule at the same tag), `src/logging.cc` then:
//!
//! * creates a severity's file on its first message, named base + `YYYYMMDD-HHMMSS.<pid>`
//!   (local time of that message), e.g. `logs/tablet.info.log.20241202-130501.4242`, and
//!   starts it with a four-line header (`Log file created at: ...`, `Running on machine: ...`,
//!   `Running duration (h:mm:ss): ...`, `Log line format: ...`);
//! * replaces the symlink `<program short name>.<SEVERITY>` in the file's directory, i.e.
//!   `logs/tablet.INFO` / `logs/tablet.WARNING`, with a relative link to the new file;
//! * writes a message of severity S to the file of every severity up to S, so WARNING and
//!   above land in both the INFO and the WARNING file;
//! * prefixes each line `<I|W|E|F><yyyymmdd> <hh:mm:ss.uuuuuu> <tid, width 5> <file>:<line>] `
//!   (`log_year_in_prefix` defaults to true in v0.6.0, so the year is there: older glogs write
//!   `I1202 13:05:01.123456 ...`).
//!
//! start.sh separately sends the process's stdout and stderr to `<log_dir>/<role>.log`.
//!
//! # What the simulator writes
//!
//! [`init`] does the same setup for the process; the `glog!` macro and the tracing layer
//! [`GlogLayer`] write lines as above, the `file:line` being the simulator's own
//! source location (the messages are the simulator's, several worded like OpenMLDB's). The
//! process's stderr is left exactly as it was (start.sh's `<role>.log`).
//!
//! Simplifications: with an empty `--openmldb_log_dir` the simulator writes no glog lines at
//! all (real glog would print them to stderr; the simulator's stderr keeps its own shorter
//! lines); ERROR and FATAL lines go to the INFO and WARNING files only (real glog has no
//! destination set for them and also creates `<program>.<host>.<user>.log.ERROR.*` files in
//! its default directory, usually `/tmp`, and copies them to stderr); a FATAL line does not
//! abort the process (the simulator exits 1 itself); no size-based rollover
//! (`--max_log_size`) and no `--log_overdue_days` cleaner.

use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use chrono::{DateTime, Datelike, Local, Timelike};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

/// glog's severities (`LogSeverityNames`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Info,
    Warning,
    Error,
    Fatal,
}

impl Severity {
    /// The letter that starts a line.
    pub fn letter(self) -> char {
        match self {
            Severity::Info => 'I',
            Severity::Warning => 'W',
            Severity::Error => 'E',
            Severity::Fatal => 'F',
        }
    }
}

/// The two destinations OpenMLDB configures: `(file name part, symlink suffix)`.
const DESTINATIONS: [(Severity, &str, &str); 2] =
    [(Severity::Info, "info", "INFO"), (Severity::Warning, "warning", "WARNING")];

/// One process's glog: the directory and role, and the files opened so far.
#[derive(Debug)]
pub struct Glog {
    role: String,
    dir: Option<PathBuf>,
    pid: u32,
    hostname: String,
    started: DateTime<Local>,
    files: Mutex<[Option<File>; 2]>,
}

impl Glog {
    /// `UnprotectedSetupGlog` for `role` with `--openmldb_log_dir=log_dir` (relative paths
    /// resolve against `cwd`): creates the directory when one is given.
    pub fn new(role: &str, log_dir: &str, cwd: &Path) -> std::io::Result<Glog> {
        let dir = if log_dir.is_empty() { None } else { Some(cwd.join(log_dir)) };
        if let Some(dir) = &dir {
            std::fs::create_dir_all(dir)?;
        }
        Ok(Glog {
            role: role.to_string(),
            dir,
            pid: std::process::id(),
            hostname: hostname(),
            started: Local::now(),
            files: Mutex::new([None, None]),
        })
    }

    /// The log directory; `None` when glog logs to stderr.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// Writes one message from `source_file:line` on the calling thread.
    pub fn log(&self, severity: Severity, source_file: &str, line: u32, message: &str) {
        let tid = nix::unistd::gettid().as_raw() as u32;
        self.log_at(Local::now(), tid, severity, source_file, line, message);
    }

    /// Writes one message with an explicit time and thread id.
    pub fn log_at(
        &self,
        now: DateTime<Local>,
        tid: u32,
        severity: Severity,
        source_file: &str,
        line: u32,
        message: &str,
    ) {
        let Some(dir) = &self.dir else { return };
        let text = format_line(now, tid, severity, source_file, line, message);
        let Ok(mut files) = self.files.lock() else { return };
        for (slot, (level, name, link)) in DESTINATIONS.iter().enumerate() {
            if severity < *level {
                continue;
            }
            if files[slot].is_none() {
                files[slot] = self.create(dir, now, name, link);
            }
            if let Some(file) = files[slot].as_mut() {
                let _ = file.write_all(text.as_bytes());
            }
        }
    }

    /// `LogFileObject::CreateLogfile`: the timestamped file, its header, the symlink.
    fn create(&self, dir: &Path, now: DateTime<Local>, name: &str, link: &str) -> Option<File> {
        let file_name = log_file_name(&self.role, name, now, self.pid);
        let path = dir.join(&file_name);
        let mut file = OpenOptions::new().append(true).create(true).open(&path).ok()?;
        let link_path = dir.join(format!("{}.{link}", self.role));
        let _ = std::fs::remove_file(&link_path);
        let _ = std::os::unix::fs::symlink(&file_name, &link_path);
        let _ = file.write_all(self.header(now).as_bytes());
        Some(file)
    }

    fn header(&self, now: DateTime<Local>) -> String {
        let running = (now - self.started).num_seconds().max(0);
        format!(
            "Log file created at: {}\nRunning on machine: {}\nRunning duration (h:mm:ss): {}:{:02}:{:02}\n\
             Log line format: [IWEF]yyyymmdd hh:mm:ss.uuuuuu threadid file:line] msg\n",
            now.format("%Y/%m/%d %H:%M:%S"),
            self.hostname,
            running / 3600,
            running / 60 % 60,
            running % 60
        )
    }
}

/// `<role>.<name>.log.<YYYYMMDD-HHMMSS>.<pid>`, e.g. `tablet.info.log.20241202-130501.4242`.
pub fn log_file_name(role: &str, name: &str, now: DateTime<Local>, pid: u32) -> String {
    format!("{role}.{name}.log.{}.{pid}", now.format("%Y%m%d-%H%M%S"))
}

/// One glog line: prefix, message, and a newline unless the message ends with one.
pub fn format_line(
    now: DateTime<Local>,
    tid: u32,
    severity: Severity,
    source_file: &str,
    line: u32,
    message: &str,
) -> String {
    let base = source_file.rsplit('/').next().unwrap_or(source_file);
    let mut text = format!(
        "{}{:04}{:02}{:02} {:02}:{:02}:{:02}.{:06} {tid:>5} {base}:{line}] {message}",
        severity.letter(),
        now.year(),
        now.month(),
        now.day(),
        now.hour(),
        now.minute(),
        now.second(),
        now.timestamp_subsec_micros().min(999_999),
    );
    if !text.ends_with('\n') {
        text.push('\n');
    }
    text
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

static GLOBAL: OnceLock<Glog> = OnceLock::new();

/// Sets up the process's glog once (`SetupGlog`'s once flag); later calls change nothing.
pub fn init(role: &str, log_dir: &str, cwd: &Path) -> std::io::Result<&'static Glog> {
    if let Some(glog) = GLOBAL.get() {
        return Ok(glog);
    }
    let glog = Glog::new(role, log_dir, cwd)?;
    Ok(GLOBAL.get_or_init(|| glog))
}

/// Writes to the process's glog, if [`init`] ran.
pub fn log(severity: Severity, source_file: &str, line: u32, message: &str) {
    if let Some(glog) = GLOBAL.get() {
        glog.log(severity, source_file, line, message);
    }
}

/// `glog!(Severity::Warning, "Fail to start server")`: a line from this source location.
macro_rules! glog {
    ($severity:expr, $($arg:tt)+) => {
        $crate::sim::glog::log($severity, file!(), line!(), &format!($($arg)+))
    };
}
pub(crate) use glog;

/// Sends tracing events to the process's glog: ERROR → `E`, WARN → `W`, INFO and DEBUG →
/// `I` (DEBUG only passes the filter with `--log_level=debug`, like OpenMLDB's `DEBUGLOG`,
/// which writes INFO lines). Fields follow the message as `name=value`.
#[derive(Debug, Default, Clone, Copy)]
pub struct GlogLayer;

impl<S: Subscriber> Layer<S> for GlogLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let Some(glog) = GLOBAL.get() else { return };
        let meta = event.metadata();
        let severity = match *meta.level() {
            Level::ERROR => Severity::Error,
            Level::WARN => Severity::Warning,
            _ => Severity::Info,
        };
        let mut message = MessageText::default();
        event.record(&mut message);
        glog.log(severity, meta.file().unwrap_or(meta.target()), meta.line().unwrap_or(0), &message.finish());
    }
}

#[derive(Default)]
struct MessageText {
    message: String,
    fields: String,
}

impl MessageText {
    fn finish(self) -> String {
        if self.fields.is_empty() {
            self.message
        } else if self.message.is_empty() {
            self.fields.trim_start().to_string()
        } else {
            format!("{}{}", self.message, self.fields)
        }
    }
}

impl Visit for MessageText {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.fields, " {}={value}", field.name());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.fields, " {}={value:?}", field.name());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(h: u32, m: u32, s: u32, micros: u32) -> DateTime<Local> {
        let base = Local.with_ymd_and_hms(2024, 12, 2, h, m, s).single().expect("unambiguous local time");
        base + chrono::Duration::microseconds(micros.into())
    }

    /// glog v0.6.0 `src/logging.cc` `LogMessage::Init`: year in the prefix, microseconds,
    /// thread id right-aligned in 5 columns, the source file's base name.
    #[test]
    fn line_prefix_is_glog_0_6_format() {
        let line =
            format_line(at(13, 5, 1, 7), 421, Severity::Warning, "src/sim/process.rs", 99, "Fail to start server");
        assert_eq!(line, "W20241202 13:05:01.000007   421 process.rs:99] Fail to start server\n");
        let line = format_line(at(9, 0, 0, 0), 1234567, Severity::Info, "openmldb.cc", 1, "two\nlines\n");
        assert_eq!(line, "I20241202 09:00:00.000000 1234567 openmldb.cc:1] two\nlines\n");
    }

    /// `src/base/glog_wrapper.h` + glog `CreateLogfile`: per-severity files, symlinks, and
    /// WARNING lines in both files.
    #[test]
    fn files_and_symlinks_like_glog_wrapper_h() {
        let dir = tempfile::tempdir().expect("tempdir");
        let glog = Glog::new("tablet", "./logs", dir.path()).expect("setup");
        let logs = dir.path().join("logs");
        assert!(logs.is_dir(), "the directory exists before the first line");
        assert!(std::fs::read_dir(&logs).expect("read").next().is_none(), "no file before the first line");
        glog.log_at(at(13, 5, 1, 0), 7, Severity::Info, "a.rs", 1, "hello");
        let info = log_file_name("tablet", "info", at(13, 5, 1, 0), std::process::id());
        assert_eq!(std::fs::read_link(logs.join("tablet.INFO")).expect("INFO link"), PathBuf::from(&info));
        assert!(!logs.join("tablet.WARNING").exists(), "no WARNING file without a warning");
        glog.log_at(at(13, 5, 2, 0), 7, Severity::Error, "a.rs", 2, "bad");
        let warning = log_file_name("tablet", "warning", at(13, 5, 2, 0), std::process::id());
        assert_eq!(std::fs::read_link(logs.join("tablet.WARNING")).expect("WARNING link"), PathBuf::from(&warning));
        let info_text = std::fs::read_to_string(logs.join("tablet.INFO")).expect("INFO");
        let lines: Vec<&str> = info_text.lines().collect();
        assert!(lines[0].starts_with("Log file created at: 2024/12/02 13:05:01"), "{info_text}");
        assert!(lines[1].starts_with("Running on machine: "), "{info_text}");
        assert_eq!(lines[3], "Log line format: [IWEF]yyyymmdd hh:mm:ss.uuuuuu threadid file:line] msg");
        assert_eq!(lines[4], "I20241202 13:05:01.000000     7 a.rs:1] hello");
        assert_eq!(lines[5], "E20241202 13:05:02.000000     7 a.rs:2] bad");
        let warning_text = std::fs::read_to_string(logs.join("tablet.WARNING")).expect("WARNING");
        assert!(warning_text.ends_with("E20241202 13:05:02.000000     7 a.rs:2] bad\n"), "{warning_text}");
        assert!(!warning_text.contains("hello"));
    }

    #[test]
    fn empty_log_dir_writes_no_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let glog = Glog::new("nameserver", "", dir.path()).expect("setup");
        glog.log(Severity::Warning, "a.rs", 1, "to stderr in real glog");
        assert!(glog.dir().is_none());
        assert!(std::fs::read_dir(dir.path()).expect("read").next().is_none());
    }
}
