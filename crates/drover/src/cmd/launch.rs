//! `drover launch`: start, watch and stop a local fleet (not implemented yet).

use clap::Args;

/// Arguments of `drover launch`.
#[derive(Debug, Args)]
pub struct LaunchArgs {}

/// Runs `drover launch`.
pub fn main(_args: LaunchArgs) -> u8 {
    eprintln!("drover launch: not built yet");
    crate::exit::USAGE
}
