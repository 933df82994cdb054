//! Housekeeping every tick: limits, stalled backends, probes of ejected ones, the wait when
//! every backend is down, tail hedges, and the snapshot for observers.

use std::cmp::Reverse;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{Dispatcher, attempt};
use crate::breaker::OutReason;
use crate::config::Mode;
use crate::hedge::{self, Candidate};
use crate::limit::{Limit, Observation, ServerView};
use crate::pick::{ShareView, end_share};
use crate::view::{DispatchEvent, FleetSnapshot};

/// A backend whose live token count moved this recently is making progress (hedging treats
/// its old requests as slow, not hung). Long enough to span a prefill burst on a slow engine.
const PROGRESS_RECENT: Duration = Duration::from_secs(10);

/// How long a backend's share of the end of the input is held for it after its limit last
/// moved in startup.
const RESERVE_FOR: Duration = Duration::from_secs(10);

impl Dispatcher {
    pub(super) fn on_tick(&mut self, snapshot: &Arc<Mutex<FleetSnapshot>>) {
        let now = Instant::now();
        self.retire_drained();
        let work_share = self.work_share();
        self.update_limits(now, work_share);
        self.update_share_cap(now, work_share);
        self.detect_stalls(now);
        self.start_probes(now);
        self.check_all_down(now);
        self.hedge(now);
        self.backlog = false;
        self.publish(snapshot);
    }

    /// A backend that left membership is gone once its last request finished.
    fn retire_drained(&mut self) {
        for be in &mut self.backends {
            if be.draining && !be.removed && be.in_flight == 0 {
                be.removed = true;
                if let Some(s) = be.scraper.take() {
                    s.abort();
                    // The fleet's scrape rate is shared by the backends still scraped.
                    self.scraped
                        .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
        }
    }

    /// Once the whole input is read: every task not yet finished (queued, waiting to retry, or
    /// in flight) per backend taking work.
    fn work_share(&self) -> Option<usize> {
        (self.input_closed && !self.stopping).then(|| {
            let up = self.backends.iter().filter(|b| b.takes_work()).count();
            self.tasks.len().div_ceil(up.max(1))
        })
    }

    fn update_limits(&mut self, now: Instant, work_share: Option<usize>) {
        // Only read once the input is: some server of the fleet batches, so every backend
        // still finding its limit may take its share of the rest (`AdaptiveLimit::take_share`).
        let fleet_batches = work_share.is_some()
            && self.backends.iter().any(|b| {
                b.takes_work() && matches!(&b.limit, Limit::Adaptive(a) if a.batches_shown())
            });
        for b in 0..self.backends.len() {
            let be = &mut self.backends[b];
            if !be.takes_work() {
                continue;
            }
            let Limit::Adaptive(ctl) = &mut be.limit else {
                continue;
            };
            ctl.set_latencies(be.latency, be.ttft);
            // A streamed request without its first token is queued or prefilling in the server:
            // for a server without metrics, that is its queue as drover sees it.
            let seen;
            let server = match (&be.server, be.streaming) {
                (Some(s), _) => Some(s),
                (None, true) => {
                    let waiting = be
                        .shared
                        .awaiting_first
                        .load(std::sync::atomic::Ordering::Relaxed)
                        .min(be.in_flight as u64) as f64;
                    seen = ServerView {
                        at: Some(now),
                        running: Some(be.in_flight as f64 - waiting),
                        waiting: Some(waiting),
                        from_client: true,
                        ..ServerView::default()
                    };
                    Some(&seen)
                }
                (None, false) => None,
            };
            let obs = Observation {
                now,
                in_flight: be.in_flight,
                backlog: self.backlog,
                client_tokens: be.shared.tokens.load(std::sync::atomic::Ordering::Relaxed),
                client_tokens_live: be.streaming,
                server,
                task_tokens: self.task_tokens,
                work_share,
                fleet_batches,
            };
            // Names the backend in the controller's debug log (`DROVER_LOG=drover::limit=debug`).
            let _span = tracing::debug_span!(target: "drover::limit", "backend", id = b).entered();
            if ctl.observe(&obs).is_some() {
                self.refresh(b);
            }
        }
    }

    /// Holds each backend to an even share of the work left while another is still ramping
    /// its limit at the end of the input (`pick::end_share`).
    fn update_share_cap(&mut self, now: Instant, work_share: Option<usize>) {
        let adaptive = self.cfg.mode == Mode::Adaptive;
        let cap = work_share.filter(|_| adaptive).and_then(|share| {
            let views: Vec<ShareView> = self
                .backends
                .iter()
                .filter(|b| b.takes_work())
                .map(|b| ShareView {
                    in_flight: b.in_flight,
                    growing: matches!(&b.limit, Limit::Adaptive(a) if a.ramping(now, RESERVE_FOR)),
                })
                .collect();
            end_share(share, &views)
        });
        if cap != self.share_cap {
            self.share_cap = cap;
            for b in 0..self.backends.len() {
                self.refresh(b);
            }
        }
    }

    /// A backend holding requests whose live token count does not move is quarantined. Only
    /// live signals count (the server's token counter, or streamed tokens): answers counted at
    /// completion legitimately stay still for a whole long generation, and those backends are
    /// caught by attempt deadlines instead.
    fn detect_stalls(&mut self, now: Instant) {
        let stall_after = self.cfg.timeout.stall_after();
        for b in 0..self.backends.len() {
            let be = &mut self.backends[b];
            let Some(marker) = be.live_tokens() else {
                continue;
            };
            if be.in_flight == 0 || marker != be.progress.1 || !be.breaker.is_closed() {
                be.progress = (now, marker);
                continue;
            }
            if now.duration_since(be.progress.0) >= stall_after && be.breaker.quarantine(now) {
                be.progress = (now, marker);
                let reason = format!(
                    "no progress for {} with {} requests in flight (stalled)",
                    humantime::format_duration(Duration::from_secs(stall_after.as_secs())),
                    be.in_flight
                );
                self.eject(b, reason);
            }
        }
    }

    fn start_probes(&mut self, now: Instant) {
        for b in 0..self.backends.len() {
            let be = &mut self.backends[b];
            if be.removed {
                continue;
            }
            let Some(reason) = be.breaker.start_probe(now) else {
                continue;
            };
            let prove = match reason {
                OutReason::Stalled => self.cfg.probe_body.clone(),
                OutReason::Failing(_) => None,
            };
            let (client, addr, tx) = (self.client.clone(), be.addr.clone(), self.probe_tx.clone());
            tokio::spawn(async move {
                let ok = attempt::probe(client, addr, prove).await;
                let _ = tx.send((b, ok));
            });
        }
    }

    pub(super) fn on_probe(&mut self, b: usize, ok: bool) {
        let now = Instant::now();
        let be = &mut self.backends[b];
        if be.breaker.probe_result(ok, now) {
            if let Limit::Adaptive(a) = &mut be.limit {
                a.on_readmitted(now);
            }
            be.progress = (now, be.progress.1);
            let label = be.label.to_string();
            self.refresh(b);
            self.emit(DispatchEvent::Readmitted { backend: label });
        }
    }

    fn check_all_down(&mut self, now: Instant) {
        let any_up = self.backends.iter().any(|b| b.takes_work());
        let waiting = self.pending_work() || !self.input_closed;
        if any_up {
            // A backend is back: tasks read from now on are sent again, even after --max-wait
            // gave up on the ones before (a long-running batch server keeps serving).
            self.failing_all = false;
            if self.all_down_since.take().is_some() {
                self.emit(DispatchEvent::Recovered);
            }
            return;
        }
        if self.failing_all {
            return;
        }
        if !waiting || self.in_flight > 0 || self.stopping {
            return;
        }
        match self.all_down_since {
            None => {
                self.all_down_since = Some(now);
                self.emit(DispatchEvent::AllDown {
                    max_wait: self.cfg.max_wait,
                });
            }
            Some(since) if now.duration_since(since) >= self.cfg.max_wait => {
                self.failing_all = true;
                self.emit(DispatchEvent::GaveUp);
                let mut ids: Vec<u64> = self
                    .urgent
                    .drain(..)
                    .chain(self.queue.drain_ids())
                    .collect();
                while let Some(Reverse((_, id))) = self.delayed.pop() {
                    ids.push(id);
                }
                for id in ids {
                    self.fail_no_backend(id);
                }
            }
            Some(_) => {}
        }
    }

    /// At the end of the input, copies stragglers to backends that have room.
    fn hedge(&mut self, now: Instant) {
        if !self.cfg.hedge || self.cfg.mode != Mode::Adaptive || !self.input_closed || self.stopping
        {
            return;
        }
        if self.pending_work() || self.avail.is_empty() || self.attempts.is_empty() {
            return;
        }
        let lat = |l: Option<f64>| l.map(Duration::from_secs_f64);
        let known: Vec<f64> = self.backends.iter().filter_map(|b| b.latency).collect();
        if known.is_empty() {
            return;
        }
        let fleet = known.iter().sum::<f64>() / known.len() as f64;
        let idle: Vec<f64> = (0..self.backends.len())
            .filter(|&b| self.avail.contains(b))
            .map(|b| self.backends[b].latency.unwrap_or(fleet))
            .collect();
        let idle_expected = idle.iter().copied().fold(f64::INFINITY, f64::min);
        let slots: usize = (0..self.backends.len())
            .filter(|&b| self.avail.contains(b))
            .map(|b| {
                self.backends[b]
                    .limit
                    .get()
                    .saturating_sub(self.backends[b].in_flight)
            })
            .sum();
        let candidates: Vec<Candidate> = self
            .attempts
            .iter()
            .filter(|(_, r)| {
                !r.hedge
                    && self
                        .tasks
                        .get(&r.task)
                        .is_some_and(|t| t.live == 1 && t.hedges == 0)
            })
            .map(|(a, r)| {
                let be = &self.backends[r.backend];
                Candidate {
                    attempt: *a,
                    age: now.duration_since(r.started),
                    expected: lat(be.latency),
                    progressing: be.live_tokens().is_some()
                        && now.duration_since(be.progress.0) < PROGRESS_RECENT,
                }
            })
            .collect();
        let picked = hedge::choose(
            candidates,
            Duration::from_secs_f64(idle_expected),
            Duration::from_secs_f64(fleet),
            slots,
        );
        for a in picked {
            let Some(rec) = self.attempts.get(&a) else {
                continue;
            };
            let (task, from, age) = (rec.task, rec.backend, now.duration_since(rec.started));
            if let Some(b) = self.pick(Some(from)).filter(|&b| b != from) {
                tracing::debug!(target: "drover::hedge", task, from, to = b, ?age, "hedge");
                self.launch(task, b, true);
                self.report.hedges += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use drover_client::{BackendAddr, Client, ClientConfig};

    use super::*;
    use crate::config::DispatchConfig;
    use crate::view::BackendSpec;

    #[tokio::test]
    async fn the_tick_gives_each_controller_its_backends_latency_averages() {
        // The loop keeps the averages per answer; the controller sizes its epochs by them, and
        // gets them only here.
        let spec = BackendSpec {
            addr: BackendAddr::parse("8001").unwrap(),
            signals: None,
            scraper: Default::default(),
        };
        let client = Client::new(ClientConfig::default()).unwrap();
        let mut d = Dispatcher::new(DispatchConfig::default(), client, vec![spec], None);
        d.backends[0].latency = Some(2.0);
        d.backends[0].ttft = Some(0.5);
        d.update_limits(Instant::now(), None);
        let Limit::Adaptive(ctl) = &d.backends[0].limit else {
            panic!("the default mode is adaptive");
        };
        assert_eq!(ctl.latencies(), (Some(2.0), Some(0.5)));
    }
}
