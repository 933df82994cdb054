//! `drover serve`.

use clap::Args;

/// Arguments of `drover serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {}

/// Runs `drover serve`; returns the exit code.
pub fn main(_args: ServeArgs) -> u8 {
    eprintln!("drover serve: not built yet");
    crate::exit::USAGE
}
