//! A custom seccomp profile judged by what it lets run: a default action that runs every system
//! call the profile does not list is no filter at all (G105), and a rule that lets a dangerous
//! call run unconditionally widens the sandbox beyond podman's default profile (G119).

use crate::diagnostic::{Code, Diagnostic};
use crate::lang::SpanIndex;
use crate::model::Sandbox;

pub fn run(name: &str, at: &str, sandbox: &Sandbox, spans: &SpanIndex, out: &mut Vec<Diagnostic>) {
    let Some(judgement) = sandbox.seccomp.judge(&sandbox.capabilities) else { return };
    let field = format!("{at}.seccomp");
    if let Some(action) = &judgement.allows_by_default {
        let how = if action == "SCMP_ACT_TRACE" {
            "hands every system call it does not list to a tracer, and a process in the sandbox can be that tracer"
        } else {
            "lets every system call it does not list run"
        };
        out.push(
            Diagnostic::new(Code::SeccompUnconfined, format!("the custom seccomp profile of sandbox `{name}` {how} (defaultAction {action}): it confines nothing"))
                .at(spans.locate_value(&format!("{field}.defaultAction")))
                .help("make the default SCMP_ACT_ERRNO and list the calls the program needs as SCMP_ACT_ALLOW, or start from galley.seccomp.default"),
        );
        return;
    }
    for (i, calls) in &judgement.dangerous {
        out.push(
            Diagnostic::new(
                Code::SeccompAllowsDangerous,
                format!("the custom seccomp profile of sandbox `{name}` allows {}, which podman's default profile blocks", calls.join(", ")),
            )
            .at(spans.locate_value(&format!("{field}.syscalls[{i}].names")))
            .help("drop these calls from the rule, or allow them only with the capability that needs them (includes = { caps = [...] })"),
        );
    }
}
