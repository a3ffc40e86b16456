//! `galley verify` against real podman containers: a sandbox started the way the runner starts
//! it passes; each single violation, started by hand under the sandbox's labels, fails exactly
//! the check named after it; processes inside cannot talk a failing check into passing.

mod support {
    pub mod verify;
}

use std::collections::BTreeSet;

use support::verify::*;

fn set(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

#[test]
fn a_sandbox_started_like_the_runner_passes_every_check() {
    if !runtime_available() {
        return;
    }
    let f = Fixture::new();
    let launch = f.launch();
    f.start(&launch);
    let (code, report) = f.verify_json(&[]);
    assert_eq!(failing(&report), BTreeSet::new(), "{report:#}");
    assert_eq!(code, 0, "{report:#}");
    let checks = report["sandboxes"][0]["checks"].as_array().unwrap();
    assert!(checks.len() >= 20, "{report:#}");
    assert!(checks.iter().all(|c| c["passed"] == true));

    let text = f.galley(&["verify", SANDBOX]);
    let stdout = String::from_utf8_lossy(&text.stdout);
    eprintln!("{stdout}");
    assert_eq!(text.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("PASS  5.4 privileged"), "{stdout}");
}
