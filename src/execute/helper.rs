//! The credential helper hook: a configured program (argv, no shell, clean environment, own
//! process group, timeout) receives countersign's token on stdin and prints the credential the
//! executor gets instead — e.g. cloud credentials obtained through web-identity federation.
//! What it prints is handed on and never logged or stored; its errors are masked with both the
//! token and whatever it printed replaced.

use super::command::{Group, die_with_parent};
use super::output::clean_error;
use crate::mask::Masker;
use std::process::Stdio;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use zeroize::Zeroizing;

/// The most a helper may print.
pub const MAX_OUTPUT: usize = 64 * 1024;

pub use crate::actions::helper::HelperSpec;

/// Runs the helper: the token on stdin, the credential from stdout (trimmed, non-empty).
/// Errors are safe to store.
pub async fn run(
    spec: &HelperSpec,
    token: &str,
    masker: &Masker,
) -> Result<Zeroizing<String>, String> {
    spec.validate()
        .map_err(|e| format!("invalid credential helper: {e}"))?;
    let program = &spec.argv[0];
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(&spec.argv[1..])
        .env_clear()
        .env("PATH", &spec.path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    die_with_parent(&mut cmd);
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("could not start the credential helper {program}: {e}"))?;
    let mut group = Group::of(&child);
    let mut stdin = child.stdin.take();
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let token_in = Zeroizing::new(format!("{token}\n"));
    let work = async {
        if let Some(s) = stdin.as_mut() {
            let _ = s.write_all(token_in.as_bytes()).await;
            let _ = s.shutdown().await;
        }
        drop(stdin.take());
        let mut out = Zeroizing::new(Vec::new());
        let mut err = Vec::new();
        let read_out = async {
            if let Some(s) = stdout.as_mut() {
                let _ = s.take(MAX_OUTPUT as u64 + 1).read_to_end(&mut out).await;
            }
        };
        let read_err = async {
            if let Some(s) = stderr.as_mut() {
                let _ = s.take(4096).read_to_end(&mut err).await;
            }
        };
        tokio::join!(read_out, read_err);
        let status = child.wait().await;
        (status, out, err)
    };
    let (status, out, err) = match tokio::time::timeout(spec.timeout, work).await {
        Ok(r) => r,
        Err(_) => {
            group.kill();
            return Err(format!(
                "the credential helper timed out after {}",
                humantime::format_duration(spec.timeout)
            ));
        }
    };
    group.kill();
    let text = Zeroizing::new(String::from_utf8_lossy(&out).trim().to_owned());
    let clean = |message: &str| {
        let message = if text.is_empty() {
            message.to_owned()
        } else {
            message.replace(text.as_str(), super::CREDENTIAL_MASK)
        };
        clean_error(masker, token, &message)
    };
    let status = status.map_err(|e| clean(&format!("waiting for the credential helper: {e}")))?;
    if !status.success() {
        let stderr = String::from_utf8_lossy(&err);
        return Err(clean(&format!(
            "the credential helper failed ({status}): {}",
            stderr.trim()
        )));
    }
    if out.len() > MAX_OUTPUT {
        return Err(format!(
            "the credential helper printed more than {MAX_OUTPUT} bytes"
        ));
    }
    if text.is_empty() {
        return Err("the credential helper printed nothing".to_owned());
    }
    Ok(text)
}
