//! How the REPL shows a value: a list of uniform maps (tablets, partitions, ops) as a table,
//! anything else pretty-printed with indentation. Pure functions of the value.

use comfy_table::{presets, Table};
use rhai::{Array, Dynamic, Map};

/// Width under which a list of plain values stays on one line.
const INLINE_WIDTH: usize = 80;

/// The text for a statement's result; empty for `()`.
pub fn render(value: &Dynamic) -> String {
    if value.is_unit() {
        return String::new();
    }
    if let Some(table) = value.read_lock::<Array>().and_then(|a| table(&a)) {
        return table;
    }
    let mut out = String::new();
    pretty(value, 0, &mut out);
    out
}

/// A table when `rows` is a non-empty list of maps that all have the same keys.
pub fn table(rows: &Array) -> Option<String> {
    let first = rows.first()?.read_lock::<Map>()?;
    let keys: Vec<String> = first.keys().map(|k| k.to_string()).collect();
    drop(first);
    if keys.is_empty() {
        return None;
    }
    let mut cells = Vec::with_capacity(rows.len());
    for row in rows {
        let map = row.read_lock::<Map>()?;
        if map.len() != keys.len() || !keys.iter().all(|k| map.contains_key(k.as_str())) {
            return None;
        }
        cells.push(keys.iter().map(|k| cell(&map[k.as_str()])).collect());
    }
    Some(format!("{}\n({} rows)", grid(keys, cells), rows.len()))
}

/// Text cells under a header, in the REPL's table style.
pub fn grid(header: Vec<String>, rows: Vec<Vec<String>>) -> String {
    let mut table = Table::new();
    table.load_preset(presets::ASCII_FULL_CONDENSED);
    table.set_header(header);
    for row in rows {
        table.add_row(row);
    }
    table.to_string()
}

/// A table cell: strings without quotes, `()` as `-`, nested values on one line.
fn cell(value: &Dynamic) -> String {
    if value.is_unit() {
        "-".into()
    } else if value.is_string() {
        value.to_string()
    } else {
        inline(value).unwrap_or_else(|| value.to_string())
    }
}

/// A scalar as a script would write it (strings quoted).
fn scalar(value: &Dynamic) -> String {
    if value.is_string() {
        format!("{:?}", value.to_string())
    } else if value.is_unit() {
        "()".into()
    } else {
        value.to_string()
    }
}

fn is_container(value: &Dynamic) -> bool {
    value.is_array() || value.is_map()
}

/// One-line form of a value, if it fits in [`INLINE_WIDTH`].
fn inline(value: &Dynamic) -> Option<String> {
    let text = if let Some(array) = value.read_lock::<Array>() {
        let parts: Option<Vec<String>> = array.iter().map(inline).collect();
        format!("[{}]", parts?.join(", "))
    } else if let Some(map) = value.read_lock::<Map>() {
        if map.is_empty() {
            "#{}".to_string()
        } else {
            let parts: Option<Vec<String>> =
                map.iter().map(|(k, v)| inline(v).map(|v| format!("{}: {v}", key(k)))).collect();
            format!("#{{ {} }}", parts?.join(", "))
        }
    } else {
        scalar(value)
    };
    (text.len() <= INLINE_WIDTH && !text.contains('\n')).then_some(text)
}

/// A map key as a script would write it: bare when it is an identifier.
fn key(k: &str) -> String {
    let ident = k.chars().next().is_some_and(|c| c.is_alphabetic() || c == '_')
        && k.chars().all(|c| c.is_alphanumeric() || c == '_');
    if ident {
        k.to_string()
    } else {
        format!("{k:?}")
    }
}

fn pretty(value: &Dynamic, indent: usize, out: &mut String) {
    let pad = "    ".repeat(indent + 1);
    if let Some(array) = value.read_lock::<Array>() {
        if array.is_empty() || !array.iter().any(is_container) {
            if let Some(text) = inline(value) {
                out.push_str(&text);
                return;
            }
        }
        out.push_str("[\n");
        for item in array.iter() {
            out.push_str(&pad);
            pretty(item, indent + 1, out);
            out.push_str(",\n");
        }
        out.push_str(&"    ".repeat(indent));
        out.push(']');
    } else if let Some(map) = value.read_lock::<Map>() {
        if map.is_empty() {
            out.push_str("#{}");
            return;
        }
        out.push_str("#{\n");
        for (k, v) in map.iter() {
            out.push_str(&format!("{pad}{}: ", key(k)));
            pretty(v, indent + 1, out);
            out.push_str(",\n");
        }
        out.push_str(&"    ".repeat(indent));
        out.push('}');
    } else {
        out.push_str(&scalar(value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eval(script: &str) -> Dynamic {
        rhai::Engine::new().eval::<Dynamic>(script).expect("test script evaluates")
    }

    #[test]
    fn uniform_maps_print_as_a_table() {
        let text = render(&eval(
            r#"[#{endpoint: "127.0.0.1:10921", state: "kHealthy", age_ms: 5},
                #{endpoint: "127.0.0.2:10921", state: "kOffline", age_ms: 70}]"#,
        ));
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[1].contains("age_ms") && lines[1].contains("endpoint") && lines[1].contains("state"), "{text}");
        assert!(text.contains("| 127.0.0.1:10921 | kHealthy |"), "{text}");
        assert!(text.contains("| 70     | 127.0.0.2:10921 | kOffline |"), "{text}");
        assert!(text.ends_with("(2 rows)"), "{text}");
    }

    #[test]
    fn unit_cells_and_nested_values_stay_on_one_line() {
        let text = render(&eval(r#"[#{op: 1, pid: (), tags: ["a", "b"]}]"#));
        assert!(text.contains("| 1  | -   | [\"a\", \"b\"] |"), "{text}");
    }

    #[test]
    fn maps_with_different_keys_are_pretty_printed() {
        let text = render(&eval(r#"[#{a: 1}, #{b: "x"}]"#));
        assert_eq!(text, "[\n    #{\n        a: 1,\n    },\n    #{\n        b: \"x\",\n    },\n]");
    }

    #[test]
    fn maps_and_arrays_are_indented() {
        let text =
            render(&eval(r#"#{leader: "ns1", tablets: [1, 2, 3], config: #{"auto-failover": true}, none: #{}}"#));
        assert_eq!(
            text,
            "#{\n    config: #{\n        \"auto-failover\": true,\n    },\n    leader: \"ns1\",\n    none: #{},\n    tablets: [1, 2, 3],\n}"
        );
    }

    #[test]
    fn scalars_and_unit() {
        assert_eq!(render(&eval("42")), "42");
        assert_eq!(render(&eval(r#""hello""#)), "\"hello\"");
        assert_eq!(render(&eval("()")), "");
        assert_eq!(render(&eval("[]")), "[]");
    }

    #[test]
    fn long_lists_of_scalars_break_over_lines() {
        let text = render(&eval("let a = []; for i in 0..30 { a.push(`item-${i}`); } a"));
        assert!(text.starts_with("[\n    \"item-0\",\n"), "{text}");
    }
}
