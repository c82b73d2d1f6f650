//! The TaskManager's log, as its log4j configuration writes it.
//!
//! # What the real TaskManager does
//!
//! The TaskManager logs through commons-logging / slf4j to log4j 1.x (pulled in by ZooKeeper
//! 3.4.14, `java/openmldb-taskmanager/pom.xml`), configured by `log4j.properties`: the
//! appassembler script `taskmanager/bin/taskmanager.sh` puts `taskmanager/conf/` (a copy of
//! `java/openmldb-taskmanager/src/main/resources/`) first on the class path. That file says:
//!
//! * `log4j.rootLogger=INFO, console, file`;
//! * `console`: a `ConsoleAppender` (stdout) with `ConversionPattern=%d %p [%c] - %m%n`;
//! * `file`: a `DailyRollingFileAppender`, `append=true`, the same pattern,
//!   `file=./logs/taskmanager.log` (relative to the JVM's working directory, which start.sh
//!   makes `taskmanager/bin`), rolled daily to `taskmanager.log.yyyy-MM-dd`.
//!
//! So a line reads `2024-12-02 13:05:01,123 INFO [com._4paradigm.openmldb.taskmanager.server.TaskManagerServer] - The server runs and prepares for leader election`
//! (`%d` is log4j's ISO8601 format `yyyy-MM-dd HH:mm:ss,SSS` in local time, `%p` the level,
//! `%c` the logger's category, the class name). A logged exception follows its line as
//! `<exception class>: <message>` and its stack trace.
//!
//! start.sh runs `sh ./taskmanager.sh > "$LOG_DIR/taskmanager.log" 2>&1` from inside
//! `taskmanager/bin`, where `LOG_DIR` is `job.log.path` (`./logs/` in the template). With that
//! default the console copy is redirected into `taskmanager/bin/logs/taskmanager.log`, the very
//! file the `file` appender appends to.
//!
//! # What the simulator writes
//!
//! [`Log4j`] appends every line to `./logs/taskmanager.log` under the working directory
//! (creating `logs/` like log4j's `FileAppender`) and, as the console appender, writes it to
//! stdout, unless stdout already is that file. Simplifications: the console copy is skipped in
//! that case (the real JVM writes both copies through two file offsets, the shell's one not
//! in append mode, and the two overwrite each other); `taskmanager/conf/log4j.properties` is not
//! read (the simulator always behaves as the shipped one; a sandbox release's placeholder
//! differs); no daily rollover; exceptions get their `class: message` line but no stack trace.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use chrono::{DateTime, Local};

/// `log4j.appender.file.file`, relative to the working directory.
pub const LOG_FILE: &str = "logs/taskmanager.log";

/// log4j's levels as `%p` prints them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Info,
    Warn,
    Error,
    Fatal,
}

impl Level {
    pub fn name(self) -> &'static str {
        match self {
            Level::Info => "INFO",
            Level::Warn => "WARN",
            Level::Error => "ERROR",
            Level::Fatal => "FATAL",
        }
    }
}

/// `%d %p [%c] - %m%n`.
pub fn format_line(now: DateTime<Local>, level: Level, category: &str, message: &str) -> String {
    format!("{} {} [{category}] - {message}\n", now.format("%Y-%m-%d %H:%M:%S,%3f"), level.name())
}

/// The root logger with its `console` and `file` appenders.
#[derive(Debug)]
pub struct Log4j {
    path: PathBuf,
    file: Mutex<Option<File>>,
    console: bool,
}

impl Log4j {
    /// Opens `./logs/taskmanager.log` under `cwd` for appending.
    pub fn open(cwd: &Path) -> Log4j {
        let path = cwd.join(LOG_FILE);
        if let Some(parent) = path.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        let file = OpenOptions::new().append(true).create(true).open(&path).ok();
        let console = !stdout_is(&path);
        Log4j { path, file: Mutex::new(file), console }
    }

    /// The file appender's file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn log(&self, level: Level, category: &str, message: &str) {
        self.write(&format_line(Local::now(), level, category, message));
    }

    /// A line followed by the exception it carries (`<class>: <message>`).
    pub fn log_throwable(&self, level: Level, category: &str, message: &str, throwable: &str) {
        let mut text = format_line(Local::now(), level, category, message);
        text.push_str(throwable);
        text.push('\n');
        self.write(&text);
    }

    fn write(&self, text: &str) {
        if self.console {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(text.as_bytes());
            let _ = out.flush();
        }
        if let Ok(mut file) = self.file.lock() {
            if let Some(file) = file.as_mut() {
                let _ = file.write_all(text.as_bytes());
            }
        }
    }
}

/// Whether this process's stdout is the file at `path`.
fn stdout_is(path: &Path) -> bool {
    match (std::fs::metadata("/proc/self/fd/1"), std::fs::metadata(path)) {
        (Ok(out), Ok(file)) => out.dev() == file.dev() && out.ino() == file.ino(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    /// `java/openmldb-taskmanager/src/main/resources/log4j.properties`: `%d %p [%c] - %m%n`.
    #[test]
    fn layout_of_log4j_properties() {
        let now = Local.with_ymd_and_hms(2024, 12, 2, 13, 5, 1).single().expect("local time")
            + chrono::Duration::milliseconds(42);
        assert_eq!(
            format_line(now, Level::Info, "com._4paradigm.openmldb.taskmanager.server.TaskManagerServer", "hi"),
            "2024-12-02 13:05:01,042 INFO [com._4paradigm.openmldb.taskmanager.server.TaskManagerServer] - hi\n"
        );
    }

    #[test]
    fn appends_to_logs_taskmanager_log_under_the_working_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("logs")).expect("mkdir");
        std::fs::write(dir.path().join("logs/taskmanager.log"), "earlier\n").expect("write");
        let log = Log4j::open(dir.path());
        log.log_throwable(Level::Error, "c", "Fail to start TaskManager", "java.lang.Exception: x");
        let text = std::fs::read_to_string(dir.path().join("logs/taskmanager.log")).expect("read");
        assert!(text.starts_with("earlier\n"), "{text}");
        assert!(text.ends_with(" ERROR [c] - Fail to start TaskManager\njava.lang.Exception: x\n"), "{text}");
    }
}
