//! The dispatcher: one loop for every mode; modes are policies.
//!
//! - [`pick`]: which backend gets the next task (round robin, power of two choices).
//! - [`limit`]: how many requests each backend may hold (unlimited, fixed, adaptive).
//! - [`retry`]: whether a failed task is tried again, and when.
//! - [`breaker`]: when a backend is ejected, probed and re-admitted.
//! - [`hedge`]: which stragglers to copy to idle backends at the end of the input.
//! - [`dispatch`]: the loop that uses them.
#![forbid(unsafe_code)]

pub mod breaker;
pub mod check;
pub mod config;
pub mod dispatch;
pub mod hedge;
pub mod limit;
pub mod pick;
pub mod retry;
pub mod view;

pub use check::{AnswerCheck, Verdict};
pub use config::{DispatchConfig, Mode, StreamPolicy, TimeoutPolicy};
pub use dispatch::{Control, DispatchReport, Dispatcher, Wiring};
pub use view::{
    BackendSpec, BackendState, BackendStatus, DispatchEvent, Finished, FleetSnapshot, Outcome,
};
