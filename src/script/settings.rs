//! Settings (`--set name=value`): declared by the scripts and modules that read them, and
//! checked before a script runs, so a typo or a bad value never gets as far as the cluster.
//!
//! A script or module declares its settings in one place, a top-level constant:
//!
//! ```rhai
//! const SETTINGS = #{
//!     single_replica: #{ type: "choice", values: ["add_replica", "allow_unavailable"],
//!                        "default": "add_replica", doc: "what happens to a single-replica partition" },
//!     bake: #{ type: "duration", "default": "0s", doc: "how long to wait after each component" },
//!     release: #{ type: "release", required: true, doc: "the release to install" },
//! };
//! ```
//!
//! (`default` is a reserved word in Rhai, so that key is written in quotes.)
//!
//! The declarations of a script and of every module it imports are read from the compiled code
//! (no module is run to find them). `setting(name)` then returns the given value or the declared
//! default. A `--set` that no declaration names and no `setting("name", ...)` reads is refused
//! with a suggestion; a value that does not fit its type is refused naming what would.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use rhai::{Dynamic, Map};

use crate::cluster::topology::Role;
use crate::config::ClusterConfig;

/// What values a setting takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SettingType {
    /// Any text.
    String,
    Bool,
    Int,
    /// `500ms`, `10s`, `2m`, `1h30m`.
    Duration,
    /// One of the declared `values`.
    Choice(Vec<String>),
    /// `true` or `false`; `true` makes the flow ask before each phase, which needs a terminal
    /// (or `--yes`, which answers yes).
    Gate,
    /// `config`, `reverse`, or every tablet endpoint of the cluster config once, comma-separated.
    Tablets,
    /// An OpenMLDB release on this machine: an `openmldb-X.Y.Z-linux` directory or its tarball.
    Release,
    /// A file or directory that exists on this machine.
    Path,
}

impl SettingType {
    /// The names scripts use in `type: "..."`.
    const NAMES: [&'static str; 9] =
        ["string", "bool", "int", "duration", "choice", "gate", "tablets", "release", "path"];

    /// What values fit, for messages and docs.
    pub fn describe(&self) -> String {
        match self {
            SettingType::String => "text".into(),
            SettingType::Bool | SettingType::Gate => "true or false".into(),
            SettingType::Int => "a whole number".into(),
            SettingType::Duration => "a duration such as 500ms, 30s, 10m or 1h30m".into(),
            SettingType::Choice(values) => one_of(values),
            SettingType::Tablets => "config, reverse, or every tablet endpoint once, comma-separated".into(),
            SettingType::Release => "an openmldb-X.Y.Z-linux directory or .tar.gz on this machine".into(),
            SettingType::Path => "a file or directory on this machine".into(),
        }
    }
}

fn one_of(values: &[String]) -> String {
    match values {
        [] => "nothing".into(),
        [only] => only.clone(),
        [rest @ .., last] => format!("{} or {last}", rest.join(", ")),
    }
}

/// One declared setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    pub name: String,
    pub kind: SettingType,
    /// Used when the setting is not given; `None` for a required one.
    pub default: Option<String>,
    pub required: bool,
    pub doc: String,
    /// The script or module that declares it (`stdlib/rolling.rhai`).
    pub declared_in: String,
}

impl fmt::Display for Setting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let default = match (&self.default, self.required) {
            (_, true) => "required".to_string(),
            (Some(d), false) if d.is_empty() => "default empty".to_string(),
            (Some(d), false) => format!("default {d}"),
            (None, false) => "optional".to_string(),
        };
        write!(f, "{}: {} ({default})", self.name, self.kind.describe())?;
        if !self.doc.is_empty() {
            write!(f, "\n    {}", self.doc)?;
        }
        Ok(())
    }
}

/// Reads a `SETTINGS` constant: a map from setting name to `#{type, values, default, required,
/// doc}`. The error says what is wrong with which entry.
pub fn parse_declarations(value: &Dynamic, declared_in: &str) -> Result<Vec<Setting>, String> {
    let map =
        value.clone().try_cast::<Map>().ok_or("SETTINGS must be a map of setting name to #{type, default, doc}")?;
    let mut settings = Vec::new();
    for (name, entry) in map {
        let bad = |what: String| format!("SETTINGS.{name}: {what}");
        let entry = entry.try_cast::<Map>().ok_or_else(|| bad("must be a map #{type, default, doc}".into()))?;
        let text = |key: &str| -> Result<Option<String>, String> {
            match entry.get(key) {
                None => Ok(None),
                Some(v) => {
                    v.clone().into_string().map(Some).map_err(|t| bad(format!("{key} must be a string, not {t}")))
                }
            }
        };
        for key in entry.keys() {
            if !["type", "values", "default", "required", "doc"].contains(&key.as_str()) {
                return Err(bad(format!("unknown key `{key}`; a setting has type, values, default, required and doc")));
            }
        }
        let type_name = text("type")?.ok_or_else(|| bad("has no type".into()))?;
        let values: Vec<String> = match entry.get("values") {
            None => Vec::new(),
            Some(v) => v
                .clone()
                .try_cast::<rhai::Array>()
                .ok_or_else(|| bad("values must be an array of strings".into()))?
                .into_iter()
                .map(|v| v.into_string().map_err(|_| bad("values must be an array of strings".into())))
                .collect::<Result<_, _>>()?,
        };
        let kind = match type_name.as_str() {
            "string" => SettingType::String,
            "bool" => SettingType::Bool,
            "int" => SettingType::Int,
            "duration" => SettingType::Duration,
            "choice" if values.is_empty() => return Err(bad("type choice needs values: [...]".into())),
            "choice" => SettingType::Choice(values.clone()),
            "gate" => SettingType::Gate,
            "tablets" => SettingType::Tablets,
            "release" => SettingType::Release,
            "path" => SettingType::Path,
            other => {
                return Err(bad(format!("unknown type `{other}`; expected one of {}", SettingType::NAMES.join(", "))))
            }
        };
        if !values.is_empty() && !matches!(kind, SettingType::Choice(_)) {
            return Err(bad("values go with type choice only".into()));
        }
        let required = match entry.get("required") {
            None => false,
            Some(v) => v.as_bool().map_err(|t| bad(format!("required must be true or false, not {t}")))?,
        };
        let default = text("default")?;
        if let Some(d) = &default {
            check_value(&kind, d, &Context::default()).map_err(|e| bad(format!("default `{d}`: {e}")))?;
        }
        settings.push(Setting {
            name: name.to_string(),
            kind,
            default,
            required,
            doc: text("doc")?.unwrap_or_default(),
            declared_in: declared_in.to_string(),
        });
    }
    Ok(settings)
}

/// What a value is checked against besides its type.
#[derive(Default)]
pub struct Context<'a> {
    /// The cluster config, for settings that name its components.
    pub config: Option<&'a ClusterConfig>,
    /// Whether a gate can ask: a terminal on stdin, or `--yes`.
    pub can_confirm: bool,
}

/// Whether `value` fits `kind`; the error says why not and what would.
pub fn check_value(kind: &SettingType, value: &str, context: &Context) -> Result<(), String> {
    let expected = || format!("expected {}", kind.describe());
    match kind {
        SettingType::String => Ok(()),
        SettingType::Bool => matches!(value, "true" | "false").then_some(()).ok_or_else(expected),
        SettingType::Gate => match value {
            "false" => Ok(()),
            "true" if context.can_confirm => Ok(()),
            "true" => Err("asks before each phase, but there is no terminal to ask on: run it from a terminal, \
                           or pass --yes to answer yes"
                .into()),
            _ => Err(expected()),
        },
        SettingType::Int => value.parse::<i64>().map(|_| ()).map_err(|_| expected()),
        SettingType::Duration => crate::config::parse_duration(value).map(|_| ()),
        SettingType::Choice(values) => values.iter().any(|v| v == value).then_some(()).ok_or_else(expected),
        SettingType::Tablets => check_tablet_order(value, context.config),
        SettingType::Release => check_release(Path::new(value)),
        SettingType::Path => {
            Path::new(value).exists().then_some(()).ok_or_else(|| format!("{value} does not exist on this machine"))
        }
    }
}

/// `config`, `reverse`, or each tablet of the config exactly once.
fn check_tablet_order(value: &str, config: Option<&ClusterConfig>) -> Result<(), String> {
    if value == "config" || value == "reverse" {
        return Ok(());
    }
    let listed: Vec<&str> = value.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
    let tablets: Vec<String> =
        config.map(|c| c.components_of(Role::Tablet).map(|c| c.endpoint.to_string()).collect()).unwrap_or_default();
    let known = tablets.join(", ");
    if listed.iter().any(|ep| ep.parse::<crate::cluster::topology::Endpoint>().is_err()) {
        let these = if known.is_empty() { String::new() } else { format!(" ({known})") };
        return Err(format!("expected config, reverse, or every tablet endpoint{these} once, comma-separated"));
    }
    if config.is_none() {
        return Ok(());
    }
    if let Some(unknown) = listed.iter().find(|ep| !tablets.iter().any(|t| t == *ep)) {
        return Err(format!("{unknown} is not a tablet of the cluster config; its tablets are {known}"));
    }
    let mut sorted = listed.clone();
    sorted.sort();
    sorted.dedup();
    if sorted.len() != listed.len() || listed.len() != tablets.len() {
        return Err(format!("list every tablet exactly once; the cluster config has {known}"));
    }
    Ok(())
}

/// An OpenMLDB release: a directory holding `bin/openmldb`, or an `openmldb-X.Y.Z-linux.tar.gz`
/// (`.tgz`). The directory `sandbox release --out` made, or one that holds releases, gets the
/// release inside it suggested.
fn check_release(path: &Path) -> Result<(), String> {
    let shown = path.display();
    if path.is_file() {
        let name = path.to_string_lossy();
        return (name.ends_with(".tar.gz") || name.ends_with(".tgz"))
            .then_some(())
            .ok_or_else(|| format!("{shown} is a file but not a .tar.gz or .tgz release"));
    }
    if !path.is_dir() {
        return Err(format!("{shown} does not exist on this machine"));
    }
    if path.join("bin/openmldb").is_file() {
        return Ok(());
    }
    let mut inside: Vec<String> = std::fs::read_dir(path)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.join("bin/openmldb").is_file() || p.to_string_lossy().ends_with("-linux.tar.gz"))
                .map(|p| p.display().to_string())
                .collect()
        })
        .unwrap_or_default();
    inside.sort();
    // A release unpacked beside its tarball is one release: the directory is suggested.
    let unpacked: Vec<String> = inside.iter().filter(|p| !p.ends_with(".tar.gz")).cloned().collect();
    inside.retain(|p| !p.strip_suffix(".tar.gz").is_some_and(|dir| unpacked.iter().any(|u| u == dir)));
    match inside.as_slice() {
        [] => Err(format!("{shown} is not an OpenMLDB release: it has no bin/openmldb")),
        [one] => Err(format!("{shown} holds a release but is not one; did you mean --set release={one}?")),
        many => Err(format!("{shown} holds several releases; pick one: {}", many.join(", "))),
    }
}

/// Checks the given settings against the declarations; `read` are the names scripts read with
/// `setting("name", ...)` without declaring them. Every problem is listed.
pub fn validate(
    declared: &[Setting],
    read: &[String],
    given: &BTreeMap<String, String>,
    context: &Context,
) -> Result<(), Vec<String>> {
    let mut problems = Vec::new();
    for (name, value) in given {
        match declared.iter().find(|s| &s.name == name) {
            Some(setting) => {
                if let Err(e) = check_value(&setting.kind, value, context) {
                    problems.push(format!("{name}={value}: {e}"));
                }
            }
            None if read.contains(name) => {}
            None => {
                let known: Vec<&str> =
                    declared.iter().map(|s| s.name.as_str()).chain(read.iter().map(String::as_str)).collect();
                let closest = known.iter().map(|k| (strsim::levenshtein(k, name), *k)).filter(|(d, _)| *d <= 3).min();
                problems.push(match closest {
                    Some((_, k)) => format!("{name}: no such setting; did you mean {k}?"),
                    None if known.is_empty() => format!("{name}: no such setting; this script reads no settings"),
                    None => format!("{name}: no such setting; the settings are {}", known.join(", ")),
                });
            }
        }
    }
    for setting in declared.iter().filter(|s| s.required && !given.contains_key(&s.name)) {
        problems.push(format!(
            "{} is required: pass --set {}=... ({})",
            setting.name,
            setting.name,
            setting.kind.describe()
        ));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn declared() -> Vec<Setting> {
        let value: Dynamic = rhai::Engine::new()
            .eval(
                r#"#{
                    single_replica: #{ type: "choice", values: ["add_replica", "allow_unavailable"], "default": "add_replica" },
                    bake: #{ type: "duration", "default": "0s" },
                    confirm: #{ type: "gate", "default": "false" },
                    allow_downgrade: #{ type: "bool", "default": "false" },
                    tablet_order: #{ type: "tablets", "default": "config" },
                }"#,
            )
            .unwrap();
        parse_declarations(&value, "stdlib/rolling.rhai").unwrap()
    }

    fn given(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn bad_values_name_what_fits() {
        let context = Context::default();
        let problems = validate(
            &declared(),
            &[],
            &given(&[("single_replica", "bogus"), ("bake", "xyz"), ("allow_downgrade", "yes"), ("confirm", "maybe")]),
            &context,
        )
        .unwrap_err();
        assert_eq!(problems.len(), 4, "{problems:?}");
        assert!(
            problems.iter().any(|p| p == "single_replica=bogus: expected add_replica or allow_unavailable"),
            "{problems:?}"
        );
        assert!(problems.iter().any(|p| p.starts_with("bake=xyz: `xyz` is not a duration")), "{problems:?}");
        assert!(problems.iter().any(|p| p == "allow_downgrade=yes: expected true or false"), "{problems:?}");
        assert!(problems.iter().any(|p| p == "confirm=maybe: expected true or false"), "{problems:?}");
    }

    #[test]
    fn unknown_keys_get_the_closest_name() {
        let problems = validate(
            &declared(),
            &["pager".into()],
            &given(&[("singel_replica", "add_replica"), ("pager", "x")]),
            &Context::default(),
        )
        .unwrap_err();
        assert_eq!(problems, vec!["singel_replica: no such setting; did you mean single_replica?".to_string()]);
    }

    #[test]
    fn a_gate_needs_a_terminal_or_yes() {
        let no_terminal = Context { config: None, can_confirm: false };
        let problems = validate(&declared(), &[], &given(&[("confirm", "true")]), &no_terminal).unwrap_err();
        assert!(problems[0].contains("no terminal to ask on"), "{problems:?}");
        let with_yes = Context { config: None, can_confirm: true };
        assert!(validate(&declared(), &[], &given(&[("confirm", "true")]), &with_yes).is_ok());
    }

    #[test]
    fn declarations_are_checked() {
        let engine = rhai::Engine::new();
        let bad = |text: &str| parse_declarations(&engine.eval::<Dynamic>(text).unwrap(), "x.rhai").unwrap_err();
        assert_eq!(
            bad(r#"#{ a: #{ type: "colour" } }"#).split(';').next().unwrap(),
            "SETTINGS.a: unknown type `colour`"
        );
        assert_eq!(bad(r#"#{ a: #{ type: "choice" } }"#), "SETTINGS.a: type choice needs values: [...]");
        assert!(bad(r#"#{ a: #{ type: "duration", "default": "soon" } }"#).starts_with("SETTINGS.a: default `soon`: "));
        assert!(bad(r#"#{ a: #{ type: "bool", defualt: "true" } }"#).contains("unknown key `defualt`"));
    }

    #[test]
    fn release_parent_directory_suggests_the_release_inside() {
        let dir = tempfile::tempdir().unwrap();
        let release = dir.path().join("openmldb-0.9.3-linux");
        std::fs::create_dir_all(release.join("bin")).unwrap();
        std::fs::write(release.join("bin/openmldb"), "").unwrap();
        assert!(check_release(&release).is_ok());
        let err = check_release(dir.path()).unwrap_err();
        assert!(err.contains(&format!("did you mean --set release={}", release.display())), "{err}");
        let empty = tempfile::tempdir().unwrap();
        assert!(check_release(empty.path()).unwrap_err().contains("has no bin/openmldb"));
    }
}
