//! `galley gc` on real podman, buildah and a loopback registry: it keeps what a project's lock
//! names and what a galley container runs, removes the rest (store blobs, refs, cache entries,
//! podman tags), drops projects whose directory is gone, and a `--dry-run` removes nothing.

mod support;

use std::path::{Path, PathBuf};

use serde_json::Value;
use support::runner::{TestProject, podman, podman_ok, text};
use support::{require_registry, runtime_available};

fn json(out: &str) -> Value {
    let start = out.find('{').unwrap_or_else(|| panic!("no JSON in: {out}"));
    let end = out.rfind('}').unwrap();
    serde_json::from_str(&out[start..=end]).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// `galley` in `p`'s directory with `home` as GALLEY_HOME; requires exit 0, returns stdout.
fn galley_ok(p: &TestProject, home: &Path, args: &[&str]) -> String {
    let out = p.galley_cmd(args).env("GALLEY_HOME", home).output().unwrap();
    assert!(out.status.success(), "galley {args:?}: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// (manifest, config, galley's layers) of image `image` in a `build --format json` answer.
fn built(answer: &str, image: &str) -> (String, String, Vec<String>) {
    let b = &json(answer)["images"][image];
    let s = |v: &Value| v.as_str().unwrap().to_owned();
    (s(&b["digest"]), s(&b["config"]), b["layers"].as_array().unwrap().iter().map(|l| s(&l["digest"])).collect())
}

fn blob(home: &Path, digest: &str) -> PathBuf {
    home.join("store/blobs/sha256").join(digest.trim_start_matches("sha256:"))
}

fn files_under(dir: &Path) -> Vec<(PathBuf, u64)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().filter_map(Result::ok) {
        let meta = std::fs::symlink_metadata(e.path()).unwrap();
        if meta.is_dir() {
            out.extend(files_under(&e.path()));
        }
        out.push((e.path(), if meta.is_dir() { 0 } else { meta.len() }));
    }
    out.sort();
    out
}

fn podman_has(tag: &str) -> bool {
    podman(&["image", "exists", tag]).status.success()
}

/// The podman tag galley gives image `image` of `project` built as `manifest`.
fn tag(project: &str, image: &str, manifest: &str) -> String {
    galley::image::podman::tag(project, image, &manifest.parse().expect("a manifest digest"))
}

#[test]
fn gc_keeps_locked_and_running_images_and_removes_the_rest() {
    if !runtime_available() {
        return;
    }
    let Some(reg) = require_registry() else {
        return;
    };
    let host = reg.host();
    // A busybox base on the loopback registry, pushed from a home of its own.
    let base = TestProject::new("gcbase").with_image("box");
    base.config(&format!("  {}\n  images.box = {{}},", reg.config_line()));
    let base_ref = format!("{host}/gc/busybox:1");
    galley_ok(&base, base.home.path(), &["push", "box", &base_ref]);

    // The project: v1 locked (and loaded), v2 built and loaded, v3 running in another instance.
    let app = TestProject::new("gcapp");
    let home = app.home.path().to_owned();
    app.config(&format!(
        "  {}\n  images.app = {{ base = \"{base_ref}\", files = [{{ src = \"site\", dst = \"/srv\" }}] }},\n  sandboxes.web = {{ image = \"app\", command = [\"/bin/busybox\", \"sleep\", \"1000000\"] }},",
        reg.config_line()
    ));
    let site = app.dir.path().join("site/index.html");
    std::fs::create_dir_all(site.parent().unwrap()).unwrap();
    std::fs::write(&site, "v1\n").unwrap();
    galley_ok(&app, &home, &["lock"]);
    let lock: Value = serde_json::from_str(&std::fs::read_to_string(app.dir.path().join("galley.lock")).unwrap()).unwrap();
    let out = &lock["images"]["app"]["output"];
    let (m1, c1) = (out["manifest"].as_str().unwrap().to_owned(), out["config"].as_str().unwrap().to_owned());
    let l1: Vec<String> = out["layers"].as_array().unwrap().iter().map(|l| l["digest"].as_str().unwrap().to_owned()).collect();
    let base_digest = lock["images"]["app"]["base"]["digest"].as_str().unwrap().to_owned();
    let store = galley::image::Store::open(&home).unwrap();
    let base_manifest = store.manifest(&galley::domain::Digest::parse(&base_digest).unwrap()).unwrap();
    galley_ok(&app, &home, &["load", "app"]);

    std::fs::write(&site, "v2, never locked\n").unwrap();
    let (m2, c2, l2) = built(&galley_ok(&app, &home, &["build", "--format", "json"]), "app");
    galley_ok(&app, &home, &["load", "app"]);

    std::fs::write(&site, "v3, running\n").unwrap();
    galley_ok(&app, &home, &["apply", "--instance", "gcrun", "--auto-approve"]);
    let (m3, c3, l3) = built(&galley_ok(&app, &home, &["build", "--format", "json"]), "app");
    let running = app.container("gcrun", "web");
    assert_eq!(podman_ok(&["inspect", "--format", "{{.Image}}", &running]).trim(), c3.trim_start_matches("sha256:"));
    std::fs::write(&site, "v1\n").unwrap();

    // A project built in the same home whose directory is then deleted.
    let gone = TestProject::new("gcgone");
    gone.config("  images.x = { files = [{ src = \"gone.txt\", dst = \"/gone.txt\" }] },");
    std::fs::write(gone.dir.path().join("gone.txt"), "only the gone project has this\n").unwrap();
    let (mg, cg, lg) = built(&galley_ok(&gone, &home, &["build", "--format", "json"]), "x");
    let gone_dir = std::fs::canonicalize(gone.dir.path()).unwrap();
    std::fs::remove_dir_all(&gone_dir).unwrap();

    let (t1, t2, t3) = (tag(&app.name, "app", &m1), tag(&app.name, "app", &m2), tag(&app.name, "app", &m3));
    assert!(podman_has(&t1) && podman_has(&t2) && podman_has(&t3));

    // A dry run reports and removes nothing.
    let before = files_under(&home);
    let dry = json(&galley_ok(&app, &home, &["gc", "--dry-run", "--format", "json"]));
    assert_eq!(files_under(&home), before, "--dry-run changed GALLEY_HOME");
    assert!(podman_has(&t2), "--dry-run removed a podman tag");
    assert_eq!(dry["dry_run"], true);

    let report = json(&galley_ok(&app, &home, &["gc", "--format", "json"]));
    for kind in ["store_blobs", "store_refs", "podman_images"] {
        assert_eq!(report[kind], dry[kind], "{kind}: the dry run said otherwise");
    }
    assert!(report["bytes"].as_u64().unwrap() > 0 && report["store_blobs"]["bytes"].as_u64().unwrap() > 0, "{report}");
    assert_eq!(report["podman_images"]["count"], 1, "{report}");
    assert_eq!(report["dropped_projects"], serde_json::json!([gone_dir.to_str().unwrap()]), "{report}");

    // Kept: the lock's image and base, the running image. Gone: v2 and the gone project's.
    let mut kept = vec![m1, c1, m3, c3, base_digest.clone(), base_manifest.config.digest.to_string()];
    kept.extend(l1.into_iter().chain(l3).chain(base_manifest.layers.iter().map(|l| l.digest.to_string())));
    for d in &kept {
        assert!(blob(&home, d).is_file(), "{d} was removed but is needed");
    }
    let mut removed = vec![m2, c2, mg, cg];
    removed.extend(l2.into_iter().chain(lg));
    for d in &removed {
        assert!(!blob(&home, d).exists(), "{d} should have been removed");
    }
    assert!(podman_has(&t1) && !podman_has(&t2) && podman_has(&t3), "the podman tags of v1 and v3 stay, v2's goes");
    let records = std::fs::read_dir(home.join("projects")).unwrap().count();
    assert_eq!(records, 1, "only the app's record stays");
    let listed = galley_ok(&app, &home, &["gc", "--dry-run"]);
    assert!(!listed.contains(gone_dir.to_str().unwrap()), "a dropped project is reported once: {listed}");

    // Without the registry, the locked build still passes, and the sandbox still runs.
    drop(reg);
    galley_ok(&app, &home, &["build", "--locked"]);
    assert_eq!(podman_ok(&["inspect", "--format", "{{.State.Running}}", &running]).trim(), "true");
    let (ok, said) = app.exec("gcrun", "web", "cat /srv/index.html");
    assert!(ok && said.contains("v3, running"), "{said}");
}

#[test]
fn gc_refuses_at_once_while_a_build_holds_the_home() {
    let p = TestProject::new("gcbusy");
    let writer = galley::image::home::shared(p.home.path()).unwrap();
    let out = p.galley(&["gc"]);
    let said = text(&out);
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(said.contains("is writing to") && said.contains("help: run `galley gc` again"), "{said}");
    drop(writer);
    // A dry run only reads: it runs beside a writer.
    let _writer = galley::image::home::shared(p.home.path()).unwrap();
    let out = p.galley(&["gc", "--dry-run"]);
    assert!(out.status.success(), "{}", text(&out));
}
