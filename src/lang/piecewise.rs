//! Piecewise definitions (`sandboxes.web = …`, once per sandbox) made linear.
//!
//! Nickel elaborates each `a.b = v` into `a = { b = v }` and joins the definitions of `a` one at
//! a time, twice: the typechecker combines each definition into a copy of the ones before it,
//! and the evaluator merges one record per definition into a record growing to n fields. Both
//! are quadratic in the number of sandboxes. This module takes each out of Nickel's way:
//!
//! - [`join_all`], on the term that is evaluated: the pieces are record literals in one
//!   environment, so merging pieces whose fields are disjoint is their union, computed once. A
//!   field defined in more than one piece (`s.image = …` and `s.command = …`) keeps a merge of
//!   its definitions, which the same pass then joins one level down. Anything it cannot prove
//!   equal to Nickel's merge is left to Nickel: a piece that is not a plain record literal, a
//!   field defined twice with metadata (a contract, a priority, a doc) on either side, a record
//!   with attributes.
//! - [`for_typecheck`], on the text the typechecker reads: the same bytes, except that in a
//!   large group of `g.x…` definitions of the file's own record, all but the first are read as
//!   one identifier `g'x…` (`'` is an identifier character). Each is then a field of its own,
//!   walked exactly as before (its value, its annotations), `g` stays defined for references,
//!   and every position is unchanged. Only the typechecker sees this text; what is evaluated and
//!   what diagnostics quote is the file as written.

use std::collections::HashMap;
use std::convert::Infallible;

use nickel_lang_core::ast::record::{FieldPathElem, Record};
use nickel_lang_core::ast::{Ast, MergeKind, Node};
use nickel_lang_core::cache::CacheHub;
use nickel_lang_core::eval::value::lens::TermContent;
use nickel_lang_core::eval::value::{Container, NickelValue, ValueContent};
use nickel_lang_core::files::FileId;
use nickel_lang_core::identifier::LocIdent;
use nickel_lang_core::label::MergeLabel;
use nickel_lang_core::position::{PosIdx, PosTable};
use nickel_lang_core::term::record::{Field, RecordAttrs, RecordData};
use nickel_lang_core::term::{BinaryOp, IndexMap, Op2Data, Term};
use nickel_lang_core::traverse::{Traverse, TraverseOrder};

/// `value` with every chain of piecewise merges joined.
pub fn join_all(value: NickelValue) -> NickelValue {
    let Ok(joined) = value.traverse(&mut |v| Ok::<_, Infallible>(join(v)), TraverseOrder::TopDown);
    joined
}

/// The label of `value` if it is a merge the parser made for a piecewise definition.
fn piecewise_label(value: &NickelValue) -> Option<&MergeLabel> {
    match value.as_term()? {
        Term::Op2(Op2Data { op: BinaryOp::Merge(label), .. }) if label.kind == MergeKind::PiecewiseDef => Some(label),
        _ => None,
    }
}

/// One chain of piecewise merges, joined; any other value unchanged.
fn join(value: NickelValue) -> NickelValue {
    let Some(label) = piecewise_label(&value).cloned() else {
        return value;
    };
    let pos = value.pos_idx();

    // The pieces of the chain, left to right, without recursion: a chain is as long as the
    // number of definitions.
    let mut pieces = Vec::new();
    let mut todo = vec![value];
    while let Some(value) = todo.pop() {
        if piecewise_label(&value).is_some() {
            let ValueContent::Term(TermContent::Op2(lens)) = value.content() else {
                unreachable!("piecewise_label matched an Op2 term");
            };
            let Op2Data { arg1, arg2, .. } = lens.take();
            todo.push(arg2);
            todo.push(arg1);
        } else {
            pieces.push(value);
        }
    }

    // Runs of record pieces become one record each; merge is associative, so the runs and the
    // other pieces are merged in their order.
    let mut joined: Vec<NickelValue> = Vec::new();
    let mut run: Option<Run> = None;
    for piece in pieces {
        match record_piece(piece) {
            Ok((fields, record_pos, closurize_pos)) => {
                if let Some(current) = run.as_mut()
                    && current.takes(&fields)
                {
                    current.add(fields, &label);
                    continue;
                }
                joined.extend(run.take().map(Run::finish));
                run = Some(Run { fields, record_pos, closurize_pos });
            }
            Err(other) => {
                joined.extend(run.take().map(Run::finish));
                joined.push(other);
            }
        }
    }
    joined.extend(run.take().map(Run::finish));

    let mut joined = joined.into_iter();
    let first = joined.next().expect("a merge has two sides");
    joined.fold(first, |left, right| merge(&label, left, right, pos))
}

fn merge(label: &MergeLabel, left: NickelValue, right: NickelValue, pos: PosIdx) -> NickelValue {
    NickelValue::term(Term::Op2(Op2Data { op: BinaryOp::Merge(label.clone()), arg1: left, arg2: right }), pos)
}

/// The fields of a record literal piece (`Closurize` of a plain record, as the parser writes
/// an elaborated path), or the piece back if it is anything else.
fn record_piece(piece: NickelValue) -> Result<(IndexMap<LocIdent, Field>, PosIdx, PosIdx), NickelValue> {
    let plain = |record: &RecordData| record.attrs == RecordAttrs::default() && record.sealed_tail.is_none();
    let is_record = match piece.as_term() {
        Some(Term::Closurize(inner)) => matches!(inner.as_record(), Some(Container::Alloc(record)) if plain(record)),
        _ => false,
    };
    if !is_record {
        return Err(piece);
    }
    let closurize_pos = piece.pos_idx();
    let ValueContent::Term(TermContent::Closurize(lens)) = piece.content() else {
        unreachable!("checked to be a Closurize term");
    };
    let inner = lens.take();
    let record_pos = inner.pos_idx();
    let ValueContent::Record(lens) = inner.content() else {
        unreachable!("checked to be a record");
    };
    let record = lens.take().into_opt().expect("checked to be allocated");
    Ok((record.fields, record_pos, closurize_pos))
}

/// A run of record pieces being joined.
struct Run {
    fields: IndexMap<LocIdent, Field>,
    record_pos: PosIdx,
    closurize_pos: PosIdx,
}

impl Run {
    /// Whether every field of `fields` is new to the run, or defined in both without metadata,
    /// so that merging the two definitions' values is merging the fields.
    fn takes(&self, fields: &IndexMap<LocIdent, Field>) -> bool {
        fields.iter().all(|(id, field)| match self.fields.get(id) {
            None => true,
            Some(old) => bare(old) && bare(field),
        })
    }

    fn add(&mut self, fields: IndexMap<LocIdent, Field>, label: &MergeLabel) {
        for (id, field) in fields {
            match self.fields.get_mut(&id) {
                None => {
                    self.fields.insert(id, field);
                }
                Some(old) => {
                    let left = old.value.take().expect("a bare field has a value");
                    let right = field.value.expect("a bare field has a value");
                    let pos = left.pos_idx();
                    old.value = Some(merge(label, left, right, pos));
                }
            }
        }
    }

    fn finish(self) -> NickelValue {
        let record = NickelValue::record(RecordData { fields: self.fields, ..Default::default() }, self.record_pos);
        NickelValue::term(Term::Closurize(record), self.closurize_pos)
    }
}

/// A field with a value and nothing else: no contract, type, doc, priority or optional mark.
fn bare(field: &Field) -> bool {
    field.value.is_some()
        && field.pending_contracts.is_empty()
        && field.metadata.0.as_deref().is_none_or(|m| *m == Default::default())
}

/// Groups of piecewise definitions smaller than this are left as written: Nickel's own cost is
/// small there, and a config of a few sandboxes is typechecked exactly as Nickel would.
const LARGE_GROUP: usize = 64;

/// Give the typechecker the text of `value`'s file with large piecewise groups read as separate
/// fields (see the module documentation). Call on the main file's term, once it is compiled.
pub fn for_typecheck(cache: &mut CacheHub, pos_table: &PosTable, value: &NickelValue) {
    let Some(span) = pos_table.get(value.pos_idx()).into_opt() else {
        return;
    };
    let file = span.src_id;
    let text = cache.sources.source(file).to_owned();
    let Some(renames) = cache.asts.get(file).and_then(|ast| renames(ast, file, &text)) else {
        return;
    };
    let mut bytes = text.into_bytes();
    for at in renames {
        bytes[at] = b'\'';
    }
    let rewritten = String::from_utf8(bytes).expect("one ASCII byte replaced by another");
    // A text that does not parse (it always does: `'` continues an identifier) leaves the
    // file's own AST in place.
    let _ = cache.asts.parse_nickel(file, &rewritten);
}

/// Byte offsets of the `.` to read as `'`: in the file's record (under its `let`s), for each
/// group of at least [`LARGE_GROUP`] definitions `g.x…` written with a bare `.`, every one but
/// the first.
fn renames(ast: &Ast<'_>, file: FileId, text: &str) -> Option<Vec<usize>> {
    let record = root_record(ast)?;
    let mut groups: HashMap<_, Vec<usize>> = HashMap::new();
    for def in record.field_defs {
        let [FieldPathElem::Ident(group), FieldPathElem::Ident(next), ..] = def.path else {
            continue;
        };
        let (Some(g), Some(n)) = (group.pos.into_opt(), next.pos.into_opt()) else {
            continue;
        };
        let (dot, after) = (g.end.0 as usize, n.start.0 as usize);
        if g.src_id == file && n.src_id == file && after == dot + 1 && text.as_bytes().get(dot) == Some(&b'.') {
            groups.entry(group.ident()).or_default().push(dot);
        }
    }
    let renames: Vec<usize> = groups
        .into_values()
        .filter(|dots| dots.len() >= LARGE_GROUP)
        .flat_map(|dots| dots.into_iter().skip(1))
        .collect();
    (!renames.is_empty()).then_some(renames)
}

/// The record a file evaluates to, when it is a record literal under zero or more `let`s.
fn root_record<'a>(ast: &'a Ast<'a>) -> Option<&'a Record<'a>> {
    match &ast.node {
        Node::Record(record) => Some(record),
        Node::Let { body, .. } => root_record(body),
        _ => None,
    }
}
