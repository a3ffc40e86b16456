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

/// The `use crate::` edges between top-level modules of `src/`, from the source, leaving out
/// unit-test code (a trailing `#[cfg(test)] mod tests` and `tests.rs` / `*_tests.rs` files).
fn real_edges() -> std::collections::BTreeMap<String, std::collections::BTreeSet<String>> {
    let mut edges: std::collections::BTreeMap<String, std::collections::BTreeSet<String>> = Default::default();
    for (rel, text) in sources() {
        let inner = rel.strip_prefix("src/").unwrap();
        let module = inner.split('/').next().unwrap().trim_end_matches(".rs").to_owned();
        if ["lib", "main"].contains(&module.as_str()) || rel.ends_with("/tests.rs") || rel.ends_with("_tests.rs") {
            continue;
        }
        let code = text.split("#[cfg(test)]\nmod tests").next().unwrap();
        let entry = edges.entry(module.clone()).or_default();
        for (i, _) in code.match_indices("crate::") {
            let name: String = code[i + 7..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            if !name.is_empty() && name != module {
                entry.insert(name);
            }
        }
    }
    edges
}

/// The graph ARCHITECTURE.md's "Dependencies" section states: `- `module`: a, b, c` lines.
fn documented_edges() -> std::collections::BTreeMap<String, std::collections::BTreeSet<String>> {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("ARCHITECTURE.md")).unwrap();
    let section = text.split("\n## Dependencies\n").nth(1).expect("ARCHITECTURE.md has a Dependencies section");
    let section = section.split("\n## ").next().unwrap();
    section
        .lines()
        .filter_map(|l| l.strip_prefix("- `"))
        .map(|l| {
            let (module, uses) = l.split_once("`:").expect("a line `- `module`: uses`");
            let uses = uses.trim().trim_end_matches('.');
            let set = if uses == "nothing" {
                Default::default()
            } else {
                uses.split(',').map(|u| u.trim().trim_matches('`').to_owned()).collect()
            };
            (module.to_owned(), set)
        })
        .collect()
}

#[test]
fn the_documented_module_graph_is_the_real_one_and_points_one_way() {
    let real = real_edges();
    let documented = documented_edges();
    for (module, uses) in &real {
        assert_eq!(
            documented.get(module),
            Some(uses),
            "src/{module} uses exactly these modules; ARCHITECTURE.md's Dependencies section must say so"
        );
    }
    let extra: Vec<&String> = documented.keys().filter(|m| !real.contains_key(*m)).collect();
    assert!(extra.is_empty(), "ARCHITECTURE.md names modules src/ does not have: {extra:?}");
    // One way: repeatedly remove modules that use nothing left; a cycle leaves some behind.
    let mut left = documented.clone();
    while !left.is_empty() {
        let free: Vec<String> = left.iter().filter(|(_, uses)| uses.iter().all(|u| !left.contains_key(u))).map(|(m, _)| m.clone()).collect();
        assert!(!free.is_empty(), "the module graph has a cycle among {:?}", left.keys().collect::<Vec<_>>());
        for m in free {
            left.remove(&m);
        }
    }
}

/// Issue 15 (linear cost): `std.string.is_match "re"` compiles `re` each time it is applied to the
/// pattern alone, so a library validator that writes `std.string.is_match "re" value` compiles
/// the pattern again for every value it checks (a fifth of `check` on 1,000 sandboxes). Every
/// pattern written in the library is bound once, as `let is_x = std.string.is_match "re" in`.
#[test]
fn each_library_pattern_is_compiled_once_not_per_value() {
    let mut offenders = Vec::new();
    for (name, text) in galley::lang::embedded::FILES {
        for (n, line) in text.lines().enumerate() {
            let mut rest = line;
            while let Some(at) = rest.find("std.string.is_match") {
                rest = rest[at + "std.string.is_match".len()..].trim_start();
                let Some(literal) = rest.strip_prefix('"') else { continue };
                let mut end = None;
                let mut escaped = false;
                for (i, c) in literal.char_indices() {
                    match c {
                        _ if escaped => escaped = false,
                        '\\' => escaped = true,
                        '"' => {
                            end = Some(i);
                            break;
                        }
                        _ => {}
                    }
                }
                let Some(end) = end else { break };
                rest = literal[end + 1..].trim_start();
                if !(rest.is_empty() || rest == "in" || rest.starts_with("in ") || rest.starts_with(')')) {
                    offenders.push(format!("galley/{name}:{}: {}", n + 1, line.trim()));
                }
            }
        }
    }
    assert!(offenders.is_empty(), "patterns applied to a value where they are written (bind them once with `let`):\n{}", offenders.join("\n"));
}
