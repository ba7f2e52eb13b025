//! Authentication as GitHub does it: RS256 App JWTs (signature checked with the App's public key,
//! `iss` = the App id as a number or a string, `iat`/`exp` window of at most 10 minutes) for
//! `/app/...`, installation tokens (`token` / `Bearer` / HTTP Basic `x-access-token:<token>`)
//! everywhere else, checked for expiry, repository and permission. Also the error type the
//! routes answer with (GitHub's `{"message", "documentation_url"}` bodies).

use super::shapes;
use super::state::{CallAuth, State, Token};
use axum::Json;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::Value;

/// An error answer: status, JSON body and extra headers.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub body: Value,
    pub headers: Vec<(&'static str, String)>,
}

impl ApiError {
    pub fn new(status: u16, message: &str) -> Self {
        ApiError {
            status: StatusCode::from_u16(status).unwrap(),
            body: shapes::error(message, status),
            headers: Vec::new(),
        }
    }

    pub fn not_found() -> Self {
        Self::new(404, "Not Found")
    }

    pub fn bad_credentials() -> Self {
        Self::new(401, "Bad credentials")
    }

    pub fn not_accessible() -> Self {
        Self::new(403, "Resource not accessible by integration")
    }

    /// 422 "Validation Failed" with GitHub's `errors` array.
    pub fn validation(errors: Value) -> Self {
        let mut e = Self::new(422, "Validation Failed");
        e.body["errors"] = errors;
        e
    }

    /// 422 with a plain message (GitHub uses these too, e.g. for workflow dispatch).
    pub fn unprocessable(message: &str) -> Self {
        Self::new(422, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = (self.status, Json(self.body)).into_response();
        for (name, value) in self.headers {
            let value = HeaderValue::from_str(&value).unwrap();
            resp.headers_mut().insert(name, value);
        }
        resp
    }
}

/// The credential in the `Authorization` header: `Bearer x`, `token x`, or Basic's password.
pub fn credential(headers: &HeaderMap) -> Option<String> {
    let raw = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, rest) = raw.split_once(' ')?;
    match scheme.to_ascii_lowercase().as_str() {
        "bearer" | "token" => Some(rest.trim().to_owned()),
        "basic" => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(rest.trim())
                .ok()?;
            let pair = String::from_utf8(bytes).ok()?;
            Some(pair.split_once(':')?.1.to_owned())
        }
        _ => None,
    }
}

fn looks_like_jwt(cred: &str) -> bool {
    cred.split('.').count() == 3
}

/// How the fake sees the caller, for the call record.
pub fn call_auth(s: &State, headers: &HeaderMap) -> CallAuth {
    let Some(cred) = credential(headers) else {
        return CallAuth::None;
    };
    if looks_like_jwt(&cred) {
        return match verify_jwt(s, &cred) {
            Ok(()) => CallAuth::App,
            Err(e) => CallAuth::Bad(e.body["message"].as_str().unwrap_or("").to_owned()),
        };
    }
    match s.token(&cred) {
        Some(t) => CallAuth::Installation {
            token: t.value.clone(),
            permissions: t.permissions.clone(),
            repositories: t.repositories.clone(),
        },
        None => CallAuth::Bad("unknown token".into()),
    }
}

/// Checks an App JWT the way GitHub does.
pub fn verify_jwt(s: &State, jwt: &str) -> Result<(), ApiError> {
    use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode};
    let undecodable = || ApiError::new(401, "A JSON web token could not be decoded");
    let key = DecodingKey::from_rsa_der(&s.app.public_key_der);
    let mut v = Validation::new(Algorithm::RS256);
    v.validate_exp = false;
    v.validate_aud = false;
    v.required_spec_claims.clear();
    let claims = decode::<Value>(jwt, &key, &v)
        .map_err(|_| undecodable())?
        .claims;
    let iss_ok = match &claims["iss"] {
        Value::Number(n) => n.as_u64() == Some(s.app.id),
        Value::String(t) => *t == s.app.id.to_string(),
        _ => {
            return Err(ApiError::new(
                401,
                "'Issuer' claim ('iss') must be an Integer",
            ));
        }
    };
    if !iss_ok {
        return Err(ApiError::new(401, "Integration not found"));
    }
    let now = s.now();
    let (Some(iat), Some(exp)) = (claims["iat"].as_i64(), claims["exp"].as_i64()) else {
        let msg = "'Expiration time' claim ('exp') and 'Issued at' claim ('iat') must be \
                   Integers";
        return Err(ApiError::new(401, msg));
    };
    if iat > now + 60 {
        let msg = "'Issued at' claim ('iat') must be an Integer representing a time in the past";
        return Err(ApiError::new(401, msg));
    }
    if exp <= now {
        let msg = "'Expiration time' claim ('exp') must be a numeric value representing the \
                   future time at which the assertion expires";
        return Err(ApiError::new(401, msg));
    }
    if exp > now + 600 || exp - iat > 600 {
        let msg = "'Expiration time' claim ('exp') is too far in the future";
        return Err(ApiError::new(401, msg));
    }
    Ok(())
}

/// `/app/...` routes: a valid App JWT.
pub fn require_app(s: &State, headers: &HeaderMap) -> Result<(), ApiError> {
    match credential(headers) {
        Some(c) if looks_like_jwt(&c) => verify_jwt(s, &c),
        Some(_) => Err(ApiError::new(401, "A JSON web token could not be decoded")),
        None => Err(ApiError::new(
            401,
            "You must authenticate with a JSON web token (JWT) to access this endpoint.",
        )),
    }
}

/// A valid (known, unexpired) installation token.
pub fn require_token(s: &State, headers: &HeaderMap) -> Result<Token, ApiError> {
    let cred = credential(headers).ok_or_else(|| ApiError::new(401, "Requires authentication"))?;
    if looks_like_jwt(&cred) {
        verify_jwt(s, &cred)?;
        // An App JWT only reaches the `/app` endpoints (and `/repos/../installation`).
        return Err(ApiError::not_accessible());
    }
    let token = s.token(&cred).ok_or_else(ApiError::bad_credentials)?;
    if token.expires_at <= s.now() {
        return Err(ApiError::bad_credentials());
    }
    Ok(token.clone())
}

/// A valid installation token that reaches repository `full_name` (else 404, as GitHub hides
/// private repositories) and grants `level` on `permission` (else 403).
pub fn require_repo(
    s: &State,
    headers: &HeaderMap,
    full_name: &str,
    permission: &str,
    level: &str,
) -> Result<Token, ApiError> {
    let token = require_token(s, headers)?;
    let inst = s.installation(token.installation_id).unwrap();
    if s.repo(full_name).is_none() || !token.reaches(inst, full_name) {
        return Err(ApiError::not_found());
    }
    if !token.grants(permission, level) {
        return Err(ApiError::not_accessible());
    }
    Ok(token)
}

/// Like [`require_repo`] but any of `options` (`(permission, level)`) is enough (GitHub lets
/// `issues: write` or `pull_requests: write` comment and label a pull request).
pub fn require_repo_any(
    s: &State,
    headers: &HeaderMap,
    full_name: &str,
    options: &[(&str, &str)],
) -> Result<Token, ApiError> {
    let token = require_repo(s, headers, full_name, "metadata", "read")?;
    if options.iter().any(|(p, l)| token.grants(p, l)) {
        Ok(token)
    } else {
        Err(ApiError::not_accessible())
    }
}

/// A new token value like GitHub's (`ghs_` + 36 alphanumerics).
pub fn new_token_value() -> String {
    use rand::Rng as _;
    const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    let tail: String = (0..36)
        .map(|_| ALNUM[rng.random_range(0..ALNUM.len())] as char)
        .collect();
    format!("ghs_{tail}")
}

/// The error body for a permission above the installation's (token creation).
pub fn permission_too_broad(permission: &str) -> ApiError {
    let msg =
        format!("The permissions requested are not granted to this installation. ({permission})");
    ApiError::new(422, &msg)
}
