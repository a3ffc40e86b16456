//! The one bounded evaluator. The parent runs `galley -C DIR __load` (through [`crate::exec`])
//! and kills it at the time limit; the child caps its own memory (`RLIMIT_DATA`) before it
//! evaluates, on a thread with a bounded stack. Every way the child can end without a report
//! (killed at the limit, an allocation refused, the stack overflowed, a crash) becomes a finding
//! naming the limit and the file.

use std::path::Path;
use std::time::Duration;

use super::wire::{self, Parts};
use super::Loaded;
use crate::diagnostic::{Code, Diagnostic};
use crate::env_vars;
use crate::exec::{Cmd, Output, Runner};
use crate::model::Project;
use crate::settings::{Env, EvalLimits};

/// The hidden subcommand the child runs.
pub const SUBCOMMAND: &str = "__load";

/// Evaluate and lint the project in a bounded child process (`text` as galley.ncl's contents
/// when given). `Err` holds the diagnostics of a config that could not be evaluated, or of a
/// limit it exceeded.
pub fn load(env: &Env, runner: &dyn Runner, text: Option<&str>) -> Result<Loaded, Vec<Diagnostic>> {
    let limits = &env.eval;
    let mut cmd = Cmd::new(&limits.exe)
        .arg("-C")
        .arg(&env.project_dir)
        .arg(SUBCOMMAND)
        .arg("--memory-bytes")
        .arg(limits.memory_bytes.to_string())
        .arg("--stack-bytes")
        .arg(limits.stack_bytes.to_string())
        .timeout(limits.timeout)
        // The report is about the size of the evaluated config; one larger than the child's own
        // memory could hold is not read whole.
        .stdout_limit(usize::try_from(limits.memory_bytes).unwrap_or(usize::MAX));
    if let Some(text) = text {
        cmd = cmd.arg("--stdin").stdin(text.as_bytes().to_vec());
    }
    let file = env.config_path();
    let out = runner.run(&cmd).map_err(|e| vec![crashed(&file, &e.to_string())])?;
    let parts = match judge(&out, limits, &file) {
        Ok(parts) => parts?,
        Err(d) => return Err(vec![d]),
    };
    // The child deserialized the same JSON into the model, so this cannot fail unless the two
    // binaries differ.
    let project: Project = serde_json::from_value(parts.json)
        .map_err(|e| vec![crashed(&file, &format!("the evaluated project does not read back: {e}"))])?;
    Ok(Loaded { project, diagnostics: parts.diagnostics })
}

/// The child's report, or the finding for the way it ended without one.
fn judge(out: &Output, limits: &EvalLimits, file: &Path) -> Result<Result<Parts, Vec<Diagnostic>>, Diagnostic> {
    let stderr = out.stderr_str();
    if out.timed_out {
        return Err(exceeded(Code::EvalTimeout, file, format!("time limit of {}", duration(limits.timeout)), env_vars::GALLEY_EVAL_TIMEOUT_MS));
    }
    let memory = || exceeded(Code::EvalMemory, file, format!("memory limit of {} MiB", limits.memory_bytes >> 20), env_vars::GALLEY_EVAL_MEMORY_MB);
    if out.stdout_overflowed || stderr.contains("memory allocation of") || out.signal == Some(libc::SIGKILL) {
        // SIGKILL without the timeout is the kernel's out-of-memory killer.
        return Err(memory());
    }
    if stderr.contains("has overflowed its stack") || matches!(out.signal, Some(libc::SIGSEGV | libc::SIGBUS)) {
        return Err(exceeded(Code::EvalStack, file, format!("stack limit of {} MiB (recursion too deep)", limits.stack_bytes >> 20), env_vars::GALLEY_EVAL_STACK_MB));
    }
    if !out.success() {
        let status = match (out.code, out.signal) {
            (Some(c), _) => format!("exit status {c}"),
            (None, Some(s)) => format!("signal {s}"),
            (None, None) => "no status".to_owned(),
        };
        return Err(crashed(file, &format!("{status}: {}", crate::exec::tail(&stderr, 5))));
    }
    wire::decode(&out.stdout).map_err(|e| crashed(file, &e))
}

fn exceeded(code: Code, file: &Path, what: String, setting: &str) -> Diagnostic {
    Diagnostic::new(code, format!("evaluating {} exceeded its {what}", file.display())).help(format!(
        "look for recursion without a base case or a value that grows without end; if the config really needs more, raise {setting}"
    ))
}

fn crashed(file: &Path, why: &str) -> Diagnostic {
    Diagnostic::new(Code::EvalCrashed, format!("the evaluator of {} stopped without a result: {why}", file.display()))
}

/// `10 s`, or `1500 ms` when not whole seconds.
fn duration(d: Duration) -> String {
    match d.as_millis() {
        ms if ms % 1000 == 0 => format!("{} s", ms / 1000),
        ms => format!("{ms} ms"),
    }
}

/// Child side: the report of evaluating the project (`text` as galley.ncl's contents when given).
pub fn child_report(env: &Env, text: Option<&str>) -> String {
    wire::encode(super::evaluate_and_lint(env, text).map(|(l, json)| Parts { json, diagnostics: l.diagnostics }))
}

/// Child side: cap this process's memory at `memory_bytes` (and core dumps at nothing), then run
/// `f` on a thread with a `stack_bytes` stack. The stack is part of the memory limit.
pub fn confine<T: Send>(memory_bytes: u64, stack_bytes: u64, f: impl FnOnce() -> T + Send) -> Result<T, String> {
    set_limit(libc::RLIMIT_CORE, 0)?;
    set_limit(libc::RLIMIT_DATA, memory_bytes)?;
    let stack = usize::try_from(stack_bytes).map_err(|_| "the stack limit is too large".to_owned())?;
    std::thread::scope(|scope| {
        let worker = std::thread::Builder::new()
            .name("evaluate".into())
            .stack_size(stack)
            .spawn_scoped(scope, f)
            .map_err(|e| format!("cannot start the evaluating thread with a {} MiB stack: {e}", stack_bytes >> 20))?;
        worker.join().map_err(|payload| std::panic::resume_unwind(payload))
    })
}

fn set_limit(resource: libc::__rlimit_resource_t, bytes: u64) -> Result<(), String> {
    let limit = libc::rlimit { rlim_cur: bytes, rlim_max: bytes };
    // SAFETY: setrlimit reads the struct it is given and nothing else.
    match unsafe { libc::setrlimit(resource, &limit) } {
        0 => Ok(()),
        _ => Err(format!("cannot set the evaluator's limits: {}", std::io::Error::last_os_error())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::Recorder;
    use std::path::PathBuf;

    fn env() -> Env {
        let mut env = Env::new(PathBuf::from("/p"), PathBuf::from("/h"));
        env.eval = EvalLimits { exe: "galley".into(), timeout: Duration::from_millis(1500), memory_bytes: 512 << 20, stack_bytes: 64 << 20 };
        env
    }

    fn outcome(out: Output) -> Diagnostic {
        let r = Recorder::default();
        r.answer("galley", out);
        let mut d = load(&env(), &r, None).unwrap_err();
        assert_eq!(d.len(), 1);
        d.remove(0)
    }

    #[test]
    fn the_child_gets_the_limits() {
        let r = Recorder::default();
        let _ = load(&env(), &r, Some("{}"));
        let calls = r.calls.lock().unwrap();
        assert_eq!(calls[0].display(), "galley -C /p __load --memory-bytes 536870912 --stack-bytes 67108864 --stdin");
        assert_eq!((calls[0].timeout, calls[0].stdout_limit), (Some(Duration::from_millis(1500)), Some(512 << 20)));
    }

    #[test]
    fn each_way_of_ending_without_a_report_is_its_own_finding() {
        let d = outcome(Output { timed_out: true, signal: Some(libc::SIGKILL), ..Output::default() });
        assert_eq!((d.code, d.message.as_str()), (Code::EvalTimeout, "evaluating /p/galley.ncl exceeded its time limit of 1500 ms"));
        assert!(d.help.unwrap().contains("GALLEY_EVAL_TIMEOUT_MS"));
        let d = outcome(Output { signal: Some(libc::SIGABRT), stderr: b"memory allocation of 8 bytes failed".to_vec(), ..Output::default() });
        assert_eq!((d.code, d.message.as_str()), (Code::EvalMemory, "evaluating /p/galley.ncl exceeded its memory limit of 512 MiB"));
        let d = outcome(Output { code: Some(0), stdout_overflowed: true, ..Output::default() });
        assert_eq!(d.code, Code::EvalMemory);
        let d = outcome(Output { signal: Some(libc::SIGABRT), stderr: b"thread 'evaluate' has overflowed its stack".to_vec(), ..Output::default() });
        assert_eq!((d.code, d.message.as_str()), (Code::EvalStack, "evaluating /p/galley.ncl exceeded its stack limit of 64 MiB (recursion too deep)"));
        let d = outcome(Output { code: Some(70), stderr: b"this is a bug in galley: boom".to_vec(), ..Output::default() });
        assert_eq!(d.code, Code::EvalCrashed);
        assert!(d.message.contains("exit status 70: this is a bug in galley: boom"), "{}", d.message);
        let d = outcome(Output { code: Some(0), stdout: b"not json".to_vec(), ..Output::default() });
        assert!(d.code == Code::EvalCrashed && d.message.contains("unreadable report"), "{}", d.message);
    }

    #[test]
    fn a_panic_in_the_confined_thread_reaches_the_caller() {
        let caught = std::panic::catch_unwind(|| confine(u64::MAX, 1 << 20, || panic!("boom")));
        assert!(caught.is_err());
    }
}
