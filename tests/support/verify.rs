//! Fixtures for `galley verify` tests: a project on disk, busybox images built from scratch,
//! the runner's own `podman run` invocation (from `galley::runtime::podman`, to be mutated), and
//! a guard that removes every container, network, volume and image a test created, even when it
//! fails.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

use galley::exec::System;
use galley::runtime::podman::{Podman, RunSpec};
use galley::runtime::{Instance, host};
use galley::settings::Env;

pub const SANDBOX: &str = "app";
pub const INSTANCE: &str = "default";
pub const SECRET_VAR: &str = "GALLEY_VERIFY_TEST_TOKEN";
const RUNTIME: &str = "runc";

static COUNTER: AtomicUsize = AtomicUsize::new(0);

pub fn run(program: &str, args: &[&str]) -> Output {
    let out = Command::new(program).args(args).output().unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(out.status.success(), "{program} {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    out
}

fn quiet(program: &str, args: &[&str]) {
    let _ = Command::new(program).args(args).output();
}

/// A free TCP port on loopback.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The runner's `podman run` invocation, split so tests can mutate it: the global options before
/// `run`, the options after it, the image and the command (`--name` is taken from `name`).
#[derive(Debug, Clone)]
pub struct Launch {
    pub name: String,
    pub global: Vec<String>,
    pub opts: Vec<String>,
    pub image: String,
    pub command: Vec<String>,
}

impl Launch {
    /// Split the runner's `cmd`, whose argv ends with `image` (the manifest declares no command).
    fn from_cmd(cmd: &galley::exec::Cmd, name: String, image: &str) -> Launch {
        let args: Vec<String> = cmd.args.iter().map(|a| a.to_string_lossy().into_owned()).collect();
        assert_eq!(cmd.program, "podman");
        let run = args.iter().position(|a| a == "run").expect("a podman run invocation");
        assert_eq!(args.last().map(String::as_str), Some(image), "the argv ends with the image: {args:?}");
        let opts = args[run + 1..args.len() - 1].to_vec();
        assert!(opts.windows(2).any(|w| w[0] == "--name" && w[1] == name), "{opts:?}");
        Launch { name, global: args[..run].to_vec(), opts, image: image.to_owned(), command: Vec::new() }
    }

    /// Remove the options `items`, which must follow each other.
    pub fn remove(&mut self, items: &[&str]) -> &mut Self {
        let i = self
            .opts
            .windows(items.len())
            .position(|w| w == items)
            .unwrap_or_else(|| panic!("no {items:?} in {:?}", self.opts));
        self.opts.drain(i..i + items.len());
        self
    }

    pub fn opt(&mut self, items: &[&str]) -> &mut Self {
        self.opts.extend(items.iter().map(|s| s.to_string()));
        self
    }

    /// Remove `flag` and its value (or `flag` alone when `with_value` is false).
    pub fn drop_opt(&mut self, flag: &str, with_value: bool) -> &mut Self {
        let i = self.opts.iter().position(|o| o == flag).unwrap_or_else(|| panic!("no {flag} in {:?}", self.opts));
        self.opts.drain(i..i + 1 + usize::from(with_value));
        self
    }

    /// The index of `flag` whose value starts with `prefix`.
    fn find(&self, flag: &str, prefix: &str) -> usize {
        (0..self.opts.len() - 1)
            .find(|&i| self.opts[i] == flag && self.opts[i + 1].starts_with(prefix))
            .unwrap_or_else(|| panic!("no {flag} {prefix}... in {:?}", self.opts))
    }

    /// Replace the value following `flag` whose value starts with `prefix`.
    pub fn set_opt(&mut self, flag: &str, prefix: &str, value: &str) -> &mut Self {
        let i = self.find(flag, prefix);
        self.opts[i + 1] = value.to_owned();
        self
    }

    /// Remove `flag` and its value that starts with `prefix`.
    pub fn drop_matching(&mut self, flag: &str, prefix: &str) -> &mut Self {
        let i = self.find(flag, prefix);
        self.opts.drain(i..i + 2);
        self
    }

    pub fn argv(&self) -> Vec<String> {
        let mut v = self.global.clone();
        v.push("run".into());
        let mut opts = self.opts.clone();
        if let Some(i) = opts.iter().position(|o| o == "--name") {
            opts[i + 1] = self.name.clone();
        }
        v.extend(opts);
        v.push(self.image.clone());
        v.extend(self.command.iter().cloned());
        v
    }
}

/// A project with one sandbox, its images and everything podman holds for it.
pub struct Fixture {
    pub project: String,
    pub dir: tempfile::TempDir,
    pub secrets: tempfile::TempDir,
    pub home: PathBuf,
    pub host_port: u16,
    pub secret: String,
    pub image: String,
    pub digest: String,
    images: Vec<String>,
    containers: std::sync::Mutex<Vec<String>>,
}

impl Fixture {
    /// A sandbox on an isolated network publishing one loopback port.
    pub fn new() -> Fixture {
        Fixture::with_network(true)
    }

    /// With `isolated` false, a sandbox with no network at all (`'none`) and no ports.
    pub fn with_network(isolated: bool) -> Fixture {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let project = format!("vt{}-{n}", std::process::id());
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        std::fs::create_dir_all(dir.path().join("project")).unwrap();
        // Secret files live on a tmpfs, as the runner keeps them.
        let secrets = tempfile::tempdir_in("/dev/shm").unwrap();
        let host_port = free_port();
        let secret = format!("tok-{project}-5f3c9a1e");
        // Delivered as apply delivers it: a file per secret in the sandbox's directory of the
        // instance's run dir (here a link to the tmpfs directory), which verify reads back.
        std::fs::create_dir_all(secrets.path().join(SANDBOX)).unwrap();
        std::fs::write(secrets.path().join(SANDBOX).join("TOKEN"), &secret).unwrap();
        let run_dir = Instance::new(&project, INSTANCE).unwrap().run_dir(&home);
        std::fs::create_dir_all(run_dir.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(secrets.path(), &run_dir).unwrap();
        std::fs::write(dir.path().join("project/galley.ncl"), config(&project, isolated.then_some(host_port))).unwrap();
        let mut f = Fixture {
            project,
            dir,
            secrets,
            home,
            host_port,
            secret,
            image: String::new(),
            digest: String::new(),
            images: Vec::new(),
            containers: Default::default(),
        };
        // The instance's network and volume, created as the runner creates them.
        let instance = f.instance();
        if isolated {
            f.podman().create_network(&instance, &f.network(), true).expect("podman network create");
            galley::runtime::firewall::close(&f.podman(), &[f.network()]).expect("host side closed");
        }
        f.podman().create_volume(&instance, "work").expect("podman volume create");
        f.image = f.build_image("a", &[]);
        f.digest = f.image_digest(&f.image);
        f
    }

    pub fn network(&self) -> String {
        self.instance().network()
    }

    pub fn instance(&self) -> Instance {
        Instance::new(&self.project, INSTANCE).unwrap()
    }

    /// The runner's podman client, with the OCI runtime the tests use.
    pub fn podman(&self) -> Podman<'static> {
        Podman { runner: &System, runtime: Some(RUNTIME.into()) }
    }

    pub fn project_dir(&self) -> PathBuf {
        self.dir.path().join("project")
    }

    /// Build a busybox image from scratch; `extra` are (destination, mode) copies of busybox.
    pub fn build_image(&mut self, tag: &str, extra: &[(&str, &str)]) -> String {
        let name = format!("localhost/galley-verify-test:{}-{tag}", self.project);
        let out = run("buildah", &["from", "scratch"]);
        let c = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        run("buildah", &["copy", "--chmod", "0755", &c, "/bin/busybox", "/bin/busybox"]);
        for (dst, mode) in extra {
            run("buildah", &["copy", "--chmod", mode, &c, "/bin/busybox", dst]);
        }
        run(
            "buildah",
            // The label makes the image this fixture's own: two fixtures committing the same
            // files in the same second would otherwise share one image id, and one's clean-up
            // would remove the image the other is inspecting.
            &[
                "config",
                "--user",
                "65534:65534",
                "--label",
                &format!("io.galley.test.owner={name}"),
                "--cmd",
                r#"["/bin/busybox","httpd","-f","-p","8080","-h","/"]"#,
                &c,
            ],
        );
        run("buildah", &["commit", "-q", &c, &name]);
        run("buildah", &["rm", &c]);
        self.images.push(name.clone());
        name
    }

    pub fn image_digest(&self, image: &str) -> String {
        let out = run("podman", &["image", "inspect", "--format", "{{.Digest}}", image]);
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    pub fn settings(&self) -> Env {
        Env::new(self.project_dir(), self.home.clone())
    }

    /// The manifest of the sandbox, resolved with `digest` as its image's.
    pub fn manifest(&self, digest: &str) -> galley::manifest::SandboxManifest {
        let s = self.settings();
        let loaded = galley::project::load_unbounded(&s, None).expect("the test project evaluates");
        let digest = digest.parse().expect("podman reports the image digest as sha256:<hex>");
        galley::manifest::resolve(&loaded.project, SANDBOX, Some(digest), &s.lib_root()).unwrap()
    }

    /// Write the sandbox's seccomp profile where the runner would, and return its path.
    pub fn seccomp_file(&self) -> PathBuf {
        let s = self.settings();
        let loaded = galley::project::load_unbounded(&s, None).unwrap();
        let profile =
            galley::seccomp::resolve(&s.lib_root(), &loaded.project.sandboxes[SANDBOX].seccomp).unwrap().unwrap();
        let path = self.dir.path().join("seccomp.json");
        std::fs::write(&path, profile.bytes()).unwrap();
        path
    }

    /// The runner's `podman run` invocation for the sandbox, built by the runner's own
    /// `Podman::run_cmd` from the manifest, with the secret files in this fixture's tmpfs.
    pub fn launch(&self) -> Launch {
        let m = self.manifest(&self.digest);
        let instance = self.instance();
        let seccomp = m.seccomp.digest.as_ref().map(|_| self.seccomp_file());
        let secrets = m.secrets.keys().map(|name| (self.delivered(name), name.clone())).collect();
        let (nofile, nproc) = host::ulimits(&m, &host::system());
        let spec = RunSpec { manifest: &m, instance: &instance, image: self.image.clone(), seccomp, secrets, nofile, nproc };
        Launch::from_cmd(&self.podman().run_cmd(&spec), instance.container(SANDBOX), &self.image)
    }

    /// The host file holding the value apply delivered for secret `name`.
    pub fn delivered(&self, name: &str) -> PathBuf {
        self.secrets.path().join(SANDBOX).join(name)
    }

    /// Start a container; it is removed when the fixture drops.
    pub fn start(&self, launch: &Launch) {
        quiet("podman", &["rm", "-f", "-t", "0", &launch.name]);
        self.containers.lock().unwrap().push(launch.name.clone());
        let argv = launch.argv();
        let args: Vec<&str> = argv.iter().map(String::as_str).collect();
        run("podman", &args);
        // The ports of a sandbox without egress, through galley's forwarder, as apply does.
        if launch.name == self.instance().container(SANDBOX) {
            let exe = std::path::Path::new(env!("CARGO_BIN_EXE_galley"));
            let m = self.manifest(&self.digest);
            galley::runtime::forward::start(&self.home, &self.instance(), &m, exe, Some(RUNTIME)).expect("forwarder started");
        }
    }

    pub fn stop(&self, launch: &Launch) {
        quiet("podman", &["rm", "-f", "-t", "0", &launch.name]);
    }

    /// Run `galley` in the project with the secret's source variable set.
    pub fn galley(&self, args: &[&str]) -> Output {
        self.galley_cmd(args).output().unwrap()
    }

    fn galley_cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_galley"));
        cmd.args(["-C", self.project_dir().to_str().unwrap()])
            .args(args)
            .env(galley::env_vars::GALLEY_HOME, &self.home)
            .env(galley::env_vars::GALLEY_OCI_RUNTIME, RUNTIME)
            .env(SECRET_VAR, &self.secret)
            .env_remove("NO_COLOR");
        cmd
    }

    /// `galley verify --format json`: exit code and the report.
    pub fn verify_json(&self, extra: &[&str]) -> (i32, serde_json::Value) {
        self.verify_json_unset(extra, &[])
    }

    /// `galley verify --format json` with the variables `unset` removed from its environment.
    pub fn verify_json_unset(&self, extra: &[&str], unset: &[&str]) -> (i32, serde_json::Value) {
        let mut args = vec!["verify", "--format", "json"];
        args.extend(extra);
        let mut cmd = self.galley_cmd(&args);
        for var in unset {
            cmd.env_remove(var);
        }
        let out = cmd.output().unwrap();
        let code = out.status.code().unwrap_or(-1);
        let json = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "verify printed no JSON ({e}): {}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (code, json)
    }
}

/// The ids of failing checks in a verify JSON report.
pub fn failing(report: &serde_json::Value) -> std::collections::BTreeSet<String> {
    report["sandboxes"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s["findings"].as_array().cloned().unwrap_or_default())
        .filter(|f| f["severity"] == "error")
        .map(|f| f["check"].as_str().unwrap().to_owned())
        .collect()
}

pub fn messages(report: &serde_json::Value) -> Vec<String> {
    report["sandboxes"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s["findings"].as_array().cloned().unwrap_or_default())
        .map(|f| f["message"].as_str().unwrap().to_owned())
        .collect()
}

impl Drop for Fixture {
    fn drop(&mut self) {
        for c in self.containers.lock().unwrap().iter() {
            quiet("podman", &["rm", "-f", "-t", "0", c]);
        }
        let out = Command::new("podman")
            .args(["ps", "-aq", "--filter", &format!("label=io.galley.project={}", self.project)])
            .output();
        if let Ok(out) = out {
            for id in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                quiet("podman", &["rm", "-f", "-t", "0", id]);
            }
        }
        galley::runtime::forward::stop_all(&self.home, &self.instance());
        quiet("podman", &["network", "rm", "-f", &self.network()]);
        let _ = galley::runtime::firewall::remove(&System, &self.network());
        quiet("podman", &["volume", "rm", "-f", &self.instance().volume("work")]);
        // Untag, never force: a forced removal takes every tag of the image id with it.
        for i in &self.images {
            quiet("podman", &["rmi", i]);
        }
    }
}

fn config(project: &str, host_port: Option<u16>) -> String {
    let (network, ports) = match host_port {
        Some(p) => ("isolated", format!("[{{ container = 8080, host = {p} }}]")),
        None => ("none", "[]".to_owned()),
    };
    format!(
        r#"{{
  name = "{project}",
  images.app = {{ user = "65534:65534", cmd = ["/bin/busybox", "httpd", "-f", "-p", "8080", "-h", "/"] }},
  sandboxes.app = {{
    image = "app",
    network = '{network},
    ports = {ports},
    secrets.TOKEN = {{ env = "{SECRET_VAR}" }},
    capabilities = ["NET_BIND_SERVICE"],
    user = "65534:65534",
    volumes = [{{ name = "work", path = "/work" }}],
    resources = {{ memory = "128m", cpus = 0.5, pids = 64, nofile = 1024, nproc = 512 }},
  }},
}}
"#
    )
}

/// The host pid of a container's init process.
pub fn container_pid(name: &str) -> u32 {
    let out = run("podman", &["inspect", "--format", "{{.State.Pid}}", name]);
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// Poll `cond` for up to 20 seconds.
pub fn wait_for(cond: impl Fn() -> bool) -> bool {
    let start = std::time::Instant::now();
    while start.elapsed() < std::time::Duration::from_secs(20) {
        if cond() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    false
}
