//! The reader thread: input lines → tasks for the dispatcher, records for bad lines to the
//! collector. Blocking I/O stays off the async runtime; the bounded channels keep it only a
//! lookahead's worth ahead of dispatch.

use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::PathBuf;
use std::thread::JoinHandle;

use drover_io::{DoneSet, InputItem, ParseConfig, ReadStats, Shard, TaskReader};
use drover_types::Task;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::collect::InvalidLine;
use crate::room::RoomSender;

/// Where tasks come from.
#[derive(Debug, Clone)]
pub enum InputSource {
    /// A file.
    Path(PathBuf),
    /// Standard input (`-`).
    Stdin,
}

impl InputSource {
    /// As the user wrote it.
    pub fn display(&self) -> String {
        match self {
            InputSource::Path(p) => p.display().to_string(),
            InputSource::Stdin => "-".into(),
        }
    }

    pub(crate) fn open(&self) -> io::Result<Box<dyn BufRead + Send>> {
        Ok(match self {
            InputSource::Path(p) => Box::new(BufReader::with_capacity(1 << 20, File::open(p)?)),
            InputSource::Stdin => Box::new(BufReader::with_capacity(1 << 20, io::stdin())),
        })
    }
}

pub(crate) struct ReaderSetup {
    pub source: Box<dyn BufRead + Send>,
    pub parse: ParseConfig,
    pub max_line_bytes: usize,
    pub done: DoneSet,
    pub shard: Option<Shard>,
}

/// Reads until the input ends, the dispatcher stops listening, or intake is stopped.
pub(crate) fn spawn(
    setup: ReaderSetup,
    tasks: mpsc::Sender<Task>,
    invalid: mpsc::Sender<InvalidLine>,
    stop: CancellationToken,
) -> JoinHandle<io::Result<ReadStats>> {
    std::thread::Builder::new()
        .name("drover-reader".into())
        .spawn(move || {
            let mut reader = TaskReader::new(
                setup.source,
                setup.max_line_bytes,
                setup.parse,
                setup.done,
                setup.shard,
            );
            // Room for tasks is taken a batch at a time (`RoomSender`): a reader ahead of
            // dispatch then wakes once per batch instead of once per task.
            let mut room = RoomSender::new(&tasks);
            while !stop.is_cancelled() {
                match reader.next_item()? {
                    None => break,
                    Some(InputItem::Task(t)) => {
                        if room.send(t).is_err() {
                            break;
                        }
                    }
                    Some(InputItem::Invalid {
                        line,
                        custom_id,
                        code,
                        message,
                    }) => {
                        if invalid
                            .blocking_send(InvalidLine {
                                line,
                                custom_id,
                                code,
                                message,
                            })
                            .is_err()
                        {
                            break;
                        }
                    }
                }
            }
            Ok(reader.stats().clone())
        })
        .expect("spawn reader thread")
}
