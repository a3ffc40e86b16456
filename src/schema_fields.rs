//! The record shapes of galley's schema, by field path: which fields each record accepts and which
//! values enum-like fields allow. Used for "did you mean" on unknown fields and for completion in
//! the language server. `tests/schema_fields.rs` checks this table against `lang/schema.ncl`.

use crate::diagnostic::{Code, Diagnostic};
use crate::lang::SpanIndex;

/// A record of the schema and its fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Project,
    Registry,
    Image,
    FileCopy,
    RunStep,
    User,
    Group,
    Sandbox,
    Port,
    Tmpfs,
    Volume,
    Resources,
}

impl Kind {
    /// The schema contract's name in `lang/schema.ncl`.
    pub fn contract(self) -> &'static str {
        match self {
            Kind::Project => "Project",
            Kind::Registry => "Registry",
            Kind::Image => "Image",
            Kind::FileCopy => "FileCopy",
            Kind::RunStep => "RunStep",
            Kind::User => "User",
            Kind::Group => "Group",
            Kind::Sandbox => "Sandbox",
            Kind::Port => "Port",
            Kind::Tmpfs => "Tmpfs",
            Kind::Volume => "Volume",
            Kind::Resources => "Resources",
        }
    }

    pub fn fields(self) -> &'static [&'static str] {
        match self {
            Kind::Project => &["name", "registries", "images", "sandboxes"],
            Kind::Registry => &["insecure", "allow_private"],
            Kind::Image => &[
                "base", "platform", "compression", "files", "run", "users", "groups", "env",
                "workdir", "user", "entrypoint", "cmd", "labels",
            ],
            Kind::FileCopy => &["src", "dst", "uid", "gid", "mode"],
            Kind::RunStep => &["command", "network"],
            Kind::User => &["name", "uid", "gid", "home", "shell", "groups"],
            Kind::Group => &["name", "gid"],
            Kind::Sandbox => &[
                "image", "trust", "command", "env", "ports", "network", "secrets", "seccomp",
                "capabilities", "user", "read_only", "tmpfs", "volumes", "resources",
            ],
            Kind::Port => &["container", "host", "address", "protocol"],
            Kind::Tmpfs => &["path", "size", "mode"],
            Kind::Volume => &["name", "path", "read_only"],
            Kind::Resources => &["memory", "cpus", "pids", "nofile", "nproc"],
        }
    }

    pub const ALL: [Kind; 12] = [
        Kind::Project, Kind::Registry, Kind::Image, Kind::FileCopy, Kind::RunStep, Kind::User,
        Kind::Group, Kind::Sandbox, Kind::Port, Kind::Tmpfs, Kind::Volume, Kind::Resources,
    ];
}

/// The allowed values of an enum-like field, written as Nickel enum tags.
pub fn enum_values(kind: Kind, field: &str) -> &'static [&'static str] {
    match (kind, field) {
        (Kind::Image, "compression") => &["'gzip", "'zstd"],
        (Kind::Sandbox, "network") => &["'none", "'isolated", "'egress"],
        (Kind::Sandbox, "seccomp") => &["'default", "'strict", "'unconfined"],
        (Kind::Sandbox, "trust") => &["'untrusted", "'trusted"],
        (Kind::Port, "protocol") => &["'tcp", "'udp"],
        _ => &[],
    }
}

/// Which record kind lives at a field path given as segments (`["sandboxes", "web", "ports", "0"]`,
/// array indices as any segment), if any.
pub fn kind_at(segments: &[&str]) -> Option<Kind> {
    let mut kind = Kind::Project;
    let mut rest = segments;
    while let Some((first, tail)) = rest.split_first() {
        let (next, consumed) = match (kind, *first) {
            (Kind::Project, "registries") => (Kind::Registry, 2),
            (Kind::Project, "images") => (Kind::Image, 2),
            (Kind::Project, "sandboxes") => (Kind::Sandbox, 2),
            (Kind::Image, "files") => (Kind::FileCopy, 2),
            (Kind::Image, "run") => (Kind::RunStep, 2),
            (Kind::Image, "users") => (Kind::User, 2),
            (Kind::Image, "groups") => (Kind::Group, 2),
            (Kind::Sandbox, "ports") => (Kind::Port, 2),
            (Kind::Sandbox, "tmpfs") => (Kind::Tmpfs, 2),
            (Kind::Sandbox, "volumes") => (Kind::Volume, 2),
            (Kind::Sandbox, "resources") => (Kind::Resources, 1),
            _ => return None,
        };
        if tail.len() + 1 < consumed {
            return None;
        }
        kind = next;
        rest = &rest[consumed..];
    }
    Some(kind)
}

/// Split `sandboxes.web.ports[0]` into `["sandboxes", "web", "ports", "0"]`.
pub fn segments(path: &str) -> Vec<&str> {
    path.split(['.', '[', ']']).filter(|s| !s.is_empty()).collect()
}

/// The closest known field to `name`, if it is close enough to be a likely typo.
pub fn suggest(kind: Kind, name: &str) -> Option<&'static str> {
    kind.fields()
        .iter()
        .map(|f| (f, strsim::normalized_damerau_levenshtein(f, name)))
        .filter(|(_, score)| *score >= 0.5)
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(f, _)| *f)
}

/// Diagnostics for every field of the (uncontracted) config the schema does not know.
pub fn unknown(spans: &SpanIndex) -> Vec<Diagnostic> {
    let mut found = Vec::new();
    for record in spans.records() {
        let Some(kind) = kind_at(&segments(record)) else { continue };
        for key in spans.keys(record) {
            if kind.fields().contains(&key.as_str()) {
                continue;
            }
            let path = crate::lang::child_path(record, key);
            let mut d = Diagnostic::new(Code::UnknownField, format!("unknown field `{key}` in {}", describe(kind, record)))
                .at(spans.locate(&path))
                .label("not a field of this record");
            d = match suggest(kind, key) {
                Some(s) => d.help(format!("did you mean `{s}`?")),
                None => d.help(format!("known fields: {}", kind.fields().join(", "))),
            };
            found.push(d);
        }
    }
    found
}

fn describe(kind: Kind, path: &str) -> String {
    if path.is_empty() { "the project".to_owned() } else { format!("{} `{path}`", kind.contract().to_lowercase()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_follow_paths() {
        assert_eq!(kind_at(&[]), Some(Kind::Project));
        assert_eq!(kind_at(&["sandboxes", "web"]), Some(Kind::Sandbox));
        assert_eq!(kind_at(&["sandboxes", "web", "ports", "0"]), Some(Kind::Port));
        assert_eq!(kind_at(&["sandboxes", "web", "resources"]), Some(Kind::Resources));
        assert_eq!(kind_at(&["sandboxes", "web", "env"]), None);
        assert_eq!(kind_at(&["sandboxes"]), None);
    }

    #[test]
    fn near_misses_are_suggested() {
        assert_eq!(suggest(Kind::Sandbox, "prots"), Some("ports"));
        assert_eq!(suggest(Kind::Sandbox, "readonly"), Some("read_only"));
        assert_eq!(suggest(Kind::Sandbox, "zzzzzzzz"), None);
    }
}
