//! The server's durable state under `GALLEY_HOME/serve/`: one record per pull request
//! (`previews/<owner+name>/pr-N.json`, written atomically) holding what is wanted (the newest head
//! commit, open or closed) and what was done (the commit applied, the project, the URL). A
//! delivery is acknowledged only after its record is written, so a restart converges from them.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::config::RepoName;

/// A commit id: 40 lower-case hex digits, parsed where it enters (a payload, git's output).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Sha(String);

impl Sha {
    pub fn parse(s: &str) -> Option<Sha> {
        let s = s.trim();
        (s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| Sha(s.to_ascii_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Sha {
    type Error = String;
    fn try_from(s: String) -> Result<Sha, String> {
        Sha::parse(&s).ok_or_else(|| format!("\"{s}\" is not a commit id"))
    }
}

impl From<Sha> for String {
    fn from(s: Sha) -> String {
        s.0
    }
}

/// One pull request's preview: wanted and done.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub repo: String,
    pub number: u64,
    /// The newest head commit a delivery named.
    pub head: Sha,
    /// The head is in another repository (a fork): no secrets, no network.
    pub fork: bool,
    pub open: bool,
    /// Seconds since the epoch of the last delivery for this pull request.
    pub updated: u64,
    /// The commit the preview runs, once applied.
    pub applied: Option<Sha>,
    /// The project name of the applied instance (from the pull request's galley.ncl).
    pub project: Option<String>,
    pub url: Option<String>,
    /// Why the last attempt failed, when it did.
    pub failure: Option<String>,
    /// The delivery that last changed what is wanted; `None` when the server or the admin API
    /// did (the audit log names the actor of each).
    #[serde(default)]
    pub delivery: Option<String>,
}

impl Record {
    pub fn instance(&self) -> String {
        instance_name(self.number)
    }

    pub fn repo_name(&self) -> Option<RepoName> {
        RepoName::parse(&self.repo)
    }

    /// Whether this record has work left: a head not yet tried, or a closed preview still up.
    pub fn pending(&self) -> bool {
        if self.open {
            self.applied.as_ref() != Some(&self.head) && self.failure.is_none()
        } else {
            self.project.is_some()
        }
    }
}

pub fn instance_name(number: u64) -> String {
    format!("pr-{number}")
}

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `GALLEY_HOME/serve`.
pub fn root(home: &Path) -> PathBuf {
    home.join("serve")
}

fn path(home: &Path, repo: &RepoName, number: u64) -> PathBuf {
    root(home)
        .join("previews")
        .join(repo.dir_name())
        .join(format!("{}.json", instance_name(number)))
}

pub fn read(home: &Path, repo: &RepoName, number: u64) -> Option<Record> {
    let text = std::fs::read_to_string(path(home, repo, number)).ok()?;
    serde_json::from_str(&text).ok()
}

pub fn write(home: &Path, record: &Record) -> std::io::Result<()> {
    let repo = record
        .repo_name()
        .ok_or_else(|| std::io::Error::other(format!("bad repository name {}", record.repo)))?;
    let p = path(home, &repo, record.number);
    fs_err::create_dir_all(p.parent().expect("under previews/"))?;
    let text = serde_json::to_string_pretty(record).expect("a record serializes") + "\n";
    crate::fsutil::write_atomic(&p, text.as_bytes())
}

pub fn remove(home: &Path, repo: &RepoName, number: u64) {
    let _ = std::fs::remove_file(path(home, repo, number));
}

/// Every record, sorted by repository and number.
pub fn all(home: &Path) -> Vec<Record> {
    let mut out = Vec::new();
    let Ok(repos) = std::fs::read_dir(root(home).join("previews")) else {
        return out;
    };
    for repo in repos.flatten() {
        let Ok(files) = std::fs::read_dir(repo.path()) else {
            continue;
        };
        for f in files.flatten() {
            let Ok(text) = std::fs::read_to_string(f.path()) else {
                continue;
            };
            if let Ok(r) = serde_json::from_str::<Record>(&text) {
                out.push(r);
            }
        }
    }
    out.sort_by(|a, b| (&a.repo, a.number).cmp(&(&b.repo, b.number)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_a_bad_commit_id_does_not_parse() {
        let home = tempfile::tempdir().unwrap();
        let r = Record {
            repo: "o/r".into(),
            number: 7,
            head: Sha::parse(&"a".repeat(40)).unwrap(),
            fork: false,
            open: true,
            updated: 1,
            applied: None,
            project: None,
            url: None,
            failure: None,
            delivery: None,
        };
        write(home.path(), &r).unwrap();
        assert_eq!(
            read(home.path(), &RepoName::parse("o/r").unwrap(), 7),
            Some(r.clone())
        );
        assert_eq!(all(home.path()), vec![r]);
        assert!(Sha::parse("abc").is_none());
        assert!(Sha::parse(&"g".repeat(40)).is_none());
    }
}
