//! Debian names and addresses as the config writes them: a package name (Debian policy 5.6.1) and
//! the URL of an archive mirror or snapshot, each parsed once where the config names it.

use std::fmt;

use super::Invalid;
use crate::diagnostic::Code;

/// A binary package name: lower-case letters, digits, `+`, `-` and `.`, at least two
/// characters, starting with a letter or digit.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PackageName(String);

impl PackageName {
    pub fn parse(s: &str) -> Result<PackageName, Invalid> {
        let ok = s.len() >= 2
            && s.len() <= 128
            && s.as_bytes()[0].is_ascii_alphanumeric()
            && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+-.".contains(&b));
        if !ok {
            return Err(Invalid::new(Code::InvalidPackage, format!("`{s}` is not a Debian package name"))
                .help("a package name has lower-case letters, digits, `+`, `-` and `.` and starts with a letter or digit, for example \"python3-minimal\""));
        }
        Ok(PackageName(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PackageName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

super::text_serde!(PackageName);

/// The root of a Debian archive (`http://deb.debian.org/debian`,
/// `https://snapshot.debian.org/archive/debian/20240101T000000Z`): `http` or `https`, a host, an
/// optional port and a path, without query, fragment or credentials. Written without a trailing
/// slash.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ArchiveUrl {
    https: bool,
    host: String,
    port: Option<u16>,
    path: String,
}

impl ArchiveUrl {
    pub fn parse(s: &str) -> Result<ArchiveUrl, Invalid> {
        let refuse = |why: &str| {
            Invalid::new(Code::InvalidMirror, format!("`{s}` is not an archive URL: {why}"))
                .help("write the archive's root as http(s)://host[:port]/path, for example \"http://deb.debian.org/debian\"")
        };
        let (https, rest) = match (s.strip_prefix("https://"), s.strip_prefix("http://")) {
            (Some(r), _) => (true, r),
            (None, Some(r)) => (false, r),
            _ => return Err(refuse("it must start with http:// or https://")),
        };
        if rest.contains(['?', '#', '@', ' ', '\\']) {
            return Err(refuse("no query, fragment, credentials or spaces"));
        }
        let (authority, path) = rest.split_once('/').map(|(a, p)| (a, format!("/{p}"))).unwrap_or((rest, String::new()));
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, after) = v6.split_once(']').ok_or_else(|| refuse("an IPv6 host needs its closing `]`"))?;
            let port = match after.strip_prefix(':') {
                Some(p) => Some(p.parse::<u16>().map_err(|_| refuse("the port is not a number"))?),
                None if after.is_empty() => None,
                None => return Err(refuse("unexpected text after the IPv6 host")),
            };
            (format!("[{h}]"), port)
        } else {
            match authority.split_once(':') {
                Some((h, p)) => (h.to_owned(), Some(p.parse::<u16>().map_err(|_| refuse("the port is not a number"))?)),
                None => (authority.to_owned(), None),
            }
        };
        if host.is_empty() || !host.bytes().all(|b| b.is_ascii_alphanumeric() || b"-.[]:".contains(&b)) {
            return Err(refuse("the host is empty or holds characters a host cannot"));
        }
        if path.split('/').any(|c| c == ".." || c == ".") {
            return Err(refuse("the path holds `.` or `..`"));
        }
        Ok(ArchiveUrl { https, host: host.to_ascii_lowercase(), port, path: path.trim_end_matches('/').to_owned() })
    }
}

impl ArchiveUrl {
    /// The host as a URL writes it (`[::1]` for IPv6).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port, explicit or the scheme's.
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(if self.https { 443 } else { 80 })
    }

    pub fn is_https(&self) -> bool {
        self.https
    }

    /// `host` or `host:port` as the registries table of the config names it.
    pub fn authority(&self) -> String {
        match self.port {
            Some(p) => format!("{}:{p}", self.host),
            None => self.host.clone(),
        }
    }

    /// The URL of `rel` (a path inside the archive, such as `dists/bookworm/InRelease`), with
    /// the bytes a path cannot hold percent-encoded (a pool file named `zlib1g_1%3a1.2.13...`
    /// is fetched as `zlib1g_1%253a1.2.13...`, as APT does).
    pub fn join(&self, rel: &str) -> String {
        let mut out = format!("{self}/");
        for b in rel.trim_start_matches('/').bytes() {
            if b.is_ascii_alphanumeric() || b"-._~/+:,=@".contains(&b) {
                out.push(char::from(b));
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
        out
    }
}

impl fmt::Display for ArchiveUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}{}", if self.https { "https" } else { "http" }, self.authority(), self.path)
    }
}

super::text_serde!(ArchiveUrl);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_names_follow_policy() {
        for ok in ["python3-minimal", "libstdc++6", "g++", "python3.11-minimal", "0ad"] {
            assert_eq!(PackageName::parse(ok).unwrap().as_str(), ok);
        }
        for bad in ["", "a", "Python3", "-x", "a b", "foo:amd64", "x/y"] {
            let e = PackageName::parse(bad).unwrap_err();
            assert_eq!(e.code, Code::InvalidPackage, "{bad}");
        }
    }

    #[test]
    fn archive_urls_are_normalised_and_refuse_what_a_mirror_is_not() {
        let u = ArchiveUrl::parse("http://127.0.0.1:8080/debian/").unwrap();
        assert_eq!(u.to_string(), "http://127.0.0.1:8080/debian");
        assert_eq!((u.host(), u.port(), u.authority().as_str()), ("127.0.0.1", 8080, "127.0.0.1:8080"));
        assert_eq!(u.join("dists/bookworm/InRelease"), "http://127.0.0.1:8080/debian/dists/bookworm/InRelease");
        assert_eq!(u.join("pool/z/zlib1g_1%3a1.2_amd64 x.deb"), "http://127.0.0.1:8080/debian/pool/z/zlib1g_1%253a1.2_amd64%20x.deb");
        let s = ArchiveUrl::parse("https://Snapshot.debian.org/archive/debian/20240101T000000Z").unwrap();
        assert_eq!((s.host(), s.port()), ("snapshot.debian.org", 443));
        assert_eq!(ArchiveUrl::parse("http://[::1]:81/d").unwrap().authority(), "[::1]:81");
        for bad in ["ftp://x/debian", "deb.debian.org/debian", "http://u:p@h/d", "http://h/d?x", "http://h:x/d", "http:///d", "http://h/../d"] {
            assert_eq!(ArchiveUrl::parse(bad).unwrap_err().code, Code::InvalidMirror, "{bad}");
        }
    }
}
