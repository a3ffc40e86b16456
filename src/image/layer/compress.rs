//! The compressing half of the layer writer: the tar stream cut into fixed chunks, each
//! compressed on the rayon pool and written in order, with both sides hashed.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Write};
use std::sync::Arc;
use std::sync::mpsc;

use sha2::{Digest as _, Sha256};

use super::{CHUNK, GZIP_LEVEL, IN_FLIGHT, Written, ZSTD_LEVEL};
use crate::domain::Digest;
use crate::model::Compression;

/// Compress one chunk. gzip chunks are raw deflate ended by a sync flush (never final).
pub fn compress_chunk(compression: Compression, chunk: &[u8]) -> Vec<u8> {
    match compression {
        Compression::Gzip => deflate(chunk, flate2::FlushCompress::Sync),
        Compression::Zstd => zstd::bulk::compress(chunk, ZSTD_LEVEL).expect("zstd compresses memory"),
    }
}

fn deflate(input: &[u8], flush: flate2::FlushCompress) -> Vec<u8> {
    let mut c = flate2::Compress::new(flate2::Compression::new(GZIP_LEVEL), false);
    let mut out = Vec::with_capacity(input.len() + input.len() / 8 + 64);
    loop {
        let consumed = c.total_in() as usize;
        let status = c.compress_vec(&input[consumed..], &mut out, flush).expect("deflate of memory cannot fail");
        let done = c.total_in() as usize == input.len() && out.len() < out.capacity();
        if done || status == flate2::Status::StreamEnd {
            break;
        }
        out.reserve(out.capacity().max(4096));
    }
    out
}

/// The end of a gzip member: an empty final deflate block, CRC-32, size mod 2^32.
fn gzip_trailer(crc: u32, size: u64) -> Vec<u8> {
    let mut t = deflate(&[], flate2::FlushCompress::Finish);
    t.extend_from_slice(&crc.to_le_bytes());
    t.extend_from_slice(&(size as u32).to_le_bytes());
    t
}

/// One compressed chunk on its way to the writer, with the CRC-32 of its uncompressed bytes
/// (computed beside the compression and combined in order by the writer).
struct Compressed {
    bytes: Vec<u8>,
    crc: crc32fast::Hasher,
    len: u64,
}

/// What the writer thread receives.
enum ToWriter {
    /// Chunk number `seq`.
    Chunk(u64, Compressed),
    /// Every chunk was sent: this many.
    End(u64),
}

/// gzip header: deflate, no flags, mtime 0, no extra flags, OS unknown.
pub const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];

/// A `Write` that cuts its input into chunks, compresses them in parallel and writes them in
/// order to a file, hashing both sides.
pub(super) struct ChunkSink {
    compression: Compression,
    buf: Vec<u8>,
    seq: u64,
    diff: Sha256,
    tokens: mpsc::Receiver<()>,
    results: Option<mpsc::Sender<ToWriter>>,
    writer: Option<std::thread::JoinHandle<io::Result<(Digest, u64)>>>,
    pub(super) pool: Option<Arc<rayon::ThreadPool>>,
}

impl ChunkSink {
    pub(super) fn new(compression: Compression, out: File) -> ChunkSink {
        let (tok_tx, tok_rx) = mpsc::sync_channel::<()>(IN_FLIGHT);
        for _ in 0..IN_FLIGHT {
            tok_tx.send(()).expect("channel has room");
        }
        let (res_tx, res_rx) = mpsc::channel::<ToWriter>();
        let header: Vec<u8> = match compression {
            Compression::Gzip => GZIP_HEADER.to_vec(),
            Compression::Zstd => Vec::new(),
        };
        let writer = std::thread::spawn(move || -> io::Result<(Digest, u64)> {
            let mut out = io::BufWriter::with_capacity(1 << 20, out);
            let mut sha = Sha256::new();
            let mut size = 0u64;
            let mut put = |bytes: &[u8], out: &mut io::BufWriter<File>| -> io::Result<()> {
                sha.update(bytes);
                size += bytes.len() as u64;
                out.write_all(bytes)
            };
            put(&header, &mut out)?;
            let mut next = 0u64;
            let mut pending: BTreeMap<u64, Compressed> = BTreeMap::new();
            let mut failed = None;
            let mut crc = crc32fast::Hasher::new();
            let mut uncompressed = 0u64;
            let mut total = None;
            while let Ok(message) = res_rx.recv() {
                match message {
                    ToWriter::Chunk(seq, chunk) => {
                        pending.insert(seq, chunk);
                    }
                    ToWriter::End(count) => total = Some(count),
                }
                while let Some(chunk) = pending.remove(&next) {
                    if failed.is_none()
                        && let Err(e) = put(&chunk.bytes, &mut out) {
                            failed = Some(e);
                        }
                    crc.combine(&chunk.crc);
                    uncompressed += chunk.len;
                    next += 1;
                    let _ = tok_tx.send(());
                }
                if total == Some(next) {
                    break;
                }
            }
            if let Some(e) = failed {
                return Err(e);
            }
            if total != Some(next) {
                return Err(io::Error::other("layer stream ended early"));
            }
            if let Compression::Gzip = compression {
                put(&gzip_trailer(crc.finalize(), uncompressed), &mut out)?;
            }
            let file = out.into_inner().map_err(|e| e.into_error())?;
            file.sync_all()?;
            Ok((Digest::from_sha256(sha.finalize().into()), size))
        });
        ChunkSink {
            compression,
            buf: Vec::with_capacity(CHUNK),
            seq: 0,
            diff: Sha256::new(),
            tokens: tok_rx,
            results: Some(res_tx),
            writer: Some(writer),
            pool: None,
        }
    }

    fn submit(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        self.diff.update(&chunk);
        if self.tokens.recv().is_err() {
            return Err(self.writer_error());
        }
        let seq = self.seq;
        self.seq += 1;
        let tx = self.results.clone().expect("sink is open");
        let compression = self.compression;
        let job = move || {
            let bytes = compress_chunk(compression, &chunk);
            let mut crc = crc32fast::Hasher::new();
            if let Compression::Gzip = compression {
                crc.update(&chunk);
            }
            let _ = tx.send(ToWriter::Chunk(seq, Compressed { bytes, crc, len: chunk.len() as u64 }));
        };
        match &self.pool {
            Some(pool) => pool.spawn(job),
            None => rayon::spawn(job),
        }
        Ok(())
    }

    fn writer_error(&mut self) -> io::Error {
        match self.writer.take().map(|w| w.join()) {
            Some(Ok(Err(e))) => e,
            _ => io::Error::other("the layer writer stopped"),
        }
    }

    pub(super) fn finish(mut self) -> io::Result<Written> {
        self.submit()?;
        let tx = self.results.take().expect("sink is open");
        let _ = tx.send(ToWriter::End(self.seq));
        drop(tx);
        let (digest, size) = match self.writer.take().expect("writer runs").join() {
            Ok(r) => r?,
            Err(_) => return Err(io::Error::other("the layer writer panicked")),
        };
        let diff_id = Digest::from_sha256(std::mem::take(&mut self.diff).finalize().into());
        Ok(Written { digest, diff_id, size })
    }
}

impl Write for ChunkSink {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let room = CHUNK - self.buf.len();
        let n = room.min(data.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == CHUNK {
            self.submit()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

