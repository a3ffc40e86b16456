//! `--locked`: refuse a stale lock, and prove a build reproduced exactly what the lock promises.

use std::collections::BTreeMap;
use std::fmt;

use super::{Lock, complete, diff};
use crate::domain::Digest;
use crate::image::BuiltImage;

/// Why a lock cannot be used as it is, as `path: old -> new` lines (empty when current).
pub fn staleness(old: &Lock, desired: &Lock) -> Vec<String> {
    let (mut changes, _) = diff(Some(old), desired);
    if changes.is_empty() && !complete(old) {
        changes.push("some images were never built for this lock (output: null)".to_owned());
    }
    changes
}

/// One way a build differs from what the lock records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mismatch {
    /// The lock has no output for the image.
    NotLocked { image: String },
    /// Layer `index` (from 0) of galley's layers.
    Layer { image: String, index: usize, locked: Option<Digest>, built: Option<Digest> },
    Config { image: String, locked: Digest, built: Digest },
    Manifest { image: String, locked: Digest, built: Digest },
}

/// `not reproducible: layer N of image X differs (locked ..., built ...)`, one line each.
impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mismatch::NotLocked { image } => write!(f, "image {image} is not in galley.lock"),
            Mismatch::Layer { image, index, locked, built } => {
                let n = index + 1;
                match (locked, built) {
                    (Some(l), Some(b)) => write!(f, "not reproducible: layer {n} of image {image} differs (locked {l}, built {b})"),
                    (Some(l), None) => write!(f, "not reproducible: layer {n} of image {image} is missing (locked {l})"),
                    (None, Some(b)) => write!(f, "not reproducible: layer {n} of image {image} is extra (built {b})"),
                    (None, None) => write!(f, "layer {n} of image {image}"),
                }
            }
            Mismatch::Config { image, locked, built } => {
                write!(f, "not reproducible: config of image {image} differs (locked {locked}, built {built})")
            }
            Mismatch::Manifest { image, locked, built } => {
                write!(f, "not reproducible: image {image} differs (locked {locked}, built {built})")
            }
        }
    }
}

/// Every difference between what was built and what the lock records.
pub fn compare(lock: &Lock, built: &BTreeMap<String, BuiltImage>) -> Vec<Mismatch> {
    let mut out = Vec::new();
    for (name, image) in built {
        let Some(locked) = lock.images.get(name).and_then(|i| i.output.as_ref()) else {
            out.push(Mismatch::NotLocked { image: name.clone() });
            continue;
        };
        let n = locked.layers.len().max(image.layers.len());
        for index in 0..n {
            let l = locked.layers.get(index).map(|l| l.digest);
            let b = image.layers.get(index).map(|b| b.digest);
            if l != b {
                out.push(Mismatch::Layer { image: name.clone(), index, locked: l, built: b });
            }
        }
        if locked.config != image.config_digest {
            out.push(Mismatch::Config { image: name.clone(), locked: locked.config, built: image.config_digest });
        }
        if locked.manifest != image.manifest_digest {
            out.push(Mismatch::Manifest { image: name.clone(), locked: locked.manifest, built: image.manifest_digest });
        }
    }
    out
}
