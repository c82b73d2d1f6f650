//! The script API as documentation, read back from the engine's own metadata so it can never
//! drift from what is registered: the native functions, and the stock modules (`rolling`,
//! `version`, `remote`) with their `///` function docs, `//!` header and declared settings.
//! Used by `mldb-upgrade docs` and the REPL's `:help`.

use rhai::Engine;

use super::resolver;
use super::settings::{self, Setting};

/// One script-visible function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionDoc {
    /// `zk`, `ssh`, `log`, or empty for global functions.
    pub namespace: String,
    pub name: String,
    /// `zk::children(path: string) -> array`.
    pub signature: String,
    /// The doc comment without comment markers.
    pub doc: String,
}

impl FunctionDoc {
    /// `zk::children` or `sleep`.
    pub fn qualified_name(&self) -> String {
        if self.namespace.is_empty() {
            self.name.clone()
        } else {
            format!("{}::{}", self.namespace, self.name)
        }
    }

    /// The first line of the doc.
    pub fn summary(&self) -> &str {
        self.doc.lines().next().unwrap_or("")
    }
}

/// A stock module: what its `//!` header says and the settings it declares.
#[derive(Debug, Clone)]
pub struct ModuleDoc {
    pub name: String,
    pub about: String,
    pub settings: Vec<Setting>,
}

/// Everything `docs` shows: functions (native and of the stock modules) and the stock modules.
#[derive(Debug, Clone)]
pub struct Docs {
    pub functions: Vec<FunctionDoc>,
    pub modules: Vec<ModuleDoc>,
}

/// The native functions and the stock modules.
pub fn all(engine: &Engine) -> Docs {
    let mut functions = functions(engine);
    let mut modules = Vec::new();
    for name in resolver::stdlib_modules() {
        let Some(text) = resolver::stdlib_source(&name) else { continue };
        // A stock module that does not compile fails its own test; here it is just left out.
        let Ok(ast) = engine.compile(text) else { continue };
        // Closures compile to functions named `anon$...`: not part of the module's API.
        let public =
            ast.iter_functions().filter(|f| f.access != rhai::FnAccess::Private && !f.name.starts_with("anon$"));
        for f in public {
            let params: Vec<&str> = f.params.to_vec();
            functions.push(FunctionDoc {
                namespace: name.clone(),
                name: f.name.to_string(),
                signature: format!("{name}::{}({})", f.name, params.join(", ")),
                doc: strip_markers(f.comments.iter().map(|c| c.as_ref()), "///"),
            });
        }
        let settings = ast
            .iter_literal_variables(true, false)
            .find(|(n, ..)| *n == "SETTINGS")
            .and_then(|(_, _, value)| settings::parse_declarations(&value, &format!("stdlib/{name}.rhai")).ok())
            .unwrap_or_default();
        modules.push(ModuleDoc { about: strip_markers(ast.doc().lines(), "//!"), name, settings });
    }
    functions.sort_by(|a, b| (&a.namespace, &a.name, &a.signature).cmp(&(&b.namespace, &b.name, &b.signature)));
    Docs { functions, modules }
}

/// Comment text without its markers (`///`, `//!`) and the one space after them.
fn strip_markers<'a>(lines: impl Iterator<Item = &'a str>, marker: &str) -> String {
    lines
        .flat_map(|c| c.lines())
        .map(|l| {
            let l = l.trim_start().trim_start_matches(marker);
            l.strip_prefix(' ').unwrap_or(l).to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every function registered by mldb-upgrade (not Rhai's standard library), sorted.
pub fn functions(engine: &Engine) -> Vec<FunctionDoc> {
    let mut docs = engine.collect_fn_metadata(
        None,
        |info| {
            let meta = info.metadata;
            let namespace = info.namespace.to_string();
            let params: Vec<String> = meta.params_info.iter().map(|p| script_param(p)).collect();
            let prefix = if namespace.is_empty() { String::new() } else { format!("{namespace}::") };
            let returns = script_type(&meta.return_type);
            let signature = format!("{prefix}{}({}) -> {returns}", meta.name, params.join(", "));
            let doc = strip_markers(meta.comments.iter().map(|c| c.as_ref()), "///");
            Some(FunctionDoc { namespace, name: meta.name.to_string(), signature, doc })
        },
        false,
    );
    docs.sort_by(|a, b| (&a.namespace, &a.name, &a.signature).cmp(&(&b.namespace, &b.name, &b.signature)));
    docs.dedup();
    docs
}

/// The Rhai definitions file of every function mldb-upgrade registers (`.d.rhai`, for editors
/// with Rhai support), generated from the same registration as the docs. The committed copy,
/// `definitions/mldb-upgrade.d.rhai`, is checked against it by a test.
pub fn definitions(engine: &Engine) -> String {
    let body = engine.definitions().include_standard_packages(false).single_file();
    format!(
        "// Generated by `mldb-upgrade docs --definitions` from the functions mldb-upgrade registers.\n\
         // Point your editor's Rhai support at this file; do not edit it by hand.\n{body}"
    )
}

/// `path: &str` (a Rust parameter as the plugin macro records it) → `path: string`.
fn script_param(param: &str) -> String {
    match param.split_once(':') {
        Some((name, ty)) => format!("{}: {}", name.trim(), script_type(ty)),
        None => script_type(param),
    }
}

/// A Rust type as scripts know it: `&str` → `string`, `RhaiResultOf<Array>` → `array`,
/// `Dynamic` → `?` (any value; the doc says which).
fn script_type(rust: &str) -> String {
    let ty: String = rust.chars().filter(|c| !c.is_whitespace()).collect();
    let ty = ty.as_str();
    if let Some(inner) = ty.strip_prefix("RhaiResultOf<").and_then(|t| t.strip_suffix('>')) {
        return script_type(inner);
    }
    let ty = ty.trim_start_matches("&mut").trim_start_matches('&');
    let ty = ty.rsplit("::").next().unwrap_or(ty);
    match ty {
        "str" | "String" | "ImmutableString" => "string",
        "i64" | "INT" | "u64" | "i32" | "u32" | "usize" => "int",
        "f64" | "FLOAT" => "float",
        "Array" => "array",
        "Map" => "map",
        "Dynamic" => "?",
        "FnPtr" => "Fn",
        "" | "()" => "()",
        other => other,
    }
    .to_string()
}

/// Renders the docs for a terminal; `filter` keeps functions whose qualified name or namespace
/// matches (a stock module's namespace also shows its header and settings).
pub fn render(docs: &Docs, filter: Option<&str>) -> String {
    let filter = filter.map(|f| f.trim_end_matches("::"));
    let mut out = String::new();
    let mut last_ns: Option<&str> = None;
    for f in &docs.functions {
        if let Some(filter) = filter {
            if f.namespace != filter && f.qualified_name() != filter && f.name != filter {
                continue;
            }
        }
        if last_ns != Some(f.namespace.as_str()) {
            if let Some(previous) = last_ns {
                write_settings(&mut out, docs, previous);
            }
            let module = docs.modules.iter().find(|m| m.name == f.namespace);
            let title = match module {
                _ if f.namespace.is_empty() => "global functions".to_string(),
                Some(m) => format!("{}:: (stock module: import \"{}\" as {};)", m.name, m.name, m.name),
                None => format!("{}::", f.namespace),
            };
            out.push_str(&format!("\n## {title}\n\n"));
            if let Some(m) = module.filter(|m| !m.about.is_empty() && filter == Some(m.name.as_str())) {
                out.push_str(&format!("{}\n\n", m.about.trim_end()));
            }
            last_ns = Some(f.namespace.as_str());
        }
        out.push_str(&format!("{}\n", f.signature));
        for line in f.doc.lines() {
            out.push_str(format!("    {line}").trim_end());
            out.push('\n');
        }
        out.push('\n');
    }
    if let Some(last) = last_ns {
        write_settings(&mut out, docs, last);
    }
    out.trim_start().to_string()
}

/// The settings a stock module declares, after its functions.
fn write_settings(out: &mut String, docs: &Docs, namespace: &str) {
    let Some(module) = docs.modules.iter().find(|m| m.name == namespace && !m.settings.is_empty()) else { return };
    out.push_str(&format!("settings of {} (`--set name=value`, checked before a run starts):\n\n", module.name));
    out.push_str(&render_settings(&module.settings));
}

/// Declared settings, one per entry: name, what values fit, default, doc.
pub fn render_settings(settings: &[Setting]) -> String {
    let mut out = String::new();
    for s in settings {
        for line in s.to_string().lines() {
            out.push_str(&format!("  {line}\n"));
        }
    }
    out.push('\n');
    out
}
