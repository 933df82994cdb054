//! The runtime: every active batch, one dispatcher.
//!
//! One task (the [`Runtime`] loop) owns the active batches: their journals, counts and how they
//! stop. It is the only writer of the journals, as `drover run`'s collector is of its output.
//! It reacts to
//! - finished tasks from the dispatcher, routed by `Task::group` (the batch's slot) to that
//!   batch's journal: appended whole, flushed at once, synced every second;
//! - commands: start a batch (after validation, or on restart), cancel one, and reports from
//!   the readers ([`feed`]) and the [`mux`];
//! - a one-second tick: syncs, and batches whose completion window has passed.
//!
//! A batch ends when every request has a line (`Completed`), or, once stopped (cancel, expiry,
//! a broken input), when the mux has let go of it and every task it handed to the dispatcher
//! has come back: requests already sent finish and are recorded. Tasks handed over but still
//! queued in the dispatcher cannot be taken back, and with the whole fleet down they would not
//! come back until it returns; so a cancelled batch waits at most `drain` (OpenAI's
//! `cancelling` lasts up to 10 minutes too), an expired one not at all, and results that arrive
//! after a batch ended are dropped. The ended batch goes to the finalizer (`lifecycle`) with
//! its journal closed.

mod feed;
pub(crate) mod finalize;
mod lines;
pub(crate) mod mux;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use drover_io::{DoneSet, OutputWriter};
use drover_sched::Finished;
use drover_types::{ErrorCode, OutputLine, Task};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::ids::now;
use crate::store::{Counts, Ending};
use mux::MuxCmd;

/// Tasks a batch's reader may be ahead of the mux.
const LANE_CAPACITY: usize = 32;

/// Live `request_counts` of running batches, by batch id, for the API to read.
pub(crate) type LiveCounts = Arc<RwLock<HashMap<String, Counts>>>;

/// A batch to run (validated; journal repaired and reopened).
pub(crate) struct StartBatch {
    /// `batch_…`.
    pub id: String,
    /// Its input file.
    pub input: PathBuf,
    /// Its journal (`batches/<id>/results.jsonl`).
    pub journal: PathBuf,
    /// The journal, open for appending.
    pub writer: OutputWriter,
    /// What the journal already answers.
    pub done: DoneSet,
    /// Counts so far (from the journal).
    pub counts: Counts,
    /// When its completion window ends, Unix seconds.
    pub expires_at: i64,
    /// A cancel is pending (a restart found it `cancelling`).
    pub cancel: bool,
}

/// A batch that stopped running, for the finalizer. Its journal is synced and closed.
#[derive(Debug)]
pub(crate) struct Ended {
    /// `batch_…`.
    pub id: String,
    /// Its input.
    pub input: PathBuf,
    /// Its journal.
    pub journal: PathBuf,
    /// Counts as recorded.
    pub counts: Counts,
    /// Why it stopped.
    pub ending: Ending,
}

/// What the runtime is told.
pub(crate) enum Cmd {
    /// Run a batch.
    Start(Box<StartBatch>),
    /// Cancel a batch (its status is already `cancelling`).
    Cancel {
        /// `batch_…`.
        id: String,
    },
    /// A reader found a line that is not a request.
    Invalid {
        /// The batch's slot.
        slot: u32,
        /// 1-based line.
        line: u64,
        /// Its custom_id or `line-N`.
        custom_id: String,
        /// Why.
        code: ErrorCode,
        /// Why, in words.
        message: String,
    },
    /// A reader could not go on.
    FeedFailed {
        /// The batch's slot.
        slot: u32,
        /// Why.
        message: String,
    },
    /// The mux let go of a slot.
    Released {
        /// The batch's slot.
        slot: u32,
    },
}

/// The handle the API and the lifecycle use.
#[derive(Clone)]
pub(crate) struct RuntimeHandle {
    cmds: mpsc::UnboundedSender<Cmd>,
    /// Live counts.
    pub live: LiveCounts,
}

impl RuntimeHandle {
    /// Sends a command; `false` when the runtime has stopped (the server is shutting down).
    pub(crate) fn send(&self, cmd: Cmd) -> bool {
        self.cmds.send(cmd).is_ok()
    }
}

struct Active {
    id: String,
    input: PathBuf,
    journal: PathBuf,
    writer: OutputWriter,
    counts: Counts,
    expires_at: i64,
    /// Why it is stopping, once it is.
    stopping: Option<Ending>,
    /// Stops its reader.
    feed_stop: CancellationToken,
    /// Tasks the mux handed to the dispatcher (this process).
    handed: Arc<AtomicU64>,
    /// Finished tasks recorded (this process).
    returned: u64,
    /// The mux has let go of it.
    released: bool,
    /// When a stopped batch ends even if tasks it handed over have not come back.
    give_up_at: Option<Instant>,
    /// The journal could not be written.
    broken: Option<String>,
}

/// The runtime loop's state.
pub(crate) struct Runtime {
    active: HashMap<u32, Active>,
    slots: HashMap<String, u32>,
    /// Cancels that arrived before their batch started (they are applied at start).
    early_cancels: HashSet<String>,
    next_slot: u32,
    model: Option<String>,
    drain: Duration,
    mux: mpsc::UnboundedSender<MuxCmd>,
    cmds: mpsc::UnboundedSender<Cmd>,
    ended: mpsc::UnboundedSender<Ended>,
    live: LiveCounts,
    lines: lines::LineMaker,
}

impl Runtime {
    /// Wires a runtime: tasks go out through `dispatch_input` (the dispatcher's input), ended
    /// batches to `ended`. Returns the handle and the loop to spawn with the dispatcher's
    /// finished channel.
    pub(crate) fn new(
        model: Option<String>,
        drain: Duration,
        dispatch_input: mpsc::Sender<Task>,
        ended: mpsc::UnboundedSender<Ended>,
    ) -> (RuntimeHandle, Runtime, mpsc::UnboundedReceiver<Cmd>) {
        let (cmds, cmd_rx) = mpsc::unbounded_channel();
        let (mux_tx, mux_rx) = mpsc::unbounded_channel();
        tokio::spawn(mux::run(mux_rx, dispatch_input));
        let live: LiveCounts = Arc::default();
        let runtime = Runtime {
            active: HashMap::new(),
            slots: HashMap::new(),
            early_cancels: HashSet::new(),
            next_slot: 1,
            model,
            drain,
            mux: mux_tx,
            cmds: cmds.clone(),
            ended,
            live: live.clone(),
            lines: lines::LineMaker::new(),
        };
        (RuntimeHandle { cmds, live }, runtime, cmd_rx)
    }

    /// Runs until the dispatcher's finished channel closes (the dispatcher has ended), then
    /// syncs every journal. Batches still running stay `in_progress`; a restart resumes them.
    pub(crate) async fn run(
        mut self,
        mut finished: mpsc::Receiver<Finished>,
        mut cmds: mpsc::UnboundedReceiver<Cmd>,
    ) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut touched: Vec<u32> = Vec::new();
        loop {
            tokio::select! {
                f = finished.recv() => match f {
                    Some(f) => {
                        self.record(f, &mut touched);
                        while let Ok(f) = finished.try_recv() {
                            self.record(f, &mut touched);
                        }
                        self.settle_touched(&mut touched);
                    }
                    None => break,
                },
                Some(cmd) = cmds.recv() => self.command(cmd),
                _ = tick.tick() => self.tick(),
            }
        }
        for a in self.active.values_mut() {
            if let Err(e) = a.writer.sync() {
                tracing::error!(target: "drover::batch", batch = %a.id, "cannot sync journal {}: {e}", a.journal.display());
            }
        }
    }

    fn record(&mut self, f: Finished, touched: &mut Vec<u32>) {
        let slot = f.task.group;
        let Some(a) = self.active.get_mut(&slot) else {
            // A cancelled batch that stopped waiting, or an expired one: its line is written.
            tracing::debug!(target: "drover::batch", slot, custom_id = %f.task.custom_id, "late result of an ended batch dropped");
            return;
        };
        a.returned += 1;
        let line = self.lines.finished(f);
        push(a, &line);
        touched.push(slot);
    }

    fn settle_touched(&mut self, touched: &mut Vec<u32>) {
        touched.sort_unstable();
        touched.dedup();
        for slot in touched.drain(..) {
            if let Some(a) = self.active.get_mut(&slot) {
                if let Err(e) = a.writer.flush() {
                    a.broken.get_or_insert_with(|| {
                        format!("cannot write journal {}: {e}", a.journal.display())
                    });
                }
                if let Ok(mut live) = self.live.write() {
                    live.insert(a.id.clone(), a.counts);
                }
            }
            self.settle(slot);
        }
    }

    fn command(&mut self, cmd: Cmd) {
        match cmd {
            Cmd::Start(s) => self.start(*s),
            Cmd::Cancel { id } => match self.slots.get(&id) {
                Some(&slot) => self.stop(slot, Ending::Cancelled),
                None => {
                    self.early_cancels.insert(id);
                }
            },
            Cmd::Invalid {
                slot,
                line,
                custom_id,
                code,
                message,
            } => {
                if let Some(a) = self.active.get_mut(&slot) {
                    let line = self.lines.unsent(line, custom_id, code, message);
                    push(a, &line);
                    let mut touched = vec![slot];
                    self.settle_touched(&mut touched);
                }
            }
            Cmd::FeedFailed { slot, message } => {
                tracing::error!(target: "drover::batch", slot, "{message}");
                self.stop(slot, Ending::Failed(message));
            }
            Cmd::Released { slot } => {
                if let Some(a) = self.active.get_mut(&slot) {
                    a.released = true;
                }
                self.settle(slot);
            }
        }
    }

    fn start(&mut self, s: StartBatch) {
        if let Some(&slot) = self.slots.get(&s.id) {
            tracing::warn!(target: "drover::batch", batch = %s.id, slot, "already running; second start ignored");
            return;
        }
        let slot = self.next_slot;
        self.next_slot = self.next_slot.wrapping_add(1).max(1);
        let (lane_tx, lane_rx) = mpsc::channel(LANE_CAPACITY);
        let handed = Arc::new(AtomicU64::new(0));
        let _ = self.mux.send(MuxCmd::Add {
            slot,
            lane: lane_rx,
            handed: handed.clone(),
        });
        let feed_stop = CancellationToken::new();
        feed::spawn(
            feed::FeedSetup {
                input: s.input.clone(),
                done: s.done,
                model: self.model.clone(),
                slot,
            },
            lane_tx,
            self.cmds.clone(),
            feed_stop.clone(),
        );
        // Its counts are already in `live`: the lifecycle publishes them before handing it over.
        tracing::info!(target: "drover::batch", batch = %s.id, slot, done = s.counts.completed + s.counts.failed, total = s.counts.total, "running");
        let cancel = s.cancel || self.early_cancels.remove(&s.id);
        self.slots.insert(s.id.clone(), slot);
        self.active.insert(
            slot,
            Active {
                id: s.id,
                input: s.input,
                journal: s.journal,
                writer: s.writer,
                counts: s.counts,
                expires_at: s.expires_at,
                stopping: None,
                feed_stop,
                handed,
                returned: 0,
                released: false,
                give_up_at: None,
                broken: None,
            },
        );
        if cancel {
            self.stop(slot, Ending::Cancelled);
        } else if now() >= s.expires_at {
            self.stop(slot, Ending::Expired);
        }
        self.settle(slot);
    }

    /// Stops feeding a batch; it ends once what was sent has come back.
    fn stop(&mut self, slot: u32, why: Ending) {
        let Some(a) = self.active.get_mut(&slot) else {
            return;
        };
        if a.stopping.is_some() {
            return;
        }
        tracing::info!(target: "drover::batch", batch = %a.id, "stopping: {why:?}");
        // An expired batch's unfinished requests are cancelled, as OpenAI's are: their lines
        // say `batch_expired` and late answers are dropped. A cancel lets sent requests finish.
        let wait = if why == Ending::Expired {
            Duration::ZERO
        } else {
            self.drain
        };
        a.stopping = Some(why);
        a.give_up_at = Some(Instant::now() + wait);
        a.feed_stop.cancel();
        let (ack, acked) = oneshot::channel();
        let _ = self.mux.send(MuxCmd::Remove { slot, ack });
        let cmds = self.cmds.clone();
        tokio::spawn(async move {
            // An error means the mux has ended: nothing more will be handed over either.
            let _ = acked.await;
            let _ = cmds.send(Cmd::Released { slot });
        });
    }

    /// Ends the batch in `slot` if it is done.
    fn settle(&mut self, slot: u32) {
        let Some(a) = self.active.get(&slot) else {
            return;
        };
        if let Some(why) = a.broken.clone()
            && a.stopping.is_none()
        {
            self.stop(slot, Ending::Failed(why));
            return;
        }
        let done = match &a.stopping {
            None => a.counts.completed + a.counts.failed >= a.counts.total,
            Some(_) => {
                a.released
                    && (a.returned >= a.handed.load(Ordering::SeqCst)
                        || a.give_up_at.is_some_and(|t| Instant::now() >= t))
            }
        };
        if !done {
            return;
        }
        let mut a = self.active.remove(&slot).expect("checked above");
        self.slots.remove(&a.id);
        a.feed_stop.cancel();
        if !a.released {
            let (ack, _) = oneshot::channel();
            let _ = self.mux.send(MuxCmd::Remove { slot, ack });
        }
        let mut ending = a.stopping.take().unwrap_or(Ending::Completed);
        if let Err(e) = a.writer.sync() {
            ending = Ending::Failed(format!("cannot sync journal {}: {e}", a.journal.display()));
        }
        if let Some(why) = a.broken.take() {
            ending = Ending::Failed(why);
        }
        drop(a.writer);
        tracing::info!(target: "drover::batch", batch = %a.id, "ended: {ending:?} ({:?})", a.counts);
        let _ = self.ended.send(Ended {
            id: a.id,
            input: a.input,
            journal: a.journal,
            counts: a.counts,
            ending,
        });
    }

    fn tick(&mut self) {
        let now = now();
        let mut expired = Vec::new();
        for (&slot, a) in &mut self.active {
            if let Err(e) = a.writer.tick() {
                a.broken.get_or_insert_with(|| {
                    format!("cannot write journal {}: {e}", a.journal.display())
                });
            }
            if a.stopping.is_none() && now >= a.expires_at {
                expired.push(slot);
            }
        }
        for slot in expired {
            self.stop(slot, Ending::Expired);
        }
        let slots: Vec<u32> = self.active.keys().copied().collect();
        for slot in slots {
            self.settle(slot);
        }
    }
}

fn push(a: &mut Active, line: &OutputLine) {
    if line.is_success() {
        a.counts.completed += 1;
    } else {
        a.counts.failed += 1;
    }
    if let Err(e) = a.writer.push(line) {
        a.broken
            .get_or_insert_with(|| format!("cannot write journal {}: {e}", a.journal.display()));
    }
}
