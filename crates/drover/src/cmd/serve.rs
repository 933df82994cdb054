//! `drover serve`: the embedded llama.cpp engine behind the OpenAI-compatible front.
//!
//! Without the `engine` feature the subcommand still exists, so `drover serve` explains how to get
//! a build that has it instead of clap reporting an unknown command.

use std::path::PathBuf;

use clap::Args;

/// Arguments of `drover serve`.
#[derive(Debug, Args)]
#[cfg_attr(not(feature = "engine"), allow(dead_code))]
pub struct ServeArgs {
    /// GGUF model file [default: $DROVER_MODEL, else the cached SmolLM2-135M-Instruct from
    /// scripts/fetch-model.sh]
    #[arg(long, value_name = "PATH")]
    model: Option<PathBuf>,
    /// Address to listen on; the default accepts local connections only.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port to listen on (0 picks a free one and prints it).
    #[arg(long, default_value_t = 8001)]
    port: u16,
    /// Requests decoded together (llama.cpp sequences).
    #[arg(long, default_value_t = 8, value_name = "N")]
    parallel: usize,
    /// Context per request in tokens (prompt + completion).
    #[arg(long, default_value_t = 2048, value_name = "N")]
    ctx: u32,
    /// CPU threads for llama.cpp [default: all cores but one; llama.cpp's spinning barriers
    /// collapse when another process takes a core it uses, see docs/engine.md]
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
    /// Require `Authorization: Bearer KEY` on /v1/* (as vLLM's --api-key).
    #[arg(
        long,
        env = "DROVER_API_KEY",
        value_name = "KEY",
        hide_env_values = true
    )]
    api_key: Option<String>,
    /// Model id served by /v1/models and expected in requests [default: the file stem].
    #[arg(long, value_name = "NAME")]
    served_model_name: Option<String>,
}

/// Runs `drover serve`; returns the exit code.
#[cfg(not(feature = "engine"))]
pub fn main(_args: ServeArgs) -> u8 {
    eprintln!(
        "drover serve: this drover was built without the embedded engine (cargo feature `engine`).\n\
         Rebuild with it: `cargo build --release -p drover` (it is a default feature; needs cmake and clang,\n\
         see scripts/setup.sh), or point drover at a running OpenAI-compatible server instead."
    );
    crate::exit::USAGE
}

/// Runs `drover serve`; returns the exit code.
#[cfg(feature = "engine")]
pub fn main(args: ServeArgs) -> u8 {
    use std::io::Write;
    use std::sync::Arc;

    use drover_engine::{EngineConfig, LlamaEngine};
    use drover_server::{Engine, ServerOptions};

    init_logging();
    let model = match args
        .model
        .clone()
        .map_or_else(EngineConfig::default_model_path, Ok)
    {
        Ok(path) => path,
        Err(e) => {
            eprintln!("drover serve: {e}");
            return crate::exit::USAGE;
        }
    };
    let config = EngineConfig {
        model,
        parallel: args.parallel,
        ctx: args.ctx,
        threads: args.threads,
        model_name: args.served_model_name.clone(),
    };
    let engine = match LlamaEngine::load(config) {
        Ok(engine) => engine,
        Err(e) => {
            eprintln!("drover serve: {e}");
            return crate::exit::USAGE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("drover serve: cannot start the async runtime: {e}");
            return crate::exit::TASKS_FAILED;
        }
    };
    runtime.block_on(async move {
        let listener = match tokio::net::TcpListener::bind((args.host.as_str(), args.port)).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!(
                    "drover serve: cannot listen on {}:{}: {e}",
                    args.host, args.port
                );
                return crate::exit::USAGE;
            }
        };
        let port = listener.local_addr().map_or(args.port, |a| a.port());
        let host = if args.host.contains(':') {
            format!("[{}]", args.host)
        } else {
            args.host.clone()
        };
        let info = engine.model();
        let config = engine.config();
        println!(
            "drover serve: listening on http://{host}:{port} (model {}, parallel {}, ctx {})",
            info.id, config.parallel, config.ctx
        );
        let _ = std::io::stdout().flush();
        let options = ServerOptions {
            api_key: args.api_key.clone(),
            ..ServerOptions::default()
        };
        let served: Arc<dyn Engine> = engine;
        match drover_server::serve(listener, served, options, shutdown_signal()).await {
            Ok(()) => {
                eprintln!("drover serve: stopped");
                crate::exit::OK
            }
            Err(e) => {
                eprintln!("drover serve: serving failed: {e}");
                crate::exit::TASKS_FAILED
            }
        }
    })
}

/// Completes on Ctrl-C or SIGTERM (how process managers and test harnesses stop a server).
#[cfg(feature = "engine")]
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Log lines go to stderr (stdout carries the ready line); `RUST_LOG` tunes them, default warn.
#[cfg(feature = "engine")]
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    // Another subcommand path may have installed a subscriber already; keep that one.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
