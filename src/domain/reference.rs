//! Image references: `host[:port]/repository[:tag][@sha256:digest]`, always fully qualified.
//!
//! galley never guesses a registry: `debian:12` is an error, so a lock can never silently pin an
//! image from a registry the author did not name.

use std::fmt;

use super::{Digest, Invalid};
use crate::diagnostic::Code;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Reference {
    /// `host` or `host:port`.
    pub registry: String,
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<Digest>,
}

impl Reference {
    pub fn parse(s: &str) -> Result<Reference, String> {
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => (r, Some(Digest::parse(d).map_err(|e| e.to_string())?)),
            None => (s, None),
        };
        let (registry, path) = rest.split_once('/').ok_or("it names no registry host")?;
        let is_host = registry.contains('.') || registry.contains(':') || registry == "localhost";
        if !is_host {
            return Err(format!("`{registry}` is not a registry host (galley never guesses a registry)"));
        }
        let (repository, tag) = match path.rsplit_once(':') {
            Some((r, t)) if !t.contains('/') => (r, Some(t.to_owned())),
            _ => (path, None),
        };
        let repo_ok = !repository.is_empty()
            && repository.split('/').all(|c| {
                !c.is_empty()
                    && c.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
            });
        if !repo_ok {
            return Err(format!("`{repository}` is not a valid repository (lower-case letters, digits, '.', '_', '-', '/')"));
        }
        if let Some(t) = &tag {
            let ok = t.len() <= 128
                && t.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
                && !t.starts_with(['.', '-']);
            if !ok {
                return Err(format!("`{t}` is not a valid tag"));
            }
        }
        if tag.is_none() && digest.is_none() {
            return Err("it has neither a tag nor a digest (write :latest if that is what you mean)".into());
        }
        Ok(Reference { registry: registry.to_owned(), repository: repository.to_owned(), tag, digest })
    }

    /// The same reference pinned to `digest`, keeping the tag for readers.
    pub fn pinned(&self, digest: Digest) -> Reference {
        Reference { digest: Some(digest), ..self.clone() }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl serde::Serialize for Reference {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Reference {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Reference, D::Error> {
        let text = <String as serde::Deserialize>::deserialize(d)?;
        Reference::parse(&text).map_err(|why| serde::de::Error::custom(format!("image reference `{text}`: {why}")))
    }
}

/// What an image is built on: nothing, or a fully qualified image reference.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Base {
    Scratch,
    Image(Reference),
}

impl Base {
    /// How config and the lock name an empty base.
    pub const SCRATCH: &'static str = "scratch";

    pub fn parse(s: &str) -> Result<Base, Invalid> {
        if s == Base::SCRATCH {
            return Ok(Base::Scratch);
        }
        Reference::parse(s).map(Base::Image).map_err(|why| {
            Invalid::new(Code::UnpinnableBase, format!("base image \"{s}\" cannot be pinned: {why}"))
                .help("write a fully qualified reference such as \"registry.example.com/library/debian:12\", or \"scratch\"")
        })
    }

    /// The image reference, unless the base is scratch.
    pub fn image(&self) -> Option<&Reference> {
        match self {
            Base::Scratch => None,
            Base::Image(r) => Some(r),
        }
    }
}

impl fmt::Display for Base {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Base::Scratch => f.write_str(Base::SCRATCH),
            Base::Image(r) => r.fmt(f),
        }
    }
}

super::text_serde!(Base);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bases_are_scratch_or_a_reference_and_print_as_written() {
        assert_eq!(Base::parse("scratch").unwrap(), Base::Scratch);
        let written = "127.0.0.1:5000/galley/busybox:1.36";
        let base = Base::parse(written).unwrap();
        assert_eq!(base.image().unwrap().repository, "galley/busybox");
        assert_eq!(base.to_string(), written);
        let invalid = Base::parse("debian:12").unwrap_err();
        assert_eq!(invalid.code, Code::UnpinnableBase);
        assert!(invalid.message.contains("names no registry host"), "{}", invalid.message);
    }

    #[test]
    fn fully_qualified_references_parse() {
        let r = Reference::parse("127.0.0.1:5000/base/busybox:1.36").unwrap();
        assert_eq!(r.registry, "127.0.0.1:5000");
        assert_eq!(r.repository, "base/busybox");
        assert_eq!(r.tag.as_deref(), Some("1.36"));
        assert_eq!(r.to_string(), "127.0.0.1:5000/base/busybox:1.36");
        let d = format!("sha256:{}", "a".repeat(64));
        let r = Reference::parse(&format!("localhost/x@{d}")).unwrap();
        assert_eq!(r.digest.map(|d| d.to_string()).as_deref(), Some(d.as_str()));
    }

    #[test]
    fn short_and_untagged_references_are_refused() {
        assert!(Reference::parse("debian:12").unwrap_err().contains("registry"));
        assert!(Reference::parse("docker.io/library/debian").unwrap_err().contains("tag"));
        assert!(Reference::parse("docker.io/Library/debian:1").is_err());
        assert!(Reference::parse("docker.io/x@sha256:abc").is_err());
    }
}
