//! The webhook endpoint, `POST /hooks/github/{owner}/{name}`: the repository comes from the path
//! (so its secret is known before the body is read), the body is read up to the cap (413
//! beyond), the signature is verified over the raw bytes, the delivery id is checked against the
//! ones already seen, and only then is the payload parsed. Work is recorded durably and queued;
//! the answer comes before any build. Every decision is written to the audit log (actor
//! `github:<delivery id>` once the signature holds, `anonymous` before: an unverified id is the
//! sender's word), with the repository, the peer's address, the outcome and the reason; never
//! the body or a secret. Rejections are answered with an empty body. A decision that cannot be
//! logged is answered 503, and nothing is queued.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use serde::Deserialize;

use super::config::RepoName;
use super::deliveries::{self, Deliveries};
use super::queue::Queue;
use super::{audit, record};
use crate::audit_log::{Actor, Event, Outcome};
use super::signature;
use super::status::{State as Commit, Status};
use super::store::{self, Record, Sha};
use crate::secrets::SecretValue;

/// How long a request may take, body included.
pub const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

pub struct App {
    pub queue: Arc<Queue>,
    pub secrets: std::collections::BTreeMap<RepoName, SecretValue>,
    pub deliveries: Mutex<Deliveries>,
    pub max_body: usize,
}

pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/hooks/github/{owner}/{name}", post(hook))
        .route("/healthz", get(|| async { "ok\n" }))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .with_state(app)
}

/// Log one decision about a delivery; `delivery` only once its signature verified.
fn decide(
    app: &App,
    action: &str,
    outcome: Outcome,
    reason: String,
    peer: SocketAddr,
    repo: &str,
    delivery: Option<&str>,
) -> Result<(), crate::audit_log::LogError> {
    let actor = delivery.map_or(Actor::Anonymous, |d| Actor::Github(d.to_owned()));
    let event = Event::new(actor, action, repo, outcome)
        .source(peer.ip())
        .reason(reason);
    // The append fsyncs: off the async worker's hands.
    tokio::task::block_in_place(|| audit(&app.queue.shared().log, event))
}

/// Answer `status` to a rejected delivery, once the rejection is logged (503 when it cannot be).
fn reject(
    app: &App,
    status: StatusCode,
    reason: &str,
    peer: SocketAddr,
    repo: &str,
    delivery: Option<&str>,
) -> StatusCode {
    let why = format!("{reason} (answered {})", status.as_u16());
    match decide(app, "webhook.rejected", Outcome::Denied, why, peer, repo, delivery) {
        Ok(()) => status,
        Err(_) => StatusCode::SERVICE_UNAVAILABLE,
    }
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

async fn hook(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path((owner, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> StatusCode {
    let shown = format!("{owner}/{name}");
    let Some((repo, secret)) = RepoName::parse(&shown).and_then(|r| app.secrets.get_key_value(&r))
    else {
        return reject(
            &app,
            StatusCode::NOT_FOUND,
            "unknown repository",
            peer,
            &shown,
            None,
        );
    };
    // A declared length over the cap is refused unread; a body that grows past it as it arrives
    // is cut there.
    let declared = header(&headers, "content-length").and_then(|l| l.parse::<u64>().ok());
    let bytes = match declared.is_some_and(|l| l > app.max_body as u64) {
        true => None,
        false => axum::body::to_bytes(body, app.max_body).await.ok(),
    };
    let Some(bytes) = bytes else {
        return reject(
            &app,
            StatusCode::PAYLOAD_TOO_LARGE,
            "body too large",
            peer,
            &shown,
            None,
        );
    };
    let sig = headers.get("x-hub-signature-256").map(|v| v.as_bytes());
    if let Err(refused) = signature::verify(secret.expose_secret(), sig, &bytes) {
        return reject(
            &app,
            StatusCode::UNAUTHORIZED,
            refused.reason(),
            peer,
            &shown,
            None,
        );
    }
    let Some(delivery) = header(&headers, "x-github-delivery").filter(|d| deliveries::valid_id(d))
    else {
        return reject(
            &app,
            StatusCode::BAD_REQUEST,
            "delivery id missing",
            peer,
            &shown,
            None,
        );
    };
    let fresh = app
        .deliveries
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(delivery);
    match fresh {
        Ok(true) => {}
        Ok(false) => {
            return reject(
                &app,
                StatusCode::CONFLICT,
                "replayed delivery",
                peer,
                &shown,
                Some(delivery),
            );
        }
        Err(e) => {
            record(
                "state",
                &[
                    ("outcome", "delivery not recorded".into()),
                    ("reason", e.to_string()),
                ],
            );
            return StatusCode::SERVICE_UNAVAILABLE;
        }
    }
    let event = header(&headers, "x-github-event").unwrap_or("");
    let accepted = |what: &str, status: StatusCode| {
        let why = format!("{event}: {what}");
        match decide(&app, "webhook.accepted", Outcome::Ok, why, peer, &shown, Some(delivery)) {
            Ok(()) => status,
            Err(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    };
    match event {
        "ping" => accepted("ping", StatusCode::OK),
        "pull_request" => match serde_json::from_slice::<PullRequestEvent>(&bytes) {
            Err(_) => reject(
                &app,
                StatusCode::BAD_REQUEST,
                "payload malformed",
                peer,
                &shown,
                Some(delivery),
            ),
            Ok(e) if RepoName::parse(&e.repository.full_name).as_ref() != Some(repo) => reject(
                &app,
                StatusCode::BAD_REQUEST,
                "payload names another repository",
                peer,
                &shown,
                Some(delivery),
            ),
            Ok(e) => match pull_request(&app, repo, &e, delivery, &|what| {
                decide(&app, "webhook.accepted", Outcome::Ok, format!("{event}: {what}"), peer, &shown, Some(delivery))
                    .map_err(|e| e.to_string())
            }) {
                Ok(Some(())) => StatusCode::ACCEPTED,
                Ok(None) => accepted("ignored action", StatusCode::ACCEPTED),
                Err(Refusal::Payload(reason)) => {
                    reject(&app, StatusCode::BAD_REQUEST, reason, peer, &shown, Some(delivery))
                }
                Err(Refusal::State(reason)) => {
                    let what = [("outcome", "not queued".into()), ("reason", reason)];
                    record("state", &what);
                    StatusCode::SERVICE_UNAVAILABLE
                }
            },
        },
        _ => accepted("ignored event", StatusCode::ACCEPTED),
    }
}

#[derive(Deserialize)]
struct PullRequestEvent {
    action: String,
    number: u64,
    pull_request: PullRequest,
    repository: RepoRef,
}

#[derive(Deserialize)]
struct PullRequest {
    head: Head,
}

#[derive(Deserialize)]
struct Head {
    sha: String,
    /// `null` when the fork was deleted.
    repo: Option<RepoRef>,
}

#[derive(Deserialize)]
struct RepoRef {
    full_name: String,
}

/// Why a verified `pull_request` delivery was not queued.
enum Refusal {
    /// The payload is not one galley acts on (recorded as a rejection).
    Payload(&'static str),
    /// Its decision could not be logged or its record written (503, nothing queued).
    State(String),
}

/// Log the decision (`log`), record what the delivery wants (durably) and queue the job, in
/// that order; `None` for an action galley does not act on.
fn pull_request(
    app: &App,
    repo: &RepoName,
    e: &PullRequestEvent,
    delivery: &str,
    log: &dyn Fn(&str) -> Result<(), String>,
) -> Result<Option<()>, Refusal> {
    let open = match e.action.as_str() {
        "opened" | "reopened" | "synchronize" => true,
        "closed" => false,
        _ => return Ok(None),
    };
    let head = Sha::parse(&e.pull_request.head.sha)
        .ok_or(Refusal::Payload("head commit id malformed"))?;
    let fork = e
        .pull_request
        .head
        .repo
        .as_ref()
        .is_none_or(|r| r.full_name != e.repository.full_name);
    log(&format!("{} #{}", e.action, e.number)).map_err(Refusal::State)?;
    let shared = app.queue.shared();
    {
        let _g = shared.records.lock().unwrap_or_else(|p| p.into_inner());
        let old = store::read(shared.home(), repo, e.number);
        let r = Record {
            repo: repo.to_string(),
            number: e.number,
            head: head.clone(),
            fork,
            open,
            updated: store::now(),
            applied: old.as_ref().and_then(|o| o.applied.clone()),
            project: old.as_ref().and_then(|o| o.project.clone()),
            url: old.as_ref().and_then(|o| o.url.clone()),
            failure: None,
            delivery: Some(delivery.to_owned()),
        };
        store::write(shared.home(), &r).map_err(|e| Refusal::State(e.to_string()))?;
    }
    if open {
        app.queue.reporter().send(Status {
            repo: repo.clone(),
            sha: head.as_str().to_owned(),
            state: Commit::Pending,
            description: "preview queued".into(),
            target_url: None,
        });
    }
    app.queue.enqueue(repo.clone(), e.number);
    Ok(Some(()))
}
