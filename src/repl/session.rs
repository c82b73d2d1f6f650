//! The REPL's logic with no terminal in sight: lines go in, replies come out.
//!
//! Like rhai's `rhai-repl`, a [`Session`] keeps one [`Scope`] for the whole session, so
//! variables survive from line to line, and accumulates the functions each input defines into
//! one AST whose statements are thrown away after every run, so earlier functions stay callable.
//! An input that stops in the middle of a block (the parser hit the end of the text) waits for
//! more lines; an empty line or `:cancel` abandons it. Lines starting with `:` are commands.

use std::collections::HashMap;
use std::path::Path;

use rhai::{Dynamic, EvalAltResult, ParseErrorType, Scope, AST};

use super::render;
use crate::script::{docs, ScriptEngine, ScriptError, ScriptErrorKind};

/// The REPL commands, for `:help` and for the message about an unknown one.
pub const COMMANDS: &[(&str, &str)] = &[
    (":help [name]", "functions scripts can call; `:help ns` for a namespace, `:help ssh::exec` for one function"),
    (":load FILE", "run a script file in this session (its variables and functions stay)"),
    (":dry-run on|off", "switch dry-run: primitives that change something only say what they would do"),
    (":cluster", "nameserver leader, tablets, auto_failover and pending ops"),
    (":vars", "the variables in scope"),
    (":cancel", "abandon an unfinished multi-line input"),
    (":quit", "leave (Ctrl-D too)"),
];

/// What the front end should do with a line's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Show this text (may be empty).
    Output(String),
    /// Show this error; the session goes on.
    Error(String),
    /// The input is unfinished: read another line with the continuation prompt.
    More,
    /// Leave the REPL.
    Quit,
}

/// One REPL session over a [`ScriptEngine`].
pub struct Session {
    engine: ScriptEngine,
    scope: Scope<'static>,
    /// Every function defined so far; statements are cleared after each run.
    functions: AST,
    /// The input (or file) that last defined each function, so an error inside a function
    /// points into the text that defined it rather than the line that called it.
    defined_in: HashMap<String, String>,
    /// Lines of an unfinished input.
    pending: Vec<String>,
    /// Number of inputs run so far, for the `input#N` labels in errors.
    inputs: usize,
}

impl Session {
    pub fn new(engine: ScriptEngine) -> Self {
        Session {
            engine,
            scope: Scope::new(),
            functions: AST::empty(),
            defined_in: HashMap::new(),
            pending: Vec::new(),
            inputs: 0,
        }
    }

    pub fn engine(&self) -> &ScriptEngine {
        &self.engine
    }

    pub fn scope(&self) -> &Scope<'static> {
        &self.scope
    }

    /// Names of the functions defined in this session.
    pub fn script_functions(&self) -> Vec<String> {
        self.functions.iter_functions().map(|f| f.name.to_string()).collect()
    }

    /// The prompt for the next line.
    pub fn prompt(&self) -> &'static str {
        match (self.pending.is_empty(), self.engine.host.dry_run()) {
            (false, _) => "   ... ",
            (true, false) => "mldb> ",
            (true, true) => "mldb[dry-run]> ",
        }
    }

    /// Whether a multi-line input is being collected.
    pub fn is_collecting(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Drops an unfinished input (Ctrl-C at the continuation prompt).
    pub fn cancel_pending(&mut self) {
        self.pending.clear();
    }

    /// Handles one line typed at the prompt.
    pub fn feed(&mut self, line: &str) -> Reply {
        let trimmed = line.trim();
        if self.is_collecting() {
            if trimmed.is_empty() || trimmed == ":cancel" {
                self.pending.clear();
                return Reply::Output("(input abandoned)".into());
            }
        } else {
            if trimmed.is_empty() {
                return Reply::Output(String::new());
            }
            if trimmed.starts_with(':') {
                return self.command(trimmed);
            }
        }
        self.pending.push(line.to_string());
        let text = self.pending.join("\n");
        let label = format!("input#{}", self.inputs + 1);
        match self.engine.engine.compile(&text) {
            Err(e) if is_unfinished(&e, &text) => return Reply::More,
            _ => {}
        }
        self.pending.clear();
        self.inputs += 1;
        match self.engine.compile_input(&label, &text, &self.functions) {
            Ok(ast) => self.run(ast, &label),
            Err(e) => Reply::Error(e.to_string()),
        }
    }

    /// Runs a compiled input with the session's scope and functions.
    fn run(&mut self, mut ast: AST, label: &str) -> Reply {
        ast.set_source(label);
        for f in ast.iter_functions() {
            self.defined_in.insert(f.name.to_string(), label.to_string());
        }
        let mut program = self.functions.merge(&ast);
        program.set_source(label);
        self.engine.host.interrupt.reset();
        let result = self.engine.engine.eval_ast_with_scope::<Dynamic>(&mut self.scope, &program);
        self.engine.host.interrupt.reset();
        program.clear_statements();
        self.functions = program;
        match result {
            Ok(value) => Reply::Output(render::render(&value)),
            Err(mut e) => {
                attribute_functions(&mut e, &self.defined_in);
                Reply::Error(render_error(&ScriptError::from_eval(&e, label, &self.engine.sources)))
            }
        }
    }

    fn command(&mut self, line: &str) -> Reply {
        let (name, arg) = match line.split_once(char::is_whitespace) {
            Some((n, a)) => (n, a.trim()),
            None => (line, ""),
        };
        match name {
            ":help" | ":h" => self.help(arg),
            ":load" => self.load(arg),
            ":dry-run" => self.dry_run(arg),
            ":cluster" => super::cluster::summary(&self.engine.host),
            ":vars" => self.vars(),
            ":cancel" => Reply::Output("(nothing to cancel)".into()),
            ":quit" | ":exit" | ":q" => Reply::Quit,
            other => Reply::Error(format!("unknown command `{other}`; the commands are:\n{}", commands_list())),
        }
    }

    fn help(&self, name: &str) -> Reply {
        let docs = docs::all(&self.engine.engine);
        let functions = &docs.functions;
        if name.is_empty() {
            let mut out = String::from("Type Rhai statements; their values are printed. Commands:\n");
            out.push_str(&commands_list());
            out.push_str("\n\nNamespaces (`:help NAME` lists one):\n");
            let mut namespaces: Vec<&str> = functions.iter().map(|f| f.namespace.as_str()).collect();
            namespaces.dedup();
            for ns in namespaces {
                let count = functions.iter().filter(|f| f.namespace == ns).count();
                let title = if ns.is_empty() { "(global)".to_string() } else { format!("{ns}::") };
                out.push_str(&format!("  {title:<12} {count} functions\n"));
            }
            out.push_str("\nTab completes namespaces, functions, variables and map keys; Ctrl-C stops a running\nstatement and keeps the session; Ctrl-D or :quit leaves.");
            return Reply::Output(out);
        }
        let text = docs::render(&docs, Some(name));
        if !text.is_empty() {
            return Reply::Output(text.trim_end().to_string());
        }
        let mut names: Vec<String> = functions.iter().map(|f| f.qualified_name()).collect();
        names.extend(functions.iter().filter(|f| !f.namespace.is_empty()).map(|f| f.namespace.clone()));
        let close: Vec<String> = {
            let mut scored: Vec<(f64, String)> =
                names.into_iter().map(|n| (strsim::jaro_winkler(name, &n), n)).filter(|(s, _)| *s > 0.8).collect();
            scored.sort_by(|a, b| b.0.total_cmp(&a.0));
            scored.dedup_by(|a, b| a.1 == b.1);
            scored.into_iter().take(3).map(|(_, n)| n).collect()
        };
        let hint = if close.is_empty() { String::new() } else { format!(" (did you mean {}?)", close.join(", ")) };
        Reply::Error(format!("no function or namespace named `{name}`{hint}; `:help` lists the namespaces"))
    }

    fn load(&mut self, path: &str) -> Reply {
        if path.is_empty() {
            return Reply::Error("usage: :load FILE".into());
        }
        let path = Path::new(path);
        match self.engine.compile_file(path) {
            Ok(script) => {
                self.inputs += 1;
                let label = path.display().to_string();
                self.run(script.ast, &label)
            }
            Err(e) => Reply::Error(e.to_string()),
        }
    }

    fn dry_run(&self, arg: &str) -> Reply {
        let host = &self.engine.host;
        match arg {
            "on" => host.set_dry_run(true),
            "off" => host.set_dry_run(false),
            "" => {}
            other => return Reply::Error(format!("usage: :dry-run on|off (not `{other}`)")),
        }
        Reply::Output(format!("dry-run is {}", if host.dry_run() { "on" } else { "off" }))
    }

    fn vars(&self) -> Reply {
        let mut out = String::new();
        for (name, constant, value) in self.scope.iter_raw() {
            let kind = if constant { "const" } else { "let" };
            out.push_str(&format!("{kind} {name}: {}\n", value.type_name()));
        }
        Reply::Output(if out.is_empty() { "(no variables)".into() } else { out.trim_end().to_string() })
    }
}

/// Whether a parse error only says the text stopped too early: a block, list, call or string
/// left open at the end of the input.
fn is_unfinished(err: &rhai::ParseError, text: &str) -> bool {
    let pos = err.position();
    let lines: Vec<&str> = text.split('\n').collect();
    let last_len = lines.last().map_or(0, |l| l.chars().count());
    let at_end = match (pos.line(), pos.position()) {
        (None, _) => true,
        (Some(line), column) => line > lines.len() || (line == lines.len() && column.is_none_or(|c| c > last_len)),
    };
    match err.err_type() {
        ParseErrorType::UnexpectedEOF => true,
        ParseErrorType::BadInput(rhai::LexError::UnterminatedString) => true,
        ParseErrorType::MissingToken(..) | ParseErrorType::MissingSymbol(..) => at_end,
        _ => false,
    }
}

/// Rhai names the running input as the source of every script function it calls; put back
/// the input that defined each one, so the call chain shows the right line and caret.
fn attribute_functions(err: &mut EvalAltResult, defined_in: &HashMap<String, String>) {
    match err {
        EvalAltResult::ErrorInFunctionCall(name, source, inner, _) => {
            if let Some(label) = defined_in.get(name.as_str()) {
                source.clone_from(label);
            }
            attribute_functions(inner, defined_in);
        }
        EvalAltResult::ErrorInModule(_, inner, _) => attribute_functions(inner, defined_in),
        _ => {}
    }
}

/// A script error, with a REPL-worded note for Ctrl-C.
fn render_error(e: &ScriptError) -> String {
    if e.kind == ScriptErrorKind::Interrupted {
        let place = e.location.as_ref().map(|l| format!(" at {l}")).unwrap_or_default();
        return format!("interrupted{place}: the statement was stopped; the session and its variables are kept");
    }
    e.to_string()
}

fn commands_list() -> String {
    COMMANDS.iter().map(|(c, what)| format!("  {c:<17} {what}")).collect::<Vec<_>>().join("\n")
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::script::{Host, Output};

    /// A session without a cluster, printing into a buffer.
    pub(crate) struct Fixture {
        pub session: Session,
        pub printed: Arc<Mutex<String>>,
        _rt: tokio::runtime::Runtime,
    }

    pub(crate) fn fixture() -> Fixture {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime");
        let (output, printed) = Output::captured();
        let host = Arc::new(Host::new(rt.handle().clone(), None, BTreeMap::new(), false, output));
        let session = Session::new(ScriptEngine::new(host, Vec::new()));
        Fixture { session, printed, _rt: rt }
    }

    fn out(reply: Reply) -> String {
        match reply {
            Reply::Output(text) => text,
            other => panic!("expected output, got {other:?}"),
        }
    }

    fn err(reply: Reply) -> String {
        match reply {
            Reply::Error(text) => text,
            other => panic!("expected an error, got {other:?}"),
        }
    }

    #[test]
    fn variables_and_functions_survive_across_lines() {
        let mut f = fixture();
        let s = &mut f.session;
        assert_eq!(out(s.feed("let x = 40;")), "");
        assert_eq!(out(s.feed("fn twice(n) { n * 2 }")), "");
        assert_eq!(out(s.feed("x += 1;")), "");
        assert_eq!(out(s.feed("twice(x)")), "82");
        assert_eq!(out(s.feed("fn add(a, b) { a + b }")), "");
        assert_eq!(out(s.feed("add(twice(1), x)")), "43");
        assert_eq!(s.script_functions().len(), 2);
        s.feed("print(`x is ${x}`);");
        assert_eq!(f.printed.lock().expect("buffer").as_str(), "x is 41\n");
    }

    #[test]
    fn unfinished_blocks_wait_for_more_lines() {
        let mut f = fixture();
        let s = &mut f.session;
        assert_eq!(s.feed("fn sum(list) {"), Reply::More);
        assert_eq!(s.prompt(), "   ... ");
        assert_eq!(s.feed("  let total = 0;"), Reply::More);
        assert_eq!(s.feed("  for n in list { total += n; }"), Reply::More);
        assert_eq!(s.feed("  total"), Reply::More);
        assert_eq!(out(s.feed("}")), "");
        assert_eq!(s.prompt(), "mldb> ");
        assert_eq!(out(s.feed("sum([1, 2, 3])")), "6");
        assert_eq!(s.feed("let m = #{"), Reply::More);
        assert_eq!(s.feed("  a: [1,"), Reply::More);
        assert_eq!(out(s.feed("  2] };")), "");
        assert_eq!(out(s.feed("m.a")), "[1, 2]");
        assert_eq!(s.feed("let total = sum(["), Reply::More);
        assert_eq!(s.feed("  4,"), Reply::More);
        assert_eq!(out(s.feed("  5]);")), "");
        assert_eq!(s.feed("let later ="), Reply::More);
        assert_eq!(out(s.feed("  total + 1;")), "");
        assert_eq!(out(s.feed("later")), "10");
        assert_eq!(s.feed("let s = `multi"), Reply::More);
        assert_eq!(out(s.feed("line`;")), "");
        assert_eq!(out(s.feed("s")), "\"multi\\nline\"");
    }

    #[test]
    fn empty_line_or_cancel_abandons_an_unfinished_input() {
        let mut f = fixture();
        let s = &mut f.session;
        assert_eq!(s.feed("if true {"), Reply::More);
        assert_eq!(out(s.feed("")), "(input abandoned)");
        assert!(!s.is_collecting());
        assert_eq!(s.feed("let y = ["), Reply::More);
        assert_eq!(out(s.feed(":cancel")), "(input abandoned)");
        assert_eq!(out(s.feed("1 + 1")), "2");
    }

    #[test]
    fn a_syntax_error_in_the_middle_is_not_taken_for_an_unfinished_input() {
        let mut f = fixture();
        let text = err(f.session.feed("let = 5; {"));
        assert!(text.contains("input#1:1:5"), "{text}");
        assert!(!f.session.is_collecting());
    }

    #[test]
    fn errors_show_the_caret_and_chain_and_the_session_goes_on() {
        let mut f = fixture();
        let s = &mut f.session;
        s.feed("let kept = 7;");
        assert_eq!(s.feed("fn inner(x) {"), Reply::More);
        s.feed("    throw `bad ${x}`;");
        s.feed("}");
        s.feed("fn outer(x) { inner(x + 1) }");
        let text = err(s.feed("outer(kept)"));
        assert!(text.starts_with("error: bad 8\n  --> input#2:2:5\n"), "{text}");
        assert!(text.contains("2 |     throw `bad ${x}`;\n  |     ^"), "{text}");
        assert!(text.contains("input#4:1:1   calls outer()"), "{text}");
        assert!(text.contains("input#3:1:15  calls inner()"), "{text}");
        assert!(text.contains("input#2:2:5   fails here"), "{text}");
        let text = err(s.feed("let z = kept +* 2;"));
        assert!(text.contains("--> input#"), "{text}");
        assert!(text.contains("let z = kept +* 2;\n"), "{text}");
        assert!(text.contains('^'), "{text}");
        let text = err(s.feed("zk::chilren(\"/\")"));
        assert!(text.contains("zk::chilren"), "{text}");
        assert_eq!(out(s.feed("kept * 6")), "42");
    }

    /// Raises the session's interrupt from another thread after `ms` milliseconds.
    fn interrupt_after(session: &Session, ms: u64) -> std::thread::JoinHandle<()> {
        let interrupt = session.engine().host.interrupt.clone();
        std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(ms));
            interrupt.raise();
        })
    }

    #[test]
    fn an_interrupt_stops_the_statement_and_the_next_one_runs() {
        let mut f = fixture();
        f.session.feed("let before = 1;");
        let raiser = interrupt_after(&f.session, 300);
        let started = std::time::Instant::now();
        let text = err(f.session.feed("sleep(\"60s\"); before = 2;"));
        raiser.join().expect("raiser thread");
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
        assert!(text.starts_with("interrupted at input#2:1:1"), "{text}");
        assert_eq!(out(f.session.feed("before")), "1");
        // A busy loop stops through the progress callback, which `try` cannot catch.
        let raiser = interrupt_after(&f.session, 300);
        let text = err(f.session.feed("try { loop { before += 1; } } catch { before = -1; }"));
        raiser.join().expect("raiser thread");
        assert!(text.starts_with("interrupted"), "{text}");
        assert!(out(f.session.feed("before > 1")) == "true");
    }

    #[test]
    fn help_lists_namespaces_and_shows_one_function() {
        let mut f = fixture();
        let s = &mut f.session;
        let text = out(s.feed(":help"));
        assert!(text.contains(":load FILE"), "{text}");
        assert!(text.contains("ns::"), "{text}");
        assert!(text.contains("zk::"), "{text}");
        let text = out(s.feed(":help ns"));
        assert!(text.contains("ns::tablets() -> array"), "{text}");
        assert!(text.contains("ns::leader() -> string"), "{text}");
        assert!(!text.contains("zk::"), "{text}");
        let text = out(s.feed(":help ssh::exec"));
        assert!(text.starts_with("## ssh::"), "{text}");
        assert!(text.contains("Example:"), "{text}");
        assert!(!text.contains("ssh::upload"), "{text}");
        let text = err(s.feed(":help ns::tablet"));
        assert!(text.contains("did you mean ns::tablets"), "{text}");
    }

    #[test]
    fn commands_dry_run_load_vars_and_unknown() {
        let mut f = fixture();
        let s = &mut f.session;
        assert_eq!(out(s.feed(":dry-run on")), "dry-run is on");
        assert_eq!(s.prompt(), "mldb[dry-run]> ");
        assert!(s.engine().host.dry_run());
        assert_eq!(out(s.feed(":dry-run off")), "dry-run is off");
        assert!(err(s.feed(":dry-run maybe")).contains("usage"));
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("lib.rhai");
        std::fs::write(&file, "let loaded = 5;\nfn triple(n) { n * 3 }\n").expect("write");
        assert_eq!(out(s.feed(&format!(":load {}", file.display()))), "");
        assert_eq!(out(s.feed("triple(loaded)")), "15");
        assert!(out(s.feed(":vars")).contains("let loaded: i64"));
        let text = err(s.feed(":frobnicate"));
        assert!(text.starts_with("unknown command `:frobnicate`"), "{text}");
        assert!(text.contains(":cluster"), "{text}");
        assert!(err(s.feed(":load /nonexistent/x.rhai")).contains("cannot read script"));
        assert!(err(s.feed(":cluster")).contains("--cluster"));
        assert_eq!(s.feed(":quit"), Reply::Quit);
    }
}
