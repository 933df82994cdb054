//! The HTTP edge: talking to one OpenAI-compatible backend.
//!
//! - [`addr`]: how users name backends (`8001`, `host:port`, URLs).
//! - [`Client::send`]: one attempt of one task; every failure is classified here, once, into
//!   a [`Failure`](drover_types::Failure) — the scheduler never sees status codes or strings.
//! - [`sse`]: streamed answers, reassembled into the body a non-streamed call returns.
//! - [`discovery`]: which model a backend serves (`/v1/models`), with messages that say what to fix.
//! - [`metrics`]: live load from a backend's Prometheus endpoint (vLLM, SGLang, llama.cpp, TGI
//!   names), the one place those names live.
#![forbid(unsafe_code)]

pub mod addr;
mod client;
pub mod discovery;
pub mod metrics;
pub mod sse;

pub use addr::{AddrError, BackendAddr};
pub use client::{Answer, AttemptError, Client, ClientConfig, ClientError, Progress, SendOptions};
pub use discovery::{DiscoveryError, ModelInfo, Models};
pub use metrics::{EngineKind, LoadSignals, Scraper};
