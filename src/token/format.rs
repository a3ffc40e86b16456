//! The token's text: `glt_`, 32 base62 characters of secret, and 6 base62 characters of the
//! CRC32 of the two before, so a secret scanner (or galley itself) can tell a real galley token
//! from a typo or a random string without asking the server.

use rand::Rng;
use zeroize::Zeroizing;

/// What every galley API token starts with.
pub const PREFIX: &str = "glt_";
/// Base62 characters of secret: 32 of them hold about 190 bits.
pub const SECRET_LEN: usize = 32;
/// Base62 characters of checksum (62^6 > 2^32).
pub const CHECK_LEN: usize = 6;
/// The length of a whole token.
pub const TOKEN_LEN: usize = PREFIX.len() + SECRET_LEN + CHECK_LEN;

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A whole token, as printed once at creation. Never stored, logged or shown again; `Debug`
/// prints `[redacted]` and the text is wiped on drop.
pub struct Token(Zeroizing<String>);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token([redacted])")
    }
}

impl Token {
    /// A fresh token from the operating system's random source.
    pub fn generate() -> Token {
        let mut rng = rand::rngs::OsRng;
        let secret: String = (0..SECRET_LEN).map(|_| BASE62[rng.gen_range(0..62)] as char).collect();
        let mut text = Zeroizing::new(format!("{PREFIX}{secret}"));
        let check = checksum(&text);
        text.push_str(&check);
        Token(text)
    }

    /// Check a presented token's shape and checksum: the secret part, or why it is no token.
    pub fn parse(text: &str) -> Result<Secret<'_>, &'static str> {
        let Some(rest) = text.strip_prefix(PREFIX) else { return Err("it does not start with glt_") };
        if text.len() != TOKEN_LEN || !rest.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err("it is not 38 base62 characters after glt_");
        }
        let (body, check) = text.split_at(PREFIX.len() + SECRET_LEN);
        if checksum(body).as_bytes() != check.as_bytes() {
            return Err("its checksum does not match");
        }
        Ok(Secret(&body[PREFIX.len()..]))
    }

    /// The text to hand the user, once.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The secret part of this token.
    pub fn secret(&self) -> Secret<'_> {
        Secret(&self.0[PREFIX.len()..PREFIX.len() + SECRET_LEN])
    }
}

/// The secret part of a token whose shape and checksum are right; only its hash is kept.
#[derive(Clone, Copy)]
pub struct Secret<'a>(&'a str);

impl Secret<'_> {
    /// SHA-256 (hex) of the secret part: what the token file stores.
    pub fn sha256(&self) -> String {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(self.0.as_bytes()))
    }

    /// For tests that search files and output for the secret.
    pub fn expose(&self) -> &str {
        self.0
    }
}

/// CRC32 of `text` in base62, left-padded with `0` to [`CHECK_LEN`].
fn checksum(text: &str) -> String {
    let mut n = u64::from(crc32fast::hash(text.as_bytes()));
    let mut digits = [b'0'; CHECK_LEN];
    for d in digits.iter_mut().rev() {
        *d = BASE62[(n % 62) as usize];
        n /= 62;
    }
    String::from_utf8(digits.to_vec()).expect("base62 is ASCII")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_parse_and_one_changed_character_fails_the_checksum() {
        let t = Token::generate();
        assert_eq!(t.expose().len(), TOKEN_LEN);
        assert!(t.expose().starts_with("glt_"));
        assert_eq!(Token::parse(t.expose()).unwrap().expose(), t.secret().expose());
        for i in PREFIX.len()..TOKEN_LEN {
            let mut bytes = t.expose().as_bytes().to_vec();
            bytes[i] = if bytes[i] == b'a' { b'b' } else { b'a' };
            let changed = String::from_utf8(bytes).unwrap();
            assert_eq!(Token::parse(&changed).err(), Some("its checksum does not match"), "{i}");
        }
        assert!(Token::parse("ghp_abc").is_err());
        assert!(Token::parse(&format!("{}!", &t.expose()[..TOKEN_LEN - 1])).is_err());
        assert_eq!(format!("{t:?}"), "Token([redacted])");
    }

    #[test]
    fn two_tokens_differ() {
        assert_ne!(Token::generate().expose(), Token::generate().expose());
    }
}
