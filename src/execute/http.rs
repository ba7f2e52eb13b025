//! The HTTP executor: renders the URL and header templates from the request fields, sends the
//! raw payload as the JSON body with `Authorization: Bearer <credential>` and
//! `Idempotency-Key: <request id>`, no redirects, within the timeout. 2xx is success; the
//! response body is kept bounded and masked. Errors never carry the URL or the credential.
//!
//! Only a failure to connect (DNS, TCP, TLS: nothing was sent) is a clean failure. Once the
//! request may have left, a timeout or a broken connection without an answer leaves the
//! outcome unknown ([`Outcome::outcome_unknown`]): the target may have acted on it.

use super::output::{self, Capture, clean_error};
use super::{Invocation, Outcome};
use crate::actions::spec::{HttpSpec, parse_url, render};
use crate::mask::Masker;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue};
use std::time::Duration;

/// Runs the call for one invocation.
pub async fn run(spec: &HttpSpec, inv: &Invocation<'_>, masker: &Masker) -> Outcome {
    let started_at_ms = crate::time::now_ms();
    let started = std::time::Instant::now();
    let failed = |e: String| Outcome::failed(started_at_ms, clean_error(masker, inv.token, &e));
    let request = match build(spec, inv) {
        Ok(request) => request,
        Err(e) => return failed(e),
    };
    // The client's timeout covers connecting, sending and reading the body; the outer one is
    // a backstop.
    let answer = tokio::time::timeout(spec.timeout, send(request, spec.timeout)).await;
    let duration_ms = crate::time::duration_ms(started.elapsed());
    let (status, capture, error) = match answer {
        Ok(Ok(answer)) => answer,
        Ok(Err(NotAnswered { error, maybe_sent })) => {
            return Outcome {
                duration_ms,
                outcome_unknown: maybe_sent,
                ..failed(error)
            };
        }
        // The backstop: the call may well have been sent.
        Err(_) => {
            return Outcome {
                duration_ms,
                outcome_unknown: true,
                ..failed(timed_out(spec.timeout))
            };
        }
    };
    let (body, cut) = capture.clean(masker, inv.token);
    let error = error.or_else(|| (!status.is_success()).then(|| format!("HTTP {status}")));
    Outcome {
        success: status.is_success() && error.is_none(),
        exit_status: None,
        signal: None,
        http_status: Some(status.as_u16()),
        output: output::finish(&[("", body, cut)]),
        error: error.map(|e| clean_error(masker, inv.token, &e)),
        started_at_ms,
        duration_ms,
        credential: None,
        outcome_unknown: false,
    }
}

/// The request, or why it cannot be made (naming the field, never a value).
fn build(spec: &HttpSpec, inv: &Invocation<'_>) -> Result<reqwest::RequestBuilder, String> {
    spec.validate()
        .map_err(|e| format!("invalid http executor: {e}"))?;
    let url = render(&spec.url, inv.fields)
        .map_err(|e| format!("`url`: template does not render: {}", e.kind()))?;
    let url = parse_url(&url).map_err(|m| format!("`url`: {m}"))?;
    let method = reqwest::Method::from_bytes(spec.method.as_bytes())
        .map_err(|_| "`method`: not a method".to_owned())?;
    let mut headers = HeaderMap::new();
    for (name, template) in &spec.headers {
        let field = format!("`headers.{name}`");
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("{field}: not a header name"))?;
        let value = render(template, inv.fields)
            .map_err(|e| format!("{field}: template does not render: {}", e.kind()))?;
        let value = HeaderValue::from_str(&value)
            .map_err(|_| format!("{field}: does not render to a valid header value"))?;
        headers.insert(name, value);
    }
    let mut bearer = HeaderValue::from_str(&format!("Bearer {}", inv.token))
        .map_err(|_| "the credential is not a valid header value".to_owned())?;
    bearer.set_sensitive(true);
    headers.insert(AUTHORIZATION, bearer);
    let key = HeaderValue::from_str(inv.request_id)
        .map_err(|_| "the request id is not a valid header value".to_owned())?;
    headers.insert("idempotency-key", key);
    let client = reqwest::Client::builder()
        .timeout(spec.timeout)
        // Shorter than the whole timeout, so that a target that cannot be reached fails as a
        // connection failure (nothing sent), not as a timeout of a sent call.
        .connect_timeout(spec.timeout.mul_f64(0.9))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("countersign/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| describe(e, spec.timeout))?;
    Ok(client
        .request(method, url)
        .headers(headers)
        .json(inv.payload))
}

/// A call that got no answer, and whether it may have reached the target.
struct NotAnswered {
    error: String,
    /// `false` only when nothing was sent: the connection (DNS, TCP, TLS) never came up.
    maybe_sent: bool,
}

/// Sends, then reads at most the capture limit of the body. A body that breaks off midway
/// keeps what arrived, with an error.
async fn send(
    request: reqwest::RequestBuilder,
    timeout: Duration,
) -> Result<(reqwest::StatusCode, Capture, Option<String>), NotAnswered> {
    let mut response = request.send().await.map_err(|e| NotAnswered {
        maybe_sent: !(e.is_connect() || e.is_builder()),
        error: describe(e, timeout),
    })?;
    let status = response.status();
    let mut capture = Capture::default();
    let mut error = None;
    while !capture.truncated {
        match response.chunk().await {
            Ok(Some(chunk)) => capture.push(&chunk),
            Ok(None) => break,
            Err(e) => {
                error = Some(format!("reading the response: {}", describe(e, timeout)));
                break;
            }
        }
    }
    Ok((status, capture, error))
}

fn timed_out(timeout: Duration) -> String {
    format!("timed out after {}", humantime::format_duration(timeout))
}

/// A network error without the URL (its query or user info may hold secrets), with its causes.
fn describe(e: reqwest::Error, timeout: Duration) -> String {
    let e = e.without_url();
    if e.is_timeout() {
        return if e.is_connect() {
            format!("could not connect: {}", timed_out(timeout))
        } else {
            timed_out(timeout)
        };
    }
    let mut text = if e.is_connect() {
        "could not connect".to_owned()
    } else {
        e.to_string()
    };
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
