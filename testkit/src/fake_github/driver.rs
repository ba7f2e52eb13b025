//! The driver: steps that read like a person on GitHub (approve, request changes, comment,
//! edit a comment, dismiss a review, push to a pull request's branch, close, reopen, join a
//! team), each changing the state the way GitHub does and delivering the webhook GitHub would
//! send; plus control over deliveries (lose the next ones, redeliver one, list them).
//! Every step acts on the driven repository (the first one unless [`FakeGitHub::drive`] chose
//! another) and returns once its webhook delivery was attempted.

use super::state::*;
use super::{FakeGitHub, git, issues, lock, pulls, shapes, webhooks};
use serde_json::{Value, json};

impl FakeGitHub {
    /// `user` approves pull request `pr` on its current head.
    pub async fn approve_as(&self, user: &str, pr: u64) -> u64 {
        self.review_as(user, pr, None, ReviewState::Approved, "")
            .await
    }

    /// `user` approves `pr` on an older commit `sha` (a review left on a page not refreshed).
    pub async fn approve_on_commit_as(&self, user: &str, pr: u64, sha: &str) -> u64 {
        self.review_as(user, pr, Some(sha), ReviewState::Approved, "")
            .await
    }

    pub async fn request_changes_as(&self, user: &str, pr: u64, body: &str) -> u64 {
        self.review_as(user, pr, None, ReviewState::ChangesRequested, body)
            .await
    }

    /// A review with state `COMMENTED`.
    pub async fn review_comment_as(&self, user: &str, pr: u64, body: &str) -> u64 {
        self.review_as(user, pr, None, ReviewState::Commented, body)
            .await
    }

    /// Submits a review (`pull_request_review` submitted); returns the review id. GitHub refuses
    /// an approval from the pull request's author; the driver lets it through so tests can show
    /// countersign ignores it anyway.
    pub async fn review_as(
        &self,
        user: &str,
        pr: u64,
        commit: Option<&str>,
        state: ReviewState,
        body: &str,
    ) -> u64 {
        let (id, queued) = {
            let mut s = lock(&self.inner);
            s.user(user);
            let full = s.driven().full_name();
            let (id, now) = (s.next_id(), s.now());
            let p = s
                .repo_mut(&full)
                .unwrap()
                .pulls
                .get_mut(&pr)
                .expect("pull request");
            let commit_id = commit.map(str::to_owned).unwrap_or(p.head_sha.clone());
            p.reviews.push(Review {
                id,
                user: user.to_owned(),
                state,
                commit_id,
                body: body.to_owned(),
                submitted_at: now,
            });
            p.requested_reviewers.retain(|r| r != user);
            let q = review_hook(
                &self.inner,
                &mut s,
                &full,
                pr,
                id,
                "submitted",
                user,
                Value::Null,
            );
            (id, q)
        };
        queued.wait().await;
        id
    }

    /// `user` edits the body of their review `review_id` (`pull_request_review` edited).
    pub async fn edit_review_as(&self, user: &str, pr: u64, review_id: u64, body: &str) {
        let queued = {
            let mut s = lock(&self.inner);
            let full = s.driven().full_name();
            let p = s.repo_mut(&full).unwrap().pulls.get_mut(&pr).unwrap();
            let rv = p
                .reviews
                .iter_mut()
                .find(|r| r.id == review_id)
                .expect("review");
            let from = std::mem::replace(&mut rv.body, body.to_owned());
            let changes = json!({"body": {"from": from}});
            review_hook(
                &self.inner,
                &mut s,
                &full,
                pr,
                review_id,
                "edited",
                user,
                changes,
            )
        };
        queued.wait().await;
    }

    /// `by` dismisses review `review_id` (`pull_request_review` dismissed).
    pub async fn dismiss_review(&self, pr: u64, review_id: u64, by: &str) {
        let queued = {
            let mut s = lock(&self.inner);
            s.user(by);
            let full = s.driven().full_name();
            let p = s.repo_mut(&full).unwrap().pulls.get_mut(&pr).unwrap();
            let rv = p
                .reviews
                .iter_mut()
                .find(|r| r.id == review_id)
                .expect("review");
            rv.state = ReviewState::Dismissed;
            review_hook(
                &self.inner,
                &mut s,
                &full,
                pr,
                review_id,
                "dismissed",
                by,
                Value::Null,
            )
        };
        queued.wait().await;
    }

    /// `user` writes a conversation comment on `pr` (`issue_comment` created); returns its id.
    pub async fn comment_as(&self, user: &str, pr: u64, body: &str) -> u64 {
        let (id, queued) = {
            let mut s = lock(&self.inner);
            s.user(user);
            let full = s.driven().full_name();
            assert!(s.driven().pulls.contains_key(&pr), "pull request #{pr}");
            let (c, q) = issues::add_comment_as(&self.inner, &mut s, &full, pr, user, body);
            (c.id, q)
        };
        queued.wait().await;
        id
    }

    /// `user` edits comment `comment_id` (`issue_comment` edited, with `changes.body.from`).
    pub async fn edit_comment_as(&self, user: &str, comment_id: u64, body: &str) {
        let queued = {
            let mut s = lock(&self.inner);
            s.user(user);
            let full = s.driven().full_name();
            let now = s.now();
            let r = s.repo_mut(&full).unwrap();
            let c = r
                .comments
                .iter_mut()
                .find(|c| c.id == comment_id)
                .expect("comment");
            let from = std::mem::replace(&mut c.body, body.to_owned());
            c.updated_at = now;
            let c = c.clone();
            let changes = json!({"body": {"from": from}});
            issues::comment_hook(&self.inner, &mut s, &full, &c, "edited", user, changes)
        };
        queued.wait().await;
    }

    /// `user` commits `path` = `content` on `pr`'s head branch (a real git commit) →
    /// `pull_request` synchronize. Returns the new head sha.
    pub async fn push_to_pr_as(&self, user: &str, pr: u64, path: &str, content: &str) -> String {
        let (sha, queued) = {
            let mut s = lock(&self.inner);
            s.user(user);
            let full = s.driven().full_name();
            let r = s.driven();
            let p = r.pulls.get(&pr).expect("pull request");
            let (repo_path, branch, before) =
                (r.path.clone(), p.head_ref.clone(), p.head_sha.clone());
            let email = format!("{user}@users.noreply.github.com");
            let message = format!("Update {path}");
            let files = [(path, Some(content))];
            let sha =
                git::commit_files(&repo_path, &branch, None, &files, &message, (user, &email));
            let now = s.now();
            let p = s.repo_mut(&full).unwrap().pulls.get_mut(&pr).unwrap();
            p.head_sha = sha.clone();
            p.updated_at = now;
            let extra = json!({"before": before, "after": sha});
            let q = pulls::pull_hook(&self.inner, &mut s, &full, pr, "synchronize", user, extra);
            (sha, q)
        };
        queued.wait().await;
        sha
    }

    /// `user` merges `pr` with GitHub's merge button (a merge commit on the base branch, as
    /// the repository allows people with write access): `pull_request` closed with `merged`
    /// and `merged_by` = `user`. Returns the merge commit.
    pub async fn merge_pr_as(&self, user: &str, pr: u64) -> String {
        let (sha, queued) = {
            let mut s = lock(&self.inner);
            s.user(user);
            let r = s.driven();
            let full = r.full_name();
            let p = r.pulls.get(&pr).expect("pull request").clone();
            assert!(
                p.state == PullState::Open && !p.merged,
                "pull request #{pr} cannot be merged"
            );
            let email = format!("{user}@users.noreply.github.com");
            let text = format!(
                "Merge pull request #{pr} from {}/{}\n\n{}",
                r.owner, p.head_ref, p.title
            );
            let sha = git::merge(
                &r.path,
                &p.base_ref,
                &p.head_sha,
                false,
                &text,
                (user, &email),
            )
            .expect("mergeable");
            let now = s.now();
            let p = s.repo_mut(&full).unwrap().pulls.get_mut(&pr).unwrap();
            p.state = PullState::Closed;
            p.merged = true;
            p.merged_at = Some(now);
            p.closed_at = Some(now);
            p.updated_at = now;
            p.merge_commit_sha = Some(sha.clone());
            p.merged_by = Some(user.to_owned());
            let q = pulls::pull_hook(&self.inner, &mut s, &full, pr, "closed", user, Value::Null);
            (sha, q)
        };
        queued.wait().await;
        sha
    }

    /// `user` closes `pr` without merging (`pull_request` closed).
    pub async fn close_pr_as(&self, user: &str, pr: u64) {
        self.set_pr_state(user, pr, PullState::Closed).await;
    }

    /// `user` reopens `pr` (`pull_request` reopened).
    pub async fn reopen_pr_as(&self, user: &str, pr: u64) {
        self.set_pr_state(user, pr, PullState::Open).await;
    }

    async fn set_pr_state(&self, user: &str, pr: u64, state: PullState) {
        let queued = {
            let mut s = lock(&self.inner);
            s.user(user);
            let full = s.driven().full_name();
            let now = s.now();
            let head = {
                let r = s.driven();
                git::branch_sha(&r.path, &r.pulls[&pr].head_ref)
            };
            let p = s
                .repo_mut(&full)
                .unwrap()
                .pulls
                .get_mut(&pr)
                .expect("pull request");
            assert!(
                !p.merged && p.state != state,
                "pull request #{pr} cannot change state"
            );
            p.state = state;
            p.updated_at = now;
            p.closed_at = (state == PullState::Closed).then_some(now);
            if let Some(sha) = head.filter(|_| state == PullState::Open) {
                p.head_sha = sha;
            }
            let action = if state == PullState::Open {
                "reopened"
            } else {
                "closed"
            };
            pulls::pull_hook(&self.inner, &mut s, &full, pr, action, user, Value::Null)
        };
        queued.wait().await;
    }

    /// `user` pushes `branch` (from the default branch) with `files` and opens a pull request
    /// (`pull_request` opened); returns its number.
    pub async fn open_pr_as(
        &self,
        user: &str,
        branch: &str,
        files: &[(&str, &str)],
        title: &str,
    ) -> u64 {
        let (n, queued) = {
            let mut s = lock(&self.inner);
            s.user(user);
            let r = s.driven().clone();
            let email = format!("{user}@users.noreply.github.com");
            let files: Vec<_> = files.iter().map(|(p, c)| (*p, Some(*c))).collect();
            let sha = git::commit_files(
                &r.path,
                branch,
                Some(&r.default_branch),
                &files,
                title,
                (user, &email),
            );
            let (id, now) = (s.next_id(), s.now());
            let full = r.full_name();
            let repo = s.repo_mut(&full).unwrap();
            let n = repo.next_number;
            repo.next_number += 1;
            repo.pulls.insert(
                n,
                Pull {
                    number: n,
                    id,
                    user: user.to_owned(),
                    title: title.to_owned(),
                    body: None,
                    head_ref: branch.to_owned(),
                    head_sha: sha,
                    base_ref: r.default_branch.clone(),
                    state: PullState::Open,
                    draft: false,
                    merged: false,
                    merge_commit_sha: None,
                    merged_by: None,
                    labels: vec![],
                    requested_reviewers: vec![],
                    requested_teams: vec![],
                    reviews: vec![],
                    created_at: now,
                    updated_at: now,
                    closed_at: None,
                    merged_at: None,
                },
            );
            (
                n,
                pulls::pull_hook(&self.inner, &mut s, &full, n, "opened", user, Value::Null),
            )
        };
        queued.wait().await;
        n
    }

    /// Adds `user` to team `org/team` (created if missing) as a member.
    pub fn add_team_member(&self, org: &str, team: &str, user: &str) {
        let mut s = lock(&self.inner);
        s.user(user);
        let id = s.next_id();
        let key = (org.to_owned(), team.to_owned());
        let t = s.teams.entry(key).or_insert_with(|| Team {
            id,
            org: org.to_owned(),
            slug: team.to_owned(),
            name: team.to_owned(),
            members: Default::default(),
        });
        t.members.insert(user.to_owned(), "member".into());
    }

    pub fn remove_team_member(&self, org: &str, team: &str, user: &str) {
        let mut s = lock(&self.inner);
        if let Some(t) = s.teams.get_mut(&(org.to_owned(), team.to_owned())) {
            t.members.remove(user);
        }
    }

    /// The next `n` webhooks are recorded but never delivered (the state still changes).
    pub fn lose_next_webhooks(&self, n: usize) {
        lock(&self.inner).lose_next_webhooks += n;
    }

    /// Delivers delivery `id` again: same `X-GitHub-Delivery`, same body (as GitHub's
    /// "Redeliver" button). Returns the receiver's status.
    pub async fn redeliver(&self, id: &str) -> Option<u16> {
        let queued = {
            let mut s = lock(&self.inner);
            let d = s
                .deliveries
                .iter()
                .find(|d| d.id == id)
                .expect("delivery")
                .clone();
            let q = webhooks::queue(&self.inner, &mut s, &d.event, d.body.clone(), true);
            s.deliveries[q.index].id = d.id;
            q
        };
        let index = queued.wait().await;
        lock(&self.inner).deliveries[index].status
    }

    /// Posts a webhook GitHub never sent: `body` as `event`, with GitHub's headers but signed
    /// with `secret` (`None`: no signature headers at all). Not recorded as a delivery; returns
    /// the receiver's status.
    pub async fn send_forged_webhook(
        &self,
        event: &str,
        body: &str,
        secret: Option<&str>,
    ) -> Option<u16> {
        let (url, hook_id, app_id) = {
            let s = lock(&self.inner);
            (s.webhook_url.clone()?, s.hook_id, s.app.id)
        };
        let d = Delivery {
            id: "6f1ad9a0-0000-4000-8000-000000000000".into(),
            event: event.to_owned(),
            action: None,
            body: body.to_owned(),
            status: None,
            lost: false,
            redelivery: false,
            error: None,
        };
        let headers = webhooks::headers(&d, secret.unwrap_or(""), hook_id, app_id);
        let mut req = reqwest::Client::new().post(url).body(body.to_owned());
        for (name, value) in headers {
            if secret.is_some() || !name.starts_with("x-hub-signature") {
                req = req.header(name, value);
            }
        }
        Some(req.send().await.ok()?.status().as_u16())
    }

    /// Every delivery so far (lost ones and redeliveries included), oldest first.
    pub fn deliveries(&self) -> Vec<Delivery> {
        lock(&self.inner).deliveries.clone()
    }

    /// Sends the `ping` event GitHub sends when a webhook is set up.
    pub async fn ping(&self) -> Option<u16> {
        let queued = {
            let mut s = lock(&self.inner);
            let full = s.driven().full_name();
            let (hook_id, app_id) = (s.hook_id, s.app.id);
            let url = s.webhook_url.clone();
            let payload = json!({
                "zen": "Design for failure.",
                "hook_id": hook_id,
                "hook": {"type": "App", "id": hook_id, "name": "web", "active": true,
                         "events": s.app.events, "app_id": app_id,
                         "config": {"content_type": "json", "insecure_ssl": "0", "url": url}},
            });
            let sender = s
                .installations
                .first()
                .map(|i| i.account.clone())
                .unwrap_or_default();
            webhooks::send(&self.inner, &mut s, "ping", &full, &sender, payload)
        };
        let index = queued.wait().await;
        lock(&self.inner).deliveries[index].status
    }
}

/// Sends `pull_request_review` `action` for review `review_id` of `pr`.
#[allow(clippy::too_many_arguments)]
fn review_hook(
    inner: &super::Inner,
    s: &mut State,
    full: &str,
    pr: u64,
    review_id: u64,
    action: &str,
    sender: &str,
    changes: Value,
) -> webhooks::Queued {
    let r = s.repo(full).unwrap();
    let p = &r.pulls[&pr];
    let rv = p.reviews.iter().find(|rv| rv.id == review_id).unwrap();
    let mut payload = json!({
        "action": action,
        "review": shapes::review(s, r, p, rv, true),
        "pull_request": shapes::pull(s, r, p, false),
    });
    if !changes.is_null() {
        payload["changes"] = changes;
    }
    webhooks::send(inner, s, "pull_request_review", full, sender, payload)
}
