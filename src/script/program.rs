//! A script and every module it imports, compiled but not run: what `check` and the checks
//! before `run` look at. Rhai finds a missing module, an unknown function or a bad setting only
//! when that line runs, possibly after the script has changed the cluster; here all of it is
//! found up front (DESIGN: bad input is rejected before the cluster is touched).

use std::collections::{BTreeMap, BTreeSet};

use rhai::{ASTNode, Engine, Expr, Position, Stmt, AST};

use super::error::{ScriptError, ScriptErrorKind};
use super::resolver::{Resolver, SourceMap};
use super::settings::{self, Setting};

/// One compiled file: the main script or a module.
pub struct Unit {
    /// The label errors use (`scripts/upgrade.rhai`, `stdlib/rolling.rhai`).
    pub label: String,
    pub ast: AST,
    /// Import alias → the unit it names.
    pub imports: BTreeMap<String, usize>,
}

/// The main script (unit 0) and its modules.
pub struct Program {
    pub units: Vec<Unit>,
}

/// A call, where it is.
#[derive(Debug, Clone)]
pub struct CallSite {
    pub unit: usize,
    pub namespace: String,
    pub name: String,
    pub args: usize,
    pub position: Position,
    /// The first argument, when it is a string literal (`setting("bake")`).
    pub first_literal: Option<String>,
}

impl Program {
    /// Resolves and compiles every module `main` imports, transitively. A module that cannot be
    /// found or does not compile is an error at its `import`.
    pub fn load(
        engine: &Engine,
        resolver: &Resolver,
        sources: &SourceMap,
        label: &str,
        main: AST,
    ) -> Result<Program, ScriptError> {
        let mut program =
            Program { units: vec![Unit { label: label.to_string(), ast: main, imports: BTreeMap::new() }] };
        let mut by_name: BTreeMap<String, usize> = BTreeMap::new();
        let mut next = 0;
        while next < program.units.len() {
            let imports = import_statements(&program.units[next].ast);
            for (module, alias, position) in imports {
                let index = match by_name.get(&module) {
                    Some(index) => *index,
                    None => {
                        let unit = program.compile_module(engine, resolver, sources, next, &module, position)?;
                        program.units.push(unit);
                        by_name.insert(module.clone(), program.units.len() - 1);
                        program.units.len() - 1
                    }
                };
                program.units[next].imports.insert(alias, index);
            }
            next += 1;
        }
        Ok(program)
    }

    fn compile_module(
        &self,
        engine: &Engine,
        resolver: &Resolver,
        sources: &SourceMap,
        importer: usize,
        module: &str,
        position: Position,
    ) -> Result<Unit, ScriptError> {
        let at = |message: String| {
            ScriptError::at(ScriptErrorKind::Input, message, &self.units[importer].label, position, sources)
        };
        let Some((label, text)) = resolver.locate(module) else {
            return Err(at(format!(
                "module `{module}` not found: looked for {module}.rhai in --lib directories, next to the script, and in the stock modules"
            )));
        };
        sources.insert(&label, &text);
        let mut ast = engine.compile(&text).map_err(|e| ScriptError::from_parse(&e, &label, sources))?;
        ast.set_source(label.as_str());
        Ok(Unit { label, ast, imports: BTreeMap::new() })
    }

    /// Every function call in every unit (operators excluded).
    pub fn calls(&self) -> Vec<CallSite> {
        let mut calls = Vec::new();
        for (index, unit) in self.units.iter().enumerate() {
            unit.ast.walk(&mut |path: &[ASTNode]| {
                let (call, position) = match path.last() {
                    Some(ASTNode::Expr(Expr::FnCall(call, pos))) => (call, pos),
                    Some(ASTNode::Stmt(Stmt::FnCall(call, pos))) => (call, pos),
                    _ => return true,
                };
                if call.op_token.is_some() || !is_identifier(&call.name) {
                    return true;
                }
                let first_literal = match call.args.first() {
                    Some(Expr::StringConstant(text, _)) => Some(text.to_string()),
                    _ => None,
                };
                calls.push(CallSite {
                    unit: index,
                    namespace: call.namespace.to_string(),
                    name: call.name.to_string(),
                    args: call.args.len(),
                    position: *position,
                    first_literal,
                });
                true
            });
        }
        calls
    }

    /// The settings every unit declares in its `SETTINGS` constant ([`settings`]).
    pub fn declared_settings(&self, sources: &SourceMap) -> Result<Vec<Setting>, ScriptError> {
        let mut declared: Vec<Setting> = Vec::new();
        for unit in &self.units {
            let Some((_, _, value)) =
                unit.ast.iter_literal_variables(true, false).find(|(name, ..)| *name == "SETTINGS")
            else {
                continue;
            };
            let settings = settings::parse_declarations(&value, &unit.label).map_err(|message| {
                ScriptError::at(ScriptErrorKind::Input, message, &unit.label, settings_position(&unit.ast), sources)
            })?;
            for setting in settings {
                if let Some(twin) = declared.iter().find(|s| s.name == setting.name) {
                    let message = format!(
                        "setting {} is declared in {} and again in {}; declare it once",
                        setting.name, twin.declared_in, setting.declared_in
                    );
                    return Err(ScriptError::at(
                        ScriptErrorKind::Input,
                        message,
                        &unit.label,
                        settings_position(&unit.ast),
                        sources,
                    ));
                }
                declared.push(setting);
            }
        }
        declared.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(declared)
    }

    /// Names read with a literal `setting("name", ...)` anywhere in the program.
    pub fn settings_read(&self) -> Vec<String> {
        let names: BTreeSet<String> = self
            .calls()
            .into_iter()
            .filter(|c| c.namespace.is_empty() && c.name == "setting")
            .filter_map(|c| c.first_literal)
            .collect();
        names.into_iter().collect()
    }
}

/// `(module, alias, position)` of every `import "module" as alias;` with a literal module name.
fn import_statements(ast: &AST) -> Vec<(String, String, Position)> {
    let mut imports = Vec::new();
    ast.walk(&mut |path: &[ASTNode]| {
        if let Some(ASTNode::Stmt(Stmt::Import(import, position))) = path.last() {
            let (expr, alias) = &**import;
            if let Expr::StringConstant(module, _) = expr {
                imports.push((module.to_string(), alias.name.to_string(), *position));
            }
        }
        true
    });
    imports
}

/// Where a unit's `const SETTINGS` is, for errors about it.
fn settings_position(ast: &AST) -> Position {
    ast.statements()
        .iter()
        .find_map(|stmt| match stmt {
            Stmt::Var(x, _, position) if x.0.as_str() == "SETTINGS" => Some(*position),
            _ => None,
        })
        .unwrap_or(Position::NONE)
}

fn is_identifier(name: &str) -> bool {
    name.chars().next().is_some_and(|c| c.is_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_alphanumeric() || c == '_')
}
