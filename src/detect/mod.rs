//! `galley init --detect`: what a project directory holds that says how it builds and runs
//! (a Containerfile, a language's manifest, a static site), found by reading the tree within
//! caps ([`tree`]), as a typed [`Detection`] that keeps the evidence for every choice, which
//! [`render`] turns into a galley.ncl a person can review.

mod render;
mod shapes;
pub mod tree;

use std::path::Path;

pub use render::{Options, render};

/// A kind of project detection recognises, in the order of precedence: the first that matches
/// is used and the others are mentioned. A Containerfile comes first because it is the
/// project's own account of how it builds; a static site comes last because an `index.html`
/// sits beside many applications (as a build output or a front end).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Containerfile,
    Node,
    Python,
    Go,
    Rust,
    Static,
}

/// Every kind, first to last.
pub const PRECEDENCE: [Kind; 6] = [Kind::Containerfile, Kind::Node, Kind::Python, Kind::Go, Kind::Rust, Kind::Static];

impl Kind {
    pub fn label(self) -> &'static str {
        match self {
            Kind::Containerfile => "a Containerfile build",
            Kind::Node => "a Node.js project",
            Kind::Python => "a Python project",
            Kind::Go => "a Go module",
            Kind::Rust => "a Rust crate",
            Kind::Static => "a static site",
        }
    }
}

/// A port the project listens on, and why detection thinks so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Port {
    pub number: u16,
    pub why: String,
}

/// A build step, run with the network on (it fetches the project's dependencies).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub command: String,
    pub why: String,
}

/// How the image is made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Build {
    /// The project's own Containerfile (or Dockerfile), with the project as its context.
    Containerfile { file: String },
    /// The project copied to `/app` on a language's toolchain image, then `steps`.
    Toolchain {
        /// The base a person must confirm (a public tag, pinned by `galley lock`).
        base: &'static str,
        steps: Vec<Step>,
        entrypoint: Vec<String>,
        /// Why it starts that way.
        start: String,
        /// Environment of the image.
        env: Vec<(String, String)>,
    },
    /// Files served as they are by busybox's httpd from `root` (`.` or a directory).
    Static { root: String },
}

/// One kind that matched, with its evidence ("package.json has scripts.start").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub kind: Kind,
    pub evidence: Vec<String>,
    pub build: Build,
    pub port: Option<Port>,
}

/// What detection found: the kind chosen by [`PRECEDENCE`], the others that matched too, and the
/// names it did not read (links, files over the cap, text that is not UTF-8), each said why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detection {
    pub chosen: Found,
    pub others: Vec<Found>,
    pub skipped: Vec<String>,
}

/// Nothing recognisable; the names detection skipped, which may be why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nothing {
    pub skipped: Vec<String>,
}

/// What detection looks for, for the help of [`Nothing`].
pub const LOOKS_FOR: &str = "Containerfile or Dockerfile, package.json, pyproject.toml or requirements.txt, go.mod, Cargo.toml, or index.html at the top or in public/, dist/, build/, site/, _site/, www/ or out/";

/// Read `dir` and say what it is.
pub fn detect(dir: &Path) -> Result<Detection, Nothing> {
    let tree = tree::Tree::new(dir);
    let mut skipped = Vec::new();
    let mut found: Vec<Found> = PRECEDENCE.iter().filter_map(|kind| shapes::detect(*kind, &tree, &mut skipped)).collect();
    if found.is_empty() {
        return Err(Nothing { skipped });
    }
    let chosen = found.remove(0);
    Ok(Detection { chosen, others: found, skipped })
}
