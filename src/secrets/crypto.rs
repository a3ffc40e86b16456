//! AES-256-GCM sealing with fresh random nonces, and the master key read from the environment.
//!
//! Everything here is a thin layer over the `aes-gcm` crate: [`seal`] draws a 96-bit nonce from
//! the operating system's generator for every call, [`open`] authenticates the ciphertext and the
//! additional data (AAD) before returning anything.

use std::fmt;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use rand::RngCore;
use rand::rngs::OsRng;
use zeroize::Zeroizing;

/// Bytes in a key (AES-256).
pub const KEY_LEN: usize = 32;
/// Bytes in a nonce (the 96 bits GCM is specified for).
pub const NONCE_LEN: usize = 12;

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("{var} is not set")]
    MissingKey { var: &'static str },
    #[error("{var} is not a 32-byte key written as 64 hex digits or base64")]
    BadKey { var: &'static str },
    #[error("authentication failed: the data was altered, or sealed under another key or for another record")]
    Open,
    #[error("a nonce must be {NONCE_LEN} bytes, found {0}")]
    NonceLength(usize),
}

impl CryptoError {
    pub fn help(&self) -> Option<&'static str> {
        match self {
            CryptoError::MissingKey { .. } | CryptoError::BadKey { .. } => {
                Some("generate a key once with `openssl rand -hex 32`, keep it in a password manager, and export it")
            }
            _ => None,
        }
    }
}

/// A 256-bit key that is zeroized on drop and never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretKey(Zeroizing<[u8; KEY_LEN]>);

impl SecretKey {
    /// A fresh key from the operating system's generator.
    pub fn random() -> SecretKey {
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        OsRng.fill_bytes(key.as_mut());
        SecretKey(key)
    }

    pub fn from_bytes(bytes: &[u8]) -> Option<SecretKey> {
        let array: [u8; KEY_LEN] = bytes.try_into().ok()?;
        Some(SecretKey(Zeroizing::new(array)))
    }

    /// Parse 64 hex digits or base64 (standard or URL-safe, padded or not) of 32 bytes.
    /// Surrounding whitespace is ignored. `var` names the source in errors; the text never
    /// appears in one.
    pub fn parse(text: &str, var: &'static str) -> Result<SecretKey, CryptoError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(CryptoError::MissingKey { var });
        }
        let decoded: Option<Zeroizing<Vec<u8>>> = if text.len() == 2 * KEY_LEN && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            hex::decode(text).ok().map(Zeroizing::new)
        } else {
            [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
                .iter()
                .find_map(|engine| engine.decode(text).ok())
                .map(Zeroizing::new)
        };
        decoded.and_then(|b| SecretKey::from_bytes(&b)).ok_or(CryptoError::BadKey { var })
    }

    /// Read and parse the environment variable `var`.
    pub fn from_env(var: &'static str) -> Result<SecretKey, CryptoError> {
        let raw = Zeroizing::new(std::env::var(var).map_err(|e| match e {
            std::env::VarError::NotPresent => CryptoError::MissingKey { var },
            std::env::VarError::NotUnicode(_) => CryptoError::BadKey { var },
        })?);
        SecretKey::parse(&raw, var)
    }

    pub fn expose(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey([redacted])")
    }
}

/// A nonce and the ciphertext with its 16-byte GCM tag appended; base64 in JSON.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sealed {
    #[serde(with = "b64")]
    pub nonce: Vec<u8>,
    #[serde(with = "b64")]
    pub ciphertext: Vec<u8>,
}

mod b64 {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}

/// Encrypt and authenticate `plaintext`, binding `aad`, under a fresh random nonce.
pub fn seal(key: &SecretKey, aad: &[u8], plaintext: &[u8]) -> Sealed {
    let mut nonce = [0u8; NONCE_LEN];
    OsRng.fill_bytes(&mut nonce);
    let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key.expose()));
    let ciphertext = cipher
        .encrypt(Nonce::from_slice(&nonce), Payload { msg: plaintext, aad })
        .expect("AES-GCM encryption of an in-memory buffer cannot fail");
    Sealed { nonce: nonce.to_vec(), ciphertext }
}

/// Check and decrypt what [`seal`] produced with the same key and `aad`.
pub fn open(key: &SecretKey, aad: &[u8], sealed: &Sealed) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    if sealed.nonce.len() != NONCE_LEN {
        return Err(CryptoError::NonceLength(sealed.nonce.len()));
    }
    let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key.expose()));
    cipher
        .decrypt(Nonce::from_slice(&sealed.nonce), Payload { msg: &sealed.ciphertext, aad })
        .map(Zeroizing::new)
        .map_err(|_| CryptoError::Open)
}

/// Unambiguous additional data: a purpose label, then each part with its length in front.
pub fn aad(purpose: &str, parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for part in std::iter::once(purpose.as_bytes()).chain(parts.iter().copied()) {
        out.extend_from_slice(&(part.len() as u32).to_be_bytes());
        out.extend_from_slice(part);
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn sealed_values_open_with_the_same_key_and_aad_only() {
        let key = SecretKey::random();
        let sealed = seal(&key, b"aad", b"plain");
        assert_eq!(open(&key, b"aad", &sealed).unwrap().as_slice(), b"plain");
        assert!(matches!(open(&key, b"other", &sealed), Err(CryptoError::Open)));
        assert!(matches!(open(&SecretKey::random(), b"aad", &sealed), Err(CryptoError::Open)));
        assert!(!sealed.ciphertext.windows(5).any(|w| w == b"plain"));
    }

    #[test]
    fn a_hundred_thousand_seals_use_distinct_nonces() {
        let key = SecretKey::random();
        let mut seen = HashSet::new();
        for _ in 0..100_000 {
            let sealed = seal(&key, b"", b"x");
            assert_eq!(sealed.nonce.len(), NONCE_LEN);
            assert!(seen.insert(sealed.nonce), "a nonce repeated");
        }
        assert_eq!(seen.len(), 100_000);
    }

    #[test]
    fn keys_parse_from_hex_and_base64() {
        let bytes: Vec<u8> = (0u8..32).collect();
        let want = SecretKey::from_bytes(&bytes).unwrap();
        let forms = [
            hex::encode(&bytes),
            hex::encode_upper(&bytes),
            format!("  {}\n", hex::encode(&bytes)),
            STANDARD.encode(&bytes),
            STANDARD_NO_PAD.encode(&bytes),
            URL_SAFE.encode(&bytes),
        ];
        for form in forms {
            assert_eq!(SecretKey::parse(&form, "K").unwrap(), want, "{form}");
        }
    }

    #[test]
    fn bad_keys_name_the_variable_and_never_echo_the_text() {
        for bad in ["abcd", &hex::encode([7u8; 31]), &STANDARD.encode([7u8; 33]), "not base64 at all!!"] {
            let err = SecretKey::parse(bad, "GALLEY_MASTER_KEY").unwrap_err();
            let text = err.to_string();
            assert!(text.contains("GALLEY_MASTER_KEY") && text.contains("64 hex digits or base64"), "{text}");
            assert!(!text.contains(bad), "{text}");
        }
        assert!(matches!(SecretKey::parse(" ", "K"), Err(CryptoError::MissingKey { var: "K" })));
    }

    #[test]
    fn aad_parts_cannot_be_shifted() {
        assert_ne!(aad("v", &[b"ab", b"c"]), aad("v", &[b"a", b"bc"]));
        assert_ne!(aad("v", &[b"a"]), aad("w", &[b"a"]));
    }

    #[test]
    fn keys_are_never_printed() {
        assert_eq!(format!("{:?}", SecretKey::from_bytes(&[0x41; 32]).unwrap()), "SecretKey([redacted])");
    }
}
