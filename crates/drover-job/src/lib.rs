//! A whole batch job: input → dispatcher → output, with resume.
//!
//! ```text
//! reader thread ──tasks──► dispatcher ──finished──► collector ──► output file + stats
//!       └──────────records of bad lines──────────────┘
//! ```
//! [`Job::prepare`] does everything that can fail before a request is sent (the output exists,
//! a torn output is repaired, `--strict` finds a bad line); [`Job::run`] runs to the end or
//! until stopped through [`JobHandles::control`].
#![forbid(unsafe_code)]

mod answers;
mod collect;
mod discover;
pub mod lines;
pub mod membership;
mod read;
pub mod room;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use drover_client::Client;
use drover_io::{
    DoneSet, InputItem, OutputWriter, ParseConfig, ReadStats, ResumeScan, Shard, TaskReader,
    count_lines,
};
use drover_sched::{
    AnswerCheck, BackendSpec, Control, DispatchConfig, DispatchEvent, DispatchReport, Dispatcher,
    FleetSnapshot, Wiring,
};
use drover_stats::RunStats;
use tokio::sync::mpsc;

pub use answers::AnswerSink;
pub use collect::{InvalidLine, Progress};
pub use discover::{Fleet, FleetError, discover};
pub use read::InputSource;

/// What to do with an output file that already exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputMode {
    /// Refuse if it exists.
    Fresh,
    /// Start over (`--overwrite`).
    Overwrite,
    /// Continue it (`--resume`); with `retry_failed`, failed lines are dropped and retried.
    Resume {
        /// `--retry-failed`.
        retry_failed: bool,
    },
}

/// Everything a job needs.
pub struct JobSpec {
    /// Tasks.
    pub input: InputSource,
    /// Results.
    pub output: PathBuf,
    /// Fresh, overwrite or resume.
    pub output_mode: OutputMode,
    /// Line → task.
    pub parse: ParseConfig,
    /// `--max-line-bytes`.
    pub max_line_bytes: usize,
    /// `--shard`.
    pub shard: Option<Shard>,
    /// `--strict`: check every line before sending anything.
    pub strict: bool,
    /// The dispatcher's policy and knobs.
    pub dispatch: DispatchConfig,
    /// The HTTP client.
    pub client: Client,
    /// Backends from discovery.
    pub backends: Vec<BackendSpec>,
    /// Dynamic membership updates, if enabled.
    pub membership: Option<mpsc::Receiver<Vec<BackendSpec>>>,
    /// Judges answers (structured output).
    pub checker: Option<Arc<dyn AnswerCheck>>,
    /// Receives structured answers.
    pub answers: Option<Arc<dyn AnswerSink>>,
    /// How often the output is synced to disk.
    pub sync_every: Duration,
}

/// A job that cannot start.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The output exists and neither --resume nor --overwrite was given.
    #[error(
        "output {0} already exists: pass --resume to continue it (already answered tasks are skipped) or --overwrite to start over"
    )]
    OutputExists(PathBuf),
    /// The input cannot be read.
    #[error("cannot read input {path}: {source}")]
    Input {
        /// The input.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The output cannot be written.
    #[error("cannot write output {path}: {source}")]
    Output {
        /// The output.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The output cannot be resumed.
    #[error(transparent)]
    Resume(#[from] drover_io::ResumeError),
    /// `--strict` found bad lines.
    #[error("--strict: {count} bad input line(s), nothing was sent:\n{}{}", .first.join("\n"), if *.count > .first.len() as u64 { "\n  …" } else { "" })]
    Strict {
        /// How many.
        count: u64,
        /// The first few messages.
        first: Vec<String>,
    },
    /// `--strict` needs to read the input twice.
    #[error("--strict reads the input twice, which stdin cannot do: pass a file instead of '-'")]
    StrictStdin,
}

/// What a UI watches while the job runs.
pub struct JobHandles {
    /// Counters.
    pub progress: Arc<Progress>,
    /// The fleet.
    pub snapshot: Arc<Mutex<FleetSnapshot>>,
    /// Statistics (read-only for observers).
    pub stats: Arc<Mutex<RunStats>>,
    /// Dispatcher events.
    pub events: mpsc::UnboundedReceiver<DispatchEvent>,
    /// Stop (first Ctrl-C) and abort (grace over).
    pub control: Control,
}

/// How the job ended.
#[derive(Debug)]
pub struct JobResult {
    /// Statistics.
    pub stats: RunStats,
    /// Reader counts.
    pub read: ReadStats,
    /// Dispatcher counts.
    pub dispatch: DispatchReport,
    /// Wall time.
    pub wall: Duration,
    /// Start.
    pub started_at: SystemTime,
    /// Whether it was stopped before the input ended.
    pub interrupted: bool,
    /// What resuming found, if resumed.
    pub resume: Option<ResumeInfo>,
    /// The answer aggregates, if any.
    pub answers: Option<serde_json::Value>,
}

/// What a resume found in the existing output.
#[derive(Debug, Clone, Copy)]
pub struct ResumeInfo {
    /// Successful lines kept.
    pub succeeded: u64,
    /// Failed lines kept.
    pub failed_kept: u64,
    /// Failed lines removed to be retried.
    pub failed_dropped: u64,
    /// Bytes of a torn last line cut off.
    pub torn_bytes: u64,
}

/// A prepared job.
pub struct Job {
    spec: JobSpec,
    writer: OutputWriter,
    done: DoneSet,
    resume: Option<ResumeInfo>,
    progress: Arc<Progress>,
    snapshot: Arc<Mutex<FleetSnapshot>>,
    stats: Arc<Mutex<RunStats>>,
    events_tx: mpsc::UnboundedSender<DispatchEvent>,
    control: Control,
}

impl Job {
    /// Checks the output and input and opens the output. Nothing is sent yet.
    pub fn prepare(mut spec: JobSpec) -> Result<(Job, JobHandles), JobError> {
        let out = spec.output.clone();
        let out_err = |source| JobError::Output {
            path: out.clone(),
            source,
        };
        let exists = spec.output.exists();
        let (writer, done, resume) = match spec.output_mode {
            OutputMode::Fresh if exists => return Err(JobError::OutputExists(spec.output.clone())),
            OutputMode::Resume { retry_failed } if exists => {
                let scan: ResumeScan = drover_io::prepare_resume(&spec.output, retry_failed)?;
                let info = ResumeInfo {
                    succeeded: scan.succeeded,
                    failed_kept: scan.failed_kept,
                    failed_dropped: scan.failed_dropped,
                    torn_bytes: scan.torn_bytes,
                };
                (
                    OutputWriter::append(&spec.output, spec.sync_every).map_err(out_err)?,
                    scan.done,
                    Some(info),
                )
            }
            _ => (
                OutputWriter::create(&spec.output, spec.sync_every).map_err(out_err)?,
                DoneSet::default(),
                None,
            ),
        };
        if spec.strict {
            check_strict(&mut spec)?;
        }
        let progress = Arc::new(Progress::default());
        if let InputSource::Path(p) = &spec.input {
            let n = count_lines(p).map_err(|source| JobError::Input {
                path: p.display().to_string(),
                source,
            })?;
            let already = resume.map_or(0, |r| r.succeeded + r.failed_kept);
            progress.total.store(
                n.saturating_sub(already),
                std::sync::atomic::Ordering::Relaxed,
            );
        }
        let (events_tx, events) = mpsc::unbounded_channel();
        let snapshot = Arc::new(Mutex::new(FleetSnapshot::default()));
        let stats = Arc::new(Mutex::new(RunStats::new(Instant::now())));
        let control = Control::default();
        let handles = JobHandles {
            progress: progress.clone(),
            snapshot: snapshot.clone(),
            stats: stats.clone(),
            events,
            control: control.clone(),
        };
        Ok((
            Job {
                spec,
                writer,
                done,
                resume,
                progress,
                snapshot,
                stats,
                events_tx,
                control,
            },
            handles,
        ))
    }

    /// Runs the job to its end (or until stopped).
    pub async fn run(self) -> Result<JobResult, JobError> {
        let Job {
            mut spec,
            writer,
            done,
            resume,
            progress,
            snapshot,
            stats,
            events_tx,
            control,
        } = self;
        let started = Instant::now();
        let started_at = SystemTime::now();
        stats.lock().expect("stats lock").started = started;
        let source = spec.input.open().map_err(|source| JobError::Input {
            path: spec.input.display(),
            source,
        })?;
        let lookahead = spec.dispatch.lookahead.max(64);
        let (task_tx, task_rx) = mpsc::channel(lookahead);
        let (invalid_tx, invalid_rx) = mpsc::channel(1024);
        let (finished_tx, finished_rx) = mpsc::channel(4096);
        let parse = std::mem::replace(
            &mut spec.parse,
            ParseConfig {
                defaults: Default::default(),
                template: None,
            },
        );
        let reader = read::spawn(
            read::ReaderSetup {
                source,
                parse,
                max_line_bytes: spec.max_line_bytes,
                done,
                shard: spec.shard,
            },
            task_tx,
            invalid_tx,
            control.stop_intake.clone(),
        );
        let collector = collect::Collector {
            writer,
            stats: stats.clone(),
            progress: progress.clone(),
            snapshot: snapshot.clone(),
            answers: spec.answers.clone(),
            lines: lines::LineMaker::new(),
        };
        let collector = tokio::spawn(collector.run(finished_rx, invalid_rx));
        let dispatcher = Dispatcher::new(spec.dispatch, spec.client, spec.backends, spec.checker);
        // Awaited in place, on the caller's thread (`drover run`: `block_on`'s, which every
        // answer then wakes from a worker). Spawned onto the workers it cost 7 % less CPU per
        // task at 256 backends, but its allocations spread over the workers' malloc arenas:
        // +7–10 MB peak RSS, and the 1M-task run went past 100 MB (docs/benchmarks.md, #10,
        // stop 24).
        let report = dispatcher
            .run(Wiring {
                input: task_rx,
                finished: finished_tx,
                events: events_tx,
                snapshot: snapshot.clone(),
                membership: spec.membership.take(),
                control: control.clone(),
            })
            .await;
        // The dispatcher dropped its receiver: a reader blocked on a full channel returns.
        let read = tokio::task::spawn_blocking(move || reader.join())
            .await
            .expect("join reader")
            .unwrap_or_else(|p| std::panic::resume_unwind(p))
            .map_err(|source| JobError::Input {
                path: spec.input.display(),
                source,
            })?;
        let writer =
            collector
                .await
                .expect("collector task")
                .map_err(|source| JobError::Output {
                    path: spec.output.clone(),
                    source,
                })?;
        drop(writer);
        let interrupted = control.stop_intake.is_cancelled() || control.abort.is_cancelled();
        let stats = {
            let mut s = stats.lock().expect("stats lock");
            s.settle();
            s.clone()
        };
        progress
            .skipped
            .store(read.skipped_done, std::sync::atomic::Ordering::Relaxed);
        Ok(JobResult {
            stats,
            read,
            dispatch: report,
            wall: started.elapsed(),
            started_at,
            interrupted,
            resume,
            answers: spec.answers.as_ref().and_then(|a| a.summary()),
        })
    }
}

/// `--strict`: reads the whole input once; any bad line aborts before anything is sent.
fn check_strict(spec: &mut JobSpec) -> Result<(), JobError> {
    let InputSource::Path(p) = &spec.input else {
        return Err(JobError::StrictStdin);
    };
    let source = spec.input.open().map_err(|source| JobError::Input {
        path: p.display().to_string(),
        source,
    })?;
    // Parsing needs the template; borrow the real config for the pass and put it back.
    let parse = std::mem::replace(
        &mut spec.parse,
        ParseConfig {
            defaults: Default::default(),
            template: None,
        },
    );
    let mut reader = TaskReader::new(
        source,
        spec.max_line_bytes,
        parse,
        DoneSet::default(),
        spec.shard,
    );
    let (mut count, mut first) = (0u64, Vec::new());
    loop {
        match reader.next_item() {
            Ok(None) => break,
            Ok(Some(InputItem::Invalid { message, .. })) => {
                count += 1;
                if first.len() < 20 {
                    first.push(format!("  {message}"));
                }
            }
            Ok(Some(InputItem::Task(_))) => {}
            Err(source) => {
                return Err(JobError::Input {
                    path: p.display().to_string(),
                    source,
                });
            }
        }
    }
    spec.parse = reader.into_parse_config();
    if count > 0 {
        return Err(JobError::Strict { count, first });
    }
    Ok(())
}
