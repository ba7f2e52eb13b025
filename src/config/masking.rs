//! `[masking]`: which key names hold secrets, the pseudonym key, the phone regions and the
//! name-like keys; checked at start-up with errors naming the field.

use crate::request::signature::MIN_KEY_BYTES;
use crate::support::secrets::{ConfigError, KeySource, bad, read_secret};
use serde::Deserialize;

/// `[masking]`: what counts as a secret key name, and optional pseudonyms.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaskingFile {
    /// Replaces the built-in list of secret key names.
    pub hints: Option<Vec<String>>,
    /// Added to the list (built-in or `hints`).
    #[serde(default)]
    pub extra_hints: Vec<String>,
    /// When set, masked values become stable pseudonyms (`<email:7f3a9c>`) keyed by this secret.
    pub pseudonym_key: Option<KeySource>,
    /// Regions (ISO 3166 codes) whose national phone formats are recognised; the first is the
    /// default region [default: `["US"]`]. International (`+…`) numbers are always recognised.
    pub phone_regions: Option<Vec<String>>,
    /// Replaces the built-in list of name-like keys whose values are person names.
    pub name_keys: Option<Vec<String>>,
}

/// Resolved `[masking]`: secret key names (`None` = built-in list) and the pseudonym key.
pub type Masking = (Option<Vec<String>>, Option<Vec<u8>>);

/// `[masking]`: the secret key names (`None` = built-in list) and the pseudonym key.
pub fn load_masking(m: &MaskingFile) -> Result<Masking, ConfigError> {
    let mut hints_out = None;
    let mut key_out = None;
    if m.hints.is_some() || !m.extra_hints.is_empty() {
        let mut hints = m.hints.clone().unwrap_or_else(|| {
            crate::mask::DEFAULT_HINTS
                .iter()
                .map(|h| (*h).to_owned())
                .collect()
        });
        hints.extend(m.extra_hints.iter().cloned());
        if hints.iter().any(|h| h.trim().is_empty()) {
            return Err(bad("masking.hints", "hints must not be empty"));
        }
        hints_out = Some(hints);
    }
    if let Some(src) = &m.pseudonym_key {
        let key = read_secret(src, "masking.pseudonym_key")?;
        if key.len() < MIN_KEY_BYTES {
            return Err(bad(
                "masking.pseudonym_key",
                format!("must be at least {MIN_KEY_BYTES} bytes"),
            ));
        }
        key_out = Some(key);
    }
    Ok((hints_out, key_out))
}

/// `[masking] phone_regions` and `name_keys`: known regions, no empty lists or names.
pub fn check_mask_detector(m: &MaskingFile) -> Result<(), ConfigError> {
    if let Some(regions) = &m.phone_regions {
        if regions.is_empty() {
            return Err(bad(
                "masking.phone_regions",
                "must name at least one region",
            ));
        }
        let regions: Vec<&str> = regions.iter().map(String::as_str).collect();
        crate::mask::Detector::default()
            .with_phone_regions(&regions)
            .map_err(|e| bad("masking.phone_regions", e))?;
    }
    if let Some(keys) = &m.name_keys
        && keys.iter().any(|k| k.trim().is_empty())
    {
        return Err(bad("masking.name_keys", "key names must not be empty"));
    }
    Ok(())
}
