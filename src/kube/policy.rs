//! Policy: how a sandbox's isolation maps onto the Pod Security Standards (user, capabilities,
//! seccomp) and onto NetworkPolicies (a namespace-wide default deny, then what the config
//! declares).

use serde_json::{Value, json};

use super::{Desired, Entry, KubeError, Options, SeccompMode, objects};
use crate::domain::{Memory, SeccompChoice, UserSpec};
use crate::manifest::SandboxManifest;
use crate::model::Network;

/// The only capability the restricted profile lets a container add.
pub const RESTRICTED_CAPABILITIES: &[&str] = &["NET_BIND_SERVICE"];

/// Capabilities the baseline profile lets a container add (Kubernetes' default set).
pub const BASELINE_CAPABILITIES: &[&str] = &[
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];

/// Address ranges an `'egress` sandbox may not reach: private, shared, link-local (cloud
/// metadata) and loopback ranges.
pub const PRIVATE_V4: &[&str] =
    &["10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12", "192.168.0.0/16"];
pub const PRIVATE_V6: &[&str] = &["::1/128", "fc00::/7", "fe80::/10"];

/// Label that selects a sandbox's pods.
pub const SANDBOX_LABEL: &str = "galley.dev/sandbox";

/// The security settings of one sandbox's pod.
#[derive(Debug, Clone, PartialEq)]
pub struct PodSecurity {
    pub uid: u32,
    pub gid: u32,
    /// Added capabilities, sorted, without `CAP_`.
    pub capabilities: Vec<String>,
    /// The `seccompProfile` object.
    pub seccomp: Value,
    /// File name of the Localhost profile to install on nodes, if one is used.
    pub profile_file: Option<String>,
    /// Some capability needs the baseline profile.
    pub needs_baseline: bool,
    /// Settings Kubernetes cannot express per pod.
    pub notes: Vec<String>,
}

/// Check a sandbox against the restricted profile and derive its pod's security settings.
pub fn pod_security(entry: &Entry, options: &Options) -> Result<PodSecurity, KubeError> {
    let m = &entry.manifest;
    let (uid, gid) = parse_user(&m.sandbox, &m.user)?;
    let mut needs_baseline = false;
    let mut capabilities = Vec::new();
    for cap in &m.capabilities {
        let cap = cap.trim_start_matches("CAP_").to_owned();
        if !RESTRICTED_CAPABILITIES.contains(&cap.as_str()) {
            let baseline = BASELINE_CAPABILITIES.contains(&cap.as_str());
            if !(baseline && options.allow_baseline) {
                return Err(KubeError::Capability { sandbox: m.sandbox.clone(), capability: cap, baseline });
            }
            needs_baseline = true;
        }
        capabilities.push(cap);
    }
    capabilities.sort();
    capabilities.dedup();
    let (seccomp, profile_file) = match (&entry.profile, options.seccomp) {
        (None, _) => return Err(KubeError::Unconfined { sandbox: m.sandbox.clone() }),
        (Some(p), SeccompMode::RuntimeDefault) if p.name == SeccompChoice::Default.name() => (json!({ "type": "RuntimeDefault" }), None),
        (Some(p), _) => {
            let file = profile_file_name(&p.digest.to_string());
            (json!({ "type": "Localhost", "localhostProfile": format!("galley/{file}") }), Some(file))
        }
    };
    let mut notes = Vec::new();
    let r = &m.resources;
    if r.pids > 0 {
        notes.push(format!(
            "pids limit {} cannot be set per pod; set the kubelet's podPidsLimit on the nodes",
            r.pids
        ));
    }
    if let Some(n) = r.nofile {
        notes.push(format!("nofile limit {n} cannot be set per pod; it is the container runtime's default"));
    }
    if let Some(n) = r.nproc {
        notes.push(format!("nproc limit {n} cannot be set per pod; it is the container runtime's default"));
    }
    if r.memory == Memory::Unlimited {
        notes.push("memory is unlimited; the pod has no memory limit".into());
    }
    Ok(PodSecurity { uid, gid, capabilities, seccomp, profile_file, needs_baseline, notes })
}

/// The numeric uid and gid ([`UserSpec::ids`]). Names and uid 0 are refused.
pub fn parse_user(sandbox: &str, user: &UserSpec) -> Result<(u32, u32), KubeError> {
    let (uid, gid) = user.ids().ok_or_else(|| KubeError::NamedUser { sandbox: sandbox.to_owned(), user: user.to_string() })?;
    if uid == 0 {
        return Err(KubeError::RootUser { sandbox: sandbox.to_owned() });
    }
    Ok((uid, gid))
}

/// `<hex>.json` for a `sha256:<hex>` digest.
pub fn profile_file_name(digest: &str) -> String {
    format!("{}.json", digest.trim_start_matches("sha256:"))
}

/// Deny all ingress and egress of every pod in the namespace.
pub fn default_deny(namespace: &str, desired: &Desired) -> Value {
    json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": objects::metadata("galley-default-deny", Some(namespace), desired, None),
        "spec": { "podSelector": {}, "policyTypes": ["Ingress", "Egress"] },
    })
}

/// What a sandbox may send and receive beyond the default deny; `None` when nothing.
pub fn network_policy(namespace: &str, desired: &Desired, m: &SandboxManifest) -> Option<Value> {
    let mut ingress = Vec::new();
    let mut egress = Vec::new();
    let ports = objects::unique_ports(m);
    if !ports.is_empty() {
        let ports: Vec<Value> =
            ports.iter().map(|(port, proto)| json!({ "port": port, "protocol": proto })).collect();
        ingress.push(json!({ "ports": ports }));
    }
    if matches!(m.network, Network::Isolated | Network::Egress) {
        ingress.push(json!({ "from": [{ "podSelector": {} }] }));
        egress.push(json!({ "to": [{ "podSelector": {} }] }));
    }
    if m.network == Network::Egress {
        egress.push(json!({ "to": [
            { "ipBlock": { "cidr": "0.0.0.0/0", "except": PRIVATE_V4 } },
            { "ipBlock": { "cidr": "::/0", "except": PRIVATE_V6 } },
        ] }));
        egress.push(json!({
            "to": [{
                "namespaceSelector": { "matchLabels": { "kubernetes.io/metadata.name": "kube-system" } },
                "podSelector": { "matchLabels": { "k8s-app": "kube-dns" } },
            }],
            "ports": [{ "port": 53, "protocol": "UDP" }, { "port": 53, "protocol": "TCP" }],
        }));
    }
    if ingress.is_empty() && egress.is_empty() {
        return None;
    }
    let mut types = Vec::new();
    let mut spec = json!({ "podSelector": { "matchLabels": { SANDBOX_LABEL: m.sandbox } } });
    if !ingress.is_empty() {
        types.push("Ingress");
        spec["ingress"] = Value::Array(ingress);
    }
    if !egress.is_empty() {
        types.push("Egress");
        spec["egress"] = Value::Array(egress);
    }
    spec["policyTypes"] = json!(types);
    Some(json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": objects::metadata(&m.sandbox, Some(namespace), desired, Some(&m.sandbox)),
        "spec": spec,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_must_be_numeric_and_not_root() {
        let parse_user = |sandbox: &str, user: &str| parse_user(sandbox, &UserSpec::parse(user).unwrap());
        assert_eq!(parse_user("s", "1000:2000").unwrap(), (1000, 2000));
        assert_eq!(parse_user("s", "1000").unwrap(), (1000, 1000));
        assert!(matches!(parse_user("s", "web"), Err(KubeError::NamedUser { .. })));
        assert!(matches!(parse_user("s", "1000:web"), Err(KubeError::NamedUser { .. })));
        assert!(matches!(parse_user("s", "0:0"), Err(KubeError::RootUser { .. })));
    }

    #[test]
    fn profile_files_are_named_by_hex_digest() {
        assert_eq!(profile_file_name("sha256:abc"), "abc.json");
    }
}
