//! Exactly once across a crash, with the real binary: countersign is killed (`kill -9`) while
//! an approved action runs and is started again. A non-idempotent action is never re-run: the
//! request becomes `outcome_unknown` (status, ledger). An idempotent one is retried exactly
//! once, with the same idempotency key. The action's process does not outlive countersign.

use testkit::*;

use countersign::api::{RequestStatus, State, Verdict};
use countersign::cli::client::{AgentClient, ReviewerClient};
use serde_json::json;
use std::path::Path;
use std::time::Duration;

/// The first run records itself and hangs (until killed); any later run records itself and
/// exits 0. Each run writes the request id it was given (the idempotency key).
fn actions(out: &Path, idempotent: bool) -> String {
    let d = out.display();
    format!(
        "[actions.\"db.export\"]\n\
         executor = {{ type = \"command\", argv = [\"/bin/sh\", \"-c\", \"echo $$ $COUNTERSIGN_REQUEST_ID >> {d}/runs; if [ -e {d}/started ]; then exit 0; fi; touch {d}/started; exec sleep 60\"], timeout = \"2m\" }}\n\
         audience = \"exports\"\nidempotent = {idempotent}\n"
    )
}

fn runs(out: &Path) -> Vec<(i32, String)> {
    std::fs::read_to_string(out.join("runs"))
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let (pid, id) = l.split_once(' ').unwrap();
            (pid.parse().unwrap(), id.to_owned())
        })
        .collect()
}

fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    unsafe { libc::kill(pid, 0) == 0 }
}

/// Starts the binary with the test policy and `actions`, submits a db.export request, has bob
/// approve it, and kills the server once the action has started. Returns the config, the
/// request id.
async fn kill_during_execution(dir: &Path, out: &Path, idempotent: bool) -> String {
    let config = write_server_config(dir);
    let forge =
        countersign::forge::LocalForge::open(&dir.join("data/repo.git"), "main", false, "", false)
            .unwrap();
    forge
        .commit_files(
            "main",
            &[("policies/actions.toml", &actions(out, idempotent))],
            "crash test actions",
        )
        .unwrap();
    let mut server = spawn_server(&config);
    let agent = AgentClient::new(&server.url, "agent-a", key(KEY_A_NEW));
    let submitted = agent
        .submit(&action_body(json!({"limit": 9})), None)
        .await
        .unwrap();
    let id = submitted.id.as_str().to_owned();
    agent
        .wait_for(&id, Duration::from_secs(20), |s| {
            s.state == State::PendingReview
        })
        .await
        .unwrap();
    let r = ReviewerClient::new(&server.url, BOB)
        .review(&id, Verdict::Approve, None)
        .await
        .unwrap();
    assert_eq!(r.state, State::Approved);
    wait_until("the action to start", Duration::from_secs(20), async || {
        !runs(out).is_empty()
    })
    .await;
    let status = agent.status(&id).await.unwrap();
    assert_eq!(status.state, State::Executing, "{status:?}");
    server.kill_9();
    // The action dies with countersign (PR_SET_PDEATHSIG): nothing runs unobserved.
    let pid = runs(out)[0].0;
    wait_until(
        "the action to die with countersign",
        Duration::from_secs(10),
        async || !alive(pid),
    )
    .await;
    id
}

async fn restart_and_wait(dir: &Path, id: &str, state: State) -> (Binary, RequestStatus) {
    let server = spawn_server(&dir.join("countersign.toml"));
    let agent = AgentClient::new(&server.url, "agent-a", key(KEY_A_NEW));
    let status = agent
        .wait_for(id, Duration::from_secs(20), |s| s.state == state)
        .await
        .unwrap();
    (server, status)
}

async fn ledger_of(server: &mut Binary, dir: &Path, id: &str) -> Vec<String> {
    // Let the writer commit, then stop the server so the branch is final.
    settle_data_dir(&dir.join("data")).await;
    server.kill_9();
    ledger_entries(&dir.join("data/repo.git"))
        .into_iter()
        .filter(|e| e["request_id"] == id)
        .map(|e| e["event"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_crash_during_a_non_idempotent_action_gives_outcome_unknown_and_no_second_run() {
    let dir = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let id = kill_during_execution(dir.path(), out.path(), false).await;
    let (mut server, status) = restart_and_wait(dir.path(), &id, State::OutcomeUnknown).await;
    let execution = status.execution.expect("it started");
    assert_eq!(execution.attempts, 1, "{execution:?}");
    assert!(execution.outcome.is_none(), "{execution:?}");
    settle_data_dir(&dir.path().join("data")).await;
    assert_eq!(runs(out.path()).len(), 1, "never run again");
    let ledger = ledger_of(&mut server, dir.path(), &id).await;
    assert_eq!(
        ledger[ledger.len() - 3..],
        ["execution_started", "credential_issued", "outcome_unknown"],
        "{ledger:?}"
    );
}

#[tokio::test]
async fn a_crash_during_an_idempotent_action_retries_it_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let id = kill_during_execution(dir.path(), out.path(), true).await;
    let (mut server, status) = restart_and_wait(dir.path(), &id, State::Succeeded).await;
    let execution = status.execution.expect("it ran");
    assert_eq!(execution.attempts, 2, "{execution:?}");
    assert_eq!(execution.outcome.unwrap().exit_status, Some(0));
    settle_data_dir(&dir.path().join("data")).await;
    let runs = runs(out.path());
    assert_eq!(runs.len(), 2, "the first run and one retry: {runs:?}");
    assert!(
        runs.iter().all(|(_, key)| key == &id),
        "the same idempotency key both times: {runs:?}"
    );
    let ledger = ledger_of(&mut server, dir.path(), &id).await;
    assert_eq!(
        ledger[ledger.len() - 5..],
        [
            "execution_started",
            "credential_issued",
            "execution_retried",
            "credential_issued",
            "execution_succeeded"
        ],
        "{ledger:?}"
    );
}
