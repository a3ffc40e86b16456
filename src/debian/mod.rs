//! Debian archives as data: control paragraphs, versions and relationship fields, the signed
//! Release and its keyring, Packages indices, the dependency resolver, and the pinned package a
//! lock records. Nothing here touches the network or the disk: `image::apt` fetches and
//! `image::deb` installs.

pub mod control;
pub mod index;
pub mod relation;
pub mod release;
pub mod resolve;
pub mod version;

use std::fmt;

use crate::domain::Digest;

/// One package of a closure, pinned: what the lock writes and the build fetches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pinned {
    pub version: String,
    pub arch: String,
    pub size: u64,
    pub sha256: Digest,
    /// Pool path relative to the archive root.
    pub filename: String,
}

impl Pinned {
    pub fn of(e: &index::Entry) -> Pinned {
        Pinned { version: e.version.to_string(), arch: e.arch.clone(), size: e.size, sha256: e.sha256, filename: e.filename.clone() }
    }

    /// `version arch size sha256:... pool/path`: one line of the lock per package, so a bump's
    /// diff reads `3.11.2-6 ... -> 3.11.2-6+deb12u1 ...`.
    pub fn parse(s: &str) -> Result<Pinned, String> {
        let parts: Vec<&str> = s.split(' ').collect();
        let [version, arch, size, sha256, filename] = parts.as_slice() else {
            return Err(format!("`{s}` is not `version arch size sha256 path`"));
        };
        version::Version::parse(version)?;
        if filename.starts_with('/') || filename.split('/').any(|c| c == ".." || c.is_empty()) {
            return Err(format!("`{filename}` leaves the archive"));
        }
        Ok(Pinned {
            version: (*version).to_owned(),
            arch: (*arch).to_owned(),
            size: size.parse().map_err(|_| format!("`{size}` is not a size"))?,
            sha256: Digest::parse(sha256).map_err(|e| e.to_string())?,
            filename: (*filename).to_owned(),
        })
    }
}

impl fmt::Display for Pinned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {} {} {}", self.version, self.arch, self.size, self.sha256, self.filename)
    }
}

impl serde::Serialize for Pinned {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Pinned {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Pinned, D::Error> {
        Pinned::parse(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pinned_package_is_one_line_and_reads_back() {
        let line = "3.11.2-6+deb12u1 amd64 835952 sha256:743f6a4cf9fa20e2023f40ab53066fc880384b4d950c59e3be46b142cc83030c pool/main/p/python3.11/python3.11-minimal_3.11.2-6+deb12u1_amd64.deb";
        let p = Pinned::parse(line).unwrap();
        assert_eq!(p.to_string(), line);
        assert_eq!(p.size, 835952);
        assert!(Pinned::parse("1 amd64 1 sha256:743f6a4cf9fa20e2023f40ab53066fc880384b4d950c59e3be46b142cc83030c ../x.deb").is_err());
        assert!(Pinned::parse("1 amd64 1").is_err());
    }
}
