//! `galley init`: write a starter galley.ncl (and the files it copies) whose sandbox checks clean
//! and starts: an agent workspace, a web service or a periodic job; or, with `--detect`, a
//! galley.ncl for the project already in the directory (`crate::detect`).

use std::path::Path;

use clap::{Args, ValueEnum};

use super::{CliError, ExitStatus, Outcome, Printer};
use crate::domain::Reference;
use crate::settings::Env;

/// The base a starter builds on when `--base` is not given: a common public image, pinned by
/// digest on the first `galley lock`.
pub const DEFAULT_BASE: &str = "docker.io/library/busybox:1.36";

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Project name (defaults to the directory's name, made valid)
    #[arg(long)]
    pub name: Option<String>,
    /// What the starter sandbox does
    #[arg(long, value_enum, default_value_t = Template::Agent, conflicts_with = "detect")]
    pub template: Template,
    /// Read the project in the directory and write a galley.ncl that builds and runs it. Looks
    /// for, in this order of precedence: Containerfile or Dockerfile, package.json, pyproject.toml
    /// or requirements.txt, go.mod, Cargo.toml, a static site (index.html at the top or in
    /// public/, dist/, build/, site/, _site/, www/, out/); the first found is used and the
    /// others are named in comments. Never follows a symbolic link, never overwrites galley.ncl
    #[arg(long)]
    pub detect: bool,
    /// Base image of the starter (a fully qualified reference with a busybox at /bin/busybox;
    /// default docker.io/library/busybox:1.36). With --detect: the base instead of the
    /// toolchain image detection names, or of busybox for a static site
    #[arg(long, value_name = "REF")]
    pub base: Option<String>,
    /// Host port on 127.0.0.1 the service template publishes (default 8080); with --detect, the
    /// host port of the detected service (default: the port it listens on)
    #[arg(long, value_name = "PORT")]
    pub port: Option<u16>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Template {
    /// An AI-agent workspace: no network, waits for `galley exec`
    Agent,
    /// A web page served on a loopback port
    Service,
    /// A task that runs every minute and prints its result
    Job,
}

impl Template {
    fn text(self) -> &'static str {
        match self {
            Template::Agent => include_str!("templates/agent.ncl"),
            Template::Service => include_str!("templates/service.ncl"),
            Template::Job => include_str!("templates/job.ncl"),
        }
    }

    /// Files the starter's config copies into its image, relative to the project.
    fn files(self, project: &str) -> Vec<(&'static str, String)> {
        match self {
            Template::Service => vec![(
                "site/index.html",
                format!("<!doctype html>\n<title>{project}</title>\n<h1>{project} runs in a galley sandbox</h1>\n"),
            )],
            Template::Agent | Template::Job => vec![],
        }
    }
}

pub fn run(env: &Env, out: &Printer, args: &InitArgs) -> Outcome {
    let path = env.config_path();
    if path.exists() {
        return Err(CliError::user(format!("{} already exists", path.display()), Some("edit it, or remove it first")));
    }
    let dir = std::path::absolute(&env.project_dir).unwrap_or_else(|_| env.project_dir.clone());
    let name = args.name.clone().unwrap_or_else(|| {
        sanitize(dir.file_name().and_then(|n| n.to_str()).unwrap_or("project"))
    });
    if !crate::domain::Name::is_valid(&name) {
        return Err(CliError::user(format!("invalid project name \"{name}\""), Some("use lower-case letters, digits and dashes")));
    }
    let given = args.base.as_deref().map(parse_base).transpose()?;
    if args.detect {
        return detect(env, out, &dir, &name, given.as_ref(), args.port);
    }
    let base = match given {
        Some(base) => base,
        None => parse_base(DEFAULT_BASE)?,
    };
    let files = args.template.files(&name);
    if let Some((rel, _)) = files.iter().find(|(rel, _)| env.project_dir.join(rel).exists()) {
        return Err(CliError::user(
            format!("{} already exists", env.project_dir.join(rel).display()),
            Some("move it away, or write galley.ncl by hand"),
        ));
    }
    for (rel, text) in &files {
        write_new(&env.project_dir.join(rel), text)?;
    }
    crate::fsutil::write_atomic(&path, starter(args.template, &name, &base, args.port.unwrap_or(8080)).as_bytes())?;
    out.note(format_args!("wrote {}; next: galley check, galley lock, galley apply", path.display()));
    Ok(ExitStatus::Success)
}

fn parse_base(raw: &str) -> Result<Reference, CliError> {
    Reference::parse(raw).map_err(|why| {
        CliError::user(
            format!("--base \"{raw}\" is not an image reference: {why}"),
            Some("name the registry, repository and tag, as in docker.io/library/busybox:1.36"),
        )
    })
}

/// `galley init --detect`: read the project, write galley.ncl for what it is, or say that
/// nothing was recognised (exit 1, nothing written).
fn detect(env: &Env, out: &Printer, dir: &Path, name: &str, base: Option<&Reference>, port: Option<u16>) -> Outcome {
    let path = env.config_path();
    let detection = crate::detect::detect(dir).map_err(|nothing| {
        let mut message = format!("galley init --detect recognised nothing in {}", dir.display());
        for line in &nothing.skipped {
            message.push_str(&format!("\n  {line}"));
        }
        CliError::Refused {
            message,
            help: Some(format!(
                "it looks for a {}; for anything else, start from a template (galley init --template service) and edit it",
                crate::detect::LOOKS_FOR
            )),
        }
    })?;
    let static_base = parse_base(DEFAULT_BASE)?;
    let text = crate::detect::render(
        &detection,
        &crate::detect::Options { name, base, static_base: &static_base, host_port: port, registries: &registries },
    );
    crate::fsutil::write_atomic_new(&path, text.as_bytes()).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => CliError::user(format!("{} already exists", path.display()), Some("edit it, or remove it first")),
        _ => e.into(),
    })?;
    out.note(format_args!("detected {}: wrote {}", detection.chosen.kind.label(), path.display()));
    for other in &detection.others {
        out.note(format_args!("also found {} (not used: named in a comment)", other.kind.label()));
    }
    for line in &detection.skipped {
        out.note(format_args!("{line}"));
    }
    out.note(format_args!("next: review it, then galley check, galley lock, galley apply"));
    Ok(ExitStatus::Success)
}

fn write_new(path: &Path, text: &str) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        fs_err::create_dir_all(parent)?;
    }
    crate::fsutil::write_atomic(path, text.as_bytes())
}

fn sanitize(raw: &str) -> String {
    let mut s: String = raw
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    s.truncate(40);
    let s = s.trim_matches('-').to_owned();
    if s.is_empty() { "project".into() } else { s }
}

/// The starter config of `template` for project `name` on `base`.
pub fn starter(template: Template, name: &str, base: &Reference, port: u16) -> String {
    template
        .text()
        .replace("@NAME@", name)
        .replace("@BASE@", &base.to_string())
        .replace("@PORT@", &port.to_string())
        .replace("@REGISTRIES@", &registries(base))
}

/// A registry entry for a base on this machine or a private network: galley's SSRF guard refuses
/// such addresses unless the project allows them, and a registry on loopback speaks plain HTTP.
fn registries(base: &Reference) -> String {
    let host = base.registry.rsplit_once(':').map_or(base.registry.as_str(), |(h, _)| h);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let ip = host.parse::<std::net::IpAddr>().ok();
    let loopback = host == "localhost" || ip.is_some_and(|ip| ip.is_loopback());
    let private = loopback || ip.is_some_and(|ip| crate::image::guard::classify(ip).is_some());
    if !private {
        return String::new();
    }
    format!(
        "\n  # The base's registry is on {}: allow galley to connect to it{}.\n  registries.\"{}\" = {{ insecure = {loopback}, allow_private = true }},\n",
        if loopback { "this machine" } else { "a private address" },
        if loopback { " over plain HTTP" } else { "" },
        base.registry,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directory_names_become_valid_project_names() {
        assert_eq!(sanitize("My Project_2"), "my-project-2");
        assert_eq!(sanitize("__"), "project");
    }

    #[test]
    fn only_bases_on_private_addresses_get_a_registry_entry() {
        let entry = |r: &str| registries(&Reference::parse(r).unwrap());
        assert_eq!(entry(DEFAULT_BASE), "");
        assert!(entry("127.0.0.1:5000/galley/busybox:1").contains("registries.\"127.0.0.1:5000\" = { insecure = true, allow_private = true }"));
        assert!(entry("localhost:5000/b:1").contains("insecure = true"));
        assert!(entry("10.1.2.3/b:1").contains("{ insecure = false, allow_private = true }"));
    }
}
