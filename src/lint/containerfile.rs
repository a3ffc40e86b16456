//! An image's `containerfile` checked at `check` time: not combined with galley's own build
//! fields, the file readable and parsable (errors at their line), every secret it mounts
//! declared, `ADD` from a URL, and the user the final stage runs as, each located in the
//! Containerfile where a line says it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::diagnostic::{Code, Diagnostic, Lines, Location};
use crate::image::containerfile::{self, FileError};
use crate::lang::SpanIndex;
use crate::model::{ContainerfileBuild, Image};

/// galley's own build fields, which a Containerfile image cannot have.
const NATIVE_FIELDS: &[&str] = &["base", "debian", "packages", "files", "run", "users", "groups"];

pub fn run(at: &str, image: &Image, project_dir: &Path, spans: &SpanIndex, out: &mut Vec<Diagnostic>) {
    let Some(cf) = &image.containerfile else { return };
    for field in NATIVE_FIELDS {
        let path = format!("{at}.{field}");
        if spans.is_written(&path) {
            out.push(
                Diagnostic::new(Code::ContainerfileConflict, format!("`{path}` is set, but the image is built from `containerfile`"))
                    .at(spans.locate(&path))
                    .help(format!("a Containerfile image's files come from its Containerfile: remove `{field}` (write it as Containerfile instructions), or remove `containerfile`")),
            );
        }
    }
    let field = format!("{at}.containerfile");
    let text = match containerfile::read(project_dir, cf) {
        Ok(text) => text,
        Err(e) => {
            let message = match e {
                FileError::Read { message, .. } => message,
                other => other.to_string(),
            };
            out.push(
                Diagnostic::new(Code::ContainerfileInvalid, format!("`{}`: {message}", cf.path))
                    .at(spans.locate_value(&format!("{field}.path")))
                    .help("name a regular file inside the project directory, relative to it (a link may point only inside the project)"),
            );
            return;
        }
    };
    if let Err(e) = containerfile::context_dir(project_dir, cf) {
        out.push(
            Diagnostic::new(Code::ContainerfileInvalid, e.to_string())
                .at(spans.locate_value(&format!("{field}.context")).or_else(|| spans.locate(&field)))
                .help(containerfile::ContextError::HELP),
        );
    }
    let lines = Lines::new(Arc::from(text.as_str()));
    let parsed = match containerfile::parse::parse(&text, &cf.build_args) {
        Ok(parsed) => parsed,
        Err(e) => {
            out.push(Diagnostic::new(Code::ContainerfileInvalid, e.message).at(at_line(&lines, cf, e.line).or_else(|| spans.locate_value(&format!("{field}.path")))).help(e.help));
            return;
        }
    };
    for (id, line) in &parsed.secrets {
        if !cf.secrets.contains_key(id) {
            out.push(
                Diagnostic::new(Code::BuildSecretUndeclared, format!("the step mounts build secret `{id}`, which is not declared"))
                    .at(at_line(&lines, cf, *line))
                    .help(format!("add `{id}` to `{field}.secrets` with its source, for example {{ env = \"VAR\" }}")),
            );
        }
    }
    for line in &parsed.add_urls {
        out.push(
            Diagnostic::new(Code::AddFromUrl, "ADD from a URL: the download is not pinned, so the build is not reproducible")
                .at(at_line(&lines, cf, *line))
                .help(if cf.network {
                    "copy the file into the build context and ADD or COPY it from there"
                } else {
                    "copy the file into the build context; as written the build needs `containerfile.network = true`"
                }),
        );
    }
    let Ok(target) = parsed.target(cf.target.as_deref()) else {
        out.push(
            Diagnostic::new(Code::ContainerfileInvalid, format!("`{}` has no stage named `{}`", cf.path, cf.target.as_deref().unwrap_or_default()))
                .at(spans.locate_value(&format!("{field}.target")))
                .help("name a stage written `FROM ... AS name` in the Containerfile"),
        );
        return;
    };
    let user = parsed.user(target);
    let root = user.is_none_or(|(u, _)| is_root(u));
    if image.user.is_none() && root {
        let d = Diagnostic::new(Code::ContainerfileRoot, format!("the Containerfile's image runs as root{}", if user.is_none() { " (it sets no USER)" } else { "" }));
        let place = match user {
            Some((_, line)) => at_line(&lines, cf, *line),
            None => spans.locate(&field),
        };
        out.push(d.at(place).help("add `USER 1000:1000` (an unprivileged account) to the final stage"));
    }
}

fn is_root(user: &str) -> bool {
    let name = user.split(':').next().unwrap_or_default().trim();
    name == "root" || name == "0"
}

/// The location of line `line` (from 1) of the Containerfile.
fn at_line(lines: &Lines, cf: &ContainerfileBuild, line: usize) -> Option<Location> {
    let text = lines.source();
    let start = text.split_inclusive('\n').take(line.saturating_sub(1)).map(str::len).sum::<usize>();
    let end = text[start.min(text.len())..].find('\n').map(|e| start + e).unwrap_or(text.len());
    Some(lines.location(PathBuf::from(&cf.path), start, end))
}
