//! `galley export kube`: write an instance's sandboxes as Kubernetes YAML.

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

use super::{ExitStatus, Outcome, Printer};
use crate::kube::{self, Options, SeccompMode};
use crate::settings::Env;

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
    #[arg(long, default_value = crate::domain::DEFAULT_INSTANCE)]
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

pub fn run(env: &Env, out: &Printer, args: &ExportArgs) -> Outcome {
    match &args.target {
        Target::Kube(k) => kube_run(env, out, k),
    }
}

fn kube_run(env: &Env, out: &Printer, args: &KubeArgs) -> Outcome {
    let loaded = super::project::load(env)?;
    let options = Options {
        image_prefix: args.image_prefix.clone(),
        seccomp: match args.seccomp {
            SeccompArg::Localhost => SeccompMode::Localhost,
            SeccompArg::RuntimeDefault => SeccompMode::RuntimeDefault,
        },
        allow_baseline: args.allow_baseline,
    };
    // Images are pinned by the digests of the current lock; without one the export says so.
    let digests: Option<std::collections::BTreeMap<String, crate::domain::Digest>> =
        super::plan::current_lock(env, out, &loaded.project, false)?.map(|l| {
            l.images.into_iter().filter_map(|(name, i)| i.output.map(|o| (name, o.manifest))).collect()
        });
    let export = kube::desired(env, &loaded.project, &args.instance, digests.as_ref()).and_then(|d| kube::export(&d, &options))?;
    for w in &export.warnings {
        out.note(format_args!("warning: {w}"));
    }
    let dir = args.out.clone().unwrap_or_else(|| env.project_dir.join("kube"));
    if dir.as_os_str() == "-" {
        print!("{}", export.yaml);
        if !export.profiles.is_empty() {
            out.note("warning: seccomp profiles are not written with --out -; export to a directory to get them");
        }
    } else {
        let written = kube::write::write_dir(&dir, &export)?;
        if out.json() {
            let v = serde_json::json!({
                "namespace": export.namespace,
                "files": written.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
                "secret_commands": export.secret_commands,
                "warnings": export.warnings,
            });
            out.json_pretty(&v);
        }
        for p in &written {
            out.note(format_args!("wrote {}", p.display()));
        }
    }
    if !export.secret_commands.is_empty() {
        out.note("create the secrets with:");
        for c in &export.secret_commands {
            out.note(format_args!("  {}", c.replace('\n', "\n  ")));
        }
    }
    Ok(ExitStatus::Success)
}
