//! Tab completion as a pure function of the line, the cursor and the session: namespaces
//! (`zk::`), the functions in a namespace, global functions (ours, Rhai's and the session's
//! own), variables in scope, map keys after `var.`, and REPL commands. The rustyline helper in
//! [`super::editor`] only wraps [`complete`].

use rhai::{Dynamic, Map};

use super::session::{Session, COMMANDS};
use crate::script::docs;

const KEYWORDS: &[&str] = &[
    "let", "const", "fn", "if", "else", "for", "in", "while", "loop", "do", "until", "break", "continue", "return",
    "throw", "try", "catch", "switch", "import", "export", "as", "true", "false",
];

/// Candidates for the word before `cursor` (a byte offset), and where that word starts: the
/// front end replaces `line[start..cursor]` with the chosen candidate.
pub fn complete(line: &str, cursor: usize, session: &Session) -> (usize, Vec<String>) {
    let cursor = cursor.min(line.len());
    let before = &line[..cursor];
    let trimmed = before.trim_start();

    // `:comm` at the start of the line.
    if trimmed.starts_with(':') && !trimmed.contains(char::is_whitespace) {
        let names = COMMANDS.iter().map(|(c, _)| c.split(' ').next().unwrap_or(c).to_string());
        return (cursor - trimmed.len(), matching(names, trimmed));
    }
    let start = before
        .char_indices()
        .rev()
        .take_while(|(_, c)| c.is_alphanumeric() || matches!(c, '_' | ':' | '.'))
        .last()
        .map_or(cursor, |(i, _)| i);
    let word = &before[start..];
    // `:help zk::ch`: namespaces and qualified function names.
    if trimmed.starts_with(":help ") {
        let functions = docs::functions(&session.engine().engine);
        let names = functions
            .iter()
            .map(|f| f.qualified_name())
            .chain(functions.iter().filter(|f| !f.namespace.is_empty()).map(|f| f.namespace.clone()));
        return (start, matching(names, word));
    }
    // `:load scripts/up`: files and directories.
    if let Some(path) = trimmed.strip_prefix(":load ") {
        let path = path.trim_start();
        return (cursor - path.len(), paths(path));
    }
    if trimmed.starts_with(':') {
        return (cursor, Vec::new());
    }
    let word = word.trim_start_matches([':', '.']);
    let start = cursor - word.len();

    // `var.key.ke`: keys of a map held in a variable.
    if let Some(dot) = word.rfind('.') {
        let keys = map_at(session, &word[..dot]).map(|m| m.keys().map(|k| k.to_string()).collect::<Vec<_>>());
        return (start + dot + 1, keys.map(|k| matching(k, &word[dot + 1..])).unwrap_or_default());
    }
    // `ns::ta`: functions of a namespace.
    if let Some((namespace, prefix)) = word.rsplit_once("::") {
        let functions = docs::functions(&session.engine().engine);
        let names = functions.into_iter().filter(|f| f.namespace == namespace).map(|f| f.name);
        return (start + namespace.len() + 2, matching(names, prefix));
    }
    if word.is_empty() {
        return (cursor, Vec::new());
    }
    (start, matching(global_names(session), word))
}

/// Everything a bare word can start: namespaces, functions, variables, keywords.
fn global_names(session: &Session) -> Vec<String> {
    let engine = &session.engine().engine;
    let mut names: Vec<String> = docs::functions(engine)
        .into_iter()
        .map(|f| if f.namespace.is_empty() { f.name } else { format!("{}::", f.namespace) })
        .collect();
    names.extend(engine.gen_fn_signatures(true).into_iter().filter_map(|sig| {
        let name = sig.split('(').next().unwrap_or("");
        let plain = !name.contains("::") && name.chars().next().is_some_and(|c| c.is_alphabetic() || c == '_');
        (plain && name.chars().all(|c| c.is_alphanumeric() || c == '_')).then(|| name.to_string())
    }));
    names.extend(session.script_functions());
    names.extend(session.scope().iter_raw().map(|(name, ..)| name.to_string()));
    names.extend(KEYWORDS.iter().map(|k| k.to_string()));
    names
}

/// The map at `path` (`var` or `var.key.key`), if the variable holds one.
fn map_at(session: &Session, path: &str) -> Option<Map> {
    let mut parts = path.split('.');
    let mut value: Dynamic = session.scope().get(parts.next()?)?.clone();
    for key in parts {
        let next = value.read_lock::<Map>()?.get(key)?.clone();
        value = next;
    }
    value.read_lock::<Map>().map(|m| m.clone())
}

/// Entries of the directory `typed` is in whose names start with its last part; directories
/// end in `/` so completion can go on into them.
fn paths(typed: &str) -> Vec<String> {
    let (dir, prefix) = match typed.rfind('/') {
        Some(i) => (&typed[..=i], &typed[i + 1..]),
        None => ("", typed),
    };
    let Ok(entries) = std::fs::read_dir(if dir.is_empty() { "." } else { dir }) else {
        return Vec::new();
    };
    let names = entries.filter_map(Result::ok).filter_map(|e| {
        let name = e.file_name().into_string().ok()?;
        if name.starts_with('.') && !prefix.starts_with('.') {
            return None;
        }
        let slash = if e.file_type().ok()?.is_dir() { "/" } else { "" };
        Some(format!("{dir}{name}{slash}"))
    });
    matching(names, typed)
}

/// The names starting with `prefix`, sorted, without duplicates.
fn matching(names: impl IntoIterator<Item = String>, prefix: &str) -> Vec<String> {
    let mut out: Vec<String> = names.into_iter().filter(|n| n.starts_with(prefix)).collect();
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repl::session::tests::fixture;

    fn at_end(line: &str, session: &Session) -> (usize, Vec<String>) {
        complete(line, line.len(), session)
    }

    #[test]
    fn namespaces_and_their_functions() {
        let f = fixture();
        let (start, c) = at_end("z", &f.session);
        assert_eq!(start, 0);
        assert!(c.contains(&"zk::".to_string()), "{c:?}");
        let (start, c) = at_end("let t = ns::ta", &f.session);
        assert_eq!(start, "let t = ns::".len());
        assert_eq!(c, vec!["tables".to_string(), "tablets".to_string()]);
        let (_, c) = at_end("let t = ns::tablet", &f.session);
        assert_eq!(c, vec!["tablets".to_string()]);
        let (_, c) = at_end("ns::", &f.session);
        assert!(c.contains(&"leader".to_string()) && c.contains(&"partitions".to_string()), "{c:?}");
        assert!(!c.contains(&"children".to_string()), "{c:?}");
    }

    #[test]
    fn global_functions_variables_and_keywords() {
        let mut f = fixture();
        f.session.feed("let sleepy = 1;");
        f.session.feed("fn sleep_well() { 1 }");
        let (start, c) = at_end("x + slee", &f.session);
        assert_eq!(start, 4);
        assert_eq!(c, vec!["sleep".to_string(), "sleep_well".to_string(), "sleepy".to_string()]);
        let (_, c) = at_end("pri", &f.session);
        assert!(c.contains(&"print".to_string()), "{c:?}");
        let (_, c) = at_end("retu", &f.session);
        assert_eq!(c, vec!["return".to_string()]);
        assert!(at_end("", &f.session).1.is_empty());
    }

    #[test]
    fn map_keys_after_a_dot() {
        let mut f = fixture();
        f.session.feed(r#"let t = #{endpoint: "127.0.0.1:10921", state: "kHealthy", inner: #{ease: 1, end: 2}};"#);
        f.session.feed("let n = 5;");
        let (start, c) = at_end("print(t.e", &f.session);
        assert_eq!(start, "print(t.".len());
        assert_eq!(c, vec!["endpoint".to_string()]);
        let (_, c) = at_end("t.", &f.session);
        assert_eq!(c, vec!["endpoint".to_string(), "inner".to_string(), "state".to_string()]);
        let (_, c) = at_end("t.inner.e", &f.session);
        assert_eq!(c, vec!["ease".to_string(), "end".to_string()]);
        assert!(at_end("n.", &f.session).1.is_empty());
        assert!(at_end("missing.x", &f.session).1.is_empty());
    }

    #[test]
    fn commands_and_help_topics() {
        let f = fixture();
        let (start, c) = at_end(":d", &f.session);
        assert_eq!((start, c), (0, vec![":dry-run".to_string()]));
        let (start, c) = at_end(":help ssh::ex", &f.session);
        assert_eq!(start, ":help ".len());
        assert_eq!(c, vec!["ssh::exec".to_string(), "ssh::exists".to_string()]);
        let (_, c) = at_end(":help w", &f.session);
        assert!(c.contains(&"wait".to_string()), "{c:?}");
    }

    #[test]
    fn files_after_load() {
        let f = fixture();
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("upgrade.rhai"), "").expect("write");
        std::fs::write(dir.path().join("verify.rhai"), "").expect("write");
        std::fs::create_dir(dir.path().join("util")).expect("mkdir");
        let base = format!("{}/", dir.path().display());
        let line = format!(":load {base}u");
        let (start, c) = at_end(&line, &f.session);
        assert_eq!(start, ":load ".len());
        assert_eq!(c, vec![format!("{base}upgrade.rhai"), format!("{base}util/")]);
        assert!(at_end(":load /nonexistent-dir/x", &f.session).1.is_empty());
    }

    #[test]
    fn cursor_in_the_middle_completes_the_word_before_it() {
        let f = fixture();
        let line = "ns::tablet + 1";
        let (start, c) = complete(line, 10, &f.session);
        assert_eq!(start, 4);
        assert_eq!(c, vec!["tablets".to_string()]);
    }
}
