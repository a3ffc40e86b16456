//! `galley cp` out of a hostile sandbox on real podman: a sparse file stays sparse with bounded
//! memory, tar bombs over a cap are refused whole, a symlink swapped in at the requested path is
//! refused, and a deep tree copies in time close to `podman cp` alone.

mod support;

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Instant;

use support::runner::{podman_ok, TestProject};
use support::runtime_available;

/// A running sandbox `agent` (uid 1000) with a `workspace` volume, whose image also holds a
/// root-only key at /root-key (0600) and a root-only directory /private (0700).
fn sandbox(tag: &str) -> TestProject {
    let p = TestProject::new(tag).with_image("box");
    std::fs::write(p.dir.path().join("key"), "root-only-key-7c1d\n").unwrap();
    std::fs::create_dir(p.dir.path().join("private")).unwrap();
    std::fs::write(p.dir.path().join("private/key"), "root-only-key-7c1d\n").unwrap();
    p.config(&format!(
        r#"  images.box = {{
    files = [
      {{ src = "busybox", dst = "/bin/busybox", mode = "0755" }},
      {{ src = "key", dst = "/root-key", mode = "0600" }},
      {{ src = "private/key", dst = "/private/key", mode = "0600" }},
    ],
    labels = {{ "io.galley.test.owner" = "{}" }},
  }},
  sandboxes.agent = galley.presets.untrusted & {{
    image = "box",
    user = "1000:1000",
    command = ["/bin/busybox", "sleep", "1000000"],
  }},"#,
        p.name
    ));
    p.galley_code(&["apply", "--auto-approve"], 0);
    p
}

fn plant(p: &TestProject, script: &str) {
    let (ok, out) = p.exec("default", "agent", &format!("cd /workspace && {script} && echo planted"));
    assert!(ok && out.contains("planted"), "{out}");
}

/// Run `galley cp` with `env`; returns (exit code, output, peak RSS of galley in KiB, seconds).
fn galley_cp(p: &TestProject, env: &[(&str, &str)], from: &str, to: &Path) -> (i32, String, i64, f64) {
    let mut cmd = p.galley_cmd(&["cp", from, to.to_str().unwrap()]);
    cmd.envs(env.iter().copied());
    let stdout = tempfile::tempfile().unwrap();
    let stderr = tempfile::tempfile().unwrap();
    cmd.stdout(stdout.try_clone().unwrap()).stderr(stderr.try_clone().unwrap());
    let start = Instant::now();
    let child = cmd.spawn().unwrap();
    let mut status = 0;
    // SAFETY: zeroed rusage is a valid out-parameter; the pid is our own child, reaped here.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    let seconds = start.elapsed().as_secs_f64();
    assert_eq!(pid, child.id() as i32);
    let read = |f: &std::fs::File| {
        use std::io::{Read, Seek};
        let mut f = f.try_clone().unwrap();
        f.rewind().unwrap();
        let mut s = String::new();
        f.read_to_string(&mut s).unwrap();
        s
    };
    let out = format!("{}{}", read(&stdout), read(&stderr));
    (libc::WEXITSTATUS(status), out, usage.ru_maxrss, seconds)
}

/// Names directly under `dir`.
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

/// Guards issue 17: an 8 KiB file made with `truncate -s 2G` in the sandbox cost 2.1 GB of
/// galley's memory and 2 GiB of host disk.
#[test]
fn cp_out_of_a_sparse_2_gib_file_costs_little_disk_and_bounded_memory() {
    if !runtime_available() {
        return;
    }
    let p = sandbox("cpsparse");
    plant(&p, "mkdir out && echo head > out/big && truncate -s 2G out/big && echo tail >> out/big && seq 1 2000 > out/small");
    let root = tempfile::tempdir().unwrap();
    let dest = root.path().join("dest");
    let (code, out, rss_kib, seconds) = galley_cp(&p, &[], "agent:out", &dest);
    assert_eq!(code, 0, "{out}");
    let big = std::fs::metadata(dest.join("out/big")).unwrap();
    assert_eq!(big.len(), (2u64 << 30) + 5);
    let disk = big.blocks() * 512;
    eprintln!("sparse 2 GiB: {disk} bytes on disk, peak RSS {rss_kib} KiB, {seconds:.2} s");
    assert!(disk <= 1 << 20, "the hole was written out: {disk} bytes on disk");
    assert!(rss_kib < 96 * 1024, "galley's peak RSS was {rss_kib} KiB");
    let tail = std::fs::read(dest.join("out/big")).unwrap();
    assert!(tail.starts_with(b"head\n\0") && tail.ends_with(b"\0tail\n"));
    assert_eq!(std::fs::read_to_string(dest.join("out/small")).unwrap().lines().count(), 2000);
    p.galley_code(&["destroy", "--auto-approve", "--volumes"], 0);
}

/// Guards a tar bomb: more entries or bytes than the caps are refused as the copy walks, and
/// neither the destination nor a staging directory is left behind.
#[test]
fn cp_out_of_a_tar_bomb_over_the_entry_or_byte_cap_is_refused_and_leaves_nothing() {
    if !runtime_available() {
        return;
    }
    let p = sandbox("cpbomb");
    plant(&p, "mkdir many && for i in $(seq 1 300); do : > many/f$i; done && mkdir fat && head -c 3145728 /dev/urandom > fat/blob");
    let root = tempfile::tempdir().unwrap();
    let dest = root.path().join("dest");
    let (code, out, _, _) = galley_cp(&p, &[("GALLEY_CP_MAX_ENTRIES", "100")], "agent:many", &dest);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("more than 100 entries (the cap GALLEY_CP_MAX_ENTRIES)"), "{out}");
    assert!(out.contains("help: "), "{out}");
    assert!(names(root.path()).is_empty(), "left behind: {:?}", names(root.path()));
    std::fs::create_dir(&dest).unwrap();
    let (code, out, _, _) = galley_cp(&p, &[("GALLEY_CP_MAX_BYTES", "1048576")], "agent:fat", &dest);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("more than 1048576 bytes of file data (the cap GALLEY_CP_MAX_BYTES)"), "{out}");
    assert!(names(&dest).is_empty(), "left behind: {:?}", names(&dest));
    let (code, out, _, _) = galley_cp(&p, &[("GALLEY_CP_MAX_BYTES", "lots")], "agent:fat", &dest);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("GALLEY_CP_MAX_BYTES is \"lots\", not a positive whole number"), "{out}");
    p.galley_code(&["destroy", "--auto-approve", "--volumes"], 0);
}

/// Guards issue 17: the sandbox replaced the requested path (or a directory on the way to it)
/// with a symlink to a root-only file or directory of the image, and podman, resolving as root,
/// copied what the sandbox user itself cannot read.
#[test]
fn cp_out_refuses_a_symlink_swapped_in_for_the_requested_path_to_a_root_only_file() {
    if !runtime_available() {
        return;
    }
    let p = sandbox("cplink");
    let (ok, out) = p.exec("default", "agent", "cat /root-key /private/key");
    assert!(!ok && !out.contains("root-only-key"), "the sandbox user can read the key: {out}");
    plant(&p, "ln -s /root-key key && ln -s /private out && mkdir -p a && ln -s /private a/b && ln -s / top");
    let root = tempfile::tempdir().unwrap();
    for (from, link) in [("agent:key", "key"), ("agent:out", "out"), ("agent:/workspace/a/b/key", "a/b"), ("agent:top/private", "top")] {
        let dest = root.path().join("dest");
        let (code, out, _, _) = galley_cp(&p, &[], from, &dest);
        assert_eq!(code, 2, "{from}: {out}");
        assert!(out.contains(&format!("`{link}` is a symbolic link, and galley cp follows no link")), "{from}: {out}");
        assert!(names(root.path()).is_empty(), "{from} left {:?}", names(root.path()));
    }
    p.galley_code(&["destroy", "--auto-approve", "--volumes"], 0);
}

/// Guards issue 17: copy time grew much faster than depth (1,200 levels: 20 s against 0.5 s for
/// `podman cp` alone). The deep tree copies whole, in time close to `podman cp`'s.
#[test]
fn cp_out_of_a_1200_level_deep_tree_is_linear_in_depth() {
    if !runtime_available() {
        return;
    }
    let p = sandbox("cpdeep");
    plant(&p, "mkdir deep && cd deep && i=0; while [ $i -lt 1200 ]; do mkdir d && cd d && echo $i > f; i=$((i+1)); done");
    let root = tempfile::tempdir().unwrap();
    let start = Instant::now();
    let tar = podman_ok(&["cp", &format!("{}:/workspace/deep", p.container("default", "agent")), "-"]);
    assert!(tar.contains("1199"), "podman cp sent no tree");
    let podman_seconds = start.elapsed().as_secs_f64();
    let dest = root.path().join("dest");
    let (code, out, rss_kib, seconds) = galley_cp(&p, &[], "agent:deep", &dest);
    assert_eq!(code, 0, "{out}");
    eprintln!("1,200 levels: galley cp {seconds:.2} s, podman cp {podman_seconds:.2} s, peak RSS {rss_kib} KiB");
    let mut at = dest.join("deep");
    for i in 0..1200 {
        at.push("d");
        if i == 1199 {
            assert_eq!(std::fs::read_to_string(at.join("f")).unwrap(), "1199\n");
        }
    }
    assert!(out.contains("copied 1200 files"), "{out}");
    assert!(seconds <= podman_seconds * 2.0 + 1.0, "galley cp took {seconds:.2} s, podman cp {podman_seconds:.2} s");
    p.galley_code(&["destroy", "--auto-approve", "--volumes"], 0);
}
