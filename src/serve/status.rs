//! Reporting back to GitHub: commit statuses (`POST /repos/{owner}/{repo}/statuses/{sha}`,
//! context `galley/preview`) sent in order by one task, each through the pull's SSRF guard
//! (the API host's addresses checked, the connection made through the guard's proxy). The API
//! base is the operator's; a private or loopback one needs `api_allow_private`.

use std::collections::BTreeSet;

use serde::Serialize;
use tokio::sync::mpsc;

use super::config::{ApiBase, RepoName};
use crate::image::guard::{self, Policy, Proxy};
use crate::secrets::SecretValue;

/// The status context galley's statuses carry.
pub const CONTEXT: &str = "galley/preview";
/// GitHub caps a status description at 140 characters.
const MAX_DESCRIPTION: usize = 140;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Pending,
    Success,
    Failure,
    Error,
}

/// One status to send.
#[derive(Debug, Clone)]
pub struct Status {
    pub repo: RepoName,
    pub sha: String,
    pub state: State,
    pub description: String,
    pub target_url: Option<String>,
}

#[derive(Serialize)]
struct Body<'a> {
    state: State,
    context: &'a str,
    description: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    target_url: Option<&'a str>,
}

/// Sends statuses in the order they are queued. Cloning shares the one queue.
#[derive(Clone)]
pub struct Reporter {
    tx: mpsc::UnboundedSender<Status>,
}

/// The API token of each repository (repositories without one get no statuses).
pub type Tokens = std::collections::BTreeMap<RepoName, SecretValue>;

impl Reporter {
    pub fn start(base: ApiBase, allow_private: bool, tokens: Tokens) -> Reporter {
        let (tx, mut rx) = mpsc::unbounded_channel::<Status>();
        tokio::spawn(async move {
            while let Some(status) = rx.recv().await {
                let Some(token) = tokens.get(&status.repo) else {
                    continue;
                };
                if let Err(e) = send(&base, allow_private, token, &status).await {
                    super::record(
                        "status",
                        &[
                            ("repo", status.repo.to_string()),
                            ("sha", status.sha.clone()),
                            ("outcome", "not sent".into()),
                            ("reason", e),
                        ],
                    );
                }
            }
        });
        Reporter { tx }
    }

    pub fn send(&self, status: Status) {
        let _ = self.tx.send(status);
    }
}

async fn send(
    base: &ApiBase,
    allow_private: bool,
    token: &SecretValue,
    s: &Status,
) -> Result<(), String> {
    let mut policy = Policy::default();
    if allow_private {
        policy.allow_private = BTreeSet::from([format!("{}:{}", base.host, base.port)]);
    }
    let checked = {
        let (policy, host, port) = (policy.clone(), base.host.clone(), base.port);
        tokio::task::spawn_blocking(move || guard::resolve_checked(&policy, &host, port))
            .await
            .map_err(|e| e.to_string())?
    };
    checked.map_err(|e| e.to_string())?;
    let proxy = Proxy::start(policy).map_err(|e| format!("cannot start the SSRF guard: {e}"))?;
    let client = reqwest::Client::builder()
        .proxy(reqwest::Proxy::all(proxy.url()).map_err(|e| e.to_string())?)
        .timeout(std::time::Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| e.to_string())?;
    let url = base.url(&format!(
        "/repos/{}/{}/statuses/{}",
        s.repo.owner, s.repo.name, s.sha
    ));
    let description: String = s.description.chars().take(MAX_DESCRIPTION).collect();
    let body = Body {
        state: s.state,
        context: CONTEXT,
        description,
        target_url: s.target_url.as_deref(),
    };
    let mut bearer = zeroize::Zeroizing::new(b"Bearer ".to_vec());
    bearer.extend_from_slice(token.expose_secret());
    let mut authorization = reqwest::header::HeaderValue::from_bytes(&bearer)
        .map_err(|_| "the API token is not a valid header value".to_owned())?;
    authorization.set_sensitive(true);
    let answer = client
        .post(&url)
        .header(reqwest::header::AUTHORIZATION, authorization)
        .header("Accept", "application/vnd.github+json")
        .header("User-Agent", concat!("galley/", env!("CARGO_PKG_VERSION")))
        .json(&body)
        .send()
        .await
        .map_err(|e| match proxy.refusals().into_iter().next() {
            Some(r) => r.to_string(),
            None => e.without_url().to_string(),
        })?;
    if !answer.status().is_success() {
        return Err(format!("the API answered {}", answer.status()));
    }
    Ok(())
}
