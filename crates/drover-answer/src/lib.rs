//! Structured answers: extraction, schema validation, repair prompts, aggregation — steps 3–5 of
//! the analysis pipeline behind `drover run --schema/--fields/--table` (see `docs/analyze.md`).
//!
//! ```text
//! response ─► extract (answer text → first JSON object) ─► validate (schema, compiled once)
//!                                                            │ valid: Accept{answer}
//!                                                            │ invalid, rounds left: Repair{body + errors}
//!                                                            │ invalid, none left: Reject{errors + last answer}
//! collector ─► Aggregates (AnswerSink: counts, min/mean/max, bounded memory)
//! after the job: output file ─► index (line, offset) ─► sort ─► table in input order
//! ```
//!
//! - [`pipeline`]: flags → a validated [`Pipeline`]; the report after the job.
//! - [`extract`], [`schema`], [`problems`], [`repair`], [`check`]: judging one answer (runs in
//!   the attempt's task, off the dispatch loop).
//! - [`fields`], [`aggregate`]: the summary's `answers` section.
//! - [`table`]: the CSV/JSONL table.
//! - [`structured`]: whether `response_format` json_schema is sent.
#![forbid(unsafe_code)]

pub mod aggregate;
pub mod check;
mod error;
pub mod extract;
pub mod fields;
pub mod pipeline;
pub mod problems;
pub mod repair;
mod report;
pub mod schema;
pub mod structured;
pub mod table;
mod text;

pub use aggregate::Aggregates;
pub use check::{Checker, Rule};
pub use error::AnswerError;
pub use fields::{Field, FieldKind};
pub use pipeline::{DEFAULT_REPAIRS, Options, Parse, Pipeline};
pub use repair::REPAIR_LEAD;
pub use schema::AnswerSchema;
pub use structured::{Structured, StructuredPlan};
pub use table::{Columns, OutputCounts, TableFormat, TableSpec};
