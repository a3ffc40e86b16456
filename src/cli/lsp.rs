//! `galley lsp` (the language server on stdio) and the hidden `galley __eval` it runs per
//! evaluation.

use std::io::Read;
use std::time::Duration;

use clap::Args;

use super::{CliError, ExitStatus, Outcome, Printer};
use crate::lsp;
use crate::settings::Env;

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

pub fn run(env: &Env, _args: &LspArgs) -> Outcome {
    let timeout = std::env::var(crate::env_vars::GALLEY_LSP_TIMEOUT_MS)
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(lsp::DEFAULT_TIMEOUT, Duration::from_millis);
    let options = lsp::Options { lib_root: env.lib_root(), timeout, debounce: lsp::DEFAULT_DEBOUNCE };
    match lsp::serve(options) {
        Ok(()) => Ok(ExitStatus::Success),
        Err(e) => {
            // The editor shows stderr as the server's log; this line is all it gets.
            eprintln!("galley lsp: {e}");
            Ok(ExitStatus::Failed)
        }
    }
}

/// Print the diagnostics of the project's galley.ncl (or of stdin as its text) as JSON.
pub fn eval(env: &Env, out: &Printer, args: &EvalArgs) -> Outcome {
    let text = if args.stdin {
        let mut buf = Vec::new();
        std::io::stdin().read_to_end(&mut buf).map_err(|e| CliError::user(format!("cannot read stdin: {e}"), None))?;
        String::from_utf8_lossy(&buf).into_owned()
    } else {
        let path = env.config_path();
        std::fs::read_to_string(&path).map_err(|e| CliError::user(format!("cannot read {}: {e}", path.display()), None))?
    };
    let report = crate::project::confine(env.eval.memory_bytes, env.eval.stack_bytes, || lsp::eval_report(env, &text))
        .map_err(|e| CliError::user(e, None))?;
    out.data(report);
    Ok(ExitStatus::Success)
}
