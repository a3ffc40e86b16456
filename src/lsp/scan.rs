//! A light, text-based reading of a Nickel buffer around the cursor: which record the cursor is
//! in (as a field path such as `sandboxes.web.ports[0]`) and whether it is where a field name or
//! a field's value goes. It tolerates broken and half-typed text; it never needs to parse.

/// Where the cursor is, in terms of the schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// Where a field name goes, in the record at this path (dotted prefixes already typed, as in
    /// `resources.` inside a sandbox, are part of the path). Array elements are segment `0`.
    FieldName(Vec<String>),
    /// In the value of the field at this path; `in_array` when inside an array literal there.
    Value { field: Vec<String>, in_array: bool },
    /// Somewhere the scan cannot relate to the schema (a `let` binding, a function body).
    Unknown,
}

#[derive(Debug)]
enum Frame {
    /// `{ ... }` at `path`; `key` is the dotted key being written, `field` the field whose value
    /// follows `=`.
    Record { path: Option<Vec<String>>, key: Vec<String>, field: Option<Option<Vec<String>>> },
    /// `[ ... ]` or `( ... )` or the top level: a value of `path`.
    Value { path: Option<Vec<String>>, array: bool },
}

#[derive(Debug, PartialEq)]
enum Token<'a> {
    Ident(&'a str),
    Str(String),
    Punct(&'a str),
}

/// The place at byte offset `at` of `text` (clamped).
pub fn place_at(text: &str, at: usize) -> Place {
    let mut at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    let mut stack = vec![Frame::Value { path: Some(Vec::new()), array: false }];
    // For `let`: the value context saved until `in`.
    let mut lets: Vec<(usize, Option<Vec<String>>)> = Vec::new();
    for token in tokens(&text[..at]) {
        step(&mut stack, &mut lets, token);
    }
    match stack.last() {
        Some(Frame::Record { path: Some(p), key, field: None }) => {
            Place::FieldName(p.iter().chain(key).cloned().collect())
        }
        Some(Frame::Record { field: Some(Some(f)), .. }) => Place::Value { field: f.clone(), in_array: false },
        Some(Frame::Value { path: Some(p), array }) if !p.is_empty() => {
            let mut field = p.clone();
            if *array {
                field.pop();
            }
            Place::Value { field, in_array: *array }
        }
        _ => Place::Unknown,
    }
}

/// The path a value opened at the top of the stack belongs to.
fn value_path(stack: &[Frame]) -> Option<Vec<String>> {
    match stack.last()? {
        Frame::Record { field: Some(f), .. } => f.clone(),
        Frame::Record { field: None, .. } => None,
        Frame::Value { path, .. } => path.clone(),
    }
}

fn step(stack: &mut Vec<Frame>, lets: &mut Vec<(usize, Option<Vec<String>>)>, token: Token<'_>) {
    match token {
        Token::Punct("{") => {
            let path = value_path(stack);
            stack.push(Frame::Record { path, key: Vec::new(), field: None });
        }
        Token::Punct("[") | Token::Punct("(") => {
            let array = token == Token::Punct("[");
            let path = value_path(stack).map(|mut p| {
                if array {
                    p.push("0".to_owned());
                }
                p
            });
            stack.push(Frame::Value { path, array });
        }
        Token::Punct("}") | Token::Punct("]") | Token::Punct(")") => {
            if stack.len() > 1 {
                stack.pop();
            }
            lets.retain(|(depth, _)| *depth <= stack.len());
        }
        Token::Ident("let") => {
            let saved = set_value(stack, None);
            lets.push((stack.len(), saved));
        }
        Token::Ident("in") => {
            if let Some((depth, saved)) = lets.pop()
                && depth == stack.len()
            {
                set_value(stack, saved);
            }
        }
        Token::Ident("fun") => {
            set_value(stack, None);
        }
        Token::Punct(",") | Token::Punct(";") => {
            if let Some(Frame::Record { key, field, .. }) = stack.last_mut() {
                key.clear();
                *field = None;
            }
        }
        Token::Punct("=") | Token::Punct("|") => {
            if let Some(Frame::Record { path, key, field }) = stack.last_mut()
                && field.is_none()
            {
                let full = path.as_ref().map(|p| p.iter().chain(key.iter()).cloned().collect());
                *field = Some(full);
                key.clear();
            }
        }
        Token::Punct(".") => {}
        Token::Ident(word) => push_key(stack, word.to_owned()),
        Token::Str(s) => push_key(stack, s),
        Token::Punct(_) => {}
    }
}

fn push_key(stack: &mut [Frame], word: String) {
    if let Some(Frame::Record { key, field: None, .. }) = stack.last_mut() {
        key.push(word);
    }
}

/// Replace the value context at the top of the stack, returning the old one.
fn set_value(stack: &mut [Frame], new: Option<Vec<String>>) -> Option<Vec<String>> {
    match stack.last_mut() {
        Some(Frame::Record { field: Some(f), .. }) => std::mem::replace(f, new),
        Some(Frame::Record { field: None, .. }) => None,
        Some(Frame::Value { path, .. }) => std::mem::replace(path, new),
        None => None,
    }
}

/// Identifiers, string literals (their content) and punctuation, skipping comments, multi-line
/// strings and everything else. Unterminated strings end the input.
fn tokens(text: &str) -> Vec<Token<'_>> {
    let mut out = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        match c {
            b'#' => i = text[i..].find('\n').map_or(bytes.len(), |n| i + n),
            b'm' if text[i..].starts_with("m%") && text[i + 1..].trim_start_matches('%').starts_with('"') => {
                let percents = text[i + 1..].bytes().take_while(|b| *b == b'%').count();
                let close = format!("\"{}", "%".repeat(percents));
                let body = i + 1 + percents + 1;
                match text[body..].find(&close) {
                    Some(n) => {
                        out.push(Token::Str(String::new()));
                        i = body + n + close.len();
                    }
                    None => i = bytes.len(),
                }
            }
            b'"' => {
                let mut j = i + 1;
                let mut s = Vec::new();
                let mut closed = false;
                while j < bytes.len() {
                    match bytes[j] {
                        b'\\' if j + 1 < bytes.len() => {
                            s.push(bytes[j + 1]);
                            j += 2;
                        }
                        b'"' => {
                            closed = true;
                            j += 1;
                            break;
                        }
                        b => {
                            s.push(b);
                            j += 1;
                        }
                    }
                }
                if closed {
                    out.push(Token::Str(String::from_utf8_lossy(&s).into_owned()));
                }
                i = j;
            }
            b'=' | b'|' if matches!(bytes.get(i + 1), Some(b'=' | b'>' | b']' | b'|')) => {
                out.push(Token::Punct(&text[i..i + 2]));
                i += 2;
            }
            b'[' if bytes.get(i + 1) == Some(&b'|') => {
                out.push(Token::Punct("[|"));
                i += 2;
            }
            _ if c.is_ascii_alphabetic() || c == b'_' => {
                let end = text[i..]
                    .find(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '_' || ch == '-' || ch == '\''))
                    .map_or(bytes.len(), |n| i + n);
                out.push(Token::Ident(&text[i..end]));
                i = end;
            }
            b'\'' | b'0'..=b'9' => {
                let end = text[i + 1..]
                    .find(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '_' || ch == '-' || ch == '.'))
                    .map_or(bytes.len(), |n| i + 1 + n);
                out.push(Token::Punct("value"));
                i = end;
            }
            _ if c.is_ascii_whitespace() => i += 1,
            _ => {
                let len = text[i..].chars().next().map_or(1, char::len_utf8);
                out.push(Token::Punct(&text[i..i + len]));
                i += len;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at_marker(text: &str) -> Place {
        let at = text.find('^').expect("marker");
        place_at(&text.replace('^', ""), at)
    }

    fn field_name(path: &[&str]) -> Place {
        Place::FieldName(path.iter().map(|s| s.to_string()).collect())
    }

    fn value(path: &[&str], in_array: bool) -> Place {
        Place::Value { field: path.iter().map(|s| s.to_string()).collect(), in_array }
    }

    #[test]
    fn field_names_inside_nested_records() {
        let src = "let g = import \"galley/std.ncl\" in\n{\n  name = \"x\",\n  sandboxes.web = g.presets.p 1 2 & {\n    image = \"web\",\n    ^\n  },\n}";
        assert_eq!(at_marker(src), field_name(&["sandboxes", "web"]));
        assert_eq!(at_marker("{ ^ }"), field_name(&[]));
        assert_eq!(at_marker("{ sandboxes = { a = { resources.^ } } }"), field_name(&["sandboxes", "a", "resources"]));
        assert_eq!(at_marker("{ sandboxes.a.ports = [{ host = 1 }, { ^ }] }"), field_name(&["sandboxes", "a", "ports", "0"]));
        assert_eq!(at_marker("{ registries.\"127.0.0.1:5000\" = { ^ } }"), field_name(&["registries", "127.0.0.1:5000"]));
    }

    #[test]
    fn values_of_fields() {
        assert_eq!(at_marker("{ sandboxes.a = { network = ^ } }"), value(&["sandboxes", "a", "network"], false));
        assert_eq!(at_marker("{ sandboxes.a = { capabilities = [\"CHOWN\", ^ } }"), value(&["sandboxes", "a", "capabilities"], true));
        assert_eq!(at_marker("{ sandboxes.a = { seccomp | Dyn = ^"), value(&["sandboxes", "a", "seccomp"], false));
    }

    #[test]
    fn comments_strings_and_lets_are_skipped() {
        let src = "# { not a record\nlet x = { a = 1 } in {\n  images.i = { env = { A = \"}{\" }, files = m%\"\n { \"% ,\n ^ } }";
        assert_eq!(at_marker(src), field_name(&["images", "i"]));
        assert_eq!(at_marker("let x = { ^ } in {}"), Place::Unknown);
        assert_eq!(at_marker("{ sandboxes.a = let y = 1 in { ^ } }"), field_name(&["sandboxes", "a"]));
        assert_eq!(at_marker("{ f = fun x => { ^ } }"), Place::Unknown);
    }

    #[test]
    fn garbage_never_panics() {
        for text in ["}}}]]))", "{ \"unterminated", "m%\"", "m%%%", "\u{e9}{\u{1F600} = [", "'", "=|=>|]"] {
            for at in 0..=text.len() + 2 {
                let _ = place_at(text, at);
            }
        }
    }
}
