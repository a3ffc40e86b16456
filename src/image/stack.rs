//! Reading files out of stacked layers as a container would see them: upper layers and
//! whiteouts win.

use std::collections::BTreeMap;
use std::io::Read;

use super::config::Descriptor;
use super::{ImageError, Store, layer};

/// The largest file [`read_from_layers`] reads (an /etc/passwd of 50,000 users is about 3 MiB).
pub const MAX_FILE: u64 = 4 << 20;

/// The content of `paths` as the stacked `layers` leave them (upper layers and whiteouts win).
pub fn read_from_layers(store: &Store, layers: &[Descriptor], paths: &[&str]) -> Result<BTreeMap<String, Vec<u8>>, ImageError> {
    let mut found = BTreeMap::new();
    let mut settled: Vec<String> = Vec::new();
    for l in layers.iter().rev() {
        let f = store.open_blob(&l.digest)?;
        let r = layer::decompressing_reader(&l.media_type, f).map_err(|e| ImageError::Other(format!("layer {}: {e}", l.digest)))?;
        let mut ar = tar::Archive::new(r);
        let mut opaque_dirs = Vec::new();
        let bad = |e: std::io::Error| ImageError::Other(format!("layer {}: {e}", l.digest));
        for entry in ar.entries().map_err(bad)? {
            let mut entry = entry.map_err(bad)?;
            let p = entry.path().map_err(bad)?.to_string_lossy().trim_start_matches("./").trim_start_matches('/').trim_end_matches('/').to_owned();
            let (parent, file) = p.rsplit_once('/').unwrap_or(("", p.as_str()));
            if file == ".wh..wh..opq" {
                opaque_dirs.push(parent.to_owned());
                continue;
            }
            let target = match file.strip_prefix(".wh.") {
                Some(hidden) if parent.is_empty() => hidden.to_owned(),
                Some(hidden) => format!("{parent}/{hidden}"),
                None => p.clone(),
            };
            if !paths.contains(&target.as_str()) || settled.contains(&target) {
                continue;
            }
            settled.push(target.clone());
            if file.starts_with(".wh.") {
                continue;
            }
            if entry.header().entry_type().is_file() {
                let size = entry.size();
                if size > MAX_FILE {
                    return Err(ImageError::Other(format!(
                        "layer {}: /{target} is {size} bytes, over the {MAX_FILE}-byte limit for a file galley reads from a base\nhelp: use a base with an ordinary /{target}",
                        l.digest
                    )));
                }
                let mut buf = Vec::new();
                entry.by_ref().take(MAX_FILE).read_to_end(&mut buf).map_err(bad)?;
                found.insert(target, buf);
            }
        }
        for p in paths {
            if !settled.iter().any(|s| s == p) && opaque_dirs.iter().any(|d| p.starts_with(&format!("{d}/"))) {
                settled.push(p.to_string());
            }
        }
        if settled.len() == paths.len() {
            break;
        }
    }
    Ok(found)
}
