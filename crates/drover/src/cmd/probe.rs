//! `drover probe`: what each backend is and how loaded it is (not implemented yet).

use clap::Args;

/// Arguments of `drover probe`.
#[derive(Debug, Args)]
pub struct ProbeArgs {}

/// Runs `drover probe`.
pub fn main(_args: ProbeArgs) -> u8 {
    eprintln!("drover probe: not built yet");
    crate::exit::USAGE
}
