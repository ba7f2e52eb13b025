//! Slack and Teams notifications against local receivers standing in for Slack's Web API,
//! Slack incoming webhooks and Teams Workflows webhooks (`testkit::fake_chat`): the announcement
//! with the review link, updates and thread replies as the request moves on, retries after 429
//! and 5xx without duplicates, giving up without blocking decisions, routing, no duplicate after
//! a crash between Slack posting and countersign recording it, and no canary in any message.

use countersign::api::{State, Verdict};
use countersign::notify::{NotifyConfig, Target, TargetKind};
use serde_json::json;
use std::time::Duration;
use testkit::fake_chat::{Failure, FakeChat};
use testkit::*;
use zeroize::Zeroizing;

/// The longest a scenario waits for the fake to see something. Generous: the suite runs many
/// servers and child processes at once on a small machine, and a passing wait ends early.
const WAIT: Duration = Duration::from_secs(60);

fn bot(fake: &FakeChat, name: &str, channel: &str) -> Target {
    Target {
        name: name.into(),
        kind: TargetKind::SlackBot {
            token: Zeroizing::new("xoxb-test-token".into()),
            channel: channel.into(),
            api_base: format!("{}/api", fake.url()),
        },
        route: Default::default(),
        mention: Some("<!subteam^S0DATA>".into()),
    }
}

fn slack_hook(fake: &FakeChat, name: &str) -> Target {
    Target {
        name: name.into(),
        kind: TargetKind::SlackWebhook {
            url: Zeroizing::new(fake.slack_webhook_url(name)),
        },
        route: Default::default(),
        mention: None,
    }
}

fn teams_hook(fake: &FakeChat, name: &str) -> Target {
    Target {
        name: name.into(),
        kind: TargetKind::TeamsWebhook {
            url: Zeroizing::new(fake.teams_webhook_url(name)),
        },
        route: Default::default(),
        mention: None,
    }
}

async fn harness(targets: Vec<Target>, max_attempts: u32) -> Harness {
    Harness::start_with(|c| {
        c.notify = NotifyConfig {
            targets,
            max_attempts,
        }
    })
    .await
}

fn export(n: u32) -> Vec<u8> {
    action_body(json!({ "n": n }))
}

async fn wait(fake: &FakeChat, what: &str, until: impl Fn(&testkit::fake_chat::State) -> bool) {
    assert!(
        fake.wait_for(until, WAIT).await,
        "timed out waiting for {what}"
    );
}

#[tokio::test]
async fn a_request_is_announced_with_its_link_and_the_message_follows_the_decision() {
    let fake = FakeChat::start().await;
    let targets = vec![
        bot(&fake, "ops", "C-OPS"),
        slack_hook(&fake, "hook"),
        teams_hook(&fake, "teams"),
    ];
    let h = harness(targets, 5).await;
    let (id, status) = h.pending_with(&export(1)).await;
    let link = status.review.unwrap().url.unwrap();
    wait(&fake, "the announcements", |s| {
        s.top_level("C-OPS").len() == 1
            && s.webhook_posts("slack").len() == 1
            && s.webhook_posts("teams").len() == 1
    })
    .await;
    let announced = &fake.messages("C-OPS")[0];
    assert!(
        announced
            .text
            .contains("Approval needed: db.export on prod/customers")
    );
    let blocks = announced.blocks.as_ref().unwrap().to_string();
    assert!(blocks.contains(&link), "the review link: {blocks}");
    assert!(blocks.contains(&id) && blocks.contains("agent-a") && blocks.contains("high"));
    assert!(
        blocks.contains("<!subteam^S0DATA>"),
        "high risk mentions the group"
    );
    assert!(
        blocks.contains("1 of @acme/data (Exports"),
        "who must approve: {blocks}"
    );
    let teams = &fake.webhook_posts("teams")[0].1;
    assert_eq!(
        teams["attachments"][0]["content"]["actions"][0]["url"],
        link
    );

    h.reviewer(BOB)
        .review(&id, Verdict::Approve, None)
        .await
        .unwrap();
    // Approved, then executed (the test registry's db.export is `/bin/true`): the announcement
    // is updated for each, and each goes in the thread.
    wait(&fake, "the updates and the thread replies", |s| {
        let top = s.top_level("C-OPS");
        top.len() == 1 && top[0].updated == 2 && s.replies("C-OPS", &top[0].ts).len() == 2
    })
    .await;
    let updated = &fake.messages("C-OPS")[0];
    assert!(updated.text.starts_with("Executed:"), "{}", updated.text);
    let replies = fake.replies("C-OPS", &updated.ts);
    assert_eq!(replies[0].text, "Approved by @bob");
    assert!(
        replies[1].text.starts_with("Executed by command in ")
            && replies[1].text.ends_with("exit status 0"),
        "{}",
        replies[1].text
    );
    wait(&fake, "the webhook decisions", |s| {
        s.webhook_posts("slack").len() == 3 && s.webhook_posts("teams").len() == 3
    })
    .await;
    let hook = fake.webhook_posts("slack");
    assert!(hook[1].1.to_string().contains("Approved by @bob"));
    assert!(hook[2].1.to_string().contains("Executed by command"));
    // Nothing more: one announcement per destination.
    h.settle().await;
    assert_eq!(fake.calls("chat.postMessage"), 3);
    assert_eq!(fake.messages("C-OPS").len(), 1);
}

#[tokio::test]
async fn approvals_counted_go_in_the_thread_and_a_denial_carries_its_reason() {
    let fake = FakeChat::start().await;
    let h = harness(
        vec![bot(&fake, "ops", "C-OPS"), slack_hook(&fake, "hook")],
        5,
    )
    .await;
    let grant = serde_json::to_vec(&json!({
        "kind": "action", "action": "iam.grant", "resource": "prod/admin",
        "environment": "prod", "justification": "on-call access", "payload": {},
    }))
    .unwrap();
    let (id, _) = h.pending_with(&grant).await;
    wait(&fake, "the announcement", |s| {
        s.top_level("C-OPS").len() == 1
    })
    .await;
    let r = h
        .reviewer(BOB)
        .review(&id, Verdict::Approve, None)
        .await
        .unwrap();
    assert_eq!(r.state, State::PendingReview);
    let r = h
        .reviewer(CAROL)
        .review(&id, Verdict::Deny, Some("too broad <!channel>"))
        .await
        .unwrap();
    assert_eq!(r.state, State::Denied);
    let ts = fake.messages("C-OPS")[0].ts.clone();
    wait(&fake, "two thread replies", |s| {
        s.replies("C-OPS", &ts).len() == 2
    })
    .await;
    let replies: Vec<String> = fake
        .replies("C-OPS", &ts)
        .into_iter()
        .map(|m| m.text)
        .collect();
    assert_eq!(
        replies,
        [
            "Approval by @bob counted",
            "Denied by @carol: too broad &lt;!channel&gt;"
        ]
    );
    // The webhook gets no progress, only the announcement and the decision.
    wait(&fake, "the webhook decision", |s| {
        s.webhook_posts("slack").len() == 2
    })
    .await;
    assert!(
        fake.webhook_posts("slack")[1]
            .1
            .to_string()
            .contains("Denied by @carol")
    );
}

#[tokio::test]
async fn rate_limits_and_server_errors_are_retried_without_duplicates() {
    let fake = FakeChat::start().await;
    fake.fail_next_on(
        "chat.postMessage",
        1,
        Failure::RateLimited {
            retry_after_secs: 1,
        },
    );
    fake.fail_next_on("webhook/teams", 2, Failure::ServerError);
    fake.fail_next_on(
        "webhook/slack",
        1,
        Failure::RateLimited {
            retry_after_secs: 1,
        },
    );
    let h = harness(
        vec![
            bot(&fake, "ops", "C-OPS"),
            teams_hook(&fake, "teams"),
            slack_hook(&fake, "hook"),
        ],
        5,
    )
    .await;
    h.pending_with(&export(2)).await;
    wait(&fake, "every destination after its failures", |s| {
        s.top_level("C-OPS").len() == 1
            && s.webhook_posts("teams").len() == 1
            && s.webhook_posts("slack").len() == 1
    })
    .await;
    assert_eq!(fake.calls("chat.postMessage"), 2, "one 429, one success");
    assert_eq!(fake.calls("webhook/teams"), 3, "two 500s, one success");
    h.settle().await;
    assert_eq!(fake.messages("C-OPS").len(), 1, "no duplicate");
    let metrics = h.metrics().await;
    assert!(
        metrics.contains("countersign_notifications_total{outcome=\"retried\"} 4"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_failing_destination_is_given_up_and_never_blocks_the_decision() {
    testkit::sqlite_only!("reads the SQLite file");
    let fake = FakeChat::start().await;
    // Permanent at once; transient until the attempts run out.
    fake.fail_next_on(
        "chat.postMessage",
        1,
        Failure::SlackError("channel_not_found"),
    );
    fake.fail_next_on("webhook/teams", 100, Failure::ServerError);
    let h = harness(
        vec![bot(&fake, "ops", "C-OPS"), teams_hook(&fake, "teams")],
        3,
    )
    .await;
    let (id, _) = h.pending_with(&export(3)).await;
    let r = h
        .reviewer(BOB)
        .review(&id, Verdict::Approve, None)
        .await
        .unwrap();
    assert_eq!(r.state, State::Approved, "decisions do not wait");
    let failed = wait_until(
        "four notifications given up",
        Duration::from_secs(30),
        async || {
            let metrics = h.metrics().await;
            metrics
                .contains("countersign_notifications_total{outcome=\"failed\"} 4")
                .then_some(metrics)
        },
    )
    .await;
    // The bot's announcement (channel_not_found) and the three Teams posts (announcement,
    // approval, execution) gave up.
    assert!(
        failed.contains("countersign_notifications_total{outcome=\"failed\"} 4"),
        "{failed}"
    );
    assert_eq!(
        fake.calls("webhook/teams"),
        9,
        "3 attempts for each of 3 events"
    );
    let db = h.dir.path().join("countersign.db");
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}?mode=ro", db.display()))
        .await
        .unwrap();
    let rows: Vec<(String, String, i64)> =
        sqlx::query_as("SELECT target, state, attempts FROM notify_deliveries ORDER BY target")
            .fetch_all(&pool)
            .await
            .unwrap();
    let teams: Vec<_> = rows.iter().filter(|r| r.0 == "teams").collect();
    assert!(
        teams.iter().all(|r| r.1 == "failed" && r.2 == 3),
        "{rows:?}"
    );
    assert!(
        rows.iter()
            .any(|r| r.0 == "ops" && r.1 == "failed" && r.2 == 1),
        "{rows:?}"
    );
}

#[tokio::test]
async fn destinations_receive_only_what_their_routes_match() {
    let fake = FakeChat::start().await;
    let mut low_only = slack_hook(&fake, "low-only");
    low_only.route.risks = vec!["low".into()];
    let mut staging = slack_hook(&fake, "staging");
    staging.route.environments = vec!["staging".into()];
    let mut exports = slack_hook(&fake, "exports");
    exports.route.sections = vec!["Exports".into()];
    let h = harness(vec![low_only, staging, exports], 5).await;
    h.pending_with(&export(4)).await;
    wait(&fake, "the exports announcement", |s| {
        s.webhook_posts("slack")
            .iter()
            .any(|(id, _)| id == "exports")
    })
    .await;
    h.settle().await;
    let ids: Vec<String> = fake
        .webhook_posts("slack")
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(ids, ["exports"]);
}

#[tokio::test]
async fn canaries_never_reach_any_message_and_webhook_urls_never_reach_errors() {
    testkit::sqlite_only!("reads the SQLite file");
    let fake = FakeChat::start().await;
    let unreachable = Target {
        name: "down".into(),
        kind: TargetKind::SlackWebhook {
            url: Zeroizing::new("http://127.0.0.1:9/services/T0/B0/SECRETHOOKPATH".into()),
        },
        route: Default::default(),
        mention: None,
    };
    let h = harness(
        vec![
            bot(&fake, "ops", "C-OPS"),
            slack_hook(&fake, "hook"),
            teams_hook(&fake, "teams"),
            unreachable,
        ],
        5,
    )
    .await;
    let canaries = [
        "canary.person@example.org",
        "sk_live_51HcanaryNOTIFYsecret00000000",
        "4242 4242 4242 4242",
    ];
    let body = serde_json::to_vec(&json!({
        "kind": "action", "action": "db.export", "resource": "prod/customers",
        "environment": "prod",
        "justification": format!("mail {} the card {}", canaries[0], canaries[2]),
        "payload": { "to": canaries[0], "api_key": canaries[1], "card": canaries[2] },
    }))
    .unwrap();
    let (id, _) = h.pending_with(&body).await;
    let reason = format!("ask {} first", canaries[0]);
    h.reviewer(ALICE)
        .review(&id, Verdict::Deny, Some(&reason))
        .await
        .unwrap();
    wait(&fake, "announcements and decisions", |s| {
        let top = s.top_level("C-OPS");
        top.len() == 1
            && s.replies("C-OPS", &top[0].ts).len() == 1
            && s.webhook_posts("teams").len() == 2
            && s.webhook_posts("slack").len() == 2
    })
    .await;
    let everything = fake.all_bodies().join("\n");
    assert!(
        everything.contains(&id),
        "sanity: the messages were searched"
    );
    assert!(
        everything.contains("masked"),
        "the summary says what was masked"
    );
    for canary in canaries {
        assert!(!everything.contains(canary), "{canary} reached a message");
    }
    // The unreachable webhook's errors are recorded without its URL.
    let db = h.dir.path().join("countersign.db");
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}?mode=ro", db.display()))
        .await
        .unwrap();
    let errors: Vec<(Option<String>,)> =
        sqlx::query_as("SELECT last_error FROM notify_deliveries WHERE target = 'down'")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert!(!errors.is_empty());
    for (e,) in errors {
        let e = e.unwrap_or_default();
        assert!(
            !e.contains("SECRETHOOKPATH") && !e.contains("services"),
            "{e}"
        );
    }
}

#[tokio::test]
async fn a_crash_between_slack_posting_and_countersign_recording_posts_once() {
    let fake = FakeChat::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_server_config(dir.path());
    let token = dir.path().join("slack.token");
    std::fs::write(&token, "xoxb-test-token").unwrap();
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&format!(
        "\n[notify]\n[[notify.slack]]\nname = \"ops\"\nchannel = \"C-OPS\"\napi_base = \"{}/api\"\nbot_token = {{ file = {:?} }}\n",
        fake.url(),
        token.display().to_string()
    ));
    std::fs::write(&config, text).unwrap();

    let held = fake.hold_next_post();
    // The servers' logs, shown if the scenario fails.
    let log = dir.path().join("server.log");
    let logged = |config: &std::path::Path| {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let args = [
            "--config",
            config.to_str().unwrap(),
            "--log-level",
            "debug",
            "serve",
        ];
        Binary::spawn_logging(&args, config.parent().unwrap(), file.into())
    };
    let mut server = logged(&config);
    let agent = countersign::cli::client::AgentClient::new(&server.url, "agent-a", key(KEY_A_NEW));
    let a = agent.submit(&export(5), None).await.unwrap();
    let id = a.id.as_str().to_owned();
    tokio::time::timeout(WAIT, held.arrived())
        .await
        .expect("the announcement reached Slack");
    // Slack has posted it; countersign never hears back.
    server.kill_9();
    drop(held);
    assert_eq!(fake.messages("C-OPS").len(), 1);

    let server = logged(&config);
    let bob = countersign::cli::client::ReviewerClient::new(&server.url, BOB);
    bob.review(&id, Verdict::Approve, None).await.unwrap();
    let updated = fake
        .wait_for(
            |s| {
                // The approval's reply; the execution's may follow at once (the action is
                // `/bin/true`), so the thread holds one reply or more.
                let top = s.top_level("C-OPS");
                !top.is_empty() && top[0].updated >= 1 && !s.replies("C-OPS", &top[0].ts).is_empty()
            },
            WAIT,
        )
        .await;
    assert!(
        updated,
        "timed out waiting for the update after the restart; the servers logged:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    assert_eq!(
        fake.messages("C-OPS").len(),
        1,
        "the message posted before the crash was found and updated, not posted again"
    );
    assert!(fake.calls("conversations.history") >= 1);
}

#[tokio::test]
async fn events_queued_long_ago_are_not_announced_and_settled_ones_are_pruned() {
    testkit::sqlite_only!("restarts on its data directory");
    let fake = FakeChat::start().await;
    // No destination yet: the announcement waits in the outbox, unrouted.
    let h = Harness::start().await;
    let (old, _) = h.pending_with(&export(6)).await;
    let (dir, http) = h.stop().await;
    let db = dir.path().join("countersign.db");
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    let two_days_ago = countersign::time::now_ms() - 2 * 24 * 3600 * 1000;
    sqlx::query("UPDATE notify_outbox SET at = ? WHERE request_id = ?")
        .bind(two_days_ago)
        .bind(&old)
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let mut c = config(dir.path());
    c.notify = NotifyConfig {
        targets: vec![slack_hook(&fake, "hook")],
        max_attempts: 5,
    };
    let server = countersign::app::Server::start(&c).await.unwrap();
    let h = Harness {
        url: server.url(),
        dir,
        server,
        http,
        notifying: true,
        database: None,
    };
    let (fresh, _) = h.pending_with(&export(7)).await;
    wait(&fake, "the fresh announcement", |s| {
        s.webhook_posts("slack").len() == 1
    })
    .await;
    h.settle().await;
    let posts = fake.webhook_posts("slack");
    assert_eq!(posts.len(), 1, "only the fresh request is announced");
    assert!(posts[0].1.to_string().contains(&fresh));
    // Settled deliveries go after a week.
    let store = h.server.engine.store();
    store
        .notify_prune(countersign::time::now_ms() + 1000)
        .await
        .unwrap();
    assert_eq!(store.notify_counts().await.unwrap(), (0, 0));
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}?mode=ro", db.display()))
        .await
        .unwrap();
    let (left,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM notify_outbox")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(left, 0, "settled events are pruned with their deliveries");
}

/// The text of the announcement's block that starts with `heading` (`*Payload*`, …).
fn section_starting(blocks: &serde_json::Value, heading: &str) -> String {
    blocks
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|b| b["text"]["text"].as_str())
        .find(|t| t.starts_with(heading))
        .unwrap_or_else(|| panic!("no section {heading}: {blocks}"))
        .to_owned()
}

/// The Teams card's text blocks, in order.
fn card_texts(post: &serde_json::Value) -> Vec<serde_json::Value> {
    let body = post["attachments"][0]["content"]["body"]
        .as_array()
        .unwrap();
    body.iter()
        .filter(|e| e["type"] == "TextBlock")
        .cloned()
        .collect()
}

#[tokio::test]
async fn a_payload_full_of_ampersands_is_still_announced_and_updated_in_slack() {
    let fake = FakeChat::start().await;
    let h = harness(
        vec![
            bot(&fake, "ops", "C-OPS"),
            slack_hook(&fake, "hook"),
            teams_hook(&fake, "teams"),
        ],
        5,
    )
    .await;
    // Five-fold once escaped for Slack (`&amp;`): far past a section's 3,000 characters.
    let (id, _) = h
        .pending_with(&action_body(json!({ "q": "&".repeat(3000) })))
        .await;
    wait(&fake, "the announcements", |s| {
        s.top_level("C-OPS").len() == 1
            && s.webhook_posts("slack").len() == 1
            && s.webhook_posts("teams").len() == 1
    })
    .await;
    let announced = fake.messages("C-OPS")[0].clone();
    let blocks = announced.blocks.clone().unwrap();
    let payload = section_starting(&blocks, "*Payload*");
    assert!(payload.contains("&amp;&amp;") && payload.chars().count() <= 3000);
    assert!(
        payload.ends_with("…\n```"),
        "the code block is closed: {payload}"
    );
    assert!(blocks.to_string().contains(&id));
    h.reviewer(BOB)
        .review(&id, Verdict::Approve, None)
        .await
        .unwrap();
    wait(&fake, "the updates and the thread replies", |s| {
        let top = s.top_level("C-OPS");
        top.len() == 1 && top[0].updated == 2 && s.replies("C-OPS", &top[0].ts).len() == 2
    })
    .await;
    let updated = &fake.messages("C-OPS")[0];
    assert!(updated.text.starts_with("Executed:"), "{}", updated.text);
    assert!(
        section_starting(updated.blocks.as_ref().unwrap(), "*Payload*").contains("&amp;"),
        "the update is the full message, not the minimal one"
    );
    let metrics = h.metrics().await;
    assert!(
        !metrics.contains("countersign_notifications_total{outcome=\"failed\"} 1")
            && !metrics.contains("outcome=\"minimal\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_destination_that_refuses_the_rich_message_gets_the_minimal_one() {
    let fake = FakeChat::start().await;
    fake.fail_next_on("chat.postMessage", 1, Failure::SlackError("invalid_blocks"));
    fake.fail_next_on("webhook/slack", 1, Failure::SlackError("invalid_blocks"));
    fake.fail_next_on("webhook/teams", 1, Failure::SlackError("card too large"));
    let h = harness(
        vec![
            bot(&fake, "ops", "C-OPS"),
            slack_hook(&fake, "hook"),
            teams_hook(&fake, "teams"),
        ],
        5,
    )
    .await;
    let (id, status) = h.pending_with(&export(8)).await;
    let link = status.review.unwrap().url.unwrap();
    wait(&fake, "the minimal announcements", |s| {
        s.top_level("C-OPS").len() == 1
            && s.webhook_posts("slack").len() == 1
            && s.webhook_posts("teams").len() == 1
    })
    .await;
    let announced = fake.messages("C-OPS")[0].clone();
    let hook = fake.webhook_posts("slack")[0].1.clone();
    let teams = fake.webhook_posts("teams")[0].1.clone();
    for (what, message) in [
        (
            "bot",
            json!({"text": announced.text, "blocks": announced.blocks}),
        ),
        ("webhook", hook),
        ("teams", teams.clone()),
    ] {
        let text = message.to_string();
        for needle in [id.as_str(), "agent-a", "db.export", "high", link.as_str()] {
            assert!(text.contains(needle), "{what} lacks {needle}: {text}");
        }
        assert!(!text.contains("weekly report"), "{what} is minimal: {text}");
    }
    assert_eq!(
        teams["attachments"][0]["content"]["actions"][0]["url"],
        link
    );
    // Later updates still go out, in full when the destination takes them.
    h.reviewer(BOB)
        .review(&id, Verdict::Approve, None)
        .await
        .unwrap();
    wait(&fake, "the updates", |s| {
        let top = s.top_level("C-OPS");
        top.len() == 1
            && top[0].updated == 2
            && s.webhook_posts("slack").len() == 3
            && s.webhook_posts("teams").len() == 3
    })
    .await;
    assert!(fake.messages("C-OPS")[0].text.starts_with("Executed:"));
    let metrics = h.metrics().await;
    assert!(
        metrics.contains("countersign_notifications_total{outcome=\"minimal\"} 3"),
        "{metrics}"
    );
    assert!(
        !metrics.contains("countersign_notifications_total{outcome=\"failed\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_justification_with_a_markdown_link_renders_as_text_in_teams_and_slack() {
    let fake = FakeChat::start().await;
    let h = harness(
        vec![bot(&fake, "ops", "C-OPS"), teams_hook(&fake, "teams")],
        5,
    )
    .await;
    let body = serde_json::to_vec(&json!({
        "kind": "action", "action": "db.export", "resource": "prod/customers",
        "environment": "prod",
        "justification": "[click here](https://evil.example/x) <https://evil.example/y|docs> masked ********",
        "payload": { "password": "********", "note": "```breakout``` *bold*" },
    }))
    .unwrap();
    h.pending_with(&body).await;
    wait(&fake, "the announcements", |s| {
        s.top_level("C-OPS").len() == 1 && s.webhook_posts("teams").len() == 1
    })
    .await;

    // Teams: every markup character escaped, the payload in a monospace block.
    let teams = fake.webhook_posts("teams")[0].1.clone();
    let texts = card_texts(&teams);
    let why = texts
        .iter()
        .find_map(|t| {
            t["text"]
                .as_str()
                .filter(|s| s.starts_with("**Justification:**"))
        })
        .unwrap();
    assert!(
        why.contains(r"\[click here\]\(https://evil.example/x\)"),
        "not a link: {why}"
    );
    assert!(
        why.contains(r"\*\*\*\*\*\*\*\*"),
        "masks stay visible: {why}"
    );
    let agent_text = why.strip_prefix("**Justification:** ").unwrap();
    let escaped = |c: char| {
        let at = agent_text.match_indices(c);
        at.into_iter().all(|(i, _)| agent_text[..i].ends_with('\\'))
    };
    assert!(
        ['[', ']', '(', ')', '<', '>', '*'].into_iter().all(escaped),
        "every markup character is escaped: {why}"
    );
    let code = texts
        .iter()
        .find(|t| t["fontType"] == "Monospace")
        .expect("the payload is shown as code");
    let code = code["text"].as_str().unwrap();
    assert!(code.contains(r"\*\*\*\*\*\*\*\*"), "{code}");

    // Slack: `&`, `<`, `>` escaped so nothing links or mentions; the payload in a code block
    // that its backticks cannot close.
    let blocks = fake.messages("C-OPS")[0].blocks.clone().unwrap();
    let why = section_starting(&blocks, "*Justification*");
    assert!(why.contains("&lt;https://evil.example/y|docs&gt;"), "{why}");
    assert!(!why.contains("<https"), "{why}");
    assert!(why.contains("********"), "{why}");
    let payload = section_starting(&blocks, "*Payload*");
    let code = payload.split_once("```").unwrap().1;
    let code = code.strip_suffix("```").unwrap();
    assert!(
        !code.contains("```"),
        "the payload cannot close its code block: {payload}"
    );
    assert!(code.contains("********"), "{payload}");
}

#[tokio::test]
async fn the_announcement_names_only_people_who_can_approve() {
    // iam.grant needs two of @alice @bob @carol, and alice owns agent-a: she is never asked.
    let fake = FakeChat::start().await;
    let h = harness(vec![slack_hook(&fake, "hook")], 5).await;
    let body = serde_json::to_vec(&json!({
        "kind": "action", "action": "iam.grant", "resource": "prod/role-1",
        "environment": "prod", "justification": "on-call", "payload": {"n": 1},
    }))
    .unwrap();
    h.pending_with(&body).await;
    wait(&fake, "the announcement", |s| {
        s.webhook_posts("slack").len() == 1
    })
    .await;
    let announced = fake.webhook_posts("slack")[0].1.to_string();
    assert!(
        announced.contains("2 of @bob @carol (Access"),
        "who must approve: {announced}"
    );
    assert!(!announced.contains("@alice"), "{announced}");
}
