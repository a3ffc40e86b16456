//! Programs over the embedded library for the language server's knowledge: the capability names
//! of `galley/capabilities.ncl`, and the programs [`super::fields`] reads the schema with. The
//! language server shows these on hover and in completion.

use std::path::Path;

use nickel_lang_core::eval::cache::CacheImpl;
use nickel_lang_core::program::{Program, ProgramBuilder};
use nickel_lang_core::serialize::{self, ExportFormat};

use super::embedded;

#[derive(Debug, thiserror::Error)]
pub enum DocsError {
    #[error("cannot write the galley library: {0}")]
    Library(#[from] std::io::Error),
    #[error("cannot evaluate {file}: {message}")]
    Eval { file: &'static str, message: String },
}

/// The capability names galley accepts, from `galley/capabilities.ncl`.
pub fn capabilities(lib_root: &Path) -> Result<Vec<String>, DocsError> {
    let mut program = program(lib_root, "capabilities.ncl")?;
    let err = |message: String| DocsError::Eval { file: "capabilities.ncl", message };
    let value = program.eval_full_for_export().map_err(|e| err(format!("{e:?}")))?;
    let json = serialize::to_string(ExportFormat::Json, &value).map_err(|e| err(format!("{e:?}")))?;
    serde_json::from_str(&json).map_err(|e| err(e.to_string()))
}

fn program(lib_root: &Path, file: &'static str) -> Result<Program<CacheImpl>, DocsError> {
    let lib = embedded::materialize(lib_root)?;
    program_in(&lib, file, format!("import \"{}/{file}\"", embedded::PREFIX))
}

/// A program over `source` with `lib` (a materialized library) as its import path; `file` names it
/// in errors.
pub(super) fn program_in(lib: &Path, file: &'static str, source: String) -> Result<Program<CacheImpl>, DocsError> {
    ProgramBuilder::new()
        .add_import_paths([lib.to_path_buf()])
        .add_source_string(source, lib.join(format!("<{file}>")).into_os_string())
        .build()
        .map_err(|e| DocsError::Eval { file, message: format!("{e:?}") })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_come_from_the_library() {
        let home = tempfile::tempdir().unwrap();
        let caps = capabilities(home.path()).unwrap();
        assert!(caps.contains(&"NET_BIND_SERVICE".to_owned()));
        assert_eq!(caps.len(), 41);
    }
}
