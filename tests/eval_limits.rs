//! The bounded evaluator: configs written to exhaust the host (loops, deep recursion, huge
//! values, exponential merges) end as a finding within the time limit, and the galley process
//! tree stays under the memory limit while they run. Peak memory is measured two ways: the sum of
//! VmRSS over galley and its children, sampled from /proc while it runs, and the largest
//! descendant's `ru_maxrss` after it exits.

mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::Sandbox;

const TIME_LIMIT_MS: u64 = 3000;
const MEMORY_LIMIT_MB: u64 = 512;
const STACK_LIMIT_MB: u64 = 64;
/// The time limit of the tests of the memory and stack limits: they meet theirs in about 2 s.
const SPACE_TEST_TIME_LIMIT_MS: u64 = 20_000;
/// What the parent galley, the binary's text and shared libraries add to the evaluator's capped data.
const MEMORY_MARGIN_MB: u64 = 128;
/// Start-up of two processes and killing the child, on a loaded machine.
const TIME_MARGIN: Duration = Duration::from_secs(5);

struct Run {
    code: Option<i32>,
    stderr: String,
    elapsed: Duration,
    /// Largest sum of VmRSS over the process tree, in KiB.
    tree_peak_kib: u64,
    /// Largest `ru_maxrss` of any waited-for descendant, in KiB.
    max_rss_kib: u64,
}

fn galley(dir: &Path, home: &Path, args: &[&str], timeout_ms: u64) -> Run {
    let start = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_galley"))
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GALLEY_HOME", home)
        .env("NO_COLOR", "1")
        .env("GALLEY_EVAL_TIMEOUT_MS", timeout_ms.to_string())
        .env("GALLEY_EVAL_MEMORY_MB", MEMORY_LIMIT_MB.to_string())
        .env("GALLEY_EVAL_STACK_MB", STACK_LIMIT_MB.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("galley starts");
    let stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap_or_default());
    let mut tree_peak_kib = 0;
    let status = loop {
        tree_peak_kib = tree_peak_kib.max(tree_rss_kib(child.id()));
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "galley hangs");
        std::thread::sleep(Duration::from_millis(10));
    };
    let elapsed = start.elapsed();
    // SAFETY: getrusage fills the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) }, 0);
    Run { code: status.code(), stderr: reader.join().unwrap(), elapsed, tree_peak_kib, max_rss_kib: usage.ru_maxrss as u64 }
}

/// VmRSS of `pid` and all its descendants, in KiB.
fn tree_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let own: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    let children = std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
        .flat_map(|c| c.split_whitespace().filter_map(|p| p.parse::<u32>().ok()).collect::<Vec<_>>())
        .map(tree_rss_kib)
        .sum::<u64>();
    own + children
}

/// `galley check` on `config` ends with exit 1 and one of `codes` (naming the limit), in time and
/// under the memory limit.
fn bounded(config: &str, codes: &[&str]) -> Run {
    bounded_within(config, codes, TIME_LIMIT_MS)
}

/// [`bounded`] with a time limit of `timeout_ms`: a long one makes sure the memory limit is the
/// one a config meets, however loaded the machine is.
fn bounded_within(config: &str, codes: &[&str], timeout_ms: u64) -> Run {
    let s = Sandbox::with_config(config);
    let run = galley(s.path(), s.home.path(), &["check"], timeout_ms);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    let code = codes.iter().find(|c| run.stderr.contains(&format!("{c}\n"))).unwrap_or_else(|| panic!("expected one of {codes:?}: {}", run.stderr));
    let limit = match *code {
        "G011" => format!("exceeded its time limit of {} s", timeout_ms / 1000),
        "G012" => format!("exceeded its memory limit of {MEMORY_LIMIT_MB} MiB"),
        _ => format!("exceeded its stack limit of {STACK_LIMIT_MB} MiB (recursion too deep)"),
    };
    assert!(run.stderr.contains(&limit) && run.stderr.contains("galley.ncl"), "{}", run.stderr);
    assert!(!run.stderr.contains("panicked") && !run.stderr.contains("bug in galley"), "{}", run.stderr);
    let deadline = Duration::from_millis(timeout_ms) + TIME_MARGIN;
    assert!(run.elapsed < deadline, "took {:?}, limit {deadline:?}", run.elapsed);
    eprintln!("{code} after {:?}; peak RSS: tree {} KiB, largest process {} KiB", run.elapsed, run.tree_peak_kib, run.max_rss_kib);
    let cap = (MEMORY_LIMIT_MB + MEMORY_MARGIN_MB) * 1024;
    assert!(run.tree_peak_kib < cap, "process tree peaked at {} KiB, cap {cap} KiB", run.tree_peak_kib);
    assert!(run.max_rss_kib < cap, "a galley process peaked at {} KiB, cap {cap} KiB", run.max_rss_kib);
    run
}

#[test]
fn a_config_that_recurses_forever_cannot_exhaust_the_hosts_memory() {
    // The three-line config of issue 15 that drove `galley check` to 17-20 GB.
    let run = bounded("let rec f = fun x => f (x + 1) in\nf 0\n", &["G011", "G012"]);
    assert!(run.stderr.contains("help: look for recursion without a base case"), "{}", run.stderr);
}

#[test]
fn a_recursion_a_hundred_million_calls_deep_is_stopped_at_a_limit() {
    bounded("let rec deep = fun n => if n == 0 then 0 else 1 + deep (n - 1) in\ndeep 100000000\n", &["G011", "G012"]);
}

#[test]
fn nesting_that_overflows_the_stack_is_a_finding_not_a_crash() {
    let depth = 200_000;
    let run = bounded_within(&format!("{}{}\n", "[".repeat(depth), "]".repeat(depth)), &["G013"], SPACE_TEST_TIME_LIMIT_MS);
    assert!(run.stderr.contains("GALLEY_EVAL_STACK_MB"), "{}", run.stderr);
}

#[test]
fn a_list_of_a_billion_elements_cannot_exhaust_the_hosts_memory() {
    let run = bounded_within("std.array.generate (fun i => i) 1000000000\n", &["G012"], SPACE_TEST_TIME_LIMIT_MS);
    assert!(run.stderr.contains("GALLEY_EVAL_MEMORY_MB"), "{}", run.stderr);
}

#[test]
fn a_string_doubled_forty_times_cannot_exhaust_the_hosts_memory() {
    bounded_within("std.array.fold_left (fun acc _ => acc ++ acc) \"ab\" (std.array.range 0 40)\n", &["G012"], SPACE_TEST_TIME_LIMIT_MS);
}

#[test]
fn an_exponential_merge_is_stopped_at_the_time_limit() {
    let config = "let rec grow = fun n =>\n  if n == 0 then { a = 1 }\n  else let r = grow (n - 1) in { left = r, right = r } & { left = r, right = r }\nin grow 40\n";
    bounded(config, &["G011", "G012"]);
}

#[test]
fn every_command_that_reads_the_config_evaluates_it_bounded() {
    let s = Sandbox::with_config("let rec f = fun x => f (x + 1) in\nf 0\n");
    for args in [&["show"][..], &["lock"], &["build"], &["plan"], &["apply"], &["verify"], &["export", "kube"]] {
        let run = galley(s.path(), s.home.path(), args, 1000);
        assert!(run.stderr.contains("G011") && run.stderr.contains("exceeded its time limit of 1 s"), "{args:?}: {}", run.stderr);
        assert!(matches!(run.code, Some(1 | 2)), "{args:?} exits {:?}: {}", run.code, run.stderr);
        assert!(run.elapsed < Duration::from_secs(1) + TIME_MARGIN, "{args:?} took {:?}", run.elapsed);
    }
}

#[test]
fn a_clean_config_is_unchanged_by_the_evaluator_boundary() {
    let dir = support::repo().join("examples/web");
    let home = tempfile::tempdir().unwrap();
    let run = galley(&dir, home.path(), &["check"], TIME_LIMIT_MS);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(!run.stderr.contains("G01"), "{}", run.stderr);
}
