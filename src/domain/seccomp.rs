//! A sandbox's seccomp choice: a profile of galley's standard library by name, no filter at all,
//! or a custom profile in the OCI JSON format.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Invalid;
use crate::diagnostic::Code;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SeccompChoice {
    /// An allowlist like podman's.
    Default,
    /// The default allowlist without the syscalls that widen a sandbox.
    Strict,
    /// No filter (reported by `galley check`).
    Unconfined,
    /// A custom profile, with at least `defaultAction` and `syscalls`.
    Custom(Value),
}

const NAMES_HELP: &str = "use 'default, 'strict or 'unconfined, or a custom profile record";

impl SeccompChoice {
    /// The profile name config and the manifest write for no filter.
    pub const UNCONFINED: &'static str = "unconfined";
    /// The profile name the manifest records for a custom profile.
    pub const CUSTOM: &'static str = "custom";

    /// A choice by name: `default`, `strict` or `unconfined`.
    pub fn named(name: &str) -> Result<SeccompChoice, Invalid> {
        match name {
            "default" => Ok(SeccompChoice::Default),
            "strict" => Ok(SeccompChoice::Strict),
            SeccompChoice::UNCONFINED => Ok(SeccompChoice::Unconfined),
            _ => Err(Invalid::new(Code::InvalidSeccomp, format!("unknown seccomp profile '{name}")).help(NAMES_HELP)),
        }
    }

    pub fn custom(profile: Value) -> Result<SeccompChoice, Invalid> {
        if profile.get("defaultAction").is_some() && profile.get("syscalls").is_some_and(Value::is_array) {
            return Ok(SeccompChoice::Custom(profile));
        }
        Err(Invalid::new(Code::InvalidSeccomp, "a custom seccomp profile needs defaultAction and syscalls")
            .help("write the profile in the OCI JSON format, or start from galley.seccomp.default"))
    }

    /// The name of the standard library's profile this choice uses, if it is one.
    pub fn library_profile(&self) -> Option<&'static str> {
        match self {
            SeccompChoice::Default => Some("default"),
            SeccompChoice::Strict => Some("strict"),
            SeccompChoice::Unconfined | SeccompChoice::Custom(_) => None,
        }
    }

    /// The profile's name as the manifest records it.
    pub fn name(&self) -> &'static str {
        match self {
            SeccompChoice::Unconfined => SeccompChoice::UNCONFINED,
            SeccompChoice::Custom(_) => SeccompChoice::CUSTOM,
            named => named.library_profile().expect("a library profile"),
        }
    }
}

impl Serialize for SeccompChoice {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            SeccompChoice::Custom(profile) => profile.serialize(s),
            named => s.serialize_str(named.name()),
        }
    }
}

impl<'de> Deserialize<'de> for SeccompChoice {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<SeccompChoice, D::Error> {
        let choice = match Value::deserialize(d)? {
            Value::String(name) => SeccompChoice::named(&name),
            profile @ Value::Object(_) => SeccompChoice::custom(profile),
            _ => Err(Invalid::new(Code::InvalidSeccomp, "expected a seccomp profile").help(NAMES_HELP)),
        };
        choice.map_err(Invalid::into_de)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn choices_are_named_unconfined_or_custom_and_serialize_as_written() {
        for name in ["default", "strict", "unconfined"] {
            let choice: SeccompChoice = serde_json::from_value(json!(name)).unwrap();
            assert_eq!((choice.name(), serde_json::to_value(&choice).unwrap()), (name, json!(name)));
        }
        let profile = json!({ "defaultAction": "SCMP_ACT_ERRNO", "syscalls": [] });
        let custom: SeccompChoice = serde_json::from_value(profile.clone()).unwrap();
        assert_eq!((custom.name(), serde_json::to_value(&custom).unwrap()), ("custom", profile));
        let unknown = SeccompChoice::named("nope").unwrap_err();
        assert_eq!((unknown.code, unknown.message.as_str()), (Code::InvalidSeccomp, "unknown seccomp profile 'nope"));
        assert!(serde_json::from_value::<SeccompChoice>(json!({ "syscalls": [] })).is_err());
    }
}
