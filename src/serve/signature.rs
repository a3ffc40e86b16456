//! `X-Hub-Signature-256`: HMAC-SHA256 of the raw body under the webhook's secret, compared in
//! constant time (`hmac`'s `verify_slice`, which uses `subtle`). Checked before anything reads
//! the body as JSON.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The only scheme accepted; a `sha1=` header (GitHub's legacy `X-Hub-Signature`) is refused.
const PREFIX: &str = "sha256=";

/// Why a delivery's signature was refused, as recorded (never told to the sender).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    Missing,
    Malformed,
    Mismatch,
}

impl Refused {
    pub fn reason(self) -> &'static str {
        match self {
            Refused::Missing => "signature missing",
            Refused::Malformed => "signature malformed",
            Refused::Mismatch => "signature mismatch",
        }
    }
}

/// Check `header` (the value of `X-Hub-Signature-256`, if any) against `body` under `secret`.
pub fn verify(secret: &[u8], header: Option<&[u8]>, body: &[u8]) -> Result<(), Refused> {
    let header = header.ok_or(Refused::Missing)?;
    let hex = header
        .strip_prefix(PREFIX.as_bytes())
        .ok_or(Refused::Malformed)?;
    if hex.len() != 64 {
        return Err(Refused::Malformed);
    }
    let tag = hex::decode(hex).map_err(|_| Refused::Malformed)?;
    // An empty secret signs nothing: refuse before computing, so a server whose secret source
    // came back empty cannot be fooled by a tag computed with the empty key.
    if secret.is_empty() {
        return Err(Refused::Mismatch);
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(body);
    mac.verify_slice(&tag).map_err(|_| Refused::Mismatch)
}

/// `sha256=<hex>` of `body` under `secret`, as GitHub sends it (tests and the benchmark sign
/// with it).
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(body);
    format!("{PREFIX}{}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    // GitHub's documented test vector (docs.github.com, "Validating webhook deliveries").
    const SECRET: &[u8] = b"It's a Secret to Everybody";
    const BODY: &[u8] = b"Hello, World!";
    const SIG: &str = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

    #[test]
    fn githubs_documented_vector_verifies() {
        assert_eq!(sign(SECRET, BODY), SIG);
        assert_eq!(verify(SECRET, Some(SIG.as_bytes()), BODY), Ok(()));
    }

    #[test]
    fn forged_deliveries_are_refused() {
        assert_eq!(
            verify(SECRET, Some(SIG.as_bytes()), b"Hello, World?"),
            Err(Refused::Mismatch)
        );
        assert_eq!(
            verify(SECRET, Some(&SIG.as_bytes()[..SIG.len() - 2]), BODY),
            Err(Refused::Malformed)
        );
        assert_eq!(
            verify(
                SECRET,
                Some(b"sha1=01dc10d0c83e72ed246219cdd91669667fe2ca59"),
                BODY
            ),
            Err(Refused::Malformed)
        );
        assert_eq!(verify(SECRET, None, BODY), Err(Refused::Missing));
        assert_eq!(
            verify(b"", Some(sign(b"", BODY).as_bytes()), BODY),
            Err(Refused::Mismatch)
        );
        assert_eq!(
            verify(
                SECRET,
                Some(SIG.to_uppercase().replace("SHA256=", "sha256=").as_bytes()),
                BODY
            ),
            Ok(()),
            "hex is read case-insensitively"
        );
    }
}
