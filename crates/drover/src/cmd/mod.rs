//! One module per subcommand: its clap arguments and its `main`.

pub mod bench;
pub mod run;
pub mod serve;
pub mod sim;
