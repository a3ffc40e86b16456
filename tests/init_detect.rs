//! `galley init --detect` on the projects a new user already has: each shape gives a galley.ncl
//! that says what was found and checks clean; the static site one is built on galley's busybox
//! base, applied on podman and serves its page; a project with nothing to recognise, an existing
//! galley.ncl and a symbolic link leading out of the project are each handled without writing.

mod support;

use std::os::unix::fs::symlink;

use support::registry::push_busybox_base;
use support::runner::{TestProject, free_port, http_get};
use support::{Sandbox, require_registry, runtime_available, stderr};

/// A project holding `files` (path, text).
fn project(files: &[(&str, &str)]) -> Sandbox {
    let p = Sandbox::new();
    for (rel, text) in files {
        p.write(rel, text);
    }
    p
}

/// `galley init --detect` in `p`, which must succeed; returns the galley.ncl it wrote.
fn detect(p: &Sandbox) -> String {
    let out = p.galley(&["init", "--detect", "--name", "shop"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    std::fs::read_to_string(p.path().join("galley.ncl")).unwrap()
}

/// `galley check --deny warnings --format json` exits 0 with no findings at all.
fn checks_clean(p: &Sandbox, config: &str) {
    let out = p.galley(&["check", "--deny", "warnings", "--format", "json"]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{report}\n{config}");
    assert_eq!(report["diagnostics"].as_array().map(Vec::len), Some(0), "{report}\n{config}");
}

fn assert_has(config: &str, parts: &[&str]) {
    for part in parts {
        assert!(config.contains(part), "missing {part:?} in:\n{config}");
    }
}

#[test]
fn a_node_project_runs_its_start_script_on_the_port_its_scripts_set() {
    // A lock file larger than detection reads (2 MiB is common) still counts as there: npm ci.
    let lock = format!("{{ \"lockfileVersion\": 3, \"packages\": {{ \"\": {{ \"name\": \"{}\" }} }} }}", "x".repeat(2 << 20));
    let p = project(&[
        ("package.json", r#"{ "name": "shop", "scripts": { "start": "PORT=4000 node server.js" }, "dependencies": { "express": "^4.19.0" } }"#),
        ("package-lock.json", &lock),
        ("server.js", "require('http').createServer((q, s) => s.end('hi')).listen(process.env.PORT);\n"),
    ]);
    let config = detect(&p);
    assert_has(&config, &[
        "# Detected a Node.js project:",
        "package.json has scripts.start = \"PORT=4000 node server.js\"",
        "# CONFIRM: a toolchain image",
        "base = \"docker.io/library/node:22\"",
        "{ command = \"cd /app && npm ci --omit=dev\", network = true }",
        "entrypoint = [\"npm\", \"start\"]",
        "# Port 4000: package.json's scripts set PORT=4000.",
        "galley.presets.service_on 4000 4000 & {",
        "env = { PORT = \"4000\", HOME = \"/tmp\" }",
    ]);
    checks_clean(&p, &config);
}

#[test]
fn a_python_project_with_flask_runs_flask_on_its_default_port() {
    let p = project(&[
        ("requirements.txt", "Flask==3.0.3\ngunicorn>=22 # later\n"),
        ("app.py", "from flask import Flask\napp = Flask(__name__)\n"),
    ]);
    let config = detect(&p);
    assert_has(&config, &[
        "# Detected a Python project:",
        "flask is a dependency and app.py is present",
        "base = \"docker.io/library/python:3.12-slim\"",
        "{ command = \"pip install --no-cache-dir -r /app/requirements.txt\", network = true }",
        "entrypoint = [\"flask\", \"--app\", \"app\", \"run\", \"--host\", \"0.0.0.0\", \"--port\", \"5000\"]",
        "galley.presets.service_on 5000 5000 & {",
    ]);
    checks_clean(&p, &config);
}

#[test]
fn a_pyproject_with_a_script_installs_the_project_and_runs_the_script() {
    let p = project(&[(
        "pyproject.toml",
        "[project]\nname = \"shop\"\ndependencies = [\"uvicorn\"]\n[project.scripts]\nshop-serve = \"shop:main\"\n[build-system]\nrequires = [\"setuptools\"]\n",
    )]);
    let config = detect(&p);
    assert_has(&config, &["pyproject.toml has [project.scripts] shop-serve", "pip install --no-cache-dir /app", "entrypoint = [\"shop-serve\"]"]);
    checks_clean(&p, &config);
}

#[test]
fn a_go_module_is_built_and_listens_where_main_go_says() {
    let p = project(&[
        ("go.mod", "module github.com/acme/shop\n\ngo 1.22\n"),
        ("main.go", "package main\n\nimport \"net/http\"\n\nfunc main() { http.ListenAndServe(\":9090\", nil) }\n"),
    ]);
    let config = detect(&p);
    assert_has(&config, &[
        "# Detected a Go module:",
        "go.mod declares module github.com/acme/shop: the binary is shop",
        "CGO_ENABLED=0 go build -o /usr/local/bin/shop .",
        "entrypoint = [\"/usr/local/bin/shop\"]",
        "# Port 9090: main.go has the address :9090.",
        "galley.presets.service_on 9090 9090 & {",
    ]);
    checks_clean(&p, &config);
}

#[test]
fn a_rust_crate_runs_the_binary_its_manifest_names() {
    let p = project(&[
        ("Cargo.toml", "[package]\nname = \"shop\"\nversion = \"0.1.0\"\n\n[[bin]]\nname = \"shop-server\"\npath = \"src/main.rs\"\n"),
        ("Cargo.lock", "version = 4\n"),
        ("src/main.rs", "fn main() { std::net::TcpListener::bind(\"0.0.0.0:7000\").unwrap(); }\n"),
    ]);
    let config = detect(&p);
    assert_has(&config, &[
        "# Detected a Rust crate:",
        "Cargo.toml's first [[bin]] is shop-server",
        "cargo install --locked --path /app --root /usr/local",
        "entrypoint = [\"/usr/local/bin/shop-server\"]",
        "# Port 7000: src/main.rs has the address 0.0.0.0:7000.",
        "galley.presets.service_on 7000 7000 & {",
    ]);
    checks_clean(&p, &config);
}

#[test]
fn a_containerfile_comes_first_and_the_other_shapes_are_named_in_comments() {
    let p = project(&[
        ("Containerfile", "FROM docker.io/library/node:22\nCOPY . /app\nexpose 3000/tcp\nUSER node\nCMD [\"node\", \"/app/server.js\"]\n"),
        ("package.json", r#"{ "scripts": { "start": "node server.js" } }"#),
        ("public/index.html", "<h1>shop</h1>\n"),
    ]);
    let config = detect(&p);
    assert_has(&config, &[
        "# Detected a Containerfile build:",
        "Containerfile is present: galley builds it as it is",
        "images.app.containerfile = \"Containerfile\",",
        "# Port 3000: Containerfile has EXPOSE 3000/tcp.",
        "galley.presets.service_on 3000 3000 & {",
        "# Also found, not used (a Containerfile build comes first",
        "#   - a Node.js project: package.json is present; package.json has scripts.start = \"node server.js\"",
        "#   - a static site: public/index.html is present",
    ]);
    assert!(!config.contains("base ="), "a Containerfile build has no base of its own: {config}");
    checks_clean(&p, &config);
}

#[test]
fn a_project_with_nothing_to_recognise_is_told_so_and_nothing_is_written() {
    let p = project(&[("notes.txt", "hello\n"), ("src/lib.c", "int x;\n")]);
    let out = p.galley(&["init", "--detect"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("galley init --detect recognised nothing in"), "{err}");
    assert!(err.contains("help: it looks for a Containerfile or Dockerfile, package.json"), "{err}");
    assert!(err.contains("galley init --template service"), "{err}");
    let names: Vec<String> = std::fs::read_dir(p.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert_eq!(names.len(), 2, "nothing written, no temporary file left: {names:?}");
}

#[test]
fn an_existing_galley_ncl_is_never_overwritten() {
    let p = project(&[("galley.ncl", "# mine\n{ name = \"mine\" }\n"), ("go.mod", "module shop\n")]);
    let out = p.galley(&["init", "--detect"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("galley.ncl already exists"), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(p.path().join("galley.ncl")).unwrap(), "# mine\n{ name = \"mine\" }\n");
}

/// Attack: a pull request plants `package.json` and `public/` as symbolic links to files outside
/// the project (a host's home, another checkout), so that detection reads them and copies what
/// they say (or that they exist) into the galley.ncl it writes. Detection never follows a link:
/// it says it did not read them, and the outside text reaches no file.
#[test]
fn a_symlink_leading_out_of_the_project_is_not_followed_by_detection() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("package.json"), r#"{ "scripts": { "start": "node OUTSIDE-MARKER.js" } }"#).unwrap();
    std::fs::create_dir(outside.path().join("public")).unwrap();
    std::fs::write(outside.path().join("public/index.html"), "OUTSIDE-MARKER\n").unwrap();

    let p = project(&[]);
    symlink(outside.path().join("package.json"), p.path().join("package.json")).unwrap();
    symlink(outside.path().join("public"), p.path().join("public")).unwrap();
    let out = p.galley(&["init", "--detect"]);
    assert_eq!(out.status.code(), Some(1), "only links: nothing is recognised: {}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("package.json is a symbolic link, which detection does not follow: not read"), "{err}");
    assert!(err.contains("public/index.html is reached through a symbolic link"), "{err}");
    assert!(!err.contains("OUTSIDE-MARKER") && !p.path().join("galley.ncl").exists(), "{err}");

    p.write("go.mod", "module shop\n");
    let config = detect(&p);
    assert!(config.contains("# Detected a Go module:"), "{config}");
    assert!(config.contains("#   - package.json is a symbolic link, which detection does not follow: not read"), "{config}");
    assert!(!config.contains("OUTSIDE-MARKER") && !config.contains("a Node.js project"), "{config}");
}

/// Attack: a pull request's package.json carries Nickel in its text (a newline that would end a
/// comment, a quote that would end a string, an interpolation) so that the galley.ncl detection
/// writes evaluates the attacker's code or fields. The text stays data: the file checks clean
/// and its name is the one given.
#[test]
fn nickel_written_in_package_json_does_not_become_config() {
    let payload = "\n}, name = \"pwned\", sandboxes.x = { image = \"app\", user = \"root\" } # %{std.fail_with \"boom\"}";
    let start = serde_json::json!({ "scripts": { "start": format!("npm run serve{payload}") } }).to_string();
    let main = serde_json::json!({ "main": format!("x.js\"{payload}") }).to_string();
    for manifest in [start, main] {
        let p = project(&[("package.json", &manifest)]);
        let config = detect(&p);
        checks_clean(&p, &config);
        let show = p.galley(&["show", "--format", "json"]);
        let shown: serde_json::Value = serde_json::from_slice(&show.stdout).unwrap_or_else(|e| panic!("{e}: {}", stderr(&show)));
        assert_eq!(shown["name"], "shop", "{config}");
        assert!(shown["sandboxes"].get("x").is_none(), "{config}");
    }
}

#[test]
fn a_static_site_is_built_on_the_busybox_base_applied_and_serves_its_page() {
    if !runtime_available() {
        return;
    }
    let Some(reg) = require_registry() else {
        return;
    };
    let base = push_busybox_base(&reg);
    let p = TestProject::new("static");
    std::fs::create_dir(p.dir.path().join("dist")).unwrap();
    std::fs::write(p.dir.path().join("dist/index.html"), format!("<h1>{} detected</h1>\n", p.name)).unwrap();
    let port = free_port();
    p.galley_code(&["init", "--detect", "--base", &base, "--port", &port.to_string(), "--name", &p.name], 0);
    let config = std::fs::read_to_string(p.dir.path().join("galley.ncl")).unwrap();
    assert_has(&config, &["# Detected a static site:", "files = [{ src = \"dist\", dst = \"/srv\" }]", &format!("galley.presets.service_on 8080 {port} & {{")]);
    p.galley_code(&["check", "--deny", "warnings"], 0);
    p.galley_code(&["lock"], 0);
    p.galley_code(&["build", "--locked"], 0);
    p.galley_code(&["apply", "--auto-approve", "--locked"], 0);
    let page = http_get(port, "/").unwrap();
    assert!(page.starts_with("HTTP/1.") && page.contains(" 200 "), "{page}");
    assert!(page.contains(&format!("<h1>{} detected</h1>", p.name)), "{page}");
    p.galley_code(&["destroy", "--auto-approve", "--volumes"], 0);
}
