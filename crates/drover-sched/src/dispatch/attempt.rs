//! The work spawned by the loop: one attempt of one task, health probes and metrics scrapes.
//! Each reports back over a channel; nothing here touches the loop's state.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use drover_client::{Answer, AttemptError, BackendAddr, Client, LoadSignals, Scraper, SendOptions};
use drover_types::{Endpoint, Failure, Task};
use tokio::sync::mpsc;

use crate::check::{AnswerCheck, Verdict};

/// Counters attempts update while they run, shared with the loop: tokens seen and requests
/// still waiting for their first token.
pub(crate) type BackendShared = drover_client::Progress;

/// How an attempt ended.
pub(crate) enum AttemptResult {
    Answered {
        answer: Answer,
        verdict: Option<Verdict>,
    },
    Failed(AttemptError),
    /// The attempt's task ended without reporting (panic): treated as a reset.
    Lost,
}

/// An attempt's report to the loop.
pub(crate) struct Done {
    pub attempt: u64,
    pub result: AttemptResult,
    pub elapsed: Duration,
}

/// Sends the attempt's report exactly once, even if the attempt panics: the loop's in-flight
/// counts are released only by these reports (or by the loop itself when it aborts one).
struct Reporter {
    tx: mpsc::UnboundedSender<Done>,
    attempt: u64,
    start: Instant,
    sent: bool,
}

impl Reporter {
    fn send(mut self, result: AttemptResult) {
        self.sent = true;
        let _ = self.tx.send(Done {
            attempt: self.attempt,
            result,
            elapsed: self.start.elapsed(),
        });
    }
}

impl Drop for Reporter {
    fn drop(&mut self) {
        if !self.sent {
            let _ = self.tx.send(Done {
                attempt: self.attempt,
                result: AttemptResult::Lost,
                elapsed: self.start.elapsed(),
            });
        }
    }
}

/// Everything one attempt needs, moved into its task.
pub(crate) struct AttemptJob {
    pub client: Client,
    pub addr: Arc<BackendAddr>,
    pub task: Arc<Task>,
    pub body: Bytes,
    pub repairs: u32,
    pub request_id: String,
    pub timeout: Duration,
    pub idle_timeout: Duration,
    pub stream: bool,
    pub shared: Arc<BackendShared>,
    pub checker: Option<Arc<dyn AnswerCheck>>,
}

impl AttemptJob {
    pub(crate) async fn run(self, attempt: u64, tx: mpsc::UnboundedSender<Done>) {
        let reporter = Reporter {
            tx,
            attempt,
            start: Instant::now(),
            sent: false,
        };
        let opts = SendOptions {
            request_id: &self.request_id,
            timeout: self.timeout,
            stream: self.stream,
            idle_timeout: self.idle_timeout,
        };
        let result = match self
            .client
            .send(
                &self.addr,
                self.task.endpoint,
                &self.body,
                &opts,
                Some(&*self.shared),
            )
            .await
        {
            Ok(answer) => {
                let verdict = self
                    .checker
                    .as_ref()
                    .map(|c| c.check(&self.task, &self.body, &answer.body, self.repairs));
                AttemptResult::Answered { answer, verdict }
            }
            Err(e) => AttemptResult::Failed(e),
        };
        reporter.send(result);
    }
}

/// Checks whether an ejected backend may come back: `/health` answers 2xx (or, on servers
/// without `/health`, `/v1/models` does), and — for a backend ejected for making no progress —
/// a one-token request completes.
pub(crate) async fn probe(
    client: Client,
    addr: Arc<BackendAddr>,
    prove_generation: Option<Bytes>,
) -> bool {
    let timeout = Duration::from_secs(5);
    let healthy = match client.health(&addr, timeout).await {
        Ok(()) => true,
        Err(e) if matches!(e.failure, Failure::Rejected { status: 404 }) => {
            client.models(&addr, timeout).await.is_ok()
        }
        Err(_) => false,
    };
    if !healthy {
        return false;
    }
    let Some(body) = prove_generation else {
        return true;
    };
    let opts = SendOptions {
        request_id: "drover-probe",
        timeout: Duration::from_secs(15),
        stream: false,
        idle_timeout: Duration::from_secs(15),
    };
    client
        .send(&addr, Endpoint::ChatCompletions, &body, &opts, None)
        .await
        .is_ok()
}

/// Scrapes per second over the whole fleet, at most: past 25 backends the interval grows with
/// the fleet (about 1 s at 256), so the dispatcher's scraping cost stays bounded whatever its
/// size. At 1,000/s, 256 instant backends cost drover 1.24× the CPU per task of one backend at
/// the same concurrency; at 250/s, 1.16× (docs/benchmarks.md). A 1 s scrape still gives the
/// controller 3 s epochs, short next to a large fleet's jobs.
const FLEET_SCRAPES_PER_S: f64 = 250.0;

/// Scrapes a backend's metrics every `every` (longer in a large fleet: `fleet` backends share
/// [`FLEET_SCRAPES_PER_S`]) until the loop stops listening. `scraper` is discovery's: a vLLM
/// backend is asked for the signals' series only, while it answers that in full, and a
/// backend that did not is not asked again.
pub(crate) async fn scrape_loop(
    client: Client,
    addr: Arc<BackendAddr>,
    mut scraper: Scraper,
    backend: usize,
    every: Duration,
    fleet: Arc<AtomicUsize>,
    tx: mpsc::UnboundedSender<(usize, Instant, LoadSignals)>,
) {
    loop {
        let n = fleet.load(Ordering::Relaxed) as f64;
        let period = every.max(Duration::from_secs_f64(n / FLEET_SCRAPES_PER_S));
        tokio::time::sleep(period).await;
        if tx.is_closed() {
            return;
        }
        if let Ok(Some(s)) = scraper
            .scrape(&client, &addr, period.max(Duration::from_millis(500)) * 4)
            .await
        {
            if tx.send((backend, Instant::now(), s)).is_err() {
                return;
            }
        }
    }
}
