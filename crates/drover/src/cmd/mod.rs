//! One module per subcommand: its clap arguments and its `main`.

pub mod batch_server;
pub mod bench;
pub mod launch;
pub mod probe;
pub mod run;
pub mod serve;
pub mod sim;
