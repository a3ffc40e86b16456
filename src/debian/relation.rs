//! Relationship fields (`Depends`, `Pre-Depends`, `Provides`): comma-separated groups of
//! `|`-separated alternatives, each a package name with an optional `:arch` qualifier and an
//! optional `(op version)`. Architecture restrictions (`[amd64]`) and build profiles (`<!nocheck>`)
//! belong to source packages and are refused in binary fields.

use std::cmp::Ordering;
use std::fmt;

use super::version::Version;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Earlier,
    EarlierEq,
    Eq,
    LaterEq,
    Later,
}

impl Op {
    fn parse(s: &str) -> Option<Op> {
        Some(match s {
            "<<" => Op::Earlier,
            "<=" | "<" => Op::EarlierEq,
            "=" => Op::Eq,
            ">=" | ">" => Op::LaterEq,
            ">>" => Op::Later,
            _ => return None,
        })
    }

    pub fn holds(self, ord: Ordering) -> bool {
        match self {
            Op::Earlier => ord == Ordering::Less,
            Op::EarlierEq => ord != Ordering::Greater,
            Op::Eq => ord == Ordering::Equal,
            Op::LaterEq => ord != Ordering::Less,
            Op::Later => ord == Ordering::Greater,
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Op::Earlier => "<<",
            Op::EarlierEq => "<=",
            Op::Eq => "=",
            Op::LaterEq => ">=",
            Op::Later => ">>",
        })
    }
}

/// One alternative: `name[:arch] [(op version)]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relation {
    pub name: String,
    /// `any`, `native` or an architecture name.
    pub arch: Option<String>,
    pub constraint: Option<(Op, Version)>,
}

impl Relation {
    /// Whether `version` meets the constraint (no constraint: any version).
    pub fn allows(&self, version: &Version) -> bool {
        self.constraint.as_ref().is_none_or(|(op, want)| op.holds(version.cmp(want)))
    }
}

impl fmt::Display for Relation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        if let Some(a) = &self.arch {
            write!(f, ":{a}")?;
        }
        if let Some((op, v)) = &self.constraint {
            write!(f, " ({op} {v})")?;
        }
        Ok(())
    }
}

/// A whole field: every group must hold; a group holds when one alternative does.
pub fn parse(field: &str) -> Result<Vec<Vec<Relation>>, String> {
    let mut groups = Vec::new();
    for group in field.split(',') {
        let group = group.trim();
        if group.is_empty() {
            continue;
        }
        let alts = group.split('|').map(|a| parse_one(a.trim())).collect::<Result<Vec<_>, _>>()?;
        groups.push(alts);
    }
    Ok(groups)
}

fn parse_one(s: &str) -> Result<Relation, String> {
    let bad = |why: &str| format!("`{s}`: {why}");
    if s.contains('[') || s.contains('<') && !s.contains('(') {
        return Err(bad("architecture restrictions and build profiles have no place in a binary package"));
    }
    let (head, constraint) = match s.split_once('(') {
        Some((h, rest)) => {
            let inner = rest.strip_suffix(')').ok_or_else(|| bad("no closing `)`"))?.trim();
            let split = inner.find(|c: char| !"<=>".contains(c)).ok_or_else(|| bad("no version"))?;
            let (op, version) = inner.split_at(split);
            let op = Op::parse(op.trim()).ok_or_else(|| bad("unknown relation operator"))?;
            (h.trim(), Some((op, Version::parse(version.trim())?)))
        }
        None => (s, None),
    };
    let (name, arch) = match head.split_once(':') {
        Some((n, a)) => (n, Some(a.to_owned())),
        None => (head, None),
    };
    if name.is_empty() || name.contains(char::is_whitespace) {
        return Err(bad("not a package name"));
    }
    Ok(Relation { name: name.to_owned(), arch, constraint })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_alternatives_qualifiers_and_constraints() {
        let g = parse("libc6 (>= 2.34), python3.11-minimal (>= 3.11.2-1~) | python3:any, dpkg (<< 1.22)").unwrap();
        assert_eq!(g.len(), 3);
        assert_eq!(g[0][0].to_string(), "libc6 (>= 2.34)");
        assert_eq!(g[1].len(), 2);
        assert_eq!(g[1][1].arch.as_deref(), Some("any"));
        assert!(g[0][0].allows(&Version::parse("2.36-9").unwrap()));
        assert!(!g[0][0].allows(&Version::parse("2.31").unwrap()));
        assert!(g[2][0].allows(&Version::parse("1.21.23").unwrap()));
        assert!(parse("a [amd64]").is_err());
        assert!(parse("a (>= )").is_err());
        assert!(parse("a (~ 1)").is_err());
        assert_eq!(parse("").unwrap().len(), 0);
    }
}
