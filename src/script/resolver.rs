//! `import "name"`: site modules first, then the stock modules compiled into the binary.
//!
//! Search order for `import "rolling"`:
//! 1. `rolling.rhai` in each `--lib DIR`, in order;
//! 2. `rolling.rhai` next to the script being run;
//! 3. the stock `stdlib/rolling.rhai` embedded in the binary (an installed binary needs no
//!    source tree).
//!
//! So a team overrides a stock module by putting its own file of the same name in `--lib`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use include_dir::{include_dir, Dir};
use rhai::{Engine, EvalAltResult, Module, Position, Scope, Shared};

/// The stock modules, compiled in.
pub static STDLIB: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/stdlib");

/// Text of every script and module loaded so far, by the label errors use for it.
#[derive(Debug, Clone, Default)]
pub struct SourceMap {
    inner: Arc<Mutex<HashMap<String, Arc<str>>>>,
}

impl SourceMap {
    pub fn insert(&self, label: &str, text: &str) {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).insert(label.to_string(), Arc::from(text));
    }
    pub fn get(&self, label: &str) -> Option<Arc<str>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).get(label).cloned()
    }
}

/// Names of the stock modules (`version`, `remote`, ...).
pub fn stdlib_modules() -> Vec<String> {
    let mut names: Vec<String> = STDLIB
        .files()
        .filter_map(|f| f.path().to_str()?.strip_suffix(".rhai").map(str::to_string))
        .filter(|n| !n.ends_with(".d"))
        .collect();
    names.sort();
    names
}

/// The embedded text of a stock module.
pub fn stdlib_source(name: &str) -> Option<&'static str> {
    STDLIB.get_file(format!("{name}.rhai"))?.contents_utf8()
}

pub struct Resolver {
    lib_dirs: Vec<PathBuf>,
    script_dir: Mutex<Option<PathBuf>>,
    sources: SourceMap,
    cache: Mutex<HashMap<String, Shared<Module>>>,
}

impl Resolver {
    pub fn new(lib_dirs: Vec<PathBuf>, sources: SourceMap) -> Self {
        Resolver { lib_dirs, script_dir: Mutex::new(None), sources, cache: Mutex::new(HashMap::new()) }
    }

    /// Sets the directory of the main script (step 2 of the search).
    pub fn set_script_dir(&self, dir: Option<PathBuf>) {
        *self.script_dir.lock().unwrap_or_else(|p| p.into_inner()) = dir;
    }

    /// Finds a module's text and the label errors show for it.
    pub fn locate(&self, name: &str) -> Option<(String, String)> {
        let file = format!("{}.rhai", name.trim_end_matches(".rhai"));
        let script_dir = self.script_dir.lock().unwrap_or_else(|p| p.into_inner()).clone();
        for dir in self.lib_dirs.iter().chain(script_dir.as_ref()) {
            let path = dir.join(&file);
            if let Ok(text) = std::fs::read_to_string(&path) {
                return Some((display_label(&path), text));
            }
        }
        stdlib_source(name.trim_end_matches(".rhai")).map(|text| (format!("stdlib/{file}"), text.to_string()))
    }
}

fn display_label(path: &Path) -> String {
    let cwd = std::env::current_dir().unwrap_or_default();
    path.strip_prefix(&cwd).unwrap_or(path).display().to_string()
}

impl rhai::ModuleResolver for Resolver {
    fn resolve(
        &self,
        engine: &Engine,
        _source: Option<&str>,
        path: &str,
        pos: Position,
    ) -> Result<Shared<Module>, Box<EvalAltResult>> {
        if let Some(module) = self.cache.lock().unwrap_or_else(|p| p.into_inner()).get(path) {
            return Ok(module.clone());
        }
        let Some((label, text)) = self.locate(path) else {
            return Err(EvalAltResult::ErrorModuleNotFound(path.to_string(), pos).into());
        };
        self.sources.insert(&label, &text);
        let mut ast =
            engine.compile(&text).map_err(|e| Box::new(EvalAltResult::ErrorInModule(label.clone(), e.into(), pos)))?;
        ast.set_source(label.as_str());
        let module = Module::eval_ast_as_new(Scope::new(), &ast, engine)
            .map_err(|e| Box::new(EvalAltResult::ErrorInModule(label.clone(), e, pos)))?;
        let module: Shared<Module> = module.into();
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).insert(path.to_string(), module.clone());
        Ok(module)
    }
}
