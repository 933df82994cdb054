//! The analysis pipeline's options for `drover run` (`--schema`, `--repair`, `--structured`,
//! `--fields`, `--table`): structured answers, validated, repaired and aggregated. The work is
//! in `drover-answer`; this file maps flags onto it and hands the run its hooks.
//!
//! The pipeline is active with `--schema` or `--fields`, and also with `--table` alone: then the
//! table holds each task's answer text, which is what people otherwise post-process by hand.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::{Args, ValueEnum};
use drover_answer::{Options, Pipeline, Structured};

/// When to send `response_format` json_schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StructuredArg {
    /// When every backend is known to enforce it (vLLM, SGLang, drover sim/serve).
    Auto,
    /// Always.
    On,
    /// Never: rely on the prompt, validation and repair.
    Off,
}

/// Structured-answer options.
#[derive(Debug, Args, Default)]
pub struct AnalyzeArgs {
    /// JSON Schema the answers must match: the first JSON object of each answer is validated,
    /// invalid ones are repaired, fields are aggregated (turns on the 6-step analysis pipeline).
    #[arg(long, value_name = "FILE", help_heading = "Analysis")]
    pub schema: Option<PathBuf>,

    /// Repair rounds per task: an invalid answer is asked again with the validation errors
    /// [default: 2].
    #[arg(long, value_name = "N", help_heading = "Analysis")]
    pub repair: Option<u32>,

    /// Send response_format json_schema so the server constrains decoding: auto = when every
    /// backend is vLLM or SGLang [default: auto].
    #[arg(long, value_enum, value_name = "WHEN", help_heading = "Analysis")]
    pub structured: Option<StructuredArg>,

    /// Answer fields for the table and the summary [default: the schema's top-level properties].
    #[arg(long, value_name = "a,b,c", help_heading = "Analysis")]
    pub fields: Option<String>,

    /// Write the answers as a table, one row per task in input order: FILE.csv or FILE.jsonl.
    #[arg(long, value_name = "FILE", help_heading = "Analysis")]
    pub table: Option<PathBuf>,
}

impl AnalyzeArgs {
    fn options(&self) -> Options {
        Options {
            schema: self.schema.clone(),
            fields: self.fields.clone(),
            table: self.table.clone(),
            repair: self.repair,
            structured: self.structured.map(|s| match s {
                StructuredArg::Auto => Structured::Auto,
                StructuredArg::On => Structured::On,
                StructuredArg::Off => Structured::Off,
            }),
        }
    }
}

/// What the run needs from the analysis options.
#[derive(Default)]
pub struct Analysis {
    /// Judges answers.
    pub checker: Option<Arc<dyn drover_sched::AnswerCheck>>,
    /// Receives accepted answers.
    pub sink: Option<Arc<dyn drover_job::AnswerSink>>,
    /// Extra request fields for every task (e.g. `response_format`).
    pub extra_body: serde_json::Map<String, serde_json::Value>,
    /// Whether the six-step pipeline banners apply.
    pub active: bool,
    /// The validated plan, for [`finish`].
    pub pipeline: Option<Pipeline>,
}

/// Builds the analysis from the options and the discovered fleet.
pub fn setup(args: &AnalyzeArgs, fleet: &drover_job::Fleet) -> Result<Analysis, String> {
    let Some(pipeline) =
        Pipeline::plan(&args.options(), &fleet.backends).map_err(|e| e.to_string())?
    else {
        return Ok(Analysis::default());
    };
    Ok(Analysis {
        checker: pipeline
            .checker
            .clone()
            .map(|c| c as Arc<dyn drover_sched::AnswerCheck>),
        sink: pipeline
            .aggregates
            .clone()
            .map(|a| a as Arc<dyn drover_job::AnswerSink>),
        extra_body: pipeline.extra_body(),
        active: true,
        pipeline: Some(pipeline),
    })
}

/// After the job: writes the table, if asked, and returns the lines of steps 3–5.
pub fn finish(
    _args: &AnalyzeArgs,
    analysis: &Analysis,
    output: &Path,
) -> Result<Option<String>, String> {
    let Some(pipeline) = &analysis.pipeline else {
        return Ok(None);
    };
    let lines = pipeline.finish(output).map_err(|e| e.to_string())?;
    Ok(Some(lines.join("\n")))
}
