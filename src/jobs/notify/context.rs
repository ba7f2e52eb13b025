//! What a notification says about its request, read from the store as of the delivery's event:
//! the masked context a template renders (`crate::notify::message::Context`).

use crate::engine::Engine;
use crate::notify::message::*;
use crate::store::RequestRow;
use crate::store::notify::DeliveryRow;

/// How much of the masked payload a message shows.
const PAYLOAD_PREVIEW: usize = 800;
const JUSTIFICATION_PREVIEW: usize = 1000;

/// Builds the context of a delivery from the stored request.
pub async fn context(
    engine: &Engine,
    row: &RequestRow,
    delivery: &DeliveryRow,
) -> anyhow::Result<Context> {
    let submission = engine.submission_of(row)?;
    let masker = engine.masker();
    let masked = masker.mask_request(&submission.payload, &submission.justification);
    let eval = row.evaluation()?;
    let (risk, approvals) = match &eval {
        Some(eval) => {
            // Only people who can actually approve are named, as on the pull request.
            let exclusions = engine.exclusions(&row.agent_id, eval);
            let approvals = eval
                .requirements
                .iter()
                .filter(|r| !r.optional)
                .map(|r| {
                    let owners: Vec<&str> = r
                        .owners
                        .iter()
                        .map(String::as_str)
                        .filter(|o| exclusions.may_list(o))
                        .collect();
                    let owners = if owners.is_empty() {
                        "(no eligible owner)".to_owned()
                    } else {
                        owners.join(" ")
                    };
                    format!(
                        "{} of {} ({}, {} line {})",
                        r.required, owners, r.section, r.file, r.line
                    )
                })
                .collect();
            (eval.risk.as_str().to_owned(), approvals)
        }
        None => ("unknown".to_owned(), vec![]),
    };
    // Each message shows the request as of its event (deliveries go out in order, so the last
    // one shows the latest state), not whatever state it reached since.
    let state = state_after(&delivery.event)
        .unwrap_or(row.state.as_str())
        .to_owned();
    let decision = decision(engine, row, &state, delivery).await?;
    let headline = match state.as_str() {
        "pending_review" | "received" => "Approval needed",
        "approved" => "Approved",
        "denied" => "Denied",
        "expired" => "Expired",
        "cancelled" => "Cancelled",
        "executing" => "Approved, running",
        "succeeded" => "Executed",
        "failed" => "Execution failed",
        "outcome_unknown" => "Outcome unknown",
        other => other,
    }
    .to_owned();
    let review_url = row.review_url.clone().unwrap_or_default();
    let review_label = if review_url.contains("github") {
        "Review on GitHub"
    } else {
        "Open the review"
    }
    .to_owned();
    Ok(Context {
        request_id: row.id.clone(),
        event: delivery.event.clone(),
        actor: delivery.actor.clone(),
        state,
        headline,
        agent: row.agent_id.clone(),
        action: row.action.clone(),
        resource: row.resource.clone(),
        environment: row.environment.clone(),
        risk,
        justification: shown(&truncate(&masked.justification, JUSTIFICATION_PREVIEW)),
        payload_summary: masked.summary.clone(),
        payload_preview: shown(&truncate(&masked.payload.to_string(), PAYLOAD_PREVIEW)),
        approvals: approvals.iter().map(|a: &String| shown(a)).collect(),
        expires_at: crate::time::rfc3339(row.expires_at),
        review_url,
        review_label,
        decision: decision.as_deref().map(shown),
        mention: None,
    })
}

/// The decision as people read it, from the stored reviews (reasons are stored masked).
/// The state a decision or outcome event leads to.
fn state_after(event: &str) -> Option<&'static str> {
    Some(match event {
        "approved" => "approved",
        "denied" => "denied",
        "expired" => "expired",
        "cancelled" => "cancelled",
        "execution_succeeded" => "succeeded",
        "execution_failed" | "execution_refused" => "failed",
        "outcome_unknown" => "outcome_unknown",
        _ => return None,
    })
}

async fn decision(
    engine: &Engine,
    row: &RequestRow,
    state: &str,
    delivery: &DeliveryRow,
) -> anyhow::Result<Option<String>> {
    let reviews = engine.store().reviews(&row.request_id()).await?;
    Ok(match state {
        "approved" => {
            let names = crate::store::approvers(&reviews, &row.digest);
            Some(if names.is_empty() {
                "Approved by policy (auto-approve)".to_owned()
            } else {
                let names: Vec<String> = names.iter().map(|n| format!("@{n}")).collect();
                format!("Approved by {}", names.join(", "))
            })
        }
        "denied" => {
            let denial = reviews.iter().rev().find(|r| r.decision == "deny");
            Some(match denial {
                Some(r) => format!(
                    "Denied by @{}: {}",
                    r.reviewer,
                    r.reason.as_deref().unwrap_or("no reason given")
                ),
                None => "Denied".to_owned(),
            })
        }
        "expired" => Some("Expired without a decision".to_owned()),
        "cancelled" => Some(format!("Cancelled by {}", delivery.actor)),
        "succeeded" | "failed" | "outcome_unknown" => {
            Some(execution_summary(engine, row, state).await?)
        }
        _ => None,
    })
}

/// One line on how an execution ended (masked error, status, duration).
async fn execution_summary(
    engine: &Engine,
    row: &RequestRow,
    state: &str,
) -> anyhow::Result<String> {
    let exec = engine.store().execution(&row.request_id()).await?;
    let outcome: Option<serde_json::Value> = exec
        .as_ref()
        .and_then(|e| e.outcome.as_deref())
        .and_then(|o| serde_json::from_str(o).ok());
    let Some(o) = outcome else {
        return Ok(match state {
            "outcome_unknown" => "Outcome unknown: countersign stopped while the action ran; check the target before retrying".to_owned(),
            _ => {
                let events = engine.store().events(&row.request_id()).await?;
                let reason = events
                    .iter()
                    .rev()
                    .find(|e| e.kind == "execution_refused")
                    .and_then(|e| serde_json::from_str::<serde_json::Value>(&e.detail).ok())
                    .and_then(|d| d["reason"].as_str().map(str::to_owned))
                    .unwrap_or_else(|| "no outcome recorded".to_owned());
                format!("Not executed: {reason}")
            }
        });
    };
    let status = match (o["exit_status"].as_i64(), o["http_status"].as_u64()) {
        (Some(code), _) => format!("exit status {code}"),
        (_, Some(code)) => format!("HTTP {code}"),
        _ => String::new(),
    };
    let took = o["duration_ms"].as_i64().unwrap_or(0);
    let executor = exec.map(|e| e.executor).unwrap_or_default();
    Ok(if o["success"].as_bool() == Some(true) {
        format!("Executed by {executor} in {took} ms {status}")
            .trim_end()
            .to_owned()
    } else {
        let error = o["error"].as_str().unwrap_or("failed");
        format!("Execution by {executor} failed after {took} ms: {error}")
    })
}
