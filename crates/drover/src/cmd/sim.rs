//! `drover sim`.

use clap::Args;

/// Arguments of `drover sim`.
#[derive(Debug, Args)]
pub struct SimArgs {}

/// Runs `drover sim`; returns the exit code.
pub fn main(_args: SimArgs) -> u8 {
    eprintln!("drover sim: not built yet");
    crate::exit::USAGE
}
