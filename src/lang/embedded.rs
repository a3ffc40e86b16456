//! The schema (`lang/`) and standard library (`stdlib/`), compiled into the binary.
//!
//! Nickel resolves imports from files, so the library is written once under
//! `GALLEY_HOME/lib/<content hash>/galley/` and that directory becomes an import path: a config
//! says `import "galley/std.ncl"`. The directory name is a hash of the content, so two galley
//! versions never share one, and a directory is complete before it is renamed into place.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// (path under `galley/`, content)
pub const FILES: &[(&str, &str)] = &[
    ("schema.ncl", include_str!("../../lang/schema.ncl")),
    ("check.ncl", include_str!("../../lang/check.ncl")),
    ("capabilities.ncl", include_str!("../../lang/capabilities.ncl")),
    ("std.ncl", include_str!("../../stdlib/std.ncl")),
    ("presets.ncl", include_str!("../../stdlib/presets.ncl")),
    ("seccomp/default.ncl", include_str!("../../stdlib/seccomp/default.ncl")),
    ("seccomp/strict.ncl", include_str!("../../stdlib/seccomp/strict.ncl")),
    ("seccomp/denied-by-strict.ncl", include_str!("../../stdlib/seccomp/denied-by-strict.ncl")),
    ("project-contract.ncl", "(import \"schema.ncl\").Project\n"),
    ("serve.ncl", include_str!("../../lang/serve.ncl")),
    ("serve-contract.ncl", "(import \"serve.ncl\").Serve\n"),
];

/// Name of the directory holding the library inside an import path.
pub const PREFIX: &str = "galley";

/// A hash of every embedded file, naming the directory they are written to.
pub fn content_hash() -> String {
    let mut h = Sha256::new();
    for (name, text) in FILES {
        h.update((name.len() as u64).to_le_bytes());
        h.update(name.as_bytes());
        h.update((text.len() as u64).to_le_bytes());
        h.update(text.as_bytes());
    }
    hex::encode(&h.finalize()[..8])
}

/// Write the library under `lib_root` if it is not there yet; returns the import path to add.
pub fn materialize(lib_root: &Path) -> std::io::Result<PathBuf> {
    let dir = lib_root.join(content_hash());
    if dir.join(PREFIX).join("project-contract.ncl").is_file() {
        return Ok(dir);
    }
    fs_err::create_dir_all(lib_root)?;
    let staging = tempfile::Builder::new().prefix(".lib-").tempdir_in(lib_root)?;
    for (name, text) in FILES {
        let path = staging.path().join(PREFIX).join(name);
        fs_err::create_dir_all(path.parent().expect("embedded files live under galley/"))?;
        fs_err::write(&path, text)?;
    }
    let staged = staging.keep();
    match std::fs::rename(&staged, &dir) {
        Ok(()) => Ok(dir),
        // Another galley process finished first: its copy is identical.
        Err(_) if dir.join(PREFIX).join("project-contract.ncl").is_file() => {
            let _ = fs_err::remove_dir_all(&staged);
            Ok(dir)
        }
        Err(e) => Err(e),
    }
}

/// The embedded text of `galley/<name>`, if it is one of ours.
pub fn source_of(name: &str) -> Option<&'static str> {
    FILES.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}
