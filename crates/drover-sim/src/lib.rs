//! A vLLM-faithful simulated inference server, with fault injection.
//!
//! Each simulated instance is an [`engine`] (a pure step function reproducing vLLM V1's scheduler:
//! continuous batching, chunked prefill, paged KV cache with preemption, prefix caching) run
//! against the clock by a driver task, behind the same OpenAI-compatible front as `drover serve`
//! ([`drover_server`]). The step-time model and presets follow `vllm-facts.md` §3 and §6, so a
//! dispatcher sees the same throughput/latency coupling it would see on a real fleet.
//!
//! - [`SimConfig`]: a preset ([`params::presets`]) plus overrides, faults, time scale and seed.
//! - [`Fleet`]: N instances in one process, with `kill`/`revive`/`stall` for tests.
//! - [`serve_instance`]: one instance on a listener the caller bound.
//!
//! Answers are deterministic: they start with `sim-` and 8 hex digits of the prompt's digest
//! ([`answer`]), and `response_format` gets a JSON instance of its schema ([`schema`]).
#![forbid(unsafe_code)]

pub mod answer;
mod backend;
mod config;
mod driver;
pub mod engine;
mod error;
mod faults;
mod fleet;
mod instant;
pub mod output_len;
pub mod params;
mod rng;
pub mod schema;
mod server;
pub mod tokens;

pub use config::{DEFAULT_PRESET, SimConfig};
pub use driver::{MAX_DEBT, MIN_SLEEP};
pub use error::SimError;
pub use faults::{FAULT_HEADER, Fault, Faults};
pub use fleet::{Fleet, serve_instance};
pub use output_len::OutputLen;
pub use params::{Params, Preset, StepCosts, preset_names, presets};
