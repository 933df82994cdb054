//! The collector: the only writer of the output and the statistics. Finished tasks come from
//! the dispatcher, records of bad input lines from the reader.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use drover_io::OutputWriter;
use drover_sched::{Finished, FleetSnapshot, Outcome};
use drover_stats::{FleetSample, Record, RunStats, SampleBackend};
use drover_types::{ErrorCode, Usage};
use tokio::sync::mpsc;

use crate::answers::AnswerSink;
use crate::lines::LineMaker;

/// A record for an input line that never became a task.
#[derive(Debug)]
pub struct InvalidLine {
    /// 1-based line.
    pub line: u64,
    /// Its custom_id, or `line-N`.
    pub custom_id: String,
    /// `invalid_input` or `duplicate_custom_id`.
    pub code: ErrorCode,
    /// Why.
    pub message: String,
}

/// Live counters for progress displays and the metrics endpoint.
#[derive(Debug, Default)]
pub struct Progress {
    /// Successful records written.
    pub ok: AtomicU64,
    /// Failed records written (bad lines included).
    pub failed: AtomicU64,
    /// Tasks expected in total (0 when unknown, e.g. stdin).
    pub total: AtomicU64,
    /// Lines skipped because they were already done.
    pub skipped: AtomicU64,
    /// Generated tokens.
    pub output_tokens: AtomicU64,
}

impl Progress {
    /// Records written so far.
    pub fn done(&self) -> u64 {
        self.ok.load(Ordering::Relaxed) + self.failed.load(Ordering::Relaxed)
    }
}

pub(crate) struct Collector {
    pub writer: OutputWriter,
    pub stats: Arc<Mutex<RunStats>>,
    pub progress: Arc<Progress>,
    pub snapshot: Arc<Mutex<FleetSnapshot>>,
    pub answers: Option<Arc<dyn AnswerSink>>,
    pub lines: LineMaker,
}

impl Collector {
    pub(crate) async fn run(
        mut self,
        mut finished: mpsc::Receiver<Finished>,
        mut invalid: mpsc::Receiver<InvalidLine>,
    ) -> std::io::Result<OutputWriter> {
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        let mut last_sample = Instant::now();
        let (mut f_open, mut i_open) = (true, true);
        while f_open || i_open {
            tokio::select! {
                m = finished.recv(), if f_open => match m {
                    Some(f) => {
                        self.finished(f)?;
                        while let Ok(f) = finished.try_recv() {
                            self.finished(f)?;
                        }
                        self.writer.flush()?;
                    }
                    None => f_open = false,
                },
                m = invalid.recv(), if i_open => match m {
                    Some(i) => {
                        self.invalid(i)?;
                        self.writer.flush()?;
                    }
                    None => i_open = false,
                },
                _ = tick.tick() => {
                    let now = Instant::now();
                    if now.duration_since(last_sample) >= Duration::from_secs(1) {
                        last_sample = now;
                        self.sample(now);
                    }
                    tokio::task::block_in_place(|| self.writer.tick())?;
                }
            }
        }
        self.sample(Instant::now());
        tokio::task::block_in_place(|| self.writer.sync())?;
        Ok(self.writer)
    }

    fn sample(&self, now: Instant) {
        let snap = self.snapshot.lock().expect("snapshot lock").clone();
        let sample = FleetSample {
            backends: snap
                .backends
                .iter()
                .map(|b| SampleBackend {
                    label: b.label.to_string(),
                    in_flight: b.in_flight,
                    limit: b.limit,
                    state: b.state.name(),
                    ejections: b.ejections,
                    engine: b.engine,
                })
                .collect(),
        };
        let busy = snap.in_flight > 0 || snap.queued > 0;
        self.stats
            .lock()
            .expect("stats lock")
            .sample(&sample, now, busy);
    }

    fn finished(&mut self, f: Finished) -> std::io::Result<()> {
        let error = match &f.outcome {
            Outcome::Success { answer, .. } => {
                if let (Some(sink), Some(a)) = (&self.answers, answer) {
                    sink.accept(&f.task, a);
                }
                None
            }
            Outcome::Failed { failure, .. } => {
                if let Some(sink) = &self.answers {
                    sink.reject(&f.task);
                }
                Some(failure.code())
            }
        };
        let record = Record {
            backend: f.backend_index,
            backend_label: f.backend.clone(),
            error,
            latency: f.latency,
            ttft: f.ttft,
            usage: f.usage,
            attempts: f.attempts,
            hedged: f.hedged,
        };
        let line = self.lines.finished(f);
        self.writer.push(&line)?;
        self.count(record);
        Ok(())
    }

    fn invalid(&mut self, i: InvalidLine) -> std::io::Result<()> {
        let line = self.lines.unsent(i.line, i.custom_id, i.code, i.message);
        self.writer.push(&line)?;
        self.count(Record {
            backend: None,
            backend_label: None,
            error: Some(i.code),
            latency: None,
            ttft: None,
            usage: Usage::default(),
            attempts: 0,
            hedged: false,
        });
        Ok(())
    }

    fn count(&self, r: Record) {
        match r.error {
            None => self.progress.ok.fetch_add(1, Ordering::Relaxed),
            Some(_) => self.progress.failed.fetch_add(1, Ordering::Relaxed),
        };
        self.progress
            .output_tokens
            .fetch_add(r.usage.completion_tokens, Ordering::Relaxed);
        self.stats
            .lock()
            .expect("stats lock")
            .record(&r, Instant::now());
    }
}
