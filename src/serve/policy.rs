//! The operator's policy over a pull request's project, after bounded evaluation: every sandbox
//! within the allowed capabilities, networks, seccomp profiles, user and resource ceilings,
//! volumes only when allowed, secrets only by names the operator grants (with the operator's
//! source, never the one the pull request wrote), a Containerfile's build secrets likewise, no
//! registry reaching private addresses, no build step (a run step or a Containerfile build) with
//! network unless egress is allowed. A fork gets no secrets and no network.

use crate::diagnostic::{Code, Diagnostic};
use crate::model::{Network, Project};

use super::config::Policy;

/// What the policy did to a project it let through, shown in the plan (a fork's lost secrets
/// and network).
pub type Notes = Vec<String>;

fn cap_name(c: &str) -> String {
    c.trim_start_matches("CAP_").to_ascii_uppercase()
}

/// Check `project` against `policy` and rewrite it for the preview: secret sources replaced by
/// the operator's, and for a fork no secrets and `network = 'none`. `Err` holds every finding.
pub fn apply(project: &mut Project, policy: &Policy, fork: bool) -> Result<Notes, Vec<Diagnostic>> {
    let mut findings = Vec::new();
    let mut notes = Vec::new();
    let allowed_caps: Vec<String> = policy.capabilities.iter().map(|c| cap_name(c)).collect();
    for (name, registry) in &project.registries {
        if registry.allow_private {
            findings.push(
                Diagnostic::new(Code::PolicyRegistry, format!("registry \"{name}\" sets allow_private, which would let the server connect to private addresses"))
                    .help("previews pull only from public registries; remove allow_private from the pull request's galley.ncl"),
            );
        }
    }
    for (name, image) in project.images.iter_mut() {
        let networked = image.run.iter().any(|r| r.network) || image.containerfile.as_ref().is_some_and(|cf| cf.network);
        if networked && !policy.networks.contains("egress") {
            findings.push(
                Diagnostic::new(Code::PolicyNetwork, format!("image `{name}` runs a build step with network, and the serve policy does not allow 'egress"))
                    .help("build without network (run steps and `containerfile.network` default to none), or ask the operator to allow 'egress"),
            );
        }
        // A Containerfile's build secrets, like a sandbox's: the operator's sources, none for a fork.
        if let Some(cf) = image.containerfile.as_mut() {
            let owner = Owner { what: format!("image `{name}`"), secrets: "build secrets", given: "given" };
            operator_sources(&owner, &mut cf.secrets, policy, fork, &mut notes, &mut findings);
        }
    }
    for (name, s) in project.sandboxes.iter_mut() {
        for cap in &s.capabilities {
            if !allowed_caps.contains(&cap_name(cap)) {
                findings.push(
                    Diagnostic::new(Code::PolicyCapability, format!("sandbox `{name}` adds capability {cap}, which the serve policy does not allow"))
                        .help(format!("allowed: {}", list(&allowed_caps))),
                );
            }
        }
        if fork && s.network != Network::None {
            notes.push(format!(
                "sandbox `{name}`: network '{} -> 'none (a fork's preview has no network)",
                s.network.as_str()
            ));
            s.network = Network::None;
            if !s.ports.is_empty() {
                notes.push(format!(
                    "sandbox `{name}`: {} published port(s) dropped (no network)",
                    s.ports.len()
                ));
                s.ports.clear();
            }
        }
        if !policy.networks.contains(s.network.as_str()) {
            findings.push(
                Diagnostic::new(Code::PolicyNetwork, format!("sandbox `{name}` asks for network '{}, which the serve policy does not allow", s.network.as_str()))
                    .help(format!("allowed: {}", list(policy.networks.iter().map(|n| format!("'{n}"))))),
            );
        }
        let profile = s.seccomp.name();
        if !policy.seccomp.contains(profile) {
            findings.push(
                Diagnostic::new(Code::PolicySeccomp, format!("sandbox `{name}` asks for seccomp profile '{profile}, which the serve policy does not allow"))
                    .help(format!("allowed: {}", list(policy.seccomp.iter().map(|n| format!("'{n}"))))),
            );
        }
        if s.user.is_root() && !policy.allow_root {
            findings.push(
                Diagnostic::new(
                    Code::PolicyRoot,
                    format!(
                        "sandbox `{name}` runs as root ({}), which the serve policy does not allow",
                        s.user
                    ),
                )
                .help("run as an unprivileged user, for example user = \"1000:1000\""),
            );
        }
        let r = &s.resources;
        let ceiling = policy.memory.bytes();
        if let Some(max) = ceiling
            && r.memory.bytes().is_none_or(|b| b > max)
        {
            findings.push(resources(
                name,
                format!("memory {}", r.memory),
                format!("{}", policy.memory),
            ));
        }
        if r.cpus.quota().is_none_or(|c| c > policy.cpus) {
            findings.push(resources(
                name,
                format!("cpus {}", r.cpus),
                format!("{}", policy.cpus),
            ));
        }
        if r.pids == 0 || r.pids > policy.pids {
            findings.push(resources(
                name,
                format!(
                    "pids {}",
                    if r.pids == 0 {
                        "unlimited".to_owned()
                    } else {
                        r.pids.to_string()
                    }
                ),
                policy.pids.to_string(),
            ));
        }
        if !s.volumes.is_empty() && !policy.volumes {
            findings.push(
                Diagnostic::new(
                    Code::PolicyVolume,
                    format!(
                        "sandbox `{name}` declares volumes, which the serve policy does not allow"
                    ),
                )
                .help("use a tmpfs for scratch space"),
            );
        }
        let owner = Owner { what: format!("sandbox `{name}`"), secrets: "secrets", given: "delivered" };
        operator_sources(&owner, &mut s.secrets, policy, fork, &mut notes, &mut findings);
    }
    if findings.is_empty() {
        Ok(notes)
    } else {
        Err(findings)
    }
}

/// Whose secrets [`operator_sources`] rewrites, as its notes and findings name them.
struct Owner {
    what: String,
    secrets: &'static str,
    given: &'static str,
}

/// Give each of `secrets` the operator's source, a finding for a name the policy does not
/// grant; a fork's are dropped, with a note.
fn operator_sources(
    owner: &Owner,
    secrets: &mut std::collections::BTreeMap<String, crate::model::Secret>,
    policy: &Policy,
    fork: bool,
    notes: &mut Notes,
    findings: &mut Vec<Diagnostic>,
) {
    if fork {
        if !secrets.is_empty() {
            notes.push(format!("{}: {} {} not {} (a fork gets no secrets)", owner.what, owner.secrets, list(secrets.keys()), owner.given));
            secrets.clear();
        }
        return;
    }
    for (secret, source) in secrets.iter_mut() {
        match policy.secrets.get(secret) {
            Some(operator) => *source = operator.clone(),
            None => findings.push(
                Diagnostic::new(
                    Code::PolicySecret,
                    format!("{} asks for {} `{secret}`, which the serve policy does not grant", owner.what, owner.secrets.trim_end_matches('s')),
                )
                .help(format!("granted: {}", list(policy.secrets.keys()))),
            ),
        }
    }
}

fn resources(sandbox: &str, asked: String, ceiling: String) -> Diagnostic {
    Diagnostic::new(
        Code::PolicyResources,
        format!(
            "sandbox `{sandbox}` asks for {asked}, above the serve policy's ceiling of {ceiling}"
        ),
    )
    .help("lower the limit in the pull request's galley.ncl")
}

fn list<T: std::fmt::Display>(items: impl IntoIterator<Item = T>) -> String {
    let v: Vec<String> = items.into_iter().map(|i| i.to_string()).collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Memory;
    use crate::model::Secret;
    use crate::settings::Env;

    fn project(sandbox: &str) -> Project {
        let dir = tempfile::tempdir().unwrap();
        let home = tempfile::tempdir().unwrap();
        let text = format!(
            "{{ name = \"p\", registries.\"10.0.0.1:5000\" = {{ allow_private = true }}, images.i = {{}}, sandboxes.s = {{ image = \"i\", user = \"1000:1000\", resources = {{ memory = \"64m\", cpus = 0.5, pids = 32 }}, {sandbox} }} }}"
        );
        std::fs::write(dir.path().join("galley.ncl"), &text).unwrap();
        let env = Env::new(dir.path().to_path_buf(), home.path().to_path_buf());
        crate::project::load_unbounded(&env, None).unwrap_or_else(|d| panic!("{d:?}")).project
    }

    fn policy() -> Policy {
        Policy {
            capabilities: ["NET_BIND_SERVICE".to_owned()].into(),
            networks: ["none", "isolated"].into(),
            seccomp: ["default".to_owned()].into(),
            allow_root: false,
            memory: Memory::parse("128m").unwrap(),
            cpus: 1.0,
            pids: 64,
            volumes: false,
            secrets: [("TOKEN".to_owned(), Secret::Env("OPERATOR_TOKEN".into()))].into(),
        }
    }

    fn codes(sandbox: &str) -> Vec<&'static str> {
        let mut p = project(sandbox);
        let mut c: Vec<&str> = apply(&mut p, &policy(), false).unwrap_err().iter().map(|d| d.code.as_str()).collect();
        c.retain(|c| *c != "G187");
        c
    }

    #[test]
    fn each_widening_of_the_policy_is_its_own_finding() {
        assert_eq!(codes("network = 'isolated, capabilities = [\"SYS_ADMIN\"]"), vec!["G180"]);
        assert_eq!(codes("network = 'egress"), vec!["G181"]);
        assert_eq!(codes("network = 'isolated, seccomp = 'unconfined"), vec!["G182"]);
        assert_eq!(codes("network = 'isolated, user | force = \"0:0\""), vec!["G183"]);
        assert_eq!(codes("network = 'isolated, resources.memory | force = \"1g\""), vec!["G184"]);
        assert_eq!(codes("network = 'isolated, resources.pids | force = 0"), vec!["G184"]);
        assert_eq!(codes("network = 'isolated, volumes = [{ name = \"v\", path = \"/v\" }]"), vec!["G185"]);
        assert_eq!(codes("network = 'isolated, secrets.OTHER = { env = \"HOME\" }"), vec!["G186"]);
        let mut p = project("network = 'isolated");
        let all: Vec<_> = apply(&mut p, &policy(), false).unwrap_err().iter().map(|d| d.code.as_str()).collect();
        assert_eq!(all, vec!["G187"], "a registry reaching private addresses");
    }

    /// The attack: a pull request's Containerfile image whose build secret reads a host file
    /// (`file = "/etc/shadow"`, which a `RUN --mount=type=secret` step copies into the image the
    /// preview runs), or whose build reaches the network where the policy allows no egress.
    #[test]
    fn a_containerfile_builds_secrets_and_network_are_under_the_policy() {
        let with_image = |image: &str| {
            let dir = tempfile::tempdir().unwrap();
            let home = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join("Containerfile"), "FROM scratch\nUSER 1000:1000\n").unwrap();
            let text = format!("{{ name = \"p\", images.i = {{ {image} }}, sandboxes.s = {{ image = \"i\", user = \"1000:1000\", resources = {{ memory = \"64m\", cpus = 0.5, pids = 32 }} }} }}");
            std::fs::write(dir.path().join("galley.ncl"), &text).unwrap();
            let env = Env::new(dir.path().to_path_buf(), home.path().to_path_buf());
            crate::project::load_unbounded(&env, None).unwrap_or_else(|d| panic!("{d:?}")).project
        };
        let granted = "containerfile = { path = \"Containerfile\", secrets.TOKEN = { file = \"/etc/shadow\" } }";
        let mut p = with_image(granted);
        apply(&mut p, &policy(), false).unwrap();
        let cf = p.images["i"].containerfile.as_ref().unwrap();
        assert_eq!(cf.secrets["TOKEN"], Secret::Env("OPERATOR_TOKEN".into()), "never the pull request's source");
        let mut p = with_image(granted);
        let notes = apply(&mut p, &policy(), true).unwrap();
        assert!(p.images["i"].containerfile.as_ref().unwrap().secrets.is_empty(), "a fork's build gets no secret");
        assert!(notes.iter().any(|n| n.contains("image `i`: build secrets TOKEN not given")), "{notes:?}");

        let mut p = with_image("containerfile = { path = \"Containerfile\", secrets.OTHER = { file = \"/etc/shadow\" } }");
        let found: Vec<_> = apply(&mut p, &policy(), false).unwrap_err().iter().map(|d| (d.code.as_str(), d.message.clone())).collect();
        assert_eq!(found, [("G186", "image `i` asks for build secret `OTHER`, which the serve policy does not grant".to_owned())]);
        let mut p = with_image("containerfile = { path = \"Containerfile\", network = true }");
        let found: Vec<_> = apply(&mut p, &policy(), false).unwrap_err().iter().map(|d| d.code.as_str()).collect();
        assert_eq!(found, ["G181"], "a networked build without 'egress");
    }

    #[test]
    fn a_granted_secret_gets_the_operators_source_and_a_fork_gets_no_secret_nor_network() {
        let mut policy = policy();
        policy.networks.insert("egress");
        let text = "network = 'egress, ports = [{ container = 80, host = 8080 }], secrets.TOKEN = { file = \"/etc/shadow\" }";
        let mut p = project(text);
        p.registries.clear();
        apply(&mut p, &policy, false).unwrap();
        assert_eq!(p.sandboxes["s"].secrets["TOKEN"], Secret::Env("OPERATOR_TOKEN".into()), "never the pull request's source");
        let mut p = project(text);
        p.registries.clear();
        let notes = apply(&mut p, &policy, true).unwrap();
        let s = &p.sandboxes["s"];
        assert!(s.secrets.is_empty() && s.network == Network::None && s.ports.is_empty(), "{s:?}");
        assert!(notes.iter().any(|n| n.contains("a fork gets no secrets")) && notes.iter().any(|n| n.contains("-> 'none")), "{notes:?}");
    }
}
