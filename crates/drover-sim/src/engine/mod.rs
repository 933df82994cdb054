//! The engine model: a pure step function over the scheduler state and a paged KV cache.
//!
//! Nothing here knows about time or I/O; [`crate::driver`] runs it against a clock.

pub mod kv;
pub mod seq;
pub mod step;

pub use seq::{NewSeq, SeqId, chain_hash, mix64};
pub use step::{EngineState, Finished, StepOutcome, step};
