//! Containerfile builds (`images.NAME.containerfile`): the file read and checked by galley
//! (`parse.rs`), the build context filtered, hashed and copied (`context.rs`), and the build
//! itself in buildah from pinned bases, its output re-packed by galley (`build.rs`).

mod build;
pub mod context;
pub mod parse;

use std::path::{Path, PathBuf};

use crate::domain::Reference;
use crate::model::ContainerfileBuild;

pub use parse::{Containerfile, ParseError};

/// A Containerfile that cannot be used, at its line when it has one.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("{path}: {message}")]
    Read { path: String, message: String },
    #[error("{path}:{line}: {message}\nhelp: {help}")]
    Parse { path: String, line: usize, message: String, help: String },
}

/// The Containerfile's text, read within [`parse::MAX_CONTAINERFILE`] as a regular file inside
/// the project: never a host file a link leads to (whose lines a parse error would show), nor a
/// FIFO that would hang the read.
pub fn read(project_dir: &Path, cf: &ContainerfileBuild) -> Result<String, FileError> {
    let err = |message: String| FileError::Read { path: cf.path.clone(), message };
    let bytes = crate::fsutil::read_beneath(project_dir, Path::new(&cf.path), parse::MAX_CONTAINERFILE).map_err(|e| match e {
        crate::fsutil::ReadError::Io(e) => err(format!("cannot read the Containerfile: {e}")),
        other => err(format!("the Containerfile {other}")),
    })?;
    String::from_utf8(bytes).map_err(|e| err(format!("the Containerfile is not UTF-8 (byte {})", e.utf8_error().valid_up_to())))
}

/// The Containerfile read and parsed with the image's build arguments: its text and meaning.
pub fn load(project_dir: &Path, cf: &ContainerfileBuild) -> Result<(String, Containerfile), FileError> {
    let text = read(project_dir, cf)?;
    let parsed = parse::parse(&text, &cf.build_args)
        .map_err(|e| FileError::Parse { path: cf.path.clone(), line: e.line, message: e.message, help: e.help })?;
    Ok((text, parsed))
}

/// Every image the Containerfile names outside its stages, each once, in file order.
pub fn external_images(parsed: &Containerfile) -> Vec<Reference> {
    let mut out: Vec<Reference> = Vec::new();
    for u in &parsed.images {
        if !out.contains(&u.reference) {
            out.push(u.reference.clone());
        }
    }
    out
}

/// The context directory of `cf` in the project, its links resolved: a context that a link
/// leads out of the project (to the host's `/etc`, say) is refused, since every file under it
/// would be copied into the image.
pub fn context_dir(project_dir: &Path, cf: &ContainerfileBuild) -> Result<PathBuf, ContextError> {
    let rel: PathBuf = cf.context.split('/').filter(|c| !c.is_empty() && *c != ".").collect();
    let refused = |path: PathBuf, why: String| ContextError { context: cf.context.clone(), path, why };
    let dir = crate::fsutil::beneath(project_dir, &rel).map_err(|e| refused(project_dir.join(&rel), e.to_string()))?;
    if !dir.is_dir() {
        return Err(refused(dir, "is not a directory".into()));
    }
    Ok(dir)
}

/// A build context that cannot be used, and why.
#[derive(Debug, thiserror::Error)]
#[error("the build context `{context}` {why}")]
pub struct ContextError {
    pub context: String,
    pub path: PathBuf,
    pub why: String,
}

impl ContextError {
    pub const HELP: &str = "name a directory inside the project as `containerfile.context`";
}

impl From<ContextError> for super::ImageError {
    fn from(e: ContextError) -> Self {
        super::ImageError::Input { message: format!("{e}\nhelp: {}", ContextError::HELP), path: e.path }
    }
}

/// Whether the context is the project directory itself.
pub fn context_is_project(cf: &ContainerfileBuild) -> bool {
    cf.context.split('/').all(|c| c.is_empty() || c == ".")
}

/// The lock's input names: the Containerfile, the context and each build argument.
pub fn input_name_file(cf: &ContainerfileBuild) -> String {
    format!("containerfile:{}", cf.path)
}

pub fn input_name_context(cf: &ContainerfileBuild) -> String {
    format!("context:{}", cf.context)
}

pub fn input_name_arg(name: &str) -> String {
    format!("build_arg:{name}")
}

/// The context's input digest, every file read (what `galley lock --check` compares, with no
/// cache).
pub fn context_digest(project_dir: &Path, cf: &ContainerfileBuild) -> Result<crate::domain::Digest, super::ImageError> {
    let dir = context_dir(project_dir, cf)?;
    let ignore = context::Ignore::read(project_dir, &dir)?;
    let files = context::files(&dir, &ignore, context_is_project(cf))?;
    context::digest(&files, &|p, _| {
        let mut f = std::fs::File::open(p).map_err(|e| super::walk::input_err(p, e))?;
        Ok(super::store::sha256_read(&mut f).map_err(|e| super::walk::input_err(p, e))?.0)
    })
}
