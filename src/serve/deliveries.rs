//! The delivery ids already accepted (`X-GitHub-Delivery`), so a replayed delivery is dropped:
//! an append-only file under `GALLEY_HOME/serve/`, fsynced before the delivery is acknowledged,
//! holding the newest [`KEEP`] ids (rewritten atomically when it has grown to twice that).
//! Only deliveries whose signature verified are remembered, so unsigned traffic cannot fill it.

use std::collections::{HashSet, VecDeque};
use std::io::Write;
use std::path::{Path, PathBuf};

/// How many delivery ids are remembered.
pub const KEEP: usize = 10_000;
/// The longest delivery id accepted (GitHub's are 36-character UUIDs).
pub const MAX_ID: usize = 128;

pub struct Deliveries {
    path: PathBuf,
    keep: usize,
    order: VecDeque<String>,
    seen: HashSet<String>,
    file: std::fs::File,
    lines: usize,
}

/// Whether `id` can be a delivery id: printable ASCII without spaces, bounded.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_ID && id.bytes().all(|b| b.is_ascii_graphic())
}

impl Deliveries {
    pub fn open(path: &Path) -> std::io::Result<Deliveries> {
        Deliveries::open_keeping(path, KEEP)
    }

    /// As [`Deliveries::open`], remembering the newest `keep` ids.
    pub fn open_keeping(path: &Path, keep: usize) -> std::io::Result<Deliveries> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(crate::fsutil::with_path(e, path)),
        };
        let mut d = Deliveries {
            path: path.to_path_buf(),
            keep,
            order: VecDeque::new(),
            seen: HashSet::new(),
            file: open_append(path)?,
            lines: 0,
        };
        // A torn last line (a crash mid-append) is not an id anyone was answered for.
        let complete = if text.ends_with('\n') {
            &text[..]
        } else {
            text.rsplit_once('\n').map_or("", |(a, _)| a)
        };
        for id in complete.lines().filter(|l| valid_id(l)) {
            d.remember(id.to_owned());
            d.lines += 1;
        }
        Ok(d)
    }

    fn remember(&mut self, id: String) {
        if self.seen.insert(id.clone()) {
            self.order.push_back(id);
        }
        while self.order.len() > self.keep {
            if let Some(old) = self.order.pop_front() {
                self.seen.remove(&old);
            }
        }
    }

    /// Record `id`; `false` when it was seen before (a replay). Durable when it returns `true`.
    pub fn insert(&mut self, id: &str) -> std::io::Result<bool> {
        if self.seen.contains(id) {
            return Ok(false);
        }
        self.file
            .write_all(format!("{id}\n").as_bytes())
            .map_err(|e| crate::fsutil::with_path(e, &self.path))?;
        self.file
            .sync_data()
            .map_err(|e| crate::fsutil::with_path(e, &self.path))?;
        self.remember(id.to_owned());
        self.lines += 1;
        if self.lines > 2 * self.keep {
            let text: String = self.order.iter().map(|i| format!("{i}\n")).collect();
            crate::fsutil::write_atomic(&self.path, text.as_bytes())?;
            self.file = open_append(&self.path)?;
            self.lines = self.order.len();
        }
        Ok(true)
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

fn open_append(path: &Path) -> std::io::Result<std::fs::File> {
    if let Some(dir) = path.parent() {
        fs_err::create_dir_all(dir)?;
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| crate::fsutil::with_path(e, path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replayed_delivery_is_refused_after_a_restart_and_the_set_stays_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("deliveries");
        let keep = 50;
        let mut d = Deliveries::open_keeping(&path, keep).unwrap();
        assert!(d.insert("a").unwrap());
        assert!(!d.insert("a").unwrap());
        drop(d);
        let mut d = Deliveries::open_keeping(&path, keep).unwrap();
        assert!(!d.insert("a").unwrap(), "remembered across a restart");
        for i in 0..(2 * keep + 5) {
            d.insert(&format!("id-{i}")).unwrap();
        }
        assert_eq!(d.len(), keep);
        let lines = std::fs::read_to_string(&path).unwrap().lines().count();
        assert!(lines <= 2 * keep, "the file is compacted: {lines} lines");
        assert!(d.insert("a").unwrap(), "the oldest ids are forgotten");
        std::fs::write(&path, "x\ny").unwrap();
        let d = Deliveries::open(&path).unwrap();
        assert_eq!(d.len(), 1, "a torn last line is not an id");
    }
}
