//! The dependency closure of a package list, chosen the way APT chooses with its default
//! settings, deterministically:
//!
//! - each package name has one candidate: its highest version in the indices (the first
//!   component listing it wins a tie), as APT's candidate with equal pin priorities;
//! - `Pre-Depends`, then `Depends`, of every chosen package, depth first in the order written;
//!   `Recommends` and `Suggests` are not followed (`--no-install-recommends`);
//! - a group of alternatives already met by a chosen package (by name and version, or through
//!   its `Provides`) adds nothing; otherwise the first alternative whose candidate meets the
//!   constraint is chosen, or, for a virtual name, its provider (several providers: the
//!   highest-priority, then the first by name);
//! - a relation nothing meets is an error naming the package, the chain of packages that led to
//!   it, and what the indices do offer.
//!
//! Essential packages are chosen only when listed or needed, like any other.
//! `Conflicts` and `Breaks` are not checked: the closure is what was asked for and needed.

use std::collections::BTreeMap;

use super::index::Entry;
use super::relation::Relation;

/// Why a package is in the closure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    Requested,
    /// `by`'s relation (as written) needed it.
    Needed { by: String, relation: String },
}

/// An unsatisfiable relation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot install `{wanted}`: {chain}{why}")]
pub struct Unsatisfiable {
    pub wanted: String,
    /// `python3-minimal -> python3.11-minimal (Pre-Depends: ...)`, empty when requested.
    pub chain: String,
    pub why: String,
}

pub struct Resolver<'a> {
    entries: &'a [Entry],
    /// name -> candidate index.
    candidates: BTreeMap<&'a str, usize>,
    /// virtual name -> providing entry indices (candidates only), with the provided version.
    providers: BTreeMap<&'a str, Vec<(usize, &'a Relation)>>,
}

impl<'a> Resolver<'a> {
    pub fn new(entries: &'a [Entry]) -> Resolver<'a> {
        let mut candidates: BTreeMap<&str, usize> = BTreeMap::new();
        for (i, e) in entries.iter().enumerate() {
            let better = candidates.get(e.name.as_str()).is_none_or(|&c| e.version > entries[c].version);
            if better {
                candidates.insert(&e.name, i);
            }
        }
        let mut providers: BTreeMap<&str, Vec<(usize, &Relation)>> = BTreeMap::new();
        for &i in candidates.values() {
            for p in &entries[i].provides {
                providers.entry(p.name.as_str()).or_default().push((i, p));
            }
        }
        Resolver { entries, candidates, providers }
    }

    /// The closure of `requested`, sorted by name, each with why it is there.
    pub fn resolve(&self, requested: &[&str]) -> Result<Vec<(&'a Entry, Reason)>, Unsatisfiable> {
        let mut chosen: BTreeMap<&'a str, (usize, Reason)> = BTreeMap::new();
        let mut parents: BTreeMap<&'a str, &'a str> = BTreeMap::new();
        for name in requested {
            let rel = Relation { name: (*name).to_owned(), arch: None, constraint: None };
            let Some(i) = self.pick(&rel) else {
                return Err(self.unsatisfiable(&rel, None, &parents));
            };
            self.choose(i, Reason::Requested, None, &mut chosen, &mut parents)?;
        }
        Ok(chosen.into_values().map(|(i, r)| (&self.entries[i], r)).collect())
    }

    fn choose(
        &self,
        i: usize,
        reason: Reason,
        parent: Option<&'a str>,
        chosen: &mut BTreeMap<&'a str, (usize, Reason)>,
        parents: &mut BTreeMap<&'a str, &'a str>,
    ) -> Result<(), Unsatisfiable> {
        let e = &self.entries[i];
        if chosen.contains_key(e.name.as_str()) {
            return Ok(());
        }
        chosen.insert(&e.name, (i, reason));
        if let Some(p) = parent {
            parents.insert(&e.name, p);
        }
        for (field, groups) in [("Pre-Depends", &e.pre_depends), ("Depends", &e.depends)] {
            for group in groups {
                if group.iter().any(|rel| self.met_by_chosen(rel, chosen)) {
                    continue;
                }
                let Some(j) = group.iter().find_map(|rel| self.pick(rel)) else {
                    return Err(self.unsatisfiable(&group[0], Some((&e.name, field, group)), parents));
                };
                let reason = Reason::Needed { by: e.name.clone(), relation: format!("{field}: {}", join(group)) };
                self.choose(j, reason, Some(&e.name), chosen, parents)?;
            }
        }
        Ok(())
    }

    /// Whether a chosen package meets `rel`: by name and version, or by what it provides.
    fn met_by_chosen(&self, rel: &Relation, chosen: &BTreeMap<&'a str, (usize, Reason)>) -> bool {
        if let Some((i, _)) = chosen.get(rel.name.as_str())
            && rel.allows(&self.entries[*i].version)
        {
            return true;
        }
        self.providers
            .get(rel.name.as_str())
            .is_some_and(|ps| ps.iter().any(|(i, p)| chosen.contains_key(self.entries[*i].name.as_str()) && provides(rel, p)))
    }

    /// The entry that meets `rel`: the name's candidate, else a provider.
    fn pick(&self, rel: &Relation) -> Option<usize> {
        if let Some(&i) = self.candidates.get(rel.name.as_str())
            && rel.allows(&self.entries[i].version)
        {
            return Some(i);
        }
        let mut ps: Vec<usize> = self.providers.get(rel.name.as_str())?.iter().filter(|(_, p)| provides(rel, p)).map(|(i, _)| *i).collect();
        ps.sort_by(|&a, &b| {
            let (a, b) = (&self.entries[a], &self.entries[b]);
            priority(&a.priority).cmp(&priority(&b.priority)).then_with(|| a.name.cmp(&b.name))
        });
        ps.first().copied()
    }

    fn unsatisfiable(&self, rel: &Relation, from: Option<(&str, &str, &[Relation])>, parents: &BTreeMap<&str, &str>) -> Unsatisfiable {
        let mut chain = String::new();
        if let Some((by, field, group)) = from {
            let mut path = vec![by.to_owned()];
            let mut cur = by;
            while let Some(p) = parents.get(cur) {
                path.push((*p).to_owned());
                cur = p;
            }
            path.reverse();
            chain = format!("{} needs it ({field}: {}); ", path.join(" -> "), join(group));
        }
        let offered = |r: &Relation| match self.candidates.get(r.name.as_str()) {
            Some(&i) => format!("`{}` is {} there, which `{r}` does not accept", r.name, self.entries[i].version),
            None if self.providers.contains_key(r.name.as_str()) => format!("no provider of `{}` meets `{r}`", r.name),
            None => format!("no package `{}` is in the indices", r.name),
        };
        let why = match from {
            Some((_, _, group)) => group.iter().map(offered).collect::<Vec<_>>().join("; "),
            None => offered(rel),
        };
        Unsatisfiable { wanted: rel.name.clone(), chain, why }
    }
}

fn provides(rel: &Relation, provided: &Relation) -> bool {
    match (&rel.constraint, &provided.constraint) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(_), Some((_, v))) => rel.allows(v),
    }
}

fn priority(p: &str) -> u8 {
    match p {
        "required" => 0,
        "important" => 1,
        "standard" => 2,
        "optional" => 3,
        _ => 4,
    }
}

fn join(group: &[Relation]) -> String {
    group.iter().map(ToString::to_string).collect::<Vec<_>>().join(" | ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::debian::index;

    const SHA: &str = "743f6a4cf9fa20e2023f40ab53066fc880384b4d950c59e3be46b142cc83030c";

    fn entries(spec: &[(&str, &str, &str)]) -> Vec<Entry> {
        let text: String = spec
            .iter()
            .map(|(n, v, extra)| {
                format!("Package: {n}\nVersion: {v}\nArchitecture: amd64\nFilename: pool/{n}_{v}.deb\nSize: 1\nSHA256: {SHA}\n{extra}\n\n")
            })
            .collect();
        index::parse(&text, "amd64").unwrap()
    }

    fn names(r: &[(&Entry, Reason)]) -> Vec<String> {
        r.iter().map(|(e, _)| format!("{} {}", e.name, e.version)).collect()
    }

    #[test]
    fn closure_follows_pre_depends_depends_alternatives_and_provides() {
        let es = entries(&[
            ("app", "1", "Pre-Depends: libc (>= 2)\nDepends: missing | alt-b, mail-transport-agent, libc\nRecommends: big"),
            ("libc", "1", ""),
            ("libc", "3", ""),
            ("alt-b", "1", "Depends: libc (>= 3)"),
            ("exim", "1", "Provides: mail-transport-agent\nPriority: extra"),
            ("postfix", "1", "Provides: mail-transport-agent\nPriority: optional"),
            ("big", "1", ""),
            ("essential-thing", "1", "Essential: yes"),
        ]);
        let r = Resolver::new(&es).resolve(&["app"]).unwrap();
        assert_eq!(names(&r), ["alt-b 1", "app 1", "libc 3", "postfix 1"]);
        assert_eq!(r[2].1, Reason::Needed { by: "app".into(), relation: "Pre-Depends: libc (>= 2)".into() });
        assert_eq!(r[1].1, Reason::Requested);
    }

    #[test]
    fn an_alternative_already_chosen_is_kept() {
        let es = entries(&[("app", "1", "Depends: first | second, dep"), ("first", "1", ""), ("second", "1", ""), ("dep", "1", "")]);
        let r = Resolver::new(&es).resolve(&["second", "app"]).unwrap();
        assert_eq!(names(&r), ["app 1", "dep 1", "second 1"]);
    }

    #[test]
    fn unsatisfiable_names_the_package_the_chain_and_why() {
        let es = entries(&[("app", "1", "Depends: mid"), ("mid", "1", "Depends: lib (>= 2) | other"), ("lib", "1", "")]);
        let e = Resolver::new(&es).resolve(&["app"]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "cannot install `lib`: app -> mid needs it (Depends: lib (>= 2) | other); `lib` is 1 there, which `lib (>= 2)` does not accept; no package `other` is in the indices"
        );
        let e = Resolver::new(&es).resolve(&["nope"]).unwrap_err();
        assert_eq!(e.to_string(), "cannot install `nope`: no package `nope` is in the indices");
    }
}
