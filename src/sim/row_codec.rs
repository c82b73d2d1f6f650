//! OpenMLDB's row encoding (`src/codec/codec.cc` `RowBuilder`/`RowView`, format version 1),
//! for rows whose columns are all strings, as the sandbox tables' `row_key, row_value` and the
//! system tables' are: what OpenMLDB's SDK sends in a Put (so `sandbox verify` can read back
//! rows it wrote), what the nameserver writes into GLOBAL_VARIABLES, and what a tablet's Query
//! answers.
//!
//! Layout: `u8` format version (1), `u8` schema version, `u32` little-endian row size, a null
//! bitmap of `columns.div_ceil(8)` bytes (bit set = NULL), the fixed-size columns (none here),
//! one offset per string column (each 1, 2, 3 or 4 bytes as the row size needs; the 3-byte
//! form is big-endian, the others little-endian), then the strings back to back; each string
//! ends where the next begins, the last at the row size.

/// The width of a string offset for a row of `size` bytes (`GetAddrLength`).
fn offset_width(size: usize) -> usize {
    match size {
        0..=0xFF => 1,
        0x100..=0xFFFF => 2,
        0x1_0000..=0xFF_FFFF => 3,
        _ => 4,
    }
}

fn read_offset(bytes: &[u8], width: usize) -> usize {
    match width {
        1 => bytes[0] as usize,
        2 => u16::from_le_bytes([bytes[0], bytes[1]]) as usize,
        3 => (bytes[0] as usize) << 16 | (bytes[1] as usize) << 8 | bytes[2] as usize,
        _ => u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize,
    }
}

const HEADER: usize = 6;

/// The columns of a row of `columns` string columns; `None` when `row` is not one.
pub fn decode_strings(row: &[u8], columns: usize) -> Option<Vec<Option<String>>> {
    if row.len() < HEADER || row[0] != 1 {
        return None;
    }
    let size = u32::from_le_bytes(row[2..6].try_into().ok()?) as usize;
    if size != row.len() {
        return None;
    }
    let bitmap = columns.div_ceil(8);
    let width = offset_width(size);
    let offsets_at = HEADER + bitmap;
    let strings_at = offsets_at + columns * width;
    if strings_at > size {
        return None;
    }
    let mut values = Vec::with_capacity(columns);
    for i in 0..columns {
        let start = read_offset(&row[offsets_at + i * width..], width);
        let end = if i + 1 < columns { read_offset(&row[offsets_at + (i + 1) * width..], width) } else { size };
        if start < strings_at || start > end || end > size {
            return None;
        }
        let null = row[HEADER + i / 8] & (1 << (i % 8)) != 0;
        values.push((!null).then(|| String::from_utf8_lossy(&row[start..end]).to_string()));
    }
    Some(values)
}

/// Encodes string columns as the SDK does.
pub fn encode_strings(values: &[Option<&str>]) -> Vec<u8> {
    let columns = values.len();
    let bitmap = columns.div_ceil(8);
    let text: usize = values.iter().map(|v| v.map_or(0, str::len)).sum();
    // The offset width depends on the total size, which depends on the width.
    let mut width = 1;
    let size = loop {
        let size = HEADER + bitmap + columns * width + text;
        if offset_width(size) == width {
            break size;
        }
        width = offset_width(size);
    };
    let mut row = vec![1u8, 1];
    row.extend_from_slice(&(size as u32).to_le_bytes());
    // Every bit starts set; a present value clears its bit.
    let mut nulls = vec![0xFFu8; bitmap];
    for (i, value) in values.iter().enumerate() {
        if value.is_some() {
            nulls[i / 8] &= !(1 << (i % 8));
        }
    }
    row.extend_from_slice(&nulls);
    let mut at = HEADER + bitmap + columns * width;
    for value in values {
        let bytes = (at as u32).to_le_bytes();
        match width {
            3 => row.extend_from_slice(&[bytes[2], bytes[1], bytes[0]]),
            w => row.extend_from_slice(&bytes[..w]),
        }
        at += value.map_or(0, str::len);
    }
    for value in values.iter().flatten() {
        row.extend_from_slice(value.as_bytes());
    }
    row
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The layout the SDK's `RowBuilder` gives two string columns (header, bitmap, offsets,
    /// strings).
    #[test]
    fn a_row_of_two_strings_round_trips_and_matches_the_sdk_layout() {
        let row = encode_strings(&[Some("k-1"), Some("{\"key\":\"k-1\"}")]);
        // version 1, schema version 1, size, bitmap 0xfc (2 columns present, unused bits set),
        // offsets 9 and 12.
        assert_eq!(&row[..9], &[1, 1, row.len() as u8, 0, 0, 0, 0xfc, 9, 12]);
        assert_eq!(decode_strings(&row, 2), Some(vec![Some("k-1".into()), Some("{\"key\":\"k-1\"}".into())]));
        assert_eq!(decode_strings(b"{\"key\":\"k-1\"}", 2), None);
        let long = "x".repeat(300);
        let row = encode_strings(&[Some("k"), None, Some(&long)]);
        assert_eq!(decode_strings(&row, 3), Some(vec![Some("k".into()), None, Some(long)]));
    }
}
