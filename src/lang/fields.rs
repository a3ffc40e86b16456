//! The record shapes of galley's schema, read from `galley/schema.ncl` through Nickel itself:
//! which fields each record contract has (in the order written), each field's `doc` and
//! annotations, which record lives under it, and which enum tags it allows. Used for "did you
//! mean" on unknown fields and for hover and completion in the language server. Derived once per
//! process, so the schema is the only list of fields.

use std::path::Path;
use std::sync::OnceLock;

use nickel_lang_core::eval::value::{NickelValue, ValueContentRef};
use nickel_lang_core::identifier::LocIdent;
use nickel_lang_core::serialize::{self, ExportFormat};
use nickel_lang_core::term::record::Field as NickelField;
use nickel_lang_core::typ::{EnumRowsIteratorItem, Type, TypeF};

use super::SpanIndex;
use super::docs::{DocsError, program_in};
use super::embedded;
use crate::diagnostic::{Code, Diagnostic};

/// The record contract a whole config is checked against.
const ROOT: &str = "Project";

/// Every record contract of the schema.
#[derive(Debug)]
pub struct Schema {
    records: Vec<Record>,
}

/// A record contract of the schema (`Sandbox`, `Port`, ...) and its fields.
#[derive(Debug)]
pub struct Record {
    contract: String,
    fields: Vec<Field>,
}

/// A record of the schema, as found at a field path.
pub type Kind = &'static Record;

/// One field of a record contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub name: String,
    /// The `doc` text, trimmed.
    pub doc: String,
    /// The annotations as written, joined with ` | ` (`Array Port`, `[| 'tcp, 'udp |]`).
    pub typ: String,
    /// Whether the field has a default or is optional.
    pub optional: bool,
    /// The allowed values, as Nickel enum tags (`'tcp`), when the field takes enum tags.
    pub values: Vec<String>,
    nested: Option<Nested>,
}

/// The record contract under a field, by index into [`Schema::records`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Nested {
    /// The field's value is the record (`resources`).
    Record(usize),
    /// Each element or entry of the field's value is (`ports[0]`, `sandboxes.web`).
    Each(usize),
}

impl Schema {
    /// The schema of the embedded library, derived on first use; `lib_root` as for
    /// [`embedded::materialize`].
    pub fn embedded(lib_root: &Path) -> Result<&'static Schema, &'static DocsError> {
        static SCHEMA: OnceLock<Result<Schema, DocsError>> = OnceLock::new();
        SCHEMA
            .get_or_init(|| embedded::materialize(lib_root).map_err(DocsError::from).and_then(|lib| Schema::derive(&lib)))
            .as_ref()
    }

    /// Read the record contracts of `galley/schema.ncl` under `lib`, a materialized library.
    pub fn derive(lib: &Path) -> Result<Schema, DocsError> {
        let import = format!("import \"{}/schema.ncl\"", embedded::PREFIX);
        let mut program = program_in(lib, "schema.ncl", import)?;
        let spine = program
            .eval_record_spine()
            .map_err(|e| DocsError::Eval { file: "schema.ncl", message: format!("{e:?}") })?;
        let declared = record_fields(&spine);
        let records: Vec<(String, Vec<(LocIdent, NickelField)>)> = declared
            .iter()
            .filter_map(|(id, f)| Some((id.label().to_owned(), record_fields(f.value.as_ref()?))))
            .filter(|(_, fields)| !fields.is_empty())
            .collect();
        let names: Vec<&str> = records.iter().map(|(name, _)| name.as_str()).collect();
        let mut schema = Schema { records: Vec::new() };
        for (contract, fields) in &records {
            let mut out = Vec::new();
            for (id, f) in fields {
                let annots: Vec<&Type> = f.metadata.iter_annots().map(|lt| &*lt.label.typ).collect();
                let doc = f.metadata.doc().unwrap_or_default().trim().to_owned();
                let mut values: Vec<String> = annots.iter().flat_map(|t| enum_tags(t)).collect();
                if values.is_empty() {
                    values = accepted_tags(lib, &annots, &doc, &declared)?;
                }
                out.push(Field {
                    name: id.label().to_owned(),
                    typ: annots.iter().map(ToString::to_string).collect::<Vec<_>>().join(" | "),
                    optional: f.metadata.opt() || f.value.is_some(),
                    nested: annots.iter().find_map(|t| nested(t, &names)),
                    doc,
                    values,
                });
            }
            schema.records.push(Record { contract: contract.clone(), fields: out });
        }
        if schema.record(ROOT).is_none() {
            let message = format!("no record contract `{ROOT}`");
            return Err(DocsError::Eval { file: "schema.ncl", message });
        }
        Ok(schema)
    }

    /// Every record contract, in the order the schema declares them.
    pub fn records(&self) -> impl Iterator<Item = &Record> {
        self.records.iter()
    }

    /// The record contract of that name.
    pub fn record(&self, contract: &str) -> Option<&Record> {
        self.records.iter().find(|r| r.contract == contract)
    }

    /// Which record lives at a field path given as segments (`["sandboxes", "web", "ports", "0"]`,
    /// array indices as any segment), if any.
    pub fn kind_at(&self, segments: &[&str]) -> Option<&Record> {
        let mut record = self.record(ROOT)?;
        let mut rest = segments;
        while let Some((first, tail)) = rest.split_first() {
            let (next, consumed) = match record.field(first)?.nested? {
                Nested::Record(i) => (i, 1),
                Nested::Each(i) => (i, 2),
            };
            if tail.len() + 1 < consumed {
                return None;
            }
            record = &self.records[next];
            rest = &rest[consumed..];
        }
        Some(record)
    }
}

impl Record {
    /// The schema contract's name in `lang/schema.ncl`.
    pub fn contract(&self) -> &str {
        &self.contract
    }

    /// The fields, in the order the schema writes them.
    pub fn fields(&self) -> &[Field] {
        &self.fields
    }

    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// The field names, in the order the schema writes them.
    pub fn names(&self) -> Vec<&str> {
        self.fields.iter().map(|f| f.name.as_str()).collect()
    }

    /// The closest known field to `name`, if it is close enough to be a likely typo.
    pub fn suggest(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .map(|f| (f.name.as_str(), strsim::normalized_damerau_levenshtein(&f.name, name)))
            .filter(|(_, score)| *score >= 0.5)
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(f, _)| f)
    }
}

fn record_fields(value: &NickelValue) -> Vec<(LocIdent, NickelField)> {
    let mut fields = match value.content_ref() {
        ValueContentRef::Record(record) => record
            .into_opt()
            .map(|r| r.fields.iter().map(|(id, f)| (*id, f.clone())).collect())
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    // Source order, whatever order the evaluated record keeps.
    fields.sort_by_key(|(id, _)| id.pos.into_opt().map(|span| (span.src_id, span.start)));
    fields
}

/// The record contract an annotation names, directly or for each element or entry.
fn nested(typ: &Type, records: &[&str]) -> Option<Nested> {
    let index = |t: &Type| records.iter().position(|r| *r == t.to_string());
    match &typ.typ {
        TypeF::Array(inner) | TypeF::Dict { type_fields: inner, .. } => index(inner).map(Nested::Each),
        _ => index(typ).map(Nested::Record),
    }
}

/// The tags of an enum type annotation (`[| 'tcp, 'udp |]`).
fn enum_tags(typ: &Type) -> Vec<String> {
    let TypeF::Enum(rows) = &typ.typ else { return Vec::new() };
    rows.iter()
        .filter_map(|item| match item {
            EnumRowsIteratorItem::Row(row) if row.typ.is_none() => Some(format!("'{}", row.id)),
            _ => None,
        })
        .collect()
}

/// For a field whose annotation is a named contract of the schema that is not an enum type (a
/// validator such as `Seccomp`): the enum tags its doc names that the contract accepts, checked by
/// applying the contract to each in Nickel.
fn accepted_tags(
    lib: &Path,
    annots: &[&Type],
    doc: &str,
    declared: &[(LocIdent, NickelField)],
) -> Result<Vec<String>, DocsError> {
    let [typ] = annots else { return Ok(Vec::new()) };
    let contract = typ.to_string();
    if !declared.iter().any(|(id, _)| id.label() == contract) {
        return Ok(Vec::new());
    }
    let candidates = tags_in(doc);
    if candidates.is_empty() {
        return Ok(Vec::new());
    }
    // One program: a custom contract has the label that `std.contract.check` needs, and keeps the
    // tags the schema's contract accepts without failing on the others.
    let source = format!(
        "let schema = import \"{}/schema.ncl\" in\n\
         let Accepted = std.contract.custom (fun label tags =>\n\
           'Ok (std.array.filter (fun t => std.contract.check schema.{contract} label t\n\
             |> match {{ 'Ok _ => true, 'Error _ => false }}) tags)) in\n\
         [{}] | Accepted",
        embedded::PREFIX,
        candidates.join(", "),
    );
    let err = |message: String| DocsError::Eval { file: "schema.ncl", message };
    let mut program = program_in(lib, "schema.ncl", source)?;
    let value = program.eval_full_for_export().map_err(|e| err(format!("{e:?}")))?;
    let json = serialize::to_string(ExportFormat::Json, &value).map_err(|e| err(format!("{e:?}")))?;
    let accepted: Vec<String> = serde_json::from_str(&json).map_err(|e| err(e.to_string()))?;
    Ok(accepted.into_iter().map(|tag| format!("'{tag}")).collect())
}

/// Words written as enum tags (`'strict`) in a text, in order, each once.
fn tags_in(text: &str) -> Vec<String> {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut tags = Vec::new();
    for (i, _) in text.match_indices('\'') {
        if text[..i].chars().next_back().is_some_and(word) {
            continue;
        }
        let rest = &text[i + 1..];
        let end = rest.find(|c: char| !word(c)).unwrap_or(rest.len());
        let tag = format!("'{}", &rest[..end]);
        if rest[..end].starts_with(|c: char| c.is_ascii_lowercase() || c == '_') && !tags.contains(&tag) {
            tags.push(tag);
        }
    }
    tags
}

/// Split `sandboxes.web.ports[0]` into `["sandboxes", "web", "ports", "0"]`.
pub fn segments(path: &str) -> Vec<&str> {
    path.split(['.', '[', ']']).filter(|s| !s.is_empty()).collect()
}

/// Diagnostics for every field of the (uncontracted) config the schema does not know.
pub fn unknown(schema: &Schema, spans: &SpanIndex) -> Vec<Diagnostic> {
    let mut found = Vec::new();
    for record in spans.records() {
        let Some(kind) = schema.kind_at(&segments(record)) else { continue };
        for key in spans.keys(record) {
            if kind.field(key).is_some() {
                continue;
            }
            let path = super::child_path(record, key);
            let mut d = Diagnostic::new(Code::UnknownField, format!("unknown field `{key}` in {}", describe(kind, record)))
                .at(spans.locate(&path))
                .label("not a field of this record");
            d = match kind.suggest(key) {
                Some(s) => d.help(format!("did you mean `{s}`?")),
                None => d.help(format!("known fields: {}", kind.names().join(", "))),
            };
            found.push(d);
        }
    }
    found
}

fn describe(kind: &Record, path: &str) -> String {
    if path.is_empty() { "the project".to_owned() } else { format!("{} `{path}`", kind.contract().to_lowercase()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> &'static Schema {
        Schema::embedded(tempfile::tempdir().unwrap().keep().as_path()).unwrap()
    }

    fn kind(segments: &[&str]) -> Option<&'static str> {
        schema().kind_at(segments).map(Record::contract)
    }

    #[test]
    fn kinds_follow_paths() {
        assert_eq!(kind(&[]), Some("Project"));
        assert_eq!(kind(&["sandboxes", "web"]), Some("Sandbox"));
        assert_eq!(kind(&["sandboxes", "web", "ports", "0"]), Some("Port"));
        assert_eq!(kind(&["sandboxes", "web", "resources"]), Some("Resources"));
        assert_eq!(kind(&["images", "app", "files", "0"]), Some("FileCopy"));
        assert_eq!(kind(&["registries", "127.0.0.1:5000"]), Some("Registry"));
        assert_eq!(kind(&["sandboxes", "web", "env"]), None);
        assert_eq!(kind(&["sandboxes"]), None);
    }

    #[test]
    fn near_misses_are_suggested() {
        let sandbox = schema().record("Sandbox").unwrap();
        assert_eq!(sandbox.suggest("prots"), Some("ports"));
        assert_eq!(sandbox.suggest("readonly"), Some("read_only"));
        assert_eq!(sandbox.suggest("zzzzzzzz"), None);
    }

    #[test]
    fn every_schema_field_has_documentation_and_a_type() {
        let schema = schema();
        for record in schema.records() {
            for f in record.fields() {
                assert!(!f.doc.is_empty() && !f.typ.is_empty(), "{}.{}: {f:?}", record.contract(), f.name);
            }
        }
        let network = schema.record("Sandbox").unwrap().field("network").unwrap();
        assert!(network.doc.contains("loopback only"), "{network:?}");
        assert!(network.typ.contains("'isolated"), "{network:?}");
        assert!(!schema.record("Project").unwrap().field("name").unwrap().optional);
    }

    #[test]
    fn enum_values_come_from_types_and_from_validated_tags() {
        let field = |r: &str, f: &str| schema().record(r).unwrap().field(f).unwrap().values.clone();
        assert_eq!(field("Sandbox", "network"), ["'none", "'isolated", "'egress"]);
        assert_eq!(field("Port", "protocol"), ["'tcp", "'udp"]);
        // A validator, not an enum type: its doc also says "podman's", which is no profile.
        assert_eq!(field("Sandbox", "seccomp"), ["'default", "'strict", "'unconfined"]);
        assert!(field("Sandbox", "image").is_empty());
    }

    /// Guards derivation itself: fields and a record contract added to the schema appear in the
    /// table with their nesting and values, with no other list to update.
    #[test]
    fn fields_added_to_the_schema_are_derived() {
        let home = tempfile::tempdir().unwrap();
        let lib = embedded::materialize(home.path()).unwrap();
        let path = lib.join(embedded::PREFIX).join("schema.ncl");
        let text = fs_err::read_to_string(&path).unwrap();
        let probe = "  Probe = {\n    path | doc \"Probed path.\" | AbsolutePath,\n    \
                     interval | doc \"How often.\" | [| 'fast, 'slow |] | default = 'slow,\n  },\n\n";
        let sandbox = "hostname | doc \"Host name.\" | String | optional,\n    \
                       probes | doc \"Health probes.\" | Array Probe | default = [],\n";
        let edited = text
            .replacen("  Sandbox = {\n", &format!("{probe}  Sandbox = {{\n    {sandbox}"), 1)
            .replacen("  Image = {\n", "  Image = {\n    annotations | doc \"Notes.\" | { _ : String } | default = {},\n", 1);
        assert_ne!(edited, text);
        fs_err::write(&path, edited).unwrap();

        let derived = Schema::derive(&lib).unwrap();
        let sandbox = derived.kind_at(&["sandboxes", "web"]).unwrap();
        assert_eq!(sandbox.names()[..3], ["hostname", "probes", "image"]);
        assert_eq!(sandbox.names().len(), schema().record("Sandbox").unwrap().names().len() + 2);
        assert_eq!(derived.kind_at(&["images", "app"]).unwrap().names()[0], "annotations");
        let probe = derived.kind_at(&["sandboxes", "web", "probes", "0"]).unwrap();
        assert_eq!(probe.contract(), "Probe");
        assert_eq!(probe.names(), ["path", "interval"]);
        assert_eq!(probe.field("interval").unwrap().values, ["'fast", "'slow"]);
        assert_eq!(sandbox.suggest("hostnme"), Some("hostname"));
        assert!(schema().record("Sandbox").unwrap().field("hostname").is_none());
    }

    /// Every field galley exports for the example projects (defaults filled in) is a field of the
    /// derived record at its path, and the examples reach the sandbox, image and port records.
    #[test]
    fn exported_examples_use_only_derived_fields() {
        fn walk(schema: &Schema, path: &mut Vec<String>, value: &serde_json::Value, seen: &mut Vec<String>) {
            let segments: Vec<&str> = path.iter().map(String::as_str).collect();
            let kind = schema.kind_at(&segments);
            match value {
                serde_json::Value::Object(map) => {
                    if let Some(kind) = kind {
                        seen.push(kind.contract().to_owned());
                        for key in map.keys() {
                            assert!(kind.field(key).is_some(), "`{key}` at {path:?} is not a field of {}", kind.contract());
                        }
                    }
                    for (key, v) in map {
                        path.push(key.clone());
                        walk(schema, path, v, seen);
                        path.pop();
                    }
                }
                serde_json::Value::Array(items) => {
                    for (i, v) in items.iter().enumerate() {
                        path.push(i.to_string());
                        walk(schema, path, v, seen);
                        path.pop();
                    }
                }
                _ => {}
            }
        }
        let home = tempfile::tempdir().unwrap();
        let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
        let mut seen = Vec::new();
        for entry in fs_err::read_dir(&examples).unwrap() {
            let config = entry.unwrap().path().join(super::super::CONFIG_FILE);
            let input = super::super::Input { config: &config, text: None, lib_root: home.path() };
            let evaluated = super::super::evaluate(&input).unwrap_or_else(|d| panic!("{}: {d:?}", config.display()));
            walk(schema(), &mut Vec::new(), &evaluated.json, &mut seen);
        }
        for contract in ["Project", "Image", "Sandbox", "Port", "Tmpfs", "Resources"] {
            assert!(seen.iter().any(|s| s == contract), "no example reaches {contract}: {seen:?}");
        }
    }

    #[test]
    fn a_field_far_from_every_name_lists_the_known_fields() {
        let home = tempfile::tempdir().unwrap();
        let config = home.path().join(super::super::CONFIG_FILE);
        let text = "{\n  name = \"p\",\n  images.app = {},\n  sandboxes.app = { image = \"app\", zzzzzzzz = 1 },\n}\n";
        let input = super::super::Input { config: &config, text: Some(text), lib_root: home.path() };
        let d = super::super::evaluate(&input).unwrap_err();
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!((d[0].code, d[0].message.as_str()), (Code::UnknownField, "unknown field `zzzzzzzz` in sandbox `sandboxes.app`"));
        assert_eq!(d[0].label.as_deref(), Some("not a field of this record"));
        assert_eq!(
            d[0].help.as_deref(),
            Some("known fields: image, trust, command, env, ports, network, secrets, seccomp, capabilities, user, read_only, tmpfs, volumes, resources")
        );
    }

    #[test]
    fn tags_are_words_after_a_quote() {
        assert_eq!(tags_in("'a (podman's), 'b_c or 'Z. 'd, 'a"), ["'a", "'b_c", "'d"]);
    }
}
