//! `galley lsp`: a language server for `galley.ncl` over stdio.
//!
//! Diagnostics are exactly `galley check`'s (same codes, messages and ranges), computed by a child
//! process per evaluation so that a config that never terminates is killed at a time limit
//! ([`eval`], [`schedule`]). Hover and completion come from the schema's own documentation
//! ([`features`]). Logs go to stderr; stdout carries only the protocol.

mod eval;
mod features;
mod scan;
mod schedule;
mod server;
mod text;

use std::path::PathBuf;
use std::time::Duration;

use lsp_server::Connection;
use lsp_types::{
    CompletionOptions, HoverProviderCapability, SaveOptions, ServerCapabilities, TextDocumentSyncCapability,
    TextDocumentSyncKind, TextDocumentSyncOptions, TextDocumentSyncSaveOptions,
};

pub use eval::{SUBCOMMAND as EVAL_SUBCOMMAND, report as eval_report};

/// Default time limit of one evaluation.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(2000);
/// Default quiet time before a burst of edits is evaluated.
pub const DEFAULT_DEBOUNCE: Duration = Duration::from_millis(50);

#[derive(Debug, thiserror::Error)]
pub enum LspError {
    #[error("language server protocol error: {0}")]
    Protocol(#[from] lsp_server::ProtocolError),
    #[error("the client went away")]
    Disconnected,
    #[error("cannot find the galley executable: {0}")]
    Executable(std::io::Error),
    #[error("the connection threads failed: {0}")]
    Io(#[from] std::io::Error),
}

/// How the server runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where the embedded library is written (`Settings::lib_root`).
    pub lib_root: PathBuf,
    /// Time limit of one evaluation; the `evalTimeoutMs` initialization option overrides it.
    pub timeout: Duration,
    /// The `debounceMs` initialization option overrides it.
    pub debounce: Duration,
}

/// Serve over stdin and stdout until the client exits.
pub fn serve(options: Options) -> Result<(), LspError> {
    let exe = std::env::current_exe().map_err(LspError::Executable)?;
    let (conn, io) = Connection::stdio();
    let result = serve_on(&conn, options, exe);
    drop(conn);
    io.join()?;
    result
}

fn serve_on(conn: &Connection, mut options: Options, exe: PathBuf) -> Result<(), LspError> {
    let capabilities = ServerCapabilities {
        text_document_sync: Some(TextDocumentSyncCapability::Options(TextDocumentSyncOptions {
            open_close: Some(true),
            change: Some(TextDocumentSyncKind::INCREMENTAL),
            save: Some(TextDocumentSyncSaveOptions::SaveOptions(SaveOptions { include_text: Some(false) })),
            ..TextDocumentSyncOptions::default()
        })),
        hover_provider: Some(HoverProviderCapability::Simple(true)),
        completion_provider: Some(CompletionOptions {
            trigger_characters: Some(vec![".".into(), "'".into(), "\"".into()]),
            ..CompletionOptions::default()
        }),
        ..ServerCapabilities::default()
    };
    let caps = serde_json::to_value(capabilities).expect("capabilities serialize");
    let params = conn.initialize(caps)?;
    let init = params.get("initializationOptions");
    let millis = |key: &str| init.and_then(|o| o.get(key)).and_then(serde_json::Value::as_u64).map(Duration::from_millis);
    options.timeout = millis("evalTimeoutMs").unwrap_or(options.timeout);
    options.debounce = millis("debounceMs").unwrap_or(options.debounce);
    eprintln!(
        "galley lsp: ready (evaluation limit {} ms, debounce {} ms)",
        options.timeout.as_millis(),
        options.debounce.as_millis()
    );

    let lib_root = options.lib_root.clone();
    let knowledge = features::Cache::default();
    {
        let (knowledge, lib_root) = (knowledge.clone(), lib_root.clone());
        std::thread::spawn(move || {
            knowledge.get(&lib_root);
        });
    }
    let docs = server::Docs::default();
    let (events, inbox) = std::sync::mpsc::channel();
    let settings = schedule::Settings { exe, timeout: options.timeout, debounce: options.debounce };
    let sender = conn.sender.clone();
    let outbox: schedule::Outbox = Box::new(move |m| {
        let _ = sender.send(m);
    });
    let scheduler = {
        let (docs, me) = (docs.clone(), events.clone());
        std::thread::spawn(move || schedule::run(settings, docs, inbox, me, outbox))
    };
    let server = server::Server { conn, docs, events: events.clone(), knowledge, lib_root };
    let result = server.run();
    // The scheduler holds a sender of the connection, which must be gone before its writer
    // thread can finish.
    let _ = events.send(schedule::Event::Stop);
    let _ = scheduler.join();
    result
}
