//! The terminal side of the REPL: rustyline reads lines (with history and tab completion) and
//! hands them to a [`Session`]; replies are printed. Nothing here decides what a line means.
//!
//! Ctrl-C: at the prompt rustyline has the terminal in raw mode and reports it as a key, which
//! clears the line (or an unfinished input). While a statement runs the terminal is back in
//! normal mode and Ctrl-C is SIGINT; our handler raises the host's [`Interrupt`], which ends the
//! running wait or loop, and the session goes on. Ctrl-D at an empty prompt leaves.
//!
//! [`Interrupt`]: crate::interrupt::Interrupt

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use rustyline::completion::Completer;
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::{DefaultHistory, History};
use rustyline::validate::Validator;
use rustyline::{Context, Editor, Helper};

use super::complete::complete;
use super::session::{Reply, Session};
use crate::error::Error;

/// How the front end was asked to run.
pub struct Options {
    /// The history file; `None` keeps no history.
    pub history: Option<PathBuf>,
    /// What the banner says the session is connected to.
    pub target: String,
}

/// `$MLDB_HISTORY` if set, else `~/.mldb-upgrade/history`.
pub fn history_path() -> Option<PathBuf> {
    match std::env::var_os("MLDB_HISTORY") {
        Some(p) if !p.is_empty() => Some(PathBuf::from(p)),
        _ => std::env::var_os("HOME").map(|home| Path::new(&home).join(".mldb-upgrade").join("history")),
    }
}

/// Rustyline's view of the session: completion only.
struct ReplHelper {
    session: Rc<RefCell<Session>>,
}

impl Completer for ReplHelper {
    type Candidate = String;

    fn complete(&self, line: &str, pos: usize, _ctx: &Context<'_>) -> rustyline::Result<(usize, Vec<String>)> {
        Ok(complete(line, pos, &self.session.borrow()))
    }
}

impl Hinter for ReplHelper {
    type Hint = String;
}

impl Highlighter for ReplHelper {}

impl Validator for ReplHelper {}

impl Helper for ReplHelper {}

/// Reads lines until `:quit` or Ctrl-D. `evaluating` is set while a line runs, so the SIGINT
/// handler knows whether Ctrl-C is meant for a statement.
pub fn run(session: Session, options: Options, evaluating: Arc<AtomicBool>) -> Result<(), Error> {
    let session = Rc::new(RefCell::new(session));
    let mut editor: Editor<ReplHelper, DefaultHistory> = Editor::with_config(
        rustyline::Config::builder().auto_add_history(false).completion_type(rustyline::CompletionType::List).build(),
    )
    .map_err(|e| Error::Operation(format!("cannot start the line editor: {e}")))?;
    editor.set_helper(Some(ReplHelper { session: session.clone() }));
    if let Some(path) = &options.history {
        if path.exists() {
            if let Err(e) = editor.load_history(path) {
                eprintln!("warning: cannot read the history in {}: {e}", path.display());
            }
        }
    }
    println!("mldb-upgrade repl: {}; :help for help, Ctrl-D or :quit to leave", options.target);
    // The lines of the input being typed: a multi-line block becomes one history entry.
    let mut entry: Vec<String> = Vec::new();
    loop {
        let prompt = session.borrow().prompt();
        let line = match editor.readline(prompt) {
            Ok(line) => line,
            Err(ReadlineError::Interrupted) => {
                session.borrow_mut().cancel_pending();
                entry.clear();
                continue;
            }
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(Error::Operation(format!("cannot read the terminal: {e}"))),
        };
        evaluating.store(true, Ordering::SeqCst);
        let reply = session.borrow_mut().feed(&line);
        evaluating.store(false, Ordering::SeqCst);
        if !line.trim().is_empty() {
            entry.push(line);
        }
        if reply != Reply::More && !entry.is_empty() {
            let _ = editor.add_history_entry(entry.join("\n"));
            entry.clear();
            save_history(editor.history_mut(), options.history.as_deref());
        }
        match reply {
            Reply::Output(text) if text.is_empty() => {}
            Reply::Output(text) => println!("{text}"),
            Reply::Error(text) => eprintln!("{text}"),
            Reply::More => {}
            Reply::Quit => break,
        }
    }
    Ok(())
}

/// Saves after every line, so a killed terminal loses nothing; a failure is reported once.
fn save_history(history: &mut DefaultHistory, path: Option<&Path>) {
    static WARNED: AtomicBool = AtomicBool::new(false);
    let Some(path) = path else { return };
    let result = path
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .map_err(|e| e.to_string())
        .and_then(|()| history.save(path).map_err(|e| e.to_string()));
    if let Err(e) = result {
        if !WARNED.swap(true, Ordering::SeqCst) {
            eprintln!("warning: cannot save the history to {}: {e}", path.display());
        }
    }
}
