//! The admin API of `galley serve`, as an axum [`Router`]: list previews, one preview's status
//! and URL, redeploy, destroy, and read the audit log. Bearer tokens only (`crate::token`); 401
//! for a missing, malformed, unknown, expired or revoked token, 403 for the wrong scope, 429
//! after too many failed authentications from one address. Every call is written to the audit
//! log with the token id and the source address before it acts; when it cannot be, the call is
//! refused with 503. The previews themselves come through the [`Previews`] trait, which the
//! server implements. The JSON shapes are documented in docs/admin-api.md.

mod auth;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};

pub use auth::{AuthLimits, BURST_LOG_EVERY, Limiter, MAX_FAILURES, WINDOW};

use crate::audit_log::{Actor, Event, Filter, Log, Outcome};
use crate::clock::Clock;
use crate::token::{Record, Scope, Tokens};

/// One preview, as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Preview {
    /// The preview's id (e.g. `pr-42`).
    pub id: String,
    /// What state it is in, in the server's words (`running`, `building`, `failed`, …).
    pub status: String,
    /// Where it answers, once it does.
    pub url: Option<String>,
}

/// Why a preview operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PreviewError {
    #[error("there is no preview `{0}`")]
    NotFound(String),
    #[error("{0}")]
    Failed(String),
}

/// The previews the admin API acts on; `galley serve` implements it. Calls are made from a
/// blocking thread, so they may take their time.
pub trait Previews: Send + Sync + 'static {
    fn list(&self) -> Result<Vec<Preview>, PreviewError>;
    /// One preview's status and URL; `None` when there is no such preview.
    fn get(&self, id: &str) -> Result<Option<Preview>, PreviewError>;
    /// Build and start the preview again; its state afterwards.
    fn redeploy(&self, id: &str) -> Result<Preview, PreviewError>;
    fn destroy(&self, id: &str) -> Result<(), PreviewError>;
}

/// What the admin API needs: GALLEY_HOME (tokens and audit log), the previews, and which peers
/// are proxies whose `X-Forwarded-For` names the client.
#[derive(Clone)]
pub struct AdminState {
    inner: Arc<Inner>,
}

struct Inner {
    tokens: Tokens,
    log: Log,
    clock: Clock,
    previews: Arc<dyn Previews>,
    trusted_proxies: Vec<IpAddr>,
    limiter: Limiter,
}

impl AdminState {
    pub fn new(home: PathBuf, previews: Arc<dyn Previews>) -> AdminState {
        AdminState::build(home, previews, Vec::new(), Clock::system(), AuthLimits::default())
    }

    /// Every setting: the proxies to trust, the clock tokens and entries go by, the limits.
    pub fn build(home: PathBuf, previews: Arc<dyn Previews>, trusted_proxies: Vec<IpAddr>, clock: Clock, limits: AuthLimits) -> AdminState {
        let inner = Inner {
            tokens: Tokens::open(&home, clock),
            log: Log::open(&home).with_clock(clock),
            clock,
            previews,
            trusted_proxies,
            limiter: Limiter::new(limits),
        };
        AdminState { inner: Arc::new(inner) }
    }
}

/// The routes, under `/admin/v1`. Serve it with
/// `into_make_service_with_connect_info::<SocketAddr>()`: the source address comes from there.
pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/admin/v1/previews", get(list))
        .route("/admin/v1/previews/{id}", get(one).delete(destroy))
        .route("/admin/v1/previews/{id}/redeploy", post(redeploy))
        .route("/admin/v1/audit", get(audit))
        .with_state(state)
}

/// A request as the handlers see it.
struct Call {
    state: AdminState,
    peer: IpAddr,
    headers: HeaderMap,
}

type Peer = ConnectInfo<SocketAddr>;

async fn list(State(state): State<AdminState>, ConnectInfo(peer): Peer, headers: HeaderMap) -> Response {
    let call = Call { state, peer: peer.ip(), headers };
    blocking(move || {
        let (_, _) = call.authorize(Scope::PreviewsRead, "admin.preview.list", "*", Outcome::Ok)?;
        let previews = call.state.inner.previews.list().map_err(ApiError::from)?;
        Ok(json(StatusCode::OK, &serde_json::json!({ "previews": previews })))
    })
    .await
}

async fn one(State(state): State<AdminState>, ConnectInfo(peer): Peer, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let call = Call { state, peer: peer.ip(), headers };
    blocking(move || {
        call.authorize(Scope::PreviewsRead, "admin.preview.get", &id, Outcome::Ok)?;
        match call.state.inner.previews.get(&id)? {
            Some(p) => Ok(json(StatusCode::OK, &p)),
            None => Err(ApiError::from(PreviewError::NotFound(id))),
        }
    })
    .await
}

async fn redeploy(State(state): State<AdminState>, ConnectInfo(peer): Peer, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let call = Call { state, peer: peer.ip(), headers };
    blocking(move || {
        let done = call.change("admin.preview.redeploy", &id, |p| p.redeploy(&id))?;
        Ok(json(StatusCode::OK, &done))
    })
    .await
}

async fn destroy(State(state): State<AdminState>, ConnectInfo(peer): Peer, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let call = Call { state, peer: peer.ip(), headers };
    blocking(move || {
        call.change("admin.preview.destroy", &id, |p| p.destroy(&id))?;
        Ok(json(StatusCode::OK, &serde_json::json!({ "destroyed": id })))
    })
    .await
}

/// `GET /admin/v1/audit`: the filters of `galley audit show`, and how many of the latest.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    since: Option<String>,
    actor: Option<String>,
    action: Option<String>,
    limit: Option<usize>,
}

/// The most entries one `GET /admin/v1/audit` returns (and the default).
pub const AUDIT_PAGE: usize = 1000;

async fn audit(State(state): State<AdminState>, ConnectInfo(peer): Peer, headers: HeaderMap, query: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>) -> Response {
    let call = Call { state, peer: peer.ip(), headers };
    blocking(move || {
        let Query(q) = query.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.body_text()))?;
        let since = q
            .since
            .as_deref()
            .map(|s| crate::clock::parse_rfc3339(s).ok_or_else(|| ApiError::new(StatusCode::BAD_REQUEST, format!("since={s} is not an RFC 3339 UTC time"))))
            .transpose()?;
        call.authorize(Scope::Admin, "admin.audit.read", "audit.log", Outcome::Ok)?;
        let filter = Filter { since, actor: q.actor, action: q.action };
        let entries = call.state.inner.log.read().map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        let mut entries: Vec<_> = entries.into_iter().filter(|e| filter.matches(e)).collect();
        let keep = q.limit.unwrap_or(AUDIT_PAGE).min(AUDIT_PAGE);
        let entries = entries.split_off(entries.len().saturating_sub(keep));
        Ok(json(StatusCode::OK, &serde_json::json!({ "entries": entries })))
    })
    .await
}

impl Call {
    /// The caller's token when it may do `action` with `needed`; every decision is logged
    /// (`granted` as the entry's outcome when allowed) and a refusal is the error to answer.
    fn authorize(&self, needed: Scope, action: &str, target: &str, granted: Outcome) -> Result<(Record, IpAddr), ApiError> {
        let inner = &self.state.inner;
        let source = auth::source(self.peer, &self.headers, &inner.trusted_proxies);
        let now = inner.clock.now();
        let log = |event: Event| inner.log.append(event.source(source)).map_err(|e| ApiError::unlogged(&e));
        if let Some(t) = inner.limiter.check(source, now) {
            if t.log {
                let limits = inner.limiter.limits();
                let reason = format!(
                    "{} failed authentications within {} s; {} requests refused unread so far",
                    limits.max_failures,
                    limits.window.as_secs(),
                    t.refused
                );
                log(Event::new(Actor::Anonymous, action, target, Outcome::Throttled).reason(reason))?;
            }
            return Err(ApiError::throttled(t.retry_after));
        }
        let refusal = match auth::bearer(&self.headers) {
            None => Err("no Authorization: Bearer token".to_owned()),
            Some(presented) => match inner.tokens.authenticate(presented) {
                Ok(Ok(record)) => Ok(record),
                Ok(Err(refusal)) => Err(refusal.to_string()),
                Err(e) => return Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())),
            },
        };
        let record = match refusal {
            Ok(record) => record,
            Err(reason) => {
                let n = inner.limiter.fail(source, now);
                log(Event::new(Actor::Anonymous, action, target, Outcome::Denied).reason(format!("{reason} (failure {n} from this address)")))?;
                return Err(ApiError::new(StatusCode::UNAUTHORIZED, "a valid Bearer token is required"));
            }
        };
        let actor = Actor::Token(record.id.clone());
        if !record.scope.allows(needed) {
            let reason = format!("scope {} does not allow {}", record.scope.as_str(), needed.as_str());
            log(Event::new(actor, action, target, Outcome::Denied).reason(reason.clone()))?;
            return Err(ApiError::new(StatusCode::FORBIDDEN, reason));
        }
        log(Event::new(actor, action, target, granted))?;
        Ok((record, source))
    }

    /// A state change: authorized and logged as started, done, then logged as ended.
    fn change<T>(&self, action: &str, target: &str, act: impl FnOnce(&dyn Previews) -> Result<T, PreviewError>) -> Result<T, ApiError> {
        let (record, source) = self.authorize(Scope::PreviewsWrite, action, target, Outcome::Started)?;
        let result = act(self.state.inner.previews.as_ref());
        let mut end = Event::new(Actor::Token(record.id), action, target, if result.is_ok() { Outcome::Ok } else { Outcome::Failed }).source(source);
        end.reason = result.as_ref().err().map(ToString::to_string);
        self.state.inner.log.append(end).map_err(|e| ApiError::unlogged(&e))?;
        Ok(result?)
    }
}

/// Run `work` off the async threads (token file, audit log and previews all block).
async fn blocking(work: impl FnOnce() -> Result<Response, ApiError> + Send + 'static) -> Response {
    match tokio::task::spawn_blocking(work).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => e.into_response(),
        Err(_) => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "the request's handler panicked").into_response(),
    }
}

fn json(status: StatusCode, body: &impl Serialize) -> Response {
    (status, axum::Json(body)).into_response()
}

/// An error answer: a status and `{"error": "…"}`.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    message: String,
    retry_after: Option<u64>,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError { status, message: message.into(), retry_after: None }
    }

    fn unlogged(e: &crate::audit_log::LogError) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, format!("refusing to act unlogged: {e}"))
    }

    fn throttled(retry_after: u64) -> ApiError {
        let message = "too many failed authentications from this address; try again later";
        ApiError { retry_after: Some(retry_after), ..ApiError::new(StatusCode::TOO_MANY_REQUESTS, message) }
    }
}

impl From<PreviewError> for ApiError {
    fn from(e: PreviewError) -> ApiError {
        let status = match e {
            PreviewError::NotFound(_) => StatusCode::NOT_FOUND,
            PreviewError::Failed(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = json(self.status, &serde_json::json!({ "error": self.message }));
        let headers = response.headers_mut();
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"galley\""));
        }
        if let Some(secs) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}
