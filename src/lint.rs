//! galley's own rules over a project that passed the schema: what is legal Nickel and a legal
//! galley config, but widens a sandbox or cannot work. Each rule has a code (G1xx) and points at the
//! field that triggers it.

mod containerfile;
mod env;
mod files;
mod mounts;
mod ports;
mod seccomp;

use std::collections::BTreeMap;
use std::path::Path;

use crate::diagnostic::{Code, Diagnostic};
use crate::lang::SpanIndex;
use crate::domain::idmap::SANDBOX_IDS;
use crate::domain::{Cpus, Memory, Name, SeccompChoice, name::NAME_HELP};
use crate::model::{Network, Project, Trust};

/// Every rule over `project`; `project_dir` is where `files` sources are resolved.
pub fn run(project: &Project, spans: &SpanIndex, project_dir: &Path) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    names(project, spans, &mut out);
    for (name, image) in &project.images {
        let at = format!("images.{name}");
        accounts(&at, image, spans, &mut out);
        env::run(&format!("{at}.env"), &image.env, env::Place::Image, spans, &mut out);
        files::run(&at, image, project_dir, spans, &mut out);
        debian(&at, image, project_dir, spans, &mut out);
        containerfile::run(&at, image, project_dir, spans, &mut out);
    }
    ports::run(project, spans, &mut out);
    for (name, sandbox) in &project.sandboxes {
        let at = format!("sandboxes.{name}");
        if !project.images.contains_key(&sandbox.image) {
            let known = project.images.keys().cloned().collect::<Vec<_>>();
            let d = Diagnostic::new(Code::UndeclaredImage, format!("sandbox `{name}` uses image `{}`, which is not declared", sandbox.image))
                .at(spans.locate_value(&format!("{at}.image")));
            let best = known.iter().max_by(|a, b| {
                strsim::jaro_winkler(a, &sandbox.image).total_cmp(&strsim::jaro_winkler(b, &sandbox.image))
            });
            out.push(match best {
                Some(b) => d.help(format!("declare it under `images`, or use one of the declared images (did you mean `{b}`?)")),
                None => d.help("declare the image under `images`"),
            });
        }
        for key in sandbox.secrets.keys() {
            if !is_secret_name(key) {
                out.push(
                    Diagnostic::new(Code::InvalidSecretName, format!("invalid secret name \"{key}\""))
                        .at(spans.locate(&crate::lang::child_path(&format!("{at}.secrets"), key)))
                        .help("start with a letter or underscore, then letters, digits, '_', '.', '-' (at most 64 characters); the name becomes a file under /run/secrets"),
                );
            }
        }
        env::run(&format!("{at}.env"), &sandbox.env, env::Place::Sandbox, spans, &mut out);
        for (i, cap) in sandbox.capabilities.iter().enumerate() {
            out.push(
                Diagnostic::new(Code::CapabilityAdded, format!("capability {cap} is added to sandbox `{name}`"))
                    .at(spans.locate_value(&format!("{at}.capabilities[{i}]")))
                    .help("sandboxes start with no capabilities; keep this only if the program fails without it"),
            );
        }
        if sandbox.seccomp == SeccompChoice::Unconfined {
            out.push(
                Diagnostic::new(Code::SeccompUnconfined, format!("sandbox `{name}` runs without a seccomp filter"))
                    .at(spans.locate_value(&format!("{at}.seccomp")))
                    .help("use 'default, or 'strict for untrusted code"),
            );
        }
        if let Some(id) = sandbox.user.ids().and_then(|(u, g)| [u, g].into_iter().find(|id| *id >= SANDBOX_IDS)) {
            out.push(
                Diagnostic::new(Code::UserOutsideNamespace, format!("sandbox `{name}` runs as id {id}, which its user namespace does not map"))
                    .at(spans.locate_value(&format!("{at}.user")))
                    .help(format!("every sandbox runs in a user namespace of ids 0 to {}: use a uid and gid below {SANDBOX_IDS}", SANDBOX_IDS - 1)),
            );
        }
        seccomp::run(name, &at, sandbox, spans, &mut out);
        if sandbox.user.is_root() {
            out.push(
                Diagnostic::new(Code::RunsAsRoot, format!("sandbox `{name}` runs as root"))
                    .at(spans.locate_value(&format!("{at}.user")))
                    .help("run as an unprivileged account, for example user = \"1000:1000\" (the default is 65534:65534)"),
            );
        }
        if sandbox.trust == Trust::Untrusted && sandbox.network == Network::Egress {
            out.push(
                Diagnostic::new(Code::UntrustedEgress, format!("untrusted sandbox `{name}` may reach the network"))
                    .at(spans.locate_value(&format!("{at}.network")))
                    .help("use 'none or 'isolated; egress lets untrusted code exfiltrate what it can read"),
            );
        }
        let limits = [
            ("memory", sandbox.resources.memory == Memory::Unlimited),
            ("cpus", sandbox.resources.cpus == Cpus::Unlimited),
            ("pids", sandbox.resources.pids == 0),
        ];
        for (field, missing) in limits {
            if missing {
                out.push(
                    Diagnostic::new(Code::MissingLimit, format!("sandbox `{name}` has no {field} limit"))
                        .at(spans.locate_value(&format!("{at}.resources.{field}")))
                        .help("set a limit: a runaway or hostile process then cannot starve the host"),
                );
            }
        }
        if !sandbox.read_only {
            out.push(
                Diagnostic::new(Code::WritableRoot, format!("sandbox `{name}` has a writable root filesystem"))
                    .at(spans.locate_value(&format!("{at}.read_only")))
                    .help("keep read_only = true and declare writable places with `tmpfs` or `volumes`"),
            );
        }
        mounts::run(name, &at, sandbox, spans, &mut out);
    }
    out
}

fn names(project: &Project, spans: &SpanIndex, out: &mut Vec<Diagnostic>) {
    let kinds = [("images", project.images.keys().collect::<Vec<_>>()), ("sandboxes", project.sandboxes.keys().collect())];
    for (section, keys) in kinds {
        for key in keys {
            if !Name::is_valid(key) {
                out.push(
                    Diagnostic::new(Code::InvalidName, format!("invalid name \"{key}\" in `{section}`"))
                        .at(spans.locate(&crate::lang::child_path(section, key)))
                        .help(NAME_HELP),
                );
            }
        }
    }
}

fn accounts(at: &str, image: &crate::model::Image, spans: &SpanIndex, out: &mut Vec<Diagnostic>) {
    let mut groups: BTreeMap<&str, usize> = BTreeMap::new();
    let mut gids: BTreeMap<u32, usize> = BTreeMap::new();
    for (i, g) in image.groups.iter().enumerate() {
        let name_twice = groups.insert(&g.name, i).is_some();
        if name_twice || gids.insert(g.gid, i).is_some() {
            let field = if name_twice { "name" } else { "gid" };
            out.push(
                Diagnostic::new(Code::DuplicateAccount, format!("group {} (gid {}) is declared twice", g.name, g.gid))
                    .at(spans.locate_value(&format!("{at}.groups[{i}].{field}")))
                    .help("give each group its own name and gid"),
            );
        }
    }
    let mut users: BTreeMap<&str, usize> = BTreeMap::new();
    let mut uids: BTreeMap<u32, usize> = BTreeMap::new();
    for (i, u) in image.users.iter().enumerate() {
        let name_twice = users.insert(&u.name, i).is_some();
        if name_twice || uids.insert(u.uid, i).is_some() {
            let field = if name_twice { "name" } else { "uid" };
            out.push(
                Diagnostic::new(Code::DuplicateAccount, format!("user {} (uid {}) is declared twice", u.name, u.uid))
                    .at(spans.locate_value(&format!("{at}.users[{i}].{field}")))
                    .help("give each user its own name and uid"),
            );
        }
        for (j, g) in u.groups.iter().enumerate() {
            if !groups.contains_key(g.as_str()) {
                out.push(
                    Diagnostic::new(Code::UndeclaredGroup, format!("user {} is in group {g}, which is not declared", u.name))
                        .at(spans.locate_value(&format!("{at}.users[{i}].groups[{j}]")))
                        .help(format!("declare it: groups = [{{ name = \"{g}\", gid = ... }}]")),
                );
            }
        }
    }
}

/// `packages` need a `debian` source, whose keyring must be a file of the project.
fn debian(at: &str, image: &crate::model::Image, project_dir: &Path, spans: &SpanIndex, out: &mut Vec<Diagnostic>) {
    match &image.debian {
        None if !image.packages.is_empty() => out.push(
            Diagnostic::new(Code::PackagesWithoutSource, "the image lists `packages` but declares no `debian` source to resolve them from")
                .at(spans.locate(&format!("{at}.packages")))
                .help("add `debian = { mirror = \"http://deb.debian.org/debian\", suite = \"bookworm\", keyring = \"keys/debian-archive-keyring.gpg\" }`"),
        ),
        Some(source) => {
            let why = match crate::fsutil::beneath(project_dir, Path::new(&source.keyring)) {
                Ok(real) if real.is_file() => return,
                Err(e @ crate::fsutil::ReadError::Escapes(_)) => e.to_string(),
                _ => "is not a file of the project".to_owned(),
            };
            out.push(
                Diagnostic::new(Code::MissingKeyring, format!("keyring `{}` {why}", source.keyring))
                    .at(spans.locate_value(&format!("{at}.debian.keyring")))
                    .help("check in the archive's keyring, for the Debian archive a copy of /usr/share/keyrings/debian-archive-keyring.gpg (package debian-archive-keyring)"),
            )
        }
        None => {}
    }
}

/// A secret name: it becomes the file /run/secrets/NAME.
pub fn is_secret_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && (b[0].is_ascii_alphabetic() || b[0] == b'_')
        && b.iter().all(|c| c.is_ascii_alphanumeric() || b"_.-".contains(c))
}

#[cfg(test)]
mod tests {
    #[test]
    fn root_and_loopback() {
        let user = |u: &str| crate::domain::UserSpec::parse(u).unwrap();
        assert!(user("root").is_root());
        assert!(user("0:0").is_root());
        assert!(!user("1000:0").is_root());
        let loopback = |a: &str| crate::domain::port::parse_address(a).unwrap().is_loopback();
        assert!(loopback("127.0.0.1"));
        assert!(loopback("::1"));
        assert!(!loopback("0.0.0.0"));
    }
}
