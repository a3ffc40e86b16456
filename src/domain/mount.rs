//! Mount points inside a sandbox: absolute, without `..`, and lexically normalised when parsed (no
//! empty or `.` components, no trailing `/`), so two spellings of one place compare equal.

use std::fmt;
use std::path::Path;

use super::Invalid;
use crate::diagnostic::Code;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MountPath(String);

impl MountPath {
    pub fn parse(p: &str) -> Result<MountPath, Invalid> {
        if !p.starts_with('/') {
            return Err(Invalid::new(Code::InvalidPath, format!("relative path \"{p}\" where an absolute path is required"))
                .help(format!("write a path inside the sandbox starting with '/', for example \"/{p}\"")));
        }
        let parts: Vec<&str> = p.split('/').filter(|c| !c.is_empty() && *c != ".").collect();
        if parts.contains(&"..") {
            return Err(Invalid::new(Code::InvalidPath, format!("path \"{p}\" contains '..'")).help("write the path without '..' components"));
        }
        Ok(MountPath(format!("/{}", parts.join("/"))))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this path is `dir` or lies beneath it (`dir` is normalised the same way).
    pub fn is_within(&self, dir: &MountPath) -> bool {
        Path::new(&self.0).starts_with(&dir.0)
    }
}

impl AsRef<Path> for MountPath {
    fn as_ref(&self) -> &Path {
        Path::new(&self.0)
    }
}

impl fmt::Display for MountPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

super::text_serde!(MountPath);

#[cfg(test)]
mod tests {
    use super::*;

    fn path(p: &str) -> MountPath {
        MountPath::parse(p).unwrap()
    }

    #[test]
    fn mount_points_are_normalised_so_spellings_of_one_place_are_equal() {
        assert_eq!(path("/workspace//data/./"), path("/workspace/data"));
        assert_eq!(path("/workspace//data/./").as_str(), "/workspace/data");
        assert_eq!(path("/").as_str(), "/");
        assert!(path("/run/secrets/x").is_within(&path("/run/secrets")));
        assert!(path("/run/secrets/").is_within(&path("/run/secrets")));
        assert!(!path("/run/secretsx").is_within(&path("/run/secrets")));
    }

    #[test]
    fn relative_and_dotdot_paths_are_refused_with_the_contracts_message() {
        let relative = MountPath::parse("workspace").unwrap_err();
        assert_eq!((relative.code, relative.message.as_str()), (Code::InvalidPath, "relative path \"workspace\" where an absolute path is required"));
        assert_eq!(MountPath::parse("/a/../etc").unwrap_err().message, "path \"/a/../etc\" contains '..'");
    }
}
