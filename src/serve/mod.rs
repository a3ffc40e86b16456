//! `galley serve`: a preview per pull request, from signed GitHub webhooks, under the operator's
//! policy. `config` reads the operator's config (bounded), `webhook` is the endpoint (verify,
//! then parse), `store` the durable records, `queue` one job per pull request, `preview` the
//! git checkout, policy and runtime apply or destroy, `status` the commit statuses sent back.
//!
//! Every decision about a delivery or a preview is recorded through [`record`], one JSON line
//! on stderr, until the audit log takes them.

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

use crate::exec::System;
use crate::secrets::Resolver;
use crate::settings::Env;
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

/// Run the server until SIGINT or SIGTERM.
pub fn run(env: &Env, config: ServeConfig) -> Result<(), ServeError> {
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
        let shared = Arc::new(Shared {
            config,
            env,
            records: Mutex::new(()),
        });
        let queue = queue::Queue::new(shared.clone(), reporter);
        let app = Arc::new(webhook::App {
            queue: queue.clone(),
            secrets,
            deliveries: Mutex::new(deliveries),
            max_body,
        });
        record("listening", &[("address", addr.to_string())]);
        tokio::spawn(reconcile_loop(queue, every));
        axum::serve(
            listener,
            webhook::router(app).into_make_service_with_connect_info::<std::net::SocketAddr>(),
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
            record(
                "preview",
                &[
                    ("repo", r.repo.clone()),
                    ("number", r.number.to_string()),
                    ("outcome", "expired".into()),
                    ("reason", outcome.err().unwrap_or_default()),
                ],
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
                    record(
                        "preview",
                        &[("outcome", "removed unrecorded".into()), ("what", what)],
                    );
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
