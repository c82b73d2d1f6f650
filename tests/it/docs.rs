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
