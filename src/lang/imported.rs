//! Files `galley.ncl` imports whose bytes Nickel cannot take as its text: one that is not UTF-8
//! (Nickel reports it as "could not find import") and one that starts with a byte-order mark
//! (Nickel reports a syntax error at 1:1). Each becomes a finding located in the imported file.

use std::io::Read;
use std::path::Path;

use super::Namer;
use crate::diagnostic::{Code, Diagnostic};

/// The most of an imported file read to find its first byte that is not UTF-8.
pub const MAX_IMPORT_READ: u64 = 16 << 20;

/// `diagnostic`, or the finding that says why Nickel could not read the file it is about.
pub(super) fn explain(diagnostic: Diagnostic, namer: &Namer) -> Diagnostic {
    if let Some(better) = byte_order_mark(&diagnostic).or_else(|| not_utf8(&diagnostic, namer)) {
        return better;
    }
    diagnostic
}

/// A syntax error at the first byte of an imported file that starts with U+FEFF. (galley.ncl
/// itself has its mark removed before Nickel reads it; an imported file is read by Nickel.)
fn byte_order_mark(diagnostic: &Diagnostic) -> Option<Diagnostic> {
    let location = diagnostic.location.as_ref()?;
    if diagnostic.code != Code::Syntax || location.start != 0 || !location.source.starts_with('\u{feff}') {
        return None;
    }
    let file = location.file.display();
    Some(
        Diagnostic::new(Code::Syntax, format!("{file} starts with a byte-order mark (U+FEFF), which an imported file may not have"))
            .at(Some(location.clone()))
            .label("byte-order mark")
            .help(format!(
                "save {file} as UTF-8 without a byte-order mark (\"UTF-8\", not \"UTF-8 with BOM\", in an editor's encoding menu); only galley.ncl itself may start with one"
            )),
    )
}

/// An import Nickel "could not find" that exists beside the importing file but is not UTF-8.
fn not_utf8(diagnostic: &Diagnostic, namer: &Namer) -> Option<Diagnostic> {
    if diagnostic.code != Code::Import {
        return None;
    }
    let site = diagnostic.location.as_ref()?;
    let written = diagnostic.message.strip_prefix("import of ")?.split(" failed").next()?;
    let importer = namer.project_dir.join(&site.file);
    let path = importer.parent()?.join(written);
    // Only a file the config may import is read, so a host file's bytes never reach the excerpt.
    let top = super::project_top(&namer.project_dir)?;
    if !std::fs::canonicalize(&path).is_ok_and(|real| real.starts_with(&top)) {
        return path.exists().then(|| super::imports_outside(&path, &top));
    }
    let bytes = read_capped(&path)?;
    let error = std::str::from_utf8(&bytes).err()?;
    // A character cut by the read cap is not a bad byte.
    if error.error_len().is_none() && bytes.len() as u64 == MAX_IMPORT_READ {
        return None;
    }
    let shown = namer.display(&std::path::absolute(&path).unwrap_or(path));
    let mut found = *super::source_text(bytes, &shown).err()?;
    found.notes.push(format!("{} is imported at {}:{}:{}", shown.display(), site.file.display(), site.start_line, site.start_col));
    Some(found)
}

/// A regular file's first [`MAX_IMPORT_READ`] bytes; `None` for anything else.
fn read_capped(path: &Path) -> Option<Vec<u8>> {
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_file() {
        return None;
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path).ok()?.take(MAX_IMPORT_READ).read_to_end(&mut bytes).ok()?;
    Some(bytes)
}
