//! Sizes and resource limits of a sandbox: a byte count written with a unit, a memory limit that is
//! a size or explicitly unlimited, and a CPU quota that is a number of cores or explicitly
//! unlimited. Each keeps the form the config wrote, so the lock and the manifest digest do not move.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::Invalid;
use crate::diagnostic::Code;

const SIZE_HELP: &str = "write a whole number with an optional unit b, k, m or g, for example \"512m\" or \"1g\"";

/// A byte count, written with an optional binary unit (`512m`, `1g`, `64k`, `1024`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Size {
    written: String,
    bytes: u64,
}

impl Size {
    pub fn parse(s: &str) -> Result<Size, Invalid> {
        let bytes = bytes_of(s).ok_or_else(|| Invalid::new(Code::InvalidSize, format!("invalid size \"{s}\"")).help(SIZE_HELP))?;
        Ok(Size { written: s.to_owned(), bytes })
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.written)
    }
}

fn bytes_of(s: &str) -> Option<u64> {
    let s = s.trim();
    let (digits, mult) = match s.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        None => (s, 1u64),
        Some((i, _)) => {
            let mult = match s[i..].to_ascii_lowercase().as_str() {
                "b" => 1,
                "k" | "kb" | "kib" => 1 << 10,
                "m" | "mb" | "mib" => 1 << 20,
                "g" | "gb" | "gib" => 1 << 30,
                _ => return None,
            };
            (&s[..i], mult)
        }
    };
    if digits.is_empty() {
        return None;
    }
    digits.parse::<u64>().ok()?.checked_mul(mult)
}

/// A memory limit: a size, or no limit at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Memory {
    Unlimited,
    Limit(Size),
}

impl Memory {
    /// How config and the lock write "no memory limit".
    pub const UNLIMITED: &'static str = "unlimited";

    pub fn parse(s: &str) -> Result<Memory, Invalid> {
        if s == Memory::UNLIMITED {
            return Ok(Memory::Unlimited);
        }
        Size::parse(s).map(Memory::Limit).map_err(|_| {
            Invalid::new(Code::InvalidSize, format!("invalid memory size \"{s}\"")).help(SIZE_HELP)
        })
    }

    /// The limit in bytes; `None` when unlimited.
    pub fn bytes(&self) -> Option<u64> {
        match self {
            Memory::Unlimited => None,
            Memory::Limit(size) => Some(size.bytes()),
        }
    }
}

impl fmt::Display for Memory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Memory::Unlimited => f.write_str(Memory::UNLIMITED),
            Memory::Limit(size) => size.fmt(f),
        }
    }
}

super::text_serde!(Size);
super::text_serde!(Memory);

/// A CPU quota in cores (0.5 is half a core), or no quota at all. Config and the lock write
/// unlimited as `0`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cpus {
    Unlimited,
    Quota(f64),
}

impl Cpus {
    pub fn parse(cores: f64) -> Result<Cpus, Invalid> {
        if cores == 0.0 {
            return Ok(Cpus::Unlimited);
        }
        if !cores.is_finite() || cores < 0.0 {
            return Err(Invalid::new(Code::Contract, format!("invalid CPU quota {cores}"))
                .help("write a number of cores such as 1 or 0.5, or 0 for no quota"));
        }
        Ok(Cpus::Quota(cores))
    }

    /// The quota in cores; `None` when unlimited.
    pub fn quota(self) -> Option<f64> {
        match self {
            Cpus::Unlimited => None,
            Cpus::Quota(cores) => Some(cores),
        }
    }

    /// The number as config writes it: `0` for unlimited.
    pub fn cores(self) -> f64 {
        self.quota().unwrap_or(0.0)
    }
}

impl fmt::Display for Cpus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.cores().fmt(f)
    }
}

impl Serialize for Cpus {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(self.cores())
    }
}

impl<'de> Deserialize<'de> for Cpus {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Cpus, D::Error> {
        Cpus::parse(f64::deserialize(d)?).map_err(Invalid::into_de)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(s: &str) -> Option<u64> {
        Size::parse(s).ok().map(|s| s.bytes())
    }

    #[test]
    fn sizes_parse_with_binary_units() {
        assert_eq!(bytes("512m"), Some(512 << 20));
        assert_eq!(bytes("1g"), Some(1 << 30));
        assert_eq!(bytes("64KiB"), Some(64 << 10));
        assert_eq!(bytes("1024"), Some(1024));
        assert_eq!(bytes("12x"), None);
        assert_eq!(bytes("m"), None);
        assert_eq!(Size::parse("12x").unwrap_err().message, "invalid size \"12x\"");
    }

    #[test]
    fn memory_is_a_size_or_unlimited_and_prints_as_written() {
        assert_eq!(Memory::parse("unlimited").unwrap(), Memory::Unlimited);
        assert_eq!(Memory::parse("unlimited").unwrap().bytes(), None);
        let m = Memory::parse("512m").unwrap();
        assert_eq!((m.bytes(), m.to_string()), (Some(512 << 20), "512m".to_owned()));
        let invalid = Memory::parse("lots").unwrap_err();
        assert_eq!((invalid.code, invalid.message.as_str()), (Code::InvalidSize, "invalid memory size \"lots\""));
        assert_eq!(serde_json::to_string(&m).unwrap(), "\"512m\"");
    }

    #[test]
    fn zero_cpus_is_unlimited_and_the_number_round_trips() {
        assert_eq!(Cpus::parse(0.0).unwrap(), Cpus::Unlimited);
        assert_eq!(Cpus::parse(0.5).unwrap().quota(), Some(0.5));
        assert!(Cpus::parse(-1.0).is_err());
        for n in [0.0, 1.0, 0.25] {
            let cpus = Cpus::parse(n).unwrap();
            assert_eq!(serde_json::to_string(&cpus).unwrap(), serde_json::to_string(&n).unwrap());
            assert_eq!(cpus.to_string(), n.to_string());
        }
    }
}
