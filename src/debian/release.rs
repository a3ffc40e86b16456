//! The archive's signed Release file: the keyring a project trusts, the OpenPGP check of
//! `InRelease` (cleartext-signed) or `Release` + `Release.gpg` (detached), and the parsed fields
//! galley relies on: the suite, and the size and SHA-256 of every index file.
//!
//! Only the signed text is ever parsed: whatever surrounds the signed part of an `InRelease` is
//! ignored, so nothing unsigned reaches the resolver.

use std::collections::BTreeMap;

use pgp::types::PublicKeyTrait;
use pgp::cleartext::CleartextSignedMessage;
use pgp::{Deserializable, SignedPublicKey, StandaloneSignature};

use super::control;
use crate::domain::Digest;

/// The public keys whose signatures are accepted.
pub struct Keyring {
    keys: Vec<SignedPublicKey>,
}

impl Keyring {
    /// A binary (`gpg --export`, `debian-archive-keyring.gpg`) or armored keyring.
    pub fn parse(bytes: &[u8]) -> Result<Keyring, String> {
        let armored = bytes.trim_ascii_start().starts_with(b"-----BEGIN");
        let keys: Vec<SignedPublicKey> = if armored {
            let (keys, _) = SignedPublicKey::from_armor_many(bytes).map_err(|e| format!("not an OpenPGP keyring: {e}"))?;
            keys.collect::<Result<_, _>>().map_err(|e| format!("not an OpenPGP keyring: {e}"))?
        } else {
            SignedPublicKey::from_bytes_many(bytes).collect::<Result<_, _>>().map_err(|e| format!("not an OpenPGP keyring: {e}"))?
        };
        if keys.is_empty() {
            return Err("the keyring holds no public key".into());
        }
        Ok(Keyring { keys })
    }

    /// The fingerprint (hex) of the key of the ring that made one of `sigs` over `data`: a
    /// primary key, or a subkey whose binding to its primary verifies.
    fn signer(&self, sigs: &[StandaloneSignature], data: &[u8]) -> Option<String> {
        let made_by = |key: &dyn Fn(&StandaloneSignature) -> bool| sigs.iter().any(key);
        for key in &self.keys {
            if made_by(&|s| s.verify(&key.primary_key, data).is_ok()) {
                return Some(hex::encode(key.primary_key.fingerprint().as_bytes()));
            }
            for sub in &key.public_subkeys {
                if sub.verify(&key.primary_key).is_ok() && made_by(&|s| s.verify(&sub.key, data).is_ok()) {
                    return Some(hex::encode(sub.key.fingerprint().as_bytes()));
                }
            }
        }
        None
    }
}

/// Why a Release is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("it carries no OpenPGP signature")]
    Missing,
    #[error("it is not a cleartext-signed message: {0}")]
    Malformed(String),
    #[error("no signature on it verifies with a key of the keyring (signed by key {0})")]
    Untrusted(String),
}

/// Check a cleartext-signed `InRelease` and return its signed text (LF line endings) and the
/// fingerprint of the key that signed it.
pub fn verify_inrelease(keyring: &Keyring, bytes: &[u8]) -> Result<(String, String), SignatureError> {
    let text = std::str::from_utf8(bytes).map_err(|_| SignatureError::Malformed("not UTF-8".into()))?;
    if !text.contains("-----BEGIN PGP SIGNED MESSAGE-----") {
        return Err(SignatureError::Missing);
    }
    let (msg, _) = CleartextSignedMessage::from_string(text).map_err(|e| SignatureError::Malformed(e.to_string()))?;
    if msg.signatures().is_empty() {
        return Err(SignatureError::Missing);
    }
    let signed = msg.signed_text();
    let by = keyring.signer(msg.signatures(), signed.as_bytes());
    match by {
        Some(fp) => Ok((signed.replace("\r\n", "\n"), fp)),
        None => Err(SignatureError::Untrusted(issuers(msg.signatures()))),
    }
}

/// Check `Release` against its detached `Release.gpg` (armored or binary).
pub fn verify_detached(keyring: &Keyring, release: &[u8], signature: &[u8]) -> Result<String, SignatureError> {
    let sigs: Vec<StandaloneSignature> = if signature.trim_ascii_start().starts_with(b"-----BEGIN") {
        let (sigs, _) = StandaloneSignature::from_armor_many(signature).map_err(|e| SignatureError::Malformed(e.to_string()))?;
        sigs.filter_map(Result::ok).collect()
    } else {
        StandaloneSignature::from_bytes_many(signature).filter_map(Result::ok).collect()
    };
    if sigs.is_empty() {
        return Err(SignatureError::Missing);
    }
    keyring
        .signer(&sigs, release)
        .ok_or_else(|| SignatureError::Untrusted(issuers(&sigs)))
}

fn issuers(sigs: &[StandaloneSignature]) -> String {
    let ids: Vec<String> = sigs.iter().flat_map(|s| s.signature.issuer()).map(|id| hex::encode(id.as_ref())).collect();
    if ids.is_empty() { "unknown".into() } else { ids.join(", ") }
}

/// The fields of a verified Release galley uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    pub suite: Option<String>,
    pub codename: Option<String>,
    pub components: Vec<String>,
    pub architectures: Vec<String>,
    /// Index path (relative to the Release's directory) -> size and SHA-256.
    pub files: BTreeMap<String, (u64, Digest)>,
    /// `Valid-Until`, in seconds since the epoch, when the Release has one.
    pub valid_until: Option<i64>,
    /// `Date`, in seconds since the epoch, when the Release has one.
    pub date: Option<i64>,
}

impl Release {
    pub fn parse(text: &str) -> Result<Release, String> {
        let paragraphs = control::parse(text)?;
        let [p] = paragraphs.as_slice() else {
            return Err(format!("a Release has one paragraph, this one has {}", paragraphs.len()));
        };
        let words = |f: &str| p.get(f).map(|v| v.split_whitespace().map(str::to_owned).collect()).unwrap_or_default();
        let sums = p.get("SHA256").ok_or("it lists no SHA256 sums")?;
        let mut files = BTreeMap::new();
        for line in sums.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let parts: Vec<&str> = line.split_whitespace().collect();
            let [hash, size, path] = parts.as_slice() else {
                return Err(format!("`{line}` is not `sha256 size path`"));
            };
            let digest = Digest::parse(&format!("sha256:{hash}")).map_err(|e| format!("`{line}`: {e}"))?;
            let size = size.parse::<u64>().map_err(|_| format!("`{line}`: the size is not a number"))?;
            files.insert((*path).to_owned(), (size, digest));
        }
        Ok(Release {
            suite: p.get("Suite").map(str::to_owned),
            codename: p.get("Codename").map(str::to_owned),
            components: words("Components"),
            architectures: words("Architectures"),
            files,
            date: p.get("Date").map(|d| parse_date(d).ok_or_else(|| format!("`Date: {d}` is not a date"))).transpose()?,
            valid_until: p.get("Valid-Until").map(|d| parse_date(d).ok_or_else(|| format!("`Valid-Until: {d}` is not a date"))).transpose()?,
        })
    }

    /// The Packages index of `component`/`arch` to fetch: `.xz`, then `.gz`, then plain, the
    /// first the Release lists.
    pub fn packages_index(&self, component: &str, arch: &str) -> Option<(String, u64, Digest)> {
        ["Packages.xz", "Packages.gz", "Packages"].iter().find_map(|name| {
            let path = format!("{component}/binary-{arch}/{name}");
            self.files.get(&path).map(|(size, digest)| (path, *size, *digest))
        })
    }
}

/// An RFC 2822 date as Release files write it (`Sat, 01 Jun 2024 08:00:00 UTC`, also `+0000`),
/// in seconds since the epoch.
pub fn parse_date(s: &str) -> Option<i64> {
    let words: Vec<&str> = s.split_whitespace().collect();
    let rest = if words.first()?.ends_with(',') { &words[1..] } else { &words[..] };
    let [day, month, year, time, zone] = rest else { return None };
    let day: i64 = day.parse().ok()?;
    let month = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"].iter().position(|m| m == month)? as i64 + 1;
    let year: i64 = year.parse().ok()?;
    let hms: Vec<i64> = time.split(':').map(|p| p.parse().ok()).collect::<Option<_>>()?;
    let [h, m, sec] = hms.as_slice() else { return None };
    let offset = match *zone {
        "UTC" | "GMT" | "Z" => 0,
        z if z.len() == 5 && (z.starts_with('+') || z.starts_with('-')) => {
            let v: i64 = z[1..].parse().ok()?;
            let secs = (v / 100) * 3600 + (v % 100) * 60;
            if z.starts_with('-') { -secs } else { secs }
        }
        _ => return None,
    };
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (month + if month > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    Some(days * 86400 + h * 3600 + m * 60 + sec - offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RELEASE: &str = "Suite: bookworm\nCodename: bookworm\nComponents: main contrib\nArchitectures: amd64 all\nSHA256:\n 743f6a4cf9fa20e2023f40ab53066fc880384b4d950c59e3be46b142cc83030c            17199 main/binary-amd64/Packages\n 381a7d0f22b9c3eb3177cf56acb9484fef02410d904085ba72cbd09f447391eb             6348 main/binary-amd64/Packages.xz\n";

    #[test]
    fn release_lists_indices_and_prefers_xz() {
        let r = Release::parse(RELEASE).unwrap();
        assert_eq!(r.suite.as_deref(), Some("bookworm"));
        assert_eq!(r.components, ["main", "contrib"]);
        let (path, size, _) = r.packages_index("main", "amd64").unwrap();
        assert_eq!((path.as_str(), size), ("main/binary-amd64/Packages.xz", 6348));
        assert!(r.packages_index("contrib", "amd64").is_none());
        assert!(Release::parse("Suite: x\n").unwrap_err().contains("SHA256"));
        assert!(Release::parse("SHA256:\n zz 1 p\n").is_err());
    }

    #[test]
    fn release_dates_read_as_seconds_since_the_epoch() {
        assert_eq!(parse_date("Thu, 01 Jan 1970 00:00:00 UTC"), Some(0));
        assert_eq!(parse_date("Sat, 01 Jun 2024 08:00:00 UTC"), Some(1_717_228_800));
        assert_eq!(parse_date("Sat, 01 Jun 2024 10:00:00 +0200"), Some(1_717_228_800));
        assert_eq!(parse_date("29 Feb 2024 00:00:00 UTC"), Some(1_709_164_800));
        assert_eq!(parse_date("yesterday"), None);
        let r = Release::parse(&format!("Valid-Until: Thu, 01 Jan 1970 00:01:00 UTC\n{RELEASE}")).unwrap();
        assert_eq!(r.valid_until, Some(60));
    }

    #[test]
    fn an_unsigned_release_is_missing_its_signature_not_malformed() {
        let ring = Keyring { keys: Vec::new() };
        assert_eq!(verify_inrelease(&ring, RELEASE.as_bytes()).unwrap_err(), SignatureError::Missing);
        assert_eq!(verify_detached(&ring, RELEASE.as_bytes(), b"").unwrap_err(), SignatureError::Missing);
        assert!(Keyring::parse(b"not a key").is_err());
    }
}
