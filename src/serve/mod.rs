//! `galley serve`: a preview per pull request, from signed GitHub webhooks, under the operator's
//! policy. `config` reads the operator's config (bounded), `webhook` is the endpoint (verify,
//! then parse), `store` the durable records, `queue` one job per pull request, `preview` the
//! git checkout, policy and runtime apply or destroy, `status` the commit statuses sent back.
//!
//! Every decision about a delivery or a preview is written to the audit log through [`audit`]
//! (and echoed as one JSON line on stderr); a delivery whose decision cannot be logged is
//! answered 503 and not queued. `admin` implements the admin API's previews over the records
//! and the queue; its routes are served next to the webhook's.

pub mod admin;
pub mod config;
pub mod deliveries;
pub mod policy;
pub mod preview;
pub mod queue;
pub mod signature;
pub mod status;
pub mod store;
pub mod webhook;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crate::audit_log::{Event, Log, LogError};
use crate::clock::Clock;
use crate::exec::System;
use crate::secrets::Resolver;
use crate::settings::Env;
use crate::audit_log::Outcome;
use config::ServeConfig;
use preview::Shared;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("{}: {message}", file.display())]
    Config {
        file: PathBuf,
        message: String,
        help: String,
    },
    #[error("repository {repo}: {message}")]
    Secret { repo: String, message: String },
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("{0}")]
    Other(String),
}

impl ServeError {
    pub fn help(&self) -> Option<String> {
        match self {
            ServeError::Config { help, .. } => Some(help.clone()),
            ServeError::Secret { .. } => {
                Some("set the repository's webhook_secret source to a non-empty value".into())
            }
            ServeError::Listen { .. } => {
                Some("pick another `listen` address in the operator config".into())
            }
            ServeError::Other(_) => None,
        }
    }
}

/// Record one decision: `{"ts":..,"event":..,field:value,..}` on one line of stderr. The one
/// place webhook and preview decisions are written, so they can move to the audit log.
pub fn record(event: &str, fields: &[(&str, String)]) {
    let mut line = serde_json::Map::new();
    line.insert("ts".into(), store::now().into());
    line.insert("event".into(), event.into());
    for (k, v) in fields {
        line.insert((*k).into(), v.clone().into());
    }
    let text = serde_json::Value::Object(line).to_string();
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{text}");
}

/// Write `event` to the audit log, and echo it on stderr. An error means the decision is not on
/// record: a caller that has not acted yet must not act.
pub fn audit(log: &Log, event: Event) -> Result<(), LogError> {
    let mut fields = vec![
        ("actor", event.actor.to_string()),
        ("target", event.target.clone()),
        ("outcome", event.outcome.as_str().to_owned()),
    ];
    if let Some(s) = event.source {
        fields.push(("source", s.to_string()));
    }
    if let Some(r) = &event.reason {
        fields.push(("reason", r.clone()));
    }
    let action = event.action.clone();
    let written = log.append(event).map(drop);
    if let Err(e) = &written {
        fields.push(("audit", format!("not logged: {e}")));
    }
    record(&action, &fields);
    written
}

/// [`audit`] for what has already happened: a failure to log is only reported on stderr.
pub fn audit_after(log: &Log, event: Event) {
    let _ = audit(log, event);
}

/// Run the server until SIGINT or SIGTERM; the audit log's entries are stamped by `clock`.
pub fn run(env: &Env, config: ServeConfig, clock: Clock) -> Result<(), ServeError> {
    let resolver = Resolver::new(config.dir.clone(), &System);
    let mut secrets = BTreeMap::new();
    let mut tokens = BTreeMap::new();
    for (repo, r) in &config.repositories {
        let value = resolver
            .resolve("webhook_secret", &r.webhook_secret)
            .map_err(|e| ServeError::Secret {
                repo: repo.to_string(),
                message: e.to_string(),
            })?;
        secrets.insert(repo.clone(), value);
        if let Some(source) = &r.api_token {
            let value = resolver
                .resolve("api_token", source)
                .map_err(|e| ServeError::Secret {
                    repo: repo.to_string(),
                    message: e.to_string(),
                })?;
            tokens.insert(repo.clone(), value);
        }
    }
    let home = std::path::absolute(&env.home)
        .map_err(|e| ServeError::Other(format!("{}: {e}", env.home.display())))?;
    let mut env = env.clone();
    env.home = home.clone();
    let deliveries = deliveries::Deliveries::open(&store::root(&home).join("deliveries"))
        .map_err(|e| ServeError::Other(format!("cannot open the delivery log: {e}")))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| ServeError::Other(e.to_string()))?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| ServeError::Listen {
                addr: config.listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| ServeError::Listen {
            addr: config.listen,
            source,
        })?;
        let reporter =
            status::Reporter::start(config.api_base.clone(), config.api_allow_private, tokens);
        let max_body = config.max_body_bytes;
        let every = config.reconcile;
        let trusted = config.trusted_proxies.clone();
        let shared = Arc::new(Shared {
            config,
            env,
            records: Mutex::new(()),
            log: Log::open(&home).with_clock(clock),
        });
        let queue = queue::Queue::new(shared.clone(), reporter);
        let previews = Arc::new(admin::ServePreviews::new(queue.clone()));
        let state = crate::admin::AdminState::build(
            home.clone(),
            previews,
            trusted,
            clock,
            crate::admin::AuthLimits::default(),
        );
        let app = Arc::new(webhook::App {
            queue: queue.clone(),
            secrets,
            deliveries: Mutex::new(deliveries),
            max_body,
        });
        record("listening", &[("address", addr.to_string())]);
        tokio::spawn(reconcile_loop(queue, every));
        let routes = webhook::router(app).merge(crate::admin::router(state));
        axum::serve(
            listener,
            routes.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown())
        .await
        .map_err(|e| ServeError::Other(e.to_string()))?;
        record("stopped", &[]);
        Ok(())
    })
}

async fn shutdown() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// On start and every `every`: queue every record with work left, destroy previews past their
/// time to live, and remove preview objects no record accounts for.
async fn reconcile_loop(queue: Arc<queue::Queue>, every: std::time::Duration) {
    loop {
        let shared = queue.shared().clone();
        let sweep = queue.idle();
        let pending = tokio::task::spawn_blocking(move || reconcile(&shared, sweep))
            .await
            .unwrap_or_default();
        for (repo, number) in pending {
            queue.enqueue(repo, number);
        }
        tokio::time::sleep(every).await;
    }
}

/// One reconcile pass; returns the pull requests to queue.
pub fn reconcile(shared: &Shared, sweep: bool) -> Vec<(config::RepoName, u64)> {
    let ttl = shared.config.ttl.as_secs();
    let mut out = Vec::new();
    for r in store::all(shared.home()) {
        let Some(repo) = r.repo_name() else { continue };
        if r.open && r.project.is_some() && store::now().saturating_sub(r.updated) > ttl {
            let outcome = preview::destroy(shared, &r);
            shared.update(&repo, r.number, |r| {
                r.project = None;
                r.url = None;
                r.applied = None;
                r.failure = Some("expired: past the server's time to live".into());
            });
            let (done, why) = match outcome {
                Ok(()) => (Outcome::Ok, "expired: past the server's time to live".to_owned()),
                Err(e) => (Outcome::Failed, format!("expired, but not destroyed: {e}")),
            };
            let target = format!("{}#{}", r.repo, r.number);
            audit_after(
                &shared.log,
                Event::new(reconciler(), "preview.destroy", target, done).reason(why),
            );
            continue;
        }
        if r.pending() {
            out.push((repo, r.number));
        }
    }
    // Only when no job runs; a job holds its instance's lock until its record is written, and
    // the sweep leaves a locked instance alone.
    if sweep && out.is_empty() {
        match preview::sweep_unrecorded(shared) {
            Ok(removed) => {
                for what in removed {
                    let e = Event::new(reconciler(), "preview.destroy", what, Outcome::Ok);
                    audit_after(&shared.log, e.reason("no record accounts for it"));
                }
            }
            Err(reason) => record(
                "reconcile",
                &[("outcome", "sweep failed".into()), ("reason", reason)],
            ),
        }
    }
    out
}

fn reconciler() -> crate::audit_log::Actor {
    crate::audit_log::Actor::Serve("reconcile".into())
}
