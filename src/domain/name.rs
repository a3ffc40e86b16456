//! The name rule of projects, images, sandboxes, volumes and instances: lower-case letters, digits
//! and dashes, starting and ending with a letter or digit, at most 40 characters. Names become
//! parts of container, network and volume names, so nothing else may reach podman.

use std::fmt;
use std::ops::Deref;

use super::Invalid;
use crate::diagnostic::Code;

/// What the schema's `Name` contract tells an author.
pub const NAME_HELP: &str = "use lower-case letters, digits and dashes, starting and ending with a letter or digit (at most 40 characters)";

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Name(String);

impl Name {
    pub fn parse(s: &str) -> Result<Name, Invalid> {
        if !Name::is_valid(s) {
            return Err(Invalid::new(Code::InvalidName, format!("invalid name \"{s}\"")).help(NAME_HELP));
        }
        Ok(Name(s.to_owned()))
    }

    /// Whether `s` follows the name rule.
    pub fn is_valid(s: &str) -> bool {
        let b = s.as_bytes();
        !b.is_empty()
            && b.len() <= 40
            && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
            && b[0] != b'-'
            && b[b.len() - 1] != b'-'
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A volume's name: the name rule, and never a host path, which a sandbox must not see.
    pub fn parse_volume(s: &str) -> Result<Name, Invalid> {
        if s.starts_with('/') || s.starts_with('.') || s.starts_with('~') || s.contains('/') {
            return Err(Invalid::new(Code::HostPath, format!("volume \"{s}\" is a host path")).help(
                "sandboxes never see the host's filesystem: use a named volume (for example \"workspace\") and `galley cp` to move files in and out",
            ));
        }
        Name::parse(s).map_err(|_| {
            Invalid::new(Code::InvalidName, format!("invalid volume name \"{s}\"")).help("use lower-case letters, digits and dashes")
        })
    }

    /// Deserialize a volume's name through [`Name::parse_volume`] (`#[serde(deserialize_with)]`).
    pub fn deserialize_volume<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Name, D::Error> {
        Name::parse_volume(&<String as serde::Deserialize>::deserialize(d)?).map_err(Invalid::into_de)
    }
}

impl Deref for Name {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

super::text_serde!(Name);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_volume_named_like_a_host_path_is_refused_as_one() {
        assert_eq!(Name::parse_volume("workspace").unwrap().as_str(), "workspace");
        for path in ["/etc", "./data", "~/src", "a/b"] {
            assert_eq!(Name::parse_volume(path).unwrap_err().code, Code::HostPath, "{path}");
        }
        assert_eq!(Name::parse_volume("Work").unwrap_err().code, Code::InvalidName);
    }

    #[test]
    fn names_are_lower_case_dashed_and_short() {
        for good in ["web", "pr-12", "a", &"x".repeat(40)] {
            assert_eq!(Name::parse(good).unwrap().as_str(), good);
        }
        for bad in ["", "Web", "-web", "web-", "a_b", "a.b", &"x".repeat(41)] {
            let invalid = Name::parse(bad).unwrap_err();
            assert_eq!((invalid.code, invalid.message), (Code::InvalidName, format!("invalid name \"{bad}\"")));
        }
    }
}
