//! The admin API's previews (`crate::admin::Previews`) over the server's records and queue. A
//! preview's id is `<owner>+<name>+pr-<N>` (GitHub names hold no `+`). Redeploy and destroy go
//! through the queue, so they never race a job of the same pull request; destroy waits for it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::config::RepoName;
use super::queue::Queue;
use super::store::{self, Record};
use crate::admin::{Preview, PreviewError, Previews};

/// How long a destroy through the API waits for the queue to finish it.
pub const DESTROY_WAIT: Duration = Duration::from_secs(600);

pub struct ServePreviews {
    queue: Arc<Queue>,
    runtime: tokio::runtime::Handle,
}

impl ServePreviews {
    /// Call from inside the server's runtime: jobs are spawned on it.
    pub fn new(queue: Arc<Queue>) -> ServePreviews {
        ServePreviews {
            queue,
            runtime: tokio::runtime::Handle::current(),
        }
    }

    fn find(&self, id: &str) -> Option<(RepoName, Record)> {
        store::all(self.queue.shared().home())
            .into_iter()
            .find(|r| id_of(r) == id)
            .and_then(|r| Some((r.repo_name()?, r)))
    }

    fn enqueue(&self, repo: RepoName, number: u64) {
        let _in = self.runtime.enter();
        self.queue.enqueue(repo, number);
    }

    /// Change the record of `id` with `f`, queue its job, and return the record as written.
    fn requeue(
        &self,
        id: &str,
        f: impl FnOnce(&mut Record),
    ) -> Result<(RepoName, Record), PreviewError> {
        let (repo, r) = self
            .find(id)
            .ok_or_else(|| PreviewError::NotFound(id.to_owned()))?;
        let shared = self.queue.shared();
        {
            let _g = shared.records.lock().unwrap_or_else(|p| p.into_inner());
            let mut r = store::read(shared.home(), &repo, r.number)
                .ok_or_else(|| PreviewError::NotFound(id.to_owned()))?;
            f(&mut r);
            store::write(shared.home(), &r)
                .map_err(|e| PreviewError::Failed(format!("the record was not written: {e}")))?;
        }
        self.enqueue(repo.clone(), r.number);
        let r = store::read(shared.home(), &repo, r.number)
            .ok_or_else(|| PreviewError::NotFound(id.to_owned()))?;
        Ok((repo, r))
    }
}

/// The id the API names a record by.
pub fn id_of(r: &Record) -> String {
    let dir = r.repo_name().map_or_else(|| r.repo.clone(), |n| n.dir_name());
    format!("{dir}+{}", r.instance())
}

/// What the API shows of a record.
pub fn view(r: &Record) -> Preview {
    let status = if !r.open {
        if r.project.is_some() { "closing" } else { "closed" }
    } else if r.failure.is_some() {
        "failed"
    } else if r.project.is_some() && r.applied.as_ref() == Some(&r.head) {
        "running"
    } else {
        "building"
    };
    let running = status == "running";
    Preview {
        id: id_of(r),
        status: status.into(),
        url: r.url.clone().filter(|_| running),
    }
}

impl Previews for ServePreviews {
    fn list(&self) -> Result<Vec<Preview>, PreviewError> {
        Ok(store::all(self.queue.shared().home())
            .iter()
            .map(view)
            .collect())
    }

    fn get(&self, id: &str) -> Result<Option<Preview>, PreviewError> {
        Ok(self.find(id).map(|(_, r)| view(&r)))
    }

    /// Build the pull request's head again, whatever was applied or failed before.
    fn redeploy(&self, id: &str) -> Result<Preview, PreviewError> {
        match self.find(id) {
            Some((_, r)) if !r.open => {
                return Err(PreviewError::Failed(format!(
                    "{id}: the pull request is closed; reopen it to preview it again"
                )));
            }
            _ => {}
        }
        let (_, r) = self.requeue(id, |r| {
            r.applied = None;
            r.failure = None;
            r.delivery = None;
        })?;
        Ok(view(&r))
    }

    /// Mark the preview closed (a later `synchronize` or `reopened` brings it back), then wait
    /// for the queue to destroy its instance, volumes, secrets and worktree.
    fn destroy(&self, id: &str) -> Result<(), PreviewError> {
        let (repo, r) = self.requeue(id, |r| {
            r.open = false;
            r.delivery = None;
        })?;
        let start = Instant::now();
        while self.queue.busy(&repo, r.number) {
            if start.elapsed() > DESTROY_WAIT {
                return Err(PreviewError::Failed(format!(
                    "{id}: still being destroyed after {} s",
                    DESTROY_WAIT.as_secs()
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        match store::read(self.queue.shared().home(), &repo, r.number) {
            Some(r) if r.project.is_some() => Err(PreviewError::Failed(format!(
                "{id}: the destroy failed; the audit log has the reason, and the reconcile loop retries"
            ))),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serve::store::Sha;

    fn record(open: bool, applied: bool, project: bool, failure: bool) -> Record {
        let head = Sha::parse(&"a".repeat(40)).unwrap();
        Record {
            repo: "octo/web".into(),
            number: 7,
            head: head.clone(),
            fork: false,
            open,
            updated: 1,
            applied: applied.then_some(head),
            project: project.then(|| "web".into()),
            url: Some("http://127.0.0.1:20000/".into()),
            failure: failure.then(|| "no".into()),
            delivery: None,
        }
    }

    #[test]
    fn a_record_shows_its_id_its_state_and_a_url_only_while_running() {
        let running = view(&record(true, true, true, false));
        assert_eq!(running.id, "octo+web+pr-7");
        assert_eq!(running.status, "running");
        assert_eq!(running.url.as_deref(), Some("http://127.0.0.1:20000/"));
        assert_eq!(view(&record(true, false, false, false)).status, "building");
        assert_eq!(view(&record(true, false, false, true)).status, "failed");
        assert_eq!(view(&record(false, true, true, false)).status, "closing");
        let closed = view(&record(false, false, false, false));
        assert_eq!((closed.status.as_str(), closed.url), ("closed", None));
    }
}
