//! A TaskManager's `conf/taskmanager.properties`, read the way the TaskManager reads it and
//! edited one definition at a time, each edit checked by reading the file again.
//!
//! The TaskManager loads the file with `java.util.Properties.load`
//! (`TaskManagerConfig.java` line 244: `props.load(...getResourceAsStream("taskmanager.properties"))`,
//! the copy start.sh puts in `taskmanager/conf/` on every start, O§1.2), so [`entries`] follows that
//! grammar: `#` and `!` comment lines, `key=value`, `key = value`, `key: value` and `key value`,
//! `\` escapes and line continuations, trailing blanks kept in the value, and the last definition
//! of a key winning. The file is read through the host's shell as text; bytes that are not
//! UTF-8 (Java reads ISO 8859-1) come out as U+FFFD, which only matters in values nobody here
//! compares.
//!
//! An edit ([`Control::set_property`]) replaces the lines of the definition that counts (the last
//! one) with `key=value` using `sed` on the host, so every other byte of the file stays as it
//! was, or appends the line when the key is not defined. Then the file is read again: the key
//! must hold the new value and every other key its old one, else the edit failed (a `sed` that
//! matched nothing never passes silently). The value it replaced is recorded
//! (`properties/<endpoint>`, [`super::records`]) before the edit, for the rollback
//! ([`Control::rollback_properties`]).

use std::collections::BTreeMap;

use serde::Serialize;

use super::records::{PropertyEdit, PropertyEdits};
use super::{join, q, ComponentError, Control, Result, SHORT};
use crate::config::Component;

/// Where a TaskManager's properties live, relative to its install directory.
pub const TASKMANAGER_PROPERTIES: &str = "conf/taskmanager.properties";

/// One definition in a properties file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: String,
    pub value: String,
    /// Its first and last physical line (0-based; more than one with `\` continuations).
    pub first_line: usize,
    pub last_line: usize,
}

fn is_blank(c: char) -> bool {
    c == ' ' || c == '\t' || c == '\x0c'
}

/// Every definition of `text`, in file order, as `Properties.load` reads them.
pub fn entries(text: &str) -> Vec<Entry> {
    let lines = physical_lines(text);
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let first_line = i;
        let start = lines[i].trim_start_matches(is_blank);
        i += 1;
        if start.is_empty() || start.starts_with('#') || start.starts_with('!') {
            continue;
        }
        // An odd number of trailing backslashes joins the next line, minus its leading blanks.
        let mut logical = String::new();
        let mut piece = start;
        loop {
            let backslashes = piece.chars().rev().take_while(|c| *c == '\\').count();
            if backslashes % 2 == 0 || i >= lines.len() {
                logical.push_str(if backslashes % 2 == 0 { piece } else { &piece[..piece.len() - 1] });
                break;
            }
            logical.push_str(&piece[..piece.len() - 1]);
            piece = lines[i].trim_start_matches(is_blank);
            i += 1;
        }
        let (key, value) = key_and_value(&logical);
        out.push(Entry { key: unescape(key), value: unescape(value), first_line, last_line: i - 1 });
    }
    out
}

/// Lines ended by `\n`, `\r\n` or `\r`, as `Properties.load` splits them.
fn physical_lines(text: &str) -> Vec<&str> {
    let mut lines = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        match rest.find(['\n', '\r']) {
            Some(at) => {
                lines.push(&rest[..at]);
                let skip = if rest[at..].starts_with("\r\n") { 2 } else { 1 };
                rest = &rest[at + skip..];
            }
            None => {
                lines.push(rest);
                rest = "";
            }
        }
    }
    lines
}

/// The key runs to the first unescaped `=`, `:` or blank; after it come blanks, at most one
/// `=` or `:` (when the key ended at a blank), and blanks again.
fn key_and_value(line: &str) -> (&str, &str) {
    let mut end = line.len();
    let mut by_separator = false;
    let mut escaped = false;
    for (at, c) in line.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            '=' | ':' => {
                end = at;
                by_separator = true;
                break;
            }
            c if is_blank(c) => {
                end = at;
                break;
            }
            _ => {}
        }
    }
    let key = &line[..end];
    let mut rest = &line[end..];
    if by_separator {
        rest = &rest[1..];
    }
    rest = rest.trim_start_matches(is_blank);
    if !by_separator {
        if let Some(after) = rest.strip_prefix(['=', ':']) {
            rest = after.trim_start_matches(is_blank);
        }
    }
    (key, rest)
}

/// `\uXXXX`, `\t`, `\n`, `\r`, `\f`; a backslash before any other character stands for it.
fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('f') => out.push('\x0c'),
            Some('u') => {
                let hex: String = chars.by_ref().take(4).collect();
                out.extend(u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32));
            }
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

/// Every key with the value that counts (the last definition's).
pub fn parse(text: &str) -> BTreeMap<String, String> {
    entries(text).into_iter().map(|e| (e.key, e.value)).collect()
}

/// The value of `key` that counts, exactly as the TaskManager sees it.
pub fn value(text: &str, key: &str) -> Option<String> {
    entries(text).into_iter().rev().find(|e| e.key == key).map(|e| e.value)
}

/// `key=value` written so that `Properties.load` reads back exactly `key` and `value`.
pub fn definition_line(key: &str, value: &str) -> String {
    let mut line = escape(key, true);
    line.push('=');
    line.push_str(&escape(value, false));
    line
}

fn escape(text: &str, is_key: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for (i, c) in text.chars().enumerate() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\x0c' => out.push_str("\\f"),
            // A key ends at these; a value's leading blank would be skipped, and a leading
            // `#` or `!` on a key would make the line a comment.
            '=' | ':' if is_key => out.extend(['\\', c]),
            ' ' if is_key || i == 0 => out.push_str("\\ "),
            '#' | '!' if is_key && i == 0 => out.extend(['\\', c]),
            // Java reads the file as ISO 8859-1: anything beyond ASCII goes as `\uXXXX`.
            c if c.is_control() || !c.is_ascii() => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out
}

/// What an edit does to the file's lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineEdit {
    /// Lines `first..=last` (0-based) become `line`.
    Replace { first: usize, last: usize, line: String },
    /// `line` goes at the end.
    Append { line: String },
    /// Lines `first..=last` go.
    Delete { first: usize, last: usize },
}

/// The edit that makes `key` read `value` (or, with `None`, makes it undefined), or `None`
/// when the file reads so already.
pub fn edit_for(text: &str, key: &str, value: Option<&str>) -> Option<LineEdit> {
    let all = entries(text);
    let defining: Vec<&Entry> = all.iter().filter(|e| e.key == key).collect();
    match (value, defining.last()) {
        (Some(value), Some(last)) if last.value == value => None,
        (Some(value), Some(last)) => {
            Some(LineEdit::Replace { first: last.first_line, last: last.last_line, line: definition_line(key, value) })
        }
        (Some(value), None) => Some(LineEdit::Append { line: definition_line(key, value) }),
        (None, None) => None,
        // Undefined: the definitions go one at a time, the last first; the caller edits, reads
        // the file again and asks again while one is left.
        (None, Some(last)) => Some(LineEdit::Delete { first: last.first_line, last: last.last_line }),
    }
}

/// The shell command that applies `edit` to `file` in place (GNU sed, through a symlink to the
/// file it points at).
pub fn edit_command(file: &str, edit: &LineEdit) -> String {
    let file = q(file);
    match edit {
        LineEdit::Replace { first, last, line } => {
            // sed's `c\` text: a backslash must be doubled.
            let text = line.replace('\\', "\\\\");
            format!("sed -i --follow-symlinks {} {file}", q(&format!("{},{}c\\{text}", first + 1, last + 1)))
        }
        LineEdit::Append { line } => format!(
            "{{ if [ -s {file} ] && [ -n \"$(tail -c 1 {file})\" ]; then echo; fi; printf '%s\\n' {}; }} >> {file}",
            q(line)
        ),
        LineEdit::Delete { first, last } => {
            format!("sed -i --follow-symlinks {} {file}", q(&format!("{},{}d", first + 1, last + 1)))
        }
    }
}

/// What [`Control::set_property`] and [`Control::rollback_properties`] did to one key.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PropertyChange {
    pub endpoint: String,
    pub host: String,
    /// The properties file, on the host.
    pub file: String,
    pub key: String,
    /// The value before (`None`: the key was not defined).
    pub before: Option<String>,
    /// The value now (`None`: not defined).
    pub after: Option<String>,
    /// Whether the file was changed (false when it held the value already).
    pub changed: bool,
    /// Why a rollback left a key as it is, when it did.
    pub note: String,
    pub dry_run: bool,
}

impl Control<'_> {
    /// The TaskManager's properties file and its text.
    pub(super) async fn properties_text(&self, c: &Component, step: &str) -> Result<(String, String)> {
        let file = join(&c.dir, TASKMANAGER_PROPERTIES);
        let next =
            "a TaskManager's install needs conf/taskmanager.properties (start.sh copies it into taskmanager/conf/)";
        let out = self.run(c, step, &format!("cat {}", q(&file)), SHORT, next).await?;
        Ok((file, out.stdout))
    }

    /// `conf/taskmanager.properties` of a TaskManager as the TaskManager reads it: every key
    /// with the value of its last definition, exactly (trailing blanks kept).
    pub async fn properties(&self, endpoint: &str) -> Result<BTreeMap<String, String>> {
        let c = self.taskmanager(endpoint, "component::properties")?;
        let (_, text) = self.properties_text(c, "reading conf/taskmanager.properties").await?;
        Ok(parse(&text))
    }

    /// Sets `key` to `value` in the TaskManager's `conf/taskmanager.properties` (it takes
    /// effect at its next start): the definition that counts is replaced in place, or the line
    /// appended. The value it had is recorded first (`properties/<endpoint>`, kept across the
    /// run so the rollback returns to the value before the run). Then the file is read again and
    /// the edit fails unless `key` reads `value` and nothing else changed.
    pub async fn set_property(&self, endpoint: &str, key: &str, value: &str) -> Result<PropertyChange> {
        let c = self.taskmanager(endpoint, "component::set_property")?;
        let step = format!("setting {key} in conf/taskmanager.properties of taskmanager {endpoint}");
        let (file, text) = self.properties_text(c, &step).await?;
        let before = self::value(&text, key);
        let mut change = PropertyChange {
            endpoint: endpoint.to_string(),
            host: c.host.clone(),
            file: file.clone(),
            key: key.to_string(),
            before: before.clone(),
            after: Some(value.to_string()),
            changed: false,
            note: String::new(),
            dry_run: self.dry_run,
        };
        let Some(edit) = edit_for(&text, key, Some(value)) else {
            return Ok(change);
        };
        let was = before.as_deref().map_or("not set".to_string(), |b| format!("was {b}"));
        if self.dry_run {
            (self.say)(&format!("[dry-run] {}: would set {key}={value} in {file} ({was})", c.host));
            return Ok(change);
        }
        self.record_property_edit(c, &step, &file, key, before.as_deref(), Some(value)).await?;
        self.apply_property_edit(c, &step, &file, &text, key, Some(value), &edit).await?;
        change.changed = true;
        (self.say)(&format!("set {key}={value} in {file} on {} ({was})", c.host));
        Ok(change)
    }

    /// Puts back the values [`set_property`](Self::set_property) replaced in the TaskManager's
    /// `conf/taskmanager.properties` (its record `properties/<endpoint>`), each checked like an
    /// edit. A key whose value changed since the edit (by hand) is left as it is and said so.
    /// Returns one change per recorded key; none when nothing is recorded.
    pub async fn rollback_properties(&self, endpoint: &str) -> Result<Vec<PropertyChange>> {
        let c = self.taskmanager(endpoint, "component::rollback_properties")?;
        let Some(record) = self.recorded::<PropertyEdits>("properties", endpoint).await? else {
            return Ok(Vec::new());
        };
        let step = format!("putting back conf/taskmanager.properties of taskmanager {endpoint}");
        let mut done = Vec::new();
        for edit in record.changes.iter().rev() {
            let (file, text) = self.properties_text(c, &step).await?;
            let now = self::value(&text, &edit.key);
            let mut change = PropertyChange {
                endpoint: endpoint.to_string(),
                host: c.host.clone(),
                file: file.clone(),
                key: edit.key.clone(),
                before: now.clone(),
                after: now.clone(),
                changed: false,
                note: String::new(),
                dry_run: self.dry_run,
            };
            let shown = |v: &Option<String>| v.clone().unwrap_or_else(|| "(not set)".into());
            if now == edit.before {
                change.note = "already holds the value from before the upgrade".into();
            } else if now.as_deref() != Some(edit.after.as_str()) {
                change.note = format!(
                    "left as it is: it reads {} now, not {} as the upgrade set it (changed by hand since?); \
                     the value before the upgrade was {}",
                    shown(&now),
                    edit.after,
                    shown(&edit.before)
                );
                (self.say)(&format!("{}: {} in {file}: {}", c.host, edit.key, change.note));
            } else if self.dry_run {
                (self.say)(&format!(
                    "[dry-run] {}: would put back {} in {file}: {} (now {})",
                    c.host,
                    edit.key,
                    shown(&edit.before),
                    edit.after
                ));
                change.after = edit.before.clone();
            } else {
                let mut text = text;
                // An undefined key may take more than one deletion (one definition at a time).
                while let Some(line_edit) = edit_for(&text, &edit.key, edit.before.as_deref()) {
                    self.apply_property_edit(c, &step, &file, &text, &edit.key, edit.before.as_deref(), &line_edit)
                        .await?;
                    text = self.properties_text(c, &step).await?.1;
                    if matches!(line_edit, LineEdit::Replace { .. } | LineEdit::Append { .. }) {
                        break;
                    }
                }
                change.after = edit.before.clone();
                change.changed = true;
                (self.say)(&format!(
                    "put back {}={} in {file} on {} (was {})",
                    edit.key,
                    shown(&edit.before),
                    c.host,
                    edit.after
                ));
            }
            done.push(change);
        }
        if !self.dry_run {
            self.forget(c, &step, "properties").await?;
        }
        Ok(done)
    }

    /// Records, before an edit, the value `key` had, keeping the earliest value of this run.
    async fn record_property_edit(
        &self,
        c: &Component,
        step: &str,
        file: &str,
        key: &str,
        before: Option<&str>,
        after: Option<&str>,
    ) -> Result<()> {
        let run = self.run_id().await;
        let endpoint = c.endpoint.to_string();
        let mut record = match self.recorded::<PropertyEdits>("properties", &endpoint).await? {
            // Edits of an earlier run were undone or kept: this run's rollback returns to now.
            Some(r) if r.run.is_some() && r.run == run => r,
            _ => PropertyEdits { file: file.to_string(), run, changes: Vec::new() },
        };
        let after = after.unwrap_or_default().to_string();
        match record.changes.iter_mut().find(|e| e.key == key) {
            Some(existing) => existing.after = after,
            None => {
                record.changes.push(PropertyEdit { key: key.to_string(), before: before.map(str::to_string), after })
            }
        }
        self.record(c, step, "properties", &record).await
    }

    /// Runs `edit` on the host and reads the file again: `key` must read `want` and every other
    /// key what it read before.
    #[allow(clippy::too_many_arguments)]
    async fn apply_property_edit(
        &self,
        c: &Component,
        step: &str,
        file: &str,
        text_before: &str,
        key: &str,
        want: Option<&str>,
        edit: &LineEdit,
    ) -> Result<()> {
        let command = edit_command(file, edit);
        let next = format!("{file} may be unchanged; set {key} by hand if it is not, then re-run");
        self.run(c, step, &command, SHORT, &next).await?;
        let (_, text_after) = self.properties_text(c, step).await?;
        let mut expected = parse(text_before);
        match want {
            Some(v) => expected.insert(key.to_string(), v.to_string()),
            None => expected.remove(key),
        };
        let got = parse(&text_after);
        // Deleting one of several definitions of a key leaves the one before it.
        let same_elsewhere = |a: &BTreeMap<String, String>, b: &BTreeMap<String, String>| {
            a.iter().filter(|(k, _)| *k != key).eq(b.iter().filter(|(k, _)| *k != key))
        };
        let key_ok = match (want, edit) {
            (None, LineEdit::Delete { .. }) => true,
            _ => got.get(key).map(String::as_str) == want,
        };
        if key_ok && same_elsewhere(&expected, &got) {
            return Ok(());
        }
        let reads = got.get(key).map_or("(not set)".to_string(), |v| format!("`{v}`"));
        let others: Vec<String> = expected
            .iter()
            .filter(|(k, v)| *k != key && got.get(*k) != Some(*v))
            .map(|(k, _)| k.clone())
            .chain(got.keys().filter(|k| *k != key && !expected.contains_key(*k)).cloned())
            .collect();
        let what = if others.is_empty() {
            format!("{key} reads {reads} after `{command}`")
        } else {
            format!("after `{command}`, {key} reads {reads} and these keys changed too: {}", others.join(", "))
        };
        Err(ComponentError::Other {
            step: step.to_string(),
            endpoint: c.endpoint.to_string(),
            reason: format!(
                "the edit of {file} on {} did not take: {what}. Look at the file, set {key}={} by hand, then re-run",
                c.host,
                want.unwrap_or("(remove the key)")
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_like_properties_load_comments_spacing_continuations_last_wins() {
        let text = "# spark.master=yarn\n  ! batchjob.jar.path=x\nspark.master = yarn\n\
                    batchjob.jar.path:hdfs://nn/a/openmldb-batchjob-0.9.2.jar\n\
                    spark.yarn.jars   hdfs://nn/spark/\\\n    jars/*\r\n\
                    spark.home=/opt/spark  \nkey\\ with\\=sep = v\\u0041\\t\nempty\n\
                    spark.master=yarn-client\n";
        let p = parse(text);
        assert_eq!(p["spark.master"], "yarn-client", "the last definition wins");
        assert_eq!(p["batchjob.jar.path"], "hdfs://nn/a/openmldb-batchjob-0.9.2.jar");
        assert_eq!(p["spark.yarn.jars"], "hdfs://nn/spark/jars/*");
        assert_eq!(p["spark.home"], "/opt/spark  ", "trailing blanks stay, as in Java");
        assert_eq!(p["key with=sep"], "vA\t");
        assert_eq!(p["empty"], "");
        assert_eq!(p.len(), 6, "{p:?}");
        let yarn_jars = entries(text).into_iter().find(|e| e.key == "spark.yarn.jars").unwrap();
        assert_eq!((yarn_jars.first_line, yarn_jars.last_line), (4, 5));
        assert_eq!(value("a=1\n#a=2\n", "a").as_deref(), Some("1"));
        assert_eq!(
            value("spark.home=\n#spark.home=/a\nspark.home=/opt/spark\n", "spark.home").as_deref(),
            Some("/opt/spark")
        );
    }

    #[test]
    fn definition_lines_read_back_exactly() {
        for (key, value) in [
            ("batchjob.jar.path", "hdfs://nn:8020/openmldb/openmldb-batchjob-0.9.3.jar"),
            ("a key", " leading blank, trailing blank "),
            ("k=:#", "back\\slash\ttab é ü 中"),
            ("#x", "!y"),
        ] {
            let line = definition_line(key, value);
            assert_eq!(parse(&line), BTreeMap::from([(key.to_string(), value.to_string())]), "{line}");
        }
        assert_eq!(definition_line("batchjob.jar.path", "hdfs://nn/x.jar"), "batchjob.jar.path=hdfs://nn/x.jar");
    }

    #[test]
    fn an_edit_replaces_the_definition_that_counts_or_appends() {
        let text = "batchjob.jar.path=old1\n# c\nbatchjob.jar.path = old2\\\n  .jar\nother=1\n";
        assert_eq!(
            edit_for(text, "batchjob.jar.path", Some("new")),
            Some(LineEdit::Replace { first: 2, last: 3, line: "batchjob.jar.path=new".into() })
        );
        assert_eq!(edit_for(text, "batchjob.jar.path", Some("old2.jar")), None, "already so");
        assert_eq!(
            edit_for(text, "spark.yarn.jars", Some("v")),
            Some(LineEdit::Append { line: "spark.yarn.jars=v".into() })
        );
        assert_eq!(edit_for(text, "other", None), Some(LineEdit::Delete { first: 4, last: 4 }));
        assert_eq!(edit_for(text, "missing", None), None);
    }

    #[test]
    fn edit_commands_are_line_addressed_sed_or_an_append() {
        let replace = LineEdit::Replace { first: 2, last: 3, line: "k=v".into() };
        assert_eq!(
            edit_command("/srv/tm/conf/taskmanager.properties", &replace),
            // shlex picks double quotes for a backslash: the shell hands sed `3,4c\k=v`.
            "sed -i --follow-symlinks \"3,4c\\\\k=v\" /srv/tm/conf/taskmanager.properties"
        );
        let append = edit_command("/f", &LineEdit::Append { line: "k=v".into() });
        assert!(append.ends_with("printf '%s\\n' 'k=v'; } >> /f"), "{append}");
        assert_eq!(edit_command("/f", &LineEdit::Delete { first: 0, last: 0 }), "sed -i --follow-symlinks '1,1d' /f");
    }

    /// The commands do what they say on a real file, with the real sed.
    #[test]
    fn edit_commands_work_on_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("taskmanager.properties");
        let original =
            "# keep me\nspark.master=yarn\nbatchjob.jar.path = hdfs://nn/a/\\\n   openmldb-batchjob-0.9.2.jar\nz=é\n";
        std::fs::write(&file, original).unwrap();
        let path = file.display().to_string();
        let sh = |command: &str| {
            let status = std::process::Command::new("sh").arg("-c").arg(command).status().unwrap();
            assert!(status.success(), "{command}");
            std::fs::read_to_string(&file).unwrap()
        };
        let new = "hdfs://nn/a/openmldb-batchjob-0.9.3.jar";
        let text = sh(&edit_command(&path, &edit_for(original, "batchjob.jar.path", Some(new)).unwrap()));
        assert_eq!(text, format!("# keep me\nspark.master=yarn\nbatchjob.jar.path={new}\nz=é\n"));
        let text = sh(&edit_command(&path, &edit_for(&text, "spark.yarn.jars", Some("hdfs://nn/jars/*")).unwrap()));
        assert_eq!(value(&text, "spark.yarn.jars").as_deref(), Some("hdfs://nn/jars/*"));
        let text = sh(&edit_command(&path, &edit_for(&text, "spark.yarn.jars", None).unwrap()));
        assert_eq!(text, format!("# keep me\nspark.master=yarn\nbatchjob.jar.path={new}\nz=é\n"));
        // Backslashes and quotes survive both the shell and sed.
        let odd = "C:\\odd 'quoted' \\path\\";
        let text = sh(&edit_command(&path, &edit_for(&text, "batchjob.jar.path", Some(odd)).unwrap()));
        assert_eq!(value(&text, "batchjob.jar.path").as_deref(), Some(odd), "{text}");
        assert_eq!(value(&text, "z").as_deref(), Some("é"));
        std::fs::write(&file, "no.newline=1").unwrap();
        let text = sh(&edit_command(&path, &LineEdit::Append { line: "k=v".into() }));
        assert_eq!(text, "no.newline=1\nk=v\n");
    }
}
