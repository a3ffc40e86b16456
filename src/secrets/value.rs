//! `SecretValue`: secret bytes in memory, redacted when printed and zeroized when dropped.

use std::fmt;

use zeroize::{Zeroize, Zeroizing};

/// The bytes of a secret. `Debug` and `Display` print `[redacted]`; there is no `Serialize`;
/// the buffer is overwritten with zeros when the value is dropped. Read it with [`expose`].
///
/// [`expose`]: SecretValue::expose
#[derive(Clone, Default)]
pub struct SecretValue(Zeroizing<Vec<u8>>);

impl SecretValue {
    /// Take ownership of `bytes` (no copy is made).
    pub fn new(bytes: Vec<u8>) -> SecretValue {
        SecretValue(Zeroizing::new(bytes))
    }

    /// The secret bytes. Call sites are the places a value leaves galley's custody.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Drop one trailing `\n` (or `\r\n`), in place, as shells add one to command output.
    pub fn trim_trailing_newline(&mut self) {
        if self.0.last() == Some(&b'\n') {
            self.0.pop();
            if self.0.last() == Some(&b'\r') {
                self.0.pop();
            }
        }
    }
}

impl From<Vec<u8>> for SecretValue {
    fn from(bytes: Vec<u8>) -> SecretValue {
        SecretValue::new(bytes)
    }
}

impl From<Zeroizing<Vec<u8>>> for SecretValue {
    fn from(bytes: Zeroizing<Vec<u8>>) -> SecretValue {
        SecretValue(bytes)
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// The inner `Zeroizing` buffer clears itself when dropped.
impl zeroize::ZeroizeOnDrop for SecretValue {}

impl Zeroize for SecretValue {
    fn zeroize(&mut self) {
        self.0.zeroize();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printing_never_shows_the_bytes() {
        let v = SecretValue::new(b"hunter2-canary".to_vec());
        assert_eq!(format!("{v}"), "[redacted]");
        assert_eq!(format!("{v:?}"), "[redacted]");
        assert_eq!(format!("{:?}", Some(&v)), "Some([redacted])");
        assert_eq!(v.expose(), b"hunter2-canary");
    }

    #[test]
    fn zeroize_clears_the_buffer() {
        let mut v = SecretValue::new(b"abc".to_vec());
        v.zeroize();
        assert!(v.is_empty());
    }

    #[test]
    fn one_trailing_newline_is_trimmed() {
        for (input, want) in [(&b"tok\n"[..], &b"tok"[..]), (b"tok\r\n", b"tok"), (b"tok\n\n", b"tok\n"), (b"tok", b"tok")] {
            let mut v = SecretValue::new(input.to_vec());
            v.trim_trailing_newline();
            assert_eq!(v.expose(), want);
        }
    }
}
