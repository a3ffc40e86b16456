//! Remove an instance: its containers, networks (with their host-side firewall rules), port
//! forwarders, secret files and state (with its host ports),
//! and its volumes when asked. `galley destroy` and `galley serve`'s closed previews call it.

use std::path::Path;

use super::naming::Instance;
use super::plan::Live;
use super::podman::Podman;
use super::secrets_dir::SecretsDir;
use super::{Result, RuntimeError, state};
use crate::domain::labels::{LABEL_INSTANCE, LABEL_PREVIEW, LABEL_PROJECT};

/// Remove what `live` lists of `instance` (volumes only with `volumes`), then its secret files
/// and state directory.
pub fn remove(
    home: &Path,
    podman: &Podman<'_>,
    instance: &Instance,
    live: &Live,
    volumes: bool,
    root: bool,
) -> Result<()> {
    let containers: Vec<String> = live.containers.iter().map(|c| c.name.clone()).collect();
    let empty = Vec::new();
    let steps = [
        ("container", &containers),
        ("network", &live.networks),
        ("volume", if volumes { &live.volumes } else { &empty }),
    ];
    for (kind, names) in steps {
        podman.remove(kind, names)?;
    }
    // The host-side rules of the removed networks, and of the instance's networks a crashed run
    // left rules of. Never other instances' rules: see `firewall`'s module doc.
    if root {
        for n in &live.networks {
            super::firewall::remove(podman.runner, n)?;
        }
        super::firewall::remove_gone(podman, &[instance.network(), instance.egress_network()])?;
    }
    super::forward::stop_all(home, instance);
    SecretsDir::new(instance.run_dir(home)).remove_all();
    state::remove_all(home, instance);
    Ok(())
}

/// Every `(project, instance, preview tag)` that podman holds a preview object of (containers,
/// networks or volumes labelled [`LABEL_PREVIEW`]), sorted.
pub fn previews(podman: &Podman<'_>) -> Result<Vec<(String, String, String)>> {
    let filter = ["--filter".to_owned(), format!("label={LABEL_PREVIEW}")];
    let mut out = std::collections::BTreeSet::new();
    let ps = podman.runner.check(
        &podman
            .cmd()
            .args(["ps", "--all", "--format", "json"])
            .args(filter.clone()),
    )?;
    for c in super::podman::parse_ps(&ps.stdout)? {
        out.extend(triple(&c.labels));
    }
    for kind in ["network", "volume"] {
        let o = podman.runner.check(
            &podman
                .cmd()
                .args([kind, "ls", "--format", "json"])
                .args(filter.clone()),
        )?;
        let text = String::from_utf8_lossy(&o.stdout);
        if text.trim().is_empty() {
            continue;
        }
        let items: Vec<serde_json::Value> =
            serde_json::from_str(&text).map_err(|e| RuntimeError::Parse {
                command: format!("{kind} ls"),
                message: e.to_string(),
            })?;
        for item in items {
            let labels: std::collections::BTreeMap<String, String> = item
                .get("Labels")
                .or_else(|| item.get("labels"))
                .and_then(|l| serde_json::from_value(l.clone()).ok())
                .unwrap_or_default();
            out.extend(triple(&labels));
        }
    }
    Ok(out.into_iter().collect())
}

fn triple(labels: &std::collections::BTreeMap<String, String>) -> Option<(String, String, String)> {
    Some((
        labels.get(LABEL_PROJECT)?.clone(),
        labels.get(LABEL_INSTANCE)?.clone(),
        labels.get(LABEL_PREVIEW)?.clone(),
    ))
}
