//! Checks a program before it runs: every call must name a function that exists with that
//! many arguments: namespaced ones (`zk::children(..)`, `version::parse(..)`) against the
//! engine's namespaces and the imported modules, global ones (`sleep(..)`, `frobnicate(..)`)
//! against the engine's functions, Rhai's own and the functions the file defines.
//!
//! Rhai only finds an unknown function when the call runs, possibly after the script has
//! already changed the cluster; this check rejects the typo up front (DESIGN: bad input is
//! rejected before the cluster is touched).

use std::collections::{BTreeMap, BTreeSet};

use rhai::{Engine, Position};

use super::program::{CallSite, Program};

/// A call that cannot succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadCall {
    /// The unit of the program it is in.
    pub unit: usize,
    pub message: String,
    pub position: Position,
}

/// Functions Rhai itself provides as keywords (any number of arguments).
const RHAI_KEYWORDS: [&str; 10] =
    ["print", "debug", "type_of", "Fn", "call", "curry", "is_def_fn", "is_def_var", "is_shared", "eval"];

type Functions = BTreeSet<(String, usize)>;

/// `namespace -> {(name, arity)}` for everything the engine registers; global functions,
/// Rhai's standard library included, under "".
pub fn registered_functions(engine: &Engine) -> BTreeMap<String, Functions> {
    let mut map: BTreeMap<String, Functions> = BTreeMap::new();
    for (ns, name, arity) in engine.collect_fn_metadata(
        None,
        |info| Some((info.namespace.to_string(), info.metadata.name.to_string(), info.metadata.num_params)),
        true,
    ) {
        map.entry(ns).or_default().insert((name, arity));
    }
    map
}

/// The functions a unit defines that other units may call (not `private`).
fn public_functions(program: &Program, unit: usize) -> Functions {
    program.units[unit]
        .ast
        .iter_functions()
        .filter(|f| f.access != rhai::FnAccess::Private)
        .map(|f| (f.name.to_string(), f.params.len()))
        .collect()
}

/// Every call in `program` that cannot succeed, in order. `session` holds functions defined
/// earlier (the REPL's), callable too.
pub fn check(engine: &Engine, program: &Program, session: Option<&rhai::AST>) -> Vec<BadCall> {
    let registered = registered_functions(engine);
    let empty = Functions::new();
    let globals = registered.get("").unwrap_or(&empty);
    let statics: Vec<String> = registered.keys().filter(|k| !k.is_empty()).map(|k| format!("{k}::")).collect();
    let mut bad = Vec::new();
    for call in program.calls() {
        let unit = &program.units[call.unit];
        let message = if call.namespace.is_empty() {
            let own: Functions = unit
                .ast
                .iter_functions()
                .chain(session.into_iter().flat_map(|s| s.iter_functions()))
                .map(|f| (f.name.to_string(), f.params.len()))
                .collect();
            if RHAI_KEYWORDS.contains(&call.name.as_str()) {
                continue;
            }
            unknown(&call, &[globals, &own], Some(""), "`mldb-upgrade docs` lists the functions scripts can call")
        } else if let Some(functions) = registered.get(&call.namespace) {
            let ns = &call.namespace;
            unknown(&call, &[functions], Some(ns), &format!("`mldb-upgrade docs {ns}` lists what {ns}:: offers"))
        } else if let Some(module) = unit.imports.get(&call.namespace) {
            let functions = public_functions(program, *module);
            let label = &program.units[*module].label;
            // A stock module is documented under its own name, whatever the alias.
            let stock = label.strip_prefix("stdlib/").and_then(|l| l.strip_suffix(".rhai"));
            let hint = match stock {
                Some(name) => format!("`mldb-upgrade docs {name}` lists what it offers"),
                None => format!("{label} lists what it offers"),
            };
            unknown(&call, &[&functions], stock, &hint)
        } else {
            Some(format!(
                "unknown namespace `{ns}::`; the built-in ones are {}, and a module needs `import \"{ns}\" as {ns};`",
                statics.join(", "),
                ns = call.namespace
            ))
        };
        if let Some(message) = message {
            bad.push(BadCall { unit: call.unit, message, position: call.position });
        }
    }
    bad
}

/// Why `call` names nothing in `sets`, or `None` when it names something there. `docs` is the
/// name `mldb-upgrade docs` knows the namespace by ("" for global functions), if it does.
fn unknown(call: &CallSite, sets: &[&Functions], docs: Option<&str>, hint: &str) -> Option<String> {
    let qualified = |name: &str| {
        if call.namespace.is_empty() {
            name.to_string()
        } else {
            format!("{}::{name}", call.namespace)
        }
    };
    let all = || sets.iter().flat_map(|s| s.iter());
    if all().any(|(n, a)| *n == call.name && *a == call.args) {
        return None;
    }
    let mut arities: Vec<usize> = all().filter(|(n, _)| *n == call.name).map(|(_, a)| *a).collect();
    arities.sort();
    arities.dedup();
    let name = qualified(&call.name);
    if !arities.is_empty() {
        let takes = arities.iter().map(usize::to_string).collect::<Vec<_>>().join(" or ");
        let see = match docs {
            Some("") => format!("; see `mldb-upgrade docs {}`", call.name),
            Some(ns) => format!("; see `mldb-upgrade docs {ns}::{}`", call.name),
            None => String::new(),
        };
        return Some(format!("{name} takes {takes} arguments, not {}{see}", call.args));
    }
    let closest = all().map(|(n, _)| (strsim::levenshtein(n, &call.name), n)).filter(|(d, _)| *d <= 3).min();
    Some(match closest {
        Some((_, n)) => format!("unknown function {name}; did you mean {}?", qualified(n)),
        None => format!("unknown function {name}; {hint}"),
    })
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
