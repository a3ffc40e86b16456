//! Content digests: an algorithm and the hash bytes, parsed from `sha256:<64 lower-case hex>`
//! where a digest enters galley (a registry's answer, a lock, a store file name, a podman label)
//! and printed back the same way.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::Digest as _;

/// The hash a digest was made with. Only sha256 today; the enum is where another would go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Algorithm {
    Sha256,
}

impl Algorithm {
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
        }
    }
}

/// A content digest. It can only hold a well-formed one: there is no other way to make it than
/// hashing bytes or [`Digest::parse`].
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Digest {
    algorithm: Algorithm,
    bytes: [u8; 32],
}

/// Why a text is not a digest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{text}` is not a sha256 digest (sha256: followed by 64 lower-case hex digits)")]
pub struct DigestError {
    pub text: String,
}

/// Hex digits in [`Digest::short`], the form podman tags carry.
const SHORT: usize = 12;

impl Digest {
    /// The one rule for a digest written as text: `sha256:` and 64 lower-case hex digits.
    pub fn parse(text: &str) -> Result<Digest, DigestError> {
        let bad = || DigestError { text: text.to_owned() };
        let hex = text.strip_prefix("sha256:").ok_or_else(bad)?;
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            return Err(bad());
        }
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(hex, &mut bytes).map_err(|_| bad())?;
        Ok(Digest { algorithm: Algorithm::Sha256, bytes })
    }

    /// The sha256 digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Digest {
        Digest::from_sha256(sha2::Sha256::digest(bytes).into())
    }

    /// A sha256 hash output as a digest.
    pub fn from_sha256(bytes: [u8; 32]) -> Digest {
        Digest { algorithm: Algorithm::Sha256, bytes }
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The hash itself.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.bytes
    }

    /// The hash as lower-case hex, without the algorithm (store file names, image ids).
    pub fn hex(&self) -> String {
        hex::encode(self.bytes)
    }

    /// The first 12 hex digits, as podman tags and short ids show them.
    pub fn short(&self) -> String {
        let mut hex = self.hex();
        hex.truncate(SHORT);
        hex
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm.name(), self.hex())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({self})")
    }
}

impl FromStr for Digest {
    type Err = DigestError;

    fn from_str(s: &str) -> Result<Digest, DigestError> {
        Digest::parse(s)
    }
}

impl Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Digest, D::Error> {
        let text = std::borrow::Cow::<str>::deserialize(d)?;
        Digest::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_digest_prints_as_it_was_parsed() {
        let text = format!("sha256:{}", "0123456789abcdef".repeat(4));
        let d = Digest::parse(&text).unwrap();
        assert_eq!(d.to_string(), text);
        assert_eq!(d.hex(), &text[7..]);
        assert_eq!(d.short(), "0123456789ab");
        assert_eq!(serde_json::to_value(d).unwrap(), serde_json::Value::from(text.clone()));
        assert_eq!(serde_json::from_value::<Digest>(text.into()).unwrap(), d);
    }

    #[test]
    fn only_sha256_with_64_lower_case_hex_digits_parses() {
        let hex = "a".repeat(64);
        for bad in [hex.clone(), format!("sha256:{}", &hex[1..]), format!("sha256:{hex}0"), format!("sha256:{}", hex.to_uppercase()),
            format!("sha512:{hex}"), format!("sha256:{}g", &hex[1..]), "unresolved".into()] {
            assert!(Digest::parse(&bad).is_err(), "{bad}");
        }
        assert!(serde_json::from_value::<Digest>("sha256:ab".into()).is_err());
    }

    #[test]
    fn hashing_gives_the_well_known_digest() {
        assert_eq!(Digest::of(b"").to_string(), "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        assert_eq!(Digest::from_sha256(sha2::Sha256::digest(b"").into()), Digest::of(b""));
    }

    #[test]
    fn digests_order_as_their_text_does() {
        let a = Digest::of(b"a");
        let b = Digest::of(b"b");
        assert_eq!(a < b, a.to_string() < b.to_string());
    }
}
