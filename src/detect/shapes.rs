//! One detector per [`Kind`]: which files by name say the project is of that kind, and what they
//! say about its build, its entrypoint and its port. Every choice carries its evidence.

use super::tree::{Entry, MAX_FILE, Tree};
use super::{Build, Found, Kind, Port, Step};

/// Directories a static site is served from, after the top level.
const SITE_DIRS: [&str; 7] = ["public", "dist", "build", "site", "_site", "www", "out"];

pub(super) fn detect(kind: Kind, tree: &Tree, skipped: &mut Vec<String>) -> Option<Found> {
    match kind {
        Kind::Containerfile => containerfile(tree, skipped),
        Kind::Node => node(tree, skipped),
        Kind::Python => python(tree, skipped),
        Kind::Go => go(tree, skipped),
        Kind::Rust => rust(tree, skipped),
        Kind::Static => static_site(tree, skipped),
    }
}

/// The text of `name`, or `None`; a name that is there but not read is added to `skipped`.
fn text(tree: &Tree, name: &str, skipped: &mut Vec<String>) -> Option<String> {
    let why = match tree.read(name) {
        Entry::Missing | Entry::NotFile => return None,
        Entry::File(bytes) => match String::from_utf8(bytes) {
            Ok(text) => return Some(text),
            Err(_) => "is not UTF-8 text".to_owned(),
        },
        Entry::Link => "is a symbolic link, which detection does not follow".to_owned(),
        Entry::TooLarge(n) => format!("is {n} bytes, more than the {} detection reads", MAX_FILE),
    };
    let line = format!("{name} {why}: not read");
    if !skipped.contains(&line) {
        skipped.push(line);
    }
    None
}

fn port(number: u16, why: impl Into<String>) -> Option<Port> {
    Some(Port { number, why: why.into() })
}

fn words(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

fn containerfile(tree: &Tree, skipped: &mut Vec<String>) -> Option<Found> {
    let (file, body) = ["Containerfile", "Dockerfile"].into_iter().find_map(|f| text(tree, f, skipped).map(|body| (f, body)))?;
    let port = body.lines().find_map(|line| {
        let mut parts = line.split_whitespace();
        let first = parts.next()?;
        if !first.eq_ignore_ascii_case("EXPOSE") {
            return None;
        }
        let spec = parts.next()?;
        let number: u16 = spec.split('/').next()?.parse().ok().filter(|n| *n > 0)?;
        Some(Port { number, why: format!("{file} has EXPOSE {spec}") })
    });
    Some(Found {
        kind: Kind::Containerfile,
        evidence: vec![format!("{file} is present: galley builds it as it is, with the project as its context")],
        build: Build::Containerfile { file: file.to_owned() },
        port,
    })
}

/// The first port number written in `text` after one of `marks` (`PORT=3000`, `--port 8000`).
fn port_after(text: &str, marks: &[&str]) -> Option<(u16, String)> {
    for mark in marks {
        let mut rest = text;
        while let Some(i) = rest.find(mark) {
            let after = &rest[i + mark.len()..];
            let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
            if let Ok(n) = digits.parse::<u16>()
                && n > 0
            {
                return Some((n, format!("{mark}{digits}")));
            }
            rest = after;
        }
    }
    None
}

fn node(tree: &Tree, skipped: &mut Vec<String>) -> Option<Found> {
    let body = text(tree, "package.json", skipped)?;
    let Ok(json) = serde_json::from_str::<serde_json::Value>(&body) else {
        skipped.push("package.json is not valid JSON: not read".to_owned());
        return None;
    };
    let mut evidence = vec!["package.json is present".to_owned()];
    let start = json.pointer("/scripts/start").and_then(|v| v.as_str());
    let main = json.get("main").and_then(|v| v.as_str());
    let entrypoint = match (start, main) {
        (Some(start), _) => match start.split_whitespace().collect::<Vec<_>>().as_slice() {
            ["node", script] => {
                evidence.push(format!("package.json has scripts.start = \"{start}\": run with node directly"));
                words(&["node", script])
            }
            _ => {
                evidence.push(format!("package.json has scripts.start = \"{start}\": run with npm start"));
                words(&["npm", "start"])
            }
        },
        (None, Some(main)) => {
            evidence.push(format!("package.json has no scripts.start; its main is \"{main}\""));
            words(&["node", main])
        }
        (None, None) => match ["server.js", "index.js", "app.js"].into_iter().find(|f| tree.is_file(f)) {
            Some(file) => {
                evidence.push(format!("package.json has no scripts.start or main; {file} is present"));
                words(&["node", file])
            }
            None => {
                evidence.push("package.json has no scripts.start or main: `npm start` is a guess, set the entrypoint".to_owned());
                words(&["npm", "start"])
            }
        },
    };
    let has_deps = json.get("dependencies").and_then(|d| d.as_object()).is_some_and(|d| !d.is_empty());
    let dep = |name: &str| json.pointer(&format!("/dependencies/{name}")).is_some();
    let mut steps = Vec::new();
    if has_deps {
        let (command, why) = if tree.is_file("package-lock.json") {
            ("cd /app && npm ci --omit=dev", "package.json has dependencies and package-lock.json pins them")
        } else {
            ("cd /app && npm install --omit=dev", "package.json has dependencies and no package-lock.json: commit one so the install is repeatable")
        };
        steps.push(Step { command: command.into(), why: why.into() });
    }
    let scripts = json.get("scripts").map(|s| s.to_string()).unwrap_or_default();
    let port = match port_after(&scripts, &["PORT=", "--port=", "--port ", "-p "]) {
        Some((n, seen)) => port(n, format!("package.json's scripts set {seen}")),
        None if dep("next") => port(3000, "next listens on 3000 by default"),
        None if dep("express") => port(3000, "express apps conventionally listen on $PORT, set to 3000 here"),
        None => port(3000, "nothing in package.json names a port: 3000 (Node's convention, passed as $PORT) is a guess"),
    };
    let env = vec![("NODE_ENV".to_owned(), "production".to_owned())];
    let start = evidence.last().cloned().unwrap_or_default();
    Some(Found { kind: Kind::Node, evidence, build: Build::Toolchain { base: "docker.io/library/node:22", steps, entrypoint, start, env }, port })
}

/// A requirement's distribution name, lower-case (`Flask>=3 ; python_version...` gives `flask`).
fn requirement(line: &str) -> Option<String> {
    let line = line.split('#').next()?.trim();
    if line.is_empty() || line.starts_with('-') {
        return None;
    }
    let name: String = line.chars().take_while(|c| c.is_ascii_alphanumeric() || "-_.".contains(*c)).collect();
    (!name.is_empty()).then(|| name.to_ascii_lowercase().replace('_', "-"))
}

fn python(tree: &Tree, skipped: &mut Vec<String>) -> Option<Found> {
    let requirements = text(tree, "requirements.txt", skipped);
    let pyproject = text(tree, "pyproject.toml", skipped);
    if requirements.is_none() && pyproject.is_none() {
        return None;
    }
    let mut evidence = Vec::new();
    let mut deps: Vec<String> = Vec::new();
    let mut script = None;
    if let Some(reqs) = &requirements {
        evidence.push("requirements.txt is present".to_owned());
        deps.extend(reqs.lines().filter_map(requirement));
    }
    if let Some(text) = &pyproject {
        evidence.push("pyproject.toml is present".to_owned());
        match text.parse::<toml::Table>() {
            Ok(doc) => {
                let project = doc.get("project").and_then(|p| p.as_table());
                if let Some(list) = project.and_then(|p| p.get("dependencies")).and_then(|d| d.as_array()) {
                    deps.extend(list.iter().filter_map(|d| d.as_str()).filter_map(requirement));
                }
                if let Some(poetry) = doc.get("tool").and_then(|t| t.get("poetry")).and_then(|p| p.get("dependencies")).and_then(|d| d.as_table()) {
                    deps.extend(poetry.keys().map(|k| k.to_ascii_lowercase()));
                }
                script = project.and_then(|p| p.get("scripts")).and_then(|s| s.as_table()).and_then(|s| s.keys().next().cloned());
            }
            Err(_) => skipped.push("pyproject.toml is not valid TOML: only its presence was used".to_owned()),
        }
    }
    let has = |name: &str| deps.iter().any(|d| d == name);
    let module = ["main.py", "app.py"].into_iter().find(|f| tree.is_file(f)).map(|f| f.trim_end_matches(".py"));
    let (entrypoint, port) = if let Some(script) = &script {
        evidence.push(format!("pyproject.toml has [project.scripts] {script}"));
        (vec![script.clone()], port(8000, "nothing names a port: 8000 is a guess, check what the script listens on"))
    } else if tree.is_file("manage.py") && has("django") {
        evidence.push("manage.py is present and django is a dependency".to_owned());
        (words(&["python", "manage.py", "runserver", "0.0.0.0:8000"]), port(8000, "Django's runserver listens on 8000"))
    } else if let (true, Some(module)) = (has("fastapi") || has("uvicorn"), module) {
        evidence.push(format!("fastapi or uvicorn is a dependency and {module}.py is present"));
        (vec!["uvicorn".into(), format!("{module}:app"), "--host".into(), "0.0.0.0".into(), "--port".into(), "8000".into()], port(8000, "uvicorn listens on 8000 by default"))
    } else if let (true, Some(module)) = (has("flask"), module) {
        evidence.push(format!("flask is a dependency and {module}.py is present"));
        (vec!["flask".into(), "--app".into(), module.into(), "run".into(), "--host".into(), "0.0.0.0".into(), "--port".into(), "5000".into()], port(5000, "flask run listens on 5000 by default"))
    } else {
        let file = module.map_or_else(|| "main.py".to_owned(), |m| format!("{m}.py"));
        evidence.push(format!("no framework recognised: run /app/{file} (set the entrypoint if that is wrong)"));
        (vec!["python".into(), format!("/app/{file}")], port(8000, "nothing names a port: 8000 is a guess"))
    };
    let mut steps = Vec::new();
    if requirements.is_some() {
        steps.push(Step { command: "pip install --no-cache-dir -r /app/requirements.txt".into(), why: "requirements.txt lists the dependencies".into() });
    }
    if pyproject.is_some() && (script.is_some() || requirements.is_none()) {
        steps.push(Step { command: "pip install --no-cache-dir /app".into(), why: "pyproject.toml makes the project installable".into() });
    }
    let env = vec![("PYTHONUNBUFFERED".to_owned(), "1".to_owned())];
    let start = evidence.last().cloned().unwrap_or_default();
    Some(Found { kind: Kind::Python, evidence, build: Build::Toolchain { base: "docker.io/library/python:3.12-slim", steps, entrypoint, start, env }, port })
}

/// A port written in source as a listening address (`":8080"`, `"0.0.0.0:8080"`).
fn port_in_source(tree: &Tree, file: &str, skipped: &mut Vec<String>) -> Option<Port> {
    let source = text(tree, file, skipped)?;
    let (n, seen) = port_after(&source, &["\":", "0.0.0.0:", "127.0.0.1:", "localhost:"])?;
    port(n, format!("{file} has the address {}", seen.trim_start_matches('"')))
}

/// A name for an installed binary: the last part of a module path, made of safe characters.
fn binary_name(raw: &str) -> String {
    let last = raw.trim_end_matches('/').rsplit('/').next().unwrap_or(raw);
    let name: String = last.chars().filter(|c| c.is_ascii_alphanumeric() || "-_.".contains(*c)).collect();
    if name.is_empty() || name.starts_with('.') { "app".to_owned() } else { name }
}

fn go(tree: &Tree, skipped: &mut Vec<String>) -> Option<Found> {
    let body = text(tree, "go.mod", skipped)?;
    let module = body.lines().find_map(|l| l.trim().strip_prefix("module ")).map(|m| m.trim().trim_matches('"').to_owned());
    let name = binary_name(module.as_deref().unwrap_or("app"));
    let mut evidence = vec![match &module {
        Some(m) => format!("go.mod declares module {m}: the binary is {name}"),
        None => "go.mod is present but declares no module: the binary is called app".to_owned(),
    }];
    let port = port_in_source(tree, "main.go", skipped).or_else(|| port(8080, "nothing in main.go names a port: 8080 is a guess"));
    if let Some(go) = body.lines().find_map(|l| l.trim().strip_prefix("go ")) {
        evidence.push(format!("go.mod asks for go {}: the toolchain image below must be at least that", go.trim()));
    }
    let steps = vec![Step {
        command: format!("cd /app && CGO_ENABLED=0 go build -o /usr/local/bin/{name} ."),
        why: "builds the module's main package, fetching its modules".into(),
    }];
    Some(Found { kind: Kind::Go, evidence, build: Build::Toolchain { base: "docker.io/library/golang:1.23", steps, entrypoint: vec![format!("/usr/local/bin/{name}")], start: format!("the binary go build wrote, {name}"), env: vec![] }, port })
}

fn rust(tree: &Tree, skipped: &mut Vec<String>) -> Option<Found> {
    let body = text(tree, "Cargo.toml", skipped)?;
    let Ok(doc) = body.parse::<toml::Table>() else {
        skipped.push("Cargo.toml is not valid TOML: not read".to_owned());
        return None;
    };
    let bin = doc.get("bin").and_then(|b| b.as_array()).and_then(|b| b.first()).and_then(|b| b.get("name")).and_then(|n| n.as_str());
    let package = doc.get("package").and_then(|p| p.get("name")).and_then(|n| n.as_str());
    let (name, why) = match (bin, package) {
        (Some(bin), _) => (binary_name(bin), format!("Cargo.toml's first [[bin]] is {bin}")),
        (None, Some(package)) => (binary_name(package), format!("Cargo.toml's [package] is {package}: its binary has that name")),
        (None, None) => {
            skipped.push("Cargo.toml has no [package] or [[bin]] (a workspace?): not used".to_owned());
            return None;
        }
    };
    let locked = if tree.is_file("Cargo.lock") { " --locked" } else { "" };
    let steps = vec![Step {
        command: format!("CARGO_TARGET_DIR=/tmp/cargo-target cargo install{locked} --path /app --root /usr/local && rm -rf /tmp/cargo-target"),
        why: if locked.is_empty() { "builds and installs the binary; commit Cargo.lock so the build is repeatable".into() } else { "builds and installs the binary, with the versions Cargo.lock pins".into() },
    }];
    let port = port_in_source(tree, "src/main.rs", skipped).or_else(|| port(8080, "nothing in src/main.rs names a port: 8080 is a guess"));
    Some(Found { kind: Kind::Rust, evidence: vec![why], build: Build::Toolchain { base: "docker.io/library/rust:1", steps, entrypoint: vec![format!("/usr/local/bin/{name}")], start: format!("the binary cargo install wrote, {name}"), env: vec![] }, port })
}

fn static_site(tree: &Tree, skipped: &mut Vec<String>) -> Option<Found> {
    let root = std::iter::once(".").chain(SITE_DIRS).find(|dir| {
        let index = if *dir == "." { "index.html".to_owned() } else { format!("{dir}/index.html") };
        match tree.read(&index) {
            Entry::File(_) => true,
            Entry::Link => {
                skipped.push(format!("{index} is reached through a symbolic link, which detection does not follow: not used"));
                false
            }
            _ => false,
        }
    })?;
    let evidence = if root == "." {
        "index.html is at the top of the project: the whole project is served (move the site into public/ to serve less)".to_owned()
    } else {
        format!("{root}/index.html is present: {root}/ is served as it is")
    };
    Some(Found { kind: Kind::Static, evidence: vec![evidence], build: Build::Static { root: root.to_owned() }, port: port(8080, "busybox httpd listens on 8080 in the sandbox") })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_read_after_their_marks() {
        assert_eq!(port_after("\"start\": \"PORT=4000 node s.js\"", &["PORT="]), Some((4000, "PORT=4000".into())));
        assert_eq!(port_after("--port 99999 --port 81", &["--port "]), Some((81, "--port 81".into())));
        assert_eq!(port_after("http.ListenAndServe(\":9090\", nil)", &["\":"]), Some((9090, "\":9090".into())));
        assert_eq!(port_after("no port", &["PORT="]), None);
    }

    #[test]
    fn requirements_give_lower_case_names() {
        assert_eq!(requirement("Flask>=3.0 # web").as_deref(), Some("flask"));
        assert_eq!(requirement("-r other.txt"), None);
        assert_eq!(requirement("Django_Rest"), Some("django-rest".into()));
    }

    #[test]
    fn binary_names_are_the_last_part_of_a_module_path() {
        assert_eq!(binary_name("github.com/acme/hello"), "hello");
        assert_eq!(binary_name("../.."), "app");
        assert_eq!(binary_name("a b;rm"), "abrm");
    }
}
