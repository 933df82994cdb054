//! `drover`: the command-line front. Arguments are parsed here (no I/O), then each
//! subcommand in `cmd/` turns them into a validated plan and runs it.
#![forbid(unsafe_code)]

mod cmd;
mod exit;
mod logging;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Run big batches of LLM calls over a fleet of OpenAI-compatible servers.
#[derive(Debug, Parser)]
#[command(name = "drover", version, about, long_about = None, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,

    /// More diagnostics on stderr (-v info, -vv debug, -vvv trace); DROVER_LOG sets a filter.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,

    /// Diagnostics format.
    #[arg(long, global = true, value_enum, default_value = "text")]
    log_format: logging::LogFormat,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a batch of tasks over a fleet of OpenAI-compatible servers (the main job).
    Run(cmd::run::RunArgs),
    /// Measure serial vs concurrent vs adaptive (and a fixed-concurrency sweep) on one fleet.
    Bench(cmd::bench::BenchArgs),
    /// Health, model, engine kind and live load of each backend.
    Probe(cmd::probe::ProbeArgs),
    /// Start, watch and stop a local fleet of inference servers.
    Launch(cmd::launch::LaunchArgs),
    /// The OpenAI Batch API (/v1/files, /v1/batches) over your own fleet.
    BatchServer(cmd::batch_server::BatchServerArgs),
    /// vLLM-faithful simulated inference servers, with fault injection.
    Sim(cmd::sim::SimArgs),
    /// The embedded llama.cpp engine as an OpenAI-compatible server.
    Serve(cmd::serve::ServeArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init(cli.verbose, cli.log_format);
    let code = match cli.command {
        Command::Run(args) => cmd::run::main(args),
        Command::Bench(args) => cmd::bench::main(args),
        Command::Probe(args) => cmd::probe::main(args),
        Command::Launch(args) => cmd::launch::main(args),
        Command::BatchServer(args) => cmd::batch_server::main(args),
        Command::Sim(args) => cmd::sim::main(args),
        Command::Serve(args) => cmd::serve::main(args),
    };
    ExitCode::from(code)
}
