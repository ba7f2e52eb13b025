//! The fake Slack / Teams server used by the notification tests behaves like the real services:
//! exercised here through plain HTTP.

use serde_json::{Value, json};
use std::time::{Duration, Instant};
use testkit::fake_chat::{Failure, FakeChat, TOKEN};

/// A Slack Web API client for the fake, cheap to clone into spawned tasks.
#[derive(Clone)]
struct Slack {
    http: reqwest::Client,
    url: String,
}

impl Slack {
    fn new(fake: &FakeChat) -> Self {
        Slack {
            http: reqwest::Client::new(),
            url: fake.url(),
        }
    }

    fn post(&self, method: &str) -> reqwest::RequestBuilder {
        self.http.post(format!("{}/api/{method}", self.url))
    }

    /// A JSON call with the right token; asserts HTTP 200 like Slack answers even on errors.
    async fn call(&self, method: &str, body: Value) -> Value {
        let resp = self
            .post(method)
            .bearer_auth(TOKEN)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{method}");
        resp.json().await.unwrap()
    }
}

fn is_slack_ts(ts: &str) -> bool {
    let (secs, micros) = ts.split_once('.').unwrap();
    secs.len() == 10
        && micros.len() == 6
        && (secs.bytes().chain(micros.bytes())).all(|b| b.is_ascii_digit())
}

#[tokio::test]
async fn posts_get_unique_increasing_slack_shaped_ts() {
    let fake = FakeChat::start().await;
    let slack = Slack::new(&fake);
    let first = slack
        .call(
            "chat.postMessage",
            json!({"channel": "C-OPS", "text": "one"}),
        )
        .await;
    assert_eq!(first["ok"], true);
    assert_eq!(first["channel"], "C-OPS");
    assert_eq!(first["message"]["text"], "one");
    let ts1 = first["ts"].as_str().unwrap().to_owned();
    assert!(is_slack_ts(&ts1), "{ts1}");
    assert_eq!(first["message"]["ts"], ts1.as_str());
    let md = json!({"event_type": "countersign_request", "event_payload": {"id": "r1"}});
    let second = slack
        .call(
            "chat.postMessage",
            json!({"channel": "C-OPS", "text": "two", "metadata": md}),
        )
        .await;
    let ts2 = second["ts"].as_str().unwrap();
    assert!(is_slack_ts(ts2) && ts2 > ts1.as_str(), "{ts1} then {ts2}");
    assert_eq!(second["message"]["metadata"], md);

    let stored = fake.messages("C-OPS");
    assert_eq!(
        stored.iter().map(|m| m.text.as_str()).collect::<Vec<_>>(),
        ["one", "two"]
    );
    assert_eq!(stored[1].metadata, Some(md));
    assert!(fake.messages("C-SEC").is_empty());
    assert_eq!(fake.calls("chat.postMessage"), 2);
}

#[tokio::test]
async fn an_update_replaces_the_text_and_keeps_earlier_versions() {
    let fake = FakeChat::start().await;
    let slack = Slack::new(&fake);
    let blocks = json!([{"type": "section", "text": {"type": "mrkdwn", "text": "*pending*"}}]);
    let posted = slack
        .call(
            "chat.postMessage",
            json!({"channel": "C-SEC", "text": "pending", "blocks": blocks}),
        )
        .await;
    let ts = posted["ts"].as_str().unwrap();
    let update = json!({"channel": "C-SEC", "ts": ts, "text": "approved by @alice"});
    let answer = slack.call("chat.update", update).await;
    assert_eq!(
        answer,
        json!({"ok": true, "channel": "C-SEC", "ts": ts, "text": "approved by @alice"})
    );
    let removed = json!({"channel": "C-SEC", "ts": ts, "text": "applied", "blocks": []});
    slack.call("chat.update", removed).await;

    let m = &fake.messages("C-SEC")[0];
    assert_eq!(
        (m.text.as_str(), m.updated, m.blocks.is_none()),
        ("applied", 2, true)
    );
    assert_eq!(m.versions[0], json!({"text": "pending", "blocks": blocks}));
    assert_eq!(
        m.versions[1],
        json!({"text": "approved by @alice", "blocks": blocks})
    );

    let missing = json!({"channel": "C-SEC", "ts": "1763700000.999999", "text": "x"});
    assert_eq!(
        slack.call("chat.update", missing).await["error"],
        "message_not_found"
    );
    let elsewhere = json!({"channel": "C-OPS", "ts": ts, "text": "x"});
    assert_eq!(
        slack.call("chat.update", elsewhere).await["error"],
        "message_not_found"
    );
}

#[tokio::test]
async fn thread_replies_are_listed_under_their_root_and_not_in_the_history() {
    let fake = FakeChat::start().await;
    let slack = Slack::new(&fake);
    let root = slack
        .call(
            "chat.postMessage",
            json!({"channel": "C-OPS", "text": "root"}),
        )
        .await;
    let root_ts = root["ts"].as_str().unwrap();
    for text in ["r1", "r2"] {
        let reply = json!({"channel": "C-OPS", "text": text, "thread_ts": root_ts});
        assert_eq!(slack.call("chat.postMessage", reply).await["ok"], true);
    }
    let bogus = json!({"channel": "C-OPS", "text": "x", "thread_ts": "1763700000.999999"});
    assert_eq!(
        slack.call("chat.postMessage", bogus).await["error"],
        "thread_not_found"
    );
    let other_channel = json!({"channel": "C-SEC", "text": "x", "thread_ts": root_ts});
    assert_eq!(
        slack.call("chat.postMessage", other_channel).await["error"],
        "thread_not_found"
    );

    let replies = fake.replies("C-OPS", root_ts);
    assert_eq!(
        replies.iter().map(|m| m.text.as_str()).collect::<Vec<_>>(),
        ["r1", "r2"]
    );
    assert!(
        replies
            .iter()
            .all(|m| m.thread_ts.as_deref() == Some(root_ts))
    );
    assert_eq!(fake.messages("C-OPS").len(), 1);

    let listed = slack
        .call(
            "conversations.replies",
            json!({"channel": "C-OPS", "ts": root_ts}),
        )
        .await;
    let texts: Vec<&str> = listed["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["root", "r1", "r2"]);
    let history = slack
        .call("conversations.history", json!({"channel": "C-OPS"}))
        .await;
    assert_eq!(history["messages"].as_array().unwrap().len(), 1);
    assert_eq!(history["messages"][0]["reply_count"], 2);
}

#[tokio::test]
async fn history_is_newest_first_with_metadata_only_on_request_in_any_encoding() {
    let fake = FakeChat::start().await;
    let slack = Slack::new(&fake);
    let mut ts = Vec::new();
    for n in 0..3 {
        let md = json!({"event_type": "countersign_request", "event_payload": {"n": n}});
        let body = json!({"channel": "C-ALL", "text": format!("m{n}"), "metadata": md});
        ts.push(
            slack.call("chat.postMessage", body).await["ts"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let without = slack
        .call("conversations.history", json!({"channel": "C-ALL"}))
        .await;
    assert_eq!(without["ok"], true);
    assert_eq!(without["has_more"], false);
    let list = without["messages"].as_array().unwrap();
    assert_eq!(
        list.iter()
            .map(|m| m["text"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["m2", "m1", "m0"]
    );
    assert!(
        list.iter()
            .all(|m| m["type"] == "message" && m.get("metadata").is_none())
    );

    let json_body = json!({"channel": "C-ALL", "include_all_metadata": true});
    let with = slack.call("conversations.history", json_body).await;
    assert_eq!(with["messages"][0]["metadata"]["event_payload"]["n"], 2);

    // Form body, as Slack's own clients send it, with `oldest` (exclusive) and `limit`.
    let form = [
        ("channel", "C-ALL"),
        ("include_all_metadata", "1"),
        ("oldest", &ts[0]),
        ("limit", "1"),
    ];
    let resp = slack
        .post("conversations.history")
        .bearer_auth(TOKEN)
        .form(&form)
        .send()
        .await
        .unwrap();
    let page: Value = resp.json().await.unwrap();
    assert_eq!(page["messages"].as_array().unwrap().len(), 1);
    assert_eq!(page["messages"][0]["ts"], ts[2].as_str());
    assert_eq!(page["messages"][0]["metadata"]["event_payload"]["n"], 2);
    assert_eq!(page["has_more"], true);

    // GET with query parameters.
    let url = format!("{}/api/conversations.history", fake.url());
    let query = [
        ("channel", "C-ALL"),
        ("include_all_metadata", "true"),
        ("oldest", &ts[1]),
    ];
    let resp = slack
        .http
        .get(url)
        .bearer_auth(TOKEN)
        .query(&query)
        .send()
        .await
        .unwrap();
    let page: Value = resp.json().await.unwrap();
    assert_eq!(page["messages"].as_array().unwrap().len(), 1);
    assert_eq!(page["messages"][0]["metadata"]["event_payload"]["n"], 2);
}

#[tokio::test]
async fn bad_auth_unknown_channels_and_bad_shapes_are_refused_like_slack() {
    let fake = FakeChat::start().await;
    let slack = Slack::new(&fake);
    let body = json!({"channel": "C-OPS", "text": "hi"});
    let error = async |req: reqwest::RequestBuilder| -> String {
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 200);
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["ok"], false);
        v["error"].as_str().unwrap().to_owned()
    };
    assert_eq!(
        error(slack.post("chat.postMessage").json(&body)).await,
        "not_authed"
    );
    let wrong = slack
        .post("chat.postMessage")
        .bearer_auth("xoxb-wrong")
        .json(&body);
    assert_eq!(error(wrong).await, "invalid_auth");
    let history = slack
        .post("conversations.history")
        .form(&[("channel", "C-OPS")]);
    assert_eq!(error(history).await, "not_authed");
    let as_form = slack
        .post("chat.postMessage")
        .bearer_auth(TOKEN)
        .form(&[("channel", "C-OPS"), ("text", "hi")]);
    assert_eq!(error(as_form).await, "invalid_form_data");
    let charset = slack
        .post("chat.postMessage")
        .bearer_auth(TOKEN)
        .header("content-type", "application/json; charset=utf-8")
        .body(body.to_string());
    assert_eq!(
        charset.send().await.unwrap().json::<Value>().await.unwrap()["ok"],
        true
    );

    let refused = async |body: Value| {
        slack.call("chat.postMessage", body).await["error"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(
        refused(json!({"channel": "C-NOPE", "text": "hi"})).await,
        "channel_not_found"
    );
    assert_eq!(refused(json!({"text": "hi"})).await, "channel_not_found");
    assert_eq!(refused(json!({"channel": "C-OPS"})).await, "no_text");
    let section =
        |text: String| json!({"type": "section", "text": {"type": "mrkdwn", "text": text}});
    let too_long = json!({"channel": "C-OPS", "text": "t", "blocks": [section("x".repeat(3001))]});
    assert_eq!(refused(too_long).await, "invalid_blocks");
    let too_many: Vec<Value> = (0..51).map(|_| json!({"type": "divider"})).collect();
    assert_eq!(
        refused(json!({"channel": "C-OPS", "text": "t", "blocks": too_many})).await,
        "invalid_blocks"
    );
    assert_eq!(
        refused(json!({"channel": "C-OPS", "text": "t", "blocks": [{"text": "no type"}]})).await,
        "invalid_blocks"
    );
    assert_eq!(
        refused(json!({"channel": "C-OPS", "text": "t", "blocks": {"type": "divider"}})).await,
        "invalid_blocks"
    );
    // Block Kit's other limits.
    let plain = |text: String| json!({"type": "plain_text", "text": text});
    let over_limit = [
        json!({"type": "header", "text": plain("h".repeat(151))}),
        json!({"type": "section", "fields": vec![json!({"type": "mrkdwn", "text": "f"}); 11]}),
        json!({"type": "section", "fields": [{"type": "mrkdwn", "text": "f".repeat(2001)}]}),
        json!({"type": "context", "elements": vec![json!({"type": "mrkdwn", "text": "c"}); 11]}),
        json!({"type": "actions", "elements": [{"type": "button", "text": plain("b".repeat(76)), "url": "https://x"}]}),
    ];
    for block in over_limit {
        let body = json!({"channel": "C-OPS", "text": "t", "blocks": [block]});
        assert_eq!(refused(body).await, "invalid_blocks", "{block}");
    }
    let long_text = json!({"channel": "C-OPS", "text": "t".repeat(40_001)});
    assert_eq!(refused(long_text).await, "msg_too_long");
    let bad_md = json!({"channel": "C-OPS", "text": "t", "metadata": {"event_type": "x"}});
    assert_eq!(refused(bad_md).await, "invalid_metadata_format");
    let fifty: Vec<Value> = (0..50).map(|_| section("x".repeat(3000))).collect();
    let ok = slack
        .call(
            "chat.postMessage",
            json!({"channel": "C-OPS", "text": "t", "blocks": fifty}),
        )
        .await;
    assert_eq!(ok["ok"], true);

    // Only the charset-suffixed post and the 50-block one were stored; a new channel can be added.
    assert_eq!(fake.messages("C-OPS").len(), 2);
    fake.add_channel("C-NEW");
    assert_eq!(
        slack
            .call(
                "chat.postMessage",
                json!({"channel": "C-NEW", "text": "hi"})
            )
            .await["ok"],
        true
    );
}

#[tokio::test]
async fn an_injected_429_carries_retry_after_and_the_slack_body_then_calls_succeed() {
    let fake = FakeChat::start().await;
    let slack = Slack::new(&fake);
    fake.fail_next(
        1,
        Failure::RateLimited {
            retry_after_secs: 7,
        },
    );
    let body = json!({"channel": "C-OPS", "text": "hi"});
    let resp = slack
        .post("chat.postMessage")
        .bearer_auth(TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "7");
    assert_eq!(
        resp.json::<Value>().await.unwrap(),
        json!({"ok": false, "error": "ratelimited"})
    );
    assert!(fake.messages("C-OPS").is_empty());
    assert_eq!(slack.call("chat.postMessage", body).await["ok"], true);
    assert_eq!(fake.calls("chat.postMessage"), 2);
    assert_eq!(fake.messages("C-OPS").len(), 1);
}

#[tokio::test]
async fn injected_errors_are_fifo_and_can_target_one_route() {
    let fake = FakeChat::start().await;
    let slack = Slack::new(&fake);
    let body = json!({"channel": "C-OPS", "text": "hi"});
    fake.fail_next_on("webhook/teams", 1, Failure::ServerError);
    fake.fail_next(1, Failure::ServerError);
    fake.fail_next(1, Failure::SlackError("fatal_error"));
    fake.fail_next(1, Failure::Slow(Duration::from_millis(300)));

    let resp = slack
        .post("chat.postMessage")
        .bearer_auth(TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 500);
    assert_eq!(
        resp.json::<Value>().await.unwrap(),
        json!({"ok": false, "error": "internal_error"})
    );
    assert_eq!(
        slack.call("chat.postMessage", body.clone()).await,
        json!({"ok": false, "error": "fatal_error"})
    );
    let started = Instant::now();
    assert_eq!(slack.call("chat.postMessage", body).await["ok"], true);
    assert!(started.elapsed() >= Duration::from_millis(300));

    // The teams-only failure waited for its route.
    let teams = slack
        .http
        .post(fake.teams_webhook_url("t1"))
        .json(&card())
        .send()
        .await
        .unwrap();
    assert_eq!(teams.status(), 500);
    let teams = slack
        .http
        .post(fake.teams_webhook_url("t1"))
        .json(&card())
        .send()
        .await
        .unwrap();
    assert_eq!(teams.status(), 202);
    // Teams refuses a message over 28 KB.
    let mut big = card();
    big["attachments"][0]["content"]["body"] =
        json!([{"type": "TextBlock", "text": "x".repeat(29 * 1024)}]);
    let teams = slack
        .http
        .post(fake.teams_webhook_url("t1"))
        .json(&big)
        .send()
        .await
        .unwrap();
    assert_eq!(teams.status(), 413);
    assert_eq!(fake.calls("chat.postMessage"), 3);
    assert_eq!(fake.calls("webhook/teams"), 3);
    assert_eq!(fake.webhook_posts("teams").len(), 1);
}

#[tokio::test]
async fn the_slack_webhook_answers_ok_or_slack_error_codes() {
    let fake = FakeChat::start().await;
    let http = reqwest::Client::new();
    let post = async |id: &str, body: String| {
        let resp = http
            .post(fake.slack_webhook_url(id))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    };
    let good = json!({"text": "request r1 needs review", "blocks": [{"type": "divider"}]});
    assert_eq!(
        post("T1/B1/xyz", good.to_string()).await,
        (200, "ok".to_owned())
    );
    assert_eq!(
        post("T1/B1/xyz", "{not json".into()).await,
        (400, "invalid_payload".to_owned())
    );
    assert_eq!(
        post("T1/B1/xyz", json!({"blocks": []}).to_string()).await,
        (400, "invalid_payload".to_owned())
    );
    let bad_blocks = json!({"text": "t", "blocks": [{"no": "type"}]});
    assert_eq!(
        post("T1/B1/xyz", bad_blocks.to_string()).await,
        (400, "invalid_blocks".to_owned())
    );
    fake.disable_webhook("gone");
    assert_eq!(
        post("gone", good.to_string()).await,
        (404, "no_service".to_owned())
    );
    fake.fail_next_on("webhook/slack", 1, Failure::SlackError("action_prohibited"));
    assert_eq!(
        post("T1/B1/xyz", good.to_string()).await,
        (403, "action_prohibited".to_owned())
    );

    assert_eq!(
        fake.webhook_posts("slack"),
        vec![("T1/B1/xyz".to_owned(), good)]
    );
    assert_eq!(fake.calls("webhook/slack"), 6);
}

fn card() -> Value {
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "content": {
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "type": "AdaptiveCard",
                "version": "1.4",
                "body": [{"type": "TextBlock", "text": "request r1 needs review", "wrap": true}],
                "actions": [{"type": "Action.OpenUrl", "title": "Review", "url": "https://example.com/r1"}]
            }
        }]
    })
}

#[tokio::test]
async fn the_teams_webhook_accepts_adaptive_cards_with_202_and_refuses_bad_ones_with_400() {
    let fake = FakeChat::start().await;
    let http = reqwest::Client::new();
    let resp = http
        .post(fake.teams_webhook_url("wf-1"))
        .json(&card())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    assert_eq!(resp.text().await.unwrap(), "");
    assert_eq!(
        fake.webhook_posts("teams"),
        vec![("wf-1".to_owned(), card())]
    );

    let broken: [fn(&mut Value); 7] = [
        |c| c["type"] = json!("card"),
        |c| c["attachments"] = json!([]),
        |c| c["attachments"][0]["contentType"] = json!("application/json"),
        |c| c["attachments"][0]["content"]["type"] = json!("HeroCard"),
        |c| c["attachments"][0]["content"]["version"] = json!(1.4),
        |c| c["attachments"][0]["content"]["body"] = json!([{"text": "no type"}]),
        |c| {
            c["attachments"][0]["content"]["actions"][0]
                .as_object_mut()
                .unwrap()
                .remove("url");
        },
    ];
    for (n, breaks) in broken.iter().enumerate() {
        let mut bad = card();
        breaks(&mut bad);
        let resp = http
            .post(fake.teams_webhook_url("wf-1"))
            .json(&bad)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "case {n}");
        let error: Value = resp.json().await.unwrap();
        assert_eq!(error["error"]["code"], "BadRequest", "case {n}");
        assert!(error["error"]["message"].is_string(), "case {n}");
    }
    let resp = http
        .post(fake.teams_webhook_url("wf-1"))
        .body("nope")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(fake.webhook_posts("teams").len(), 1);
    assert_eq!(fake.calls("webhook/teams"), 9);
}

#[tokio::test]
async fn a_held_post_is_recorded_before_its_answer_is_released() {
    let fake = FakeChat::start().await;
    let slack = Slack::new(&fake);
    let held = fake.hold_next_post();
    let client = slack.clone();
    let call = tokio::spawn(async move {
        client
            .call(
                "chat.postMessage",
                json!({"channel": "C-OPS", "text": "held"}),
            )
            .await
    });
    tokio::time::timeout(Duration::from_secs(5), held.arrived())
        .await
        .expect("the post arrives");
    assert!(held.has_arrived());
    assert_eq!(fake.messages("C-OPS")[0].text, "held");
    let mut call = call;
    assert!(
        tokio::time::timeout(Duration::from_millis(200), &mut call)
            .await
            .is_err(),
        "the answer waits for release"
    );
    held.release();
    let answer = call.await.unwrap();
    assert_eq!(answer["ok"], true);
    assert_eq!(answer["ts"], fake.messages("C-OPS")[0].ts.as_str());
}

#[tokio::test]
async fn a_dropped_hold_hangs_that_answer_only_and_holds_apply_to_webhooks() {
    let fake = FakeChat::start().await;
    let slack = Slack::new(&fake);
    drop(fake.hold_next_post());
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let body = json!({"channel": "C-OPS", "text": "lost answer"});
    let url = format!("{}/api/chat.postMessage", fake.url());
    let hung = impatient
        .post(url)
        .bearer_auth(TOKEN)
        .json(&body)
        .send()
        .await;
    assert!(hung.unwrap_err().is_timeout());
    assert_eq!(
        fake.messages("C-OPS")[0].text,
        "lost answer",
        "posted although unanswered"
    );
    assert_eq!(
        slack
            .call(
                "chat.postMessage",
                json!({"channel": "C-OPS", "text": "next"})
            )
            .await["ok"],
        true
    );

    let held = fake.hold_next_post();
    let http = slack.http.clone();
    let url = fake.teams_webhook_url("wf");
    let call =
        tokio::spawn(async move { http.post(url).json(&card()).send().await.unwrap().status() });
    held.arrived().await;
    assert_eq!(fake.webhook_posts("teams").len(), 1);
    held.release();
    assert_eq!(call.await.unwrap(), 202);
}

#[tokio::test]
async fn bodies_headers_and_wait_for_are_inspectable() {
    let fake = FakeChat::start().await;
    let slack = Slack::new(&fake);
    assert!(
        !fake
            .wait_for(
                |s| s.top_level("C-OPS").len() == 1,
                Duration::from_millis(50)
            )
            .await
    );
    // The wait starts before the post does (`join!` polls in order on this one thread).
    let post = async {
        let req = slack
            .post("chat.postMessage")
            .bearer_auth(TOKEN)
            .header("user-agent", "countersign-test");
        req.json(&json!({"channel": "C-OPS", "text": "canary-7f3a"}))
            .send()
            .await
            .unwrap();
    };
    let (seen, ()) = tokio::join!(
        fake.wait_for(|s| s.top_level("C-OPS").len() == 1, Duration::from_secs(5)),
        post
    );
    assert!(seen);
    assert!(fake.all_bodies().iter().any(|b| b.contains("canary-7f3a")));
    let headers = fake.all_headers();
    assert!(
        headers.contains(&"user-agent: countersign-test".to_owned()),
        "{headers:?}"
    );
    assert!(headers.contains(&format!("authorization: Bearer {TOKEN}")));
    assert_eq!(fake.with_state(|s| s.calls("chat.postMessage")), 1);
}
