//! A real docker-registry (Debian's `docker-registry`, distribution 2.x) on a free loopback port,
//! with its storage in a temporary directory, stopped on drop.
#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Registry {
    child: Child,
    pub port: u16,
    dir: tempfile::TempDir,
}

impl Registry {
    /// Start a registry, or `None` when docker-registry is not installed.
    pub fn start() -> Option<Registry> {
        let bin = ["/usr/bin/docker-registry", "/usr/local/bin/registry"].into_iter().find(|p| Path::new(p).is_file())?;
        let dir = tempfile::tempdir().expect("temp dir");
        let port = TcpListener::bind("127.0.0.1:0").expect("free port").local_addr().expect("addr").port();
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
                dir.path().join("data").display()
            ),
        )
        .expect("registry config");
        let child = Command::new(bin)
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start docker-registry");
        let reg = Registry { child, port, dir };
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(start.elapsed() < Duration::from_secs(20), "docker-registry did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(reg)
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The `registries` entry a project pulling from or pushing to this registry needs: plain
    /// HTTP, on a loopback address galley's SSRF guard refuses unless allowed.
    pub fn config_line(&self) -> String {
        format!("registries.\"{}\" = {{ insecure = true, allow_private = true }},", self.host())
    }

    /// The file holding blob `digest` in the registry's storage.
    pub fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.dir.path().join("data/docker/registry/v2/blobs/sha256").join(&hex[..2]).join(hex).join("data")
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// galley's busybox base (as `examples/base` builds it), pushed to `reg`; returns its reference.
pub fn push_busybox_base(reg: &Registry) -> String {
    let p = super::runner::TestProject::new("base");
    let rootfs = p.dir.path().join("rootfs/bin");
    std::fs::create_dir_all(&rootfs).unwrap();
    std::fs::copy("/bin/busybox", rootfs.join("busybox")).expect("busybox-static is installed");
    std::os::unix::fs::symlink("busybox", rootfs.join("sh")).unwrap();
    let host = reg.host();
    std::fs::write(
        p.dir.path().join("galley.ncl"),
        format!(
            r#"{{
  name = "{}",
  {}
  images.busybox = {{
    files = [{{ src = "rootfs", dst = "/" }}],
    entrypoint = ["/bin/busybox"],
    cmd = ["sh"],
  }},
}}
"#,
            p.name,
            reg.config_line()
        ),
    )
    .unwrap();
    let reference = format!("{host}/galley/busybox:1.36");
    p.galley_code(&["build"], 0);
    p.galley_code(&["push", "busybox", &reference], 0);
    reference
}
