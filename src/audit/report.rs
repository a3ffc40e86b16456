//! Rendering an audit: a pass/fail table and the findings for people, JSON for programs, SARIF
//! 2.1.0 for code-scanning tools.

use std::fmt::Write as _;

use serde::Serialize;
use serde_json::json;

use super::*;

/// The audit of an instance (or of one image).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub project: String,
    pub instance: String,
    pub sandboxes: Vec<SandboxReport>,
}

impl Report {
    pub fn findings(&self) -> impl Iterator<Item = &Finding> {
        self.sandboxes.iter().flat_map(|s| &s.findings)
    }

    pub fn errors(&self) -> usize {
        self.sandboxes.iter().map(SandboxReport::errors).sum()
    }

    pub fn warnings(&self) -> usize {
        self.findings().filter(|f| f.severity == Severity::Warning).count()
    }
}

/// The pass/fail table and every finding, for a terminal.
pub fn text(report: &Report, color: bool) -> String {
    let paint = |ok: bool| match (ok, color) {
        (true, true) => "\x1b[32mPASS\x1b[0m",
        (false, true) => "\x1b[31mFAIL\x1b[0m",
        (true, false) => "PASS",
        (false, false) => "FAIL",
    };
    let width = CHECKS.iter().map(|c| c.id.len()).max().unwrap_or(0);
    let mut out = String::new();
    for s in &report.sandboxes {
        let name = if s.sandbox.is_empty() { String::new() } else { format!("{} ", s.sandbox) };
        let _ = writeln!(out, "{name}({})", s.container);
        for (id, ok) in &s.checks {
            let warned = s.findings.iter().any(|f| f.check == *id && f.severity == Severity::Warning);
            let status = match () {
                _ if s.not_run.contains(id) => "NOT RUN",
                _ if *ok && warned && color => "\x1b[33mWARN\x1b[0m",
                _ if *ok && warned => "WARN",
                _ => paint(*ok),
            };
            let _ = writeln!(out, "  {status}  {id:<width$}  {}", check(id).title);
        }
        let _ = writeln!(out);
    }
    for f in report.findings() {
        let level = match f.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let who = if f.sandbox.is_empty() { f.container.clone() } else { format!("{} ({})", f.sandbox, f.container) };
        let _ = writeln!(out, "{level}[{}] {who}: {}", f.check, f.message);
        let _ = writeln!(out, "  expected: {}", f.expected);
        let _ = writeln!(out, "  observed: {}", f.observed);
        let _ = writeln!(out, "  help: {}", f.fix);
    }
    let checks: usize = report.sandboxes.iter().map(|s| s.checks.len()).sum();
    let failed: usize = report.sandboxes.iter().map(|s| s.checks.iter().filter(|(_, ok)| !ok).count()).sum();
    let _ = writeln!(
        out,
        "{} sandbox(es): {} checks passed, {failed} failed; {} error(s), {} warning(s)",
        report.sandboxes.len(),
        checks - failed,
        report.errors(),
        report.warnings()
    );
    out
}

/// The report as JSON.
pub fn json(report: &Report) -> serde_json::Value {
    let sandboxes: Vec<_> = report
        .sandboxes
        .iter()
        .map(|s| {
            let checks: Vec<_> =
                s.checks.iter().map(|(id, ok)| json!({ "id": id, "title": check(id).title, "passed": ok, "run": !s.not_run.contains(id) })).collect();
            json!({ "sandbox": s.sandbox, "container": s.container, "passed": s.errors() == 0, "checks": checks, "findings": s.findings })
        })
        .collect();
    json!({
        "project": report.project,
        "instance": report.instance,
        "passed": report.errors() == 0,
        "errors": report.errors(),
        "warnings": report.warnings(),
        "sandboxes": sandboxes,
    })
}

/// The report as a SARIF 2.1.0 log.
pub fn sarif(report: &Report) -> serde_json::Value {
    let rules: Vec<_> = CHECKS
        .iter()
        .map(|c| {
            json!({
                "id": c.id,
                "name": c.id.replace(['.', ' '], "-"),
                "shortDescription": { "text": c.title },
                "help": { "text": c.fix },
                "defaultConfiguration": { "level": "error" },
            })
        })
        .collect();
    let results: Vec<_> = report
        .findings()
        .map(|f| {
            let index = CHECKS.iter().position(|c| c.id == f.check).unwrap_or(0);
            let who = if f.sandbox.is_empty() { f.container.clone() } else { format!("{}/{}", f.sandbox, f.container) };
            json!({
                "ruleId": f.check,
                "ruleIndex": index,
                "level": match f.severity { Severity::Error => "error", Severity::Warning => "warning" },
                "message": { "text": format!("{}: {} (expected {}, observed {})", who, f.message, f.expected, f.observed) },
                "locations": [{ "logicalLocations": [{ "name": f.container, "fullyQualifiedName": who, "kind": "resource" }] }],
                "properties": { "sandbox": f.sandbox, "container": f.container, "expected": f.expected, "observed": f.observed, "fix": f.fix },
            })
        })
        .collect();
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": { "driver": {
                "name": "galley",
                "version": env!("CARGO_PKG_VERSION"),
                "informationUri": env!("CARGO_PKG_REPOSITORY"),
                "rules": rules,
            }},
            "properties": { "project": report.project, "instance": report.instance },
            "results": results,
        }],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Report {
        let mut sink = Sink::new("app", "galley-p-default-app");
        sink.ran(PRIVILEGED);
        sink.fail(CAPABILITIES, "EffectiveCaps differ", "none", "CAP_SYS_ADMIN");
        Report { project: "p".into(), instance: "default".into(), sandboxes: vec![SandboxReport::from_sink(sink)] }
    }

    #[test]
    fn text_shows_a_table_and_every_finding() {
        let t = text(&sample(), false);
        assert!(t.contains("PASS  5.4 privileged"), "{t}");
        assert!(t.contains("FAIL  5.3 capabilities"), "{t}");
        assert!(t.contains("error[5.3 capabilities] app (galley-p-default-app): EffectiveCaps differ"), "{t}");
        assert!(t.contains("  help: "), "{t}");
    }

    #[test]
    fn a_check_with_only_a_warning_is_shown_as_warn_and_passes() {
        let mut sink = Sink::new("app", "galley-p-default-app");
        sink.warn(IMAGE, "no galley.lock pins the image", "a pinned digest", "sha256:1");
        let report = Report { project: "p".into(), instance: "default".into(), sandboxes: vec![SandboxReport::from_sink(sink)] };
        assert!(text(&report, false).contains("WARN  galley image digest"), "{}", text(&report, false));
        assert_eq!((report.errors(), report.warnings()), (0, 1));
    }

    #[test]
    fn a_check_not_run_is_shown_as_such_and_fails() {
        let mut sink = Sink::new("app", "galley-p-default-app");
        sink.ran(PRIVILEGED);
        sink.not_run(SECRETS, "no delivered value of secret TOKEN to search for");
        let report = Report { project: "p".into(), instance: "default".into(), sandboxes: vec![SandboxReport::from_sink(sink)] };
        let t = text(&report, false);
        assert!(t.contains("NOT RUN  galley secret exposure"), "{t}");
        assert!(t.contains("error[galley secret exposure] app (galley-p-default-app): check not run: no delivered value"), "{t}");
        let j = json(&report);
        assert_eq!((j["errors"].as_u64(), j["passed"].as_bool()), (Some(1), Some(false)));
        let secrets = &j["sandboxes"][0]["checks"][1];
        assert_eq!((secrets["id"].as_str(), secrets["passed"].as_bool(), secrets["run"].as_bool()), (Some(SECRETS), Some(false), Some(false)));
    }

    #[test]
    fn sarif_has_rules_and_results() {
        let s = sarif(&sample());
        assert_eq!(s["version"], "2.1.0");
        assert!(s["$schema"].as_str().unwrap().contains("sarif-2.1.0"));
        let rules = s["runs"][0]["tool"]["driver"]["rules"].as_array().unwrap();
        assert_eq!(rules.len(), CHECKS.len());
        let r = &s["runs"][0]["results"][0];
        assert_eq!(r["ruleId"], CAPABILITIES);
        assert_eq!(r["level"], "error");
        assert_eq!(rules[r["ruleIndex"].as_u64().unwrap() as usize]["id"], CAPABILITIES);
        assert!(r["message"]["text"].as_str().unwrap().contains("CAP_SYS_ADMIN"));
    }

    #[test]
    fn json_counts_errors() {
        let j = json(&sample());
        assert_eq!(j["errors"], 1);
        assert_eq!(j["passed"], false);
        assert_eq!(j["sandboxes"][0]["checks"][0]["id"], PRIVILEGED);
    }
}
