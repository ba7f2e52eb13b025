//! Reviewer routes: `POST /v1/requests/{id}/reviews` (approve or deny) and
//! `GET /v1/requests/{id}/review` (the masked request as a reviewer sees it).

use super::AppState;
use super::auth::verify_reviewer;
use super::body::{read_limited, require_json};
use super::error::ApiError;
use crate::api::{ReviewAnswer, ReviewView, Verdict};
use crate::engine::{self, ReviewDecision, ReviewError};
use crate::policy::approval::Ineligible;
use crate::request::RequestId;
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde_json::Value;

const MAX_REVIEW_BODY: usize = 64 * 1024;
const MAX_REASON_CHARS: usize = 4000;

/// `POST /v1/requests/{id}/reviews` with `{decision: "approve"|"deny", reason}`.
pub async fn submit_review(
    State(app): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<ReviewAnswer>, ApiError> {
    let result = review_inner(&app, &id, &headers, body).await;
    app.metrics.count_review(match &result {
        Ok(_) => "recorded",
        Err(e) => e.code,
    });
    result
}

async fn review_inner(
    app: &AppState,
    id: &str,
    headers: &HeaderMap,
    body: Body,
) -> Result<Json<ReviewAnswer>, ApiError> {
    let reviewer = verify_reviewer(&app.engine, headers)?;
    require_json(headers)?;
    let bytes = read_limited(headers, body, MAX_REVIEW_BODY).await?;
    let id = RequestId::parse(id).ok_or_else(ApiError::not_found)?;
    let (decision, reason) = parse_review(&bytes)?;
    match app
        .engine
        .review(&id, reviewer, decision, reason.as_deref())
        .await
    {
        Ok(state) => Ok(Json(ReviewAnswer {
            id,
            state,
            decision: match decision {
                ReviewDecision::Approve => Verdict::Approve,
                ReviewDecision::Deny => Verdict::Deny,
            },
            reviewer: reviewer.name.clone(),
        })),
        Err(e) => Err(match e {
            ReviewError::NotFound => ApiError::not_found(),
            ReviewError::NotEligible {
                why: Ineligible::NotAnOwner,
                ..
            } => ApiError::new(
                StatusCode::FORBIDDEN,
                "not_an_eligible_approver",
                e.to_string(),
            ),
            ReviewError::NotEligible {
                why: Ineligible::OwnersUnresolved,
                ..
            } => ApiError::new(
                StatusCode::FORBIDDEN,
                "agent_owners_unresolved",
                e.to_string(),
            ),
            ReviewError::NotEligible { .. } => ApiError::new(
                StatusCode::FORBIDDEN,
                "self_approval_forbidden",
                e.to_string(),
            ),
            ReviewError::MayNotDeny(_) => ApiError::new(
                StatusCode::FORBIDDEN,
                "not_an_eligible_reviewer",
                e.to_string(),
            ),
            ReviewError::AlreadyApproved(_) => {
                ApiError::new(StatusCode::CONFLICT, "already_approved", e.to_string())
            }
            ReviewError::NoPolicy => {
                ApiError::new(StatusCode::CONFLICT, "no_policy_evaluation", e.to_string())
            }
            ReviewError::NotPending(engine::State::Expired) | ReviewError::Expired => {
                ApiError::new(
                    StatusCode::CONFLICT,
                    "request_expired",
                    "request has expired",
                )
            }
            ReviewError::NotPending(_) => {
                ApiError::new(StatusCode::CONFLICT, "request_not_pending", e.to_string())
            }
            ReviewError::Store(e) => ApiError::internal(&e),
        }),
    }
}

fn parse_review(bytes: &[u8]) -> Result<(ReviewDecision, Option<String>), ApiError> {
    let bad = |m: &str| ApiError::new(StatusCode::BAD_REQUEST, "malformed_request", m);
    let invalid = |m: &str| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_review", m);
    let value: Value = serde_json::from_slice(bytes).map_err(|_| bad("body is not valid JSON"))?;
    let obj = value
        .as_object()
        .ok_or_else(|| bad("body must be a JSON object"))?;
    if obj.keys().any(|k| k != "decision" && k != "reason") {
        return Err(bad("only `decision` and `reason` are allowed"));
    }
    let decision = match obj.get("decision") {
        None => return Err(bad("missing field `decision`")),
        Some(Value::String(s)) if s == "approve" => ReviewDecision::Approve,
        Some(Value::String(s)) if s == "deny" => ReviewDecision::Deny,
        Some(_) => return Err(invalid("field `decision` must be \"approve\" or \"deny\"")),
    };
    let reason = match obj.get("reason") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.trim().is_empty() => None,
        Some(Value::String(s)) => Some(s.trim().to_owned()),
        Some(_) => return Err(bad("field `reason` must be a string")),
    };
    if decision == ReviewDecision::Deny && reason.is_none() {
        return Err(invalid(
            "a denial needs a `reason`; it is sent back to the agent",
        ));
    }
    if reason
        .as_ref()
        .is_some_and(|r| r.chars().count() > MAX_REASON_CHARS)
    {
        return Err(invalid("field `reason` is longer than 4000 characters"));
    }
    Ok((decision, reason))
}

/// `GET /v1/requests/{id}/review`: the masked request, for any configured reviewer.
pub async fn show_review(
    State(app): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<ReviewView>, ApiError> {
    verify_reviewer(&app.engine, &headers)?;
    let id = RequestId::parse(&id).ok_or_else(ApiError::not_found)?;
    match app.engine.review_view(&id).await {
        Ok(Some(doc)) => Ok(Json(doc)),
        Ok(None) => Err(ApiError::not_found()),
        Err(e) => Err(ApiError::internal(&e)),
    }
}
