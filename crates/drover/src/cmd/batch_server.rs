//! `drover batch-server`: the OpenAI Batch API over a fleet (not implemented yet).

use clap::Args;

/// Arguments of `drover batch-server`.
#[derive(Debug, Args)]
pub struct BatchServerArgs {}

/// Runs `drover batch-server`.
pub fn main(_args: BatchServerArgs) -> u8 {
    eprintln!("drover batch-server: not built yet");
    crate::exit::USAGE
}
