//! `galley build --check-repro`: compare two builds of the same images from scratch and name
//! what differs, image by image, layer by layer, path by path.

use std::collections::BTreeMap;
use std::io::Read;

use super::{BuiltImage, LayerRecord, Store, layer};
use crate::domain::Digest;

/// How one path differs between the two builds of a layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Only the first build has it.
    Removed,
    /// Only the second build has it.
    Added,
    /// Its tar header (mode, owner, times, size, link) differs.
    Header,
    /// Same header, other bytes.
    Content,
}

/// What differs in one place of an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Difference {
    /// A path of the layer made by `step`; `path` is `None` when every file is the same and the
    /// layer's encoding (order, compression) is not.
    Layer { step: String, path: Option<String>, change: Option<Change> },
    /// The image config.
    Config,
}

/// One image built twice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repro {
    pub image: String,
    /// The manifest digests of the two builds.
    pub digests: [Digest; 2],
    pub differences: Vec<Difference>,
}

impl Repro {
    pub fn reproducible(&self) -> bool {
        self.digests[0] == self.digests[1]
    }
}

/// Compare two builds of the same images, each in its own store.
pub fn compare(stores: [&Store; 2], builds: [&BTreeMap<String, BuiltImage>; 2]) -> Vec<Repro> {
    let mut out = Vec::new();
    for (name, ia) in builds[0] {
        let Some(ib) = builds[1].get(name) else { continue };
        let mut differences = Vec::new();
        if ia.manifest_digest != ib.manifest_digest {
            for (la, lb) in ia.layers.iter().zip(&ib.layers) {
                if la.digest == lb.digest {
                    continue;
                }
                for (path, change) in differing_files(stores[0], la, stores[1], lb) {
                    differences.push(Difference::Layer { step: la.step.clone(), path, change });
                }
            }
            if ia.config_digest != ib.config_digest {
                differences.push(Difference::Config);
            }
        }
        out.push(Repro { image: name.clone(), digests: [ia.manifest_digest, ib.manifest_digest], differences });
    }
    out
}

/// Each path's header and content digests in a layer (empty when the layer cannot be read).
fn summarize(store: &Store, l: &LayerRecord) -> BTreeMap<String, (Digest, Digest)> {
    let mut out = BTreeMap::new();
    let Ok(f) = store.open_blob(&l.digest) else { return out };
    let Ok(r) = layer::decompressing_reader(&l.media_type, f) else { return out };
    let mut ar = tar::Archive::new(r);
    let Ok(entries) = ar.entries() else { return out };
    for mut e in entries.flatten() {
        let path = e.path().map(|p| p.to_string_lossy().into_owned()).unwrap_or_default();
        let header = Digest::of(e.header().as_bytes());
        let mut data = Vec::new();
        let _ = e.read_to_end(&mut data);
        out.insert(path, (header, Digest::of(&data)));
    }
    out
}

/// Paths whose header or content differ between two layers, in path order; one `None` path when
/// the files are the same and the bytes are not.
fn differing_files(sa: &Store, la: &LayerRecord, sb: &Store, lb: &LayerRecord) -> Vec<(Option<String>, Option<Change>)> {
    let (ma, mb) = (summarize(sa, la), summarize(sb, lb));
    let mut paths: Vec<&String> = ma.keys().chain(mb.keys()).filter(|p| ma.get(*p) != mb.get(*p)).collect();
    paths.sort();
    paths.dedup();
    if paths.is_empty() {
        return vec![(None, None)];
    }
    paths
        .into_iter()
        .map(|p| {
            let change = match (ma.get(p), mb.get(p)) {
                (Some(_), None) => Change::Removed,
                (None, Some(_)) => Change::Added,
                (Some((ha, _)), Some((hb, _))) if ha != hb => Change::Header,
                _ => Change::Content,
            };
            (Some(p.clone()), Some(change))
        })
        .collect()
}
