//! `galley export kube`: write an instance's sandboxes as Kubernetes YAML.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};

use crate::kube::{self, KubeError, Options, SeccompMode};
use crate::project;
use crate::settings::{Format, Settings};

#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(subcommand)]
    pub target: Target,
}

#[derive(Debug, Subcommand)]
pub enum Target {
    /// Kubernetes objects (Namespace, Deployments, Services, NetworkPolicies, claims) meeting
    /// the restricted Pod Security Standard
    Kube(KubeArgs),
}

#[derive(Debug, Args)]
pub struct KubeArgs {
    /// Instance to export; it names the namespace galley-<project>-<instance>
    #[arg(long, default_value = kube::DEFAULT_INSTANCE)]
    pub instance: String,
    /// Directory to write <namespace>.yaml, seccomp/ and README.txt to, or `-` for the YAML on
    /// stdout [default: kube/ in the project directory]
    #[arg(long, value_name = "DIR|-")]
    pub out: Option<PathBuf>,
    /// Registry and path the images were pushed under (REGISTRY/PATH)
    #[arg(long, value_name = "REGISTRY/PATH", default_value = kube::DEFAULT_IMAGE_PREFIX)]
    pub image_prefix: String,
    /// How the 'default seccomp profile is referenced: as a Localhost profile installed on the
    /// nodes, or as the container runtime's default
    #[arg(long, value_enum, default_value_t = SeccompArg::Localhost)]
    pub seccomp: SeccompArg,
    /// Permit capabilities of the baseline Pod Security Standard (CHOWN, SETUID, ...); the
    /// namespace then enforces baseline and warns about restricted
    #[arg(long)]
    pub allow_baseline: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SeccompArg {
    Localhost,
    RuntimeDefault,
}

pub fn run(settings: &Settings, args: &ExportArgs) -> ExitCode {
    match &args.target {
        Target::Kube(k) => kube_run(settings, k),
    }
}

fn kube_run(settings: &Settings, args: &KubeArgs) -> ExitCode {
    let loaded = match project::load(settings, None) {
        Ok(loaded) => loaded,
        Err(diagnostics) => return super::render::report(settings, &diagnostics, true),
    };
    if loaded.has_errors() {
        return super::render::report(settings, &loaded.diagnostics, true);
    }
    let options = Options {
        image_prefix: args.image_prefix.clone(),
        seccomp: match args.seccomp {
            SeccompArg::Localhost => SeccompMode::Localhost,
            SeccompArg::RuntimeDefault => SeccompMode::RuntimeDefault,
        },
        allow_baseline: args.allow_baseline,
    };
    // Images are pinned by the digests of the current lock; without one the export says so.
    let digests: Option<std::collections::BTreeMap<String, String>> =
        match super::plan::current_lock(settings, &loaded.project, false) {
            Ok(lock) => lock.map(|l| {
                l.images.into_iter().filter_map(|(name, i)| i.output.map(|o| (name, o.manifest.to_string()))).collect()
            }),
            Err(code) => return code,
        };
    let export = match kube::desired(settings, &loaded.project, &args.instance, digests.as_ref())
        .and_then(|d| kube::export(&d, &options))
    {
        Ok(e) => e,
        Err(e) => return failure(settings, &e),
    };
    let say = |line: &str| {
        if settings.verbosity >= 0 {
            eprintln!("{line}");
        }
    };
    for w in &export.warnings {
        say(&format!("warning: {w}"));
    }
    let out = args.out.clone().unwrap_or_else(|| settings.project_dir.join("kube"));
    if out.as_os_str() == "-" {
        print!("{}", export.yaml);
        if !export.profiles.is_empty() {
            say("warning: seccomp profiles are not written with --out -; export to a directory to get them");
        }
    } else {
        let written = match kube::write::write_dir(&out, &export) {
            Ok(w) => w,
            Err(e) => return failure(settings, &e),
        };
        if settings.format == Format::Json {
            let v = serde_json::json!({
                "namespace": export.namespace,
                "files": written.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
                "secret_commands": export.secret_commands,
                "warnings": export.warnings,
            });
            println!("{}", serde_json::to_string_pretty(&v).expect("summary serializes"));
        }
        for p in &written {
            say(&format!("wrote {}", p.display()));
        }
    }
    if !export.secret_commands.is_empty() {
        say("create the secrets with:");
        for c in &export.secret_commands {
            say(&format!("  {}", c.replace('\n', "\n  ")));
        }
    }
    ExitCode::SUCCESS
}

fn failure(settings: &Settings, e: &KubeError) -> ExitCode {
    super::render::error_line(settings, &e.to_string(), e.help().as_deref());
    if e.is_config() { ExitCode::from(1) } else { ExitCode::from(2) }
}
