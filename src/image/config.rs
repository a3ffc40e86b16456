//! OCI image config, manifest, index and descriptors, serialized as canonical JSON.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::domain::{Digest, Platform};
use crate::model::Image;

pub const MEDIA_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MEDIA_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const MEDIA_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// In OCI's object form; an index entry whose platform galley cannot read has none.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "oci_platform")]
    pub platform: Option<Platform>,
}

/// A [`Platform`] as OCI documents write it: `{"architecture", "os", "variant"}`.
mod oci_platform {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use crate::domain::Platform;

    #[derive(Serialize, Deserialize)]
    struct Object<'a> {
        architecture: std::borrow::Cow<'a, str>,
        os: std::borrow::Cow<'a, str>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        variant: Option<std::borrow::Cow<'a, str>>,
    }

    pub fn serialize<S: Serializer>(p: &Option<Platform>, s: S) -> Result<S::Ok, S::Error> {
        p.as_ref()
            .map(|p| Object { architecture: p.architecture().into(), os: p.os().into(), variant: p.variant().map(Into::into) })
            .serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Platform>, D::Error> {
        let o = Option::<Object<'_>>::deserialize(d)?;
        Ok(o.and_then(|o| Platform::new(&o.os, &o.architecture, o.variant.as_deref()).ok()))
    }
}

impl Descriptor {
    pub fn new(media_type: &str, digest: Digest, size: u64) -> Descriptor {
        Descriptor { media_type: media_type.into(), digest, size, annotations: None, platform: None }
    }

    pub fn ref_name(&self) -> Option<&str> {
        self.annotations.as_ref()?.get(REF_NAME).map(String::as_str)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub manifests: Vec<Descriptor>,
}

impl Index {
    pub fn empty() -> Index {
        Index { schema_version: 2, media_type: Some(MEDIA_INDEX.into()), manifests: Vec::new() }
    }
}

/// Either kind of manifest document a registry may answer with.
#[derive(Debug, Clone)]
pub enum AnyManifest {
    Image(Manifest),
    Index(Index),
}

pub fn parse_any(bytes: &[u8]) -> Result<AnyManifest, String> {
    let v: Value = serde_json::from_slice(bytes).map_err(|e| format!("not JSON: {e}"))?;
    let mt = v.get("mediaType").and_then(Value::as_str).unwrap_or("");
    let is_index = mt == MEDIA_INDEX || mt == DOCKER_LIST || (mt.is_empty() && v.get("manifests").is_some());
    if is_index {
        serde_json::from_value(v).map(AnyManifest::Index).map_err(|e| format!("bad index: {e}"))
    } else {
        serde_json::from_value(v).map(AnyManifest::Image).map_err(|e| format!("bad manifest: {e}"))
    }
}

/// The date every galley-built config and history entry carries.
pub fn created(epoch: u64) -> String {
    // Days from civil, inverse (Howard Hinnant's algorithm), to avoid a date dependency.
    let secs = epoch as i64;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// One galley layer, for history.
pub struct HistoryStep {
    pub created_by: String,
}

/// The image config: the base's config (if any) with the image's settings applied.
pub fn image_config(
    base: Option<&Value>,
    image: &Image,
    platform: &Platform,
    diff_ids: &[Digest],
    steps: &[HistoryStep],
    epoch: u64,
) -> Value {
    let created = created(epoch);
    let base_cfg = base.and_then(|b| b.get("config")).cloned().unwrap_or_else(|| json!({}));
    let mut cfg = match base_cfg {
        Value::Object(m) => m,
        _ => serde_json::Map::new(),
    };
    // Env: the base's, with the image's values replacing same-named ones, in sorted name order.
    let mut env: Vec<String> = cfg
        .get("Env")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    for (k, v) in &image.env {
        env.retain(|e| e.split_once('=').map(|(n, _)| n) != Some(k.as_str()));
        env.push(format!("{k}={v}"));
    }
    if !env.is_empty() {
        cfg.insert("Env".into(), json!(env));
    }
    if let Some(ep) = &image.entrypoint {
        cfg.insert("Entrypoint".into(), json!(ep));
        if image.cmd.is_none() {
            cfg.remove("Cmd");
        }
    }
    if let Some(cmd) = &image.cmd {
        cfg.insert("Cmd".into(), json!(cmd));
    }
    if let Some(w) = &image.workdir {
        cfg.insert("WorkingDir".into(), json!(w));
    }
    if let Some(u) = &image.user {
        cfg.insert("User".into(), json!(u));
    }
    if !image.labels.is_empty() {
        let mut labels = cfg.get("Labels").and_then(Value::as_object).cloned().unwrap_or_default();
        for (k, v) in &image.labels {
            labels.insert(k.clone(), json!(v));
        }
        cfg.insert("Labels".into(), Value::Object(labels));
    }
    let mut history: Option<Vec<Value>> = match base {
        None => Some(Vec::new()),
        Some(b) => b.get("history").and_then(Value::as_array).cloned(),
    };
    if let Some(h) = &mut history {
        for s in steps {
            h.push(json!({ "created": created, "created_by": s.created_by, "comment": "galley" }));
        }
    }
    let mut out = json!({
        "architecture": platform.architecture(),
        "os": platform.os(),
        "created": created,
        "config": Value::Object(cfg),
        "rootfs": { "type": "layers", "diff_ids": diff_ids },
    });
    if let Some(v) = platform.variant() {
        out["variant"] = json!(v);
    }
    if let Some(h) = history.filter(|h| !h.is_empty()) {
        out["history"] = json!(h);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_formats_epochs() {
        assert_eq!(created(0), "1970-01-01T00:00:00Z");
        assert_eq!(created(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(created(951_782_400), "2000-02-29T00:00:00Z");
    }
}
