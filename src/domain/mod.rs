//! The domain layer: values that are valid by construction. Each is parsed once, where it enters
//! galley (the config, a registry, a sandbox), and every module past that point takes the type,
//! never the raw string, so nothing re-checks or re-parses it.
//!
//! A value from the config that cannot become its type fails deserialization with an
//! [`Invalid`]: a diagnostic code, a message and a fix, which `lang` places at the field.

pub mod debian;
pub mod idmap;
pub mod labels;
pub mod mount;
pub mod name;
pub mod port;
pub mod digest;
pub mod platform;
pub mod reference;
pub mod resources;
pub mod seccomp;
pub mod user;

pub use debian::{ArchiveUrl, PackageName};
pub use idmap::{IdMap, IdRange};
pub use labels::DEFAULT_INSTANCE;
pub use mount::MountPath;
pub use name::Name;
pub use port::{PortBinding, Protocol};
pub use digest::{Algorithm, Digest, DigestError};
pub use platform::Platform;
pub use reference::{Base, Reference};
pub use resources::{Cpus, Memory, Size};
pub use seccomp::SeccompChoice;
pub use user::UserSpec;

use crate::diagnostic::Code;

/// Why a config value cannot become its domain type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub code: Code,
    pub message: String,
    pub help: Option<String>,
}

/// What separates the message from the help in a deserialization error.
const HELP: &str = "\nhelp: ";

impl Invalid {
    pub fn new(code: Code, message: impl Into<String>) -> Invalid {
        Invalid { code, message: message.into(), help: None }
    }

    pub fn help(mut self, help: impl Into<String>) -> Invalid {
        self.help = Some(help.into());
        self
    }

    /// As a serde error: serde carries only text, so the code and the help travel in it, in the
    /// form galley's Nickel contracts use (`[G103] message`), and [`Invalid::decode`] reads it back.
    pub fn into_de<E: serde::de::Error>(self) -> E {
        let help = self.help.map(|h| format!("{HELP}{h}")).unwrap_or_default();
        E::custom(format!("[{}] {}{help}", self.code, self.message))
    }

    /// The `Invalid` a deserialization error message carries, if it came from a domain type.
    pub fn decode(text: &str) -> Option<Invalid> {
        let rest = text.strip_prefix("[G")?;
        let (id, rest) = rest.split_once("] ")?;
        let code = Code::parse(&format!("G{id}"))?;
        let (message, help) = match rest.split_once(HELP) {
            Some((m, h)) => (m, Some(h.to_owned())),
            None => (rest, None),
        };
        Some(Invalid { code, message: message.to_owned(), help })
    }
}

/// Serialize a domain type as its `Display` text and deserialize (and `FromStr`) it through its `parse`, so the
/// lock and the manifest hold exactly the string the config wrote (or its normal form).
macro_rules! text_serde {
    ($t:ty) => {
        impl serde::Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl std::str::FromStr for $t {
            type Err = $crate::domain::Invalid;

            fn from_str(s: &str) -> Result<$t, $crate::domain::Invalid> {
                <$t>::parse(s)
            }
        }

        impl<'de> serde::Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<$t, D::Error> {
                <$t>::parse(&<String as serde::Deserialize>::deserialize(d)?).map_err($crate::domain::Invalid::into_de)
            }
        }
    };
}
use text_serde;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_invalid_value_survives_the_trip_through_serde() {
        let invalid = Invalid::new(Code::UnpinnableBase, "base image \"x\" cannot be pinned").help("write a reference");
        let e: serde_json::Error = invalid.clone().into_de();
        assert_eq!(Invalid::decode(&e.to_string()), Some(invalid));
        assert_eq!(Invalid::decode("invalid type: string"), None);
        assert_eq!(Invalid::decode("[G999] unknown code"), None);
    }
}
