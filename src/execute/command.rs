//! The command executor: runs `argv` (no shell) with a clean environment (`PATH`, the
//! credential in `token_env`, `COUNTERSIGN_REQUEST_ID`, the spec's `env`, nothing else), the raw
//! payload JSON on stdin, stdout and stderr captured concurrently and bounded, in its own
//! process group. At the timeout the whole group is killed (SIGKILL); when the program exits,
//! whatever it left running in its group is killed too, so nothing outlives the action.

use super::output::{self, Capture, clean_error};
use super::{Invocation, Outcome};
use crate::actions::spec::{CommandSpec, REQUEST_ID_ENV};
use crate::mask::Masker;
use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinHandle;

/// How long the output pipes may stay open after the group was killed (a process that left
/// the group can hold them); after that the output is taken as it is.
const PIPE_GRACE: Duration = Duration::from_secs(2);

/// Kills the process group once: explicitly, or when dropped (also when the running future is
/// cancelled, before the program was reaped).
pub(super) struct Group(i32);

impl Group {
    /// The group a freshly spawned child leads (its pid is the group id).
    pub(super) fn of(child: &tokio::process::Child) -> Group {
        Group(
            child
                .id()
                .and_then(|id| i32::try_from(id).ok())
                .unwrap_or(0),
        )
    }

    /// After the program was reaped its pid stays reserved while other group members live; an
    /// empty group's id could in principle be reused, which is why this runs at most once and
    /// right after the wait.
    pub(super) fn kill(&mut self) {
        // Never -1 or 0: that would signal every process we may signal, or our own group.
        let pgid = std::mem::take(&mut self.0);
        if pgid > 1 {
            // SAFETY: kill(2) has no memory-safety preconditions.
            unsafe {
                libc::kill(-pgid, libc::SIGKILL);
            }
        }
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        self.kill();
    }
}

/// On Linux, the program is killed (SIGKILL) when countersign dies, even by `kill -9`: an
/// action is never left running with nobody to record its outcome (after a restart the
/// request is `outcome_unknown`, or retried if the action is idempotent).
pub(super) fn die_with_parent(cmd: &mut tokio::process::Command) {
    #[cfg(target_os = "linux")]
    {
        let parent = std::process::id();
        // SAFETY: only async-signal-safe calls (prctl, getppid) between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // The parent may have died before the prctl: then nobody would kill us.
                if libc::getppid() as u32 != parent {
                    return Err(std::io::Error::other("countersign exited"));
                }
                Ok(())
            });
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = cmd;
}

/// Runs the command for one invocation. Never returns the credential: output and errors are
/// cleaned (see [`output`]).
pub async fn run(spec: &CommandSpec, inv: &Invocation<'_>, masker: &Masker) -> Outcome {
    let started_at_ms = crate::time::now_ms();
    let started = tokio::time::Instant::now();
    if let Err(e) = spec.validate() {
        return Outcome::failed(started_at_ms, format!("invalid command executor: {e}"));
    }
    let program = &spec.argv[0];
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(&spec.argv[1..])
        .env_clear()
        .env("PATH", &spec.path)
        .envs(&spec.env)
        .env(REQUEST_ID_ENV, inv.request_id)
        .env(&spec.token_env, inv.token)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    if let Some(cwd) = &spec.cwd {
        cmd.current_dir(cwd);
    }
    die_with_parent(&mut cmd);
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) => {
            let error = clean_error(
                masker,
                inv.token,
                &format!("could not start {program}: {e}"),
            );
            return Outcome::failed(started_at_ms, error);
        }
    };
    // The child leads its own group: its pid is the group id. Held until the end, so the group
    // is killed however this function ends.
    let mut group = Group::of(&child);

    let payload = serde_json::to_vec(inv.payload).unwrap_or_default();
    let stdin = child.stdin.take();
    let writer = tokio::spawn(async move {
        if let Some(mut stdin) = stdin {
            // A program that does not read its input gets EPIPE here; that is its business.
            let _ = stdin.write_all(&payload).await;
            let _ = stdin.shutdown().await;
        }
    });
    let stdout = Arc::new(Mutex::new(Capture::default()));
    let stderr = Arc::new(Mutex::new(Capture::default()));
    let mut readers = vec![
        drain(child.stdout.take(), stdout.clone()),
        drain(child.stderr.take(), stderr.clone()),
    ];

    let deadline = started + spec.timeout;
    let (status, mut error) = match tokio::time::timeout_at(deadline, child.wait()).await {
        Ok(Ok(status)) => {
            // Stragglers in the group end with the program.
            group.kill();
            (Some(status), None)
        }
        Ok(Err(e)) => {
            group.kill();
            let _ = child.wait().await;
            (None, Some(format!("waiting for {program} failed: {e}")))
        }
        Err(_) => {
            group.kill();
            let status = child.wait().await.ok();
            let after = humantime::format_duration(spec.timeout);
            (
                status,
                Some(format!("timed out after {after} (process group killed)")),
            )
        }
    };
    let timed_out = error.is_some();

    let pipes_closed = tokio::time::timeout(PIPE_GRACE, async {
        for reader in &mut readers {
            let _ = reader.await;
        }
    })
    .await
    .is_ok();
    for reader in &readers {
        reader.abort();
    }
    writer.abort();

    let exit_status = status.and_then(|s| s.code());
    let signal = status.and_then(|s| s.signal());
    if error.is_none() {
        error = match (exit_status, signal) {
            (Some(0), _) => None,
            (Some(code), _) => Some(format!("exited with status {code}")),
            (None, Some(sig)) => Some(format!("killed by signal {sig}")),
            (None, None) => Some("ended without an exit status".to_owned()),
        };
    }
    if !pipes_closed {
        let note = "output incomplete: a process outside the group kept it open";
        error = Some(match error {
            Some(e) => format!("{e}; {note}"),
            None => note.to_owned(),
        });
    }

    let take = |c: &Arc<Mutex<Capture>>| {
        let capture = c.lock().unwrap_or_else(|e| e.into_inner());
        capture.clean(masker, inv.token)
    };
    let (out, out_cut) = take(&stdout);
    let (err, err_cut) = take(&stderr);
    let output = output::finish(&[("", out, out_cut), ("[stderr]", err, err_cut)]);
    Outcome {
        success: !timed_out && pipes_closed && status.is_some_and(|s| s.success()),
        exit_status,
        signal,
        http_status: None,
        output,
        error: error.map(|e| clean_error(masker, inv.token, &e)),
        started_at_ms,
        duration_ms: crate::time::duration_ms(started.elapsed()),
        credential: None,
        outcome_unknown: false,
    }
}

/// Reads a pipe to its end: the first bytes into the capture, the rest discarded, so the
/// child never blocks on a full pipe.
fn drain<R>(pipe: Option<R>, capture: Arc<Mutex<Capture>>) -> JoinHandle<()>
where
    R: AsyncRead + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let Some(mut pipe) = pipe else { return };
        let mut buf = vec![0u8; 8192];
        loop {
            match pipe.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => capture
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(&buf[..n]),
            }
        }
    })
}
