//! Rendering an export: deterministic multi-document YAML, the seccomp profiles and README.txt
//! beside it, and the `kubectl create secret` commands that supply secret values.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{Export, KubeError};
use crate::fsutil;
use crate::manifest::SandboxManifest;
use crate::model::Secret;

/// Directory (beside the YAML) holding the Localhost seccomp profiles.
pub const SECCOMP_DIR: &str = "seccomp";
/// Where nodes' kubelets look for Localhost profiles, joined with `galley/`.
pub const KUBELET_SECCOMP_DIR: &str = "/var/lib/kubelet/seccomp/galley";

/// Documents as one YAML stream: keys sorted at every depth, documents in the given order.
pub fn yaml(docs: &[Value]) -> String {
    let mut out = String::new();
    for doc in docs {
        out.push_str("---\n");
        block(&mut out, &crate::canonical::to_value(doc), 0);
    }
    out
}

/// Block-style YAML of a mapping or sequence at `indent` spaces. Strings are written plain only
/// when no YAML 1.1 or 1.2 reader can take them for anything but a string (Kubernetes tooling
/// reads YAML 1.1, where `yes`, `on` and `12:30` are not strings); otherwise double-quoted with
/// JSON escapes, which both versions read the same way.
fn block(out: &mut String, value: &Value, indent: usize) {
    let pad = " ".repeat(indent);
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                out.push_str(&format!("{pad}{}:", scalar(&Value::String(k.clone()))));
                match v {
                    Value::Object(m) if !m.is_empty() => {
                        out.push('\n');
                        block(out, v, indent + 2);
                    }
                    Value::Array(a) if !a.is_empty() => {
                        out.push('\n');
                        block(out, v, indent);
                    }
                    _ => out.push_str(&format!(" {}\n", scalar(v))),
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                match item {
                    Value::Object(m) if !m.is_empty() => {
                        let mut inner = String::new();
                        block(&mut inner, item, indent + 2);
                        out.push_str(&format!("{pad}- {}", &inner[indent + 2..]));
                    }
                    Value::Array(a) if !a.is_empty() => {
                        out.push_str(&format!("{pad}-\n"));
                        block(out, item, indent + 2);
                    }
                    _ => out.push_str(&format!("{pad}- {}\n", scalar(item))),
                }
            }
        }
        other => out.push_str(&format!("{pad}{}\n", scalar(other))),
    }
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) if plain_safe(s) => s.clone(),
        Value::Object(_) => "{}".into(),
        Value::Array(_) => "[]".into(),
        other => serde_json::to_string(other).expect("JSON values serialize"),
    }
}

/// A letter, `_` or `/`, then letters, digits, `_`, `.`, `/`, `-`; and not a boolean or null
/// word of YAML 1.1.
fn plain_safe(s: &str) -> bool {
    const WORDS: &[&str] = &["y", "n", "yes", "no", "true", "false", "on", "off", "null"];
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '/')
        && chars.all(|c| c.is_ascii_alphanumeric() || "_./-".contains(c))
        && !WORDS.contains(&s.to_ascii_lowercase().as_str())
}

/// Quote `s` for a POSIX shell when it holds anything but safe characters.
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./:=@%+,".contains(&b)) {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// One shell command per secret creating its Kubernetes Secret from the secret's source, without
/// the value ever appearing in a command line.
pub fn secret_commands(namespace: &str, m: &SandboxManifest, names: &BTreeMap<String, String>) -> Vec<String> {
    let mut out = Vec::new();
    for (secret, source) in &m.secrets {
        let name = &names[secret];
        let create = |file: &str| {
            format!("kubectl create secret generic {name} --namespace {namespace} --from-file={}={file}", shell_quote(secret))
        };
        out.push(match source {
            Secret::Env(var) => format!("printf '%s' \"${{{var}}}\" | {}", create("/dev/stdin")),
            Secret::File(path) => match path.strip_prefix("~/") {
                Some(rest) => create(&format!("\"$HOME\"/{}", shell_quote(rest))),
                None => create(&shell_quote(path)),
            },
            Secret::Command(argv) => {
                let argv: Vec<String> = argv.iter().map(|a| shell_quote(a)).collect();
                format!("printf '%s' \"$({})\" | {}", argv.join(" "), create("/dev/stdin"))
            }
            Secret::Store(key) => format!(
                "# {secret} comes from galley's secret store key {key}: write its value to a file, then\n{}",
                create("FILE")
            ),
        });
    }
    out
}

/// The README.txt written beside the YAML.
pub fn readme(export: &Export, yaml_file: &str) -> String {
    let ns = &export.namespace;
    let mut t = format!("galley export kube: namespace {ns}\n");
    let mut step = 0;
    let mut next = |title: &str| {
        step += 1;
        format!("\n{step}. {title}\n\n")
    };
    if !export.profiles.is_empty() {
        t.push_str(&next("Install the seccomp profiles on every node that may run these pods:"));
        t.push_str(&format!("   sudo mkdir -p {KUBELET_SECCOMP_DIR}\n"));
        t.push_str(&format!("   sudo cp {SECCOMP_DIR}/*.json {KUBELET_SECCOMP_DIR}/\n\n"));
        t.push_str("   Pods reference them as localhostProfile: galley/<digest>.json; a pod whose profile\n");
        t.push_str("   is missing on its node does not start.\n");
    }
    t.push_str(&next("Apply the objects (namespace first, in file order):"));
    t.push_str(&format!("   kubectl apply -f {yaml_file}\n"));
    if !export.secret_commands.is_empty() {
        t.push_str(&next("Create the secrets from the project directory; pods wait for them:"));
        for c in &export.secret_commands {
            for line in c.lines() {
                t.push_str(&format!("   {line}\n"));
            }
            t.push('\n');
        }
        t.pop();
    }
    t.push_str(&next("Wait for the sandboxes:"));
    t.push_str(&format!("   kubectl --namespace {ns} wait deployment --all --for condition=Available --timeout 5m\n"));
    t.push_str(
        "\nNot expressible per pod, recorded as galley.dev/*-limit annotations: the pids limit (set\n\
         the kubelet's podPidsLimit), nofile and nproc (the container runtime's defaults apply).\n",
    );
    t
}

/// Write `<out>/<namespace>.yaml`, `<out>/seccomp/*.json` and `<out>/README.txt`; return the
/// paths written.
pub fn write_dir(out: &Path, export: &Export) -> Result<Vec<PathBuf>, KubeError> {
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| KubeError::Io { path, source }
    };
    let mut written = Vec::new();
    fs_err::create_dir_all(out).map_err(io(out))?;
    let yaml_file = format!("{}.yaml", export.namespace);
    let yaml_path = out.join(&yaml_file);
    fsutil::write_atomic(&yaml_path, export.yaml.as_bytes()).map_err(io(&yaml_path))?;
    written.push(yaml_path);
    if !export.profiles.is_empty() {
        let dir = out.join(SECCOMP_DIR);
        fs_err::create_dir_all(&dir).map_err(io(&dir))?;
        for (file, bytes) in &export.profiles {
            let path = dir.join(file);
            fsutil::write_atomic(&path, bytes).map_err(io(&path))?;
            written.push(path);
        }
    }
    let readme_path = out.join("README.txt");
    fsutil::write_atomic(&readme_path, readme(export, &yaml_file).as_bytes()).map_err(io(&readme_path))?;
    written.push(readme_path);
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_secrets_keep_home_expandable() {
        let m: SandboxManifest = serde_json::from_value(serde_json::json!({
            "version": 1, "project": "p", "sandbox": "s", "image": { "name": "i", "digest": null },
            "command": null, "env": {}, "ports": [], "network": "none",
            "secrets": { "A": { "file": "~/a b" }, "B": { "file": "certs/b.pem" } },
            "seccomp": { "profile": "default", "digest": null }, "capabilities": [], "user": "1",
            "read_only": true, "no_new_privileges": true, "tmpfs": [], "volumes": [],
            "resources": { "memory": "1g", "cpus": 1.0, "pids": 0, "nofile": null, "nproc": null },
        }))
        .unwrap();
        let names = BTreeMap::from([("A".to_owned(), "s-a".to_owned()), ("B".to_owned(), "s-b".to_owned())]);
        let cmds = secret_commands("ns", &m, &names);
        assert!(cmds[0].ends_with("--from-file=A=\"$HOME\"/'a b'"), "{}", cmds[0]);
        assert!(cmds[1].ends_with("--from-file=B=certs/b.pem"), "{}", cmds[1]);
    }

    #[test]
    fn shell_quoting_leaves_safe_words_alone() {
        assert_eq!(shell_quote("API_TOKEN=/dev/stdin"), "API_TOKEN=/dev/stdin");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }

    #[test]
    fn documents_are_separated_and_keys_sorted() {
        let docs = vec![serde_json::json!({"b": 1, "a": "1"}), serde_json::json!({"kind": "X"})];
        assert_eq!(yaml(&docs), "---\na: \"1\"\nb: 1\n---\nkind: X\n");
    }

    #[test]
    fn yaml_1_1_hazards_are_quoted_and_everything_reads_back() {
        let v = serde_json::json!({
            "env": [{ "name": "A", "value": "yes" }, { "name": "B", "value": "12:30" }, { "name": "C", "value": "on" }],
            "empty": {}, "none": [], "n": 5, "t": true, "nested": [[1, "x"], { "k": "line\nbreak \"q\"" }],
            "plain": "app.kubernetes.io/name", "digest": "sha256:ab", "x-y": "0.0.0.0/0",
        });
        let text = yaml(std::slice::from_ref(&v));
        for hazard in ["yes", "12:30", "on", "0.0.0.0/0", "sha256:ab"] {
            assert!(text.contains(&format!("\"{hazard}\"")), "{hazard} unquoted in\n{text}");
        }
        assert!(text.contains("plain: app.kubernetes.io/name\n"), "{text}");
        let back: Value = serde_saphyr::from_str(text.trim_start_matches("---\n")).unwrap();
        assert_eq!(back, crate::canonical::to_value(&v));
    }
}
