//! The input-key recipes: what a files layer's bytes depend on, entry by entry, and the hash of
//! the project tree RUN steps see. Content is hashed once per file through the stat cache.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::sync::Arc;

use rayon::prelude::*;
use serde_json::{Value, json};

use super::build::{Ctx, layer_key};
use super::layer::{self, Entry, Kind};
use super::walk::{Found, input_err, walk_tree};
use super::{ImageError, LayerRecord, cache};
use crate::domain::Digest;
use crate::model::Compression;

impl Ctx<'_> {
    /// The files layer of `entries`, keyed by their content: reused from the cache when its key
    /// is known, written otherwise.
    pub(super) fn files_layer(&self, entries: &[Entry], common: &Value, compression: Compression, root_dir: bool) -> Result<LayerRecord, ImageError> {
        if self.cache.has_layers() {
            let t = std::time::Instant::now();
            let described = self.describe(entries, None)?;
            self.timing("hash", t);
            let inputs = json!({ "kind": "files", "entries": described, "common": common });
            return self.layer("files", &inputs, compression, root_dir, || Ok(entries.to_vec()));
        }
        // A cache with no layer at all has nothing to look up: hash the files while writing them
        // instead of reading them twice. The key comes out the same.
        let hashes = layer::Hashes::default();
        let written = self.write_layer("files", compression, root_dir, entries.to_vec(), Some(&hashes))?;
        let described = self.describe(entries, Some(&hashes))?;
        let inputs = json!({ "kind": "files", "entries": described, "common": common });
        Ok(self.record("files", layer_key(&inputs, root_dir), written))
    }

    /// What a files layer's bytes depend on, entry by entry (content by hash): one compact JSON
    /// array per entry, hashed in order (cheaper than one big JSON value for large trees).
    fn describe(&self, entries: &[Entry], known: Option<&layer::Hashes>) -> Result<Digest, ImageError> {
        let known = known.map(|k| k.lock().expect("hashes"));
        let lines: Vec<String> = entries
            .par_iter()
            .map(|e| -> Result<String, ImageError> {
                let (size, sha, link, target) = match &e.kind {
                    Kind::File { src, size, stat } => {
                        let meta = match stat {
                            Some(m) => m.clone(),
                            None => Arc::new(fs::metadata(src).map_err(|err| input_err(src, err))?),
                        };
                        let hash = match known.as_ref().and_then(|k| k.get(src)) {
                            Some(h) => {
                                self.cache.remember(src, &meta, h);
                                *h
                            }
                            None => self.cache.file_hash(src, &meta)?,
                        };
                        (*size, Some(hash), hardlink_id(&meta), None)
                    }
                    Kind::Symlink(t) | Kind::Hardlink(t) => (0, None, None, Some(t.as_str())),
                    _ => (0, None, None, None),
                };
                Ok(serde_json::to_string(&(&e.path, e.type_name(), e.mode, e.uid, e.gid, e.mtime, size, sha, link, target))
                    .expect("tuples serialize"))
            })
            .collect::<Result<_, _>>()?;
        let mut sha = <sha2::Sha256 as sha2::Digest>::new();
        for l in &lines {
            sha2::Digest::update(&mut sha, l.as_bytes());
            sha2::Digest::update(&mut sha, b"\n");
        }
        Ok(Digest::from_sha256(sha2::Digest::finalize(sha).into()))
    }

    /// A hash of every file of the project directory (but `.git`), for RUN steps, which see it.
    pub(super) fn project_tree_hash(&self) -> Result<Digest, ImageError> {
        let files = walk_tree(&self.settings.project_dir)?;
        let fingerprint = cache::tree_fingerprint(files.iter().map(|f| (f.rel.as_str(), &f.meta)));
        if let Some(hash) = fingerprint.as_ref().and_then(|f| self.cache.tree_key(f)) {
            return Ok(hash);
        }
        let described: Vec<Value> = files
            .par_iter()
            .map(|Found { rel, path, meta }| -> Result<Value, ImageError> {
                let ft = meta.file_type();
                let content = if ft.is_file() {
                    json!(self.cache.file_hash(path, meta)?)
                } else if ft.is_symlink() {
                    json!(fs::read_link(path).map_err(|e| input_err(path, e))?.to_string_lossy())
                } else {
                    Value::Null
                };
                Ok(json!([rel, meta.mode(), content]))
            })
            .collect::<Result<_, _>>()?;
        let hash = cache::input_key(&json!(described));
        if let Some(f) = &fingerprint {
            self.cache.put_tree_key(f, &hash);
        }
        Ok(hash)
    }
}

/// Hard links are identified by (device, inode) when a file has more than one link.
fn hardlink_id(meta: &fs::Metadata) -> Option<String> {
    (meta.nlink() > 1).then(|| format!("{}:{}", meta.dev(), meta.ino()))
}
