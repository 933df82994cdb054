//! The OpenAI Batch API (`/v1/files`, `/v1/batches`) over a fleet of OpenAI-compatible servers.
//!
//! ```text
//!  HTTP (api) ──► store (SQLite: files, batches) + files on disk
//!      │
//!      └─► lifecycle: validate → start ─► runtime ──► feeders (one reader thread per batch)
//!                                          │               │ round robin
//!                                          │            mux ─► one Dispatcher (the whole fleet)
//!                                          │                         │
//!                                          └── journals ◄── finished, routed by Task::group
//!                                 finalize ◄── a batch whose every line is in its journal
//! ```
//!
//! - [`store`]: metadata in an embedded SQLite database (WAL); status changes are transactions.
//! - [`check`]: an upload is checked line by line (400 naming the first bad line); a new batch's
//!   lines must all target its endpoint.
//! - `runtime`: one dispatcher for every batch, so the fleet's adaptive limits are learned once;
//!   a fair multiplexer feeds it round robin from the active batches, and each finished task is
//!   appended to its batch's journal (`batches/<id>/results.jsonl`), the same exactly-once journal
//!   as `drover run`: on restart only the lines without a result are sent again.
//! - `lifecycle`: validating → in_progress → finalizing → completed, cancel, expiry, restart.
//! - `api`: the HTTP surface, with OpenAI's error shape and API-key check.
//!
//! [`BatchServer::open`] checks and locks the data directory; [`BatchServer::serve`] runs on a
//! bound listener until its shutdown future completes.
#![forbid(unsafe_code)]

mod api;
pub mod check;
mod error;
mod ids;
mod lifecycle;
mod runtime;
mod server;
pub mod store;
mod upload;
pub mod window;

pub use error::BatchError;
pub use server::{BatchServer, DEFAULT_MAX_UPLOAD_BYTES, ServerConfig};
