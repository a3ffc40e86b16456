//! Hover and completion, from the schema: the record path around the cursor ([`super::scan`])
//! gives the schema record ([`Schema::kind_at`]); its fields, their docs, types and values come
//! from `galley/schema.ncl` through [`crate::lang::fields`], read once and cached.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use lsp_types::{
    CompletionItem, CompletionItemKind, CompletionResponse, Documentation, Hover, HoverContents,
    MarkupContent, MarkupKind, Position,
};

use super::scan::{self, Place};
use super::text::{offset_of, range_of, word_at};
use crate::lang::docs;
use crate::lang::fields::{Field, Kind, Schema};

/// What the schema says, loaded once per server.
#[derive(Debug, Default)]
pub struct Knowledge {
    pub schema: Option<&'static Schema>,
    pub capabilities: Vec<String>,
}

impl Knowledge {
    pub fn load(lib_root: &Path) -> Knowledge {
        let schema = Schema::embedded(lib_root)
            .inspect_err(|e| eprintln!("galley lsp: schema documentation unavailable: {e}"))
            .ok();
        let capabilities = docs::capabilities(lib_root).unwrap_or_else(|e| {
            eprintln!("galley lsp: capability list unavailable: {e}");
            Vec::new()
        });
        Knowledge { schema, capabilities }
    }

    fn kind_at(&self, record: &[String]) -> Option<Kind> {
        let segments: Vec<&str> = record.iter().map(String::as_str).collect();
        self.schema?.kind_at(&segments)
    }
}

/// A lazily loaded, shared [`Knowledge`].
#[derive(Debug, Clone, Default)]
pub struct Cache(Arc<OnceLock<Knowledge>>);

impl Cache {
    pub fn get(&self, lib_root: &Path) -> &Knowledge {
        self.0.get_or_init(|| Knowledge::load(lib_root))
    }
}

/// The documentation of the field name under the cursor.
pub fn hover(knowledge: &Knowledge, text: &str, pos: Position) -> Option<Hover> {
    let at = offset_of(text, pos);
    let (start, end, word) = word_at(text, at)?;
    let Place::FieldName(record) = scan::place_at(text, start) else { return None };
    let kind = knowledge.kind_at(&record)?;
    let doc = kind.field(word)?;
    let omit = if doc.optional { " (may be omitted)" } else { " (required)" };
    let value = format!("**{}.{word}** : `{}`{omit}\n\n{}", kind.contract(), doc.typ, doc.doc);
    Some(Hover {
        contents: HoverContents::Markup(MarkupContent { kind: MarkupKind::Markdown, value }),
        range: Some(range_of(text, start, end)),
    })
}

/// Field names valid at the cursor, or the allowed values of the field whose value it is in.
pub fn complete(knowledge: &Knowledge, text: &str, pos: Position) -> CompletionResponse {
    let at = offset_of(text, pos);
    let start = word_at(text, at).map_or(at, |(s, _, _)| s.min(at));
    let items = match scan::place_at(text, start) {
        Place::FieldName(record) => field_items(knowledge, &record),
        Place::Value { field, in_array } => {
            let quoted = text[..start].ends_with('"');
            value_items(knowledge, &field, in_array, quoted)
        }
        Place::Unknown => Vec::new(),
    };
    CompletionResponse::Array(items)
}

fn field_items(knowledge: &Knowledge, record: &[String]) -> Vec<CompletionItem> {
    let Some(kind) = knowledge.kind_at(record) else { return Vec::new() };
    kind.fields()
        .iter()
        .map(|f| CompletionItem {
            label: f.name.clone(),
            kind: Some(CompletionItemKind::FIELD),
            ..described(f)
        })
        .collect()
}

fn value_items(knowledge: &Knowledge, field: &[String], in_array: bool, quoted: bool) -> Vec<CompletionItem> {
    let Some((name, parent)) = field.split_last() else { return Vec::new() };
    let Some(kind) = knowledge.kind_at(parent) else { return Vec::new() };
    let Some(f) = kind.field(name) else { return Vec::new() };
    if kind.contract() == "Sandbox" && name == "capabilities" && in_array {
        return knowledge
            .capabilities
            .iter()
            .map(|c| CompletionItem {
                label: c.clone(),
                kind: Some(CompletionItemKind::CONSTANT),
                insert_text: (!quoted).then(|| format!("\"{c}\"")),
                ..CompletionItem::default()
            })
            .collect();
    }
    f.values
        .iter()
        .map(|v| CompletionItem {
            label: v.clone(),
            kind: Some(CompletionItemKind::ENUM_MEMBER),
            ..described(f)
        })
        .collect()
}

/// A completion item carrying a field's type and documentation.
fn described(f: &Field) -> CompletionItem {
    CompletionItem {
        detail: Some(f.typ.clone()),
        documentation: Some(markdown(f.doc.clone())),
        ..CompletionItem::default()
    }
}

fn markdown(value: String) -> Documentation {
    Documentation::MarkupContent(MarkupContent { kind: MarkupKind::Markdown, value })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn knowledge() -> &'static Knowledge {
        static K: OnceLock<Knowledge> = OnceLock::new();
        K.get_or_init(|| Knowledge::load(tempfile::tempdir().unwrap().keep().as_path()))
    }

    fn at(text: &str) -> (String, Position) {
        let i = text.find('^').unwrap();
        let clean = text.replace('^', "");
        let pos = super::super::text::position_of(&clean, i);
        (clean, pos)
    }

    fn labels(r: CompletionResponse) -> Vec<String> {
        match r {
            CompletionResponse::Array(items) => items.into_iter().map(|i| i.label).collect(),
            CompletionResponse::List(l) => l.items.into_iter().map(|i| i.label).collect(),
        }
    }

    #[test]
    fn hover_shows_doc_and_type() {
        let (text, pos) = at("{\n  sandboxes.web = {\n    net^work = 'none,\n  },\n}");
        let h = hover(knowledge(), &text, pos).unwrap();
        let HoverContents::Markup(m) = h.contents else { panic!() };
        assert!(m.value.contains("'isolated") && m.value.contains("loopback only"), "{}", m.value);
        let (text, pos) = at("{ sandboxes.w^eb = {} }");
        assert!(hover(knowledge(), &text, pos).is_none());
    }

    #[test]
    fn completion_offers_fields_and_values() {
        let (text, pos) = at("{ sandboxes.web = { image = \"x\", re^ } }");
        let got = labels(complete(knowledge(), &text, pos));
        assert!(got.contains(&"read_only".to_owned()) && got.contains(&"resources".to_owned()), "{got:?}");
        let (text, pos) = at("{ sandboxes.web = { resources.^ } }");
        assert_eq!(labels(complete(knowledge(), &text, pos)), ["memory", "cpus", "pids", "nofile", "nproc"]);
        let (text, pos) = at("{ sandboxes.web = { seccomp = '^ } }");
        assert_eq!(labels(complete(knowledge(), &text, pos)), ["'default", "'strict", "'unconfined"]);
        let (text, pos) = at("{ sandboxes.web = { capabilities = [\"NET_^\"] } }");
        assert!(labels(complete(knowledge(), &text, pos)).contains(&"NET_RAW".to_owned()));
    }
}
