//! APT itself as the oracle of the APT repository fixture: `apt-get` in a scratch configuration
//! that reads nothing of the host's APT setup, and the parser of its `--simulate` output.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output};

/// A private APT configuration in a temporary folder: its own state, cache, sources, an empty
/// dpkg status, and no trust but the repository's keyring. `APT_CONFIG` points APT at its
/// apt.conf, which also moves `Dir::Etc::Parts` to an empty folder, so no host setting applies.
pub(super) struct AptScratch {
    dir: tempfile::TempDir,
}

impl AptScratch {
    /// A scratch configuration in a new folder under `parent`, for `arch`, whose only source is
    /// `source_line`.
    pub(super) fn new(parent: &Path, arch: &str, source_line: &str) -> AptScratch {
        let dir = tempfile::tempdir_in(parent).unwrap();
        let d = dir.path();
        for sub in ["state/lists/partial", "cache/archives/partial", "etc/apt.conf.d", "etc/sources.list.d", "etc/preferences.d", "etc/trusted.gpg.d", "log"] {
            std::fs::create_dir_all(d.join(sub)).unwrap();
        }
        std::fs::write(d.join("status"), "").unwrap();
        std::fs::write(d.join("etc/sources.list"), format!("{source_line}\n")).unwrap();
        let p = |s: &str| d.join(s).display().to_string();
        let conf = format!(
            "Dir::State \"{state}\";\nDir::State::status \"{status}\";\nDir::Cache \"{cache}\";\nDir::Log \"{log}\";\n\
             Dir::Etc::main \"/dev/null\";\nDir::Etc::Parts \"{parts}\";\nDir::Etc::SourceList \"{list}\";\n\
             Dir::Etc::SourceParts \"{sparts}\";\nDir::Etc::Preferences \"{prefs}\";\nDir::Etc::PreferencesParts \"{pparts}\";\n\
             Dir::Etc::Trusted \"{trusted}\";\nDir::Etc::TrustedParts \"{tparts}\";\n\
             APT::Architecture \"{arch}\";\nAPT::Architectures {{ \"{arch}\"; }};\nAPT::Sandbox::User \"root\";\n\
             APT::Get::Assume-Yes \"true\";\nAPT::Update::Error-Mode \"any\";\nAcquire::Languages \"none\";\nAcquire::Retries \"0\";\n\
             Acquire::http::Proxy \"DIRECT\";\nAcquire::http::Timeout \"20\";\nAcquire::PDiffs \"false\";\n",
            state = p("state"),
            status = p("status"),
            cache = p("cache"),
            log = p("log"),
            parts = p("etc/apt.conf.d"),
            list = p("etc/sources.list"),
            sparts = p("etc/sources.list.d"),
            prefs = p("etc/preferences"),
            pparts = p("etc/preferences.d"),
            trusted = p("etc/trusted.gpg"),
            tparts = p("etc/trusted.gpg.d"),
        );
        std::fs::write(d.join("apt.conf"), conf).unwrap();
        AptScratch { dir }
    }

    pub(super) fn run(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new("apt-get");
        cmd.args(args).env("APT_CONFIG", self.dir.path().join("apt.conf")).env("LC_ALL", "C").env("DEBIAN_FRONTEND", "noninteractive");
        for proxy in ["http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY", "no_proxy", "NO_PROXY"] {
            cmd.env_remove(proxy);
        }
        cmd.output().expect("apt-get runs")
    }

    pub(super) fn update(&self) -> Output {
        self.run(&["update"])
    }
}


/// The `Inst NAME [OLD] (VERSION ORIGIN:SUITE [ARCH])` lines of `apt-get --simulate`.
pub fn parse_inst_lines(text: &str) -> BTreeSet<(String, String, String)> {
    text.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("Inst ")?;
            let name = rest.split_whitespace().next()?;
            let inner = rest.split_once('(')?.1.rsplit_once(')')?.0;
            let version = inner.split_whitespace().next()?;
            let arch = inner.rsplit_once('[')?.1.strip_suffix(']')?;
            Some((name.to_owned(), version.to_owned(), arch.to_owned()))
        })
        .collect()
}
