//! Text positions: LSP speaks UTF-16 line/character pairs, galley's diagnostics speak byte offsets.
//! Every conversion clamps, so a client sending positions past the end of a line, inside a
//! surrogate pair or past the end of the file never panics the server.

use lsp_types::{Position, Range, TextDocumentContentChangeEvent};

/// The UTF-16 position of byte offset `at` in `text` (clamped to the text and to a char boundary).
pub fn position_of(text: &str, at: usize) -> Position {
    let mut at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    let before = &text[..at];
    let line = before.matches('\n').count();
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let character: usize = text[line_start..at].chars().map(char::len_utf16).sum();
    Position { line: line as u32, character: character as u32 }
}

/// The range of bytes `start..end` of `text`, as an LSP range.
pub fn range_of(text: &str, start: usize, end: usize) -> Range {
    Range { start: position_of(text, start), end: position_of(text, end.max(start)) }
}

/// The byte offset of an LSP position, clamped: a line past the end is the end of the text, a
/// character past the end of its line is the end of that line, and a character inside a
/// surrogate pair is the start of that character.
pub fn offset_of(text: &str, pos: Position) -> usize {
    let mut line_start = 0;
    for _ in 0..pos.line {
        match text[line_start..].find('\n') {
            Some(i) => line_start += i + 1,
            None => return text.len(),
        }
    }
    let line_end = text[line_start..].find('\n').map_or(text.len(), |i| line_start + i);
    let mut units = 0usize;
    for (i, c) in text[line_start..line_end].char_indices() {
        let next = units + c.len_utf16();
        if next > pos.character as usize {
            return line_start + i;
        }
        units = next;
    }
    line_end
}

/// Apply one content change (a ranged edit, or the whole text when `range` is absent).
pub fn apply_change(text: &mut String, change: &TextDocumentContentChangeEvent) {
    match change.range {
        None => text.clone_from(&change.text),
        Some(range) => {
            let start = offset_of(text, range.start);
            let end = offset_of(text, range.end).max(start);
            text.replace_range(start..end, &change.text);
        }
    }
}

/// The identifier-like word (letters, digits, `_`, `-`, `'`) around byte offset `at`, with its
/// byte range.
pub fn word_at(text: &str, at: usize) -> Option<(usize, usize, &str)> {
    let is_word = |c: char| c.is_alphanumeric() || c == '_' || c == '-' || c == '\'';
    let mut at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    let start = text[..at].char_indices().rev().take_while(|(_, c)| is_word(*c)).last().map_or(at, |(i, _)| i);
    let end = text[at..].char_indices().find(|(_, c)| !is_word(*c)).map_or(text.len(), |(i, _)| at + i);
    (start < end).then(|| (start, end, &text[start..end]))
}

/// `file:///a%20b/galley.ncl` -> `/a b/galley.ncl`; `None` for other schemes.
pub fn uri_to_path(uri: &str) -> Option<std::path::PathBuf> {
    let rest = uri.strip_prefix("file://")?;
    let rest = rest.strip_prefix("localhost").unwrap_or(rest);
    let bytes = rest.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1).and_then(|b| hex(*b)), bytes.get(i + 2).and_then(|b| hex(*b))) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    let path = String::from_utf8(out).ok()?;
    path.starts_with('/').then(|| std::path::PathBuf::from(path))
}

/// `/a b/galley.ncl` -> `file:///a%20b/galley.ncl`.
pub fn path_to_uri(path: &std::path::Path) -> String {
    let mut out = String::from("file://");
    for b in path.to_string_lossy().bytes() {
        if b.is_ascii_alphanumeric() || b"/-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(line: u32, character: u32) -> Position {
        Position { line, character }
    }

    #[test]
    fn positions_count_utf16_units() {
        let text = "a\n\u{e9}\u{1F600}x";
        // é is 2 bytes / 1 unit, 😀 is 4 bytes / 2 units.
        assert_eq!(position_of(text, 2 + 2 + 4), pos(1, 3));
        assert_eq!(offset_of(text, pos(1, 3)), 8);
        // Inside the surrogate pair: the start of the emoji.
        assert_eq!(offset_of(text, pos(1, 2)), 4);
        assert_eq!(position_of(text, 5), pos(1, 1));
    }

    #[test]
    fn out_of_range_positions_are_clamped() {
        let text = "ab\ncd";
        assert_eq!(offset_of(text, pos(0, 99)), 2);
        assert_eq!(offset_of(text, pos(9, 0)), 5);
        assert_eq!(position_of(text, 99), pos(1, 2));
    }

    #[test]
    fn ranged_changes_apply_with_clamping() {
        let mut text = String::from("ab\ncd");
        let change = |range: Option<Range>, t: &str| TextDocumentContentChangeEvent { range, range_length: None, text: t.into() };
        apply_change(&mut text, &change(Some(Range { start: pos(0, 1), end: pos(1, 1) }), "X"));
        assert_eq!(text, "aXd");
        apply_change(&mut text, &change(Some(Range { start: pos(5, 0), end: pos(0, 0) }), "!"));
        assert_eq!(text, "aXd!");
        apply_change(&mut text, &change(None, "new"));
        assert_eq!(text, "new");
    }

    #[test]
    fn uris_round_trip() {
        let p = std::path::Path::new("/tmp/a b/gälley.ncl");
        let uri = path_to_uri(p);
        assert_eq!(uri, "file:///tmp/a%20b/g%C3%A4lley.ncl");
        assert_eq!(uri_to_path(&uri).as_deref(), Some(p));
        assert_eq!(uri_to_path("untitled:1"), None);
    }

    #[test]
    fn words_are_found_around_the_cursor() {
        assert_eq!(word_at("a = read_only,", 6), Some((4, 13, "read_only")));
        assert_eq!(word_at("  ", 1), None);
    }
}
