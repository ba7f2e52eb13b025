//! JSON shapes of GitHub's objects (users, repositories, pull requests, reviews, comments,
//! statuses, labels, installations, runs…), written after `@octokit/openapi`'s
//! `api.github.com` description and the `@octokit/webhooks-examples` payloads. The REST routes
//! and the webhook payloads both build their bodies here, so the two cannot drift apart.
//! `tests/fake_github_selftest.rs` checks them against the OpenAPI required fields and the real
//! example payloads.

use super::git::CommitInfo;
use super::state::*;
use serde_json::{Value, json};

fn node_id(kind: &str, id: u64) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(format!("0{}:{kind}{id}", kind.len()))
}

pub fn user(s: &State, login: &str) -> Value {
    let u = s.user_ref(login);
    let api = format!("{}/users/{}", s.base_url, u.login);
    json!({
        "login": u.login,
        "id": u.id,
        "node_id": node_id(u.kind.as_str(), u.id),
        "avatar_url": format!("{}/avatars/u/{}?v=4", s.base_url, u.id),
        "gravatar_id": "",
        "url": api,
        "html_url": format!("{}/{}", s.base_url, u.login.trim_end_matches("[bot]")),
        "followers_url": format!("{api}/followers"),
        "following_url": format!("{api}/following{{/other_user}}"),
        "gists_url": format!("{api}/gists{{/gist_id}}"),
        "starred_url": format!("{api}/starred{{/owner}}{{/repo}}"),
        "subscriptions_url": format!("{api}/subscriptions"),
        "organizations_url": format!("{api}/orgs"),
        "repos_url": format!("{api}/repos"),
        "events_url": format!("{api}/events{{/privacy}}"),
        "received_events_url": format!("{api}/received_events"),
        "type": u.kind.as_str(),
        "user_view_type": "public",
        "site_admin": false,
    })
}

/// The `organization` object of webhook payloads.
pub fn org(s: &State, login: &str) -> Value {
    let u = s.user_ref(login);
    let api = format!("{}/orgs/{login}", s.base_url);
    json!({
        "login": login,
        "id": u.id,
        "node_id": node_id("Organization", u.id),
        "url": api,
        "repos_url": format!("{api}/repos"),
        "events_url": format!("{api}/events"),
        "hooks_url": format!("{api}/hooks"),
        "issues_url": format!("{api}/issues"),
        "members_url": format!("{api}/members{{/member}}"),
        "public_members_url": format!("{api}/public_members{{/member}}"),
        "avatar_url": format!("{}/avatars/u/{}?v=4", s.base_url, u.id),
        "description": "",
    })
}

pub fn repo_api(s: &State, r: &Repo) -> String {
    format!("{}/repos/{}", s.base_url, r.full_name())
}

pub fn repo(s: &State, r: &Repo) -> Value {
    let api = repo_api(s, r);
    let html = format!("{}/{}", s.base_url, r.full_name());
    let open = r.pulls.values().filter(|p| p.state == PullState::Open);
    let open = open.count();
    let mut v = json!({
        "id": r.id,
        "node_id": node_id("Repository", r.id),
        "name": r.name,
        "full_name": r.full_name(),
        "private": true,
        "owner": user(s, &r.owner),
        "html_url": html,
        "description": null,
        "fork": false,
        "url": api,
        "created_at": iso(r.created_at),
        "updated_at": iso(r.created_at),
        "pushed_at": iso(s.now()),
    });
    let more = json!({
        "git_url": format!("git://{}/{}.git", host(s), r.full_name()),
        "ssh_url": format!("git@{}:{}.git", host(s), r.full_name()),
        "clone_url": format!("{html}.git"),
        "svn_url": html,
        "homepage": null,
        "size": 1,
        "stargazers_count": 0,
        "watchers_count": 0,
        "language": null,
        "has_issues": true,
        "has_projects": true,
        "has_downloads": true,
        "has_wiki": true,
        "has_pages": false,
        "has_discussions": false,
        "forks_count": 0,
        "mirror_url": null,
        "archived": false,
        "disabled": false,
        "open_issues_count": open,
        "license": null,
        "allow_forking": false,
        "is_template": false,
        "web_commit_signoff_required": false,
        "topics": [],
        "visibility": "private",
        "forks": 0,
        "open_issues": open,
        "watchers": 0,
        "default_branch": r.default_branch,
        "custom_properties": {},
        "network_count": 0,
        "subscribers_count": 0,
    });
    v.as_object_mut()
        .unwrap()
        .extend(more.as_object().unwrap().clone());
    let urls = [
        ("forks_url", "/forks"),
        ("keys_url", "/keys{/key_id}"),
        ("collaborators_url", "/collaborators{/collaborator}"),
        ("teams_url", "/teams"),
        ("hooks_url", "/hooks"),
        ("issue_events_url", "/issues/events{/number}"),
        ("events_url", "/events"),
        ("assignees_url", "/assignees{/user}"),
        ("branches_url", "/branches{/branch}"),
        ("tags_url", "/tags"),
        ("blobs_url", "/git/blobs{/sha}"),
        ("git_tags_url", "/git/tags{/sha}"),
        ("git_refs_url", "/git/refs{/sha}"),
        ("trees_url", "/git/trees{/sha}"),
        ("statuses_url", "/statuses/{sha}"),
        ("languages_url", "/languages"),
        ("stargazers_url", "/stargazers"),
        ("contributors_url", "/contributors"),
        ("subscribers_url", "/subscribers"),
        ("subscription_url", "/subscription"),
        ("commits_url", "/commits{/sha}"),
        ("git_commits_url", "/git/commits{/sha}"),
        ("comments_url", "/comments{/number}"),
        ("issue_comment_url", "/issues/comments{/number}"),
        ("contents_url", "/contents/{+path}"),
        ("compare_url", "/compare/{base}...{head}"),
        ("merges_url", "/merges"),
        ("archive_url", "/{archive_format}{/ref}"),
        ("downloads_url", "/downloads"),
        ("issues_url", "/issues{/number}"),
        ("pulls_url", "/pulls{/number}"),
        ("milestones_url", "/milestones{/number}"),
        (
            "notifications_url",
            "/notifications{?since,all,participating}",
        ),
        ("labels_url", "/labels{/name}"),
        ("releases_url", "/releases{/id}"),
        ("deployments_url", "/deployments"),
    ];
    for (key, suffix) in urls {
        v[key] = format!("{api}{suffix}").into();
    }
    v
}

fn host(s: &State) -> &str {
    s.base_url.trim_start_matches("http://")
}

pub fn label(s: &State, r: &Repo, l: &Label) -> Value {
    json!({
        "id": l.id,
        "node_id": node_id("Label", l.id),
        "url": format!("{}/labels/{}", repo_api(s, r), l.name),
        "name": l.name,
        "color": l.color,
        "default": false,
        "description": l.description,
    })
}

pub fn team(s: &State, t: &Team) -> Value {
    let api = format!("{}/orgs/{}/teams/{}", s.base_url, t.org, t.slug);
    json!({
        "id": t.id,
        "node_id": node_id("Team", t.id),
        "url": api,
        "html_url": format!("{}/orgs/{}/teams/{}", s.base_url, t.org, t.slug),
        "name": t.name,
        "slug": t.slug,
        "description": null,
        "privacy": "closed",
        "notification_setting": "notifications_enabled",
        "permission": "pull",
        "members_url": format!("{api}/members{{/member}}"),
        "repositories_url": format!("{api}/repos"),
        "parent": null,
    })
}

fn branch_side(s: &State, r: &Repo, branch: &str, sha: &str) -> Value {
    json!({
        "label": format!("{}:{branch}", r.owner),
        "ref": branch,
        "sha": sha,
        "user": user(s, &r.owner),
        "repo": repo(s, r),
    })
}

/// A pull request; `full` adds what `GET /pulls/{n}` and `pull_request` webhooks carry
/// (merged, mergeable, counts) on top of the list / review-payload shape.
pub fn pull(s: &State, r: &Repo, p: &Pull, full: bool) -> Value {
    let api = repo_api(s, r);
    let html = format!("{}/{}/pull/{}", s.base_url, r.full_name(), p.number);
    let n = p.number;
    let base_sha = super::git::branch_sha(&r.path, &p.base_ref).unwrap_or_default();
    let labels: Vec<Value> = p
        .labels
        .iter()
        .filter_map(|l| r.labels.get(l))
        .map(|l| label(s, r, l))
        .collect();
    let teams = p.requested_teams.iter().filter_map(|slug| {
        let t = s.teams.get(&(r.owner.clone(), slug.clone()))?;
        Some(team(s, t))
    });
    let state = match p.state {
        PullState::Open => "open",
        PullState::Closed => "closed",
    };
    let links = json!({
            "self": {"href": format!("{api}/pulls/{n}")},
            "html": {"href": html},
            "issue": {"href": format!("{api}/issues/{n}")},
            "comments": {"href": format!("{api}/issues/{n}/comments")},
            "review_comments": {"href": format!("{api}/pulls/{n}/comments")},
            "review_comment": {"href": format!("{api}/pulls/comments{{/number}}")},
            "commits": {"href": format!("{api}/pulls/{n}/commits")},
            "statuses": {"href": format!("{api}/statuses/{}", p.head_sha)},

    });
    let mut v = json!({
        "url": format!("{api}/pulls/{n}"),
        "id": p.id,
        "node_id": node_id("PullRequest", p.id),
        "html_url": html,
        "diff_url": format!("{html}.diff"),
        "patch_url": format!("{html}.patch"),
        "issue_url": format!("{api}/issues/{n}"),
        "number": n,
        "state": state,
        "locked": false,
        "title": p.title,
        "user": user(s, &p.user),
        "body": p.body,
        "created_at": iso(p.created_at),
        "updated_at": iso(p.updated_at),
        "closed_at": p.closed_at.map(iso),
        "merged_at": p.merged_at.map(iso),
        "merge_commit_sha": p.merge_commit_sha,
        "assignee": null,
        "assignees": [],
        "requested_reviewers": p.requested_reviewers.iter().map(|u| user(s, u)).collect::<Vec<_>>(),
        "requested_teams": teams.collect::<Vec<_>>(),
        "labels": labels,
        "milestone": null,
        "draft": p.draft,
        "commits_url": format!("{api}/pulls/{n}/commits"),
        "review_comments_url": format!("{api}/pulls/{n}/comments"),
        "review_comment_url": format!("{api}/pulls/comments{{/number}}"),
        "comments_url": format!("{api}/issues/{n}/comments"),
        "statuses_url": format!("{api}/statuses/{}", p.head_sha),
        "head": branch_side(s, r, &p.head_ref, &p.head_sha),
        "base": branch_side(s, r, &p.base_ref, &base_sha),
        "_links": links,
        "author_association": association(s, r, &p.user),
        "auto_merge": null,
        "active_lock_reason": null,
    });
    if full {
        let commits = super::git::commits_between(&r.path, &p.base_ref, &p.head_sha).len();
        let open = p.state == PullState::Open;
        let comments = r.comments.iter().filter(|c| c.issue_number == n).count();
        let extra = json!({
            "merged": p.merged,
            "mergeable": open.then_some(true),
            "rebaseable": open.then_some(true),
            "mergeable_state": if open { "clean" } else { "unknown" },
            "merged_by": p.merged_by.as_deref().map(|u| user(s, u)),
            "comments": comments,
            "review_comments": 0,
            "maintainer_can_modify": false,
            "commits": if p.merged { commits.max(1) } else { commits },
            "additions": 1,
            "deletions": 0,
            "changed_files": 1,
        });
        v.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
    }
    v
}

/// `OWNER` for the repository owner, `MEMBER` for organisation team members, else
/// `CONTRIBUTOR`/`NONE`.
pub fn association(s: &State, r: &Repo, login: &str) -> &'static str {
    if login == r.owner {
        "OWNER"
    } else if s.teams.values().any(|t| t.members.contains_key(login)) {
        "MEMBER"
    } else {
        "NONE"
    }
}

/// A review as `GET /pulls/{n}/reviews` writes it (`hook` = false: `state` in capitals) or as
/// the `review` of a `pull_request_review` payload (`hook` = true: lower case).
pub fn review(s: &State, r: &Repo, p: &Pull, rv: &Review, hook: bool) -> Value {
    let api = repo_api(s, r);
    let html = format!(
        "{}/{}/pull/{}#pullrequestreview-{}",
        s.base_url,
        r.full_name(),
        p.number,
        rv.id
    );
    let pr_url = format!("{api}/pulls/{}", p.number);
    let state = if hook {
        rv.state.hook()
    } else {
        rv.state.api()
    };
    let body = if hook && rv.body.is_empty() {
        Value::Null
    } else {
        rv.body.clone().into()
    };
    json!({
        "id": rv.id,
        "node_id": node_id("PullRequestReview", rv.id),
        "user": user(s, &rv.user),
        "body": body,
        "commit_id": rv.commit_id,
        "submitted_at": iso(rv.submitted_at),
        "state": state,
        "html_url": html,
        "pull_request_url": pr_url,
        "author_association": association(s, r, &rv.user),
        "_links": {"html": {"href": html}, "pull_request": {"href": pr_url}},
    })
}

pub fn comment(s: &State, r: &Repo, c: &Comment) -> Value {
    let api = repo_api(s, r);
    let url = format!("{api}/issues/comments/{}", c.id);
    let html = format!(
        "{}/{}/pull/{}#issuecomment-{}",
        s.base_url,
        r.full_name(),
        c.issue_number,
        c.id
    );
    let via_app = s.user_ref(&c.user).kind == UserKind::Bot;
    json!({
        "url": url,
        "html_url": html,
        "issue_url": format!("{api}/issues/{}", c.issue_number),
        "id": c.id,
        "node_id": node_id("IssueComment", c.id),
        "user": user(s, &c.user),
        "created_at": iso(c.created_at),
        "updated_at": iso(c.updated_at),
        "author_association": association(s, r, &c.user),
        "body": c.body,
        "reactions": reactions(&format!("{url}/reactions")),
        "performed_via_github_app": if via_app { app(s) } else { Value::Null },
    })
}

fn reactions(url: &str) -> Value {
    json!({
        "url": url, "total_count": 0, "+1": 0, "-1": 0, "laugh": 0, "hooray": 0,
        "confused": 0, "heart": 0, "rocket": 0, "eyes": 0,
    })
}

/// The `issue` of an `issue_comment` payload for a pull request (with its `pull_request` key).
pub fn issue_for_pull(s: &State, r: &Repo, p: &Pull) -> Value {
    let api = repo_api(s, r);
    let n = p.number;
    let html = format!("{}/{}/pull/{n}", s.base_url, r.full_name());
    let comments = r.comments.iter().filter(|c| c.issue_number == n).count();
    let pr = pull(s, r, p, false);
    json!({
        "url": format!("{api}/issues/{n}"),
        "repository_url": api,
        "labels_url": format!("{api}/issues/{n}/labels{{/name}}"),
        "comments_url": format!("{api}/issues/{n}/comments"),
        "events_url": format!("{api}/issues/{n}/events"),
        "html_url": html,
        "id": p.id + 1,
        "node_id": node_id("Issue", p.id),
        "number": n,
        "title": p.title,
        "user": pr["user"],
        "labels": pr["labels"],
        "state": pr["state"],
        "locked": false,
        "assignee": null,
        "assignees": [],
        "milestone": null,
        "comments": comments,
        "created_at": pr["created_at"],
        "updated_at": pr["updated_at"],
        "closed_at": pr["closed_at"],
        "author_association": pr["author_association"],
        "active_lock_reason": null,
        "draft": p.draft,
        "pull_request": {
            "url": pr["url"],
            "html_url": html,
            "diff_url": format!("{html}.diff"),
            "patch_url": format!("{html}.patch"),
            "merged_at": pr["merged_at"],
        },
        "body": p.body,
        "reactions": reactions(&format!("{api}/issues/{n}/reactions")),
        "timeline_url": format!("{api}/issues/{n}/timeline"),
        "performed_via_github_app": null,
        "state_reason": null,
    })
}

pub fn status(s: &State, r: &Repo, st: &Status, with_creator: bool) -> Value {
    let mut v = json!({
        "url": format!("{}/statuses/{}", repo_api(s, r), st.sha),
        "avatar_url": format!("{}/avatars/u/{}?v=4", s.base_url, s.user_ref(&st.creator).id),
        "id": st.id,
        "node_id": node_id("StatusContext", st.id),
        "state": st.state,
        "description": st.description,
        "target_url": st.target_url,
        "context": st.context,
        "created_at": iso(st.created_at),
        "updated_at": iso(st.created_at),
    });
    if with_creator {
        v["creator"] = user(s, &st.creator);
    }
    v
}

pub fn app(s: &State) -> Value {
    let a = &s.app;
    let owner = s.installations.first().map(|i| i.account.clone());
    json!({
        "id": a.id,
        "slug": a.slug,
        "node_id": node_id("Integration", a.id),
        "client_id": format!("Iv1.{:016x}", a.id),
        "owner": user(s, &owner.unwrap_or_default()),
        "name": a.name,
        "description": "countersign test App",
        "external_url": format!("{}/countersign", s.base_url),
        "html_url": format!("{}/apps/{}", s.base_url, a.slug),
        "created_at": iso(1_700_000_000),
        "updated_at": iso(1_700_000_000),
        "permissions": a.permissions,
        "events": a.events,
        "installations_count": s.installations.len(),
    })
}

pub fn installation(s: &State, i: &Installation) -> Value {
    let api = format!("{}/app/installations/{}", s.base_url, i.id);
    json!({
        "id": i.id,
        "account": user(s, &i.account),
        "repository_selection": "selected",
        "access_tokens_url": format!("{api}/access_tokens"),
        "repositories_url": format!("{}/installation/repositories", s.base_url),
        "html_url": format!("{}/organizations/{}/settings/installations/{}", s.base_url, i.account, i.id),
        "app_id": s.app.id,
        "app_slug": s.app.slug,
        "target_id": s.user_ref(&i.account).id,
        "target_type": s.user_ref(&i.account).kind.as_str(),
        "permissions": i.permissions,
        "events": s.app.events,
        "created_at": iso(1_700_000_000),
        "updated_at": iso(1_700_000_000),
        "single_file_name": null,
        "has_multiple_single_files": false,
        "single_file_paths": [],
        "suspended_by": null,
        "suspended_at": null,
    })
}

pub fn commit(s: &State, r: &Repo, c: &CommitInfo) -> Value {
    let api = repo_api(s, r);
    let sig = |(name, email, when): &(String, String, i64)| json!({"name": name, "email": email, "date": iso(*when)});
    json!({
        "sha": c.sha,
        "node_id": node_id("Commit", c.sha.len() as u64),
        "url": format!("{api}/commits/{}", c.sha),
        "html_url": format!("{}/{}/commit/{}", s.base_url, r.full_name(), c.sha),
        "comments_url": format!("{api}/commits/{}/comments", c.sha),
        "commit": {
            "author": sig(&c.author),
            "committer": sig(&c.committer),
            "message": c.message,
            "tree": {"sha": c.tree, "url": format!("{api}/git/trees/{}", c.tree)},
            "url": format!("{api}/git/commits/{}", c.sha),
            "comment_count": 0,
            "verification": {"verified": false, "reason": "unsigned", "signature": null, "payload": null, "verified_at": null},
        },
        "author": null,
        "committer": null,
        "parents": c.parents.iter().map(|p| json!({
            "sha": p,
            "url": format!("{api}/commits/{p}"),
            "html_url": format!("{}/{}/commit/{p}", s.base_url, r.full_name()),
        })).collect::<Vec<_>>(),
    })
}

pub fn run(s: &State, r: &Repo, run: &Run) -> Value {
    let api = repo_api(s, r);
    let url = format!("{api}/actions/runs/{}", run.id);
    let wf = r.workflows.iter().find(|w| w.id == run.workflow_id);
    let (name, path) = wf.map(|w| (w.name.clone(), w.path())).unwrap_or_default();
    let head = super::git::commit_info(&r.path, &run.head_sha);
    let head_commit = head.map(|c| {
        json!({
            "id": c.sha, "tree_id": c.tree, "message": c.message, "timestamp": iso(c.committer.2),
            "author": {"name": c.author.0, "email": c.author.1},
            "committer": {"name": c.committer.0, "email": c.committer.1},
        })
    });
    let mut small_repo = repo(s, r);
    for key in ["network_count", "subscribers_count"] {
        small_repo.as_object_mut().unwrap().remove(key);
    }
    json!({
        "id": run.id,
        "name": name,
        "node_id": node_id("WorkflowRun", run.id),
        "head_branch": run.head_branch,
        "head_sha": run.head_sha,
        "path": path,
        "display_title": name,
        "run_number": run.run_number,
        "run_attempt": 1,
        "event": run.event,
        "status": run.status,
        "conclusion": run.conclusion,
        "workflow_id": run.workflow_id,
        "check_suite_id": run.id + 1,
        "check_suite_node_id": node_id("CheckSuite", run.id + 1),
        "url": url,
        "html_url": format!("{}/{}/actions/runs/{}", s.base_url, r.full_name(), run.id),
        "pull_requests": [],
        "created_at": iso(run.created_at),
        "updated_at": iso(run.updated_at),
        "run_started_at": iso(run.created_at),
        "actor": user(s, &run.actor),
        "triggering_actor": user(s, &run.actor),
        "jobs_url": format!("{url}/jobs"),
        "logs_url": format!("{url}/logs"),
        "check_suite_url": format!("{api}/check-suites/{}", run.id + 1),
        "artifacts_url": format!("{url}/artifacts"),
        "cancel_url": format!("{url}/cancel"),
        "rerun_url": format!("{url}/rerun"),
        "previous_attempt_url": null,
        "workflow_url": format!("{api}/actions/workflows/{}", run.workflow_id),
        "head_commit": head_commit,
        "repository": small_repo,
        "head_repository": small_repo,
    })
}

/// GitHub's error body.
pub fn error(message: &str, status: u16) -> Value {
    json!({
        "message": message,
        "documentation_url": "https://docs.github.com/rest",
        "status": status.to_string(),
    })
}
