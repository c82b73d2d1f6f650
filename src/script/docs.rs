//! The script API as documentation, read back from the engine's own metadata so it can never
//! drift from what is registered. Used by `mldb-upgrade docs` and the REPL's `:help`.

use rhai::Engine;

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

/// Every function registered by mldb-upgrade (not Rhai's standard library), sorted.
pub fn functions(engine: &Engine) -> Vec<FunctionDoc> {
    let mut docs = engine.collect_fn_metadata(
        None,
        |info| {
            let meta = info.metadata;
            let namespace = info.namespace.to_string();
            let params: Vec<String> = meta.params_info.iter().map(|p| p.to_string()).collect();
            let prefix = if namespace.is_empty() { String::new() } else { format!("{namespace}::") };
            let signature = format!("{prefix}{}({}) -> {}", meta.name, params.join(", "), meta.return_type);
            let doc = meta
                .comments
                .iter()
                .flat_map(|c| {
                    c.lines()
                        .map(|l| {
                            l.trim_start_matches("///")
                                .strip_prefix(' ')
                                .unwrap_or(l.trim_start_matches("///"))
                                .to_string()
                        })
                        .collect::<Vec<_>>()
                })
                .collect::<Vec<_>>()
                .join("\n");
            Some(FunctionDoc { namespace, name: meta.name.to_string(), signature, doc })
        },
        false,
    );
    docs.sort_by(|a, b| (&a.namespace, &a.name, &a.signature).cmp(&(&b.namespace, &b.name, &b.signature)));
    docs.dedup();
    docs
}

/// Renders the docs for a terminal; `filter` keeps functions whose qualified name or namespace
/// matches.
pub fn render(functions: &[FunctionDoc], filter: Option<&str>) -> String {
    let mut out = String::new();
    let mut last_ns: Option<&str> = None;
    for f in functions {
        if let Some(filter) = filter {
            let filter = filter.trim_end_matches("::");
            if f.namespace != filter && f.qualified_name() != filter && f.name != filter {
                continue;
            }
        }
        if last_ns != Some(f.namespace.as_str()) {
            let title =
                if f.namespace.is_empty() { "global functions".to_string() } else { format!("{}::", f.namespace) };
            out.push_str(&format!("\n## {title}\n\n"));
            last_ns = Some(f.namespace.as_str());
        }
        out.push_str(&format!("{}\n", f.signature));
        for line in f.doc.lines() {
            out.push_str(format!("    {line}").trim_end());
            out.push('\n');
        }
        out.push('\n');
    }
    out.trim_start().to_string()
}
