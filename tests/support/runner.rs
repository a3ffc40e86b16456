//! Helpers for the runner's integration tests: a throw-away project with its own GALLEY_HOME and
//! a busybox image, driven through the real `galley` binary and real podman, and removed again
//! (containers, networks, volumes, images, secret tmpfs mounts) when the guard drops.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

pub fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program).args(args).output().unwrap_or_else(|e| panic!("cannot run {program}: {e}"))
}

pub fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

pub fn podman(args: &[&str]) -> Output {
    run("podman", args)
}

/// `podman` that must succeed; returns stdout.
pub fn podman_ok(args: &[&str]) -> String {
    let out = podman(args);
    assert!(out.status.success(), "podman {args:?} failed: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// GET `path` from 127.0.0.1:`port`; the whole response.
pub fn http_get(port: u16, path: &str) -> std::io::Result<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
    let mut body = String::new();
    s.read_to_string(&mut body)?;
    Ok(body)
}

/// A project under test. Dropping it removes everything it created.
pub struct TestProject {
    pub name: String,
    pub dir: tempfile::TempDir,
    pub home: tempfile::TempDir,
    images: Vec<String>,
}

impl TestProject {
    /// A project named uniquely for this process and test, with image `box` built: Debian's
    /// static busybox at /bin/busybox in an otherwise empty image.
    pub fn new(tag: &str) -> TestProject {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let name = format!("rt{}-{n}-{tag}", std::process::id());
        TestProject { name, dir: tempfile::tempdir().unwrap(), home: tempfile::tempdir().unwrap(), images: vec![] }
    }

    /// Declare image `image` as galley builds it: Debian's static busybox at /bin/busybox in an
    /// otherwise empty image. `config` turns `images.<image> = {}` into that declaration.
    pub fn with_image(mut self, image: &str) -> TestProject {
        let busybox = self.dir.path().join("busybox");
        if !busybox.exists() {
            std::fs::copy("/bin/busybox", &busybox).expect("busybox-static is installed");
        }
        self.images.push(image.to_owned());
        self
    }

    /// Write galley.ncl: `body` is the rest of the top-level record after `name`.
    pub fn config(&self, body: &str) {
        let mut body = body.to_owned();
        for image in &self.images {
            body = body.replace(
                &format!("images.{image} = {{}}"),
                // The label makes the image this project's own. galley's images are reproducible,
                // so two tests building the same files would share one podman image id, and one
                // test's clean-up could remove the image while the other loads or inspects it.
                &format!(
                    "images.{image} = {{ files = [{{ src = \"busybox\", dst = \"/bin/busybox\", mode = \"0755\" }}], labels = {{ \"io.galley.test.owner\" = \"{}\" }} }}",
                    self.name
                ),
            );
        }
        let text = format!("let galley = import \"galley/std.ncl\" in\n{{\n  name = \"{}\",\n{body}\n}}\n", self.name);
        std::fs::write(self.dir.path().join("galley.ncl"), text).unwrap();
    }

    pub fn galley_cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_galley"));
        c.arg("-C").arg(self.dir.path()).args(args);
        c.env("GALLEY_HOME", self.home.path()).env("NO_COLOR", "1");
        c.stdin(std::process::Stdio::null());
        c
    }

    pub fn galley(&self, args: &[&str]) -> Output {
        self.galley_cmd(args).output().unwrap()
    }

    /// Run galley and require `code`; returns stdout+stderr.
    pub fn galley_code(&self, args: &[&str], code: i32) -> String {
        let out = self.galley(args);
        assert_eq!(out.status.code(), Some(code), "galley {args:?}: {}", text(&out));
        text(&out)
    }

    pub fn container(&self, instance: &str, sandbox: &str) -> String {
        format!("galley_{}_{instance}_{sandbox}", self.name)
    }

    pub fn run_dir(&self) -> PathBuf {
        self.home.path().join("run")
    }

    /// `podman exec` in a sandbox; returns (success, stdout+stderr).
    pub fn exec(&self, instance: &str, sandbox: &str, script: &str) -> (bool, String) {
        let name = self.container(instance, sandbox);
        let out = podman(&["exec", &name, "/bin/busybox", "sh", "-c", script]);
        (out.status.success(), text(&out))
    }

    /// Names of the project's objects of `kind` (`ps`, `network`, `volume`) podman still has.
    pub fn leftovers(&self, kind: &str) -> Vec<String> {
        let filter = format!("label=io.galley.project={}", self.name);
        let args: Vec<&str> = match kind {
            "ps" => vec!["ps", "--all", "--format", "{{.Names}}", "--filter", &filter],
            k => vec![k, "ls", "--format", "{{.Name}}", "--filter", &filter],
        };
        podman_ok(&args).lines().map(str::to_owned).filter(|l| !l.is_empty()).collect()
    }
}

impl Drop for TestProject {
    fn drop(&mut self) {
        let names = |kind: &str| self.leftovers(kind);
        let ps = names("ps");
        if !ps.is_empty() {
            let mut args = vec!["rm", "--force", "--time", "0"];
            args.extend(ps.iter().map(String::as_str));
            podman(&args);
        }
        // Port forwarders a failed test left running.
        for instance in std::fs::read_dir(self.home.path().join("forward").join(&self.name)).into_iter().flatten().flatten() {
            if let Some(i) = instance.file_name().to_str().and_then(|i| galley::runtime::Instance::new(&self.name, i).ok()) {
                galley::runtime::forward::stop_all(self.home.path(), &i);
            }
        }
        // The host-side firewall rules of the project's networks go with them.
        for network in names("network") {
            let _ = galley::runtime::firewall::remove(&galley::exec::System, &network);
        }
        for kind in ["network", "volume"] {
            let list = names(kind);
            if !list.is_empty() {
                let mut args = vec![kind, "rm", "--force"];
                args.extend(list.iter().map(String::as_str));
                podman(&args);
            }
        }
        let filter = format!("reference=localhost/galley/{}/*", self.name);
        let tags = podman(&["images", "--format", "{{.Repository}}:{{.Tag}}", "--filter", &filter]);
        // Not --force: the same content may back another test's running containers.
        // podman lists every name of a matching image, including other projects' tags.
        let ours = format!("localhost/galley/{}/", self.name);
        for tag in String::from_utf8_lossy(&tags.stdout).lines().filter(|l| l.starts_with(&ours)) {
            podman(&["rmi", tag]);
        }
        unmount_under(self.home.path());
    }
}

/// Unmount every mount point under `root` (secret tmpfs mounts a failed test left behind).
fn unmount_under(root: &Path) {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let root = root.to_string_lossy().into_owned();
    for line in mounts.lines() {
        if let Some(point) = line.split(' ').nth(1).filter(|p| p.starts_with(&root)) {
            run("umount", &["-l", point]);
        }
    }
}
