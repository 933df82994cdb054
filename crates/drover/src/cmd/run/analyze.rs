//! The analysis pipeline's options for `drover run` (`--schema`, `--repair`, `--structured`,
//! `--fields`, `--table`): structured answers, validated, repaired and aggregated.

use std::path::PathBuf;

use clap::Args;

/// Structured-answer options.
#[derive(Debug, Args, Default)]
pub struct AnalyzeArgs {
    /// JSON Schema the answers must match (not implemented yet).
    #[arg(long, value_name = "FILE", hide = true)]
    pub schema: Option<PathBuf>,
}

/// What the run needs from the analysis options.
#[derive(Default)]
pub struct Analysis {
    /// Judges answers.
    pub checker: Option<std::sync::Arc<dyn drover_sched::AnswerCheck>>,
    /// Receives accepted answers.
    pub sink: Option<std::sync::Arc<dyn drover_job::AnswerSink>>,
    /// Extra request fields for every task (e.g. `response_format`).
    pub extra_body: serde_json::Map<String, serde_json::Value>,
    /// Whether the six-step pipeline banners apply.
    pub active: bool,
}

/// Builds the analysis from the options and the discovered fleet.
pub fn setup(args: &AnalyzeArgs, _fleet: &drover_job::Fleet) -> Result<Analysis, String> {
    if args.schema.is_some() {
        return Err("--schema is not available yet".into());
    }
    Ok(Analysis::default())
}

/// After the job: writes the table, if asked. Returns a line to print, if any.
pub fn finish(_args: &AnalyzeArgs, _analysis: &Analysis, _output: &std::path::Path) -> Result<Option<String>, String> {
    Ok(None)
}
