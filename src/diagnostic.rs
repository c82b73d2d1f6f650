//! Rendering of errors that point into a text file: a script or a config file.
//!
//! The shape follows compilers operators already read: a headline, `--> file:line:col`, the
//! source line, a caret under the column, then notes. Script errors add the call chain across
//! modules (see [`crate::script::error`]).

use std::fmt::Write as _;

/// A place in a text file, 1-based like editors show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub file: String,
    pub line: usize,
    pub column: usize,
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// Line and column (both 1-based) of a byte offset in `text`.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

/// The text of 1-based line `line`, without its newline.
pub fn source_line(text: &str, line: usize) -> Option<&str> {
    text.lines().nth(line.checked_sub(1)?)
}

/// Writes the `--> location`, the source line and a caret of `width` columns.
pub fn write_snippet(out: &mut String, location: &Location, source: Option<&str>, width: usize) {
    let _ = writeln!(out, "  --> {location}");
    let Some(text) = source.and_then(|s| source_line(s, location.line)) else {
        return;
    };
    let number = location.line.to_string();
    let pad = " ".repeat(number.len());
    let text = text.replace('\t', " ");
    let caret_pad = " ".repeat(location.column.saturating_sub(1));
    let _ = writeln!(out, "{pad} |");
    let _ = writeln!(out, "{number} | {text}");
    let _ = writeln!(out, "{pad} | {caret_pad}{}", "^".repeat(width.max(1)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_from_one() {
        let text = "a = 1\nbb = 2\n";
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, 6), (2, 1));
        assert_eq!(line_col(text, 9), (2, 4));
    }

    #[test]
    fn snippet_puts_caret_under_column() {
        let mut out = String::new();
        let loc = Location { file: "x.rhai".into(), line: 2, column: 5 };
        write_snippet(&mut out, &loc, Some("let a = 1;\nlet b = boom();\n"), 1);
        assert_eq!(out, "  --> x.rhai:2:5\n  |\n2 | let b = boom();\n  |     ^\n");
    }
}
