//! The main loop: open documents, notifications that schedule evaluations, and requests (hover,
//! completion) answered on this thread from the buffer text alone. A panic while handling one
//! message is caught and logged; the server keeps serving.

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex, MutexGuard};

use lsp_server::{Connection, ErrorCode, Message, Notification, Request, Response};
use lsp_types::notification::{
    DidChangeTextDocument, DidCloseTextDocument, DidOpenTextDocument, DidSaveTextDocument, Notification as _,
};
use lsp_types::request::{Completion, HoverRequest, Request as _};
use lsp_types::{
    CompletionParams, DidChangeTextDocumentParams, DidCloseTextDocumentParams, DidOpenTextDocumentParams,
    DidSaveTextDocumentParams, HoverParams,
};

use super::features::{self, Cache};
use super::schedule::Event;
use super::text::{apply_change, uri_to_path};
use super::LspError;
use crate::lang::CONFIG_FILE;

#[derive(Debug, Clone)]
struct Doc {
    path: Option<PathBuf>,
    text: String,
    version: i32,
}

/// The open documents, shared with the scheduler.
#[derive(Debug, Clone, Default)]
pub struct Docs(Arc<Mutex<HashMap<String, Doc>>>);

impl Docs {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Doc>> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The text and version of the open document of this file.
    pub fn snapshot(&self, path: &Path) -> Option<(String, i32)> {
        self.lock().values().find(|d| d.path.as_deref() == Some(path)).map(|d| (d.text.clone(), d.version))
    }

    /// The URI the client used for this file, if it is open.
    pub fn uri_of_path(&self, path: &Path) -> Option<String> {
        self.lock().iter().find(|(_, d)| d.path.as_deref() == Some(path)).map(|(u, _)| u.clone())
    }

    fn text(&self, uri: &str) -> Option<String> {
        self.lock().get(uri).map(|d| d.text.clone())
    }
}

pub struct Server<'a> {
    pub conn: &'a Connection,
    pub docs: Docs,
    pub events: Sender<Event>,
    pub knowledge: Cache,
    pub lib_root: PathBuf,
}

impl Server<'_> {
    /// Serve until the client asks to shut down or goes away.
    pub fn run(&self) -> Result<(), LspError> {
        for msg in &self.conn.receiver {
            match msg {
                Message::Request(req) => {
                    if self.conn.handle_shutdown(&req)? {
                        return Ok(());
                    }
                    let (id, method) = (req.id.clone(), req.method.clone());
                    let response = catch_unwind(AssertUnwindSafe(|| self.request(req))).unwrap_or_else(|_| {
                        eprintln!("galley lsp: internal error while handling {method}");
                        Response::new_err(id, ErrorCode::InternalError as i32, format!("internal error in {method}"))
                    });
                    self.conn.sender.send(Message::Response(response)).map_err(|_| LspError::Disconnected)?;
                }
                Message::Notification(note) => {
                    let method = note.method.clone();
                    if catch_unwind(AssertUnwindSafe(|| self.notification(note))).is_err() {
                        eprintln!("galley lsp: internal error while handling {method}");
                    }
                }
                Message::Response(_) => {}
            }
        }
        Ok(())
    }

    fn request(&self, req: Request) -> Response {
        let id = req.id.clone();
        let bad = |e: serde_json::Error| Response::new_err(id.clone(), ErrorCode::InvalidParams as i32, e.to_string());
        match req.method.as_str() {
            HoverRequest::METHOD => match serde_json::from_value::<HoverParams>(req.params) {
                Ok(p) => {
                    let at = p.text_document_position_params;
                    let hover = self.text(at.text_document.uri.as_str()).and_then(|text| {
                        features::hover(self.knowledge.get(&self.lib_root), &text, at.position)
                    });
                    Response::new_ok(id, hover)
                }
                Err(e) => bad(e),
            },
            Completion::METHOD => match serde_json::from_value::<CompletionParams>(req.params) {
                Ok(p) => {
                    let at = p.text_document_position;
                    let items = self.text(at.text_document.uri.as_str()).map(|text| {
                        features::complete(self.knowledge.get(&self.lib_root), &text, at.position)
                    });
                    Response::new_ok(id, items)
                }
                Err(e) => bad(e),
            },
            other => Response::new_err(id, ErrorCode::MethodNotFound as i32, format!("unsupported request {other}")),
        }
    }

    fn notification(&self, note: Notification) {
        let parsed = |e: serde_json::Error| eprintln!("galley lsp: bad {} params: {e}", note.method);
        match note.method.as_str() {
            DidOpenTextDocument::METHOD => match serde_json::from_value::<DidOpenTextDocumentParams>(note.params.clone()) {
                Ok(p) => {
                    let uri = p.text_document.uri.as_str().to_owned();
                    let path = uri_to_path(&uri);
                    let doc = Doc { path: path.clone(), text: p.text_document.text, version: p.text_document.version };
                    self.docs.lock().insert(uri, doc);
                    self.schedule(path.as_deref(), true);
                }
                Err(e) => parsed(e),
            },
            DidChangeTextDocument::METHOD => match serde_json::from_value::<DidChangeTextDocumentParams>(note.params.clone()) {
                Ok(p) => {
                    let path = {
                        let mut docs = self.docs.lock();
                        let Some(doc) = docs.get_mut(p.text_document.uri.as_str()) else { return };
                        for change in &p.content_changes {
                            apply_change(&mut doc.text, change);
                        }
                        doc.version = p.text_document.version;
                        doc.path.clone()
                    };
                    self.schedule(path.as_deref(), false);
                }
                Err(e) => parsed(e),
            },
            DidSaveTextDocument::METHOD => match serde_json::from_value::<DidSaveTextDocumentParams>(note.params.clone()) {
                Ok(p) => self.schedule(uri_to_path(p.text_document.uri.as_str()).as_deref(), true),
                Err(e) => parsed(e),
            },
            DidCloseTextDocument::METHOD => match serde_json::from_value::<DidCloseTextDocumentParams>(note.params.clone()) {
                Ok(p) => {
                    let doc = self.docs.lock().remove(p.text_document.uri.as_str());
                    if let Some(path) = doc.and_then(|d| d.path).filter(|p| is_config(p)) {
                        let _ = self.events.send(Event::Closed(path));
                    }
                }
                Err(e) => parsed(e),
            },
            _ => {}
        }
    }

    /// Evaluate the project a file belongs to: its own when it is a galley.ncl, else (on open
    /// and save only, since imports are read from disk) the nearest galley.ncl above it.
    fn schedule(&self, path: Option<&Path>, any_file: bool) {
        let Some(path) = path else { return };
        let config = if is_config(path) {
            Some(path.to_path_buf())
        } else if any_file {
            path.ancestors().skip(1).take(16).map(|d| d.join(CONFIG_FILE)).find(|c| c.is_file() || self.docs.uri_of_path(c).is_some())
        } else {
            None
        };
        if let Some(config) = config {
            let _ = self.events.send(Event::Changed(config));
        }
    }

    fn text(&self, uri: &str) -> Option<String> {
        self.docs.text(uri)
    }
}

fn is_config(path: &Path) -> bool {
    path.file_name().is_some_and(|n| n == CONFIG_FILE)
}
