//! A batch's reader: its input file → tasks on its lane, one thread per active batch.
//!
//! Blocking file I/O stays off the async runtime, and the lane's small bound keeps the reader
//! only a few tasks ahead of the mux: memory does not grow with the batch. Lines the journal
//! already answers (a resumed batch) are skipped by the done-set, exactly as `drover run
//! --resume` skips them.

use std::fs::File;
use std::io::BufReader;
use std::path::PathBuf;

use drover_io::{DoneSet, InputItem, ParseConfig, RequestDefaults, TaskReader};
use drover_job::room::RoomSender;
use drover_types::Task;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::Cmd;
use crate::check::MAX_LINE_BYTES;

/// What a reader needs.
pub(crate) struct FeedSetup {
    /// The batch's input file.
    pub input: PathBuf,
    /// Lines its journal already answers.
    pub done: DoneSet,
    /// The fleet's model, filled into bodies that name none.
    pub model: Option<String>,
    /// The batch's slot, stamped on every task as `Task::group`.
    pub slot: u32,
}

/// Starts the reader. It ends at the end of the file, when its lane is dropped, or when `stop`
/// is cancelled; lines that are not tasks and read errors go to the runtime as commands.
pub(crate) fn spawn(
    setup: FeedSetup,
    lane: mpsc::Sender<Task>,
    runtime: mpsc::UnboundedSender<Cmd>,
    stop: CancellationToken,
) {
    let slot = setup.slot;
    let report = runtime.clone();
    let spawned = std::thread::Builder::new()
        .name(format!("drover-batch-feed-{slot}"))
        .spawn(move || {
            let file = match File::open(&setup.input) {
                Ok(f) => f,
                Err(e) => {
                    let _ = runtime.send(Cmd::FeedFailed {
                        slot,
                        message: format!("cannot read input {}: {e}", setup.input.display()),
                    });
                    return;
                }
            };
            let cfg = ParseConfig {
                defaults: RequestDefaults {
                    model: setup.model,
                    ..RequestDefaults::default()
                },
                template: None,
            };
            let mut reader = TaskReader::new(
                BufReader::with_capacity(1 << 20, file),
                MAX_LINE_BYTES,
                cfg,
                setup.done,
                None,
            );
            // Room in the lane is taken a batch at a time, so the reader wakes once per batch.
            let mut room = RoomSender::new(&lane);
            while !stop.is_cancelled() {
                match reader.next_item() {
                    Ok(None) => return,
                    Ok(Some(InputItem::Task(mut task))) => {
                        task.group = slot;
                        if room.send(task).is_err() {
                            return;
                        }
                    }
                    // The upload was checked, so this is a file changed on disk since: record the
                    // line as failed rather than leave the batch waiting for it.
                    Ok(Some(InputItem::Invalid {
                        line,
                        custom_id,
                        code,
                        message,
                    })) => {
                        if runtime
                            .send(Cmd::Invalid {
                                slot,
                                line,
                                custom_id,
                                code,
                                message,
                            })
                            .is_err()
                        {
                            return;
                        }
                    }
                    Err(e) => {
                        let _ = runtime.send(Cmd::FeedFailed {
                            slot,
                            message: format!("reading input {}: {e}", setup.input.display()),
                        });
                        return;
                    }
                }
            }
        });
    if let Err(e) = spawned {
        let _ = report.send(Cmd::FeedFailed {
            slot,
            message: format!("cannot start a reader thread: {e}"),
        });
    }
}
