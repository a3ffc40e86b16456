//! The Kubernetes objects of an instance: Namespace, PersistentVolumeClaims, and per sandbox a
//! Deployment and a ClusterIP Service. Objects are `serde_json` values; key order does not
//! matter because the writer sorts keys.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::policy::{PodSecurity, SANDBOX_LABEL};
use super::{Desired, Entry, KubeError, Options, PSS_VERSION, is_dns_label};
use crate::domain::Memory;
use crate::manifest::SandboxManifest;

/// Storage requested by each PersistentVolumeClaim (galley volumes have no size).
pub const CLAIM_SIZE: &str = "1Gi";
/// Where secrets are mounted, one file per secret.
pub const SECRETS_DIR: &str = "/run/secrets";
/// Mode of secret files: 0400.
pub const SECRET_MODE: u32 = 0o400;

/// `metadata` with galley's labels; `sandbox` adds the sandbox's selector label.
pub fn metadata(name: &str, namespace: Option<&str>, desired: &Desired, sandbox: Option<&str>) -> Value {
    let mut meta = json!({ "name": name, "labels": labels(desired, sandbox) });
    if let Some(ns) = namespace {
        meta["namespace"] = json!(ns);
    }
    meta
}

fn labels(desired: &Desired, sandbox: Option<&str>) -> Value {
    let mut labels = json!({
        "app.kubernetes.io/managed-by": "galley",
        "app.kubernetes.io/part-of": desired.project,
        "app.kubernetes.io/instance": format!("{}-{}", desired.project, desired.instance),
    });
    if let Some(s) = sandbox {
        labels["app.kubernetes.io/name"] = json!(s);
        labels[SANDBOX_LABEL] = json!(s);
    }
    labels
}

/// The instance's namespace, enforcing the restricted profile (baseline when a sandbox needs a
/// baseline capability and `--allow-baseline` was given; restricted is then still warned about).
pub fn namespace(name: &str, desired: &Desired, baseline: bool) -> Value {
    let mut meta = metadata(name, None, desired, None);
    let enforce = if baseline { "baseline" } else { "restricted" };
    for (mode, level) in [("enforce", enforce), ("audit", "restricted"), ("warn", "restricted")] {
        meta["labels"][format!("pod-security.kubernetes.io/{mode}")] = json!(level);
        meta["labels"][format!("pod-security.kubernetes.io/{mode}-version")] = json!(PSS_VERSION);
    }
    json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": meta })
}

/// A sandbox name must be a DNS label starting with a letter to name a Service.
pub fn check_sandbox_name(name: &str) -> Result<(), KubeError> {
    if is_dns_label(name) && name.starts_with(|c: char| c.is_ascii_lowercase()) {
        Ok(())
    } else {
        Err(KubeError::Name { name: name.to_owned(), what: "a sandbox becomes a Deployment and a Service" })
    }
}

/// An image name must be a lower-case repository path component to be referenced.
pub fn check_image_name(name: &str) -> Result<(), KubeError> {
    let ok = name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
    if ok { Ok(()) } else { Err(KubeError::Name { name: name.to_owned(), what: "an image becomes a repository name" }) }
}

/// The claim name of a galley volume: lower-cased, other characters replaced by dashes.
pub fn claim_name(volume: &str) -> Result<String, KubeError> {
    let name = sanitize(volume);
    if is_dns_label(&name) {
        Ok(name)
    } else {
        Err(KubeError::Name { name: volume.to_owned(), what: "a volume becomes a PersistentVolumeClaim" })
    }
}

fn sanitize(s: &str) -> String {
    let mapped: String =
        s.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).collect();
    mapped.trim_matches('-').to_owned()
}

/// One claim per volume name of the instance (volumes are shared by the instance's sandboxes).
pub fn claims(namespace: &str, desired: &Desired) -> Result<Vec<Value>, KubeError> {
    let mut by_claim: BTreeMap<String, String> = BTreeMap::new();
    for entry in &desired.sandboxes {
        for v in &entry.manifest.volumes {
            let claim = claim_name(&v.name)?;
            match by_claim.get(&claim) {
                Some(other) if other.as_str() != v.name.as_str() => {
                    return Err(KubeError::VolumeClash { first: other.clone(), second: v.name.to_string(), name: claim });
                }
                _ => {
                    by_claim.insert(claim, v.name.to_string());
                }
            }
        }
    }
    Ok(by_claim
        .keys()
        .map(|claim| {
            json!({
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "metadata": metadata(claim, Some(namespace), desired, None),
                "spec": { "accessModes": ["ReadWriteOnce"], "resources": { "requests": { "storage": CLAIM_SIZE } } },
            })
        })
        .collect())
}

/// Kubernetes Secret name of each sandbox secret: `<sandbox>-<secret>`, lower-cased, with `_`
/// and `.` as dashes.
pub fn secret_names(m: &SandboxManifest) -> Result<BTreeMap<String, String>, KubeError> {
    let mut names = BTreeMap::new();
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    for secret in m.secrets.keys() {
        let name = format!("{}-{}", m.sandbox, sanitize(secret));
        if !is_dns_label(&name) {
            return Err(KubeError::Name { name, what: "a secret becomes a Kubernetes Secret of at most 63 characters" });
        }
        if let Some(first) = seen.insert(name.clone(), secret.clone()) {
            return Err(KubeError::SecretClash { sandbox: m.sandbox.clone(), first, second: secret.clone(), name });
        }
        names.insert(secret.clone(), name);
    }
    Ok(names)
}

/// Declared container ports without duplicates: (port, `TCP`/`UDP`), sorted.
pub fn unique_ports(m: &SandboxManifest) -> Vec<(u16, &'static str)> {
    let mut ports: Vec<(u16, &'static str)> =
        m.ports.iter().map(|p| (p.container, if p.protocol.as_str() == "udp" { "UDP" } else { "TCP" })).collect();
    ports.sort();
    ports.dedup();
    ports
}

/// A ClusterIP Service for the declared ports; `None` when there are none.
pub fn service(namespace: &str, desired: &Desired, m: &SandboxManifest) -> Option<Value> {
    let ports: Vec<Value> = unique_ports(m)
        .into_iter()
        .map(|(port, proto)| {
            json!({ "name": format!("{}-{port}", proto.to_ascii_lowercase()), "port": port, "protocol": proto, "targetPort": port })
        })
        .collect();
    if ports.is_empty() {
        return None;
    }
    Some(json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(&m.sandbox, Some(namespace), desired, Some(&m.sandbox)),
        "spec": { "type": "ClusterIP", "selector": { SANDBOX_LABEL: m.sandbox }, "ports": ports },
    }))
}

/// A Kubernetes quantity for a size in bytes, in the largest binary unit that divides it.
pub fn bytes_quantity(bytes: u64) -> String {
    for (unit, shift) in [("Gi", 30), ("Mi", 20), ("Ki", 10)] {
        if bytes >= 1 << shift && bytes.is_multiple_of(1 << shift) {
            return format!("{}{unit}", bytes >> shift);
        }
    }
    bytes.to_string()
}

/// A CPU quantity for a number of cores, in millicores when fractional.
pub fn cpu_quantity(cores: f64) -> String {
    let milli = ((cores * 1000.0).round() as u64).max(1);
    if milli.is_multiple_of(1000) { (milli / 1000).to_string() } else { format!("{milli}m") }
}

/// The Deployment of one sandbox: one replica of a pod meeting the restricted profile.
pub fn deployment(
    namespace: &str,
    desired: &Desired,
    entry: &Entry,
    pod: &PodSecurity,
    secrets: &BTreeMap<String, String>,
    options: &Options,
) -> Result<Value, KubeError> {
    let m = &entry.manifest;
    let mut volumes = Vec::new();
    let mut mounts = Vec::new();
    for (i, t) in m.tmpfs.iter().enumerate() {
        let name = format!("tmpfs-{i}");
        volumes.push(json!({ "name": name, "emptyDir": { "medium": "Memory", "sizeLimit": bytes_quantity(t.size.bytes()) } }));
        mounts.push(json!({ "name": name, "mountPath": t.path }));
    }
    for (i, v) in m.volumes.iter().enumerate() {
        let name = format!("volume-{i}");
        let mut claim = json!({ "claimName": claim_name(&v.name)? });
        if v.read_only {
            claim["readOnly"] = json!(true);
        }
        volumes.push(json!({ "name": name, "persistentVolumeClaim": claim }));
        mounts.push(json!({ "name": name, "mountPath": v.path, "readOnly": v.read_only }));
    }
    for (i, (secret, k8s_name)) in secrets.iter().enumerate() {
        let name = format!("secret-{i}");
        volumes.push(json!({ "name": name, "secret": {
            "secretName": k8s_name,
            "defaultMode": SECRET_MODE,
            "items": [{ "key": secret, "path": secret }],
            "optional": false,
        } }));
        mounts.push(json!({ "name": name, "mountPath": format!("{SECRETS_DIR}/{secret}"), "subPath": secret, "readOnly": true }));
    }
    mounts.sort_by(|a, b| a["mountPath"].as_str().cmp(&b["mountPath"].as_str()));

    let mut limits = json!({});
    if let Memory::Limit(s) = &m.resources.memory {
        limits["memory"] = json!(bytes_quantity(s.bytes()));
    }
    if let Some(cores) = m.resources.cpus.quota() {
        limits["cpu"] = json!(cpu_quantity(cores));
    }
    let mut capabilities = json!({ "drop": ["ALL"] });
    if !pod.capabilities.is_empty() {
        capabilities["add"] = json!(pod.capabilities);
    }
    let mut container = json!({
        "name": m.sandbox,
        "image": super::image_reference(&options.image_prefix, m),
        "imagePullPolicy": "IfNotPresent",
        "resources": { "limits": limits, "requests": limits },
        "securityContext": {
            "allowPrivilegeEscalation": false,
            "capabilities": capabilities,
            "privileged": false,
            "readOnlyRootFilesystem": m.read_only,
            "runAsNonRoot": true,
            "runAsUser": pod.uid,
            "runAsGroup": pod.gid,
            "seccompProfile": pod.seccomp,
        },
        "volumeMounts": mounts,
    });
    if let Some(cmd) = &m.command {
        container["command"] = json!(cmd);
    }
    if !m.env.is_empty() {
        container["env"] = json!(m.env.iter().map(|(k, v)| json!({ "name": k, "value": v })).collect::<Vec<_>>());
    }
    let ports = unique_ports(m);
    if !ports.is_empty() {
        container["ports"] =
            json!(ports.iter().map(|(p, proto)| json!({ "containerPort": p, "protocol": proto })).collect::<Vec<_>>());
    }

    let mut annotations = json!({ "galley.dev/manifest": m.digest() });
    let r = &m.resources;
    for (key, value) in [("pids", (r.pids > 0).then_some(r.pids as u64)), ("nofile", r.nofile), ("nproc", r.nproc)] {
        if let Some(v) = value {
            annotations[format!("galley.dev/{key}-limit")] = json!(v.to_string());
        }
    }
    let mut template_meta = json!({ "labels": labels(desired, Some(&m.sandbox)), "annotations": annotations });
    template_meta["labels"]["app.kubernetes.io/version"] = json!(image_version(m));

    Ok(json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(&m.sandbox, Some(namespace), desired, Some(&m.sandbox)),
        "spec": {
            "replicas": 1,
            "strategy": { "type": "Recreate" },
            "selector": { "matchLabels": { SANDBOX_LABEL: m.sandbox } },
            "template": {
                "metadata": template_meta,
                "spec": {
                    "automountServiceAccountToken": false,
                    "hostIPC": false,
                    "hostNetwork": false,
                    "hostPID": false,
                    "securityContext": {
                        "fsGroup": pod.gid,
                        "runAsGroup": pod.gid,
                        "runAsNonRoot": true,
                        "runAsUser": pod.uid,
                        "seccompProfile": pod.seccomp,
                    },
                    "containers": [container],
                    "volumes": volumes,
                },
            },
        },
    }))
}

/// A label value identifying the image: the first 12 hex digits of its digest, or `latest`.
fn image_version(m: &SandboxManifest) -> String {
    match &m.image.digest {
        Some(d) => d.short(),
        None => "latest".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_use_binary_units_and_millicores() {
        assert_eq!(bytes_quantity(128 << 20), "128Mi");
        assert_eq!(bytes_quantity(1 << 30), "1Gi");
        assert_eq!(bytes_quantity(1536 << 20), "1536Mi");
        assert_eq!(bytes_quantity(1000), "1000");
        assert_eq!(cpu_quantity(0.5), "500m");
        assert_eq!(cpu_quantity(2.0), "2");
    }

    #[test]
    fn names_are_sanitized_or_refused() {
        assert_eq!(claim_name("Work_Space").unwrap(), "work-space");
        assert!(claim_name("__").is_err());
        assert!(check_sandbox_name("web").is_ok());
        assert!(check_sandbox_name("1web").is_err());
    }
}
