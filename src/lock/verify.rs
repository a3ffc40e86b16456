//! `--locked`: refuse a stale lock, and prove a build reproduced exactly what the lock promises.

use std::collections::BTreeMap;

use super::{Lock, complete, diff};
use crate::image::BuiltImage;

/// Why a lock cannot be used as it is, as `path: old -> new` lines (empty when current).
pub fn staleness(old: &Lock, desired: &Lock) -> Vec<String> {
    let (mut changes, _) = diff(Some(old), desired);
    if changes.is_empty() && !complete(old) {
        changes.push("some images were never built for this lock (output: null)".to_owned());
    }
    changes
}

/// Every difference between what was built and what the lock records, one line each:
/// `not reproducible: layer N of image X differs (locked ..., built ...)`.
pub fn compare(lock: &Lock, built: &BTreeMap<String, BuiltImage>) -> Vec<String> {
    let mut out = Vec::new();
    for (name, image) in built {
        let Some(locked) = lock.images.get(name).and_then(|i| i.output.as_ref()) else {
            out.push(format!("image {name} is not in galley.lock"));
            continue;
        };
        let n = locked.layers.len().max(image.layers.len());
        for i in 0..n {
            match (locked.layers.get(i), image.layers.get(i)) {
                (Some(l), Some(b)) if l.digest == b.digest => {}
                (Some(l), Some(b)) => out.push(format!(
                    "not reproducible: layer {} of image {name} differs (locked {}, built {})",
                    i + 1,
                    l.digest,
                    b.digest
                )),
                (Some(l), None) => out.push(format!("not reproducible: layer {} of image {name} is missing (locked {})", i + 1, l.digest)),
                (None, Some(b)) => out.push(format!("not reproducible: layer {} of image {name} is extra (built {})", i + 1, b.digest)),
                (None, None) => {}
            }
        }
        if locked.config != image.config_digest {
            out.push(format!(
                "not reproducible: config of image {name} differs (locked {}, built {})",
                locked.config, image.config_digest
            ));
        }
        if locked.manifest != image.manifest_digest {
            out.push(format!(
                "not reproducible: image {name} differs (locked {}, built {})",
                locked.manifest, image.manifest_digest
            ));
        }
    }
    out
}
