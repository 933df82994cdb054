//! The dispatcher: one loop for every mode; modes are policies.
//!
//! - [`pick`]: which backend gets the next task (round robin, power of two choices).
//! - [`limit`]: how many requests each backend may hold (unlimited, fixed, adaptive).
//! - [`retry`]: whether a failed task is tried again, and when.
//! - [`breaker`]: when a backend is ejected, probed and re-admitted.
#![forbid(unsafe_code)]

pub mod breaker;
pub mod limit;
pub mod pick;
pub mod retry;
