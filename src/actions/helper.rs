//! `credential_helper = { argv = [...], timeout = "10s" }`: the program that exchanges
//! countersign's token for the credential an executor gets (run by
//! `crate::execute::helper`).

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// `credential_helper = { argv = [...], timeout = "10s" }` in `policies/actions.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HelperSpec {
    pub argv: Vec<String>,
    /// The helper's `PATH`.
    #[serde(default = "default_path")]
    pub path: String,
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
}

fn default_path() -> String {
    super::spec::DEFAULT_PATH.to_owned()
}
fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

impl HelperSpec {
    pub fn validate(&self) -> Result<(), super::spec::SpecError> {
        let err = |field: &str, message: &str| super::spec::SpecError {
            field: field.to_owned(),
            message: message.to_owned(),
        };
        match self.argv.first() {
            None => return Err(err("argv", "must name a program")),
            Some(p) if p.is_empty() || (p.contains('/') && !p.starts_with('/')) => {
                return Err(err(
                    "argv",
                    "the program must be an absolute path or a bare name",
                ));
            }
            Some(_) => {}
        }
        if self.timeout < super::spec::MIN_TIMEOUT || self.timeout > Duration::from_secs(300) {
            return Err(err("timeout", "must be between 1s and 5m"));
        }
        Ok(())
    }
}
