//! Every script-visible function is documented, and `docs` shows them.

use std::collections::BTreeMap;
use std::sync::Arc;

use mldb_upgrade::script::{docs, Host, Output, ScriptEngine};

use crate::support;

fn engine() -> (tokio::runtime::Runtime, ScriptEngine) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let host = Arc::new(Host::new(rt.handle().clone(), None, BTreeMap::new(), false, Output::captured().0));
    let engine = ScriptEngine::new(host, Vec::new());
    (rt, engine)
}

#[test]
fn no_registered_function_is_undocumented() {
    let (_rt, engine) = engine();
    let functions = docs::functions(&engine.engine);
    assert!(functions.len() >= 25, "only {} functions", functions.len());
    for ns in ["zk", "ssh", "log"] {
        assert!(functions.iter().any(|f| f.namespace == ns), "namespace {ns} missing");
    }
    for f in &functions {
        assert!(!f.summary().trim().is_empty(), "{} has no doc", f.signature);
        assert!(f.doc.contains("Example:"), "{} has no example", f.signature);
        assert!(!f.signature.contains("_:"), "{} has unnamed parameters", f.signature);
    }
}

#[test]
fn docs_command_lists_every_function_and_filters_by_namespace() {
    let (_rt, engine) = engine();
    let functions = docs::functions(&engine.engine);
    let out = support::run(&["docs"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    for f in &functions {
        assert!(out.stdout.contains(&f.signature), "docs misses {}", f.signature);
    }
    let zk = support::run(&["docs", "zk"]);
    assert!(zk.stdout.starts_with("## zk::\n"), "{}", zk.stdout);
    assert!(zk.stdout.contains("zk::children(path: string) -> array"), "{}", zk.stdout);
    assert!(!zk.stdout.contains("ssh::"), "{}", zk.stdout);
    let bad = support::run(&["docs", "nope"]);
    assert_eq!(bad.code, 2);
    assert!(bad.stderr.contains("no function or namespace named `nope`"), "{}", bad.stderr);
}

/// The committed definitions file is what the registered functions generate: a function added,
/// renamed or re-documented without regenerating it fails here.
#[test]
fn committed_definitions_file_matches_the_registered_functions() {
    let (_rt, engine) = engine();
    let generated = docs::definitions(&engine.engine);
    let path = support::repo().join("definitions/mldb-upgrade.d.rhai");
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "{} is out of date; regenerate it with `cargo run -- docs --definitions > definitions/mldb-upgrade.d.rhai`",
        path.display()
    );
    for f in docs::functions(&engine.engine) {
        // Rhai writes functions named like a keyword (`log::debug`) as `op`.
        let listed = committed.contains(&format!("fn {}(", f.name)) || committed.contains(&format!("op {}(", f.name));
        assert!(listed, "{} is missing from {}", f.signature, path.display());
    }
    let cli = support::run(&["docs", "--definitions"]);
    assert_eq!(cli.code, 0, "{}", cli.stderr);
    assert_eq!(cli.stdout, generated);
}

/// Every `mldb-upgrade docs ...` the tool suggests in an error exists: a wrong argument count
/// to a native function, a global one and a stock module's (under an alias), an unknown
/// function, and a bad setting.
#[test]
fn every_docs_hint_leads_somewhere() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        "zk::get();",
        "sleep();",
        "import \"rolling\" as r; r::upgrade_tablet(1);",
        "import \"version\" as v; v::parse();",
        "zk::frob(1);",
    ];
    let mut hints = Vec::new();
    for (i, text) in cases.iter().enumerate() {
        let script = support::write(dir.path(), &format!("h{i}.rhai"), text);
        let out = support::run(&["check", &script]);
        assert_eq!(out.code, 2, "{text}: {}", out.stderr);
        hints.extend(docs_hints(&out.stderr));
    }
    // Settings are checked before anything connects: no cluster needs to answer.
    let cluster = support::write(dir.path(), "c.toml", "zk_cluster = \"127.0.0.1:1\"\n[ssh]\ntransport = \"local\"\n");
    let upgrade = support::repo().join("scripts/upgrade.rhai").display().to_string();
    let out = support::run(&["run", &upgrade, "--cluster", &cluster, "--set", "timeout=abc", "--set", "release=/nope"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    hints.extend(docs_hints(&out.stderr));
    assert!(hints.iter().any(|h| h.ends_with("scripts/upgrade.rhai")), "{hints:?}");
    assert!(hints.len() >= 5, "too few hints found: {hints:?}");
    assert!(hints.iter().any(|h| h == "rolling::upgrade_tablet"), "{hints:?}");
    for hint in hints {
        let out = support::run(&["docs", &hint]);
        assert_eq!(out.code, 0, "`mldb-upgrade docs {hint}` is a dead end: {}", out.stderr);
        assert!(!out.stdout.trim().is_empty(), "`mldb-upgrade docs {hint}` prints nothing");
    }
}

/// The NAME of every "`mldb-upgrade docs NAME`" in `text`.
fn docs_hints(text: &str) -> Vec<String> {
    text.split("`mldb-upgrade docs ").skip(1).filter_map(|rest| rest.split('`').next()).map(str::to_string).collect()
}
