//! The one place commands print: data on stdout (text or JSON), progress and diagnostics on
//! stderr, as much as the verbosity asks for.

use std::fmt::Display;

use serde::Serialize;

use super::error::CliError;
use crate::settings::{Format, Settings, Verbosity};

#[derive(Debug, Clone, Copy)]
pub struct Printer {
    pub format: Format,
    pub verbosity: Verbosity,
    /// Color on stderr.
    pub color: bool,
    /// Color on stdout.
    pub stdout_color: bool,
}

impl Printer {
    pub fn new(settings: &Settings) -> Self {
        Printer {
            format: settings.format,
            verbosity: settings.verbosity,
            color: settings.color,
            stdout_color: settings.stdout_color,
        }
    }

    pub fn json(&self) -> bool {
        self.format == Format::Json
    }

    pub fn text(&self) -> bool {
        self.format == Format::Text
    }

    /// Data: a line on stdout.
    pub fn data(&self, line: impl Display) {
        println!("{line}");
    }

    /// Data as indented JSON on stdout.
    pub fn json_pretty(&self, value: &impl Serialize) {
        println!("{}", serde_json::to_string_pretty(value).expect("output serializes"));
    }

    /// A line on stderr unless `-q`.
    pub fn note(&self, line: impl Display) {
        if !self.verbosity.quiet() {
            eprintln!("{line}");
        }
    }

    /// A line on stderr for people: text format, and not `-q`.
    pub fn text_note(&self, line: impl Display) {
        if self.text() {
            self.note(line);
        }
    }

    /// A line on stderr with `-v`.
    pub fn detail(&self, line: impl Display) {
        if self.verbosity.verbose() {
            eprintln!("{line}");
        }
    }

    /// A one-line error: `error: ...` and its `help:` on stderr, or a JSON object on stdout.
    pub fn error_line(&self, message: &str, help: Option<&str>) {
        if self.json() {
            println!("{}", serde_json::json!({ "error": message, "help": help }));
            return;
        }
        eprintln!("error: {message}");
        if let Some(h) = help {
            eprintln!("  help: {h}");
        }
    }

    /// Print why a command stopped, once.
    pub fn error(&self, e: &CliError) {
        if let Some((message, help)) = e.line() {
            return self.error_line(&message, help.as_deref());
        }
        match e {
            CliError::Config { diagnostics, .. } => {
                super::render::report(self, diagnostics, true);
            }
            CliError::StaleLock(changes) => {
                eprintln!("error: galley.lock is stale, refusing to run with --locked:");
                for c in changes {
                    eprintln!("  {c}");
                }
                eprintln!("  help: run `galley lock` and commit galley.lock");
            }
            _ => unreachable!("every other error is one line"),
        }
    }
}
