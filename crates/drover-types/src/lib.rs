//! Wire types shared by every drover crate.
//!
//! This crate holds the vocabulary of the project and nothing else: what a task is, what an
//! output line looks like (OpenAI batch output format), which endpoints exist, how failures are
//! classified and which of them are worth a retry. Behaviour lives in the crates that use it.
#![forbid(unsafe_code)]

mod endpoint;
mod failure;
mod id;
mod output;
mod task;
mod usage;

pub use endpoint::{Endpoint, UnknownEndpoint};
pub use failure::Failure;
pub use id::{IdHash, id_hash};
pub use output::{ErrorCode, ErrorRecord, Meta, OutputLine, ResponsePart, push_hex, request_id};
pub use task::Task;
pub use usage::Usage;
