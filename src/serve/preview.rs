//! One pull request's preview, converged to its record: fetch `refs/pull/N/head` from the
//! configured clone URL into the server's own bare repository, check the commit out in a
//! worktree of its own, load its `galley.ncl` in the bounded evaluator, hold it to the policy,
//! give it host ports, and apply instance `pr-N` with the runtime's library; or, for a closed
//! pull request, destroy the instance with its volumes and secret files. Runs on a blocking
//! thread; every git and podman call goes through `exec`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::config::{RepoName, ServeConfig};
use super::store::{self, Record, Sha};
use super::{policy, record};
use crate::exec::{Cmd, Runner, System};
use crate::runtime::apply::{self, Context};
use crate::runtime::images::StoreImages;
use crate::runtime::podman::Podman;
use crate::runtime::{self, Instance, host, plan, ports};
use crate::secrets::Resolver;
use crate::settings::Env;

/// How long one git fetch may run.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(300);

/// What the server shares with every preview job.
pub struct Shared {
    pub config: ServeConfig,
    pub env: Env,
    /// Serializes every read-modify-write of a record.
    pub records: std::sync::Mutex<()>,
    /// The audit log every decision is written to.
    pub log: crate::audit_log::Log,
}

impl Shared {
    pub fn home(&self) -> &Path {
        &self.env.home
    }

    /// The preview label of `repo#number` from this server: `<server>:owner/name#N`, where the
    /// server is a hash of its GALLEY_HOME, so two servers on one host never sweep each other's.
    pub fn tag(&self, repo: &str, number: u64) -> String {
        format!("{}:{repo}#{number}", self.server_id())
    }

    fn server_id(&self) -> String {
        use sha2::Digest;
        hex::encode(&sha2::Sha256::digest(self.home().as_os_str().as_encoded_bytes())[..6])
    }

    /// Apply `f` to the record of `repo#number` (if there is one) and write it; returns it.
    pub fn update(
        &self,
        repo: &RepoName,
        number: u64,
        f: impl FnOnce(&mut Record),
    ) -> Option<Record> {
        let _g = self.records.lock().unwrap_or_else(|p| p.into_inner());
        let mut r = store::read(self.home(), repo, number)?;
        f(&mut r);
        if let Err(e) = store::write(self.home(), &r) {
            record(
                "state",
                &[
                    ("repo", repo.to_string()),
                    ("number", number.to_string()),
                    ("outcome", "not written".into()),
                    ("reason", e.to_string()),
                ],
            );
        }
        Some(r)
    }
}

/// How a job ended, for the commit status.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Serving {
        sha: Sha,
        url: Option<String>,
        notes: Vec<String>,
    },
    Failed {
        sha: Sha,
        reason: String,
    },
    Destroyed,
    /// The record changed while the job ran (a newer head, or closed): run again.
    Superseded,
    Nothing,
}

/// Converge the preview of `repo#number` to its record.
pub fn converge(shared: &Shared, repo: &RepoName, number: u64) -> Outcome {
    let Some(r) = store::read(shared.home(), repo, number) else {
        return Outcome::Nothing;
    };
    if !r.open {
        return match destroy(shared, &r) {
            // Only the worktree was left (a second run of the same close): nothing to report.
            Ok(()) if r.project.is_none() => Outcome::Nothing,
            Ok(()) => {
                shared.update(repo, number, |r| {
                    r.project = None;
                    r.url = None;
                    r.applied = None;
                });
                Outcome::Destroyed
            }
            Err(reason) => Outcome::Failed {
                sha: r.head.clone(),
                reason,
            },
        };
    }
    if !r.pending() {
        return Outcome::Nothing;
    }
    let head = r.head.clone();
    match build(shared, repo, &r) {
        Ok(Some((applied, project, url, notes, lock))) => {
            shared.update(repo, number, |r| {
                r.applied = Some(applied.clone());
                r.project = Some(project);
                r.url = url.clone();
                r.failure = None;
            });
            drop(lock);
            Outcome::Serving {
                sha: applied,
                url,
                notes,
            }
        }
        Ok(None) => Outcome::Superseded,
        Err(reason) => {
            let still = store::read(shared.home(), repo, number);
            if still.as_ref().is_some_and(|s| s.head != head || !s.open) {
                return Outcome::Superseded;
            }
            shared.update(repo, number, |r| r.failure = Some(reason.clone()));
            Outcome::Failed { sha: head, reason }
        }
    }
}

fn git(args: &[&str]) -> Result<String, String> {
    let out = System
        .run(
            &Cmd::new("git")
                .args(args)
                .env("GIT_TERMINAL_PROMPT", "0")
                .timeout(FETCH_TIMEOUT),
        )
        .map_err(|e| e.to_string())?;
    if out.timed_out {
        return Err(format!(
            "git {} took longer than {}",
            args.first().unwrap_or(&""),
            crate::exec::seconds(FETCH_TIMEOUT)
        ));
    }
    if !out.success() {
        return Err(format!(
            "git {} failed: {}",
            args.first().unwrap_or(&""),
            crate::exec::tail(&out.stderr_str(), 3)
        ));
    }
    Ok(out.stdout_str())
}

fn bare(home: &Path, repo: &RepoName) -> PathBuf {
    store::root(home)
        .join("git")
        .join(format!("{}.git", repo.dir_name()))
}

fn worktree(home: &Path, repo: &RepoName, number: u64) -> PathBuf {
    store::root(home)
        .join("worktrees")
        .join(repo.dir_name())
        .join(store::instance_name(number))
}

/// Fetch the pull request's head from the configured clone URL and check it out in its own
/// worktree; returns the worktree and the commit it holds.
fn checkout(shared: &Shared, repo: &RepoName, number: u64) -> Result<(PathBuf, Sha), String> {
    let home = shared.home();
    let clone_url = &shared
        .config
        .repositories
        .get(repo)
        .ok_or("the repository is no longer configured")?
        .clone_url;
    let git_dir = bare(home, repo);
    let gd = git_dir.to_string_lossy().into_owned();
    if !git_dir.join("HEAD").is_file() {
        fs_err::create_dir_all(&git_dir).map_err(|e| e.to_string())?;
        git(&["init", "--bare", "--quiet", &gd])?;
    }
    let local = format!("refs/previews/pr-{number}");
    git(&[
        "--git-dir",
        &gd,
        "fetch",
        "--no-tags",
        "--quiet",
        "--force",
        "--",
        clone_url,
        &format!("+refs/pull/{number}/head:{local}"),
    ])?;
    let sha = Sha::parse(&git(&[
        "--git-dir",
        &gd,
        "rev-parse",
        "--verify",
        &format!("{local}^{{commit}}"),
    ])?)
    .ok_or("git printed no commit id")?;
    let dir = worktree(home, repo, number);
    let d = dir.to_string_lossy().into_owned();
    if dir.join(".git").exists() {
        git(&[
            "-C",
            &d,
            "checkout",
            "--quiet",
            "--force",
            "--detach",
            sha.as_str(),
        ])?;
        git(&["-C", &d, "clean", "--quiet", "-ffdx"])?;
    } else {
        let _ = std::fs::remove_dir_all(&dir);
        fs_err::create_dir_all(dir.parent().expect("under worktrees/"))
            .map_err(|e| e.to_string())?;
        git(&["--git-dir", &gd, "worktree", "prune"])?;
        git(&[
            "--git-dir",
            &gd,
            "worktree",
            "add",
            "--quiet",
            "--force",
            "--detach",
            &d,
            sha.as_str(),
        ])?;
    }
    Ok((dir, sha))
}

/// The commit applied, the project, the URL, the notes, and the instance's lock, held until the
/// record says the preview exists.
type Built = (
    Sha,
    String,
    Option<String>,
    Vec<String>,
    runtime::state::InstanceLock,
);

/// Everything up to a running preview. `Ok(None)` when the record changed meanwhile.
fn build(shared: &Shared, repo: &RepoName, r: &Record) -> Result<Option<Built>, String> {
    let (dir, sha) = checkout(shared, repo, r.number)?;
    let mut env = shared.env.clone();
    env.project_dir = dir.clone();
    let loaded = crate::project::load(&env, &System, None).map_err(|d| first(&d))?;
    if loaded.has_errors() {
        return Err(first(&loaded.diagnostics));
    }
    let mut project = loaded.project;
    let notes =
        policy::apply(&mut project, &shared.config.policy, r.fork).map_err(|d| first(&d))?;
    let name = project.name.to_string();
    let tag = shared.tag(&r.repo, r.number);
    let instance = Instance::new(&name, &r.instance())
        .map_err(|e| e.to_string())?
        .with_preview(tag);
    let others: Vec<Record> = store::all(shared.home())
        .into_iter()
        .filter(|o| (o.repo.as_str(), o.number) != (r.repo.as_str(), r.number))
        .collect();
    if others
        .iter()
        .any(|o| o.number == r.number && o.project.as_deref() == Some(name.as_str()))
    {
        return Err(format!(
            "another repository's preview already runs project `{name}` as {}",
            r.instance()
        ));
    }
    let live = others.iter().filter(|o| o.project.is_some()).count();
    if r.project.is_none() && live >= shared.config.max_previews {
        return Err(format!(
            "{live} previews are running, the server's limit (max_previews)"
        ));
    }
    // A pull request that renamed its project leaves its old instance behind otherwise.
    if let Some(old) = r.project.as_deref().filter(|old| *old != name) {
        destroy_instance(shared.home(), &env, old, &r.instance())?;
    }
    let home = shared.home();
    let lock = runtime::state::lock(home, &instance).map_err(|e| e.to_string())?;
    let _writing = crate::image::home::writing(home, &dir, &name).map_err(|e| e.to_string())?;
    let mut desired = runtime::desired(&env, &project).map_err(|e| e.to_string())?;
    pin_images(&env, &project, &mut desired)?;
    let assigned = ports::assign(home, &instance, &mut desired, shared.config.host_ports)
        .map_err(|e| e.to_string())?;
    let facts = host::detect(&env.oci_runtime).map_err(|e| e.to_string())?;
    let podman = Podman {
        runner: &System,
        runtime: facts.runtime.clone(),
    };
    let live = plan::live(&podman, &instance).map_err(|e| e.to_string())?;
    let the_plan = plan::compute(home, &instance, &desired, &live);
    // The last moment to notice a newer head or a close before anything changes.
    let now = store::read(home, repo, r.number);
    if now.as_ref().is_none_or(|n| !n.open || n.head != r.head) {
        return Ok(None);
    }
    let resolver = Resolver::new(shared.config.dir.clone(), &System);
    let images = StoreImages::new(&env, &project, BTreeMap::new());
    let lib_root = env.lib_root();
    let ctx = Context {
        home,
        lib_root: &lib_root,
        project: &project,
        instance: &instance,
        podman: &podman,
        facts: &facts,
        images: &images,
        secrets: &resolver,
    };
    let report = apply::apply(&ctx, &the_plan, &mut |_| {}).map_err(|e| e.to_string())?;
    if let Some(f) = report.failures.first() {
        return Err(format!("sandbox `{}` failed: {}", f.sandbox, f.message));
    }
    let url = assigned
        .values()
        .next()
        .map(|port| format!("http://{}:{port}/", shared.config.public_host));
    let mut notes = notes;
    notes.extend(
        ports::describe(&assigned)
            .into_iter()
            .map(|l| format!("host port: {l}")),
    );
    Ok(Some((sha, name, url, notes, lock)))
}

/// Build the preview's images (through the cache) and pin their digests in the manifests, so a
/// new commit that changes only files replaces the containers running the old image.
fn pin_images(env: &Env, project: &crate::model::Project, desired: &mut [crate::manifest::SandboxManifest]) -> Result<(), String> {
    let names: Vec<String> = desired.iter().map(|m| m.image.name.clone()).collect::<std::collections::BTreeSet<_>>().into_iter().collect();
    let built = crate::image::build(env, project, &names, &crate::image::BuildOptions::default()).map_err(|e| format!("cannot build the preview's images: {e}"))?;
    for m in desired.iter_mut() {
        m.image.digest = built.get(&m.image.name).map(|b| b.manifest_digest);
    }
    Ok(())
}

/// The first error's code and message, as a status says it.
fn first(d: &[crate::diagnostic::Diagnostic]) -> String {
    let d = d
        .iter()
        .find(|d| d.severity == crate::diagnostic::Severity::Error)
        .or(d.first());
    d.map_or_else(
        || "the config could not be loaded".to_owned(),
        |d| format!("{}: {}", d.code.as_str(), d.message),
    )
}

fn destroy_instance(home: &Path, env: &Env, project: &str, instance: &str) -> Result<(), String> {
    let instance = Instance::new(project, instance).map_err(|e| e.to_string())?;
    let _lock = runtime::state::lock(home, &instance).map_err(|e| e.to_string())?;
    destroy_locked(home, env, &instance)
}

/// Destroy `instance`, whose lock the caller holds.
fn destroy_locked(home: &Path, env: &Env, instance: &Instance) -> Result<(), String> {
    let facts = host::detect(&env.oci_runtime).map_err(|e| e.to_string())?;
    let podman = Podman {
        runner: &System,
        runtime: facts.runtime,
    };
    let live = plan::live(&podman, instance).map_err(|e| e.to_string())?;
    runtime::destroy::remove(home, &podman, instance, &live, true, facts.root).map_err(|e| e.to_string())
}

/// Destroy a record's preview: its instance (volumes and secrets too) and its worktree.
pub fn destroy(shared: &Shared, r: &Record) -> Result<(), String> {
    if let Some(project) = &r.project {
        destroy_instance(shared.home(), &shared.env, project, &r.instance())?;
    }
    if let Some(repo) = r.repo_name() {
        let dir = worktree(shared.home(), &repo, r.number);
        if dir.exists() {
            let _ = std::fs::remove_dir_all(&dir);
            let gd = bare(shared.home(), &repo).to_string_lossy().into_owned();
            let _ = git(&["--git-dir", &gd, "worktree", "prune"]);
        }
    }
    Ok(())
}

/// Remove preview objects of this server that podman holds and no record accounts for; returns
/// what was removed. Objects are listed first and each is checked against the records under
/// its instance's lock, which a job holds from before it creates anything until its record is
/// written, so a preview being made is never taken for an unrecorded one.
pub fn sweep_unrecorded(shared: &Shared) -> Result<Vec<String>, String> {
    let facts = host::detect(&shared.env.oci_runtime).map_err(|e| e.to_string())?;
    let podman = Podman { runner: &System, runtime: facts.runtime };
    let mine = format!("{}:", shared.server_id());
    let mut removed = Vec::new();
    for (project, instance, tag) in runtime::destroy::previews(&podman).map_err(|e| e.to_string())? {
        if !tag.starts_with(&mine) {
            continue;
        }
        let Ok(inst) = Instance::new(&project, &instance) else { continue };
        // Held: a job is changing it, and will record it.
        let Ok(_lock) = runtime::state::lock(shared.home(), &inst) else { continue };
        let known = store::all(shared.home())
            .iter()
            .any(|r| r.project.as_deref() == Some(project.as_str()) && r.instance() == instance && shared.tag(&r.repo, r.number) == tag);
        if !known && destroy_locked(shared.home(), &shared.env, &inst).is_ok() {
            removed.push(format!("{project}/{instance} ({tag})"));
        }
    }
    Ok(removed)
}
