//! A [`Detection`] written as galley.ncl: the chosen build and a sandbox that runs it, every
//! choice explained by a comment carrying its evidence, the other matches and the names not read
//! listed at the top. Text from the project reaches the file only as an escaped Nickel string or
//! inside a one-line comment, so a file in the project cannot write Nickel into galley.ncl.

use std::fmt::Write;

use super::{Build, Detection, Found, Kind};
use crate::domain::Reference;

/// What the rendered file needs beyond the detection.
pub struct Options<'a> {
    /// The project name.
    pub name: &'a str,
    /// `--base`: the base of the image, instead of the toolchain placeholder (or of `static_base`).
    pub base: Option<&'a Reference>,
    /// The base a static site is served from: galley's busybox base.
    pub static_base: &'a Reference,
    /// The host port on 127.0.0.1; the container's port when `None`.
    pub host_port: Option<u16>,
    /// The `registries` entry a base needs (empty for a public registry).
    pub registries: &'a dyn Fn(&Reference) -> String,
}

/// Nickel text of galley.ncl for `detection`.
pub fn render(detection: &Detection, options: &Options<'_>) -> String {
    let found = &detection.chosen;
    let mut out = String::new();
    let _ = writeln!(out, "# galley.ncl written by `galley init --detect`: review it, then `galley check`, `galley lock`");
    let _ = writeln!(out, "# (which pins every base by digest) and `galley apply`.");
    let _ = writeln!(out, "#");
    let _ = writeln!(out, "# Detected {}:", found.kind.label());
    for line in &found.evidence {
        let _ = writeln!(out, "#   - {}", comment(line));
    }
    if !detection.others.is_empty() {
        let _ = writeln!(out, "# Also found, not used ({} comes first; see `galley init --help`):", found.kind.label());
        for other in &detection.others {
            let _ = writeln!(out, "#   - {}: {}", other.kind.label(), comment(&other.evidence.join("; ")));
        }
    }
    if !detection.skipped.is_empty() {
        let _ = writeln!(out, "# Skipped:");
        for line in &detection.skipped {
            let _ = writeln!(out, "#   - {}", comment(line));
        }
    }
    let base = match &found.build {
        Build::Containerfile { .. } => None,
        Build::Toolchain { base, .. } => Some(options.base.cloned().map_or_else(|| (*base).to_owned(), |b| b.to_string())),
        Build::Static { .. } => Some(options.base.unwrap_or(options.static_base).to_string()),
    };
    let registries = base.as_deref().and_then(|b| Reference::parse(b).ok()).map(|b| (options.registries)(&b)).unwrap_or_default();
    let _ = writeln!(out, "let galley = import \"galley/std.ncl\" in");
    let _ = writeln!(out, "{{\n  name = {},", quote(options.name));
    out.push_str(&registries);
    let image = if found.kind == Kind::Static { "site" } else { "app" };
    let _ = writeln!(out);
    match &found.build {
        Build::Containerfile { file } => {
            let _ = writeln!(out, "  # Built from {file} with the project as its context; every FROM is pinned by `galley lock`.");
            let _ = writeln!(out, "  images.{image}.containerfile = {},", quote(file));
        }
        Build::Toolchain { steps, entrypoint, start, env, .. } => {
            let _ = writeln!(out, "  images.{image} = {{");
            if options.base.is_some() {
                let _ = writeln!(out, "    # The base given with --base.");
            } else {
                let _ = writeln!(out, "    # CONFIRM: a toolchain image galley chose, not your project. Set the version your project");
                let _ = writeln!(out, "    # needs (or a registry of your own); `galley lock` pins it by digest.");
            }
            let _ = writeln!(out, "    base = {},", quote(base.as_deref().unwrap_or_default()));
            let _ = writeln!(out, "    # The project, copied to /app.");
            let _ = writeln!(out, "    files = [{{ src = \".\", dst = \"/app\" }}],");
            if !steps.is_empty() {
                let _ = writeln!(out, "    run = [");
                for step in steps {
                    let _ = writeln!(out, "      # {}.", capital(&comment(&step.why)));
                    let _ = writeln!(out, "      # The step fetches packages, so it has the network; what it fetches is pinned");
                    let _ = writeln!(out, "      # only as far as the project's own lock file pins it.");
                    let _ = writeln!(out, "      {{ command = {}, network = true }},", quote(&step.command));
                }
                let _ = writeln!(out, "    ],");
            }
            let _ = writeln!(out, "    workdir = \"/app\",");
            if !env.is_empty() {
                let _ = writeln!(out, "    env = {{ {} }},", record(env));
            }
            let _ = writeln!(out, "    # How it starts: {}.", comment(start));
            let _ = writeln!(out, "    entrypoint = {},", list(entrypoint));
            let _ = writeln!(out, "  }},");
        }
        Build::Static { root } => {
            let _ = writeln!(out, "  images.{image} = {{");
            let _ = writeln!(out, "    # A base with a busybox at /bin/busybox (galley's busybox base); `galley lock` pins it.");
            let _ = writeln!(out, "    base = {},", quote(base.as_deref().unwrap_or_default()));
            let _ = writeln!(out, "    files = [{{ src = {}, dst = \"/srv\" }}],", quote(root));
            let _ = writeln!(out, "    users = [{{ name = \"web\", uid = 1000 }}],");
            let _ = writeln!(out, "    user = \"web\",");
            let _ = writeln!(out, "    workdir = \"/srv\",");
            let _ = writeln!(out, "    entrypoint = [\"/bin/busybox\", \"httpd\", \"-f\", \"-v\", \"-p\", \"8080\", \"-h\", \"/srv\"],");
            let _ = writeln!(out, "  }},");
        }
    }
    let _ = writeln!(out);
    sandbox(&mut out, found, image, options.host_port);
    out.push_str("}\n");
    out
}

fn sandbox(out: &mut String, found: &Found, image: &str, host_port: Option<u16>) {
    let Some(port) = &found.port else {
        let _ = writeln!(out, "  # No port found: the sandbox has no network. To publish one, merge");
        let _ = writeln!(out, "  # `galley.presets.service_on PORT PORT` into it.");
        let _ = writeln!(out, "  sandboxes.{image} = {{ image = \"{image}\" }},");
        return;
    };
    let host = host_port.unwrap_or(port.number);
    let _ = writeln!(out, "  # Port {}: {}.", port.number, comment(&port.why));
    let _ = writeln!(out, "  # Published on 127.0.0.1:{host} only, from a network of this sandbox alone with no route out.");
    let _ = writeln!(out, "  sandboxes.{image} = galley.presets.service_on {} {host} & {{", port.number);
    let _ = writeln!(out, "    image = \"{image}\",");
    match &found.build {
        Build::Containerfile { .. } => {}
        Build::Static { .. } => {
            let _ = writeln!(out, "    user = \"1000:1000\",");
        }
        Build::Toolchain { .. } => {
            let _ = writeln!(out, "    user = \"1000:1000\",");
            let _ = writeln!(out, "    # The root file system is read-only: /tmp is the writable place (and HOME).");
            let _ = writeln!(out, "    env = {{ PORT = \"{}\", HOME = \"/tmp\" }},", port.number);
            let _ = writeln!(out, "    tmpfs = [{{ path = \"/tmp\", size = \"64m\" }}],");
        }
    }
    let _ = writeln!(out, "  }},");
}

/// `text` as one comment line: control characters (a newline would end the comment and let the
/// rest be read as Nickel) become spaces, and it is cut at 160 characters.
fn comment(text: &str) -> String {
    let one: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    match one.char_indices().nth(160) {
        Some((i, _)) => format!("{}...", &one[..i]),
        None => one,
    }
}

fn capital(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

/// A Nickel string literal holding exactly `text` (no interpolation: `%` is escaped).
fn quote(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '%' => out.push_str("\\%"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn list(items: &[String]) -> String {
    format!("[{}]", items.iter().map(|i| quote(i)).collect::<Vec<_>>().join(", "))
}

fn record(fields: &[(String, String)]) -> String {
    fields.iter().map(|(k, v)| format!("{k} = {}", quote(v))).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_text_cannot_write_nickel_through_a_comment_or_a_string() {
        // A hostile package.json script: a newline to end the comment, or an interpolation.
        assert_eq!(comment("start\n  name = \"evil\","), "start   name = \"evil\",");
        assert_eq!(quote("a\"b%{x}\\\n\u{1}"), "\"a\\\"b\\%{x}\\\\\\n\\u{1}\"");
        assert!(comment(&"x".repeat(500)).len() < 170);
    }
}
