//! Per-test log capture: every log line countersign writes while one test runs, at TRACE level
//! (JSON), so secrecy tests can search what it logged. The capture belongs to the test's own
//! runtime: each of its threads (the one running the test and the blocking pool's) logs into it
//! through a thread-local default subscriber. No global subscriber is installed, so tests
//! sharing one process never see each other's lines.

use std::cell::RefCell;
use std::future::Future;
use std::sync::{Arc, Mutex, OnceLock};
use tracing::dispatcher::{self, DefaultGuard, Dispatch};
use tracing::subscriber::NoSubscriber;

/// The lines captured so far (JSON, one per line).
#[derive(Clone, Default)]
pub struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    pub fn bytes(&self) -> Vec<u8> {
        self.0.lock().unwrap().clone()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    fn dispatch(&self) -> Dispatch {
        let sink = self.0.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .json()
            .with_writer(move || Sink(sink.clone()))
            .finish();
        Dispatch::new(subscriber)
    }
}

/// A second dispatch that never goes away and takes nothing. While exactly one dispatch exists,
/// `tracing` asks the *current thread's* default whether a callsite is enabled the first time it
/// runs: a thread of another test (no subscriber) would then cache "never" for a callsite a
/// capturing test needs (tokio-rs/tracing#3611, #2874). With two, it asks every dispatch.
static NOT_JUST_ONE: OnceLock<Dispatch> = OnceLock::new();

thread_local! {
    /// The capture of the runtime this thread belongs to, for the thread's lifetime.
    static THREAD_CAPTURE: RefCell<Option<DefaultGuard>> = const { RefCell::new(None) };
}

/// Runs the async test body `test` the way `#[tokio::test]` does (a current-thread runtime),
/// with everything logged on that runtime's threads captured into the [`Logs`] it is given.
///
/// ```ignore
/// #[test]
/// fn nothing_secret_is_logged() {
///     testkit::logs::capture(|logs| async move { /* … */ assert!(!logs.text().contains(s)) })
/// }
/// ```
pub fn capture<F, Fut>(test: F)
where
    F: FnOnce(Logs) -> Fut,
    Fut: Future<Output = ()>,
{
    NOT_JUST_ONE.get_or_init(|| Dispatch::new(NoSubscriber::default()));
    let logs = Logs::default();
    let dispatch = logs.dispatch();
    let for_threads = dispatch.clone();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .on_thread_start(move || {
            let guard = dispatcher::set_default(&for_threads);
            THREAD_CAPTURE.with(|c| *c.borrow_mut() = Some(guard));
        })
        .on_thread_stop(|| THREAD_CAPTURE.with(|c| drop(c.borrow_mut().take())))
        .build()
        .expect("a tokio runtime");
    let _this_thread = dispatcher::set_default(&dispatch);
    runtime.block_on(test(logs));
}

struct Sink(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
