//! The dispatch loop. One task owns all scheduling state and reacts to: tasks from the input,
//! attempt reports, metric scrapes, probe results, membership changes, retry timers, a
//! periodic tick, and the stop/abort signals. Every mode runs this same loop; a mode only
//! decides the global limit, the per-backend limits and the picker.
//!
//! Submodules: `attempt` (spawned work), `complete` (what a report does to a task),
//! `tick` (controllers, stalls, probes, hedges, the all-down wait).

mod attempt;
mod complete;
mod tick;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use drover_client::{BackendAddr, Client, LoadSignals};
use drover_types::{Failure, Task};
use rand::SeedableRng;
use rand::rngs::SmallRng;
use tokio::sync::mpsc;
use tokio::task::AbortHandle;
use tokio_util::sync::CancellationToken;

use crate::breaker::Breaker;
use crate::check::AnswerCheck;
use crate::config::{DispatchConfig, Mode, StreamPolicy};
use crate::limit::{AdaptiveLimit, Limit, ServerView};
use crate::pick::{AvailSet, p2c, round_robin};
use crate::view::{
    BackendSpec, BackendState, BackendStatus, DispatchEvent, Finished, FleetSnapshot,
};

use attempt::{AttemptJob, BackendShared, Done};

/// Signals from the job to the loop.
#[derive(Debug, Clone, Default)]
pub struct Control {
    /// Stop taking tasks; let the ones in flight finish (first Ctrl-C).
    pub stop_intake: CancellationToken,
    /// Cancel everything in flight now (grace over, or second Ctrl-C).
    pub abort: CancellationToken,
}

/// What the loop reports when it ends.
#[derive(Debug, Clone, Default)]
pub struct DispatchReport {
    /// Tasks read but not finished because the run was stopped (they are resumable).
    pub unfinished: u64,
    /// Retries scheduled.
    pub retries: u64,
    /// Hedges sent.
    pub hedges: u64,
}

/// The channels and shared views a run is wired with.
pub struct Wiring {
    /// Tasks to dispatch; closing it ends the input.
    pub input: mpsc::Receiver<Task>,
    /// Where finished tasks go (the collector).
    pub finished: mpsc::Sender<Finished>,
    /// Events for the terminal.
    pub events: mpsc::UnboundedSender<DispatchEvent>,
    /// The fleet snapshot, refreshed every tick.
    pub snapshot: Arc<Mutex<FleetSnapshot>>,
    /// Full backend sets from dynamic membership, when enabled.
    pub membership: Option<mpsc::Receiver<Vec<BackendSpec>>>,
    /// Stop and abort.
    pub control: Control,
}

pub(crate) struct Backend {
    label: Arc<str>,
    addr: Arc<BackendAddr>,
    shared: Arc<BackendShared>,
    breaker: Breaker,
    limit: Limit,
    in_flight: usize,
    streaming: bool,
    engine: Option<&'static str>,
    server: Option<ServerView>,
    draining: bool,
    removed: bool,
    /// The limit's value, as of the last [`Dispatcher::refresh`]: read for every task sent
    /// and answered, so kept here rather than behind the controller's box (one cache line
    /// less per task in a large fleet).
    limit_now: usize,
    /// Latency EWMA of answered attempts, seconds.
    latency: Option<f64>,
    /// Time-to-first-token EWMA of streamed answers, seconds.
    ttft: Option<f64>,
    scraper: Option<AbortHandle>,
    /// Last time the backend was seen making progress, and the progress marker then.
    progress: (Instant, f64),
}

impl Backend {
    fn state(&self) -> BackendState {
        use crate::breaker::BreakerState as B;
        if self.removed {
            BackendState::Removed
        } else if self.draining {
            BackendState::Draining
        } else {
            match self.breaker.state() {
                B::Closed => BackendState::Up,
                B::Open { .. } => BackendState::Out,
                B::Probing { .. } => BackendState::Probing,
            }
        }
    }

    /// Its live progress marker — the server's generated-token counter, else the tokens of
    /// streamed answers — or `None` when drover sees its tokens only at completion.
    fn live_tokens(&self) -> Option<f64> {
        match self.server.as_ref().and_then(|s| s.generation_tokens) {
            Some(g) => Some(g),
            None if self.streaming => Some(
                self.shared
                    .tokens
                    .load(std::sync::atomic::Ordering::Relaxed) as f64,
            ),
            None => None,
        }
    }

    fn takes_work(&self) -> bool {
        !self.removed && !self.draining && self.breaker.is_closed()
    }
}

struct AttemptRec {
    task: u64,
    backend: usize,
    started: Instant,
    hedge: bool,
    abort: AbortHandle,
    request_id: String,
}

pub(crate) struct TaskState {
    task: Arc<Task>,
    /// Ids of this task's attempts in flight (an original and at most one hedge).
    live_ids: [u64; 2],
    body: Bytes,
    attempts: u32,
    /// Attempts answered "slow down" (429, 503 with Retry-After): retried without using up
    /// the attempt budget — the server asked for a later try, the task did nothing wrong.
    overloaded: u32,
    hedges: u32,
    repairs: u32,
    live: u8,
    avoid: Option<usize>,
    last_failure: Option<LastFailure>,
}

struct LastFailure {
    failure: Failure,
    message: String,
    body: Option<Box<serde_json::value::RawValue>>,
    backend: usize,
    request_id: String,
}

impl TaskState {
    /// An attempt of this task ended (answered, failed or cancelled).
    fn forget(&mut self, attempt: u64) {
        self.live -= 1;
        if self.live_ids[0] == attempt {
            self.live_ids[0] = self.live_ids[1];
        }
        self.live_ids[1] = u64::MAX;
    }
}

/// Hashes ids the loop hands out itself (sequential u64s): SipHash's protection against
/// chosen keys buys nothing here and costs more than the rest of a map lookup.
#[derive(Default, Clone, Copy)]
pub(crate) struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u64(&mut self, n: u64) {
        // Fibonacci hashing spreads sequential ids over the table's high and low bits.
        self.0 = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

type IdMap<V> = HashMap<u64, V, std::hash::BuildHasherDefault<IdHasher>>;

/// Fresh tasks waiting for a backend: input order (seed modes) or longest first (adaptive).
///
/// Longest first is within windows of `window` consecutive tasks (the read-ahead), earlier
/// windows first: across the whole queue, long tasks read later would keep jumping ahead of
/// short ones read earlier, which then wait until the input ends (measured: 1,900 short tasks
/// held for 150 s behind 2k-token prompts).
enum Queue {
    Fifo(VecDeque<u64>),
    Longest {
        heap: BinaryHeap<(Reverse<u64>, u64, Reverse<u64>)>,
        window: u64,
    },
}

impl Queue {
    fn push(&mut self, id: u64, cost: u64) {
        match self {
            Queue::Fifo(q) => q.push_back(id),
            Queue::Longest { heap, window } => {
                heap.push((Reverse(id / *window), cost, Reverse(id)))
            }
        }
    }
    fn pop(&mut self) -> Option<u64> {
        match self {
            Queue::Fifo(q) => q.pop_front(),
            Queue::Longest { heap, .. } => heap.pop().map(|(_, _, Reverse(id))| id),
        }
    }
    fn len(&self) -> usize {
        match self {
            Queue::Fifo(q) => q.len(),
            Queue::Longest { heap, .. } => heap.len(),
        }
    }
    fn drain_ids(&mut self) -> Vec<u64> {
        match self {
            Queue::Fifo(q) => q.drain(..).collect(),
            Queue::Longest { heap, .. } => heap.drain().map(|(_, _, Reverse(id))| id).collect(),
        }
    }
}

/// The dispatcher.
pub struct Dispatcher {
    cfg: DispatchConfig,
    client: Client,
    checker: Option<Arc<dyn AnswerCheck>>,
    backends: Vec<Backend>,
    avail: AvailSet,
    rr_cursor: usize,
    rng: SmallRng,
    in_flight: usize,
    attempts: IdMap<AttemptRec>,
    tasks: IdMap<TaskState>,
    urgent: VecDeque<u64>,
    queue: Queue,
    delayed: BinaryHeap<Reverse<(Instant, u64)>>,
    next_task_id: u64,
    next_attempt_id: u64,
    run_tag: u32,
    input_closed: bool,
    stopping: bool,
    failing_all: bool,
    all_down_since: Option<Instant>,
    backlog: bool,
    /// At the end of the input, the most one backend may hold while another ramps up
    /// ([`crate::pick::end_share`]); recomputed every tick.
    share_cap: Option<usize>,
    task_tokens: Option<f64>,
    outbox: VecDeque<Finished>,
    report: DispatchReport,
    done_tx: mpsc::UnboundedSender<Done>,
    done_rx: mpsc::UnboundedReceiver<Done>,
    scrape_tx: mpsc::UnboundedSender<(usize, Instant, LoadSignals)>,
    /// Backends with a scraper, shared with the scrapers to spread their rate.
    scraped: Arc<std::sync::atomic::AtomicUsize>,
    scrape_rx: mpsc::UnboundedReceiver<(usize, Instant, LoadSignals)>,
    probe_tx: mpsc::UnboundedSender<(usize, bool)>,
    probe_rx: mpsc::UnboundedReceiver<(usize, bool)>,
    events: Option<mpsc::UnboundedSender<DispatchEvent>>,
}

impl Dispatcher {
    /// A dispatcher over `backends`. `checker` judges answers (structured output).
    pub fn new(
        cfg: DispatchConfig,
        client: Client,
        backends: Vec<BackendSpec>,
        checker: Option<Arc<dyn AnswerCheck>>,
    ) -> Dispatcher {
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        let (scrape_tx, scrape_rx) = mpsc::unbounded_channel();
        let (probe_tx, probe_rx) = mpsc::unbounded_channel();
        let queue = match cfg.mode {
            Mode::Adaptive => Queue::Longest {
                heap: BinaryHeap::new(),
                window: cfg.lookahead.max(1) as u64,
            },
            _ => Queue::Fifo(VecDeque::new()),
        };
        let mut d = Dispatcher {
            rng: SmallRng::seed_from_u64(cfg.seed),
            run_tag: rand::random(),
            cfg,
            client,
            checker,
            backends: Vec::new(),
            avail: AvailSet::default(),
            rr_cursor: 0,
            in_flight: 0,
            attempts: IdMap::default(),
            tasks: IdMap::default(),
            urgent: VecDeque::new(),
            queue,
            delayed: BinaryHeap::new(),
            next_task_id: 0,
            next_attempt_id: 0,
            input_closed: false,
            stopping: false,
            failing_all: false,
            all_down_since: None,
            backlog: false,
            share_cap: None,
            task_tokens: None,
            outbox: VecDeque::new(),
            report: DispatchReport::default(),
            done_tx,
            done_rx,
            scrape_tx,
            scraped: Arc::default(),
            scrape_rx,
            probe_tx,
            probe_rx,
            events: None,
        };
        for spec in backends {
            d.add_backend(spec);
        }
        d
    }

    fn add_backend(&mut self, spec: BackendSpec) {
        let id = self.backends.len();
        let has_metrics = spec.signals.is_some();
        let streaming = match self.cfg.stream {
            StreamPolicy::Always => true,
            StreamPolicy::Never => false,
            StreamPolicy::Auto => !spec
                .signals
                .as_ref()
                .is_some_and(|s| s.generation_tokens.is_some()),
        };
        let limit = match self.cfg.mode {
            Mode::Adaptive => {
                Limit::Adaptive(Box::new(AdaptiveLimit::new(self.cfg.adaptive.clone())))
            }
            _ => Limit::Unlimited,
        };
        // Discovery's scrape counts as the first: the KV size it carries sizes the first limit.
        let server = spec.signals.as_ref().map(|s| ServerView {
            at: Some(Instant::now()),
            running: s.running,
            waiting: s.waiting,
            kv_usage: s.kv_usage,
            generation_tokens: s.generation_tokens,
            kv_capacity_tokens: s.kv_capacity_tokens,
            from_client: false,
        });
        let addr = Arc::new(spec.addr);
        let scraper = has_metrics.then(|| {
            self.scraped
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tokio::spawn(attempt::scrape_loop(
                self.client.clone(),
                addr.clone(),
                spec.scraper,
                id,
                self.cfg.scrape_interval,
                self.scraped.clone(),
                self.scrape_tx.clone(),
            ))
            .abort_handle()
        });
        self.backends.push(Backend {
            label: Arc::from(addr.label.as_str()),
            addr,
            shared: Arc::new(BackendShared::default()),
            breaker: Breaker::new(self.cfg.breaker.clone()),
            limit,
            in_flight: 0,
            streaming,
            engine: spec.signals.as_ref().map(|s| s.engine.name()),
            server,
            draining: false,
            removed: false,
            limit_now: 0,
            latency: None,
            ttft: None,
            scraper,
            progress: (Instant::now(), 0.0),
        });
        self.refresh(id);
    }

    /// Recomputes whether backend `b` can take a task now, after its limit or state may
    /// have changed.
    fn refresh(&mut self, b: usize) {
        let be = &mut self.backends[b];
        be.limit_now = be.limit.get();
        self.refresh_avail(b);
    }

    /// The same when only its in-flight count changed (a task sent or answered).
    fn refresh_avail(&mut self, b: usize) {
        let be = &self.backends[b];
        debug_assert_eq!(
            be.limit_now,
            be.limit.get(),
            "backend {b}: its limit changed without a refresh"
        );
        let cap = be.limit_now.min(self.share_cap.unwrap_or(usize::MAX));
        let ok = be.takes_work() && be.in_flight < cap;
        self.avail.set(b, ok);
    }

    fn emit(&self, e: DispatchEvent) {
        if let Some(tx) = &self.events {
            let _ = tx.send(e);
        }
    }

    fn global_room(&self) -> bool {
        self.cfg
            .mode
            .global_limit()
            .is_none_or(|g| self.in_flight < g)
    }

    fn pending_work(&self) -> bool {
        !self.urgent.is_empty() || self.queue.len() > 0 || !self.delayed.is_empty()
    }

    /// Runs until the input is exhausted and every task is finished, or until stopped.
    pub async fn run(mut self, mut wiring: Wiring) -> DispatchReport {
        self.events = Some(wiring.events.clone());
        let mut tick = tokio::time::interval(self.cfg.tick);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let control = wiring.control.clone();
        let mut membership = wiring.membership.take();
        loop {
            self.pump();
            self.flush_outbox(&wiring.finished).await;
            if self.finished_all() {
                break;
            }
            let want_input = !self.input_closed
                && !self.stopping
                && self.queue.len() < self.cfg.lookahead.max(1);
            let next_retry = self.delayed.peek().map(|Reverse((t, _))| *t);
            tokio::select! {
                biased;
                _ = control.abort.cancelled() => {
                    self.abort_all();
                    break;
                }
                _ = control.stop_intake.cancelled(), if !self.stopping => self.stop(),
                Some(done) = self.done_rx.recv() => {
                    self.on_done(done);
                    while let Ok(more) = self.done_rx.try_recv() {
                        self.on_done(more);
                    }
                }
                Some((b, at, s)) = self.scrape_rx.recv() => self.on_scrape(b, at, s),
                Some((b, ok)) = self.probe_rx.recv() => self.on_probe(b, ok),
                m = recv_opt(&mut membership) => match m {
                    Some(set) => self.on_membership(set),
                    None => membership = None,
                },
                t = wiring.input.recv(), if want_input => match t {
                    Some(task) => {
                        self.admit(task);
                        // Take what is already buffered without another trip through select.
                        while self.queue.len() < self.cfg.lookahead.max(1) {
                            match wiring.input.try_recv() {
                                Ok(task) => self.admit(task),
                                Err(mpsc::error::TryRecvError::Empty) => break,
                                Err(mpsc::error::TryRecvError::Disconnected) => { self.input_closed = true; break; }
                            }
                        }
                    }
                    None => self.input_closed = true,
                },
                _ = sleep_until_opt(next_retry) => self.release_due(),
                _ = tick.tick() => self.on_tick(&wiring.snapshot),
            }
        }
        self.flush_outbox(&wiring.finished).await;
        for b in &self.backends {
            if let Some(s) = &b.scraper {
                s.abort();
            }
        }
        self.publish(&wiring.snapshot);
        self.report.unfinished += self.tasks.len() as u64;
        self.report
    }

    fn finished_all(&self) -> bool {
        if self.stopping {
            return self.in_flight == 0;
        }
        self.input_closed && self.tasks.is_empty()
    }

    async fn flush_outbox(&mut self, out: &mpsc::Sender<Finished>) {
        while let Some(f) = self.outbox.pop_front() {
            if out.send(f).await.is_err() {
                // The collector is gone (the job is ending); nothing more can be recorded.
                self.outbox.clear();
                return;
            }
        }
    }

    fn admit(&mut self, task: Task) {
        let id = self.next_task_id;
        self.next_task_id += 1;
        let size = f64::from(task.prompt_tokens_est) + f64::from(task.max_tokens.unwrap_or(256));
        self.task_tokens = Some(match self.task_tokens {
            None => size,
            Some(m) => 0.99 * m + 0.01 * size,
        });
        let cost = task.cost_estimate();
        let body = task.body.clone();
        self.tasks.insert(
            id,
            TaskState {
                task: Arc::new(task),
                live_ids: [u64::MAX; 2],
                body,
                attempts: 0,
                overloaded: 0,
                hedges: 0,
                repairs: 0,
                live: 0,
                avoid: None,
                last_failure: None,
            },
        );
        if self.failing_all {
            self.fail_no_backend(id);
        } else {
            self.queue.push(id, cost);
        }
    }

    fn next_task(&mut self) -> Option<u64> {
        self.urgent.pop_front().or_else(|| self.queue.pop())
    }

    /// Sends as many tasks as the policy allows.
    fn pump(&mut self) {
        if self.stopping || self.failing_all {
            return;
        }
        while self.global_room() && !self.avail.is_empty() {
            let Some(id) = self.next_task() else { return };
            let avoid = self.tasks.get(&id).and_then(|t| t.avoid);
            match self.pick(avoid) {
                Some(b) => self.launch(id, b, false),
                None => {
                    self.urgent.push_front(id);
                    break;
                }
            }
        }
        if self.pending_work()
            || (!self.input_closed && self.queue.len() >= self.cfg.lookahead.max(1))
        {
            self.backlog = true;
        }
    }

    fn pick(&mut self, avoid: Option<usize>) -> Option<usize> {
        match self.cfg.mode {
            Mode::Adaptive => {
                let backends = &self.backends;
                p2c(&self.avail, &mut self.rng, avoid, |b| {
                    let be = &backends[b];
                    (be.in_flight as f64 + 1.0) / be.limit_now.max(1) as f64
                })
            }
            _ => round_robin(&self.avail, &mut self.rr_cursor, avoid),
        }
    }

    fn launch(&mut self, task_id: u64, b: usize, hedge: bool) {
        let Some(ts) = self.tasks.get_mut(&task_id) else {
            return;
        };
        if hedge {
            ts.hedges += 1;
        } else {
            ts.attempts += 1;
        }
        let attempt = self.next_attempt_id;
        self.next_attempt_id += 1;
        ts.live_ids[usize::from(ts.live).min(1)] = attempt;
        ts.live += 1;
        let mut request_id = String::with_capacity(24);
        request_id.push_str("req_");
        drover_types::push_hex(&mut request_id, u128::from(self.run_tag), 8);
        drover_types::push_hex(&mut request_id, u128::from(attempt), 12);
        let be = &mut self.backends[b];
        be.in_flight += 1;
        self.in_flight += 1;
        let timeout = self.cfg.timeout.for_task(ts.task.max_tokens);
        let job = AttemptJob {
            client: self.client.clone(),
            addr: be.addr.clone(),
            task: ts.task.clone(),
            body: ts.body.clone(),
            repairs: ts.repairs,
            request_id: request_id.clone(),
            timeout,
            idle_timeout: timeout.min(self.cfg.timeout.stall_after() * 2),
            stream: be.streaming,
            shared: be.shared.clone(),
            checker: self.checker.clone(),
        };
        // Boxed: tokio copies a spawned future into its task, and its output over it when it
        // ends; a box makes both copies a pointer's (the attempt's state is kilobytes: the
        // largest memory traffic per task, in cachegrind).
        let abort = tokio::spawn(Box::pin(job.run(attempt, self.done_tx.clone()))).abort_handle();
        self.attempts.insert(
            attempt,
            AttemptRec {
                task: task_id,
                backend: b,
                started: Instant::now(),
                hedge,
                abort,
                request_id,
            },
        );
        self.refresh_avail(b);
    }

    /// Cancels one attempt the loop no longer wants (hedge loser, ejected backend).
    fn cancel_attempt(&mut self, attempt: u64) -> Option<AttemptRec> {
        let rec = self.attempts.remove(&attempt)?;
        rec.abort.abort();
        self.backends[rec.backend].in_flight -= 1;
        self.in_flight -= 1;
        if let Some(ts) = self.tasks.get_mut(&rec.task) {
            ts.forget(attempt);
        }
        self.refresh_avail(rec.backend);
        Some(rec)
    }

    fn release_due(&mut self) {
        let now = Instant::now();
        while let Some(Reverse((t, id))) = self.delayed.peek().copied() {
            if t > now {
                break;
            }
            self.delayed.pop();
            if self.tasks.contains_key(&id) {
                self.urgent.push_back(id);
            }
        }
    }

    fn stop(&mut self) {
        self.stopping = true;
        // Queued and delayed tasks have no record: a resume sends them.
        let queued: Vec<u64> = self
            .urgent
            .drain(..)
            .chain(self.queue.drain_ids())
            .collect();
        for id in queued {
            self.tasks.remove(&id);
            self.report.unfinished += 1;
        }
        while let Some(Reverse((_, id))) = self.delayed.pop() {
            if self.tasks.remove(&id).is_some() {
                self.report.unfinished += 1;
            }
        }
    }

    fn abort_all(&mut self) {
        let ids: Vec<u64> = self.attempts.keys().copied().collect();
        for a in ids {
            self.cancel_attempt(a);
        }
    }

    fn on_scrape(&mut self, b: usize, at: Instant, s: LoadSignals) {
        let Some(be) = self.backends.get_mut(b) else {
            return;
        };
        be.engine = Some(s.engine.name());
        be.server = Some(ServerView {
            at: Some(at),
            running: s.running,
            waiting: s.waiting,
            kv_usage: s.kv_usage,
            generation_tokens: s.generation_tokens,
            kv_capacity_tokens: s.kv_capacity_tokens,
            from_client: false,
        });
    }

    fn on_membership(&mut self, set: Vec<BackendSpec>) {
        let wanted: HashMap<String, BackendSpec> =
            set.into_iter().map(|s| (s.addr.base.clone(), s)).collect();
        for b in 0..self.backends.len() {
            let be = &mut self.backends[b];
            if !be.removed && !be.draining && !wanted.contains_key(&be.addr.base) {
                be.draining = true;
                let label = be.label.to_string();
                self.refresh(b);
                self.emit(DispatchEvent::Left { backend: label });
            }
        }
        for (base, spec) in wanted {
            match self
                .backends
                .iter()
                .position(|be| be.addr.base == base && !be.removed)
            {
                Some(b) if self.backends[b].draining => {
                    // Came back before it finished draining.
                    self.backends[b].draining = false;
                    self.refresh(b);
                }
                Some(_) => {}
                None => {
                    let label = spec.addr.label.clone();
                    self.add_backend(spec);
                    self.emit(DispatchEvent::Joined { backend: label });
                }
            }
        }
    }

    fn publish(&self, snapshot: &Arc<Mutex<FleetSnapshot>>) {
        let backends = self
            .backends
            .iter()
            .map(|b| BackendStatus {
                label: b.label.clone(),
                state: b.state(),
                in_flight: b.in_flight,
                limit: b.limit.shown(),
                ejections: b.breaker.ejections(),
                streaming: b.streaming,
                engine: b.engine,
                tokens_per_s: match &b.limit {
                    Limit::Adaptive(a) => a.last_rate(),
                    _ => None,
                },
                tokens_seen: b.shared.tokens.load(std::sync::atomic::Ordering::Relaxed),
                server_running: b.server.as_ref().and_then(|s| s.running),
                server_waiting: b.server.as_ref().and_then(|s| s.waiting),
                server_kv: b.server.as_ref().and_then(|s| s.kv_usage),
            })
            .collect();
        let snap = FleetSnapshot {
            at: Some(Instant::now()),
            backends,
            in_flight: self.in_flight,
            queued: self.urgent.len() + self.queue.len() + self.delayed.len(),
            retries: self.report.retries,
            hedges: self.report.hedges,
            input_done: self.input_closed,
            all_down_since: self.all_down_since,
        };
        *snapshot.lock().expect("snapshot lock") = snap;
    }
}

async fn recv_opt<T>(rx: &mut Option<mpsc::Receiver<T>>) -> Option<T> {
    match rx {
        Some(r) => r.recv().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until_opt(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t.into()).await,
        None => std::future::pending().await,
    }
}

/// Duration as seconds, for EWMAs.
fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_first_within_windows_and_no_starvation_across_them() {
        let mut q = Queue::Longest {
            heap: BinaryHeap::new(),
            window: 4,
        };
        // Window 0: short tasks (cost 10) and one long; window 1: all long (cost 100).
        for (id, cost) in [
            (0, 10),
            (1, 10),
            (2, 100),
            (3, 10),
            (4, 100),
            (5, 100),
            (6, 100),
        ] {
            q.push(id, cost);
        }
        let order: Vec<u64> = std::iter::from_fn(|| q.pop()).collect();
        // The long task of window 0 first, then its short ones in input order, then window 1.
        assert_eq!(order, [2, 0, 1, 3, 4, 5, 6]);
    }
}
