//! User namespace id mappings: each [`IdRange`] maps `count` ids from `inside` (the sandbox's
//! view) to `outside` (the host's). Parsed once from the kernel's `/proc/PID/uid_map` or from
//! podman's record (`0:2147483647:65536`), then compared as numbers.

use std::fmt;

/// One line of a mapping: ids `inside..inside+count` are `outside..outside+count` on the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IdRange {
    pub inside: u32,
    pub outside: u32,
    pub count: u32,
}

/// A whole mapping (uid_map or gid_map), line by line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdMap(pub Vec<IdRange>);

/// How many ids each sandbox's user namespace maps (podman's `--userns=auto:size=`): ids inside
/// run from 0 to `SANDBOX_IDS - 1`, which covers `nobody` (65534).
pub const SANDBOX_IDS: u32 = 65536;

/// The mapping of the host's own user namespace: every id is itself.
pub const IDENTITY: IdRange = IdRange { inside: 0, outside: 0, count: u32::MAX };

impl IdRange {
    /// The host ids `[start, end)` this range maps onto (u64, so the identity range fits).
    pub fn outside_span(&self) -> (u64, u64) {
        (u64::from(self.outside), u64::from(self.outside) + u64::from(self.count))
    }

    fn overlaps(&self, other: &IdRange) -> bool {
        let ((a, b), (c, d)) = (self.outside_span(), other.outside_span());
        a < d && c < b
    }
}

impl IdMap {
    /// `/proc/PID/uid_map` or `gid_map`: lines of three whitespace-separated numbers.
    pub fn parse_proc(text: &str) -> Result<IdMap, String> {
        let mut out = Vec::new();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let n: Vec<u32> = line.split_whitespace().map(str::parse).collect::<Result<_, _>>().map_err(|e| format!("`{line}`: {e}"))?;
            match n[..] {
                [inside, outside, count] => out.push(IdRange { inside, outside, count }),
                _ => return Err(format!("`{line}`: expected three numbers")),
            }
        }
        Ok(IdMap(out))
    }

    /// podman's `HostConfig.IDMappings.UidMap` entries, `inside:outside:count` each.
    pub fn parse_podman<S: AsRef<str>>(entries: &[S]) -> Result<IdMap, String> {
        let text: Vec<String> = entries.iter().map(|e| e.as_ref().replace(':', " ")).collect();
        IdMap::parse_proc(&text.join("\n"))
    }

    /// The host id of `id` inside, when it is mapped.
    pub fn host_id(&self, id: u32) -> Option<u32> {
        self.0.iter().find(|r| id >= r.inside && u64::from(id) < u64::from(r.inside) + u64::from(r.count)).map(|r| r.outside + (id - r.inside))
    }

    /// The id inside of host id `id`, when it is mapped.
    pub fn inside_id(&self, id: u32) -> Option<u32> {
        self.0.iter().find(|r| id >= r.outside && u64::from(id) < u64::from(r.outside) + u64::from(r.count)).map(|r| r.inside + (id - r.outside))
    }

    /// Whether the host's id 0 (root) is among the ids this mapping uses.
    pub fn maps_host_root(&self) -> bool {
        self.0.iter().any(|r| r.outside == 0 && r.count > 0)
    }

    /// Whether any host id is used by both mappings.
    pub fn overlaps(&self, other: &IdMap) -> bool {
        self.0.iter().any(|a| other.0.iter().any(|b| a.overlaps(b)))
    }

    /// Whether host id `id` is among the ids this mapping uses.
    pub fn uses_host_id(&self, id: u32) -> bool {
        self.0.iter().any(|r| r.overlaps(&IdRange { inside: 0, outside: id, count: 1 }))
    }
}

impl fmt::Display for IdMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("(empty)");
        }
        let parts: Vec<String> = self.0.iter().map(|r| format!("{}:{}:{}", r.inside, r.outside, r.count)).collect();
        f.write_str(&parts.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_and_podman_forms_parse_to_the_same_ranges() {
        let proc = IdMap::parse_proc("         0 2147483647      65536\n").unwrap();
        assert_eq!(proc, IdMap::parse_podman(&["0:2147483647:65536"]).unwrap());
        assert_eq!(proc.host_id(1000), Some(2147484647));
        assert_eq!(proc.host_id(65536), None);
        assert_eq!(proc.inside_id(2147484647), Some(1000));
        assert_eq!(proc.inside_id(1000), None);
        assert!(!proc.maps_host_root());
        let host = IdMap::parse_proc("0 0 4294967295\n").unwrap();
        assert_eq!(host.0, vec![IDENTITY]);
        assert!(host.maps_host_root() && host.uses_host_id(1000) && host.overlaps(&proc));
        assert!(IdMap::parse_proc("0 1").is_err() && IdMap::parse_proc("a b c").is_err());
    }

    #[test]
    fn neighbouring_ranges_do_not_overlap_and_shared_ids_do() {
        let a = IdMap::parse_podman(&["0:100000:65536"]).unwrap();
        let b = IdMap::parse_podman(&["0:165536:65536"]).unwrap();
        let c = IdMap::parse_podman(&["0:165535:2"]).unwrap();
        assert!(!a.overlaps(&b) && !b.overlaps(&a));
        assert!(a.overlaps(&c) && b.overlaps(&c));
        assert!(a.uses_host_id(165535) && !a.uses_host_id(165536));
        assert_eq!(a.to_string(), "0:100000:65536");
    }
}
