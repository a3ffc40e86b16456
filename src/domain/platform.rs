//! Image platforms, `os/arch[/variant]`: which image of a multi-platform base an image is built
//! on, parsed where the config names it and where a registry's index lists it.

use std::fmt;

use super::Invalid;
use crate::diagnostic::Code;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Platform {
    os: String,
    architecture: String,
    variant: Option<String>,
}

impl Platform {
    /// `os/arch[/variant]`, each part non-empty.
    pub fn parse(s: &str) -> Result<Platform, Invalid> {
        let mut parts = s.split('/');
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(os), Some(arch), variant, None) => Platform::new(os, arch, variant).map_err(|_| Platform::refuse(s)),
            _ => Err(Platform::refuse(s)),
        }
    }

    /// The platform of the parts a registry's index lists separately.
    pub fn new(os: &str, architecture: &str, variant: Option<&str>) -> Result<Platform, Invalid> {
        let part = |p: &str| !p.is_empty() && !p.contains('/');
        if !part(os) || !part(architecture) || variant.is_some_and(|v| !part(v)) {
            let variant = variant.map(|v| format!("/{v}")).unwrap_or_default();
            return Err(Platform::refuse(&format!("{os}/{architecture}{variant}")));
        }
        Ok(Platform { os: os.into(), architecture: architecture.into(), variant: variant.map(Into::into) })
    }

    fn refuse(s: &str) -> Invalid {
        Invalid::new(Code::Contract, format!("`{s}` is not a platform (write os/arch, for example linux/amd64)"))
            .help("write the platform as os/arch or os/arch/variant, for example \"linux/amd64\" or \"linux/arm64/v8\"")
    }

    /// linux/amd64, the platform an image names when it names none.
    pub fn linux_amd64() -> Platform {
        Platform { os: "linux".into(), architecture: "amd64".into(), variant: None }
    }

    pub fn os(&self) -> &str {
        &self.os
    }

    pub fn architecture(&self) -> &str {
        &self.architecture
    }

    pub fn variant(&self) -> Option<&str> {
        self.variant.as_deref()
    }

    /// Whether an index entry for `other` serves this platform: os and architecture equal, and
    /// the variants equal when both name one.
    pub fn matches(&self, other: &Platform) -> bool {
        self.os == other.os
            && self.architecture == other.architecture
            && (self.variant.is_none() || other.variant.is_none() || self.variant == other.variant)
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

super::text_serde!(Platform);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms_parse_and_match() {
        let p = Platform::parse("linux/arm64/v8").unwrap();
        assert_eq!((p.os(), p.architecture(), p.variant()), ("linux", "arm64", Some("v8")));
        assert_eq!(p.to_string(), "linux/arm64/v8");
        assert!(Platform::parse("linux").is_err());
        assert!(Platform::parse("linux/").is_err());
        assert!(Platform::parse("linux/arm64/v8/x").is_err());
        assert!(Platform::parse("linux/amd64").unwrap().matches(&Platform::parse("linux/amd64").unwrap()));
        assert!(!Platform::parse("linux/amd64").unwrap().matches(&p));
        assert!(Platform::parse("linux/arm64").unwrap().matches(&p));
        assert_eq!(Platform::parse("linux/amd64").unwrap(), Platform::linux_amd64());
    }

    #[test]
    fn a_bad_platform_in_the_config_is_a_contract_error_with_a_fix() {
        let e = Platform::parse("amd64").unwrap_err();
        assert_eq!(e.code, Code::Contract);
        assert!(e.message.contains("`amd64` is not a platform"), "{}", e.message);
        assert!(e.help.is_some());
        assert!(serde_json::from_value::<Platform>("linux/amd64".into()).is_ok());
    }
}
