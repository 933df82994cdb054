//! Input and output of a batch job.
//!
//! - [`lines`]: a line reader whose memory is bounded by `--max-line-bytes`, whatever the input.
//! - [`parse`] + [`template`]: one input line → one [`Task`](drover_types::Task) (or the reason it
//!   is not one), for each accepted input shape.
//! - [`reader`]: the streaming task source: line numbers, duplicate custom_ids, resume skips,
//!   shard filter; `seen` keeps the ids read so far compactly.
//! - [`writer`]: the output file, appended as results arrive, synced periodically.
//! - [`resume`]: reading an existing output back: torn-line repair and the done-set.
#![forbid(unsafe_code)]

pub mod lines;
pub mod parse;
pub mod reader;
pub mod resume;
mod seen;
pub mod shard;
pub mod template;
pub mod writer;

pub use lines::{Line, LineReader};
pub use parse::{LineError, ParseConfig, RequestDefaults};
pub use reader::{InputItem, ReadStats, TaskReader, count_lines};
pub use resume::{DoneSet, ResumeError, ResumeScan, prepare_resume};
pub use shard::{Shard, ShardError};
pub use template::{Template, TemplateError};
pub use writer::OutputWriter;
