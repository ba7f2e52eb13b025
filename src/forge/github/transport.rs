//! git's smart HTTP protocol for libgit2, spoken through reqwest (rustls).
//!
//! git2 is built without its `https` feature, which would link OpenSSL next to rustls: a second
//! TLS stack. Instead this module registers a libgit2 transport for URLs prefixed
//! `countersign+` (`countersign+https://github.com/acme/gitops.git`) that sends git's requests
//! (`GET …/info/refs?service=…`, `POST …/git-upload-pack|git-receive-pack`) with reqwest,
//! authenticated as `x-access-token:<installation token>` (HTTP basic, as GitHub expects).
//!
//! libgit2 runs a fetch or push synchronously on the calling thread, so the HTTP client, the
//! runtime handle and the token are handed to the transport through a thread-local set only
//! for the duration of one operation ([`with_context`]); the token never enters a URL, a git
//! config or an error message. An operation may carry a deadline: every request and read then
//! gives up at it (the ledger push bounds its attempts this way), which ends libgit2's
//! operation with an error instead of leaving it blocked.

use super::auth::Token;
use git2::transport::{Service, SmartSubtransport, SmartSubtransportStream, Transport};
use std::cell::RefCell;
use std::io::{self, Read, Write};
use std::sync::Once;

pub const PREFIX: &str = "countersign+";
/// In a git error: GitHub rate-limited the request and asked to wait (seconds follow).
pub const RETRY_AFTER: &str = "rate limited, retry after ";

thread_local! {
    static CONTEXT: RefCell<Option<HttpContext>> = const { RefCell::new(None) };
}

/// What one git operation over HTTP needs.
#[derive(Clone)]
pub struct HttpContext {
    pub client: reqwest::Client,
    pub runtime: tokio::runtime::Handle,
    pub token: Option<Token>,
    /// Every request and read of the operation fails once this passes.
    pub deadline: Option<tokio::time::Instant>,
}

/// The URL libgit2 is given for `git_url`: http(s) goes through this transport, anything else
/// (`file://`, paths) through libgit2's own.
pub fn remote_url(git_url: &str) -> String {
    if git_url.starts_with("https://") || git_url.starts_with("http://") {
        format!("{PREFIX}{git_url}")
    } else {
        git_url.to_owned()
    }
}

/// Registers the transport once per process.
pub fn register() -> Result<(), git2::Error> {
    static ONCE: Once = Once::new();
    let mut result = Ok(());
    ONCE.call_once(|| {
        for scheme in ["http", "https"] {
            let prefix = format!("{PREFIX}{scheme}");
            // SAFETY: registration happens once, before any remote uses these prefixes, and
            // the prefixes are ours alone, so no other transport is replaced.
            let r = unsafe {
                git2::transport::register(&prefix, |remote| {
                    Transport::smart(remote, true, HttpSubtransport)
                })
            };
            if let Err(e) = r {
                result = Err(e);
            }
        }
    });
    result
}

/// Runs `f` (a libgit2 fetch or push on this thread) with `ctx` available to the transport.
pub fn with_context<T>(ctx: HttpContext, f: impl FnOnce() -> T) -> T {
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            CONTEXT.with(|c| c.borrow_mut().take());
        }
    }
    CONTEXT.with(|c| *c.borrow_mut() = Some(ctx));
    let _reset = Reset;
    f()
}

struct HttpSubtransport;

impl SmartSubtransport for HttpSubtransport {
    fn action(
        &self,
        url: &str,
        action: Service,
    ) -> Result<Box<dyn SmartSubtransportStream>, git2::Error> {
        let ctx = CONTEXT
            .with(|c| c.borrow().clone())
            .ok_or_else(|| git2::Error::from_str("git over HTTP used outside a forge operation"))?;
        let base = url
            .strip_prefix(PREFIX)
            .unwrap_or(url)
            .trim_end_matches('/');
        let (post, path, service) = match action {
            Service::UploadPackLs => (false, "/info/refs?service=git-upload-pack", "upload-pack"),
            Service::ReceivePackLs => {
                (false, "/info/refs?service=git-receive-pack", "receive-pack")
            }
            Service::UploadPack => (true, "/git-upload-pack", "upload-pack"),
            Service::ReceivePack => (true, "/git-receive-pack", "receive-pack"),
        };
        Ok(Box::new(HttpStream {
            ctx,
            url: format!("{base}{path}"),
            post,
            service,
            request: Vec::new(),
            response: None,
            chunk: Vec::new(),
            pos: 0,
        }))
    }

    fn close(&self) -> Result<(), git2::Error> {
        Ok(())
    }
}

/// One request/response exchange: writes are buffered, the first read sends the request.
struct HttpStream {
    ctx: HttpContext,
    url: String,
    post: bool,
    service: &'static str,
    request: Vec<u8>,
    response: Option<reqwest::Response>,
    chunk: Vec<u8>,
    pos: usize,
}

/// Runs `f` on the runtime, up to the operation's deadline.
fn wait<F: Future>(ctx: &HttpContext, f: F) -> io::Result<F::Output> {
    match ctx.deadline {
        None => Ok(ctx.runtime.block_on(f)),
        Some(at) => ctx
            .runtime
            .block_on(tokio::time::timeout_at(at, f))
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "git over HTTP: timeout")),
    }
}

impl HttpStream {
    fn send(&mut self) -> io::Result<reqwest::Response> {
        let mut request = if self.post {
            self.ctx
                .client
                .post(&self.url)
                .header(
                    reqwest::header::CONTENT_TYPE,
                    format!("application/x-git-{}-request", self.service),
                )
                .header(
                    reqwest::header::ACCEPT,
                    format!("application/x-git-{}-result", self.service),
                )
                .body(std::mem::take(&mut self.request))
        } else {
            self.ctx.client.get(&self.url)
        };
        if let Some(token) = &self.ctx.token {
            request = request.basic_auth("x-access-token", Some(token.expose()));
        }
        let response = wait(&self.ctx, request.send())?
            .map_err(|e| io::Error::other(format!("git over HTTP: {}", kind(&e))))?;
        let status = response.status();
        if !status.is_success() {
            // `git::UNAUTHORIZED` recognises the 401 form of this message, and callers find
            // [`RETRY_AFTER`] in it.
            let hint = match (status.as_u16(), rate_limit_wait(response.headers())) {
                (403 | 429, Some(secs)) => format!(": {RETRY_AFTER}{secs} s"),
                (401 | 403, None) => {
                    ": the GitHub App needs the contents permission on the repository".to_owned()
                }
                (404, _) => ": repository not found".to_owned(),
                _ => String::new(),
            };
            return Err(io::Error::other(format!(
                "git {} over HTTP answered {status}{hint}",
                self.service
            )));
        }
        Ok(response)
    }
}

/// How long a rate-limited answer asks to wait: `retry-after` (seconds), or the primary
/// limit's reset time when none are left.
fn rate_limit_wait(headers: &reqwest::header::HeaderMap) -> Option<u64> {
    let number = |name: &str| {
        let value = headers.get(name)?.to_str().ok()?;
        value.trim().parse::<u64>().ok()
    };
    if let Some(secs) = number("retry-after") {
        return Some(secs);
    }
    if number("x-ratelimit-remaining") == Some(0) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        return number("x-ratelimit-reset").map(|reset| reset.saturating_sub(now));
    }
    None
}

fn kind(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    }
}

impl Read for HttpStream {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.response.is_none() {
            self.response = Some(self.send()?);
        }
        loop {
            if self.pos < self.chunk.len() {
                let n = out.len().min(self.chunk.len() - self.pos);
                out[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
                self.pos += n;
                return Ok(n);
            }
            let response = self.response.as_mut().expect("sent above");
            match wait(&self.ctx, response.chunk())? {
                Ok(Some(chunk)) => {
                    self.chunk = chunk.to_vec();
                    self.pos = 0;
                }
                Ok(None) => return Ok(0),
                Err(e) => return Err(io::Error::other(format!("git over HTTP: {}", kind(&e)))),
            }
        }
    }
}

impl Write for HttpStream {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.request.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_http_urls_use_this_transport() {
        assert_eq!(
            remote_url("https://github.com/a/b.git"),
            "countersign+https://github.com/a/b.git"
        );
        assert_eq!(
            remote_url("http://127.0.0.1:9/a/b.git"),
            "countersign+http://127.0.0.1:9/a/b.git"
        );
        assert_eq!(remote_url("file:///srv/r.git"), "file:///srv/r.git");
    }

    #[test]
    fn the_transport_refuses_to_run_without_a_context() {
        register().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let repo = git2::Repository::init_bare(dir.path()).unwrap();
        let mut remote = repo
            .remote_anonymous("countersign+http://127.0.0.1:9/a/b.git")
            .unwrap();
        let e = remote.fetch(&["refs/heads/main"], None, None).unwrap_err();
        assert!(e.message().contains("outside a forge operation"), "{e}");
    }
}
