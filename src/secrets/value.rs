//! `SecretValue`: secret bytes in memory, redacted when printed and zeroized when dropped.

use std::fmt;

use zeroize::{Zeroize, Zeroizing};

/// The bytes of a secret. `Debug` and `Display` print `[redacted]`; there is no `Serialize` and
/// no `Clone`; the buffer is overwritten with zeros when the value is dropped. Borrow the bytes
/// with [`expose_secret`] only where they leave galley's custody (a secret file, the sealed
/// store) or are compared; never copy them into another buffer.
///
/// [`expose_secret`]: SecretValue::expose_secret
#[derive(Default)]
pub struct SecretValue(Zeroizing<Vec<u8>>);

impl SecretValue {
    /// Take ownership of `bytes` (no copy is made).
    pub fn new(bytes: Vec<u8>) -> SecretValue {
        SecretValue(Zeroizing::new(bytes))
    }

    /// The secret bytes, borrowed. Every call site outside tests is listed in this module's test
    /// `the_bytes_are_borrowed_only_where_they_are_written_or_compared`.
    pub fn expose_secret(&self) -> &[u8] {
        &self.0
    }

    /// Whether the value occurs in `haystack` (a process's environment, a recorded command):
    /// the one comparison of secret bytes, so no caller needs a copy of them.
    pub fn occurs_in(&self, haystack: &[u8]) -> bool {
        !self.0.is_empty() && haystack.windows(self.0.len()).any(|w| w == self.0.as_slice())
    }

    /// `text` with each line of the value (trimmed, four characters or more) replaced by
    /// `[redacted]`: for output of a program that had the value (a failing secret helper, a
    /// build step), so no caller needs the bytes.
    pub fn redact_in(&self, text: &str) -> String {
        let value = String::from_utf8_lossy(&self.0);
        value.lines().map(str::trim).filter(|p| p.len() >= 4).fold(text.to_owned(), |t, p| t.replace(p, "[redacted]"))
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
        assert_eq!(v.expose_secret(), b"hunter2-canary");
    }

    /// `Probe::<T>::CLONE` is the inherent `true` when `T: Clone`, else the trait's `false`.
    struct Probe<T>(std::marker::PhantomData<T>);
    trait NotClone {
        const CLONE: bool = false;
    }
    impl<T> NotClone for Probe<T> {}
    impl<T: Clone> Probe<T> {
        #[allow(dead_code)]
        const CLONE: bool = true;
    }

    #[test]
    fn a_value_cannot_be_cloned() {
        assert!(Probe::<String>::CLONE, "the probe sees Clone where it is");
        assert!(!Probe::<SecretValue>::CLONE, "a SecretValue must not be copyable by clone()");
    }

    /// Every place outside tests that borrows a secret's bytes, with why it must. A new call site
    /// (say, one that copies the value into a `Vec` to pass it on) fails this test.
    #[test]
    fn the_bytes_are_borrowed_only_where_they_are_written_or_compared() {
        let allowed: &[(&str, usize, &str)] = &[
            ("runtime/secrets_dir.rs", 1, "writes the secret file on the tmpfs"),
            ("image/containerfile/build.rs", 1, "writes a build secret's file for buildah's --secret"),
            ("secrets/store.rs", 1, "seals the value into the encrypted store"),
            ("cli/secret.rs", 1, "parses a new master key typed at the prompt"),
            ("serve/status.rs", 1, "sends the API token in a sensitive Authorization header"),
            ("serve/webhook.rs", 1, "keys the HMAC that checks a delivery's signature"),
        ];
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut found = Vec::new();
        let mut stack = vec![src.clone()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                let rel = path.strip_prefix(&src).unwrap().to_string_lossy().into_owned();
                if path.is_dir() {
                    stack.push(path);
                } else if rel.ends_with(".rs") && !rel.ends_with("tests.rs") && !rel.contains("/tests/") {
                    let text = std::fs::read_to_string(&path).unwrap();
                    // Inline unit tests come last in a file.
                    let code = text.split("#[cfg(test)]\nmod tests").next().unwrap();
                    let n = code.matches(".expose_secret()").count();
                    if n > 0 && rel != "secrets/value.rs" {
                        found.push((rel, n));
                    }
                }
            }
        }
        found.sort();
        let mut want: Vec<(String, usize)> = allowed.iter().map(|(f, n, _)| (f.to_string(), *n)).collect();
        want.sort();
        assert_eq!(found, want, "borrow a secret's bytes only to write or compare them; see SecretValue");
    }

    #[test]
    fn occurrences_are_found_without_a_copy() {
        let v = SecretValue::new(b"tok-5f3c".to_vec());
        assert!(v.occurs_in(b"LEAK=tok-5f3c\0PATH=/bin"));
        assert!(!v.occurs_in(b"LEAK=tok-5f3"));
        assert!(!SecretValue::default().occurs_in(b"anything"), "an empty value occurs nowhere");
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
            assert_eq!(v.expose_secret(), want);
        }
    }
}
