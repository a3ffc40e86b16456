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

    /// The size of a tmpfs: the kernel reads `size=0` as no limit, so a tmpfs of 0 could fill the
    /// host's memory; it is refused.
    pub fn parse_tmpfs(s: &str) -> Result<Size, Invalid> {
        let size = Size::parse(s)?;
        if size.bytes == 0 {
            return Err(Invalid::new(Code::TmpfsUnlimited, format!("tmpfs size \"{s}\" is 0, which the kernel reads as no limit"))
                .help("write the most the directory may hold, for example \"64m\""));
        }
        Ok(size)
    }

    /// Deserialize a tmpfs size through [`Size::parse_tmpfs`].
    pub fn deserialize_tmpfs<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Size, D::Error> {
        Size::parse_tmpfs(&<String as serde::Deserialize>::deserialize(d)?).map_err(Invalid::into_de)
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

    /// The least limit podman applies (`minimum memory limit allowed is 6MB`); `0` is its "no
    /// limit", so it is refused too rather than silently widening the sandbox.
    pub const MIN_BYTES: u64 = 6 << 20;

    pub fn parse(s: &str) -> Result<Memory, Invalid> {
        if s == Memory::UNLIMITED {
            return Ok(Memory::Unlimited);
        }
        let size = Size::parse(s).map_err(|_| {
            Invalid::new(Code::InvalidSize, format!("invalid memory size \"{s}\"")).help(SIZE_HELP)
        })?;
        if size.bytes() == 0 {
            return Err(Invalid::new(Code::MemoryTooLow, format!("memory limit \"{s}\" is 0, which podman takes as no limit at all"))
                .help("write a limit such as \"512m\", or \"unlimited\" if the sandbox really needs no limit"));
        }
        if size.bytes() < Memory::MIN_BYTES {
            return Err(Invalid::new(Code::MemoryTooLow, format!("memory limit \"{s}\" is below podman's minimum of 6 MiB"))
                .help("write at least \"6m\"; most programs need far more, for example \"64m\""));
        }
        Ok(Memory::Limit(size))
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
    /// The least quota the kernel takes: 1 ms of CPU time per 100 ms period (podman: `CPU cfs
    /// quota cannot be less than 1ms`).
    pub const MIN: f64 = 0.01;

    pub fn parse(cores: f64) -> Result<Cpus, Invalid> {
        if cores == 0.0 {
            return Ok(Cpus::Unlimited);
        }
        if !cores.is_finite() || cores < 0.0 {
            return Err(Invalid::new(Code::InvalidCpus, format!("CPU quota {cores} is negative; podman would run the sandbox with no CPU limit"))
                .help("write a number of cores such as 1 or 0.5, or 0 for no quota"));
        }
        if cores < Cpus::MIN {
            return Err(Invalid::new(Code::InvalidCpus, format!("CPU quota {cores} is below the kernel's minimum of 0.01 cores"))
                .help("write at least 0.01 (1 ms of CPU time every 100 ms), for example 0.1"));
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
        assert_eq!(Size::parse_tmpfs("0k").unwrap_err().code, Code::TmpfsUnlimited);
        assert_eq!(Size::parse_tmpfs("1k").unwrap().bytes(), 1024);
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
    fn memory_of_zero_or_under_six_mib_is_refused_as_podman_would_widen_or_refuse_it() {
        for s in ["0", "0m", "0g", "5m", "6291455"] {
            assert_eq!(Memory::parse(s).unwrap_err().code, Code::MemoryTooLow, "{s}");
        }
        assert!(Memory::parse("0").unwrap_err().message.contains("no limit"));
        assert_eq!(Memory::parse("6m").unwrap().bytes(), Some(6 << 20));
    }

    #[test]
    fn zero_cpus_is_unlimited_and_the_number_round_trips() {
        assert_eq!(Cpus::parse(0.0).unwrap(), Cpus::Unlimited);
        assert_eq!(Cpus::parse(0.5).unwrap().quota(), Some(0.5));
        assert_eq!(Cpus::parse(-1.0).unwrap_err().code, Code::InvalidCpus);
        assert_eq!(Cpus::parse(0.001).unwrap_err().code, Code::InvalidCpus);
        assert_eq!(Cpus::parse(0.01).unwrap().quota(), Some(0.01));
        for n in [0.0, 1.0, 0.25] {
            let cpus = Cpus::parse(n).unwrap();
            assert_eq!(serde_json::to_string(&cpus).unwrap(), serde_json::to_string(&n).unwrap());
            assert_eq!(cpus.to_string(), n.to_string());
        }
    }
}
