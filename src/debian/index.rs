//! A `Packages` index: one paragraph per binary package, read into the entries the resolver
//! chooses from. Only the architecture asked for and `all` are kept; an entry galley could not
//! fetch safely (no SHA-256, a pool path leaving the archive) is refused by name.

use super::control;
use super::relation::{self, Relation};
use super::version::Version;
use crate::domain::Digest;

/// One binary package of an index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub version: Version,
    pub arch: String,
    /// Pool path relative to the archive root.
    pub filename: String,
    pub size: u64,
    pub sha256: Digest,
    pub pre_depends: Vec<Vec<Relation>>,
    pub depends: Vec<Vec<Relation>>,
    pub provides: Vec<Relation>,
    pub essential: bool,
    pub priority: String,
}

/// The entries of `text` for `arch` (and `all`), in the index's order.
pub fn parse(text: &str, arch: &str) -> Result<Vec<Entry>, String> {
    let mut out = Vec::new();
    for p in control::parse(text)? {
        let name = p.get("Package").ok_or("an entry has no Package field")?;
        let entry_arch = p.get("Architecture").unwrap_or("");
        if entry_arch != arch && entry_arch != "all" {
            continue;
        }
        let field = |f: &str| p.get(f).ok_or_else(|| format!("package `{name}` has no {f} field"));
        let bad = |f: &str, e: String| format!("package `{name}`, field {f}: {e}");
        let version = Version::parse(field("Version")?).map_err(|e| bad("Version", e))?;
        let filename = field("Filename")?.to_owned();
        if filename.starts_with('/') || filename.split('/').any(|c| c == ".." || c == "." || c.is_empty()) {
            return Err(bad("Filename", format!("`{filename}` leaves the archive")));
        }
        let size = field("Size")?.parse::<u64>().map_err(|_| bad("Size", "not a number".into()))?;
        let sha256 = Digest::parse(&format!("sha256:{}", field("SHA256")?)).map_err(|e| bad("SHA256", e.to_string()))?;
        let rel = |f: &str| p.get(f).map(relation::parse).transpose().map_err(|e| bad(f, e)).map(Option::unwrap_or_default);
        let provides = rel("Provides")?.into_iter().flatten().collect();
        out.push(Entry {
            name: name.to_owned(),
            version,
            arch: entry_arch.to_owned(),
            filename,
            size,
            sha256,
            pre_depends: rel("Pre-Depends")?,
            depends: rel("Depends")?,
            provides,
            essential: p.get("Essential") == Some("yes"),
            priority: p.get("Priority").unwrap_or("optional").to_owned(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "743f6a4cf9fa20e2023f40ab53066fc880384b4d950c59e3be46b142cc83030c";

    #[test]
    fn keeps_the_architecture_and_all_and_refuses_paths_that_leave() {
        let text = format!(
            "Package: a\nVersion: 1\nArchitecture: amd64\nFilename: pool/a.deb\nSize: 3\nSHA256: {SHA}\nDepends: b (>= 1) | c\nProvides: v (= 2)\nEssential: yes\n\n\
             Package: a\nVersion: 1\nArchitecture: arm64\nFilename: pool/a2.deb\nSize: 3\nSHA256: {SHA}\n\n\
             Package: d\nVersion: 2\nArchitecture: all\nFilename: pool/d.deb\nSize: 3\nSHA256: {SHA}\n"
        );
        let es = parse(&text, "amd64").unwrap();
        assert_eq!(es.iter().map(|e| e.name.as_str()).collect::<Vec<_>>(), ["a", "d"]);
        assert!(es[0].essential && !es[1].essential);
        assert_eq!(es[0].depends[0].len(), 2);
        assert_eq!(es[0].provides[0].to_string(), "v (= 2)");
        let evil = format!("Package: e\nVersion: 1\nArchitecture: all\nFilename: pool/../../etc/x.deb\nSize: 3\nSHA256: {SHA}\n");
        assert!(parse(&evil, "amd64").unwrap_err().contains("leaves the archive"));
        let unsummed = "Package: e\nVersion: 1\nArchitecture: all\nFilename: pool/e.deb\nSize: 3\n";
        assert!(parse(unsummed, "amd64").unwrap_err().contains("SHA256"));
    }
}
