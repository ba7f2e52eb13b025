//! GitHub App authentication: the app's RS256 JWT (signed with its private key, valid for
//! 9 minutes), installation tokens and their narrowed variants. Tokens are zeroized when dropped
//! and print as `***`; nothing here logs them.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use zeroize::Zeroizing;

/// Tokens are refreshed this long before they expire.
pub const REFRESH_BEFORE_EXPIRY: Duration = Duration::from_secs(300);

/// The app's private key and id: signs the app JWT.
pub struct AppKey {
    app_id: u64,
    key: jsonwebtoken::EncodingKey,
}

impl std::fmt::Debug for AppKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AppKey(app {}, ***)", self.app_id)
    }
}

impl AppKey {
    /// Reads a PEM RSA private key: PKCS#1 (`BEGIN RSA PRIVATE KEY`, what GitHub generates) or
    /// unencrypted PKCS#8 (`BEGIN PRIVATE KEY`). The key is checked by signing once.
    pub fn from_pem(app_id: u64, pem: &[u8]) -> Result<Self, String> {
        let (label, der) = pem_rfc7468::decode_vec(trim_ascii(pem))
            .map_err(|_| "must be a PEM-encoded RSA private key".to_owned())?;
        let der = Zeroizing::new(der);
        let pkcs1 = match label {
            "RSA PRIVATE KEY" => Zeroizing::new(der.to_vec()),
            "PRIVATE KEY" => Zeroizing::new(
                pkcs8_rsa_key(&der)
                    .ok_or_else(|| "the PKCS#8 key is not an RSA key".to_owned())?
                    .to_vec(),
            ),
            other => return Err(format!("expected an RSA private key, found `{other}`")),
        };
        let key = AppKey {
            app_id,
            key: jsonwebtoken::EncodingKey::from_rsa_der(&pkcs1),
        };
        key.jwt(SystemTime::now())
            .map_err(|_| "the RSA private key cannot sign (is it complete?)".to_owned())?;
        Ok(key)
    }

    pub fn app_id(&self) -> u64 {
        self.app_id
    }

    /// The app JWT: issued 60 s in the past (clock drift, as GitHub recommends), valid 9 min.
    pub fn jwt(&self, now: SystemTime) -> Result<Token, jsonwebtoken::errors::Error> {
        #[derive(Serialize)]
        struct Claims {
            iat: u64,
            exp: u64,
            iss: String,
        }
        let now = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        let claims = Claims {
            iat: now.saturating_sub(60),
            exp: now + 9 * 60,
            iss: self.app_id.to_string(),
        };
        let header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        jsonwebtoken::encode(&header, &claims, &self.key).map(Token::new)
    }
}

fn trim_ascii(bytes: &[u8]) -> &[u8] {
    bytes.trim_ascii()
}

/// The PKCS#1 `RSAPrivateKey` inside a PKCS#8 `PrivateKeyInfo` (RFC 5208): a SEQUENCE of the
/// version, the algorithm (must be rsaEncryption) and an OCTET STRING holding the key.
fn pkcs8_rsa_key(der: &[u8]) -> Option<&[u8]> {
    const RSA_ENCRYPTION: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
    let (tag, info, _) = der_item(der)?;
    if tag != 0x30 {
        return None;
    }
    let (tag, _version, rest) = der_item(info)?;
    if tag != 0x02 {
        return None;
    }
    let (tag, algorithm, rest) = der_item(rest)?;
    if tag != 0x30 {
        return None;
    }
    let (tag, oid, _) = der_item(algorithm)?;
    if tag != 0x06 || oid != RSA_ENCRYPTION {
        return None;
    }
    let (tag, key, _) = der_item(rest)?;
    (tag == 0x04).then_some(key)
}

/// One DER item: (tag, content, what follows).
fn der_item(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | *b as usize);
        (len, &rest[n..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// A bearer token (app JWT or installation token): zeroized on drop, never printed.
#[derive(Clone)]
pub struct Token(Zeroizing<String>);

impl Token {
    pub fn new(text: String) -> Self {
        Self(Zeroizing::new(text))
    }

    /// The secret itself, for an `Authorization` header or a git credential.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(***)")
    }
}

pub use crate::support::github::{Access, Permissions};

/// The body of `POST /app/installations/{id}/access_tokens`: the token is limited to the named
/// repositories and, when given, to these permissions (GitHub refuses more than the app has).
#[derive(Debug, Serialize)]
pub struct AccessTokenRequest<'a> {
    pub repositories: Vec<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub permissions: Option<&'a Permissions>,
}

/// GitHub's answer to `access_tokens`.
#[derive(Deserialize)]
pub struct AccessTokenResponse {
    pub token: String,
    pub expires_at: String,
    #[serde(default)]
    pub permissions: BTreeMap<String, Access>,
}

/// An installation token and when it stops working.
#[derive(Debug, Clone)]
pub struct InstallationToken {
    pub token: Token,
    pub expires_at: SystemTime,
    /// What GitHub granted (may be less than asked for when the app lacks a permission).
    pub permissions: BTreeMap<String, Access>,
}

impl InstallationToken {
    pub fn from_response(r: AccessTokenResponse) -> Result<Self, String> {
        let expires_at = humantime::parse_rfc3339_weak(r.expires_at.trim_end_matches('Z'))
            .map_err(|_| "GitHub answered an unreadable token expiry".to_owned())?;
        Ok(Self {
            token: Token::new(r.token),
            expires_at,
            permissions: r.permissions,
        })
    }

    /// Still usable for at least [`REFRESH_BEFORE_EXPIRY`].
    pub fn fresh(&self, now: SystemTime) -> bool {
        self.expires_at
            .duration_since(now)
            .is_ok_and(|left| left > REFRESH_BEFORE_EXPIRY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PEM: &str = include_str!("../../../tests/data/github/test-app-key.pem");
    const PKCS8: &str = include_str!("../../../tests/data/github/test-app-key.pkcs8.pem");
    const PUBLIC: &str = include_str!("../../../tests/data/github/test-app-key.pub.pem");

    #[test]
    fn the_app_jwt_is_rs256_and_verifies_with_the_public_key() {
        let (label, public_der) = pem_rfc7468::decode_vec(PUBLIC.trim().as_bytes()).unwrap();
        assert_eq!(label, "RSA PUBLIC KEY");
        for pem in [PEM, PKCS8] {
            let key = AppKey::from_pem(42, pem.as_bytes()).unwrap();
            let now = SystemTime::now();
            let jwt = key.jwt(now).unwrap();
            let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
            validation.set_required_spec_claims(&["exp", "iss"]);
            validation.set_issuer(&["42"]);
            let data = jsonwebtoken::decode::<serde_json::Value>(
                jwt.expose(),
                &jsonwebtoken::DecodingKey::from_rsa_der(&public_der),
                &validation,
            )
            .unwrap();
            let secs = now.duration_since(UNIX_EPOCH).unwrap().as_secs();
            assert_eq!(data.claims["iat"], secs - 60);
            assert_eq!(data.claims["exp"], secs + 540);
        }
    }

    #[test]
    fn bad_keys_are_refused_with_a_reason() {
        assert!(AppKey::from_pem(1, b"nope").is_err());
        let ec = "-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n";
        assert!(
            AppKey::from_pem(1, ec.as_bytes())
                .unwrap_err()
                .contains("EC PRIVATE KEY")
        );
        let garbage = "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n";
        assert!(AppKey::from_pem(1, garbage.as_bytes()).is_err());
    }

    #[test]
    fn tokens_never_print() {
        let t = Token::new("ghs_secret".into());
        assert_eq!(format!("{t:?}"), "Token(***)");
        let key = AppKey::from_pem(7, PEM.as_bytes()).unwrap();
        assert!(!format!("{key:?}").contains("BEGIN"));
    }

    #[test]
    fn narrowed_token_requests_name_the_repository_and_permissions() {
        let perms = Permissions::new()
            .with("contents", Access::Write)
            .unwrap()
            .with("pull_requests", Access::Read)
            .unwrap();
        let body = serde_json::to_value(AccessTokenRequest {
            repositories: vec!["gitops"],
            permissions: Some(&perms),
        })
        .unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "repositories": ["gitops"],
                "permissions": { "contents": "write", "pull_requests": "read" }
            })
        );
        let plain = serde_json::to_value(AccessTokenRequest {
            repositories: vec!["gitops"],
            permissions: None,
        })
        .unwrap();
        assert_eq!(plain, serde_json::json!({ "repositories": ["gitops"] }));
        assert!(Permissions::new().with("Contents", Access::Read).is_err());
        assert!(Permissions::new().with("", Access::Read).is_err());
    }

    #[test]
    fn tokens_are_refreshed_five_minutes_before_expiry() {
        let response: AccessTokenResponse = serde_json::from_str(
            r#"{"token":"ghs_x","expires_at":"2030-01-01T01:00:00Z","permissions":{"contents":"write"}}"#,
        )
        .unwrap();
        let token = InstallationToken::from_response(response).unwrap();
        let expiry = humantime::parse_rfc3339("2030-01-01T01:00:00Z").unwrap();
        assert_eq!(token.expires_at, expiry);
        assert!(token.fresh(expiry - Duration::from_secs(301)));
        assert!(!token.fresh(expiry - Duration::from_secs(300)));
        assert!(!token.fresh(expiry + Duration::from_secs(1)));
        assert_eq!(token.permissions["contents"], Access::Write);
    }
}
