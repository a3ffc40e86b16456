//! One queue per pull request: a job per pull request at a time, at most `build_concurrency` at
//! once. A delivery arriving while its pull request's job runs marks it to run again, and the
//! job reads the record afresh each time, so the newest head wins, older heads queued meanwhile
//! are never built, and a close overtakes them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::Semaphore;

use super::config::RepoName;
use super::preview::{self, Outcome, Shared};
use super::audit_after;
use crate::audit_log::{Actor, Event, Outcome as Logged};
use super::status::{Reporter, State, Status};

type Key = (RepoName, u64);

pub struct Queue {
    shared: Arc<Shared>,
    reporter: Reporter,
    /// Pull requests with a job queued or running, and whether it must run again.
    jobs: Mutex<HashMap<Key, bool>>,
    permits: Arc<Semaphore>,
}

impl Queue {
    pub fn new(shared: Arc<Shared>, reporter: Reporter) -> Arc<Queue> {
        let permits = Arc::new(Semaphore::new(shared.config.build_concurrency));
        Arc::new(Queue {
            shared,
            reporter,
            jobs: Mutex::new(HashMap::new()),
            permits,
        })
    }

    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    pub fn reporter(&self) -> &Reporter {
        &self.reporter
    }

    /// Whether no job is queued or running.
    pub fn idle(&self) -> bool {
        self.jobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty()
    }

    /// Make sure a job converges `repo#number` after this call.
    pub fn enqueue(self: &Arc<Self>, repo: RepoName, number: u64) {
        let key = (repo, number);
        {
            let mut jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(again) = jobs.get_mut(&key) {
                *again = true;
                return;
            }
            jobs.insert(key.clone(), false);
        }
        let q = self.clone();
        tokio::spawn(async move {
            loop {
                let permit = q
                    .permits
                    .clone()
                    .acquire_owned()
                    .await
                    .expect("the semaphore is never closed");
                let (shared, (repo, number)) = (q.shared.clone(), key.clone());
                let outcome =
                    tokio::task::spawn_blocking(move || preview::converge(&shared, &repo, number))
                        .await
                        .unwrap_or_else(|e| Outcome::Failed {
                            sha: fallback_sha(&q.shared, &key),
                            reason: format!("the preview job panicked: {e}"),
                        });
                drop(permit);
                q.report(&key, outcome);
                let mut jobs = q.jobs.lock().unwrap_or_else(|p| p.into_inner());
                match jobs.get_mut(&key) {
                    Some(again) if *again => *again = false,
                    _ => {
                        jobs.remove(&key);
                        break;
                    }
                }
            }
        });
    }

    /// Whether a job for `repo#number` is queued or running.
    pub fn busy(&self, repo: &RepoName, number: u64) -> bool {
        self.jobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(&(repo.clone(), number))
    }

    /// Log what a job did, in the name of the delivery that asked for it (`serve:queue` when
    /// the admin API or a restart did). After the fact: a failure to log is reported on stderr.
    fn log(&self, (repo, number): &Key, action: &str, outcome: Logged, reason: String) {
        let delivery = super::store::read(self.shared.home(), repo, *number).and_then(|r| r.delivery);
        let actor = delivery.map_or_else(|| Actor::Serve("queue".into()), Actor::Github);
        let target = format!("{repo}#{number}");
        let event = Event::new(actor, action, target, outcome).reason(reason);
        audit_after(&self.shared.log, event);
    }

    fn report(&self, key: &Key, outcome: Outcome) {
        let repo = &key.0;
        match outcome {
            Outcome::Serving { sha, url, notes } => {
                let mut what = format!("{} at {}", sha.as_str(), url.as_deref().unwrap_or("(no URL)"));
                if !notes.is_empty() {
                    what = format!("{what}; {}", notes.join("; "));
                }
                self.log(key, "preview.apply", Logged::Ok, what);
                let description = if notes.iter().any(|n| n.contains("fork")) {
                    "preview is up (fork: no secrets, no network)"
                } else {
                    "preview is up"
                };
                self.reporter.send(Status {
                    repo: repo.clone(),
                    sha: sha.as_str().to_owned(),
                    state: State::Success,
                    description: description.into(),
                    target_url: url,
                });
            }
            Outcome::Failed { sha, reason } => {
                let what = format!("{}: {reason}", sha.as_str());
                self.log(key, "preview.apply", Logged::Failed, what);
                self.reporter.send(Status {
                    repo: repo.clone(),
                    sha: sha.as_str().to_owned(),
                    state: State::Failure,
                    description: reason,
                    target_url: None,
                });
            }
            Outcome::Destroyed => {
                let why = "the pull request is closed".into();
                self.log(key, "preview.destroy", Logged::Ok, why);
            }
            Outcome::Superseded => {
                let why = "superseded by a newer head or a close".into();
                self.log(key, "preview.apply", Logged::No, why);
            }
            Outcome::Nothing => {}
        }
    }
}

fn fallback_sha(shared: &Shared, (repo, number): &Key) -> super::store::Sha {
    super::store::read(shared.home(), repo, *number)
        .map(|r| r.head)
        .unwrap_or_else(|| {
            super::store::Sha::parse(&"0".repeat(40)).expect("zeros are a commit id")
        })
}
