//! Base image pulls and pushes with oci-client, behind the SSRF guard ([`super::guard`]).
//!
//! Every document and blob is checked against its digest (and blobs against their size) before
//! it enters the store: blobs stream into a temporary file that is hashed while it is written,
//! cut off as soon as it exceeds its descriptor's size, and renamed into the store only when
//! both match. A failed or tampered pull leaves nothing behind.
//!
//! Registries are reached over HTTPS, or plain HTTP for hosts with `insecure = true`. Access is
//! anonymous.

use std::collections::BTreeSet;
use std::io::Write;

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;

use super::config::{self, AnyManifest, Descriptor};
use super::guard::{self, Cut, GuardError, Pace, Policy, Proxy, receive};
use super::store::{Store, StoreError};
use crate::model::Project;
use crate::domain::{Digest, Platform, Reference};

#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error("`{reference}` is not a usable image reference: {message}")]
    BadReference { reference: String, message: String },
    #[error("{0}")]
    Guard(#[from] GuardError),
    #[error("registry error for {reference}: {message}")]
    Registry { reference: String, message: String },
    #[error("{reference}: {what} {digest} failed verification: {message}; nothing was stored")]
    Verify { reference: String, what: String, digest: Digest, message: String },
    #[error("{reference} has no image for platform {platform} (it offers: {offered})")]
    NoPlatform { reference: String, platform: String, offered: String },
    #[error("{reference}: the {what} is {size} bytes, over galley's limit of {limit}; nothing was stored")]
    TooLarge { reference: String, what: String, size: u64, limit: u64 },
    #[error("{reference}: the {what} grew past galley's limit of {limit} bytes as it streamed and was cut there; nothing was stored")]
    TooLargeStream { reference: String, what: String, limit: u64 },
    #[error("{reference}: the index offers {manifest} for {claimed}, but its image config is for {actual}; nothing was stored")]
    PlatformMismatch { reference: String, manifest: Digest, claimed: String, actual: String },
    #[error("{reference}: cannot fetch blob {digest}: {message}; nothing was stored")]
    NoSpace { reference: String, digest: Digest, message: String },
    #[error("base `{reference}` is not available offline: {message}")]
    Offline { reference: String, message: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Other(String),
}

/// The largest manifest or index galley accepts, in bytes (distribution's own limit for the
/// manifests it serves and fetches, 4 MiB).
pub const MAX_MANIFEST: u64 = 4 << 20;
/// The largest image config galley accepts, in bytes.
pub const MAX_CONFIG: u64 = 4 << 20;
/// The largest layer galley accepts, in bytes (64 GiB): a descriptor claiming more is refused
/// before anything is downloaded.
pub const MAX_LAYER: u64 = 64 << 30;

const ACCEPT: &[&str] = &[config::MEDIA_MANIFEST, config::MEDIA_INDEX, config::DOCKER_MANIFEST, config::DOCKER_LIST];

pub struct Puller<'a> {
    store: &'a Store,
    policy: Policy,
    insecure: Vec<String>,
    rt: tokio::runtime::Runtime,
}

fn host_port(registry: &str, insecure: bool) -> (String, u16) {
    let default = if insecure { 80 } else { 443 };
    if let Some(rest) = registry.strip_prefix('[')
        && let Some((h, after)) = rest.split_once(']') {
            let port = after.strip_prefix(':').and_then(|p| p.parse().ok()).unwrap_or(default);
            return (format!("[{h}]"), port);
        }
    match registry.rsplit_once(':') {
        Some((h, p)) if p.parse::<u16>().is_ok() => (h.to_owned(), p.parse().unwrap_or(default)),
        _ => (registry.to_owned(), default),
    }
}

fn parse_ref(reference: &str) -> Result<Reference, PullError> {
    Reference::parse(reference).map_err(|message| PullError::BadReference { reference: reference.into(), message })
}

fn oci_ref(r: &Reference, digest: Option<&Digest>) -> oci_client::Reference {
    match (digest.or(r.digest.as_ref()), &r.tag) {
        (Some(d), _) => oci_client::Reference::with_digest(r.registry.clone(), r.repository.clone(), d.to_string()),
        (None, Some(t)) => oci_client::Reference::with_tag(r.registry.clone(), r.repository.clone(), t.clone()),
        (None, None) => oci_client::Reference::with_tag(r.registry.clone(), r.repository.clone(), "latest".into()),
    }
}

impl<'a> Puller<'a> {
    pub fn new(project: &Project, store: &'a Store) -> Result<Puller<'a>, PullError> {
        let allow_private: BTreeSet<String> =
            project.registries.iter().filter(|(_, r)| r.allow_private).map(|(h, _)| h.clone()).collect();
        let insecure = project.registries.iter().filter(|(_, r)| r.insecure).map(|(h, _)| h.clone()).collect();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| PullError::Other(format!("cannot start the async runtime: {e}")))?;
        Ok(Puller { store, policy: Policy { allow_private }, insecure, rt })
    }

    fn is_insecure(&self, registry: &str) -> bool {
        self.insecure.iter().any(|h| h == registry)
    }

    /// Ask the registry of `reference` for `/v2/` the way a pull starts: its address checked by
    /// the SSRF guard, the request through the guard's proxy. Any HTTP answer means reachable.
    pub fn probe(&self, reference: &str) -> Result<(), PullError> {
        let r = parse_ref(reference)?;
        let (client, proxy) = self.session(&r)?;
        let oref = oci_ref(&r, None);
        self.rt
            .block_on(client.auth(&oref, &RegistryAuth::Anonymous, oci_client::RegistryOperation::Pull))
            .map_err(|e| Self::registry_err(&proxy, reference, e))?;
        Ok(())
    }

    /// Check the registry's own address before anything connects, then start the guard proxy
    /// every connection of the client goes through.
    fn session(&self, r: &Reference) -> Result<(oci_client::Client, Proxy), PullError> {
        let (host, port) = host_port(&r.registry, self.is_insecure(&r.registry));
        guard::resolve_checked(&self.policy, &host, port)?;
        let proxy = Proxy::start(self.policy.clone()).map_err(|e| PullError::Other(format!("cannot start the SSRF guard: {e}")))?;
        let config = ClientConfig {
            protocol: ClientProtocol::HttpsExcept(self.insecure.clone()),
            https_proxy: Some(proxy.url()),
            http_proxy: Some(proxy.url()),
            no_proxy: None,
            platform_resolver: None,
            connect_timeout: Some(std::time::Duration::from_secs(30)),
            read_timeout: Some(std::time::Duration::from_secs(120)),
            ..ClientConfig::default()
        };
        Ok((oci_client::Client::new(config), proxy))
    }

    fn registry_err(proxy: &Proxy, reference: &str, e: impl std::fmt::Display) -> PullError {
        if let Some(r) = proxy.refusals().into_iter().next() {
            return PullError::Guard(GuardError::Refused(r));
        }
        PullError::Registry { reference: reference.into(), message: e.to_string() }
    }

    /// Fetch a manifest document and check it against `expected` (when given). Returns the
    /// bytes and their digest.
    fn fetch_manifest(
        &self,
        client: &oci_client::Client,
        proxy: &Proxy,
        r: &Reference,
        expected: Option<&Digest>,
    ) -> Result<(Vec<u8>, Digest), PullError> {
        let shown = r.to_string();
        let oref = oci_ref(r, expected);
        let bytes = self.rt.block_on(self.manifest_within_cap(client, proxy, &oref, &shown))?;
        let actual = Digest::of(&bytes);
        if let Some(d) = expected
            && *d != actual {
                return Err(PullError::Verify {
                    reference: shown,
                    what: "manifest".into(),
                    digest: *d,
                    message: format!("its content hashes to {actual}"),
                });
            }
        Ok((bytes, actual))
    }

    /// GET a manifest the way oci-client would (its token, its accept list, through the guard's
    /// proxy), read as it streams: a `Content-Length` over [`MAX_MANIFEST`] is refused before the
    /// body is read, and a body that grows past it is cut there. oci-client's own manifest calls
    /// read the whole body first, whatever its size, so they are not used for manifests.
    async fn manifest_within_cap(
        &self,
        client: &oci_client::Client,
        proxy: &Proxy,
        oref: &oci_client::Reference,
        shown: &str,
    ) -> Result<Vec<u8>, PullError> {
        let err = |e: &dyn std::fmt::Display| Self::registry_err(proxy, shown, e);
        let token = client.auth(oref, &RegistryAuth::Anonymous, oci_client::RegistryOperation::Pull).await.map_err(|e| err(&e))?;
        let registry = oref.resolve_registry();
        let scheme = if self.is_insecure(oref.registry()) || self.is_insecure(registry) { "http" } else { "https" };
        let target = oref.digest().or(oref.tag()).unwrap_or("latest");
        let url = format!("{scheme}://{registry}/v2/{}/manifests/{target}", oref.repository());
        let http = reqwest::Client::builder()
            .proxy(reqwest::Proxy::all(proxy.url()).map_err(|e| err(&e))?)
            .connect_timeout(std::time::Duration::from_secs(30))
            .read_timeout(std::time::Duration::from_secs(120))
            .build()
            .map_err(|e| err(&e))?;
        let mut request = http.get(&url).header(reqwest::header::ACCEPT, ACCEPT.join(", "));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let pace = Pace::start();
        let response = request.send().await.map_err(|e| err(&e))?;
        let status = response.status();
        if !status.is_success() {
            return Err(err(&format!("GET {url}: {status}")));
        }
        let too_large = |size: u64| PullError::TooLarge { reference: shown.to_owned(), what: "manifest".into(), size, limit: MAX_MANIFEST };
        if let Some(length) = response.content_length()
            && length > MAX_MANIFEST
        {
            return Err(too_large(length));
        }
        let mut bytes = Vec::new();
        receive(response.bytes_stream(), MAX_MANIFEST, &pace, |chunk| {
            bytes.extend_from_slice(chunk);
            Ok(())
        })
        .await
        .map_err(|cut| match cut {
            Cut::Stream(e) => err(&e),
            Cut::TooLong(limit) => PullError::TooLargeStream { reference: shown.to_owned(), what: "manifest".into(), limit },
            Cut::Slow(message) => err(&message),
            Cut::Sink(e) => err(&e),
        })?;
        Ok(bytes)
    }

    /// The platform's manifest: bytes and digest, following an index, and the platform the
    /// index claims for it.
    fn platform_manifest(
        &self,
        client: &oci_client::Client,
        proxy: &Proxy,
        r: &Reference,
        pinned: Option<&Digest>,
        platform: &Platform,
    ) -> Result<(Vec<u8>, Digest, Option<Platform>), PullError> {
        let (bytes, digest) = self.fetch_manifest(client, proxy, r, pinned.or(r.digest.as_ref()))?;
        let doc = config::parse_any(&bytes).map_err(|m| PullError::Registry { reference: r.to_string(), message: m })?;
        match doc {
            AnyManifest::Image(_) => Ok((bytes, digest, None)),
            AnyManifest::Index(index) => {
                let chosen = index
                    .manifests
                    .iter()
                    .find(|d| d.platform.as_ref().is_some_and(|p| platform.matches(p)))
                    .ok_or_else(|| PullError::NoPlatform {
                        reference: r.to_string(),
                        platform: platform.to_string(),
                        offered: index
                            .manifests
                            .iter()
                            .filter_map(|d| d.platform.as_ref().map(|p| p.to_string()))
                            .collect::<Vec<_>>()
                            .join(", "),
                    })?;
                if chosen.size > MAX_MANIFEST {
                    return Err(PullError::TooLarge { reference: r.to_string(), what: "manifest".into(), size: chosen.size, limit: MAX_MANIFEST });
                }
                let (bytes, digest) = self.fetch_manifest(client, proxy, r, Some(&chosen.digest))?;
                if chosen.size != bytes.len() as u64 {
                    return Err(PullError::Verify {
                        reference: r.to_string(),
                        what: "manifest".into(),
                        digest,
                        message: format!("{} bytes, the index says {}", bytes.len(), chosen.size),
                    });
                }
                Ok((bytes, digest, chosen.platform.clone()))
            }
        }
    }

    /// The manifest digest `reference` resolves to for `platform`.
    pub fn resolve(&self, reference: &str, platform: &Platform) -> Result<Digest, PullError> {
        let r = parse_ref(reference)?;
        let (client, proxy) = self.session(&r)?;
        Ok(self.platform_manifest(&client, &proxy, &r, None, platform)?.1)
    }

    /// Pull `reference` (or the `pinned` digest) for `platform` into the store, verifying every
    /// document and blob. Returns the platform manifest's digest.
    pub fn pull(&self, reference: &str, pinned: Option<&Digest>, platform: &Platform) -> Result<Digest, PullError> {
        let r = parse_ref(reference)?;
        // A pinned manifest already complete in the store needs no network.
        if let Some(d) = pinned.or(r.digest.as_ref())
            && self.ensure_local(d).is_ok()
                && let Ok(AnyManifest::Image(_)) = self.store.read_verified(d).map(|b| config::parse_any(&b)).unwrap_or(Err(String::new())) {
                    return Ok(*d);
                }
        let (client, proxy) = self.session(&r)?;
        let (bytes, digest, claimed) = self.platform_manifest(&client, &proxy, &r, pinned, platform)?;
        let manifest: config::Manifest = serde_json::from_slice(&bytes)
            .map_err(|e| PullError::Registry { reference: r.to_string(), message: format!("bad manifest: {e}") })?;
        check_sizes(&r.to_string(), &manifest)?;
        // Blobs this pull brings in are taken out again when it is refused.
        let mut fetched = Vec::new();
        let result = self.fetch_all(&client, &proxy, &r, &manifest, &digest, claimed.as_ref(), &mut fetched);
        if result.is_err() {
            for d in &fetched {
                let _ = self.store.remove_blob(d);
            }
            return result.map(|_| digest);
        }
        // The manifest goes in last, so a manifest in the store always has its blobs.
        self.store.put(&bytes)?;
        Ok(digest)
    }

    /// Fetch the config (and check it against the platform the index `claimed`), then the
    /// layers; what is new in the store is pushed onto `fetched`.
    #[allow(clippy::too_many_arguments)]
    fn fetch_all(
        &self,
        client: &oci_client::Client,
        proxy: &Proxy,
        r: &Reference,
        manifest: &config::Manifest,
        digest: &Digest,
        claimed: Option<&Platform>,
        fetched: &mut Vec<Digest>,
    ) -> Result<(), PullError> {
        for (i, d) in std::iter::once(&manifest.config).chain(&manifest.layers).enumerate() {
            if !self.store.has_blob(&d.digest) {
                fetched.push(d.digest);
            }
            self.fetch_blob(client, proxy, r, d)?;
            if i == 0
                && let Some(claimed) = claimed
            {
                let cfg = self.store.json(&d.digest)?;
                let field = |k: &str| cfg.get(k).and_then(serde_json::Value::as_str);
                let actual = Platform::new(field("os").unwrap_or_default(), field("architecture").unwrap_or_default(), field("variant"));
                if !actual.as_ref().is_ok_and(|a| claimed.matches(a)) {
                    return Err(PullError::PlatformMismatch {
                        reference: r.to_string(),
                        manifest: *digest,
                        claimed: claimed.to_string(),
                        actual: actual.map(|a| a.to_string()).unwrap_or_else(|_| format!("{}/{}", field("os").unwrap_or("?"), field("architecture").unwrap_or("?"))),
                    });
                }
            }
        }
        Ok(())
    }

    fn fetch_blob(&self, client: &oci_client::Client, proxy: &Proxy, r: &Reference, d: &Descriptor) -> Result<(), PullError> {
        if self.store.has_blob(&d.digest)
            && let Ok(len) = self.store.verify(&d.digest)
                && len == d.size {
                    return Ok(());
                }
        let shown = r.to_string();
        let oref = oci_ref(r, None);
        let mut tmp = self.store.temp()?;
        if let Some(dir) = tmp.path().parent() {
            crate::fsutil::ensure_free(dir, d.size).map_err(|e| PullError::NoSpace { reference: r.to_string(), digest: d.digest, message: e.to_string() })?;
        }
        let verify_err = |message: String| PullError::Verify { reference: shown.clone(), what: "blob".into(), digest: d.digest, message };
        let result: Result<(), PullError> = self.rt.block_on(async {
            // oci-client checks digests too; its complaint is a verification failure as well.
            let classify = |e: String| {
                if e.to_lowercase().contains("digest") {
                    verify_err(e)
                } else {
                    Self::registry_err(proxy, &shown, e)
                }
            };
            let pace = Pace::start();
            let stream = client.pull_blob_stream(&oref, d.digest.to_string().as_str()).await.map_err(|e| classify(e.to_string()))?;
            let path = tmp.path().to_path_buf();
            receive(stream.stream, d.size, &pace, |chunk| tmp.write_all(chunk)).await.map_err(|cut| match cut {
                Cut::Stream(e) => classify(e.to_string()),
                Cut::TooLong(size) => verify_err(format!("more than the {size} bytes its descriptor says")),
                Cut::Slow(message) => Self::registry_err(proxy, &shown, message),
                Cut::Sink(e) => PullError::Other(format!("writing {}: {e}", path.display())),
            })?;
            Ok(())
        });
        result?;
        tmp.as_file().sync_all().map_err(|e| PullError::Other(format!("writing {}: {e}", tmp.path().display())))?;
        match self.store.commit_verified(tmp, &d.digest, Some(d.size)) {
            Ok(_) => Ok(()),
            Err(StoreError::Corrupt { actual, .. }) => Err(verify_err(format!("its content hashes to {actual}"))),
            Err(StoreError::Size { expected, actual, .. }) => Err(verify_err(format!("{actual} bytes, expected {expected}"))),
            Err(e) => Err(e.into()),
        }
    }

    /// Check that the manifest `digest` and all its blobs are in the store (verified).
    pub fn ensure_local(&self, digest: &Digest) -> Result<(), PullError> {
        let m = self.store.manifest(digest).map_err(|e| PullError::Offline { reference: digest.to_string(), message: e.to_string() })?;
        for d in std::iter::once(&m.config).chain(&m.layers) {
            if !self.store.has_blob(&d.digest) {
                return Err(PullError::Offline { reference: digest.to_string(), message: format!("blob {} is missing from the store", d.digest) });
            }
        }
        Ok(())
    }

    /// Push the stored manifest `manifest_digest` (and its blobs) to `reference`. Returns the
    /// pushed manifest's digest.
    pub fn push(&self, manifest_digest: &Digest, reference: &str) -> Result<Digest, PullError> {
        let r = parse_ref(reference)?;
        let (client, proxy) = self.session(&r)?;
        let bytes = self.store.read_verified(manifest_digest)?;
        let manifest: config::Manifest = serde_json::from_slice(&bytes)
            .map_err(|e| PullError::Other(format!("manifest {manifest_digest}: {e}")))?;
        let oref = oci_ref(&r, None);
        let shown = r.to_string();
        for d in std::iter::once(&manifest.config).chain(&manifest.layers) {
            let exists = self.rt.block_on(client.blob_exists(&oref, &d.digest.to_string())).unwrap_or(false);
            if exists {
                continue;
            }
            let blob = self.store.read_verified(&d.digest)?;
            self.rt
                .block_on(client.push_blob(&oref, blob, &d.digest.to_string()))
                .map_err(|e| Self::registry_err(&proxy, &shown, e))?;
        }
        let media = manifest.media_type.clone().unwrap_or_else(|| config::MEDIA_MANIFEST.into());
        let content_type = http::HeaderValue::from_str(&media).map_err(|e| PullError::Other(e.to_string()))?;
        self.rt
            .block_on(client.push_manifest_raw(&oref, bytes, content_type))
            .map_err(|e| Self::registry_err(&proxy, &shown, e))?;
        Ok(*manifest_digest)
    }
}

/// Refuse a manifest whose config or layers claim more than galley accepts, before any download.
fn check_sizes(reference: &str, manifest: &config::Manifest) -> Result<(), PullError> {
    let over = |what: &str, d: &Descriptor, limit: u64| {
        (d.size > limit).then(|| PullError::TooLarge { reference: reference.into(), what: format!("{what} {}", d.digest), size: d.size, limit })
    };
    let first = over("config", &manifest.config, MAX_CONFIG).or_else(|| manifest.layers.iter().find_map(|l| over("layer", l, MAX_LAYER)));
    first.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_host_and_port() {
        assert_eq!(host_port("127.0.0.1:5000", true), ("127.0.0.1".into(), 5000));
        assert_eq!(host_port("registry.example.com", false), ("registry.example.com".into(), 443));
        assert_eq!(host_port("localhost", true), ("localhost".into(), 80));
        assert_eq!(host_port("[::1]:5000", true), ("[::1]".into(), 5000));
    }

    #[test]
    fn refusal_happens_before_any_connection() {
        let target = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        target.set_nonblocking(true).unwrap();
        let port = target.local_addr().unwrap().port();
        let home = tempfile::tempdir().unwrap();
        let store = Store::open(home.path()).unwrap();
        let mut project: Project = serde_json::from_value(serde_json::json!({"name": "p"})).unwrap();
        project.registries.insert(format!("127.0.0.1:{port}"), crate::model::Registry { insecure: true, allow_private: false });
        let puller = Puller::new(&project, &store).unwrap();
        let err = puller.pull(&format!("127.0.0.1:{port}/x/y:1"), None, &Platform::parse("linux/amd64").unwrap()).unwrap_err();
        assert!(err.to_string().contains("SSRF guard"), "{err}");
        assert!(target.accept().is_err(), "nothing may connect to the refused address");
    }
}
