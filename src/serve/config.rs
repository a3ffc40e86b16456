//! The operator's config of `galley serve` (`lang/serve.ncl`'s `Serve` contract), evaluated in a
//! bounded child (`galley __serve-config`, the evaluator's time, memory and stack limits), then
//! parsed once into typed values: a socket address, `owner/name` repositories, the policy's
//! domain types. Secret fields are sources; their values are resolved by the server at start.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::ServeError;
use crate::domain::Memory;
use crate::exec::{Cmd, Runner};
use crate::model::{Network, Secret};
use crate::settings::Env;

/// The hidden subcommand that evaluates the operator config.
pub const SUBCOMMAND: &str = "__serve-config";

/// A GitHub repository, `owner/name`, as GitHub spells both (letters, digits, `-`, `_`, `.`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RepoName {
    pub owner: String,
    pub name: String,
}

impl RepoName {
    pub fn parse(s: &str) -> Option<RepoName> {
        let (owner, name) = s.split_once('/')?;
        let ok = |p: &str| {
            !p.is_empty()
                && p.len() <= 100
                && p != "."
                && p != ".."
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        };
        (ok(owner) && ok(name)).then(|| RepoName {
            owner: owner.to_owned(),
            name: name.to_owned(),
        })
    }

    /// One path component naming the repository (`owner+name`) for directories under serve/.
    pub fn dir_name(&self) -> String {
        format!("{}+{}", self.owner, self.name)
    }
}

impl fmt::Display for RepoName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.owner, self.name)
    }
}

#[derive(Debug, Clone)]
pub struct Repository {
    pub clone_url: String,
    pub webhook_secret: Secret,
    pub api_token: Option<Secret>,
}

/// What a preview may ask for.
#[derive(Debug, Clone)]
pub struct Policy {
    pub capabilities: BTreeSet<String>,
    pub networks: BTreeSet<&'static str>,
    pub seccomp: BTreeSet<String>,
    pub allow_root: bool,
    pub memory: Memory,
    pub cpus: f64,
    pub pids: u32,
    pub volumes: bool,
    /// Secrets a same-repository pull request may receive, with the operator's sources.
    pub secrets: BTreeMap<String, Secret>,
}

/// The GitHub API base, parsed: scheme, host, port and path prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiBase {
    pub https: bool,
    pub host: String,
    pub port: u16,
    pub prefix: String,
}

impl ApiBase {
    pub fn parse(s: &str) -> Option<ApiBase> {
        let (https, rest) = match s.split_once("://")? {
            ("https", rest) => (true, rest),
            ("http", rest) => (false, rest),
            _ => return None,
        };
        let (authority, prefix) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].trim_end_matches('/').to_owned()),
            None => (rest, String::new()),
        };
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => {
                (h.to_owned(), p.parse().ok()?)
            }
            _ => (authority.to_owned(), if https { 443 } else { 80 }),
        };
        (!host.is_empty() && !authority.contains('@')).then_some(ApiBase {
            https,
            host,
            port,
            prefix,
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!(
            "{}://{}:{}{}{path}",
            if self.https { "https" } else { "http" },
            self.host,
            self.port,
            self.prefix
        )
    }
}

#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// The config file, for messages, and its directory, which file sources are relative to.
    pub file: PathBuf,
    pub dir: PathBuf,
    pub listen: SocketAddr,
    pub repositories: BTreeMap<RepoName, Repository>,
    pub policy: Policy,
    pub max_previews: usize,
    pub ttl: Duration,
    pub build_concurrency: usize,
    pub max_body_bytes: usize,
    pub host_ports: (u16, u16),
    pub public_host: String,
    pub api_base: ApiBase,
    pub api_allow_private: bool,
    pub reconcile: Duration,
    /// Peers whose `X-Forwarded-For` names the admin API's client (reverse proxies).
    pub trusted_proxies: Vec<std::net::IpAddr>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    listen: String,
    repositories: BTreeMap<String, RawRepo>,
    policy: RawPolicy,
    max_previews: f64,
    ttl_hours: f64,
    build_concurrency: f64,
    max_body_bytes: f64,
    host_ports: Vec<u16>,
    public_host: String,
    api_base: String,
    api_allow_private: bool,
    reconcile_seconds: f64,
    #[serde(default)]
    trusted_proxies: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRepo {
    clone_url: String,
    webhook_secret: Secret,
    api_token: Option<Secret>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    capabilities: Vec<String>,
    networks: Vec<Network>,
    seccomp: Vec<String>,
    allow_root: bool,
    resources: RawResources,
    volumes: bool,
    secrets: BTreeMap<String, Secret>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawResources {
    memory: String,
    cpus: f64,
    pids: f64,
}

/// A whole number a field holds, or the error naming it.
fn count(file: &Path, field: &str, v: f64, min: f64, max: f64) -> Result<u64, ServeError> {
    if v.fract() != 0.0 || v < min || v > max {
        return Err(invalid(
            file,
            field,
            format!("{v} is not a whole number from {min} to {max}"),
            "write a whole number in that range",
        ));
    }
    Ok(v as u64)
}

fn invalid(file: &Path, field: &str, message: String, help: &str) -> ServeError {
    ServeError::Config {
        file: file.to_path_buf(),
        message: format!("`{field}`: {message}"),
        help: help.to_owned(),
    }
}

impl ServeConfig {
    /// Parse the evaluated JSON of `file`.
    pub fn from_json(file: &Path, json: serde_json::Value) -> Result<ServeConfig, ServeError> {
        let raw: Raw = serde_path_to_error::deserialize(json).map_err(|e| {
            invalid(
                file,
                &e.path().to_string(),
                e.inner().to_string(),
                "see lang/serve.ncl for every field and its documentation",
            )
        })?;
        let listen: SocketAddr = raw.listen.parse().map_err(|_| {
            invalid(
                file,
                "listen",
                format!("\"{}\" is not an address and port", raw.listen),
                "write an address and port, for example \"127.0.0.1:8470\"",
            )
        })?;
        let mut repositories = BTreeMap::new();
        for (key, repo) in raw.repositories {
            let name = RepoName::parse(&key).ok_or_else(|| {
                invalid(
                    file,
                    &format!("repositories.\"{key}\""),
                    "not a GitHub repository name".into(),
                    "write the repository as owner/name, for example \"octo-org/site\"",
                )
            })?;
            if repo.clone_url.trim().is_empty() || repo.clone_url.starts_with('-') {
                return Err(invalid(
                    file,
                    &format!("repositories.\"{key}\".clone_url"),
                    "not a clone URL".into(),
                    "write the URL galley fetches from, for example \"https://github.com/octo-org/site.git\"",
                ));
            }
            repositories.insert(
                name,
                Repository {
                    clone_url: repo.clone_url,
                    webhook_secret: repo.webhook_secret,
                    api_token: repo.api_token,
                },
            );
        }
        let p = raw.policy;
        let memory = Memory::parse(&p.resources.memory).map_err(|e| {
            invalid(
                file,
                "policy.resources.memory",
                e.message,
                "write a size such as \"512m\"",
            )
        })?;
        if p.resources.cpus.is_nan() || p.resources.cpus <= 0.0 {
            return Err(invalid(
                file,
                "policy.resources.cpus",
                "must be more than 0".into(),
                "write the ceiling in cores, for example 1",
            ));
        }
        let mut seccomp = BTreeSet::new();
        for s in p.seccomp {
            seccomp.insert(s);
        }
        let policy = Policy {
            capabilities: p.capabilities.into_iter().collect(),
            networks: p.networks.into_iter().map(Network::as_str).collect(),
            seccomp,
            allow_root: p.allow_root,
            memory,
            cpus: p.resources.cpus,
            pids: count(file, "policy.resources.pids", p.resources.pids, 1.0, 1e9)? as u32,
            volumes: p.volumes,
            secrets: p.secrets,
        };
        let [first, last] = raw.host_ports[..] else {
            return Err(invalid(
                file,
                "host_ports",
                "needs exactly two ports".into(),
                "write [first, last], for example [20000, 20999]",
            ));
        };
        if first == 0 || first > last {
            return Err(invalid(
                file,
                "host_ports",
                format!("[{first}, {last}] is not a range"),
                "write [first, last] with 1 <= first <= last",
            ));
        }
        let api_base = ApiBase::parse(&raw.api_base).ok_or_else(|| {
            invalid(
                file,
                "api_base",
                format!("\"{}\" is not an http(s) URL", raw.api_base),
                "write the API base, for example \"https://api.github.com\"",
            )
        })?;
        let trusted_proxies = raw
            .trusted_proxies
            .iter()
            .map(|p| {
                p.parse::<std::net::IpAddr>().map_err(|_| {
                    invalid(
                        file,
                        "trusted_proxies",
                        format!("\"{p}\" is not an IP address"),
                        "list the proxies' addresses, for example [\"127.0.0.1\"]",
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ServeConfig {
            trusted_proxies,
            file: file.to_path_buf(),
            dir: file.parent().map(Path::to_path_buf).unwrap_or_default(),
            listen,
            repositories,
            policy,
            max_previews: count(file, "max_previews", raw.max_previews, 1.0, 10_000.0)? as usize,
            ttl: Duration::from_secs_f64(raw.ttl_hours.max(0.0) * 3600.0),
            build_concurrency: count(file, "build_concurrency", raw.build_concurrency, 1.0, 64.0)?
                as usize,
            max_body_bytes: count(
                file,
                "max_body_bytes",
                raw.max_body_bytes,
                1.0,
                (25 << 20) as f64,
            )? as usize,
            host_ports: (first, last),
            public_host: raw.public_host,
            api_base,
            api_allow_private: raw.api_allow_private,
            reconcile: Duration::from_secs_f64(raw.reconcile_seconds.max(0.05)),
        })
    }
}

/// Evaluate `file` in a bounded child (the evaluator's limits of `env`) and parse it.
pub fn load(env: &Env, runner: &dyn Runner, file: &Path) -> Result<ServeConfig, ServeError> {
    let file = std::path::absolute(file).unwrap_or_else(|_| file.to_path_buf());
    let limits = &env.eval;
    let cmd = Cmd::new(&limits.exe)
        .arg(SUBCOMMAND)
        .arg("--memory-bytes")
        .arg(limits.memory_bytes.to_string())
        .arg("--stack-bytes")
        .arg(limits.stack_bytes.to_string())
        .arg(&file)
        .env(crate::env_vars::GALLEY_HOME, &env.home)
        .timeout(limits.timeout)
        .stdout_limit(16 << 20);
    let out = runner
        .run(&cmd)
        .map_err(|e| ServeError::Other(format!("cannot evaluate {}: {e}", file.display())))?;
    let help = "fix the operator config; `galley serve --check` evaluates it without starting";
    if out.timed_out {
        return Err(ServeError::Config {
            file: file.clone(),
            message: format!(
                "evaluating it exceeded its time limit of {}",
                crate::exec::seconds(limits.timeout)
            ),
            help: help.into(),
        });
    }
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).map_err(|_| ServeError::Config {
            file: file.clone(),
            message: format!(
                "the evaluator stopped without a result: {}",
                crate::exec::tail(&out.stderr_str(), 5)
            ),
            help: help.into(),
        })?;
    match report {
        serde_json::Value::Object(mut o) if o.contains_key("config") => {
            ServeConfig::from_json(&file, o.remove("config").unwrap_or_default())
        }
        other => {
            let errors: Vec<String> = other
                .get("errors")
                .and_then(|e| e.as_array())
                .into_iter()
                .flatten()
                .filter_map(|e| e.as_str().map(str::to_owned))
                .collect();
            Err(ServeError::Config {
                file,
                message: errors.join("; "),
                help: help.into(),
            })
        }
    }
}

/// Child side: evaluate `file` and return the report the parent reads.
pub fn child_report(env: &Env, file: &Path) -> serde_json::Value {
    match crate::lang::evaluate_serve_config(file, &env.lib_root()) {
        Ok(config) => serde_json::json!({ "config": config }),
        Err(diagnostics) => serde_json::json!({ "errors": diagnostics.iter().map(|d| {
            let at = d.location.as_ref().map(|l| format!("{}:{}:{}: ", l.file.display(), l.start_line, l.start_col)).unwrap_or_default();
            let help = d.help.as_ref().map(|h| format!(" (help: {h})")).unwrap_or_default();
            format!("{at}[{}] {}{help}", d.code.as_str(), d.message)
        }).collect::<Vec<_>>() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_names_are_owner_slash_name_and_nothing_that_leaves_a_directory() {
        assert_eq!(
            RepoName::parse("octo-org/site.io").unwrap().dir_name(),
            "octo-org+site.io"
        );
        for bad in ["octo", "a/b/c", "../x", "a/..", "a b/c", "/x", "x/"] {
            assert!(RepoName::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn api_base_parses_scheme_host_port_and_prefix() {
        let b = ApiBase::parse("https://ghe.example/api/v3/").unwrap();
        assert_eq!(
            (b.https, b.host.as_str(), b.port, b.prefix.as_str()),
            (true, "ghe.example", 443, "/api/v3")
        );
        assert_eq!(
            ApiBase::parse("http://127.0.0.1:9000")
                .unwrap()
                .url("/repos"),
            "http://127.0.0.1:9000/repos"
        );
        assert!(ApiBase::parse("ftp://x").is_none());
        assert!(ApiBase::parse("https://user@x").is_none());
    }
}
