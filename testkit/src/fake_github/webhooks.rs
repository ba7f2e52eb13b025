//! Webhook deliveries as GitHub makes them: the payload envelope (`repository`, `organization`,
//! `installation`, `sender`), the headers (`X-GitHub-Event`, `X-GitHub-Delivery`, hook ids,
//! `X-Hub-Signature-256` / `X-Hub-Signature` HMACs of the raw body, `User-Agent:
//! GitHub-Hookshot/…`), one delivery worker so deliveries arrive in order, lost deliveries and
//! redeliveries. Also [`model`], a small typed view of the fields countersign reads, which both
//! the real example payloads and the generated ones must parse into.

use super::state::{Delivery, State, UserKind};
use super::{Inner, Shared, lock, shapes};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};

/// A delivery queued for the worker: its index in `State::deliveries` and who waits for it.
pub(super) struct Job {
    pub index: usize,
    pub done: Option<oneshot::Sender<()>>,
}

/// What [`send`] queued: the delivery's index, and a receiver that resolves once it has been
/// attempted (`None` when the delivery was lost or there is no webhook URL).
pub(super) struct Queued {
    pub index: usize,
    pub done: Option<oneshot::Receiver<()>>,
}

impl Queued {
    pub async fn wait(self) -> usize {
        if let Some(rx) = self.done {
            let _ = rx.await;
        }
        self.index
    }
}

/// Records a delivery of `event` about repository `full` by `sender` and queues it (unless it
/// is to be lost). `payload` holds the event's own fields (`action`, `pull_request`…).
pub(super) fn send(
    inner: &Inner,
    s: &mut State,
    event: &str,
    full: &str,
    sender: &str,
    mut payload: Value,
) -> Queued {
    let r = s.repo(full).unwrap();
    payload["repository"] = shapes::repo(s, r);
    for key in ["network_count", "subscribers_count"] {
        payload["repository"].as_object_mut().unwrap().remove(key);
    }
    if s.user_ref(&r.owner).kind == UserKind::Organization {
        payload["organization"] = shapes::org(s, &r.owner);
    }
    let inst = s
        .installations
        .iter()
        .find(|i| i.repos.iter().any(|x| x == full));
    if let Some(inst) = inst {
        let node = format!("MDIzOkludGVncmF0aW9uSW5zdGFsbGF0aW9u{}", inst.id);
        payload["installation"] = json!({"id": inst.id, "node_id": node});
    }
    payload["sender"] = shapes::user(s, sender);
    queue(inner, s, event, payload.to_string(), false)
}

pub(super) fn queue(
    inner: &Inner,
    s: &mut State,
    event: &str,
    body: String,
    redelivery: bool,
) -> Queued {
    let action = serde_json::from_str::<Value>(&body)
        .ok()
        .and_then(|v| v["action"].as_str().map(str::to_owned));
    let lost = !redelivery && s.lose_next_webhooks > 0;
    if lost {
        s.lose_next_webhooks -= 1;
    }
    let no_url = s.webhook_url.is_none();
    s.deliveries.push(Delivery {
        id: uuid(),
        event: event.to_owned(),
        action,
        body,
        status: None,
        lost,
        redelivery,
        error: no_url.then(|| "no webhook URL configured".to_owned()),
    });
    let index = s.deliveries.len() - 1;
    if lost || no_url {
        return Queued { index, done: None };
    }
    let (tx, rx) = oneshot::channel();
    let _ = inner.hooks.send(Job {
        index,
        done: Some(tx),
    });
    Queued {
        index,
        done: Some(rx),
    }
}

/// Delivers queued webhooks one at a time, in order, recording each answer's status.
pub(super) async fn worker(inner: Shared, mut jobs: mpsc::UnboundedReceiver<Job>) {
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .unwrap();
    while let Some(job) = jobs.recv().await {
        let (url, secret, hook_id, app_id, d) = {
            let s = lock(&inner);
            let d = s.deliveries[job.index].clone();
            (
                s.webhook_url.clone(),
                s.webhook_secret.clone(),
                s.hook_id,
                s.app.id,
                d,
            )
        };
        let result = match url {
            None => Err("no webhook URL configured".to_owned()),
            Some(url) => {
                let headers = headers(&d, &secret, hook_id, app_id);
                let mut req = http.post(url).body(d.body.clone());
                for (name, value) in headers {
                    req = req.header(name, value);
                }
                match req.send().await {
                    Ok(resp) => {
                        let status = resp.status().as_u16();
                        let _ = resp.bytes().await;
                        Ok(status)
                    }
                    Err(e) => Err(e.to_string()),
                }
            }
        };
        {
            let mut s = lock(&inner);
            let d = &mut s.deliveries[job.index];
            match result {
                Ok(status) => d.status = Some(status),
                Err(e) => d.error = Some(e),
            }
        }
        if let Some(done) = job.done {
            let _ = done.send(());
        }
    }
}

/// The headers GitHub sends with a delivery of an App's webhook.
pub fn headers(
    d: &Delivery,
    secret: &str,
    hook_id: u64,
    app_id: u64,
) -> Vec<(&'static str, String)> {
    vec![
        ("content-type", "application/json".into()),
        ("user-agent", "GitHub-Hookshot/9b2ad3c".into()),
        ("x-github-event", d.event.clone()),
        ("x-github-delivery", d.id.clone()),
        ("x-github-hook-id", hook_id.to_string()),
        (
            "x-github-hook-installation-target-type",
            "integration".into(),
        ),
        ("x-github-hook-installation-target-id", app_id.to_string()),
        (
            "x-hub-signature",
            format!("sha1={}", sign_sha1(secret, d.body.as_bytes())),
        ),
        (
            "x-hub-signature-256",
            format!("sha256={}", sign_sha256(secret, d.body.as_bytes())),
        ),
    ]
}

pub fn sign_sha256(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

pub fn sign_sha1(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// A random (version 4) UUID, as `X-GitHub-Delivery` carries.
fn uuid() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// A typed view of the webhook fields countersign reads. The real example payloads
/// (`tests/data/github/webhooks/`) and the fake's own payloads both parse into it.
pub mod model {
    use serde::Deserialize;
    use serde_json::Value;

    #[derive(Debug, Deserialize)]
    pub struct Event {
        pub action: Option<String>,
        pub number: Option<u64>,
        pub pull_request: Option<PullRequest>,
        pub review: Option<Review>,
        pub comment: Option<Comment>,
        pub issue: Option<Issue>,
        pub changes: Option<Value>,
        pub before: Option<String>,
        pub after: Option<String>,
        pub repository: Option<Repository>,
        pub organization: Option<Organization>,
        pub installation: Option<Installation>,
        pub sender: User,
        pub zen: Option<String>,
        pub hook_id: Option<u64>,
    }

    #[derive(Debug, Deserialize)]
    pub struct User {
        pub login: String,
        pub id: u64,
        #[serde(rename = "type")]
        pub kind: String,
    }

    #[derive(Debug, Deserialize)]
    pub struct PullRequest {
        pub id: u64,
        pub number: u64,
        pub state: String,
        pub title: String,
        pub body: Option<String>,
        pub user: User,
        pub head: Branch,
        pub base: Branch,
        pub merged: Option<bool>,
        pub merge_commit_sha: Option<String>,
        pub merged_at: Option<String>,
        pub closed_at: Option<String>,
        pub html_url: String,
        pub labels: Vec<Label>,
        pub requested_reviewers: Vec<User>,
        pub requested_teams: Vec<Team>,
    }

    #[derive(Debug, Deserialize)]
    pub struct Branch {
        #[serde(rename = "ref")]
        pub git_ref: String,
        pub sha: String,
        pub label: String,
    }

    #[derive(Debug, Deserialize)]
    pub struct Label {
        pub name: String,
    }

    #[derive(Debug, Deserialize)]
    pub struct Team {
        pub slug: String,
        pub name: String,
    }

    #[derive(Debug, Deserialize)]
    pub struct Review {
        pub id: u64,
        pub user: User,
        pub body: Option<String>,
        /// Lower case in payloads: `approved`, `changes_requested`, `commented`, `dismissed`.
        pub state: String,
        pub commit_id: String,
        pub submitted_at: Option<String>,
        pub html_url: String,
    }

    #[derive(Debug, Deserialize)]
    pub struct Comment {
        pub id: u64,
        pub body: String,
        pub user: User,
        pub created_at: String,
        pub updated_at: String,
        pub html_url: String,
    }

    #[derive(Debug, Deserialize)]
    pub struct Issue {
        pub number: u64,
        pub title: String,
        pub state: String,
        pub user: User,
        /// Present when the issue is a pull request.
        pub pull_request: Option<IssuePullRequest>,
    }

    #[derive(Debug, Deserialize)]
    pub struct IssuePullRequest {
        pub url: String,
    }

    #[derive(Debug, Deserialize)]
    pub struct Repository {
        pub id: u64,
        pub name: String,
        pub full_name: String,
        pub owner: User,
        pub default_branch: String,
        pub clone_url: String,
        pub private: bool,
    }

    #[derive(Debug, Deserialize)]
    pub struct Organization {
        pub login: String,
        pub id: u64,
    }

    #[derive(Debug, Deserialize)]
    pub struct Installation {
        pub id: u64,
    }
}
