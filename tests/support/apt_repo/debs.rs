//! .deb files for the APT repository fixture: finding one by package name, reading a control
//! field, and the control-file editing behind its changed and synthetic packages.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Field `name` of a .deb's control file (`dpkg-deb --field`), trimmed.
pub fn deb_field(deb: &Path, name: &str) -> String {
    let out = Command::new("dpkg-deb").arg("--field").arg(deb).arg(name).output().expect("dpkg-deb runs");
    assert!(out.status.success(), "dpkg-deb --field {}: {}", deb.display(), super::text(&out));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The .deb of package `name` directly in `dir`: file names start with the package name and an
/// underscore, which no package name contains.
pub(super) fn find_deb(dir: &Path, name: &str) -> Option<PathBuf> {
    let prefix = format!("{name}_");
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let file = p.file_name().unwrap().to_string_lossy();
            file.starts_with(&prefix) && file.ends_with(".deb")
        })
        .collect();
    found.sort();
    found.pop()
}

pub(super) fn find_deb_under(dir: &Path, name: &str) -> Option<PathBuf> {
    if let Some(deb) = find_deb(dir, name) {
        return Some(deb);
    }
    let mut subdirs: Vec<PathBuf> = std::fs::read_dir(dir).ok()?.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_dir()).collect();
    subdirs.sort();
    subdirs.iter().find_map(|d| find_deb_under(d, name))
}

/// A control file's fields in order, each value with its continuation lines.
pub(super) fn parse_control(text: &str) -> Vec<(String, String)> {
    let mut fields: Vec<(String, String)> = vec![];
    for line in text.lines() {
        if line.starts_with([' ', '\t']) {
            let last = fields.last_mut().expect("a continuation line after a field");
            last.1.push('\n');
            last.1.push_str(line);
        } else if let Some((k, v)) = line.split_once(':') {
            fields.push((k.to_owned(), v.trim_start().to_owned()));
        }
    }
    fields
}

pub(super) fn set_fields(stanza: &mut Vec<(String, String)>, fields: &[(&str, &str)]) {
    for (k, v) in fields {
        let at = stanza.iter().position(|(f, _)| f.eq_ignore_ascii_case(k));
        match (at, v.is_empty()) {
            (Some(i), true) => {
                stanza.remove(i);
            }
            (Some(i), false) => stanza[i].1 = v.to_string(),
            (None, false) => stanza.push((k.to_string(), v.to_string())),
            (None, true) => {}
        }
    }
}

pub(super) fn render_control(stanza: &[(String, String)]) -> String {
    stanza.iter().map(|(k, v)| format!("{k}: {v}\n")).collect()
}
