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

/// System calls podman's default profile refuses to a sandbox without added capabilities: those
/// that mount, load kernel code, reach kernel keyrings, change the host's clock, or enter or make
/// namespaces. A custom profile that allows one of them without a condition widens the sandbox.
pub const DANGEROUS: &[&str] = &[
    "_sysctl", "acct", "add_key", "bpf", "clock_settime", "clock_settime64", "create_module", "delete_module",
    "fanotify_init", "finit_module", "fsconfig", "fsmount", "fsopen", "fspick", "get_kernel_syms", "init_module",
    "ioperm", "iopl", "kexec_file_load", "kexec_load", "keyctl", "lookup_dcookie", "mount", "mount_setattr",
    "move_mount", "nfsservctl", "open_by_handle_at", "open_tree", "perf_event_open", "pivot_root", "query_module",
    "quotactl", "quotactl_fd", "reboot", "request_key", "setdomainname", "sethostname", "setns", "settimeofday",
    "stime", "swapoff", "swapon", "syslog", "umount", "umount2", "unshare", "uselib", "vm86", "vm86old",
];

/// Actions that let a system call run (`SCMP_ACT_TRACE` hands it to a tracer, which a process in
/// the sandbox can be).
const RUNS: &[&str] = &["SCMP_ACT_ALLOW", "SCMP_ACT_LOG", "SCMP_ACT_TRACE"];

/// What a custom profile lets a sandbox do, judged by its actions, not its name.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Judgement {
    /// The default action, when it lets every system call the profile does not list run.
    pub allows_by_default: Option<String>,
    /// Rules (index in `syscalls`) that let dangerous system calls run unconditionally, with
    /// those calls.
    pub dangerous: Vec<(usize, Vec<String>)>,
}

impl SeccompChoice {
    /// Judge a custom profile for a sandbox holding `capabilities` (without the CAP_ prefix): a
    /// rule whose `includes.caps` the sandbox lacks does not apply, and a rule with `args`
    /// allows a call only with those arguments. `None` for a library profile or no filter.
    pub fn judge(&self, capabilities: &[String]) -> Option<Judgement> {
        let SeccompChoice::Custom(profile) = self else { return None };
        let action = |v: &Value| v.as_str().map(str::to_ascii_uppercase);
        let mut judgement = Judgement::default();
        if let Some(default) = profile.get("defaultAction").and_then(action).filter(|a| RUNS.contains(&a.as_str())) {
            judgement.allows_by_default = Some(default);
        }
        let rules = profile.get("syscalls").and_then(Value::as_array).map_or(&[][..], Vec::as_slice);
        for (i, rule) in rules.iter().enumerate() {
            let runs = rule.get("action").and_then(action).is_some_and(|a| RUNS.contains(&a.as_str()));
            let conditional = rule.get("args").and_then(Value::as_array).is_some_and(|a| !a.is_empty());
            let needs = rule.pointer("/includes/caps").and_then(Value::as_array).map_or(&[][..], Vec::as_slice);
            let held = needs.iter().filter_map(Value::as_str).all(|c| {
                let c = c.strip_prefix("CAP_").unwrap_or(c);
                capabilities.iter().any(|have| have == c)
            });
            if !runs || conditional || !held {
                continue;
            }
            let names = rule.get("names").and_then(Value::as_array).map_or(&[][..], Vec::as_slice).iter().chain(rule.get("name"));
            let found: Vec<String> = names.filter_map(Value::as_str).filter(|n| DANGEROUS.contains(n)).map(str::to_owned).collect();
            if !found.is_empty() {
                judgement.dangerous.push((i, found));
            }
        }
        Some(judgement)
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

    fn judge(profile: Value, caps: &[&str]) -> Judgement {
        let caps: Vec<String> = caps.iter().map(|c| c.to_string()).collect();
        SeccompChoice::custom(profile).unwrap().judge(&caps).unwrap()
    }

    #[test]
    fn a_custom_profile_is_judged_by_what_it_lets_run() {
        let open = judge(json!({ "defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{ "names": ["ptrace"], "action": "SCMP_ACT_ERRNO" }] }), &[]);
        assert_eq!(open.allows_by_default.as_deref(), Some("SCMP_ACT_ALLOW"));
        let logged = judge(json!({ "defaultAction": "SCMP_ACT_LOG", "syscalls": [] }), &[]);
        assert_eq!(logged.allows_by_default.as_deref(), Some("SCMP_ACT_LOG"));
        let rules = json!({ "defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
            { "names": ["read", "write"], "action": "SCMP_ACT_ALLOW" },
            { "names": ["mount", "read", "keyctl"], "action": "SCMP_ACT_ALLOW" },
            { "names": ["unshare"], "action": "SCMP_ACT_ALLOW", "args": [{ "index": 0, "value": 0, "op": "SCMP_CMP_EQ" }] },
            { "names": ["bpf"], "action": "SCMP_ACT_ALLOW", "includes": { "caps": ["CAP_SYS_ADMIN"] } },
            { "names": ["reboot"], "action": "SCMP_ACT_ERRNO" },
        ] });
        let closed = judge(rules.clone(), &[]);
        assert_eq!(closed.allows_by_default, None);
        assert_eq!(closed.dangerous, vec![(1, vec!["mount".to_owned(), "keyctl".to_owned()])]);
        let admin = judge(rules, &["SYS_ADMIN"]);
        assert_eq!(admin.dangerous.iter().map(|d| d.0).collect::<Vec<_>>(), vec![1, 3]);
        assert_eq!(SeccompChoice::Default.judge(&[]), None);
    }
}
