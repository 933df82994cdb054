//! Exit codes: part of the command-line contract (ARCHITECTURE.md §2).

/// Every task succeeded (or the command did its job).
pub const OK: u8 = 0;
/// Some tasks failed; each has a record in the output.
#[allow(dead_code)]
pub const TASKS_FAILED: u8 = 1;
/// Usage or configuration error; nothing was sent.
pub const USAGE: u8 = 2;
/// Interrupted by Ctrl-C / SIGTERM; the run can be resumed.
#[allow(dead_code)]
pub const INTERRUPTED: u8 = 130;
