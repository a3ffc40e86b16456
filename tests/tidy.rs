//! Architecture invariants, checked by reading the source: each outside thing has one owner.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

fn sources() -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().replace('\\', "/");
            (rel, std::fs::read_to_string(&p).unwrap())
        })
        .collect()
}

/// Files (relative paths) that mention `needle`, outside the allowed prefixes.
fn offenders(needle: &str, allowed: &[&str]) -> Vec<String> {
    sources()
        .into_iter()
        .filter(|(rel, text)| text.contains(needle) && !allowed.iter().any(|a| rel.starts_with(a)))
        .map(|(rel, _)| rel)
        .collect()
}

#[test]
fn only_lang_imports_nickel() {
    assert_eq!(offenders("nickel_lang_core", &["src/lang/"]), Vec::<String>::new());
}

#[test]
fn only_exec_spawns_processes() {
    assert_eq!(offenders("process::Command", &["src/exec.rs"]), Vec::<String>::new());
    assert_eq!(offenders("Command::new(", &["src/exec.rs"]), Vec::<String>::new());
}

#[test]
fn only_lsp_imports_lsp_types() {
    assert_eq!(offenders("lsp_types", &["src/lsp/"]), Vec::<String>::new());
}

#[test]
fn only_cli_renders_with_miette() {
    assert_eq!(offenders("miette::", &["src/cli/"]), Vec::<String>::new());
}

#[test]
fn only_env_vars_names_galley_variables() {
    let hits: Vec<String> = sources()
        .into_iter()
        .filter(|(rel, text)| {
            rel != "src/env_vars.rs"
                && ["var(\"GALLEY_", "var_os(\"GALLEY_", "env(\"GALLEY_", "env_remove(\"GALLEY_"]
                    .iter()
                    .any(|read| text.contains(read))
        })
        .map(|(rel, _)| rel)
        .collect();
    assert_eq!(hits, Vec::<String>::new());
}

#[test]
fn every_source_file_says_what_it_is_for() {
    let missing: Vec<String> = sources()
        .into_iter()
        .filter(|(_, text)| !text.trim_start().starts_with("//!"))
        .map(|(rel, _)| rel)
        .collect();
    assert_eq!(missing, Vec::<String>::new());
}
