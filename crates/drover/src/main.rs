//! `drover`: the command-line front. Arguments are parsed here (no I/O), then each
//! subcommand in `cmd/` turns them into a validated plan and runs it.
#![forbid(unsafe_code)]

mod cmd;
mod exit;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Run big batches of LLM calls over a fleet of OpenAI-compatible servers.
#[derive(Debug, Parser)]
#[command(name = "drover", version, about, long_about = None, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a batch of tasks over a fleet of OpenAI-compatible servers (the main job).
    Run(cmd::run::RunArgs),
    /// vLLM-faithful simulated inference servers, with fault injection.
    Sim(cmd::sim::SimArgs),
    /// The embedded llama.cpp engine as an OpenAI-compatible server.
    Serve(cmd::serve::ServeArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Run(args) => cmd::run::main(args),
        Command::Sim(args) => cmd::sim::main(args),
        Command::Serve(args) => cmd::serve::main(args),
    };
    ExitCode::from(code)
}
