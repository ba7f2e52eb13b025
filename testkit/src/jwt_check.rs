//! Token verification as a resource service would write it, independent of countersign's own
//! verifier: base64url, the JWK Set from the issuer's `/.well-known/jwks.json`, Ed25519 with
//! ed25519-dalek, then the claims the service cares about (issuer, expiry, audience, digest).

use axum::http::StatusCode;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

/// Verifies a compact JWS with the JWK Set, then the claims this service cares about.
pub fn verify_independently(
    token: &str,
    jwks: &Value,
    issuer: &str,
    audience: &str,
    digest: &str,
) -> Result<Value, (StatusCode, String)> {
    let unauthorized = |why: &str| (StatusCode::UNAUTHORIZED, why.to_owned());
    let parts: Vec<&str> = token.split('.').collect();
    let [h64, c64, s64] = parts[..] else {
        return Err(unauthorized("not a compact JWS"));
    };
    let decode = |s: &str| {
        URL_SAFE_NO_PAD
            .decode(s)
            .map_err(|_| unauthorized("bad base64"))
    };
    let header: Value =
        serde_json::from_slice(&decode(h64)?).map_err(|_| unauthorized("bad header"))?;
    if header["alg"] != "EdDSA" {
        return Err(unauthorized("alg must be EdDSA"));
    }
    let jwk = jwks["keys"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|k| k["kid"] == header["kid"] && k["kty"] == "OKP" && k["crv"] == "Ed25519")
        .ok_or_else(|| unauthorized("unknown kid"))?;
    let x: [u8; 32] = decode(jwk["x"].as_str().unwrap_or(""))?
        .try_into()
        .map_err(|_| unauthorized("bad key"))?;
    let key = ed25519_dalek::VerifyingKey::from_bytes(&x).map_err(|_| unauthorized("bad key"))?;
    let sig: [u8; 64] = decode(s64)?
        .try_into()
        .map_err(|_| unauthorized("bad signature length"))?;
    key.verify_strict(
        format!("{h64}.{c64}").as_bytes(),
        &ed25519_dalek::Signature::from_bytes(&sig),
    )
    .map_err(|_| unauthorized("bad signature"))?;
    let claims: Value =
        serde_json::from_slice(&decode(c64)?).map_err(|_| unauthorized("bad claims"))?;
    let now = countersign::time::now_secs();
    if claims["iss"] != issuer {
        return Err(unauthorized("wrong issuer"));
    }
    if claims["exp"].as_i64().is_none_or(|exp| exp <= now) {
        return Err(unauthorized("expired"));
    }
    if claims["nbf"].as_i64().is_none_or(|nbf| nbf > now) {
        return Err(unauthorized("not yet valid"));
    }
    if claims["aud"] != audience {
        return Err((StatusCode::FORBIDDEN, "wrong audience".into()));
    }
    if claims["digest"] != digest {
        return Err((StatusCode::FORBIDDEN, "bound to other content".into()));
    }
    Ok(claims)
}

/// Fetches the issuer (discovery) and the JWK Set of a countersign server over HTTP.
pub async fn issuer_keys(http: &reqwest::Client, countersign: &str) -> (String, Value) {
    let get = |path: &str| {
        let url = format!("{countersign}{path}");
        let http = http.clone();
        async move {
            http.get(url)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    let discovery = get("/.well-known/openid-configuration").await;
    let jwks = get("/.well-known/jwks.json").await;
    (discovery["issuer"].as_str().unwrap().to_owned(), jwks)
}
