//! The pusher against a scripted remote: batching, retries, divergence, the last push.

use super::*;
use crate::ledger::entry::{Draft, GENESIS, seal};
use crate::ledger::sign::Signer;
use std::collections::VecDeque;

/// A remote holding a published tip, answering from a script first.
#[derive(Default)]
struct Scripted {
    published: Mutex<Option<String>>,
    script: Mutex<VecDeque<PushError>>,
    /// Every tip asked for, in order.
    calls: Mutex<Vec<String>>,
}

#[async_trait::async_trait]
impl LedgerRemote for Scripted {
    fn describe(&self) -> String {
        "scripted".to_owned()
    }

    async fn push(&self, tip: &str, _deadline: Instant) -> Result<Pushed, PushError> {
        self.calls.lock().unwrap().push(tip.to_owned());
        let next = self.script.lock().unwrap().pop_front();
        match next {
            Some(e) => Err(e),
            None => {
                let mut published = self.published.lock().unwrap();
                if published.as_deref() == Some(tip) {
                    Ok(Pushed::UpToDate)
                } else {
                    let from = published.replace(tip.to_owned());
                    Ok(Pushed::FastForward { from })
                }
            }
        }
    }

    async fn fetch(&self, _deadline: Instant) -> Result<Option<String>, PushError> {
        Ok(self.published.lock().unwrap().clone())
    }
}

impl Scripted {
    fn published(&self) -> Option<String> {
        self.published.lock().unwrap().clone()
    }

    fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }

    /// Waits until `check` holds.
    async fn until(&self, check: impl Fn(&Self) -> bool) {
        eventually(|| check(self)).await;
    }
}

/// Waits until `check` holds, looking every few milliseconds.
async fn eventually(check: impl Fn() -> bool) {
    let wait = async {
        while !check() {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), wait)
        .await
        .expect("the pusher got there");
}

struct Setup {
    _dir: tempfile::TempDir,
    repo: Arc<Mutex<LedgerRepo>>,
    status: Arc<LedgerStatus>,
    remote: Arc<Scripted>,
    finish: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    seq: i64,
    prev: String,
}

fn start() -> Setup {
    start_gated(None)
}

fn start_gated(gate: Option<Arc<dyn PushGate>>) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    git2::Repository::init_bare(dir.path()).unwrap();
    let mut repo = LedgerRepo::open(
        dir.path(),
        super::super::DEFAULT_BRANCH,
        Signer::generate("cs@test"),
    )
    .unwrap();
    repo.ensure_started().unwrap();
    let repo = Arc::new(Mutex::new(repo));
    let status = Arc::<LedgerStatus>::default();
    let remote = Arc::new(Scripted::default());
    let pusher = Pusher {
        repo: repo.clone(),
        status: status.clone(),
        remote: remote.clone(),
        settings: PushSettings {
            timeout: Duration::from_secs(5),
            min_backoff: Duration::from_millis(2),
            max_backoff: Duration::from_millis(20),
        },
        gate,
    };
    pusher.install();
    let (finish, finishing) = watch::channel(false);
    let task = tokio::spawn(pusher.run(finishing));
    Setup {
        _dir: dir,
        repo,
        status,
        remote,
        finish,
        task,
        seq: 0,
        prev: GENESIS.to_owned(),
    }
}

impl Setup {
    /// One ledger commit (not announced to the pusher).
    fn commit(&mut self) -> String {
        self.seq += 1;
        let draft = Draft {
            request_id: "cr_01JD00000000000000000000AA",
            event: "expired",
            actor: "countersign",
            fields: serde_json::Map::new(),
        };
        let e = seal(self.seq, 1_763_683_200_000 + self.seq, draft, &self.prev);
        self.prev = e.hash.clone();
        self.repo.lock().unwrap().append(&[e]).unwrap()
    }

    fn tip(&self) -> String {
        self.repo.lock().unwrap().tip().unwrap()
    }

    fn push(&self) -> &PushStatus {
        self.status.push.get().unwrap()
    }

    fn attempts(&self, outcome: &str) -> u64 {
        self.push()
            .attempts()
            .find(|(o, _)| *o == outcome)
            .unwrap()
            .1
    }
}

#[tokio::test]
async fn pushes_at_start_then_once_per_change_batching_commits() {
    let mut s = start();
    // At start-up: the branch as it is.
    let started = s.tip();
    s.remote
        .until(|r| r.published().as_deref() == Some(started.as_str()))
        .await;

    // Three commits, one announcement: one push, of the newest.
    s.commit();
    s.commit();
    let third = s.commit();
    s.status.committed.notify_one();
    s.remote
        .until(|r| r.published().as_deref() == Some(third.as_str()))
        .await;
    assert_eq!(s.remote.calls(), [started.clone(), third.clone()]);

    // An announcement without a new commit sends nothing; the next commit is pushed alone.
    s.status.committed.notify_one();
    let fourth = s.commit();
    s.status.committed.notify_one();
    s.remote
        .until(|r| r.published().as_deref() == Some(fourth.as_str()))
        .await;
    assert_eq!(s.remote.calls(), [started, third, fourth.clone()]);
    eventually(|| s.push().pushed_seq.load(Ordering::Relaxed) == 4).await;
    assert_eq!(s.attempts("ok"), 3);
    let json = serde_json::to_value(s.push().readiness(4)).unwrap();
    assert_eq!(json["ok"], true, "{json}");
    assert_eq!(json["pushed_seq"], 4, "{json}");
    assert_eq!(json["lag_entries"], 0, "{json}");

    // At the end, what is left is pushed once more before the task returns.
    let fifth = s.commit();
    s.finish.send(true).unwrap();
    s.task.await.unwrap();
    assert_eq!(s.remote.published().as_deref(), Some(fifth.as_str()));
}

#[tokio::test]
async fn failures_are_retried_with_backoff_and_a_divergence_is_reported() {
    let mut s = start();
    let started = s.tip();
    s.remote
        .until(|r| r.published().as_deref() == Some(started.as_str()))
        .await;

    // Two 502s, then the push lands without another commit or announcement.
    s.remote
        .script
        .lock()
        .unwrap()
        .extend([502, 503].map(|c| PushError::Failed(format!("answered {c}"))));
    let tip = s.commit();
    s.status.committed.notify_one();
    s.remote
        .until(|r| r.published().as_deref() == Some(tip.as_str()))
        .await;
    eventually(|| s.push().error().is_none()).await;
    assert_eq!(s.attempts("error"), 2);

    // A divergence: reported (readiness, counters), local commits go on, retried until gone.
    let diverged = PushError::Diverged {
        remote: "f".repeat(40),
        base: Some(tip.clone()),
        foreign: Some(1),
    };
    s.remote
        .script
        .lock()
        .unwrap()
        .extend(std::iter::repeat_n(diverged.clone(), 3));
    s.commit();
    s.status.committed.notify_one();
    eventually(|| s.push().error().is_some() && s.attempts("diverged") >= 1).await;
    let json = serde_json::to_value(s.push().readiness(s.seq)).unwrap();
    assert_eq!(json["ok"], false, "{json}");
    assert_eq!(json["diverged"]["remote_commit"], "f".repeat(40), "{json}");
    assert_eq!(json["diverged"]["base_commit"], tip.as_str(), "{json}");
    assert_eq!(json["pushed_seq"], 1, "{json}");
    assert_eq!(json["lag_entries"], 1, "{json}");
    assert_eq!(json["pending_commits"], 1, "{json}");
    let newest = s.commit();
    s.status.committed.notify_one();
    s.remote
        .until(|r| r.published().as_deref() == Some(newest.as_str()))
        .await;
    eventually(|| s.push().error().is_none()).await;
    assert_eq!(s.attempts("diverged"), 3);
    s.finish.send(true).unwrap();
    s.task.await.unwrap();
}

/// A gate an operator opens and closes (a replica that leads, then does not).
#[derive(Default)]
struct Switch(std::sync::atomic::AtomicBool);

#[async_trait::async_trait]
impl PushGate for Switch {
    async fn may_push(&self) -> Result<(), String> {
        if self.0.load(std::sync::atomic::Ordering::SeqCst) {
            Ok(())
        } else {
            Err("this replica no longer holds the leader lease".into())
        }
    }
}

#[tokio::test]
async fn a_closed_gate_stops_every_push_and_says_why() {
    let gate = Arc::new(Switch::default());
    let mut s = start_gated(Some(gate.clone()));
    s.commit();
    s.status.committed.notify_one();
    eventually(|| {
        s.push().error().is_some_and(|e| {
            e.to_string()
                .contains("not pushed: this replica no longer holds")
        })
    })
    .await;
    assert!(s.remote.calls().is_empty(), "nothing reached the remote");

    // Leading again (a new term), it publishes what is waiting.
    gate.0.store(true, std::sync::atomic::Ordering::SeqCst);
    let tip = s.tip();
    s.remote
        .until(|r| r.published().as_deref() == Some(tip.as_str()))
        .await;
    let _ = s.finish.send(true);
    s.task.await.unwrap();
}
