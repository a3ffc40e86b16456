//! `galley lsp` (the language server on stdio) and the hidden `galley __eval` it runs per
//! evaluation.

use std::io::Read;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use crate::lsp;
use crate::settings::Settings;

#[derive(Debug, Args)]
pub struct LspArgs {
    /// Talk over stdin and stdout (the only transport; accepted because editors pass it)
    #[arg(long)]
    pub stdio: bool,
}

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Read galley.ncl's text from stdin instead of the file
    #[arg(long)]
    pub stdin: bool,
}

pub fn run(settings: &Settings, _args: &LspArgs) -> ExitCode {
    let timeout = std::env::var(crate::env_vars::GALLEY_LSP_TIMEOUT_MS)
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(lsp::DEFAULT_TIMEOUT, Duration::from_millis);
    let options = lsp::Options { lib_root: settings.lib_root(), timeout, debounce: lsp::DEFAULT_DEBOUNCE };
    match lsp::serve(options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("galley lsp: {e}");
            ExitCode::from(2)
        }
    }
}

/// Print the diagnostics of the project's galley.ncl (or of stdin as its text) as JSON.
pub fn eval(settings: &Settings, args: &EvalArgs) -> ExitCode {
    let text = if args.stdin {
        let mut buf = Vec::new();
        if let Err(e) = std::io::stdin().read_to_end(&mut buf) {
            return super::fail(settings, format!("cannot read stdin: {e}"), None);
        }
        String::from_utf8_lossy(&buf).into_owned()
    } else {
        match std::fs::read_to_string(settings.config_path()) {
            Ok(t) => t,
            Err(e) => return super::fail(settings, format!("cannot read {}: {e}", settings.config_path().display()), None),
        }
    };
    println!("{}", lsp::eval_report(settings, &text));
    ExitCode::SUCCESS
}
