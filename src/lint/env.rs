//! Secrets written into an environment galley passes on: a sandbox's `env` (the container's
//! environment) and an image's `env` (baked into the image config, readable by anyone who can pull
//! the image). A variable is reported when its name says it holds a secret or its value has the
//! shape of a well-known credential.

use std::collections::BTreeMap;

use crate::diagnostic::{Code, Diagnostic};
use crate::lang::{SpanIndex, child_path};

/// Report each variable of the `env` record at `at` (`images.web.env`) that holds a secret.
pub fn run(at: &str, env: &BTreeMap<String, String>, where_: Place, spans: &SpanIndex, out: &mut Vec<Diagnostic>) {
    for (key, value) in env {
        let why = if looks_secret(key) && !value.is_empty() {
            format!("`{key}` looks like a secret written as a literal value in `env`")
        } else if let Some(kind) = credential_shape(value) {
            format!("the value of `{key}` in `env` looks like {kind}")
        } else {
            continue;
        };
        let (message, help) = match where_ {
            Place::Sandbox => (why, format!("move it to `secrets`: {key} = {{ env = \"{key}\" }}, and read /run/secrets/{key} in the sandbox")),
            Place::Image => (
                format!("{why}; an image's env is baked into its config, readable by anyone who can pull the image"),
                format!("drop it from the image and declare it in the sandbox's `secrets`: {key} = {{ env = \"{key}\" }}, read from /run/secrets/{key}"),
            ),
        };
        out.push(Diagnostic::new(Code::LiteralSecret, message).at(spans.locate_value(&child_path(at, key))).help(help));
    }
}

/// Which environment is checked: the message says where the value would end up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    Sandbox,
    Image,
}

pub fn looks_secret(key: &str) -> bool {
    let k = key.to_ascii_uppercase();
    ["TOKEN", "SECRET", "PASSWORD", "PASSWD", "API_KEY", "APIKEY", "PRIVATE_KEY", "CREDENTIAL"]
        .iter()
        .any(|w| k.contains(w))
}

/// The kind of credential `value` is shaped like, by the prefixes their issuers give them.
fn credential_shape(value: &str) -> Option<&'static str> {
    const PREFIXES: &[(&str, usize, &str)] = &[
        ("ghp_", 30, "a GitHub token"),
        ("gho_", 30, "a GitHub token"),
        ("ghs_", 30, "a GitHub token"),
        ("github_pat_", 30, "a GitHub token"),
        ("glpat-", 20, "a GitLab token"),
        ("xoxb-", 20, "a Slack token"),
        ("xoxp-", 20, "a Slack token"),
        ("sk-", 32, "an API secret key"),
        ("AKIA", 20, "an AWS access key id"),
    ];
    if value.contains("-----BEGIN") && value.contains("PRIVATE KEY") {
        return Some("a private key");
    }
    let token = |rest: &str| rest.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    PREFIXES
        .iter()
        .find(|(prefix, min, _)| value.len() >= *min && value.strip_prefix(prefix).is_some_and(token))
        .map(|(_, _, kind)| *kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_known_by_name_or_by_the_shape_of_the_value() {
        assert!(looks_secret("GH_TOKEN"));
        assert!(!looks_secret("RUST_LOG"));
        assert_eq!(credential_shape("ghp_0123456789abcdefghijklmnopqrstuvwxyz"), Some("a GitHub token"));
        assert_eq!(credential_shape("AKIAIOSFODNN7EXAMPLE"), Some("an AWS access key id"));
        assert_eq!(credential_shape("-----BEGIN OPENSSH PRIVATE KEY-----\nabc"), Some("a private key"));
        assert_eq!(credential_shape("sk-"), None);
        assert_eq!(credential_shape("info"), None);
        assert_eq!(credential_shape("ghp_ is the prefix of a GitHub token"), None);
    }
}
