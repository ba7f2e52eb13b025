//! A stateful fake of Slack (Web API with a bot token, and incoming webhooks) and of Microsoft
//! Teams (Workflows incoming webhook) on a loopback port, for integration tests.
//!
//! It validates requests the way the real services do (auth, channels, block and card shapes,
//! Block Kit's length limits — section text 3,000, header 150, fields 10 × 2,000, context
//! elements 10, button text 75, 50 blocks, message text 40,000 — and Teams' 28 KB message),
//! records everything it receives for assertions, and can inject failures (429 with
//! `Retry-After`, 500, Slack error codes, slow answers) or hold a post's answer after recording it,
//! so a test can kill countersign between "Slack posted" and "countersign heard back".
//!
//! Routes: `/api/{method}` (Slack Web API), `/webhook/slack/{*id}`, `/webhook/teams/{*id}` (the id
//! may span segments, like `T000/B000/XXXX`).
//! Route names for [`FakeChat::calls`] and [`FakeChat::fail_next_on`] are the Slack method
//! (`"chat.postMessage"`) or `"webhook/slack"` / `"webhook/teams"`.
//!
//! This file holds the public API and state; `fake_chat/server.rs` the routes and failure
//! injection; `fake_chat/shapes.rs` the request parsing and shape checks.
#![allow(dead_code)]

mod server;
mod shapes;

use serde_json::{Value, json};
use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{oneshot, watch};

/// The bot token [`FakeChat::start`] accepts.
pub const TOKEN: &str = "xoxb-test-token";
/// The channels [`FakeChat::start`] knows.
pub const CHANNELS: [&str; 3] = ["C-OPS", "C-SEC", "C-ALL"];
const FIRST_SECS: u64 = 1_763_700_000;

/// A failure injected into the next call(s), see [`FakeChat::fail_next`].
#[derive(Clone, Debug)]
pub enum Failure {
    /// HTTP 429, `Retry-After: <secs>`, body `{"ok":false,"error":"ratelimited"}`.
    RateLimited { retry_after_secs: u64 },
    /// HTTP 500, body `{"ok":false,"error":"internal_error"}`.
    ServerError,
    /// Web API: HTTP 200 `{"ok":false,"error":code}`. Slack webhook: the code as plain text with
    /// the status Slack uses for it (404 `no_service`, 403 `action_prohibited`…, else 400).
    /// Teams webhook: HTTP 400 with the code as the error message.
    SlackError(&'static str),
    /// Sleeps, then answers normally.
    Slow(Duration),
}

/// A Slack message as stored by the fake.
#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    pub ts: String,
    pub channel: String,
    pub text: String,
    pub blocks: Option<Value>,
    pub metadata: Option<Value>,
    /// The root's ts for a thread reply, `None` for a top-level message.
    pub thread_ts: Option<String>,
    /// Earlier contents (`{"text", "blocks"?}`), oldest first, one per `chat.update`.
    pub versions: Vec<Value>,
    /// How many times `chat.update` changed it.
    pub updated: usize,
}

impl Message {
    fn content(&self) -> Value {
        let mut c = json!({ "text": self.text });
        if let Some(b) = &self.blocks {
            c["blocks"] = b.clone();
        }
        c
    }

    fn to_api(&self, with_metadata: bool, reply_count: usize) -> Value {
        let mut m = self.content();
        m["type"] = "message".into();
        m["ts"] = self.ts.clone().into();
        if let Some(root) = &self.thread_ts {
            m["thread_ts"] = root.clone().into();
        } else if reply_count > 0 {
            m["thread_ts"] = self.ts.clone().into();
            m["reply_count"] = reply_count.into();
        }
        if with_metadata && let Some(md) = &self.metadata {
            m["metadata"] = md.clone();
        }
        m
    }
}

/// One accepted webhook post.
#[derive(Clone, Debug)]
pub struct WebhookPost {
    /// `"slack"` or `"teams"`.
    pub kind: &'static str,
    pub id: String,
    pub body: Value,
}

/// Everything the fake knows; readable in [`FakeChat::wait_for`] and [`FakeChat::with_state`].
#[derive(Debug)]
pub struct State {
    pub token: String,
    pub channels: BTreeSet<String>,
    /// Every message, thread replies included, in posting (= ts) order.
    pub messages: Vec<Message>,
    pub webhook_posts: Vec<WebhookPost>,
    pub disabled_webhooks: HashSet<String>,
    pub calls: HashMap<String, usize>,
    /// Every raw request body, in arrival order, failed and injected calls included.
    pub bodies: Vec<String>,
    /// Every request header as `name: value`, in arrival order.
    pub headers: Vec<String>,
    failures: VecDeque<(Option<String>, Failure)>,
    holds: VecDeque<HoldSlot>,
    last_micros: u64,
}

impl State {
    /// Top-level messages of `channel`, oldest first.
    pub fn top_level(&self, channel: &str) -> Vec<Message> {
        let top = |m: &&Message| m.channel == channel && m.thread_ts.is_none();
        self.messages.iter().filter(top).cloned().collect()
    }

    /// The replies (root excluded) in the thread of `ts` in `channel`, oldest first.
    pub fn replies(&self, channel: &str, ts: &str) -> Vec<Message> {
        let reply = |m: &&Message| m.channel == channel && m.thread_ts.as_deref() == Some(ts);
        self.messages.iter().filter(reply).cloned().collect()
    }

    pub fn calls(&self, route: &str) -> usize {
        self.calls.get(route).copied().unwrap_or(0)
    }

    /// `(id, body)` of the accepted posts to the `"slack"` or `"teams"` webhooks.
    pub fn webhook_posts(&self, kind: &str) -> Vec<(String, Value)> {
        let posts = self.webhook_posts.iter().filter(|p| p.kind == kind);
        posts.map(|p| (p.id.clone(), p.body.clone())).collect()
    }

    fn next_ts(&mut self) -> String {
        self.last_micros += 100;
        let (secs, micros) = (self.last_micros / 1_000_000, self.last_micros % 1_000_000);
        format!("{}.{micros:06}", FIRST_SECS + secs)
    }

    fn find(&self, channel: &str, ts: &str) -> Option<usize> {
        self.messages
            .iter()
            .position(|m| m.channel == channel && m.ts == ts)
    }

    fn reply_count(&self, m: &Message) -> usize {
        let replies = self.messages.iter();
        replies
            .filter(|r| r.thread_ts.as_deref() == Some(&m.ts))
            .count()
    }

    fn channel(&self, p: &serde_json::Map<String, Value>) -> Result<String, &'static str> {
        match shapes::str_param(p, "channel") {
            Some(c) if self.channels.contains(c) => Ok(c.to_owned()),
            _ => Err("channel_not_found"),
        }
    }
}

#[derive(Debug)]
struct HoldSlot {
    arrived: watch::Sender<bool>,
    release: oneshot::Receiver<()>,
}

impl HoldSlot {
    async fn wait(self) {
        self.arrived.send_replace(true);
        if self.release.await.is_err() {
            std::future::pending::<()>().await; // dropped without release: hang
        }
    }
}

/// A held post, see [`FakeChat::hold_next_post`].
pub struct Held {
    arrived: watch::Receiver<bool>,
    release: Option<oneshot::Sender<()>>,
}

impl Held {
    /// Resolves once the held post has been recorded (its answer is not sent yet).
    pub async fn arrived(&self) {
        let _ = self.arrived.clone().wait_for(|a| *a).await;
    }

    pub fn has_arrived(&self) -> bool {
        *self.arrived.borrow()
    }

    /// Lets the held answer go out (or the next post through unheld if none arrived yet).
    pub fn release(mut self) {
        if let Some(tx) = self.release.take() {
            let _ = tx.send(());
        }
    }
}

type Shared = Arc<Mutex<State>>;

fn lock(s: &Shared) -> MutexGuard<'_, State> {
    s.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The fake server; stops serving when dropped.
pub struct FakeChat {
    url: String,
    state: Shared,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeChat {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl FakeChat {
    /// Token [`TOKEN`], channels [`CHANNELS`].
    pub async fn start() -> Self {
        Self::start_with(TOKEN, &CHANNELS).await
    }

    pub async fn start_with(token: &str, channels: &[&str]) -> Self {
        let state = Arc::new(Mutex::new(State {
            token: token.to_owned(),
            channels: channels.iter().map(|c| c.to_string()).collect(),
            messages: Vec::new(),
            webhook_posts: Vec::new(),
            disabled_webhooks: HashSet::new(),
            calls: HashMap::new(),
            bodies: Vec::new(),
            headers: Vec::new(),
            failures: VecDeque::new(),
            holds: VecDeque::new(),
            last_micros: 0,
        }));
        let app = server::router(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeChat { url, state, server }
    }

    /// Base URL, e.g. `http://127.0.0.1:PORT`; the Web API is under `/api/`.
    pub fn url(&self) -> String {
        self.url.clone()
    }

    pub fn slack_webhook_url(&self, id: &str) -> String {
        format!("{}/webhook/slack/{id}", self.url)
    }

    pub fn teams_webhook_url(&self, id: &str) -> String {
        format!("{}/webhook/teams/{id}", self.url)
    }

    pub fn add_channel(&self, channel: &str) {
        lock(&self.state).channels.insert(channel.to_owned());
    }

    /// Posts to the (Slack or Teams) webhook `id` answer 404 from now on.
    pub fn disable_webhook(&self, id: &str) {
        lock(&self.state).disabled_webhooks.insert(id.to_owned());
    }

    /// The next `n` calls on any route fail with `failure` (queued after earlier failures).
    pub fn fail_next(&self, n: usize, failure: Failure) {
        let mut s = lock(&self.state);
        s.failures.extend((0..n).map(|_| (None, failure.clone())));
    }

    /// The next `n` calls on `route` (e.g. `"chat.postMessage"`, `"webhook/teams"`) fail.
    pub fn fail_next_on(&self, route: &str, n: usize, failure: Failure) {
        let mut s = lock(&self.state);
        s.failures
            .extend((0..n).map(|_| (Some(route.to_owned()), failure.clone())));
    }

    /// The next successful `chat.postMessage` or webhook post is recorded, then its answer waits
    /// for [`Held::release`] (forever if the `Held` is dropped). Several holds queue up.
    pub fn hold_next_post(&self) -> Held {
        let (arrived_tx, arrived) = watch::channel(false);
        let (release, release_rx) = oneshot::channel();
        let slot = HoldSlot {
            arrived: arrived_tx,
            release: release_rx,
        };
        lock(&self.state).holds.push_back(slot);
        Held {
            arrived,
            release: Some(release),
        }
    }

    /// Top-level messages of `channel`, oldest first.
    pub fn messages(&self, channel: &str) -> Vec<Message> {
        lock(&self.state).top_level(channel)
    }

    /// Replies in the thread of `ts` (the root itself excluded), oldest first.
    pub fn replies(&self, channel: &str, ts: &str) -> Vec<Message> {
        lock(&self.state).replies(channel, ts)
    }

    pub fn webhook_posts(&self, kind: &str) -> Vec<(String, Value)> {
        lock(&self.state).webhook_posts(kind)
    }

    /// Calls received on `route`, failed and injected ones included.
    pub fn calls(&self, route: &str) -> usize {
        lock(&self.state).calls(route)
    }

    pub fn all_bodies(&self) -> Vec<String> {
        lock(&self.state).bodies.clone()
    }

    pub fn all_headers(&self) -> Vec<String> {
        lock(&self.state).headers.clone()
    }

    pub fn with_state<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        f(&mut lock(&self.state))
    }

    /// Polls `until` (see [`crate::wait::poll`]); false if it still does not hold after
    /// `timeout`.
    pub async fn wait_for(&self, until: impl Fn(&State) -> bool, timeout: Duration) -> bool {
        crate::wait::poll(timeout, async || until(&lock(&self.state)))
            .await
            .is_some()
    }
}
