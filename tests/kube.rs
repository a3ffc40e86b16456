//! `galley export kube` through the real binary: every example's pods meet the restricted Pod
//! Security Standard field by field, the YAML validates with `kubernetes-validate`, exports are
//! deterministic and never contain a secret's value. The podman run is in tests/kube_podman.rs.

mod kube_support;
mod support;

use std::collections::BTreeMap;
use std::path::Path;

use galley::kube::{self, Options};

use kube_support::*;
use serde_json::{Value, json};

/// Volume types the restricted profile allows.
const ALLOWED_VOLUMES: &[&str] =
    &["configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret"];

/// The restricted profile's rules, one assertion per control, over one pod spec.
fn assert_restricted(what: &str, spec: &Value) {
    for host in ["hostNetwork", "hostPID", "hostIPC"] {
        assert!(spec.get(host).is_none_or(|v| v == false), "{what}: {host}");
    }
    assert_eq!(spec["automountServiceAccountToken"], false, "{what}: service account token");
    for v in spec["volumes"].as_array().into_iter().flatten() {
        let kinds: Vec<&String> = v.as_object().unwrap().keys().filter(|k| *k != "name").collect();
        assert_eq!(kinds.len(), 1, "{what}: volume {v}");
        assert!(ALLOWED_VOLUMES.contains(&kinds[0].as_str()), "{what}: volume type {}", kinds[0]);
        assert!(v.get("hostPath").is_none(), "{what}: hostPath");
    }
    let pod = &spec["securityContext"];
    assert!(pod.get("sysctls").is_none(), "{what}: sysctls");
    assert!(pod.get("seLinuxOptions").is_none(), "{what}: seLinuxOptions");
    assert_ne!(pod.get("runAsUser"), Some(&json!(0)), "{what}: pod runAsUser 0");
    assert!(pod.get("windowsOptions").is_none(), "{what}: windowsOptions");
    let containers = ["initContainers", "containers", "ephemeralContainers"]
        .iter()
        .flat_map(|k| spec[*k].as_array().cloned().unwrap_or_default());
    let mut count = 0;
    for c in containers {
        count += 1;
        let sc = &c["securityContext"];
        assert!(sc.get("privileged").is_none_or(|v| v == false), "{what}: privileged");
        assert_eq!(sc["allowPrivilegeEscalation"], false, "{what}: allowPrivilegeEscalation");
        assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]), "{what}: capabilities.drop");
        for cap in sc["capabilities"]["add"].as_array().into_iter().flatten() {
            assert_eq!(cap, "NET_BIND_SERVICE", "{what}: capability added");
        }
        let non_root = sc.get("runAsNonRoot").or(pod.get("runAsNonRoot"));
        assert_eq!(non_root, Some(&json!(true)), "{what}: runAsNonRoot");
        assert_ne!(sc.get("runAsUser"), Some(&json!(0)), "{what}: runAsUser 0");
        let seccomp = sc.get("seccompProfile").or(pod.get("seccompProfile")).expect("seccompProfile set");
        assert!(["RuntimeDefault", "Localhost"].contains(&seccomp["type"].as_str().unwrap()), "{what}: seccomp");
        if seccomp["type"] == "Localhost" {
            assert!(seccomp["localhostProfile"].as_str().unwrap().starts_with("galley/"), "{what}: profile path");
        }
        assert!(sc.get("procMount").is_none_or(|v| v == "Default"), "{what}: procMount");
        assert!(sc.get("seLinuxOptions").is_none(), "{what}: seLinuxOptions");
        assert!(sc.get("appArmorProfile").is_none_or(|p| p["type"] != "Unconfined"), "{what}: appArmor");
        for p in c["ports"].as_array().into_iter().flatten() {
            assert!(p.get("hostPort").is_none_or(|h| h == 0), "{what}: hostPort");
        }
        // galley's own guarantees on top of the profile.
        assert_eq!(sc["readOnlyRootFilesystem"], true, "{what}: read-only root");
        assert!(c.get("envFrom").is_none(), "{what}: envFrom");
        for e in c["env"].as_array().into_iter().flatten() {
            assert!(e.get("valueFrom").is_none(), "{what}: env from a secret");
        }
    }
    assert!(count > 0, "{what}: no containers");
}

fn pod_specs(docs: &[Value]) -> Vec<(String, Value)> {
    docs.iter()
        .filter(|d| d["kind"] == "Deployment")
        .map(|d| (d["metadata"]["name"].as_str().unwrap().to_owned(), d["spec"]["template"]["spec"].clone()))
        .collect()
}

#[test]
fn every_example_meets_the_restricted_profile() {
    for example in ["web", "agent", "hello"] {
        let out = export(&example_dir(example), &["--out", "-"]);
        assert!(out.status.success(), "{example}: {}", stderr(&out));
        let docs = documents(&stdout(&out));
        assert_eq!(docs[0]["kind"], "Namespace");
        let labels = &docs[0]["metadata"]["labels"];
        assert_eq!(labels["pod-security.kubernetes.io/enforce"], "restricted");
        assert!(labels["pod-security.kubernetes.io/enforce-version"].is_string());
        assert_eq!(docs[1]["kind"], "NetworkPolicy");
        assert_eq!(docs[1]["spec"], json!({ "podSelector": {}, "policyTypes": ["Ingress", "Egress"] }));
        for (name, spec) in pod_specs(&docs) {
            assert_restricted(&format!("{example}/{name}"), &spec);
        }
    }
    let full = fixture(FULL);
    let out = export(full.path(), &["--out", "-", "--seccomp", "runtime-default"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let specs = pod_specs(&documents(&stdout(&out)));
    assert_eq!(specs.len(), 2);
    for (name, spec) in specs {
        assert_restricted(&name, &spec);
    }
}

#[test]
fn examples_validate_against_kubernetes_schemas() {
    if !have_validator() {
        return skip("kubernetes-validate is not installed (pip install kubernetes-validate)");
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut projects: Vec<_> = ["web", "agent", "hello"].iter().map(|e| example_dir(e)).collect();
    let full = fixture(FULL);
    projects.push(full.path().to_owned());
    for (i, project) in projects.iter().enumerate() {
        let dir = tmp.path().join(i.to_string());
        let out = export(project, &["--out", dir.to_str().unwrap()]);
        assert!(out.status.success(), "{}", stderr(&out));
        for file in yaml_files(&dir) {
            let v = std::process::Command::new("kubernetes-validate")
                .args(["-k", "1.30.0", "--strict", "--quiet"])
                .arg(&file)
                .output()
                .unwrap();
            assert!(v.status.success(), "{}: {}{}", file.display(), stdout(&v), stderr(&v));
        }
    }
}

#[test]
fn exports_are_byte_identical_and_never_hold_secret_values() {
    let project = fixture(FULL);
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let env = [("KUBE_TEST_CANARY", CANARY)];
    let out_a = export_env(project.path(), &["--out", a.path().to_str().unwrap()], &env);
    let out_b = export_env(project.path(), &["--out", b.path().to_str().unwrap()], &env);
    assert!(out_a.status.success(), "{}", stderr(&out_a));
    let files_a = read_tree(a.path());
    assert_eq!(files_a, read_tree(b.path()));
    let names: Vec<&String> = files_a.keys().collect();
    assert!(names.iter().any(|n| n.starts_with("seccomp/")), "{names:?}");
    assert!(names.contains(&&"README.txt".to_owned()), "{names:?}");
    let piped = export_env(project.path(), &["--out", "-"], &env);
    let yaml_name = names.iter().find(|n| n.ends_with(".yaml")).unwrap();
    assert_eq!(piped.stdout, files_a[*yaml_name]);
    for (name, bytes) in &files_a {
        assert!(!contains(bytes, CANARY.as_bytes()), "secret value in {name}");
    }
    for out in [&out_a, &out_b, &piped] {
        assert!(!contains(&out.stdout, CANARY.as_bytes()) && !contains(&out.stderr, CANARY.as_bytes()));
    }
    // The commands name the sources, so the user can supply the values.
    let err = stderr(&out_a);
    assert!(err.contains("kubectl create secret generic svc-api-token"), "{err}");
    assert!(err.contains("${KUBE_TEST_CANARY}"), "{err}");
}

#[test]
fn secrets_are_files_and_policies_follow_the_network_setting() {
    let full = fixture(FULL);
    let out = export(full.path(), &["--out", "-"]);
    let docs = documents(&stdout(&out));
    let find = |kind: &str, name: &str| {
        docs.iter().find(|d| d["kind"] == kind && d["metadata"]["name"] == name).cloned().unwrap_or(Value::Null)
    };
    let svc = find("Deployment", "svc");
    let spec = &svc["spec"]["template"]["spec"];
    let c = &spec["containers"][0];
    assert!(c.get("env").is_none_or(|e| !e.to_string().contains("API_TOKEN")));
    let mount = c["volumeMounts"].as_array().unwrap().iter().find(|m| m["mountPath"] == "/run/secrets/API_TOKEN");
    assert_eq!(mount.unwrap()["readOnly"], true);
    let vol = spec["volumes"].as_array().unwrap().iter().find(|v| v["secret"]["secretName"] == "svc-api-token");
    assert_eq!(vol.unwrap()["secret"]["defaultMode"], 256);
    assert_eq!(c["securityContext"]["capabilities"]["add"], json!(["NET_BIND_SERVICE"]));
    assert_eq!(c["resources"]["limits"], json!({ "cpu": "250m", "memory": "256Mi" }));
    let tmp = spec["volumes"].as_array().unwrap().iter().find(|v| v.get("emptyDir").is_some()).unwrap();
    assert_eq!(tmp["emptyDir"], json!({ "medium": "Memory", "sizeLimit": "32Mi" }));
    assert_eq!(find("PersistentVolumeClaim", "shared")["kind"], "PersistentVolumeClaim");
    // Services only for declared ports.
    assert_eq!(find("Service", "svc")["spec"]["type"], "ClusterIP");
    assert!(find("Service", "worker").is_null());
    // 'egress: public addresses only; 'isolated: the namespace only.
    let egress = find("NetworkPolicy", "svc")["spec"]["egress"].to_string();
    assert!(egress.contains("0.0.0.0/0") && egress.contains("10.0.0.0/8") && egress.contains("169.254.0.0/16"));
    let worker = &find("NetworkPolicy", "worker")["spec"];
    assert_eq!(worker["egress"], json!([{ "to": [{ "podSelector": {} }] }]));
    // 'none: nothing beyond the default deny.
    let agent = documents(&stdout(&export(&example_dir("agent"), &["--out", "-"])));
    assert_eq!(agent.iter().filter(|d| d["kind"] == "NetworkPolicy").count(), 1);
}

#[test]
fn images_are_referenced_under_the_prefix_and_unpinned_exports_warn() {
    // The example's lock pins the image: the export references it by that digest.
    let lock = std::fs::read_to_string(example_dir("web").join("galley.lock")).unwrap();
    let lock: serde_json::Value = serde_json::from_str(&lock).unwrap();
    let digest = lock["images"]["web"]["output"]["manifest"].as_str().unwrap().to_owned();
    let out = export(&example_dir("web"), &["--out", "-", "--image-prefix", "registry.example/team/"]);
    let docs = documents(&stdout(&out));
    let spec = &pod_specs(&docs)[0].1;
    assert_eq!(spec["containers"][0]["image"], format!("registry.example/team/web/web@{digest}"));
    assert!(!stderr(&out).contains("not pinned"), "{}", stderr(&out));

    // Without a lock, the export says it is not pinned.
    let unlocked = tempfile::tempdir().unwrap();
    std::fs::create_dir(unlocked.path().join("site")).unwrap();
    for f in ["galley.ncl", "site/index.html"] {
        std::fs::copy(example_dir("web").join(f), unlocked.path().join(f)).unwrap();
    }
    let out = export(unlocked.path(), &["--out", "-", "--image-prefix", "registry.example/team/"]);
    let docs = documents(&stdout(&out));
    let spec = &pod_specs(&docs)[0].1;
    assert_eq!(spec["containers"][0]["image"], "registry.example/team/web/web:latest");
    assert!(stderr(&out).contains("not pinned"), "{}", stderr(&out));
}

#[test]
fn what_the_restricted_profile_forbids_is_refused() {
    let named = fixture(&FULL.replace("\"1000:1000\"", "\"web\""));
    let out = export(named.path(), &["--out", "-"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("cannot be proven non-root") && stderr(&out).contains("numeric"), "{}", stderr(&out));

    let chown = fixture(&FULL.replace("\"NET_BIND_SERVICE\"", "\"CHOWN\""));
    let out = export(chown.path(), &["--out", "-"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("--allow-baseline"), "{}", stderr(&out));
    let out = export(chown.path(), &["--out", "-", "--allow-baseline"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let labels = &documents(&stdout(&out))[0]["metadata"]["labels"];
    assert_eq!(labels["pod-security.kubernetes.io/enforce"], "baseline");
    assert_eq!(labels["pod-security.kubernetes.io/warn"], "restricted");

    let admin = fixture(&FULL.replace("\"NET_BIND_SERVICE\"", "\"SYS_ADMIN\""));
    let out = export(admin.path(), &["--out", "-", "--allow-baseline"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));

    let unconfined = fixture(&FULL.replace("seccomp = 'default", "seccomp = 'unconfined"));
    let out = export(unconfined.path(), &["--out", "-"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("unconfined"), "{}", stderr(&out));
}

#[test]
fn the_default_profile_can_be_the_runtime_default() {
    let dir = tempfile::tempdir().unwrap();
    let out = export(&example_dir("web"), &["--out", dir.path().to_str().unwrap(), "--seccomp", "runtime-default"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let files = read_tree(dir.path());
    assert!(!files.keys().any(|k| k.starts_with("seccomp/")), "{:?}", files.keys());
    let yaml = String::from_utf8(files["galley-web-default.yaml"].clone()).unwrap();
    assert!(yaml.contains("type: RuntimeDefault") && !yaml.contains("Localhost"));
    assert!(!Path::new(&dir.path().join("seccomp")).exists());
}

#[test]
fn the_restricted_checks_catch_each_violation() {
    let out = export(&example_dir("web"), &["--out", "-"]);
    let good = pod_specs(&documents(&stdout(&out)))[0].1.clone();
    assert_restricted("web", &good);
    let c = |f: &str| format!("/containers/0/securityContext/{f}");
    let violations: Vec<(String, Value)> = vec![
        ("/hostNetwork".into(), json!(true)),
        ("/hostPID".into(), json!(true)),
        ("/automountServiceAccountToken".into(), json!(true)),
        ("/volumes/0".into(), json!({ "name": "h", "hostPath": { "path": "/" } })),
        ("/securityContext/runAsUser".into(), json!(0)),
        (c("allowPrivilegeEscalation"), json!(true)),
        (c("privileged"), json!(true)),
        (c("capabilities"), json!({ "drop": ["ALL"], "add": ["SYS_ADMIN"] })),
        (c("runAsNonRoot"), json!(false)),
        (c("seccompProfile"), json!({ "type": "Unconfined" })),
        ("/containers/0/ports/0/hostPort".into(), json!(8080)),
    ];
    for (pointer, value) in violations {
        let mut bad = good.clone();
        let (parent, key) = pointer.rsplit_once('/').unwrap();
        let target = bad.pointer_mut(parent).unwrap_or_else(|| panic!("{parent}"));
        match target {
            Value::Array(items) => items[key.parse::<usize>().unwrap()] = value,
            other => other[key] = value,
        }
        let caught = std::panic::catch_unwind(|| assert_restricted("mutated", &bad));
        assert!(caught.is_err(), "{pointer} was not caught");
    }
}

#[test]
fn known_digests_pin_images_and_instances_name_namespaces() {
    let home = tempfile::tempdir().unwrap();
    let settings = galley::settings::Env::new(example_dir("web"), home.path().to_owned());
    let loaded = galley::project::load_unbounded(&settings, None).unwrap();
    let digest = format!("sha256:{}", "ab".repeat(32));
    let digests = BTreeMap::from([("web".to_owned(), digest.parse().unwrap())]);
    let desired = kube::desired(&settings, &loaded.project, "pr-7", Some(&digests)).unwrap();
    let options = Options { image_prefix: "ghcr.io/acme".into(), ..Options::default() };
    let export = kube::export(&desired, &options).unwrap();
    assert_eq!(export.namespace, "galley-web-pr-7");
    assert!(export.yaml.contains(&format!("image: \"ghcr.io/acme/web/web@{digest}\"")), "{}", export.yaml);
    assert!(!export.warnings.iter().any(|w| w.contains("not pinned")), "{:?}", export.warnings);

    let out = export_cli(&["--instance", "pr-7"]);
    assert!(stdout(&out).contains("namespace: galley-web-pr-7"));
    let out = export_cli(&["--instance", "PR_7"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("invalid instance name"), "{}", stderr(&out));
}

fn export_cli(args: &[&str]) -> std::process::Output {
    let mut all = vec!["--out", "-"];
    all.extend_from_slice(args);
    export(&example_dir("web"), &all)
}
