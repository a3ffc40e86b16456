//! Loading built images into podman by digest: nothing is copied when podman already has the
//! image (podman's image id is the config digest).

use crate::exec::{Cmd, Runner};
use crate::image::{self, Store};

/// The podman tag of a built image.
pub fn tag(project: &str, image: &str, manifest_digest: &str) -> String {
    format!("localhost/galley/{project}/{image}:{}", image::short(manifest_digest))
}

/// Load `built` into podman unless it is already there, and tag it. Returns whether anything was
/// copied.
pub fn load(runner: &dyn Runner, store: &Store, built: &image::BuiltImage, tag: &str) -> Result<bool, String> {
    let id = built.config_digest.trim_start_matches("sha256:");
    let exists = runner.run(&Cmd::new("podman").args(["image", "exists", id])).map_err(|e| e.to_string())?.success();
    if !exists {
        // podman derives a name from an `oci:` path, so hand it a copy at a plain path.
        let tmp = store.root().parent().map(|h| h.join("tmp")).unwrap_or_else(std::env::temp_dir);
        let dir = image::run::work_dir(&tmp).map_err(|e| e.to_string())?;
        let mut desc = image::config::Descriptor::new(image::config::MEDIA_MANIFEST, &built.manifest_digest, built.manifest_size);
        desc.annotations = None;
        image::run::export_layout(store, dir.path(), &desc, "image").map_err(|e| e.to_string())?;
        let src = format!("oci:{}:image", dir.path().display());
        runner.check(&Cmd::new("podman").args(["pull", "--quiet", src.as_str()])).map_err(|e| e.to_string())?;
    }
    runner.check(&Cmd::new("podman").args(["tag", id, tag])).map_err(|e| e.to_string())?;
    Ok(!exists)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::Store;
    use crate::exec::{Output, Recorder};

    fn built() -> image::BuiltImage {
        image::BuiltImage {
            manifest_digest: format!("sha256:{}", "a".repeat(64)),
            manifest_size: 1,
            config_digest: format!("sha256:{}", "b".repeat(64)),
            base: None,
            layers: vec![],
            compression: crate::model::Compression::Gzip,
            ref_name: "p/i".into(),
        }
    }

    #[test]
    fn present_images_are_only_tagged() {
        let home = tempfile::tempdir().unwrap();
        let store = Store::open(home.path()).unwrap();
        let mut b = built();
        let cfg = store.put(b"{}").unwrap();
        let m = image::config::Manifest {
            schema_version: 2,
            media_type: Some(image::config::MEDIA_MANIFEST.into()),
            config: image::config::Descriptor::new(image::config::MEDIA_CONFIG, &cfg, 2),
            layers: vec![],
            annotations: None,
        };
        let d = store.put_manifest(&m).unwrap();
        b.manifest_digest = d.digest;
        b.manifest_size = d.size;
        let built = || b.clone();
        let r = Recorder::default();
        assert!(!load(&r, &store, &built(), "localhost/galley/p/i:aaaaaaaaaaaa").unwrap());
        let cmds = r.commands();
        assert_eq!(cmds.len(), 2, "{cmds:?}");
        assert!(cmds[1].starts_with("podman tag bbbb"));
        let r = Recorder::default();
        r.answer("podman image exists", Output { code: Some(1), ..Output::default() });
        assert!(load(&r, &store, &built(), "t").unwrap());
        assert!(r.commands()[1].starts_with("podman pull --quiet oci:"), "{:?}", r.commands());
    }
}
