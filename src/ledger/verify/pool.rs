//! Line checking on worker threads while the history walk reads git: the walk hands over the
//! bytes each commit appends (in chunks of lines), the workers check each line on its own, and
//! the results are linked into the chain strictly in the order the walk handed them over.

use super::Stop;
use super::broken::{Broken, CommitRef, Place};
use super::content::{self, Chain, Segment};
use git2::Oid;
use std::collections::{HashMap, VecDeque};
use std::ops::Range;
use std::sync::mpsc::{Receiver, SyncSender, channel, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::Scope;

/// Lines per job: enough to make a job worth sending, few enough to spread a commit's lines.
const CHUNK_LINES: usize = 128;

type Verdict = Result<super::fast::Fields, (super::broken::Problem, Option<i64>)>;

struct Job {
    id: u64,
    bytes: Arc<Vec<u8>>,
    range: Range<usize>,
}

/// Lines handed over and not linked yet.
struct Batch {
    id: u64,
    segment: Arc<Segment>,
    /// 0-based line number of the first line in its file.
    first_line: usize,
    commit: Oid,
}

pub(super) struct Pool {
    jobs: Option<SyncSender<Job>>,
    done: Receiver<(u64, Vec<Verdict>)>,
    next_id: u64,
    waiting: VecDeque<Batch>,
    ready: HashMap<u64, Vec<Verdict>>,
}

impl Pool {
    /// Starts `workers` threads in `scope`; they stop when the pool is dropped.
    pub fn start<'scope>(scope: &'scope Scope<'scope, '_>, workers: usize) -> Pool {
        let (jobs, queue) = sync_channel::<Job>(workers * 4);
        let queue = Arc::new(Mutex::new(queue));
        let (results, done) = channel();
        for _ in 0..workers.max(1) {
            let queue = Arc::clone(&queue);
            let results = results.clone();
            scope.spawn(move || {
                loop {
                    let job = match queue.lock() {
                        Ok(queue) => queue.recv(),
                        Err(_) => return,
                    };
                    let Ok(job) = job else { return };
                    let lines = job.bytes[job.range].split(|b| *b == b'\n');
                    let verdicts: Vec<Verdict> = lines.map(content::check).collect();
                    if results.send((job.id, verdicts)).is_err() {
                        return;
                    }
                }
            });
        }
        Pool {
            jobs: Some(jobs),
            done,
            next_id: 0,
            waiting: VecDeque::new(),
            ready: HashMap::new(),
        }
    }

    /// Hands over `bytes[range]` (whole lines, ending with a newline), appended by `commit` to
    /// `segment` after its first `first_line` lines.
    pub fn submit(
        &mut self,
        segment: &Arc<Segment>,
        bytes: &Arc<Vec<u8>>,
        range: Range<usize>,
        first_line: usize,
        commit: Oid,
    ) -> Result<(), Stop> {
        let mut start = range.start;
        let mut line = first_line;
        while start < range.end {
            let mut end = start;
            let mut n = 0;
            for (i, b) in bytes[start..range.end].iter().enumerate() {
                if *b == b'\n' {
                    n += 1;
                    end = start + i;
                    if n == CHUNK_LINES {
                        break;
                    }
                }
            }
            if n == 0 {
                break; // only whole lines are handed over
            }
            let id = self.next_id;
            self.next_id += 1;
            let job = Job {
                id,
                bytes: Arc::clone(bytes),
                range: start..end, // without the last newline
            };
            let sent = self.jobs.as_ref().map(|jobs| jobs.send(job));
            if !matches!(sent, Some(Ok(()))) {
                return Err(stopped());
            }
            self.waiting.push_back(Batch {
                id,
                segment: Arc::clone(segment),
                first_line: line,
                commit,
            });
            line += n;
            start = end + 1;
        }
        Ok(())
    }

    /// Links the checked lines into `chain` in order: those ready (`wait: false`) or all that
    /// were handed over (`wait: true`). `commit` names a commit for the report.
    pub fn link(
        &mut self,
        chain: &mut Chain,
        wait: bool,
        commit: &dyn Fn(Oid) -> CommitRef,
    ) -> Result<(), Stop> {
        while let Some(front) = self.waiting.front() {
            let Some(verdicts) = self.ready.remove(&front.id) else {
                let received = match wait {
                    true => self.done.recv().map_err(|_| stopped())?,
                    false => match self.done.try_recv() {
                        Ok(received) => received,
                        Err(_) => return Ok(()),
                    },
                };
                self.ready.insert(received.0, received.1);
                continue;
            };
            let batch = self.waiting.pop_front().expect("front exists");
            for (i, verdict) in verdicts.into_iter().enumerate() {
                let n = batch.first_line + i;
                let (problem, seq) = match verdict {
                    Ok(fields) => {
                        let seq = fields.seq;
                        match chain.link(fields, n, &batch.segment) {
                            Ok(()) => continue,
                            Err(problem) => (problem, Some(seq)),
                        }
                    }
                    Err(failed) => failed,
                };
                let at = Place {
                    path: batch.segment.path.clone(),
                    line: n + 1,
                    seq,
                    commit: Some(commit(batch.commit)),
                };
                return Err(Box::new(Broken::Entry { at, problem }).into());
            }
        }
        Ok(())
    }
}

fn stopped() -> Stop {
    Stop::Unreadable(anyhow::anyhow!("the line checkers stopped unexpectedly"))
}
