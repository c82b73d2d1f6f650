//! The text layouts of OpenMLDB's command-line clients, as pure functions (C§5).
//!
//! * [`TPrinter`]: baidu-common's `TPrinter::Print(true)` used by `ns_client` and `client`:
//!   every cell is `"  "` plus the cell left-padded to the column width, the header is
//!   followed by `sum(width + 2) + 2` dashes. Widths are measured *before* empty cells become
//!   `-`, so a column whose cells are all empty has width 0 and its `-` sticks out by one.
//!   Cells longer than `--max_col_display_length` are cut.
//! * [`TextTable`]: hybridse's `TextTable('-', ' ', ' ')` used by `sql_client` for result
//!   sets: a ruler of dashes before and after the header and after the last row, cells
//!   `" " + text` padded to `width + 2`, multi-line cells spread over several lines.
//! * [`human_readable_size`], [`human_readable_time`], [`local_time`]: `src/base/strings.h`'s
//!   `HumanReadableString` / `HumanReadableTime` and `strftime("%Y%m%d%H%M%S", localtime)`.

/// Pads `text` with spaces to `width` bytes, like `std::setw(width) << std::left`.
fn pad(out: &mut String, text: &str, width: usize) {
    out.push_str(text);
    for _ in text.len()..width {
        out.push(' ');
    }
}

/// `openmldb::base::SplitString`: splits on `delim` and drops empty pieces.
pub fn split_string(full: &str, delim: char) -> Vec<&str> {
    full.split(delim).filter(|piece| !piece.is_empty()).collect()
}

/// baidu-common's `TPrinter` (`include/tprinter.h`).
#[derive(Debug, Clone)]
pub struct TPrinter {
    max_col_width: usize,
    widths: Vec<usize>,
    rows: Vec<Vec<String>>,
}

impl TPrinter {
    /// A printer of `cols` columns; cells are cut at `max_col_width` bytes.
    pub fn new(cols: usize, max_col_width: usize) -> TPrinter {
        TPrinter { max_col_width, widths: vec![0; cols], rows: Vec::new() }
    }

    /// A printer whose first row is `header`.
    pub fn with_header(header: &[&str], max_col_width: usize) -> TPrinter {
        let mut printer = TPrinter::new(header.len(), max_col_width);
        printer.add_row(header.iter().map(|h| h.to_string()).collect());
        printer
    }

    /// Adds a row; a row of the wrong length is refused with TPrinter's stderr complaint.
    pub fn add_row(&mut self, cols: Vec<String>) -> bool {
        if cols.len() != self.widths.len() {
            eprintln!("arg num error: {} vs {}", cols.len(), self.widths.len());
            return false;
        }
        let mut line = Vec::with_capacity(cols.len());
        for (i, mut item) in cols.into_iter().enumerate() {
            if item.len() > self.max_col_width {
                let mut cut = self.max_col_width;
                while !item.is_char_boundary(cut) {
                    cut -= 1;
                }
                item.truncate(cut);
            }
            self.widths[i] = self.widths[i].max(item.len());
            if item.is_empty() {
                item = "-".to_string();
            }
            line.push(item);
        }
        self.rows.push(line);
        true
    }

    /// `TPrinter::ToString(has_head)`: empty when there is no row at all.
    pub fn render(&self, has_head: bool) -> String {
        let mut out = String::new();
        for (index, row) in self.rows.iter().enumerate() {
            for (cell, width) in row.iter().zip(&self.widths) {
                out.push_str("  ");
                pad(&mut out, cell, *width);
            }
            out.push('\n');
            if index == 0 && has_head {
                let line_len: usize = self.widths.iter().map(|w| w + 2).sum();
                out.push_str(&"-".repeat(line_len + 2));
                out.push('\n');
            }
        }
        out
    }
}

/// hybridse's `base::TextTable` with horizontal `-`, vertical and corner ` `.
#[derive(Debug, Clone, Default)]
pub struct TextTable {
    rows: Vec<Vec<String>>,
}

impl TextTable {
    pub fn new() -> TextTable {
        TextTable::default()
    }

    pub fn add_row(&mut self, row: Vec<String>) {
        self.rows.push(row);
    }

    /// `operator<<(ostream, TextTable)`.
    pub fn render(&self) -> String {
        let Some(first) = self.rows.first() else {
            return String::new();
        };
        let mut widths = vec![0usize; first.len()];
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate().take(widths.len()) {
                let longest = split_string(cell, '\n').iter().map(|t| t.len()).max().unwrap_or(0);
                widths[i] = widths[i].max(longest);
            }
        }
        for width in widths.iter_mut() {
            *width += 2;
        }
        let mut ruler = String::from(" ");
        for width in &widths {
            ruler.push_str(&"-".repeat(*width));
            ruler.push(' ');
        }
        let mut out = format!("{ruler}\n");
        for (line, row) in self.rows.iter().enumerate() {
            let pieces: Vec<Vec<&str>> = row.iter().map(|cell| split_string(cell, '\n')).collect();
            let max_lines = pieces.iter().map(Vec::len).max().unwrap_or(0);
            for j in 0..max_lines {
                out.push(' ');
                for (i, cell_lines) in pieces.iter().enumerate() {
                    let text = format!(" {}", cell_lines.get(j).copied().unwrap_or(""));
                    pad(&mut out, &text, widths.get(i).copied().unwrap_or(0));
                    out.push(' ');
                }
                out.push('\n');
            }
            if line < 1 || line == self.rows.len() - 1 {
                out.push_str(&ruler);
                out.push('\n');
            }
        }
        out
    }
}

/// `HumanReadableString`: powers of 1024 with three decimals, e.g. `0.000`, `1.500 K`.
pub fn human_readable_size(num: i64) -> String {
    const PREFIX: [&str; 7] = ["", " K", " M", " G", " T", " P", " E"];
    let mut shift = 0;
    let mut value = num as f64;
    let mut rest = num;
    loop {
        rest >>= 10;
        if rest <= 0 || shift >= 6 {
            break;
        }
        value /= 1024.0;
        shift += 1;
    }
    format!("{value:.3}{}", PREFIX[shift])
}

/// `HumanReadableTime` of milliseconds: `120ms`, `40s`, `25m`, `3h`, `2d` (truncated).
pub fn human_readable_time(age_ms: u64) -> String {
    const OFFSETS: [u64; 4] = [1000, 60, 60, 24];
    const LABELS: [&str; 5] = ["ms", "s", "m", "h", "d"];
    let mut value = age_ms;
    for (offset, label) in OFFSETS.iter().zip(LABELS) {
        let next = value / offset;
        if next == 0 {
            return format!("{value}{label}");
        }
        value = next;
    }
    format!("{value}{}", LABELS[4])
}

/// `strftime("%Y%m%d%H%M%S", localtime(secs))`.
pub fn local_time(secs: u64) -> String {
    use chrono::TimeZone;
    match chrono::Local.timestamp_opt(secs as i64, 0).earliest() {
        Some(time) => time.format("%Y%m%d%H%M%S").to_string(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(cells: &[&str]) -> Vec<String> {
        cells.iter().map(|c| c.to_string()).collect()
    }

    #[test]
    fn tprinter_layout_pads_every_cell_and_draws_dashes() {
        let mut printer = TPrinter::with_header(&["endpoint", "real_endpoint", "state", "age"], 256);
        printer.add_row(strings(&["127.0.0.1:9527", "", "kHealthy", "40s"]));
        let expected = "  endpoint        real_endpoint  state     age\n\
                        ------------------------------------------------\n  \
                        127.0.0.1:9527  -              kHealthy  40s\n";
        assert_eq!(printer.render(true), expected);
        // sum(width + 2) + 2 dashes
        assert_eq!(expected.lines().nth(1).map(str::len), Some((14 + 2) + (13 + 2) + (8 + 2) + (3 + 2) + 2));
    }

    #[test]
    fn tprinter_empty_column_keeps_width_zero() {
        let mut printer = TPrinter::new(2, 256);
        printer.add_row(strings(&["a", ""]));
        printer.add_row(strings(&["b", ""]));
        assert_eq!(printer.render(true), "  a  -\n-------\n  b  -\n");
    }

    #[test]
    fn tprinter_cuts_long_cells_and_refuses_bad_rows() {
        let mut printer = TPrinter::new(1, 3);
        printer.add_row(strings(&["abcdef"]));
        assert!(!printer.add_row(strings(&["x", "y"])));
        assert_eq!(printer.render(false), "  abc\n");
        assert_eq!(TPrinter::new(1, 3).render(true), "");
    }

    #[test]
    fn text_table_matches_hybridse_layout() {
        let mut table = TextTable::new();
        table.add_row(strings(&["Field", "Type", "NULL"]));
        table.add_row(strings(&["column1", "kInt32", "No"]));
        table.add_row(strings(&["ts", "kTimestamp", ""]));
        // texttable_test.cc's expectation with `|` and `+` replaced by spaces
        let expected = [
            "+---------+------------+------+",
            "| Field   | Type       | NULL |",
            "+---------+------------+------+",
            "| column1 | kInt32     | No   |",
            "| ts      | kTimestamp |      |",
            "+---------+------------+------+",
        ]
        .map(|line| format!("{}\n", line.replace(['|', '+'], " ")))
        .concat();
        assert_eq!(table.render(), expected);
    }

    #[test]
    fn text_table_multi_line_cells_and_header_only() {
        let mut table = TextTable::new();
        table.add_row(strings(&["A", "Warnings"]));
        table.add_row(strings(&["1", "x\nyy"]));
        assert_eq!(
            table.render(),
            " --- ---------- \n  A   Warnings  \n --- ---------- \n  1   x         \n      yy        \n --- ---------- \n"
        );
        let mut header_only = TextTable::new();
        header_only.add_row(strings(&["A"]));
        assert_eq!(header_only.render(), " --- \n  A  \n --- \n");
    }

    #[test]
    fn human_readable_values() {
        assert_eq!(human_readable_size(0), "0.000");
        assert_eq!(human_readable_size(1023), "1023.000");
        assert_eq!(human_readable_size(1024), "1.000 K");
        assert_eq!(human_readable_size(1536), "1.500 K");
        assert_eq!(human_readable_size(3 * 1024 * 1024), "3.000 M");
        assert_eq!(human_readable_time(120), "120ms");
        assert_eq!(human_readable_time(40_500), "40s");
        assert_eq!(human_readable_time(25 * 60_000 + 1), "25m");
        assert_eq!(human_readable_time(3 * 3_600_000), "3h");
        assert_eq!(human_readable_time(50 * 3_600_000), "2d");
    }

    #[test]
    fn split_string_drops_empty_pieces() {
        assert_eq!(split_string("  showtable  t1 ", ' '), vec!["showtable", "t1"]);
        assert!(split_string("", ' ').is_empty());
    }
}
