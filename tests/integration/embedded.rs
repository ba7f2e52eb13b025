//! The embedded default as a newcomer meets it: `countersign serve` with no configuration in an
//! empty directory, and `--repo` pointing at an existing repository.

use countersign::api::{State, Verdict};
use countersign::cli::client::{AgentClient, ReviewerClient};
use countersign::request::signature::AgentKey;
use serde_json::json;
use std::time::Duration;
use testkit::*;

#[cfg(unix)]
fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn serve_without_configuration_sets_up_a_private_data_dir_and_local_identities() {
    let cwd = tempfile::tempdir().unwrap();
    let server = Binary::spawn(&["serve", "--listen", "127.0.0.1:0"], cwd.path());
    let url = server.url.clone();
    let mut banner = Vec::new();
    for line in server.stdout.iter() {
        let last = line.contains("stands in for");
        banner.push(line);
        if last {
            break;
        }
    }
    let banner = banner.join("\n");
    assert!(banner.contains("countersign submit"), "{banner}");
    assert!(banner.contains("countersign review"), "{banner}");
    assert!(
        banner.contains("policy:     policies/ at"),
        "the banner names the policy commit: {banner}"
    );

    let data = cwd.path().join(".countersign");
    assert!(data.join("countersign.db").exists());
    assert!(data.join("repo.git/HEAD").exists());
    #[cfg(unix)]
    {
        assert_eq!(mode(&data), 0o700);
        assert_eq!(mode(&data.join("keys/local-agent.key")), 0o600);
        assert_eq!(mode(&data.join("keys/local-reviewer.token")), 0o600);
    }
    let key = std::fs::read_to_string(data.join("keys/local-agent.key")).unwrap();
    let token = std::fs::read_to_string(data.join("keys/local-reviewer.token")).unwrap();
    let agent = AgentClient::new(
        &url,
        "local-agent",
        AgentKey::new(key.trim().as_bytes().to_vec()).unwrap(),
    );
    let submitted = agent
        .submit(&action_body(json!({"limit": 1})), None)
        .await
        .unwrap();
    let id = submitted.id.as_str();
    agent
        .wait_for(id, Duration::from_secs(20), |s| {
            s.state == State::PendingReview
        })
        .await
        .unwrap();
    ReviewerClient::new(&url, token.trim())
        .review(id, Verdict::Approve, None)
        .await
        .expect("the local reviewer approves");
    // The seeded repository holds the example policy and templates on main.
    let repo = git2::Repository::open(data.join("repo.git")).unwrap();
    let main = repo
        .revparse_single("refs/heads/main")
        .unwrap()
        .peel_to_tree()
        .unwrap();
    for path in ["policies/CODEOWNERS", "templates/pull_request.md.j2"] {
        assert!(
            main.get_path(std::path::Path::new(path)).is_ok(),
            "{path} missing on main"
        );
    }
}

#[tokio::test]
async fn an_existing_repository_can_be_the_gitops_repository() {
    let dir = tempfile::tempdir().unwrap();
    let repo_path = dir.path().join("gitops");
    let repo = git2::Repository::init(&repo_path).unwrap();
    {
        let sig = git2::Signature::now("ops", "ops@example.com").unwrap();
        let blob = repo.blob(b"# Review: {{ id }} by {{ agent }}\n").unwrap();
        let mut templates = repo.treebuilder(None).unwrap();
        templates
            .insert("pull_request.md.j2", blob, 0o100644)
            .unwrap();
        let mut root = repo.treebuilder(None).unwrap();
        root.insert("templates", templates.write().unwrap(), 0o040000)
            .unwrap();
        let tree = repo.find_tree(root.write().unwrap()).unwrap();
        repo.commit(Some("refs/heads/trunk"), &sig, &sig, "init", &tree, &[])
            .unwrap();
    }
    countersign::forge::LocalForge::open(&repo_path, "trunk", false, "", false)
        .unwrap()
        .commit_files(
            "trunk",
            &[
                ("policies/CODEOWNERS", TEST_CODEOWNERS),
                ("policies/agents.toml", TEST_AGENTS_TOML),
                ("policies/teams.toml", TEST_TEAMS_TOML),
                ("policies/actions.toml", TEST_ACTIONS_TOML),
            ],
            "policy",
        )
        .unwrap();
    let h = Harness::start_with(|c| {
        c.repo = Some(repo_path.clone());
        c.base_branch = "trunk".into();
    })
    .await;
    let id = h.pending().await;
    let branch = repo
        .find_branch(&format!("countersign/{id}"), git2::BranchType::Local)
        .expect("the review branch is in the given repository");
    let commit = branch.get().peel_to_commit().unwrap();
    assert_eq!(
        commit.parent(0).unwrap().id(),
        repo.revparse_single("trunk").unwrap().id()
    );
    let files = h
        .server
        .local_forge()
        .review_files(&format!("countersign/{id}"))
        .unwrap();
    let md = files.iter().find(|f| f.ends_with(".md")).unwrap();
    let blob = commit
        .tree()
        .unwrap()
        .get_path(std::path::Path::new(md))
        .unwrap()
        .to_object(&repo)
        .unwrap();
    let text = String::from_utf8(blob.as_blob().unwrap().content().to_vec()).unwrap();
    assert_eq!(
        text.trim(),
        format!("# Review: {id} by agent-a"),
        "the base branch's template is used"
    );

    // A repository without the base branch is refused at start-up, naming the branch.
    let missing = countersign::app::Server::start(&{
        let mut c = config(&dir.path().join("other"));
        c.repo = Some(repo_path.clone());
        c.base_branch = "main".into();
        c
    })
    .await;
    let error = format!("{:#}", missing.err().expect("must not start"));
    assert!(error.contains("no branch `main`"), "{error}");
}
