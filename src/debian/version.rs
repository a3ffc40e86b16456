//! Debian package versions (`[epoch:]upstream[-revision]`) and their order, as dpkg compares them
//! (Debian policy 5.6.12): epochs numerically, then upstream and revision part by part, digits
//! numerically, letters before non-letters, and `~` before everything, even the end.

use std::cmp::Ordering;
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Version {
    epoch: u32,
    upstream: String,
    revision: String,
    text: String,
}

impl Version {
    pub fn parse(s: &str) -> Result<Version, String> {
        let text = s.trim();
        let (epoch, rest) = match text.split_once(':') {
            Some((e, r)) => (e.parse::<u32>().map_err(|_| format!("`{s}`: the epoch is not a number"))?, r),
            None => (0, text),
        };
        let (upstream, revision) = match rest.rsplit_once('-') {
            Some((u, r)) => (u, r),
            None => (rest, ""),
        };
        let allowed = |c: char| c.is_ascii_alphanumeric() || ".+~-:".contains(c);
        if upstream.is_empty() || !upstream.starts_with(|c: char| c.is_ascii_digit()) || !rest.chars().all(allowed) {
            return Err(format!("`{s}` is not a Debian version"));
        }
        Ok(Version { epoch, upstream: upstream.into(), revision: revision.into(), text: text.into() })
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        self.epoch
            .cmp(&other.epoch)
            .then_with(|| compare_part(&self.upstream, &other.upstream))
            .then_with(|| compare_part(&self.revision, &other.revision))
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The weight of a character in the non-digit runs: `~` lowest, then the end of the string,
/// then letters, then everything else.
fn weight(c: Option<u8>) -> i32 {
    match c {
        None => 0,
        Some(b'~') => -1,
        Some(c) if c.is_ascii_alphabetic() => i32::from(c),
        Some(c) => i32::from(c) + 256,
    }
}

fn compare_part(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    while !a.is_empty() || !b.is_empty() {
        // The non-digit prefix, character by character.
        loop {
            let ca = a.first().copied().filter(|c| !c.is_ascii_digit());
            let cb = b.first().copied().filter(|c| !c.is_ascii_digit());
            if ca.is_none() && cb.is_none() {
                break;
            }
            match weight(ca).cmp(&weight(cb)) {
                Ordering::Equal => {}
                other => return other,
            }
            if ca.is_some() {
                a = &a[1..];
            }
            if cb.is_some() {
                b = &b[1..];
            }
        }
        // Then the digit run, numerically (leading zeros ignored).
        let digits = |s: &[u8]| s.iter().take_while(|c| c.is_ascii_digit()).count();
        let (na, nb) = (digits(a), digits(b));
        let (da, db) = (trim_zeros(&a[..na]), trim_zeros(&b[..nb]));
        match da.len().cmp(&db.len()).then_with(|| da.cmp(db)) {
            Ordering::Equal => {}
            other => return other,
        }
        a = &a[na..];
        b = &b[nb..];
    }
    Ordering::Equal
}

fn trim_zeros(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|&&c| c == b'0').count();
    &s[n..]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    #[test]
    fn versions_order_as_dpkg_orders_them() {
        let ascending = [
            "1.0~rc1", "1.0", "1.0-1", "1.0-1+b1", "1.0-2", "1.0a", "1.0.1", "1.00.2", "1.10", "2.36-9+deb12u1",
            "2.36-9+deb12u14", "3.11.2-6", "3.11.2-6+deb12u1", "1:0.1",
        ];
        for pair in ascending.windows(2) {
            assert_eq!(v(pair[0]).cmp(&v(pair[1])), Ordering::Less, "{} < {}", pair[0], pair[1]);
        }
        assert_eq!(v("1.0-01").cmp(&v("1.0-1")), Ordering::Equal);
        assert_eq!(v("0:1.2").cmp(&v("1.2")), Ordering::Equal);
        assert_eq!(v("1:1.2.13.dfsg-1+deb12u1").to_string(), "1:1.2.13.dfsg-1+deb12u1");
        assert!(Version::parse("x1.0").is_err());
        assert!(Version::parse("a:1").is_err());
    }
}
