//! The analysis pipeline as one validated plan: flags → (schema, checker, aggregates, table,
//! structured-output decision), checked before anything is sent; after the job, the report of
//! steps 3–5 and the table.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use drover_sched::BackendSpec;
use serde_json::{Map, Value};

use crate::aggregate::Aggregates;
use crate::check::{Checker, Rule};
use crate::error::AnswerError;
use crate::fields::{self, Field};
use crate::report;
use crate::schema::AnswerSchema;
use crate::structured::{self, Structured, StructuredPlan};
use crate::table::{self, Columns, TableSpec};

/// Repair rounds per task when `--repair` is not given.
pub const DEFAULT_REPAIRS: u32 = 2;

/// The analysis flags, as given (no I/O yet).
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// `--schema FILE`.
    pub schema: Option<PathBuf>,
    /// `--fields a,b,c`.
    pub fields: Option<String>,
    /// `--table FILE`.
    pub table: Option<PathBuf>,
    /// `--repair N` (default [`DEFAULT_REPAIRS`]).
    pub repair: Option<u32>,
    /// `--structured` (default auto).
    pub structured: Option<Structured>,
}

/// How answers are parsed (step 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parse {
    /// The answer text as is (`--table` alone).
    Text,
    /// The first JSON object (`--fields` without `--schema`).
    Object,
    /// The first JSON object, validated (`--schema`).
    Schema,
}

/// A validated analysis plan.
#[derive(Debug)]
pub struct Pipeline {
    /// How answers are parsed.
    pub parse: Parse,
    /// The compiled schema.
    pub schema: Option<Arc<AnswerSchema>>,
    /// Judges answers (none for text answers).
    pub checker: Option<Arc<Checker>>,
    /// Aggregates for the summary (none for text answers).
    pub aggregates: Option<Arc<Aggregates>>,
    /// The table to write after the job.
    pub table: Option<TableSpec>,
    /// Whether `response_format` is sent, and why (with `--schema`).
    pub structured: Option<StructuredPlan>,
    /// Repair rounds per task.
    pub max_repairs: u32,
}

impl Pipeline {
    /// Checks the flags and loads the schema. `None` when no analysis flag is given (a plain
    /// run). `backends` decides `--structured auto`.
    pub fn plan(opts: &Options, backends: &[BackendSpec]) -> Result<Option<Pipeline>, AnswerError> {
        let checked = opts.schema.is_some() || opts.fields.is_some();
        if !checked && opts.repair.is_some() {
            return Err(AnswerError::Needs {
                flag: "--repair",
                needs: "--schema FILE or --fields a,b,c",
                why: "there is nothing to repair against",
            });
        }
        if opts.schema.is_none() && opts.structured.is_some() {
            return Err(AnswerError::Needs {
                flag: "--structured",
                needs: "--schema FILE",
                why: "response_format carries the schema",
            });
        }
        if !checked && opts.table.is_none() {
            return Ok(None);
        }
        let schema = match &opts.schema {
            Some(path) => Some(Arc::new(AnswerSchema::load(path)?)),
            None => None,
        };
        let fields: Vec<Field> = match (&opts.fields, &schema) {
            (Some(given), Some(s)) => fields::select(given, Some(s.fields()))?,
            (Some(given), None) => fields::select(given, None)?,
            (None, Some(s)) => s.fields().to_vec(),
            (None, None) => Vec::new(),
        };
        let parse = match (&schema, &opts.fields) {
            (Some(_), _) => Parse::Schema,
            (None, Some(_)) => Parse::Object,
            (None, None) => Parse::Text,
        };
        let max_repairs = opts.repair.unwrap_or(DEFAULT_REPAIRS);
        let checker = match (&schema, parse) {
            (Some(s), _) => Some(Rule::Schema(s.clone())),
            (None, Parse::Object) => Some(Rule::Object(
                fields.iter().map(|f| f.name.clone()).collect(),
            )),
            _ => None,
        }
        .map(|rule| Arc::new(Checker::new(rule, max_repairs)));
        let columns = match parse {
            Parse::Text => Columns::Text,
            _ if fields.is_empty() => Columns::Object,
            _ => Columns::Fields(fields.iter().map(|f| f.name.clone()).collect()),
        };
        let table = match &opts.table {
            Some(path) => Some(TableSpec::new(path, columns)?),
            None => None,
        };
        let aggregates =
            (parse != Parse::Text && !fields.is_empty()).then(|| Arc::new(Aggregates::new(fields)));
        let structured = schema
            .as_ref()
            .map(|_| structured::decide(opts.structured.unwrap_or_default(), backends));
        Ok(Some(Pipeline {
            parse,
            schema,
            checker,
            aggregates,
            table,
            structured,
            max_repairs,
        }))
    }

    /// Request fields every task gets (a task's own fields win): `response_format` when sent.
    pub fn extra_body(&self) -> Map<String, Value> {
        let mut m = Map::new();
        if let (Some(schema), Some(StructuredPlan { send: true, .. })) =
            (&self.schema, &self.structured)
        {
            m.insert("response_format".into(), schema.response_format());
        }
        m
    }

    /// After the job: reads the output, writes the table, and returns the report of steps 3–5.
    pub fn finish(&self, output: &Path) -> Result<Vec<String>, AnswerError> {
        let (counts, rows) = table::read_output(output, self.table.as_ref())?;
        Ok(report::steps(self, &counts, rows))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema_file(dir: &Path) -> PathBuf {
        let p = dir.join("s.json");
        std::fs::write(
            &p,
            r#"{"title":"t","type":"object","properties":{"b":{"type":"boolean"},"a":{"enum":["x","y"]}},"required":["a","b"]}"#,
        )
        .unwrap();
        p
    }

    #[test]
    fn no_flags_is_a_plain_run() {
        assert!(Pipeline::plan(&Options::default(), &[]).unwrap().is_none());
    }

    #[test]
    fn schema_plan_has_checker_aggregates_and_columns_in_file_order() {
        let dir = tempfile::tempdir().unwrap();
        let opts = Options {
            schema: Some(schema_file(dir.path())),
            table: Some(dir.path().join("t.csv")),
            ..Options::default()
        };
        let p = Pipeline::plan(&opts, &[]).unwrap().unwrap();
        assert_eq!(p.parse, Parse::Schema);
        assert!(p.checker.is_some() && p.aggregates.is_some());
        assert_eq!(
            p.table.as_ref().unwrap().column_names(),
            ["custom_id", "b", "a", "error"]
        );
        assert_eq!(p.max_repairs, DEFAULT_REPAIRS);
        // No backend publishes metrics here: auto does not send.
        assert!(p.extra_body().is_empty());
        let on = Options {
            structured: Some(Structured::On),
            ..opts
        };
        let p = Pipeline::plan(&on, &[]).unwrap().unwrap();
        assert_eq!(
            p.extra_body()["response_format"]["json_schema"]["name"],
            "t"
        );
    }

    #[test]
    fn table_alone_gives_text_answers() {
        let dir = tempfile::tempdir().unwrap();
        let p = Pipeline::plan(
            &Options {
                table: Some(dir.path().join("t.jsonl")),
                ..Options::default()
            },
            &[],
        )
        .unwrap()
        .unwrap();
        assert_eq!(p.parse, Parse::Text);
        assert!(p.checker.is_none() && p.aggregates.is_none());
        assert_eq!(p.table.unwrap().columns, Columns::Text);
    }

    #[test]
    fn flags_without_what_they_need_are_refused() {
        let e = Pipeline::plan(
            &Options {
                repair: Some(1),
                ..Options::default()
            },
            &[],
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            e,
            "--repair needs --schema FILE or --fields a,b,c: there is nothing to repair against"
        );
        let e = Pipeline::plan(
            &Options {
                structured: Some(Structured::On),
                fields: Some("a".into()),
                ..Options::default()
            },
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("--structured needs --schema FILE"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let e = Pipeline::plan(
            &Options {
                schema: Some(schema_file(dir.path())),
                fields: Some("a,zz".into()),
                ..Options::default()
            },
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("\"zz\" is not a property of the --schema (b, a)"),
            "{e}"
        );
        let e = Pipeline::plan(
            &Options {
                schema: Some(dir.path().join("nope.json")),
                ..Options::default()
            },
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("--schema ") && e.contains("cannot read it"),
            "{e}"
        );
    }
}
