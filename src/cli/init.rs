//! `galley init`: write a starter galley.ncl that passes `galley check` with no warnings.

use std::process::ExitCode;

use clap::Args;

use crate::settings::Settings;

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Project name (defaults to the directory's name, made valid)
    #[arg(long)]
    pub name: Option<String>,
}

pub fn run(settings: &Settings, args: &InitArgs) -> ExitCode {
    let path = settings.config_path();
    if path.exists() {
        return super::fail(settings, format!("{} already exists", path.display()), Some("edit it, or remove it first"));
    }
    let dir = std::path::absolute(&settings.project_dir).unwrap_or_else(|_| settings.project_dir.clone());
    let name = args.name.clone().unwrap_or_else(|| {
        sanitize(dir.file_name().and_then(|n| n.to_str()).unwrap_or("project"))
    });
    if !crate::lint::is_name(&name) {
        return super::fail(settings, format!("invalid project name \"{name}\""), Some("use lower-case letters, digits and dashes"));
    }
    let text = starter(&name);
    if let Err(e) = crate::fsutil::write_atomic(&path, text.as_bytes()) {
        return super::fail(settings, e, None);
    }
    if settings.verbosity >= 0 {
        eprintln!("wrote {}; next: galley check", path.display());
    }
    ExitCode::SUCCESS
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

/// The starter config: one image, one untrusted sandbox.
pub fn starter(name: &str) -> String {
    format!(
        r#"# galley.ncl: what galley builds and runs for this project. `galley check` validates it.
let galley = import "galley/std.ncl" in
{{
  name = "{name}",

  images.app = {{
    files = [
      # {{ src = "app", dst = "/app" }},
    ],
    users = [{{ name = "app", uid = 1000 }}],
    user = "app",
    entrypoint = ["/app/run"],
  }},

  sandboxes.app = galley.presets.untrusted & {{
    image = "app",
    user = "1000:1000",
  }},
}}
"#
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
}
