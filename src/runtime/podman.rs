//! podman argv builders and output parsing. Everything here is a pure function of its inputs or
//! one batched podman call through [`Runner`], so the exact argv is unit-tested.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::Value;

use super::naming::{self, Instance};
use super::{Result, RuntimeError};
use crate::exec::{Cmd, Runner};
use crate::domain::{IdMap, Memory};
use crate::manifest::SandboxManifest;
use crate::model::Network;

/// How long `podman rm` waits for a sandbox to stop before killing it.
const STOP_SECONDS: &str = "2";

/// How many times `podman rm` is tried again while it finds a mount busy.
const RM_BUSY_RETRIES: usize = 3;

/// A podman client: the process runner and the OCI runtime to ask for.
pub struct Podman<'a> {
    pub runner: &'a dyn Runner,
    pub runtime: Option<String>,
}

/// Everything `podman run` needs for one sandbox.
#[derive(Debug, Clone)]
pub struct RunSpec<'a> {
    pub manifest: &'a SandboxManifest,
    pub instance: &'a Instance,
    pub image: String,
    /// Seccomp profile file; `None` when unconfined.
    pub seccomp: Option<PathBuf>,
    /// (host file, secret name): bind-mounted read-only at `/run/secrets/NAME`.
    pub secrets: Vec<(PathBuf, String)>,
    pub nofile: u64,
    pub nproc: u64,
}

/// A container of the instance as `podman ps` reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveContainer {
    pub id: String,
    pub name: String,
    pub state: String,
    pub exit_code: i64,
    pub labels: BTreeMap<String, String>,
    /// `address:host->container/protocol`
    pub ports: Vec<String>,
}

impl LiveContainer {
    pub fn sandbox(&self) -> &str {
        self.labels.get(naming::LABEL_SANDBOX).map_or("", String::as_str)
    }

    pub fn manifest_digest(&self) -> &str {
        self.labels.get(naming::LABEL_MANIFEST).map_or("", String::as_str)
    }

    pub fn running(&self) -> bool {
        self.state == "running"
    }
}

/// The `podman run` arguments of a sandbox. Secret values never appear here.
pub fn run_args(s: &RunSpec<'_>) -> Vec<String> {
    let mut a: Vec<String> = vec!["run".into(), "--detach".into()];
    a.extend(create_options(s));
    a
}

/// The options of `podman run` and `podman create`, then the image and its command.
fn create_options(s: &RunSpec<'_>) -> Vec<String> {
    let m = s.manifest;
    let mut a: Vec<String> = vec!["--pull".into(), "never".into()];
    a.extend(["--name".into(), s.instance.container(&m.sandbox), "--hostname".into(), m.sandbox.clone()]);
    a.extend(s.instance.labels());
    a.extend(["--label".into(), format!("{}={}", naming::LABEL_SANDBOX, m.sandbox)]);
    a.extend(["--label".into(), format!("{}={}", naming::LABEL_MANIFEST, m.digest())]);
    a.extend(["--cap-drop".into(), "ALL".into()]);
    for cap in &m.capabilities {
        a.extend(["--cap-add".into(), format!("CAP_{}", cap.trim_start_matches("CAP_"))]);
    }
    if m.no_new_privileges {
        a.extend(["--security-opt".into(), "no-new-privileges".into()]);
    }
    let seccomp = match &s.seccomp {
        Some(path) => format!("seccomp={}", path.display()),
        None => "seccomp=unconfined".into(),
    };
    a.extend(["--security-opt".into(), seccomp]);
    if m.read_only {
        a.extend(["--read-only".into(), "--read-only-tmpfs=false".into()]);
    }
    for t in &m.tmpfs {
        a.extend(["--tmpfs".into(), format!("{}:rw,nosuid,nodev,size={},mode={}", t.path, t.size, t.mode)]);
    }
    a.extend(["--user".into(), m.user.podman_arg()]);
    a.push(super::userns::podman_arg());
    let networks = s.instance.networks_for(m.network);
    if networks.is_empty() {
        a.extend(["--network".into(), "none".into()]);
    }
    for (name, _) in networks {
        a.extend(["--network".into(), name]);
    }
    if m.network != Network::None {
        a.extend(["--network-alias".into(), m.sandbox.clone()]);
    }
    // A sandbox without egress publishes nothing through podman: galley forwards its ports.
    for p in m.ports.iter().filter(|_| !super::forward::forwarded(m)) {
        a.extend(["--publish".into(), format!("{}:{}/{}", p.host_socket(), p.container, p.protocol.as_str())]);
    }
    let r = &m.resources;
    a.extend(["--pids-limit".into(), if r.pids == 0 { "-1".into() } else { r.pids.to_string() }]);
    if let Memory::Limit(size) = &r.memory {
        a.extend(["--memory".into(), size.to_string()]);
    }
    if let Some(cores) = r.cpus.quota() {
        a.extend(["--cpus".into(), cores.to_string()]);
    }
    a.extend(["--ulimit".into(), format!("nofile={0}:{0}", s.nofile)]);
    a.extend(["--ulimit".into(), format!("nproc={0}:{0}", s.nproc)]);
    for v in &m.volumes {
        let opts = if v.read_only { "ro" } else { "U" };
        a.extend(["--volume".into(), format!("{}:{}:{opts}", s.instance.volume(&v.name), v.path)]);
    }
    if !s.secrets.is_empty() {
        a.extend(["--annotation".into(), format!("{}={}", super::hooks::ANNOTATION, super::hooks::annotation(s.instance, &m.sandbox))]);
    }
    for (host, name) in &s.secrets {
        a.extend(["--mount".into(), format!("type=bind,src={},dst=/run/secrets/{name},ro=true", host.display())]);
    }
    for (k, v) in &m.env {
        a.extend(["--env".into(), format!("{k}={v}")]);
    }
    match m.command.as_deref() {
        Some([first, rest @ ..]) => {
            a.extend(["--entrypoint".into(), serde_json::json!([first]).to_string(), s.image.clone()]);
            a.extend(rest.iter().cloned());
        }
        _ => a.push(s.image.clone()),
    }
    a
}

/// Refuse values podman would split into extra options (`--tmpfs PATH:OPTS`, `--volume
/// NAME:PATH:OPTS`, `--mount k=v,k=v`, `--env K=V`).
pub fn validate(m: &SandboxManifest, secret_dir: &std::path::Path) -> Result<()> {
    let bad = |what: String| RuntimeError::Other(format!("sandbox `{}`: {what} contains `:` or `,`, which podman would misread", m.sandbox));
    let unsafe_text = |s: &str| s.contains(':') || s.contains(',');
    for t in &m.tmpfs {
        if unsafe_text(t.path.as_str()) {
            return Err(bad(format!("tmpfs path {}", t.path)));
        }
    }
    for v in &m.volumes {
        if unsafe_text(v.path.as_str()) || unsafe_text(&v.name) {
            return Err(bad(format!("volume {} at {}", v.name, v.path)));
        }
    }
    if !m.secrets.is_empty() && unsafe_text(&secret_dir.to_string_lossy()) {
        return Err(bad(format!("the secrets directory {}", secret_dir.display())));
    }
    if let Some(k) = m.env.keys().find(|k| k.is_empty() || k.contains('=')) {
        return Err(RuntimeError::Other(format!("sandbox `{}`: invalid environment variable name \"{k}\"", m.sandbox)));
    }
    Ok(())
}

fn bracket(address: &str) -> String {
    if address.contains(':') { format!("[{address}]") } else { address.to_owned() }
}

impl Podman<'_> {
    /// A podman call ([`crate::exec::podman`]) with the OCI runtime chosen.
    pub fn cmd(&self) -> Cmd {
        let mut c = crate::exec::podman();
        if let Some(r) = &self.runtime {
            c = c.args(["--runtime", r.as_str()]);
        }
        c
    }

    /// The network backend podman runs with (`netavark` or `cni`).
    pub fn network_backend(&self) -> Result<String> {
        let out = self.runner.check(&self.cmd().args(["info", "--format", "{{.Host.NetworkBackend}}"]))?;
        Ok(out.stdout_str().trim().to_owned())
    }

    /// The `podman run` invocation of a sandbox: what [`Podman::run`] executes, and what the
    /// verify tests start and mutate.
    pub fn run_cmd(&self, spec: &RunSpec<'_>) -> Cmd {
        self.cmd().args(run_args(spec))
    }

    /// Start a sandbox; returns the container id.
    pub fn run(&self, spec: &RunSpec<'_>) -> Result<String> {
        let out = self.runner.check(&self.run_cmd(spec))?;
        Ok(out.stdout_str().trim().to_owned())
    }

    /// Start a sandbox in one call (`podman run --detach`), or with `start` false only create it
    /// (`podman create`) for [`Podman::start`] to start, with the OCI hooks of `hooks_dir`;
    /// podman writes the pid of its first process to `pidfile` each time it starts it. Returns
    /// the container id, or `None` when podman has no image `spec.image` (nothing was created).
    pub fn launch(&self, spec: &RunSpec<'_>, pidfile: &std::path::Path, hooks_dir: Option<&std::path::Path>, start: bool) -> Result<Option<String>> {
        let mut c = self.cmd();
        if let Some(dir) = hooks_dir {
            c = c.arg("--hooks-dir").arg(dir.display().to_string());
        }
        c = if start { c.args(["run", "--detach"]) } else { c.arg("create") };
        let c = c.arg("--pidfile").arg(pidfile.display().to_string()).args(create_options(spec));
        let out = self.runner.run(&c)?;
        if !out.success() && out.stderr_str().contains(&format!("{}: image not known", spec.image)) {
            return Ok(None);
        }
        let out = crate::exec::require_success(&c, out)?;
        Ok(Some(out.stdout_str().trim().to_owned()))
    }

    /// Start a created container; podman reads the OCI hooks of `hooks_dir` as it starts it, and
    /// keeps the poststop ones for whichever podman process cleans up after it.
    pub fn start(&self, name: &str, hooks_dir: Option<&std::path::Path>) -> Result<()> {
        let mut c = self.cmd();
        if let Some(dir) = hooks_dir {
            c = c.arg("--hooks-dir").arg(dir.display().to_string());
        }
        self.runner.check(&c.args(["start", name]))?;
        Ok(())
    }

    /// The uid and gid mappings podman chose for a created container.
    pub fn id_maps(&self, name: &str) -> Result<(IdMap, IdMap)> {
        let out = self.runner.check(&self.cmd().args(["container", "inspect", "--format", "{{json .HostConfig.IDMappings}}", name]))?;
        let parse_err = |message: String| RuntimeError::Parse { command: "container inspect".into(), message };
        let v: Value = serde_json::from_slice(&out.stdout).map_err(|e| parse_err(e.to_string()))?;
        let map = |key: &str| -> Result<IdMap> {
            let entries: Vec<String> = v.get(key).and_then(Value::as_array).map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect()).unwrap_or_default();
            IdMap::parse_podman(&entries).map_err(|e| parse_err(format!("{key}: {e}")))
        };
        Ok((map("UidMap")?, map("GidMap")?))
    }

    /// Every container of the instance, running or not: one `podman ps` call.
    pub fn containers(&self, instance: &Instance) -> Result<Vec<LiveContainer>> {
        let out = self.runner.check(&self.cmd().args(["ps", "--all", "--format", "json"]).args(instance.filters()))?;
        parse_ps(&out.stdout)
    }

    /// Names of the instance's networks or volumes (`kind` is `network` or `volume`).
    pub fn owned(&self, kind: &str, instance: &Instance) -> Result<Vec<String>> {
        let out = self.runner.check(&self.cmd().args([kind, "ls", "--format", "json"]).args(instance.filters()))?;
        parse_owned(&out.stdout, kind, instance)
    }

    pub fn create_network(&self, instance: &Instance, name: &str, internal: bool) -> Result<()> {
        let mut c = self.cmd().args(["network", "create", "--opt", "isolate=true"]).args(instance.labels());
        c = c.args(["--label", &format!("{}={name}", naming::LABEL_NETWORK)]);
        if internal {
            c = c.arg("--internal");
        }
        self.runner.check(&c.arg(name))?;
        Ok(())
    }

    pub fn create_volume(&self, instance: &Instance, volume: &str) -> Result<()> {
        let c = self.cmd().args(["volume", "create"]).args(instance.labels());
        let c = c.args(["--label".to_owned(), format!("{}={volume}", naming::LABEL_VOLUME), instance.volume(volume)]);
        self.runner.check(&c)?;
        Ok(())
    }

    /// Move the files of volume `old` into volume `new` (owners and modes kept) through a tar in
    /// `scratch`, then remove `old`.
    pub fn move_volume(&self, old: &str, new: &str, scratch: &std::path::Path) -> Result<()> {
        let dir = tempfile::Builder::new().prefix(".volume-move-").tempdir_in(scratch).map_err(RuntimeError::io(scratch))?;
        let tar = dir.path().join("volume.tar").display().to_string();
        self.runner.check(&self.cmd().args(["volume", "export", "--output", &tar, old]).timeout(crate::exec::PODMAN_COPY_TIMEOUT))?;
        self.runner.check(&self.cmd().args(["volume", "import", new, &tar]).timeout(crate::exec::PODMAN_COPY_TIMEOUT))?;
        self.remove("volume", &[old.to_owned()])
    }

    /// Remove containers (stopping them first), networks or volumes, in one call per kind.
    pub fn remove(&self, kind: &str, names: &[String]) -> Result<()> {
        if names.is_empty() {
            return Ok(());
        }
        let c = match kind {
            "container" => self.cmd().args(["rm", "--force", "--time", STOP_SECONDS, "--ignore"]),
            _ => self.cmd().args([kind, "rm", "--force"]),
        };
        let c = c.args(names);
        // podman 4.3 sometimes finds a stopped container's shm mount still busy (its cleanup
        // after a user-namespaced container racing the removal); a moment later it is not.
        for _ in 0..RM_BUSY_RETRIES {
            let out = self.runner.run(&c)?;
            if out.success() {
                return Ok(());
            }
            if !out.stderr_str().contains("device or resource busy") {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(500));
        }
        self.runner.check(&c)?;
        Ok(())
    }

    /// The last lines of a container's log, for error messages.
    pub fn log_tail(&self, name: &str, lines: usize) -> String {
        let c = self.cmd().args(["logs", "--tail", &lines.to_string(), name]);
        match self.runner.run(&c) {
            Ok(out) => format!("{}{}", out.stdout_str(), out.stderr_str()).trim().to_owned(),
            Err(e) => format!("(no log: {e})"),
        }
    }
}

pub fn parse_ps(stdout: &[u8]) -> Result<Vec<LiveContainer>> {
    let parse_err = |message: String| RuntimeError::Parse { command: "ps".into(), message };
    let text = String::from_utf8_lossy(stdout);
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    let items: Vec<Value> = serde_json::from_str(&text).map_err(|e| parse_err(e.to_string()))?;
    let mut out = Vec::new();
    for item in items {
        let s = |k: &str| item.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
        let name = item
            .get("Names")
            .and_then(|n| n.get(0))
            .and_then(Value::as_str)
            .ok_or_else(|| parse_err("a container without a name".into()))?
            .to_owned();
        let labels = item
            .get("Labels")
            .and_then(Value::as_object)
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned())).collect())
            .unwrap_or_default();
        let ports = item
            .get("Ports")
            .and_then(Value::as_array)
            .map(|ps| ps.iter().map(port_text).collect())
            .unwrap_or_default();
        let exit_code = item.get("ExitCode").and_then(Value::as_i64).unwrap_or_default();
        out.push(LiveContainer { id: s("Id"), name, state: s("State"), exit_code, labels, ports });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

fn port_text(p: &Value) -> String {
    let g = |k: &str| p.get(k).map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned)).unwrap_or_default();
    let host_ip = g("host_ip");
    let ip = if host_ip.is_empty() { "0.0.0.0".to_owned() } else { bracket(&host_ip) };
    format!("{ip}:{}->{}/{}", g("host_port"), g("container_port"), g("protocol"))
}

/// Names from `podman network ls` / `podman volume ls` JSON whose labels name this instance.
pub fn parse_owned(stdout: &[u8], kind: &str, instance: &Instance) -> Result<Vec<String>> {
    let text = String::from_utf8_lossy(stdout);
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    let items: Vec<Value> = serde_json::from_str(&text)
        .map_err(|e| RuntimeError::Parse { command: format!("{kind} ls"), message: e.to_string() })?;
    let mut names: Vec<String> = items
        .iter()
        .filter(|item| {
            let labels = item.get("Labels").or_else(|| item.get("labels"));
            let label = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
            label(naming::LABEL_PROJECT) == Some(instance.project.as_str())
                && label(naming::LABEL_INSTANCE) == Some(instance.instance.as_str())
        })
        .filter_map(|item| item.get("Name").or_else(|| item.get("name")).and_then(Value::as_str).map(str::to_owned))
        .collect();
    names.sort();
    Ok(names)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::exec::{Output, Recorder};
    use crate::manifest::{ImageRef, SeccompRef, MANIFEST_VERSION};
    use crate::domain::{Cpus, PortBinding as Port, Protocol, SeccompChoice};
    use crate::model::{Resources, Secret, Tmpfs, Volume};

    pub(crate) fn manifest() -> SandboxManifest {
        SandboxManifest {
            version: MANIFEST_VERSION,
            project: "web".into(),
            sandbox: "api".into(),
            image: ImageRef { name: "app".into(), digest: None },
            command: Some(vec!["/bin/app".into(), "--port".into(), "8080".into()]),
            env: [("MODE".to_owned(), "prod".to_owned())].into(),
            ports: vec![Port { container: 8080, host: 18080, address: "127.0.0.1".parse().unwrap(), protocol: Protocol::Tcp }],
            network: Network::Egress,
            secrets: [("TOKEN".to_owned(), Secret::Env("TOKEN_VAR".into()))].into(),
            seccomp: SeccompRef { profile: "default".into(), digest: Some(crate::domain::Digest::of(b"profile")) },
            capabilities: vec!["NET_BIND_SERVICE".into()],
            user: "1000:1000".parse().unwrap(),
            read_only: true,
            no_new_privileges: true,
            tmpfs: vec![Tmpfs { path: "/tmp".parse().unwrap(), size: "64m".parse().unwrap(), mode: "1777".into() }],
            volumes: vec![Volume { name: "workspace".parse().unwrap(), path: "/workspace".parse().unwrap(), read_only: false }],
            resources: Resources { memory: "128m".parse().unwrap(), cpus: Cpus::Quota(0.5), pids: 64, nofile: Some(1024), nproc: None },
        }
    }

    #[test]
    fn run_argv_enforces_every_field() {
        let m = manifest();
        let instance = Instance::new("web", "pr-1").unwrap();
        let spec = RunSpec {
            manifest: &m,
            instance: &instance,
            image: "localhost/galley/web/app:latest".into(),
            seccomp: Some("/g/seccomp/ab.json".into()),
            secrets: vec![("/g/run/web/pr-1/api/TOKEN".into(), "TOKEN".into())],
            nofile: 1024,
            nproc: 4096,
        };
        let recorder = Recorder::default();
        let podman = Podman { runner: &recorder, runtime: Some("runc".into()) };
        podman.run(&spec).unwrap();
        let expected = [
            "podman --runtime runc run --detach --pull never --name galley_web_pr-1_api --hostname api",
            " --label io.galley.project=web --label io.galley.instance=pr-1 --label io.galley.sandbox=api",
            &format!(" --label io.galley.manifest={}", m.digest()),
            " --cap-drop ALL --cap-add CAP_NET_BIND_SERVICE --security-opt no-new-privileges",
            " --security-opt seccomp=/g/seccomp/ab.json --read-only --read-only-tmpfs=false",
            " --tmpfs /tmp:rw,nosuid,nodev,size=64m,mode=1777 --user 1000:1000 --userns=auto:size=65536",
            " --network galley_web_pr-1 --network galley_web_pr-1_egress --network-alias api",
            " --publish 127.0.0.1:18080:8080/tcp --pids-limit 64 --memory 128m --cpus 0.5",
            " --ulimit nofile=1024:1024 --ulimit nproc=4096:4096 --volume galley_web_pr-1_workspace:/workspace:U",
            " --annotation io.galley.secrets=web/pr-1/api",
            " --mount type=bind,src=/g/run/web/pr-1/api/TOKEN,dst=/run/secrets/TOKEN,ro=true --env MODE=prod",
            " --entrypoint [\"/bin/app\"] localhost/galley/web/app:latest --port 8080",
        ]
        .concat();
        assert_eq!(recorder.commands(), vec![expected]);
    }

    #[test]
    fn launch_runs_in_one_call_and_tells_a_missing_image_from_a_failure() {
        let m = manifest();
        let instance = Instance::new("web", "pr-1").unwrap();
        let spec = RunSpec { manifest: &m, instance: &instance, image: "0123abcd".into(), seccomp: None, secrets: vec![], nofile: 10, nproc: 20 };
        let pid = std::path::Path::new("/g/state/web/pr-1/api.pid");
        let recorder = Recorder::default();
        recorder.answer("podman run", Output { code: Some(0), stdout: b"c0ffee\n".to_vec(), ..Output::default() });
        let podman = Podman { runner: &recorder, runtime: None };
        assert_eq!(podman.launch(&spec, pid, None, true).unwrap().as_deref(), Some("c0ffee"));
        let hooks = std::path::Path::new("/g/hooks");
        podman.launch(&spec, pid, Some(hooks), false).unwrap();
        let calls = recorder.commands();
        assert!(calls[0].starts_with("podman run --detach --pidfile /g/state/web/pr-1/api.pid --pull never --name galley_web_pr-1_api "), "{}", calls[0]);
        assert!(calls[1].starts_with("podman --hooks-dir /g/hooks create --pidfile /g/state/web/pr-1/api.pid --pull never "), "{}", calls[1]);
        let missing = Recorder::default();
        missing.answer("podman run", Output { code: Some(125), stderr: b"Error: 0123abcd: image not known\n".to_vec(), ..Output::default() });
        assert_eq!(Podman { runner: &missing, runtime: None }.launch(&spec, pid, None, true).unwrap(), None);
        let other = Recorder::default();
        other.answer("podman run", Output { code: Some(125), stderr: b"Error: OCI runtime error\n".to_vec(), ..Output::default() });
        let err = Podman { runner: &other, runtime: None }.launch(&spec, pid, None, true).unwrap_err();
        assert!(err.to_string().contains("OCI runtime error"), "{err}");
    }

    #[test]
    fn no_network_unconfined_and_unlimited() {
        let mut m = manifest();
        m.network = Network::None;
        m.ports.clear();
        m.seccomp = SeccompRef { profile: SeccompChoice::UNCONFINED.into(), digest: None };
        m.read_only = false;
        m.command = None;
        m.resources = Resources { memory: Memory::Unlimited, cpus: Cpus::Unlimited, pids: 0, nofile: None, nproc: None };
        let instance = Instance::new("web", "default").unwrap();
        let spec = RunSpec { manifest: &m, instance: &instance, image: "img".into(), seccomp: None, secrets: vec![], nofile: 10, nproc: 20 };
        let args = run_args(&spec).join(" ");
        assert!(args.contains("--network none") && !args.contains("--network-alias"), "{args}");
        assert!(args.contains("seccomp=unconfined") && !args.contains("--read-only"), "{args}");
        assert!(args.contains("--pids-limit -1") && !args.contains("--memory") && !args.contains("--cpus"), "{args}");
        assert!(args.ends_with(" img"), "{args}");
    }

    #[test]
    fn listing_is_one_call_and_parses_ports_and_labels() {
        let recorder = Recorder::default();
        let ps = r#"[{"Id":"abc","Names":["galley-web-default-api"],"State":"exited","ExitCode":3,
            "Labels":{"io.galley.sandbox":"api","io.galley.manifest":"sha256:1"},
            "Ports":[{"host_ip":"127.0.0.1","container_port":8080,"host_port":18080,"range":1,"protocol":"tcp"}]}]"#;
        recorder.answer("podman ps", Output { code: Some(0), stdout: ps.as_bytes().to_vec(), ..Output::default() });
        let podman = Podman { runner: &recorder, runtime: None };
        let instance = Instance::new("web", "default").unwrap();
        let live = podman.containers(&instance).unwrap();
        assert_eq!(
            recorder.commands(),
            vec!["podman ps --all --format json --filter label=io.galley.project=web --filter label=io.galley.instance=default"]
        );
        assert_eq!(live[0].sandbox(), "api");
        assert_eq!(live[0].manifest_digest(), "sha256:1");
        assert_eq!(live[0].ports, vec!["127.0.0.1:18080->8080/tcp"]);
        assert!(!live[0].running());
        podman.remove("container", &["a".into(), "b".into()]).unwrap();
        assert_eq!(recorder.commands()[1], "podman rm --force --time 2 --ignore a b");
    }

    #[test]
    fn volumes_and_networks_are_filtered_by_both_labels() {
        let instance = Instance::new("web", "default").unwrap();
        let json = br#"[{"Name":"galley-web-default-workspace","Labels":{"io.galley.project":"web","io.galley.instance":"default"}},
            {"Name":"galley-web-other-workspace","Labels":{"io.galley.project":"web","io.galley.instance":"other"}}]"#;
        assert_eq!(parse_owned(json, "volume", &instance).unwrap(), vec!["galley-web-default-workspace"]);
    }
}
