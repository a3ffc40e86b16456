//! Fetching from a Debian archive and resolving an image's `packages`: the Release through the
//! SSRF guard within [`MAX_RELEASE`], its signature checked against the project's keyring, each
//! Packages index checked against the Release's size and SHA-256, the closure resolved by
//! `debian::resolve`; and each pinned `.deb` streamed into the store, hashed on the way, so a
//! package that does not match its pin never enters it.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};

use futures_util::StreamExt;
use sha2::{Digest as _, Sha256};

use super::guard::{Cut, Pace, Policy, Proxy, receive};
use super::store::Store;
use crate::debian::release::{self, Keyring, Release, SignatureError};
use crate::debian::resolve::{Resolver, Unsatisfiable};
use crate::debian::{Pinned, index};
use crate::domain::{ArchiveUrl, Digest};
use crate::model::{DebianSource, Image, Project};

/// Largest `InRelease`, `Release` or `Release.gpg` read (Debian's InRelease is about 150 KiB).
pub const MAX_RELEASE: u64 = 8 << 20;
/// Largest Packages index, compressed or not, read or decompressed (bookworm's main/amd64 is
/// about 45 MiB uncompressed).
pub const MAX_INDEX: u64 = 512 << 20;
/// Largest `.deb` fetched.
pub const MAX_DEB: u64 = 4 << 30;
/// `.deb` downloads in flight at once.
const PARALLEL: usize = 4;

#[derive(Debug, thiserror::Error)]
pub enum AptError {
    #[error("image `{image}`: keyring `{path}`: {message}")]
    Keyring { image: String, path: String, message: String },
    #[error("GET {url}: {message}")]
    Fetch { url: String, message: String },
    #[error("GET {url}: more than the {limit} bytes allowed")]
    TooLarge { url: String, limit: u64 },
    #[error("{url} is refused: {source}")]
    Signature { url: String, source: SignatureError },
    #[error("{url}: {message}")]
    Release { url: String, message: String },
    #[error("{url} is refused: it is dated {seconds} seconds before the Release galley.lock was resolved from (a rollback to older metadata)")]
    Rollback { url: String, seconds: i64 },
    #[error("{url} is refused: its Valid-Until passed {seconds} seconds ago (a mirror may be freezing its clients on old metadata)")]
    Expired { url: String, seconds: i64 },
    #[error("{url} does not match the signed Release: {message}; it was refused")]
    IndexMismatch { url: String, message: String },
    #[error("image `{image}`: {source}")]
    Unsatisfiable { image: String, source: Unsatisfiable },
    #[error("package `{package}` from {url} does not match its pin: {message}; it was refused and nothing entered the store")]
    Package { package: String, url: String, message: String },
    #[error("image `{image}` declares `packages` but no `debian` source")]
    NoSource { image: String },
    #[error("{0}")]
    Other(String),
}

impl AptError {
    pub fn help(&self) -> Option<&'static str> {
        match self {
            AptError::Signature { .. } => Some("check that `debian.keyring` holds the archive's signing key (debian-archive-keyring.gpg for the Debian archive)"),
            AptError::IndexMismatch { .. } | AptError::Package { .. } => Some("the archive or something between it and galley changed the file; try again, or use another mirror"),
            AptError::Unsatisfiable { .. } => Some("check the package names in `packages`, the `debian.suite` and `debian.components`"),
            AptError::NoSource { .. } => Some("add `debian = { mirror, suite, keyring }` to the image"),
            AptError::Rollback { .. } => Some("use a mirror that is up to date; to go back on purpose, remove the image's `debian` entry from galley.lock and run `galley lock`"),
            AptError::Expired { .. } => Some("use an up-to-date mirror; for a snapshot, whose Release expires by design, set `debian.check_valid_until = false`"),
            _ => None,
        }
    }
}

/// The closure of an image's packages as the archive offered it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution {
    /// SHA-256 of the verified Release text the indices were checked against.
    pub release: Digest,
    /// The Release's `Date` (seconds since the epoch), when it has one.
    pub date: Option<i64>,
    pub packages: BTreeMap<String, Pinned>,
}

/// HTTP through the SSRF guard, with byte caps.
pub struct Http {
    rt: tokio::runtime::Runtime,
    client: reqwest::Client,
    _proxy: Proxy,
}

impl Http {
    /// A client for `mirror`: private and loopback addresses only when the project's
    /// `registries` entry for the mirror's host says `allow_private`.
    pub fn new(project: &Project) -> Result<Http, AptError> {
        let allow_private: BTreeSet<String> = project.registries.iter().filter(|(_, r)| r.allow_private).map(|(h, _)| h.clone()).collect();
        let proxy = Proxy::start(Policy { allow_private }).map_err(|e| AptError::Other(format!("cannot start the SSRF guard: {e}")))?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| AptError::Other(format!("cannot start the async runtime: {e}")))?;
        let client = reqwest::Client::builder()
            .proxy(reqwest::Proxy::all(proxy.url()).map_err(|e| AptError::Other(e.to_string()))?)
            .connect_timeout(std::time::Duration::from_secs(30))
            .read_timeout(std::time::Duration::from_secs(120))
            .build()
            .map_err(|e| AptError::Other(e.to_string()))?;
        Ok(Http { rt, client, _proxy: proxy })
    }

    /// The body of `url` within `limit` bytes; `None` when the server answers 404.
    pub fn get(&self, url: &str, limit: u64) -> Result<Option<Vec<u8>>, AptError> {
        self.rt.block_on(async {
            let fetch = |message: String| AptError::Fetch { url: url.to_owned(), message };
            let pace = Pace::start();
            let response = self.client.get(url).send().await.map_err(|e| fetch(error_chain(&e)))?;
            if response.status() == reqwest::StatusCode::NOT_FOUND {
                return Ok(None);
            }
            if !response.status().is_success() {
                return Err(fetch(response.status().to_string()));
            }
            if response.content_length().is_some_and(|l| l > limit) {
                return Err(AptError::TooLarge { url: url.to_owned(), limit });
            }
            let mut body = Vec::new();
            receive(response.bytes_stream(), limit, &pace, |chunk| {
                body.extend_from_slice(chunk);
                Ok(())
            })
            .await
            .map_err(|cut| match cut {
                Cut::Stream(e) => fetch(error_chain(&e)),
                Cut::TooLong(limit) => AptError::TooLarge { url: url.to_owned(), limit },
                Cut::Slow(message) => fetch(message),
                Cut::Sink(e) => fetch(e.to_string()),
            })?;
            Ok(Some(body))
        })
    }

    /// Stream each `(name, url, pin)` not yet in the store into it, hashing on the way; a body
    /// longer than its pin's size is cut off, and one whose size or SHA-256 differs is deleted.
    pub fn download(&self, store: &Store, wanted: &[(String, String, Pinned)]) -> Result<(), AptError> {
        let missing: Vec<&(String, String, Pinned)> = wanted.iter().filter(|(_, _, p)| !store.has_blob(&p.sha256)).collect();
        self.rt.block_on(async {
            let mut jobs = futures_util::stream::iter(missing.into_iter().map(|(name, url, pin)| self.download_one(store, name, url, pin)))
                .buffer_unordered(PARALLEL);
            while let Some(done) = jobs.next().await {
                done?;
            }
            Ok(())
        })
    }

    async fn download_one(&self, store: &Store, name: &str, url: &str, pin: &Pinned) -> Result<(), AptError> {
        let refuse = |message: String| AptError::Package { package: name.to_owned(), url: url.to_owned(), message };
        let fetch = |message: String| AptError::Fetch { url: url.to_owned(), message };
        let io = |e: std::io::Error| AptError::Other(format!("writing into the store: {e}"));
        if pin.size > MAX_DEB {
            return Err(AptError::TooLarge { url: url.to_owned(), limit: MAX_DEB });
        }
        let pace = Pace::start();
        let response = self.client.get(url).send().await.map_err(|e| fetch(error_chain(&e)))?;
        if !response.status().is_success() {
            return Err(fetch(response.status().to_string()));
        }
        let mut tmp = store.temp().map_err(|e| AptError::Other(e.to_string()))?;
        if let Some(dir) = tmp.path().parent() {
            crate::fsutil::ensure_free(dir, pin.size).map_err(|e| refuse(e.to_string()))?;
        }
        let mut hasher = Sha256::new();
        let written = receive(response.bytes_stream(), pin.size, &pace, |chunk| {
            hasher.update(chunk);
            tmp.write_all(chunk)
        })
        .await
        .map_err(|cut| match cut {
            Cut::Stream(e) => fetch(error_chain(&e)),
            Cut::TooLong(pinned) => refuse(format!("more than the {pinned} bytes pinned")),
            Cut::Slow(message) => fetch(message),
            Cut::Sink(e) => io(e),
        })?;
        if written != pin.size {
            return Err(refuse(format!("{written} bytes, {} pinned", pin.size)));
        }
        let actual = Digest::from_sha256(hasher.finalize().into());
        if actual != pin.sha256 {
            return Err(refuse(format!("its content hashes to {actual}, {} pinned", pin.sha256)));
        }
        tmp.as_file().sync_all().map_err(io)?;
        store.commit(tmp, &pin.sha256).map_err(|e| AptError::Other(e.to_string()))?;
        Ok(())
    }
}

/// An error with its causes, which reqwest keeps in its source chain (the guard's refusal is
/// the proxy's answer, below the client's "error sending request").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}

/// The largest keyring galley reads; Debian's archive keyring is about 20 KiB.
pub const MAX_KEYRING: u64 = 1 << 20;

/// The keyring an image's source trusts, read from the project: a regular file inside it (never
/// through a link out of it, nor a FIFO) of at most [`MAX_KEYRING`] bytes.
pub fn keyring(project_dir: &std::path::Path, image: &str, source: &DebianSource) -> Result<(Keyring, Digest), AptError> {
    let err = |message: String| AptError::Keyring { image: image.to_owned(), path: source.keyring.clone(), message };
    let bytes = crate::fsutil::read_beneath(project_dir, std::path::Path::new(&source.keyring), MAX_KEYRING).map_err(|e| err(e.to_string()))?;
    let ring = Keyring::parse(&bytes).map_err(err)?;
    Ok((ring, Digest::of(&bytes)))
}

/// Resolve `image`'s packages against its archive. `not_before`: the `Date` of the Release the
/// lock resolved from last; an older one is a rollback and refused.
pub fn resolve(http: &Http, project_dir: &std::path::Path, name: &str, image: &Image, not_before: Option<i64>) -> Result<Resolution, AptError> {
    let source = image.debian.as_ref().ok_or_else(|| AptError::NoSource { image: name.to_owned() })?;
    let (ring, _) = keyring(project_dir, name, source)?;
    let arch = source.arch(&image.platform);
    let (text, url) = signed_release(http, &ring, &source.mirror, &source.suite)?;
    let bad = |message: String| AptError::Release { url: url.clone(), message };
    let release = Release::parse(&text).map_err(bad)?;
    let names_suite = release.suite.as_deref() == Some(&source.suite) || release.codename.as_deref() == Some(&source.suite);
    if !names_suite {
        return Err(bad(format!(
            "it is signed for suite {} (codename {}), not `{}`",
            release.suite.as_deref().unwrap_or("(none)"),
            release.codename.as_deref().unwrap_or("(none)"),
            source.suite
        )));
    }
    if source.check_valid_until
        && let Some(until) = release.valid_until
    {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
        if until < now {
            return Err(AptError::Expired { url: url.clone(), seconds: now - until });
        }
    }
    if let (Some(locked), Some(date)) = (not_before, release.date)
        && date < locked
    {
        return Err(AptError::Rollback { url: url.clone(), seconds: locked - date });
    }
    if !release.architectures.is_empty() && !release.architectures.contains(&arch) {
        return Err(bad(format!("it lists no architecture `{arch}` (it has {})", release.architectures.join(", "))));
    }
    let mut entries = Vec::new();
    for component in &source.components {
        let (path, size, digest) = release
            .packages_index(component, &arch)
            .ok_or_else(|| bad(format!("it lists no Packages index for {component}/binary-{arch}")))?;
        let index_url = source.mirror.join(&format!("dists/{}/{path}", source.suite));
        let body = http.get(&index_url, MAX_INDEX.min(size))?.ok_or_else(|| AptError::Fetch { url: index_url.clone(), message: "404 Not Found".into() })?;
        let mismatch = |message: String| AptError::IndexMismatch { url: index_url.clone(), message };
        if body.len() as u64 != size {
            return Err(mismatch(format!("{} bytes, the Release says {size}", body.len())));
        }
        let actual = Digest::of(&body);
        if actual != digest {
            return Err(mismatch(format!("its SHA-256 is {}, the Release says {}", actual.hex(), digest.hex())));
        }
        let text = decompress(&path, &body).map_err(|m| AptError::Release { url: index_url.clone(), message: m })?;
        entries.extend(index::parse(&text, &arch).map_err(|m| AptError::Release { url: index_url.clone(), message: m })?);
    }
    let requested: Vec<&str> = image.packages.iter().map(|p| p.as_str()).collect();
    let closure = Resolver::new(&entries)
        .resolve(&requested)
        .map_err(|source| AptError::Unsatisfiable { image: name.to_owned(), source })?;
    Ok(Resolution {
        release: Digest::of(text.as_bytes()),
        date: release.date,
        packages: closure.into_iter().map(|(e, _)| (e.name.clone(), Pinned::of(e))).collect(),
    })
}

/// The verified text of the suite's Release: `InRelease`, or `Release` with `Release.gpg` when
/// the archive has no `InRelease`.
fn signed_release(http: &Http, ring: &Keyring, mirror: &ArchiveUrl, suite: &str) -> Result<(String, String), AptError> {
    let inrelease = mirror.join(&format!("dists/{suite}/InRelease"));
    if let Some(bytes) = http.get(&inrelease, MAX_RELEASE)? {
        let (text, _) = release::verify_inrelease(ring, &bytes).map_err(|source| AptError::Signature { url: inrelease.clone(), source })?;
        return Ok((text, inrelease));
    }
    let url = mirror.join(&format!("dists/{suite}/Release"));
    let missing = |u: &str| AptError::Fetch { url: u.to_owned(), message: "404 Not Found (and there is no InRelease)".into() };
    let bytes = http.get(&url, MAX_RELEASE)?.ok_or_else(|| missing(&url))?;
    let sig_url = format!("{url}.gpg");
    let sig = http.get(&sig_url, MAX_RELEASE)?.ok_or(AptError::Signature { url: url.clone(), source: SignatureError::Missing })?;
    release::verify_detached(ring, &bytes, &sig).map_err(|source| AptError::Signature { url: url.clone(), source })?;
    let text = String::from_utf8(bytes).map_err(|_| AptError::Release { url: url.clone(), message: "not UTF-8".into() })?;
    Ok((text, url))
}

/// An index's text, decompressed by its name within [`MAX_INDEX`].
fn decompress(path: &str, body: &[u8]) -> Result<String, String> {
    let suffix = [".xz", ".gz"].into_iter().find(|s| path.ends_with(s)).unwrap_or("");
    let reader = super::deb::decompressor(suffix, body)?;
    let mut out = Vec::new();
    reader.take(MAX_INDEX + 1).read_to_end(&mut out).map_err(|e| format!("cannot decompress it: {e}"))?;
    if out.len() as u64 > MAX_INDEX {
        return Err(format!("it decompresses to more than {MAX_INDEX} bytes"));
    }
    String::from_utf8(out).map_err(|_| "it is not UTF-8".into())
}
