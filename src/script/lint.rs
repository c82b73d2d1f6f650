//! Checks a compiled script before it runs: every namespaced call (`zk::children(..)`,
//! `version::parse(..)`) must name a function that exists with that many arguments.
//!
//! Rhai only finds an unknown function when the call runs, possibly after the script has
//! already changed the cluster; this check rejects the typo up front (DESIGN: bad input is
//! rejected before the cluster is touched).

use std::collections::{BTreeMap, BTreeSet};

use rhai::{ASTNode, Engine, Expr, Position, Stmt, AST};

use super::resolver::Resolver;

/// A call that cannot succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadCall {
    pub message: String,
    pub position: Position,
}

/// `namespace -> {(name, arity)}` for the engine's static namespaces (`zk`, `ssh`, ...).
pub fn registered_namespaces(engine: &Engine) -> BTreeMap<String, BTreeSet<(String, usize)>> {
    let mut map: BTreeMap<String, BTreeSet<(String, usize)>> = BTreeMap::new();
    for (ns, name, arity) in engine.collect_fn_metadata(
        None,
        |info| Some((info.namespace.to_string(), info.metadata.name.to_string(), info.metadata.num_params)),
        false,
    ) {
        if !ns.is_empty() {
            map.entry(ns).or_default().insert((name, arity));
        }
    }
    map
}

/// Functions a module file offers to importers.
fn module_functions(engine: &Engine, resolver: &Resolver, path: &str) -> Option<BTreeSet<(String, usize)>> {
    let (_, text) = resolver.locate(path)?;
    let ast = engine.compile(&text).ok()?;
    Some(
        ast.iter_functions()
            .filter(|f| f.access != rhai::FnAccess::Private)
            .map(|f| (f.name.to_string(), f.params.len()))
            .collect(),
    )
}

pub fn check(engine: &Engine, resolver: &Resolver, ast: &AST) -> Vec<BadCall> {
    let mut namespaces = registered_namespaces(engine);
    let statics: BTreeSet<String> = namespaces.keys().cloned().collect();
    // Import aliases, wherever they appear.
    let mut unresolved_aliases = BTreeSet::new();
    ast.walk(&mut |path: &[ASTNode]| {
        if let Some(ASTNode::Stmt(Stmt::Import(import, _))) = path.last() {
            let (expr, alias) = &**import;
            if let Expr::StringConstant(module, _) = expr {
                match module_functions(engine, resolver, module) {
                    Some(fns) => {
                        namespaces.insert(alias.name.to_string(), fns);
                    }
                    // A missing module is reported by the import itself when it runs.
                    None => {
                        unresolved_aliases.insert(alias.name.to_string());
                    }
                }
            }
        }
        true
    });
    let mut bad = Vec::new();
    ast.walk(&mut |path: &[ASTNode]| {
        // A call is an expression, or a statement when its value is unused.
        let (call, pos) = match path.last() {
            Some(ASTNode::Expr(Expr::FnCall(call, pos))) => (call, pos),
            Some(ASTNode::Stmt(Stmt::FnCall(call, pos))) => (call, pos),
            _ => return true,
        };
        if call.namespace.is_empty() {
            return true;
        }
        let ns = call.namespace.to_string();
        let name = call.name.to_string();
        let arity = call.args.len();
        let Some(functions) = namespaces.get(&ns) else {
            if !unresolved_aliases.contains(&ns) {
                bad.push(BadCall {
                    message: format!(
                        "unknown namespace `{ns}::`; the built-in ones are {}, and a module needs `import \"{ns}\" as {ns};`",
                        statics.iter().map(|s| format!("{s}::")).collect::<Vec<_>>().join(", ")
                    ),
                    position: *pos,
                });
            }
            return true;
        };
        if functions.contains(&(name.clone(), arity)) {
            return true;
        }
        let arities: Vec<usize> = functions.iter().filter(|(n, _)| *n == name).map(|(_, a)| *a).collect();
        let message = if arities.is_empty() {
            let closest = functions
                .iter()
                .map(|(n, _)| (strsim::levenshtein(n, &name), n))
                .filter(|(d, _)| *d <= 3)
                .min();
            match closest {
                Some((_, n)) => format!("unknown function {ns}::{name}; did you mean {ns}::{n}?"),
                None => format!("unknown function {ns}::{name}; `mldb-upgrade docs {ns}` lists what {ns}:: offers"),
            }
        } else {
            let takes = arities.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(" or ");
            format!("{ns}::{name} takes {takes} arguments, not {arity}; see `mldb-upgrade docs {ns}::{name}`")
        };
        bad.push(BadCall { message, position: *pos });
        true
    });
    bad
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::script::{Host, Output, ScriptEngine};

    fn lint(text: &str) -> Option<String> {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let host = Arc::new(Host::new(rt.handle().clone(), None, Default::default(), false, Output::captured().0));
        let engine = ScriptEngine::new(host, vec![]);
        engine.compile_text("t.rhai", text).err().map(|e| e.message)
    }

    #[test]
    fn typo_in_builtin_namespace_suggests_the_name() {
        assert_eq!(
            lint("zk::chilren(\"nodes\");").unwrap(),
            "unknown function zk::chilren; did you mean zk::children?"
        );
    }

    #[test]
    fn wrong_argument_count_names_the_right_one() {
        assert_eq!(lint("zk::get();").unwrap(), "zk::get takes 1 arguments, not 0; see `mldb-upgrade docs zk::get`");
    }

    #[test]
    fn imported_module_functions_are_checked() {
        assert!(lint("import \"version\" as v; v::parse(\"0.9.3\");").is_none());
        assert_eq!(
            lint("import \"version\" as v; v::parse_it(\"0.9.3\");").unwrap(),
            "unknown function v::parse_it; did you mean v::parse?"
        );
        // Private helpers are not callable from outside.
        assert!(lint("import \"version\" as v; v::parse_int_or_unit(\"1\");").is_some());
    }

    #[test]
    fn unknown_namespace_says_how_to_import() {
        let msg = lint("foo::bar();").unwrap();
        assert!(msg.starts_with("unknown namespace `foo::`"), "{msg}");
        assert!(msg.contains("import \"foo\" as foo;"), "{msg}");
    }

    #[test]
    fn valid_script_passes() {
        assert!(lint("let n = zk::children(\"nodes\"); ssh::exec(\"h\", \"true\", #{timeout: 5});").is_none());
    }
}
