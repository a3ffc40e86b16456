//! `galley audit verify`: walk the chain line by line against the head and name the first
//! broken link, and how it most likely broke (an edit, a deletion, a swap, a truncated tail, a
//! line appended by hand).

use std::collections::HashSet;

use serde::Serialize;

use super::entry::{Entry, hash};
use super::{GENESIS, Head};

/// The first broken link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Break {
    /// Line `line` is not an entry at all.
    Malformed { line: usize, message: String },
    /// Line `line`'s `prev` is not the hash of the line before it: that line was changed.
    Edited { line: usize },
    /// The last line is not the one the head names: it was changed.
    EditedLast { line: usize },
    /// Entry `seq` is missing: line `line` holds a later one, and `seq` appears nowhere.
    Deleted { line: usize, seq: u64 },
    /// Line `line` holds entry `found` where `seq` belongs, and `seq` comes later: lines were
    /// moved.
    Reordered { line: usize, seq: u64, found: u64 },
    /// The log ends at entry `last` but the head names `head`: the tail was cut off.
    Truncated { last: u64, head: u64 },
    /// Line `line` comes after the entry the head names: it was not written by galley (or
    /// galley stopped between writing it and its head).
    Appended { line: usize, head: u64 },
    /// The log has entries and no head.
    NoHead,
}

impl Break {
    pub fn kind(&self) -> &'static str {
        match self {
            Break::Malformed { .. } => "malformed",
            Break::Edited { .. } | Break::EditedLast { .. } => "edited",
            Break::Deleted { .. } => "deleted",
            Break::Reordered { .. } => "reordered",
            Break::Truncated { .. } => "truncated",
            Break::Appended { .. } => "appended",
            Break::NoHead => "no-head",
        }
    }

    pub fn message(&self) -> String {
        match self {
            Break::Malformed { line, message } => format!("line {line} is not an audit entry: {message}"),
            Break::Edited { line: 1 } => "line 1 does not start a chain: it was changed".to_owned(),
            Break::Edited { line } => format!("line {line} names a hash the line before it does not have: line {} was changed", line - 1),
            Break::EditedLast { line } => format!("line {line}, the last, does not have the hash the head records: it was changed"),
            Break::Deleted { line, seq } => format!("entry {seq} is missing before line {line}: it was deleted"),
            Break::Reordered { line, seq, found } => format!("line {line} holds entry {found} where entry {seq} belongs: lines were moved"),
            Break::Truncated { last, head } => {
                format!("the log ends at entry {last} but its head records entry {head}: the tail was cut off")
            }
            Break::Appended { line, head } => {
                format!("line {line} comes after entry {head}, the last the head records: it was added outside galley")
            }
            Break::NoHead => "the log has entries but its head (audit.head) is missing".to_owned(),
        }
    }
}

/// What a walk of the chain found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Lines read.
    pub entries: usize,
    /// The head's sequence number (0 with no head).
    pub head: u64,
    /// The first broken link, or none when the chain is whole.
    pub broken: Option<Break>,
}

pub(super) fn verify(text: &str, head: Option<&Head>) -> Report {
    let lines: Vec<&str> = text.lines().collect();
    let head_seq = head.map_or(0, |h| h.seq);
    let report = |broken| Report { entries: lines.len(), head: head_seq, broken };
    let mut prev = GENESIS.to_owned();
    let mut entries = Vec::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate() {
        match Entry::parse(line) {
            Ok(e) => entries.push(e),
            Err(message) => return report(Some(Break::Malformed { line: i + 1, message })),
        }
    }
    for (i, (line, e)) in lines.iter().zip(&entries).enumerate() {
        let (number, expected) = (i + 1, i as u64 + 1);
        if e.seq != expected {
            let later: HashSet<u64> = entries[i..].iter().map(|e| e.seq).collect();
            let broken = if e.seq > expected && !later.contains(&expected) {
                Break::Deleted { line: number, seq: expected }
            } else {
                Break::Reordered { line: number, seq: expected, found: e.seq }
            };
            return report(Some(broken));
        }
        if e.prev != prev {
            return report(Some(Break::Edited { line: number }));
        }
        if head.is_some() && e.seq == head_seq + 1 {
            return report(Some(Break::Appended { line: number, head: head_seq }));
        }
        prev = hash(line);
    }
    let last = entries.last().map_or(0, |e| e.seq);
    let broken = match head {
        None if entries.is_empty() => None,
        None => Some(Break::NoHead),
        Some(h) if last < h.seq => Some(Break::Truncated { last, head: h.seq }),
        Some(h) if h.hash != prev => Some(Break::EditedLast { line: lines.len() }),
        Some(_) => None,
    };
    report(broken)
}
