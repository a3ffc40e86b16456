//! Large groups of piecewise definitions (`sandboxes.sN = …` once per sandbox), which galley
//! evaluates and typechecks in linear time instead of Nickel's quadratic one: the project is the
//! one the same sandboxes make written as one record, and every finding is the one Nickel gives
//! below the size where galley steps in, at the same place, quoting the file as written.

mod support;

use serde_json::Value;
use support::{Sandbox, stderr, stdout};

/// Groups of at least this many definitions take galley's linear path (`LARGE_GROUP`).
const LARGE: usize = 64;

/// A config with `n` sandboxes, one piecewise definition each, plus `extra` lines after them.
fn piecewise(n: usize, extra: &str) -> String {
    let mut text = String::from("let base = \"box\" in\n{\n  name = \"many\",\n  images.box = {},\n");
    for i in 1..=n {
        text.push_str(&format!("  sandboxes.s{i} = {{ image = base, command = [\"/bin/sleep\", \"{i}\"] }},\n"));
    }
    text.push_str(extra);
    text.push_str("}\n");
    text
}

fn show(project: &Sandbox) -> Value {
    let out = project.galley(&["show", "--format", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("bad JSON ({e}): {}", stdout(&out)))
}

fn diagnostics(project: &Sandbox) -> Vec<Value> {
    let out = project.galley(&["check", "--format", "json"]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("bad JSON ({e}): {}", stdout(&out)));
    report["diagnostics"].as_array().unwrap().clone()
}

#[test]
fn a_large_piecewise_group_is_the_project_the_same_sandboxes_make_as_one_record() {
    // Definitions split over several lines, nested paths, a forced value, a reference to another
    // sandbox, and a field between the pieces: each a case the join must not change.
    let extra = "\
  sandboxes.s2.env.MODE = \"split\",
  sandboxes.s2.env.LEVEL = \"3\",
  registries = {},
  sandboxes.s3.user | force = \"1000\",
  sandboxes.s3.user = \"2000\",
  sandboxes.extra.image = sandboxes.s1.image,
  sandboxes.extra.command = [\"/bin/true\"],
";
    let pieces = Sandbox::with_config(&piecewise(100, extra));
    let mut record = String::from("let base = \"box\" in\n{\n  name = \"many\",\n  images = { box = {} },\n  registries = {},\n  sandboxes = {\n");
    for i in 1..=100 {
        let more = match i {
            2 => ", env = { MODE = \"split\", LEVEL = \"3\" }",
            3 => ", user = \"1000\"",
            _ => "",
        };
        record.push_str(&format!("    s{i} = {{ image = base, command = [\"/bin/sleep\", \"{i}\"]{more} }},\n"));
    }
    record.push_str("    extra = { image = \"box\", command = [\"/bin/true\"] },\n  },\n}\n");
    let nested = Sandbox::with_config(&record);
    let (joined, written) = (show(&pieces), show(&nested));
    assert_eq!(joined["sandboxes"].as_object().unwrap().len(), 101);
    assert_eq!(joined["sandboxes"]["s3"]["user"], "1000", "the forced value wins");
    assert_eq!(joined, written);
}

/// The findings for `galley.ncl` with `n` sandboxes and `bad` as sandbox s10's definition.
fn findings_with(n: usize, bad: &str) -> (Vec<Value>, String) {
    let text = piecewise(n, "").replace(
        "  sandboxes.s10 = { image = base, command = [\"/bin/sleep\", \"10\"] },\n",
        &format!("  {bad},\n"),
    );
    let project = Sandbox::with_config(&text);
    (diagnostics(&project), stderr(&project.galley(&["check"])))
}

#[test]
fn findings_in_a_large_piecewise_group_are_nickels_own_at_the_same_place() {
    let cases = [
        // A type error: found by the typechecker, which reads the group as separate fields.
        "sandboxes.s10 = { image = base, user = (1 : String) }",
        // A name that is not defined anywhere.
        "sandboxes.s10 = { image = missing_name }",
        // A contract error, found while evaluating the joined record.
        "sandboxes.s10 = { image = base, network = 'everywhere }",
        // Two values for one field: the merge the join keeps.
        "sandboxes.s10.image = base, sandboxes.s10.image = \"other\"",
    ];
    for bad in cases {
        let (small, small_text) = findings_with(LARGE - 1, bad);
        let (large, large_text) = findings_with(LARGE + 36, bad);
        assert!(!small.is_empty(), "{bad}: no finding at all");
        assert_eq!(large, small, "{bad}: the large group's findings differ from Nickel's own");
        assert!(!large_text.contains("sandboxes's"), "{bad}: the rewritten text leaked: {large_text}");
        assert!(large_text.contains("sandboxes.s10"), "{bad}: the file as written is quoted: {large_text}");
        assert_eq!(large_text.lines().filter(|l| l.contains("galley.ncl:")).count(), small_text.lines().filter(|l| l.contains("galley.ncl:")).count());
    }
}
