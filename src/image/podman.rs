//! Loading built images into podman by digest: nothing is copied when podman already has the
//! image (podman's image id is the config digest).

use crate::domain::Digest;
use crate::exec::{Cmd, Runner};
use crate::image::{self, Store};

/// Time limit of copying an image into podman's storage (`podman pull` of an OCI layout).
pub const LOAD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(900);
/// Time limit of podman's quick image calls (exists, tag, images, rmi).
pub const QUICK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// The podman tag of a built image.
pub fn tag(project: &str, image: &str, manifest_digest: &Digest) -> String {
    format!("localhost/galley/{project}/{image}:{}", manifest_digest.short())
}

/// Load `built` into podman unless it is already there, and tag it. Returns whether anything was
/// copied.
pub fn load(runner: &dyn Runner, store: &Store, built: &image::BuiltImage, tag: &str) -> Result<bool, String> {
    let id = built.config_digest.hex();
    let id = id.as_str();
    // Already loaded and tagged (every apply after the first): one call instead of two.
    let tagged = runner.run(&Cmd::new("podman").args(["image", "inspect", "--format", "{{.Id}}", tag]).timeout(QUICK_TIMEOUT));
    if tagged.is_ok_and(|out| out.success() && out.stdout_str().trim() == id) {
        return Ok(false);
    }
    let exists = runner.run(&Cmd::new("podman").args(["image", "exists", id]).timeout(QUICK_TIMEOUT)).map_err(|e| e.to_string())?.success();
    let tag_it = Cmd::new("podman").args(["tag", id, tag]).timeout(QUICK_TIMEOUT);
    if exists {
        match runner.check(&tag_it) {
            Ok(_) => return Ok(false),
            // Removed between the two calls (the last tag of another project's identical image,
            // untagged by its destroy or gc): loaded below like any missing image.
            Err(e) if e.to_string().contains("image not known") => {}
            Err(e) => return Err(e.to_string()),
        }
    }
    // podman derives a name from an `oci:` path, so hand it a copy at a plain path.
    let tmp = store.root().parent().map(|h| h.join("tmp")).unwrap_or_else(std::env::temp_dir);
    let dir = image::run::work_dir(&tmp).map_err(|e| e.to_string())?;
    let mut desc = image::config::Descriptor::new(image::config::MEDIA_MANIFEST, built.manifest_digest, built.manifest_size);
    desc.annotations = None;
    image::run::export_layout(store, dir.path(), &desc, "image").map_err(|e| e.to_string())?;
    let src = format!("oci:{}:image", dir.path().display());
    runner.check(&Cmd::new("podman").args(["pull", "--quiet", src.as_str()]).timeout(LOAD_TIMEOUT)).map_err(|e| e.to_string())?;
    runner.check(&tag_it).map_err(|e| e.to_string())?;
    // The name podman made up from the layout's path would keep the image alive after its
    // galley tags are gone, out of gc's sight: drop it once the image has its tag.
    let derived = format!("localhost{}:latest", dir.path().display());
    runner.check(&Cmd::new("podman").args(["untag", id, derived.as_str()]).timeout(QUICK_TIMEOUT)).map_err(|e| e.to_string())?;
    Ok(true)
}

/// An image podman has, as `podman images` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodmanImage {
    /// The image id (podman's is the config digest, without `sha256:`).
    pub id: String,
    pub names: Vec<String>,
    pub size: u64,
    /// How many containers use it.
    pub containers: u64,
}

/// Every image podman has: one `podman images` call.
pub fn images(runner: &dyn Runner) -> Result<Vec<PodmanImage>, String> {
    // podman lists images and then reads each one; an image another process removes in between
    // fails the whole listing ("image not known"). Such a race is over at once: list again.
    let list = Cmd::new("podman").args(["images", "--format", "json"]).timeout(QUICK_TIMEOUT);
    let mut attempt = 1;
    let out = loop {
        match runner.check(&list) {
            Ok(out) => break out,
            Err(e) if attempt < LIST_ATTEMPTS && e.to_string().contains("image not known") => {
                attempt += 1;
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
            Err(e) => return Err(e.to_string()),
        }
    };
    let text = out.stdout_str();
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    let items: Vec<serde_json::Value> = serde_json::from_str(&text).map_err(|e| format!("cannot parse `podman images`: {e}"))?;
    Ok(items
        .iter()
        .map(|i| PodmanImage {
            id: i["Id"].as_str().unwrap_or_default().trim_start_matches("sha256:").to_owned(),
            names: i["Names"].as_array().into_iter().flatten().filter_map(|n| n.as_str().map(str::to_owned)).collect(),
            size: i["Size"].as_u64().unwrap_or(0),
            containers: i["Containers"].as_u64().unwrap_or(0),
        })
        .collect())
}

/// How often `images` lists again when an image vanished while podman listed it.
const LIST_ATTEMPTS: u32 = 5;

/// Remove the name `tag`; podman removes the image with its last name.
pub fn remove_tag(runner: &dyn Runner, tag: &str) -> Result<(), String> {
    runner.check(&Cmd::new("podman").args(["rmi", tag]).timeout(QUICK_TIMEOUT)).map(drop).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::Store;
    use crate::exec::{Output, Recorder};

    fn built() -> image::BuiltImage {
        image::BuiltImage {
            manifest_digest: Digest::parse(&format!("sha256:{}", "a".repeat(64))).unwrap(),
            manifest_size: 1,
            config_digest: Digest::parse(&format!("sha256:{}", "b".repeat(64))).unwrap(),
            base: None,
            bases: vec![],
            layers: vec![],
            compression: crate::model::Compression::Gzip,
            ref_name: "p/i".into(),
            packages: None,
        }
    }

    #[test]
    fn a_listing_that_loses_an_image_to_a_concurrent_removal_is_retried() {
        struct Flaky(std::sync::atomic::AtomicU32);
        impl Runner for Flaky {
            fn run(&self, _: &Cmd) -> Result<Output, crate::exec::ExecError> {
                let n = self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                Ok(if n < 2 {
                    Output { code: Some(125), stderr: b"Error: locating image with ID \"ab\": image not known".to_vec(), ..Output::default() }
                } else {
                    Output { code: Some(0), stdout: br#"[{"Id":"ab","Names":["localhost/galley/p/i:1"],"Size":3}]"#.to_vec(), ..Output::default() }
                })
            }

            fn attach(&self, _: &Cmd) -> Result<i32, crate::exec::ExecError> {
                unreachable!("listing images never attaches")
            }
        }
        let flaky = Flaky(0.into());
        let listed = images(&flaky).unwrap();
        assert_eq!((listed.len(), listed[0].size), (1, 3));
        assert_eq!(flaky.0.load(std::sync::atomic::Ordering::SeqCst), 3);
        let broken = Recorder::default();
        broken.answer("podman images", Output { code: Some(125), stderr: b"Error: no storage".to_vec(), ..Output::default() });
        assert!(images(&broken).unwrap_err().contains("no storage"));
        assert_eq!(broken.commands().len(), 1, "other failures are not retried");
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
            config: image::config::Descriptor::new(image::config::MEDIA_CONFIG, cfg, 2),
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
        assert_eq!(cmds.len(), 3, "{cmds:?}");
        assert!(cmds[0].starts_with("podman image inspect --format {{.Id}} localhost/galley/p/i:aaaaaaaaaaaa"), "{cmds:?}");
        assert!(cmds[2].starts_with("podman tag bbbb"));
        // Already tagged with this image: the one inspect is all.
        let r = Recorder::default();
        r.answer("podman image inspect", Output { code: Some(0), stdout: "b".repeat(64).into_bytes(), ..Output::default() });
        assert!(!load(&r, &store, &built(), "t").unwrap());
        assert_eq!(r.commands().len(), 1, "{:?}", r.commands());
        let r = Recorder::default();
        r.answer("podman image exists", Output { code: Some(1), ..Output::default() });
        assert!(load(&r, &store, &built(), "t").unwrap());
        let cmds = r.commands();
        assert!(cmds[2].starts_with("podman pull --quiet oci:"), "{cmds:?}");
        assert!(cmds[3].starts_with("podman tag bbbb"), "{cmds:?}");
        // The name podman derived from the layout's path is dropped, so only galley's tags keep
        // the image alive.
        let layout = cmds[2].trim_start_matches("podman pull --quiet oci:").trim_end_matches(":image");
        assert_eq!(cmds[4], format!("podman untag {} localhost{layout}:latest", "b".repeat(64)), "{cmds:?}");

        // Guards a load racing another project's destroy or gc: the identical image podman had
        // loses its last tag between `exists` and `tag`, and is loaded again, not an error.
        struct Raced(Recorder, std::sync::atomic::AtomicU32);
        impl Runner for Raced {
            fn run(&self, cmd: &Cmd) -> Result<Output, crate::exec::ExecError> {
                let out = self.0.run(cmd)?;
                let first_tag = cmd.display().starts_with("podman tag") && self.1.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0;
                Ok(if first_tag { Output { code: Some(125), stderr: b"Error: bbbb: image not known".to_vec(), ..Output::default() } } else { out })
            }

            fn attach(&self, _: &Cmd) -> Result<i32, crate::exec::ExecError> {
                unreachable!("loading never attaches")
            }
        }
        let raced = Raced(Recorder::default(), 0.into());
        assert!(load(&raced, &store, &built(), "t").unwrap(), "loaded again");
        let cmds = raced.0.commands();
        assert!(cmds[2].starts_with("podman tag bbbb") && cmds[3].starts_with("podman pull --quiet oci:"), "{cmds:?}");
        assert!(cmds[4].starts_with("podman tag bbbb"), "{cmds:?}");
    }
}
