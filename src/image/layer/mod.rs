//! galley's own deterministic layer writer.
//!
//! A layer is a list of [`Entry`]s, sorted by path component by component, written as a GNU tar
//! stream whose headers carry only what galley decides: declared owner, kept or declared mode,
//! mtime clamped to `SOURCE_DATE_EPOCH`, no atime/ctime, no user or group names. The stream is
//! cut into fixed 1 MiB chunks that are compressed independently on the rayon pool and
//! concatenated in order:
//!
//! - gzip: one gzip member (header with no name, no time, OS 255) whose deflate body is every
//!   chunk's raw deflate stream ended by a sync flush, then an empty final block, then CRC-32 and
//!   size. zlib-rs at level 6.
//! - zstd: one zstd frame per chunk, level 3, no checksum.
//!
//! Chunks never share a dictionary, so the bytes depend only on the input, not on how many
//! threads compressed them or in which order they finished.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;

use sha2::{Digest as _, Sha256};

use crate::domain::Digest;
use crate::model::Compression;
use compress::ChunkSink;
pub use compress::{GZIP_HEADER, compress_chunk};

mod compress;

/// Uncompressed bytes per independently compressed chunk. Part of the format: changing it
/// changes every digest.
pub const CHUNK: usize = 1 << 20;
pub(super) const IN_FLIGHT: usize = 8;
pub const GZIP_LEVEL: u32 = 6;
pub const ZSTD_LEVEL: i32 = 3;

pub const MEDIA_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
pub const MEDIA_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const MEDIA_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";

pub fn media_type(c: Compression) -> &'static str {
    match c {
        Compression::Gzip => MEDIA_GZIP,
        Compression::Zstd => MEDIA_ZSTD,
    }
}

/// Where an entry's bytes come from.
#[derive(Debug, Clone)]
pub enum Kind {
    Dir,
    /// A regular file read from the host when the layer is written. `stat` is the metadata the
    /// walk saw (for the hash cache and hard links).
    File { src: PathBuf, size: u64, stat: Option<Arc<std::fs::Metadata>> },
    /// A regular file whose bytes galley made (accounts, whiteouts).
    Data(Arc<Vec<u8>>),
    /// A regular file whose bytes sit at `offset` in a spill file (re-packed RUN output).
    Spilled { file: Arc<File>, offset: u64, size: u64 },
    Symlink(String),
    /// A hard link to an earlier entry of the same layer (its path).
    Hardlink(String),
}

/// One tar entry. `path` is relative (`etc/passwd`), without leading or trailing slash.
#[derive(Debug, Clone)]
pub struct Entry {
    pub path: String,
    pub kind: Kind,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: u64,
}

impl Entry {
    pub fn size(&self) -> u64 {
        match &self.kind {
            Kind::File { size, .. } | Kind::Spilled { size, .. } => *size,
            Kind::Data(d) => d.len() as u64,
            _ => 0,
        }
    }

    pub fn type_name(&self) -> &'static str {
        match self.kind {
            Kind::Dir => "dir",
            Kind::File { .. } | Kind::Data(_) | Kind::Spilled { .. } => "file",
            Kind::Symlink(_) => "symlink",
            Kind::Hardlink(_) => "hardlink",
        }
    }
}

/// Path order: component by component, so `a/b` sorts before `a.txt` and a directory comes
/// right before its contents.
pub fn path_cmp(a: &str, b: &str) -> Ordering {
    let key = |c: u8| if c == b'/' { 0u8 } else { c };
    a.bytes().map(key).cmp(b.bytes().map(key))
}

/// Sort entries, keep the last of duplicate paths, and add missing parent directories
/// (root-owned, 0755).
pub fn normalize(entries: Vec<Entry>, mtime: u64) -> Vec<Entry> {
    normalize_with(entries, mtime, true)
}

/// As [`normalize`]; parents are only added when `add_parents`.
pub fn normalize_with(entries: Vec<Entry>, mtime: u64, add_parents: bool) -> Vec<Entry> {
    let mut by_path: BTreeMap<SortKey, Entry> = BTreeMap::new();
    for e in entries {
        by_path.insert(SortKey(e.path.clone()), e);
    }
    let mut parents = Vec::new();
    for path in by_path.keys() {
        let mut p = path.0.as_str();
        while let Some((parent, _)) = p.rsplit_once('/') {
            parents.push(parent.to_owned());
            p = parent;
        }
    }
    for p in parents.into_iter().filter(|_| add_parents) {
        by_path.entry(SortKey(p.clone())).or_insert(Entry { path: p, kind: Kind::Dir, mode: 0o755, uid: 0, gid: 0, mtime });
    }
    by_path.into_values().collect()
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct SortKey(String);
impl Ord for SortKey {
    fn cmp(&self, other: &Self) -> Ordering {
        path_cmp(&self.0, &other.0)
    }
}
impl PartialOrd for SortKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The written blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// sha256 of the compressed bytes.
    pub digest: Digest,
    /// sha256 of the uncompressed tar.
    pub diff_id: Digest,
    pub size: u64,
}

/// sha256 of host files' contents by source path, taken while a layer is written.
pub type Hashes = std::sync::Mutex<std::collections::HashMap<PathBuf, Digest>>;

/// How a layer is written, besides its entries: where it compresses and what it records.
#[derive(Default)]
pub struct WriteOptions<'a> {
    /// Compress on this pool instead of rayon's global one. `write` must not be called from a
    /// thread of the pool that compresses.
    pub pool: Option<Arc<rayon::ThreadPool>>,
    /// Record the content hash of every host file here.
    pub hashes: Option<&'a Hashes>,
}

/// The most bytes [`write`] can produce for `entries`: the tar (headers, long-name records and
/// data in 512-byte blocks, the end-of-archive blocks) plus what compression can add to data
/// that does not compress (stored deflate blocks: well under 1%).
pub fn size_bound(entries: &[Entry]) -> u64 {
    let block = |n: u64| n.div_ceil(512) * 512;
    let tar: u64 = entries.iter().map(|e| 3 * 512 + 2 * block(e.path.len() as u64 + 1) + block(e.size())).sum::<u64>() + 1024;
    tar + tar / 100 + 4096
}

/// Write `entries` (already normalized) as a compressed tar to `out`: the one way a layer is
/// written.
pub fn write(entries: &[Entry], compression: Compression, out: File, opts: WriteOptions<'_>) -> io::Result<Written> {
    let mut sink = ChunkSink::new(compression, out);
    sink.pool = opts.pool;
    let mut ar = tar::Builder::new(sink);
    for e in entries {
        append(&mut ar, e, opts.hashes)?;
    }
    ar.finish()?;
    let sink = ar.into_inner()?;
    sink.finish()
}

fn append<W: Write>(ar: &mut tar::Builder<W>, e: &Entry, hashes: Option<&Hashes>) -> io::Result<()> {
    let mut h = tar::Header::new_gnu();
    h.set_mode(e.mode & 0o7777);
    h.set_uid(e.uid as u64);
    h.set_gid(e.gid as u64);
    h.set_mtime(e.mtime);
    let ctx = |err: io::Error| io::Error::new(err.kind(), format!("{}: {err}", e.path));
    match &e.kind {
        Kind::Dir => {
            h.set_entry_type(tar::EntryType::Directory);
            h.set_size(0);
            if e.path == "." {
                // The tar crate drops `.` components from paths; write the name by hand.
                h.as_old_mut().name[..2].copy_from_slice(b"./");
                h.set_cksum();
                return ar.append(&h, io::empty()).map_err(ctx);
            }
            ar.append_data(&mut h, format!("{}/", e.path), io::empty()).map_err(ctx)
        }
        Kind::File { src, size, .. } => {
            h.set_entry_type(tar::EntryType::Regular);
            h.set_size(*size);
            let f = File::open(src).map_err(|err| io::Error::new(err.kind(), format!("{}: {err}", src.display())))?;
            let mut r = ExactReader { inner: f, left: *size, path: src.display().to_string(), sha: hashes.map(|_| Sha256::new()) };
            ar.append_data(&mut h, &e.path, &mut r).map_err(ctx)?;
            let sha = r.finish()?;
            if let (Some(map), Some(sha)) = (hashes, sha) {
                map.lock().expect("hashes").insert(src.clone(), Digest::from_sha256(sha.finalize().into()));
            }
            Ok(())
        }
        Kind::Data(d) => {
            h.set_entry_type(tar::EntryType::Regular);
            h.set_size(d.len() as u64);
            ar.append_data(&mut h, &e.path, d.as_slice()).map_err(ctx)
        }
        Kind::Spilled { file, offset, size } => {
            h.set_entry_type(tar::EntryType::Regular);
            h.set_size(*size);
            let r = SpillReader { file: file.clone(), pos: *offset, end: offset + size };
            ar.append_data(&mut h, &e.path, r).map_err(ctx)
        }
        Kind::Symlink(target) => {
            h.set_entry_type(tar::EntryType::Symlink);
            h.set_size(0);
            ar.append_link(&mut h, &e.path, target).map_err(ctx)
        }
        Kind::Hardlink(target) => {
            h.set_entry_type(tar::EntryType::Link);
            h.set_size(0);
            ar.append_link(&mut h, &e.path, target).map_err(ctx)
        }
    }
}

/// Reads exactly the size recorded at walk time; a file that changed size meanwhile is an error
/// instead of a corrupt archive.
struct ExactReader {
    inner: File,
    left: u64,
    path: String,
    sha: Option<Sha256>,
}

impl Read for ExactReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let n = buf.len().min(self.left as usize);
        let got = self.inner.read(&mut buf[..n])?;
        if got == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, format!("{} shrank while it was being read", self.path)));
        }
        self.left -= got as u64;
        if let Some(sha) = &mut self.sha {
            sha.update(&buf[..got]);
        }
        Ok(got)
    }
}

impl ExactReader {
    fn finish(mut self) -> io::Result<Option<Sha256>> {
        let mut one = [0u8; 1];
        if self.inner.read(&mut one)? != 0 {
            return Err(io::Error::other(format!("{} grew while it was being read", self.path)));
        }
        Ok(self.sha)
    }
}

struct SpillReader {
    file: Arc<File>,
    pos: u64,
    end: u64,
}

impl Read for SpillReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min((self.end - self.pos) as usize);
        if n == 0 {
            return Ok(0);
        }
        let got = self.file.read_at(&mut buf[..n], self.pos)?;
        if got == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "spill file is short"));
        }
        self.pos += got as u64;
        Ok(got)
    }
}

/// A reader that decompresses a layer blob of `media_type`.
pub fn decompressing_reader<'a>(media_type: &str, r: impl Read + 'a) -> io::Result<Box<dyn Read + 'a>> {
    let base = media_type.trim_start_matches("application/vnd.docker.image.rootfs.diff.");
    Ok(if media_type.ends_with("gzip") || base == "tar.gzip" {
        Box::new(flate2::read::MultiGzDecoder::new(io::BufReader::new(r)))
    } else if media_type.ends_with("zstd") {
        Box::new(zstd::stream::read::Decoder::new(r)?)
    } else if media_type.ends_with(".tar") || media_type.ends_with("tar") {
        Box::new(r)
    } else {
        return Err(io::Error::other(format!("unsupported layer media type {media_type}")));
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `entries` as an uncompressed tar in memory: what the compressed layer must decompress to.
    fn write_tar(entries: &[Entry]) -> io::Result<Vec<u8>> {
        let mut ar = tar::Builder::new(Vec::new());
        for e in entries {
            append(&mut ar, e, None)?;
        }
        ar.into_inner()
    }

    fn data(path: &str, bytes: &[u8]) -> Entry {
        Entry { path: path.into(), kind: Kind::Data(Arc::new(bytes.to_vec())), mode: 0o644, uid: 0, gid: 0, mtime: 0 }
    }

    #[test]
    fn paths_sort_component_by_component() {
        let mut v = vec!["a.txt", "a/b", "a", "a-b", "a/b/c"];
        v.sort_by(|a, b| path_cmp(a, b));
        assert_eq!(v, vec!["a", "a/b", "a/b/c", "a-b", "a.txt"]);
    }

    #[test]
    fn normalize_adds_parents_and_sorts() {
        let e = normalize(vec![data("srv/www/index.html", b"x"), data("etc/passwd", b"y")], 0);
        let paths: Vec<_> = e.iter().map(|e| (e.path.as_str(), e.type_name())).collect();
        assert_eq!(paths, vec![("etc", "dir"), ("etc/passwd", "file"), ("srv", "dir"), ("srv/www", "dir"), ("srv/www/index.html", "file")]);
    }

    fn roundtrip(c: Compression, entries: &[Entry]) -> (Written, Vec<u8>) {
        roundtrip_on(c, entries, None)
    }

    fn roundtrip_on(c: Compression, entries: &[Entry], pool: Option<Arc<rayon::ThreadPool>>) -> (Written, Vec<u8>) {
        let tmp = tempfile::tempfile().unwrap();
        let w = write(entries, c, tmp.try_clone().unwrap(), WriteOptions { pool, hashes: None }).unwrap();
        let mut bytes = Vec::new();
        let mut f = tmp;
        std::io::Seek::seek(&mut f, std::io::SeekFrom::Start(0)).unwrap();
        f.read_to_end(&mut bytes).unwrap();
        (w, bytes)
    }

    #[test]
    fn the_size_bound_holds_for_data_that_does_not_compress() {
        let mut noise = Vec::new();
        let mut x: u64 = 7;
        for _ in 0..(2 * CHUNK + 4321) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            noise.push(x as u8);
        }
        let long = format!("{}/file", "d".repeat(300));
        let entries = normalize(vec![data(&long, &noise), data("small", b"x"), data("empty", b"")], 0);
        for c in [Compression::Gzip, Compression::Zstd] {
            let (w, bytes) = roundtrip(c, &entries);
            let bound = size_bound(&entries);
            assert!(w.size <= bound && bytes.len() as u64 == w.size, "{c:?}: {} bytes written, bound {bound}", w.size);
            assert!(bound < noise.len() as u64 * 11 / 10, "the bound stays close: {bound} for {} bytes", noise.len());
        }
    }

    #[test]
    fn chunked_gzip_is_valid_and_matches_the_plain_tar() {
        // Several chunks, some compressible, some not.
        let mut big = Vec::new();
        let mut x: u32 = 1;
        for i in 0..(3 * CHUNK + 123) {
            x = x.wrapping_mul(1103515245).wrapping_add(12345);
            big.push(if i % 3 == 0 { (x >> 16) as u8 } else { b'a' });
        }
        let entries = normalize(vec![data("big", &big), data("small", b"hello")], 0);
        for c in [Compression::Gzip, Compression::Zstd] {
            let (w, bytes) = roundtrip(c, &entries);
            assert_eq!(w.size, bytes.len() as u64);
            assert_eq!(w.digest.to_string(), format!("sha256:{}", hex::encode(Sha256::digest(&bytes))));
            let mut plain = Vec::new();
            decompressing_reader(media_type(c), bytes.as_slice()).unwrap().read_to_end(&mut plain).unwrap();
            assert_eq!(plain, write_tar(&entries).unwrap());
            assert_eq!(w.diff_id.to_string(), format!("sha256:{}", hex::encode(Sha256::digest(&plain))));
            if c == Compression::Gzip {
                // A single member that the strict single-member decoder reads to the end.
                let mut single = Vec::new();
                flate2::read::GzDecoder::new(bytes.as_slice()).read_to_end(&mut single).unwrap();
                assert_eq!(single, plain);
            }
            // Same bytes again, whatever the pool did.
            assert_eq!(roundtrip(c, &entries).0, w);
        }
    }

    #[test]
    fn output_does_not_depend_on_thread_count() {
        let big: Vec<u8> = (0..(2 * CHUNK + 7)).map(|i| (i * 7 % 251) as u8).collect();
        let entries = normalize(vec![data("big", &big)], 0);
        let one = Arc::new(rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap());
        let four = Arc::new(rayon::ThreadPoolBuilder::new().num_threads(4).build().unwrap());
        for c in [Compression::Gzip, Compression::Zstd] {
            let a = roundtrip_on(c, &entries, Some(one.clone())).0;
            let b = roundtrip_on(c, &entries, Some(four.clone())).0;
            assert_eq!(a, b);
        }
    }
}
