//! Documentation of the schema's fields, read from `galley/schema.ncl` through Nickel itself (the
//! `doc` metadata and the annotations of every field of every contract), and the capability names
//! of `galley/capabilities.ncl`. The language server shows these on hover and in completion.

use std::collections::BTreeMap;
use std::path::Path;

use nickel_lang_core::eval::cache::CacheImpl;
use nickel_lang_core::eval::value::{NickelValue, ValueContentRef};
use nickel_lang_core::program::{Program, ProgramBuilder};
use nickel_lang_core::serialize::{self, ExportFormat};

use super::embedded;

/// The documentation of one field of a schema contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldDoc {
    /// The `doc` text, trimmed.
    pub doc: String,
    /// The annotations as written, joined with ` | ` (`Array Port`, `[| 'tcp, 'udp |]`).
    pub typ: String,
    /// Whether the field has a default or is optional.
    pub optional: bool,
}

/// Contract name -> field name -> documentation.
pub type SchemaDocs = BTreeMap<String, BTreeMap<String, FieldDoc>>;

#[derive(Debug, thiserror::Error)]
pub enum DocsError {
    #[error("cannot write the galley library: {0}")]
    Library(#[from] std::io::Error),
    #[error("cannot evaluate {file}: {message}")]
    Eval { file: &'static str, message: String },
}

/// Every documented field of every record contract of the schema.
pub fn schema_docs(lib_root: &Path) -> Result<SchemaDocs, DocsError> {
    let mut program = program(lib_root, "schema.ncl")?;
    let spine = program
        .eval_record_spine()
        .map_err(|e| DocsError::Eval { file: "schema.ncl", message: format!("{e:?}") })?;
    let mut docs = SchemaDocs::new();
    for (name, contract) in record_fields(&spine) {
        let Some(value) = &contract.value else { continue };
        let fields: BTreeMap<String, FieldDoc> = record_fields(value)
            .into_iter()
            .map(|(field, f)| {
                let annotations: Vec<String> = f.metadata.iter_annots().map(|lt| lt.label.typ.to_string()).collect();
                let optional = f.metadata.opt() || f.value.is_some();
                let doc = f.metadata.doc().unwrap_or_default().trim().to_owned();
                (field, FieldDoc { doc, typ: annotations.join(" | "), optional })
            })
            .collect();
        if !fields.is_empty() {
            docs.insert(name, fields);
        }
    }
    Ok(docs)
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
    let source = format!("import \"{}/{file}\"", embedded::PREFIX);
    ProgramBuilder::new()
        .add_import_paths([lib.clone()])
        .add_source_string(source, lib.join(format!("<{file}>")).into_os_string())
        .build()
        .map_err(|e| DocsError::Eval { file, message: format!("{e:?}") })
}

fn record_fields(value: &NickelValue) -> Vec<(String, nickel_lang_core::term::record::Field)> {
    match value.content_ref() {
        ValueContentRef::Record(record) => record
            .into_opt()
            .map(|r| r.fields.iter().map(|(id, f)| (id.label().to_owned(), f.clone())).collect())
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema_fields::Kind;

    #[test]
    fn every_schema_field_has_documentation_and_a_type() {
        let home = tempfile::tempdir().unwrap();
        let docs = schema_docs(home.path()).unwrap();
        for kind in Kind::ALL {
            for field in kind.fields() {
                let d = &docs[kind.contract()][*field];
                assert!(!d.doc.is_empty() && !d.typ.is_empty(), "{}.{field}: {d:?}", kind.contract());
            }
        }
        let network = &docs["Sandbox"]["network"];
        assert!(network.doc.contains("loopback only"), "{network:?}");
        assert!(network.typ.contains("'isolated"), "{network:?}");
        assert!(!docs["Project"]["name"].optional);
    }

    #[test]
    fn capabilities_come_from_the_library() {
        let home = tempfile::tempdir().unwrap();
        let caps = capabilities(home.path()).unwrap();
        assert!(caps.contains(&"NET_BIND_SERVICE".to_owned()));
        assert_eq!(caps.len(), 41);
    }
}
