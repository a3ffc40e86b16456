//! Debian control paragraphs (deb822): `Field: value` lines, continuation lines starting with a
//! space or tab, paragraphs separated by blank lines. Used for Release files, Packages indices
//! and a package's own `control` file.

/// One paragraph: its fields in the order written, names as written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Paragraph {
    fields: Vec<(String, String)>,
}

impl Paragraph {
    /// A field's value (names compare case-insensitively, as dpkg does); continuation lines are
    /// joined with `\n` and keep their leading space.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn fields(&self) -> impl Iterator<Item = (&str, &str)> {
        self.fields.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// The paragraph written back in deb822 form (with its trailing newline).
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for (n, v) in &self.fields {
            out.push_str(n);
            out.push(':');
            if !v.starts_with('\n') {
                out.push(' ');
            }
            out.push_str(v);
            out.push('\n');
        }
        out
    }
}

/// Every paragraph of `text`. A line that is neither a field nor a continuation is an error
/// naming its line number.
pub fn parse(text: &str) -> Result<Vec<Paragraph>, String> {
    let mut out = Vec::new();
    let mut cur = Paragraph::default();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            if !cur.fields.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            continue;
        }
        if line.starts_with(' ') || line.starts_with('\t') {
            let Some((_, value)) = cur.fields.last_mut() else {
                return Err(format!("line {}: a continuation line before any field", i + 1));
            };
            value.push('\n');
            value.push_str(line);
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(format!("line {}: `{}` is not a `Field: value` line", i + 1, line.chars().take(60).collect::<String>()));
        };
        if name.is_empty() || name.contains(char::is_whitespace) {
            return Err(format!("line {}: `{name}` is not a field name", i + 1));
        }
        cur.fields.push((name.to_owned(), value.trim().to_owned()));
    }
    if !cur.fields.is_empty() {
        out.push(cur);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paragraphs_fields_and_continuations() {
        let text = "Package: a\nVersion: 1.0\nDescription: short\n long line\n .\n\n\nPackage: b\nversion: 2\n";
        let ps = parse(text).unwrap();
        assert_eq!(ps.len(), 2);
        assert_eq!(ps[0].get("package"), Some("a"));
        assert_eq!(ps[0].get("Description"), Some("short\n long line\n ."));
        assert_eq!(ps[1].get("Version"), Some("2"));
        assert_eq!(ps[0].to_text(), "Package: a\nVersion: 1.0\nDescription: short\n long line\n .\n");
        assert!(parse(" orphan\n").unwrap_err().contains("line 1"));
        assert!(parse("Package: a\nnot a field\n").unwrap_err().contains("line 2"));
    }
}
