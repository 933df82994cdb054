//! What can stop the analysis before or after the job. Problems with one *answer* are not
//! errors: they become repair prompts or `invalid_answer` records.

use std::path::PathBuf;

/// The analysis cannot be set up, or its table cannot be written.
#[derive(Debug, thiserror::Error)]
pub enum AnswerError {
    /// The schema file cannot be read.
    #[error("--schema {path}: cannot read it: {source}")]
    SchemaRead {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The schema file is not JSON.
    #[error(
        "--schema {path}: not JSON ({source}); give a JSON Schema document, e.g. {{\"type\":\"object\",\"properties\":{{…}}}}"
    )]
    SchemaJson {
        /// The file.
        path: String,
        /// The parser's message, with line and column.
        #[source]
        source: serde_json::Error,
    },
    /// The schema is JSON but not a usable schema.
    #[error("--schema {path}: {message}")]
    SchemaInvalid {
        /// The file.
        path: String,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// `--fields` is empty or names a field twice.
    #[error("--fields {given:?}: {message}")]
    FieldsInvalid {
        /// What was given.
        given: String,
        /// What is wrong.
        message: String,
    },
    /// `--fields` names a field the schema does not declare.
    #[error(
        "--fields: {field:?} is not a property of the --schema ({known}); name fields from the schema's \"properties\""
    )]
    UnknownField {
        /// The field.
        field: String,
        /// The schema's properties, comma-separated.
        known: String,
    },
    /// A flag that has no effect without another.
    #[error("{flag} needs {needs}: {why}")]
    Needs {
        /// The flag given.
        flag: &'static str,
        /// What it needs.
        needs: &'static str,
        /// Why.
        why: &'static str,
    },
    /// `--table` has an extension drover cannot write.
    #[error("--table {path}: unknown format; end the file name in .csv or .jsonl")]
    TableExtension {
        /// The path given.
        path: PathBuf,
    },
    /// `--table`'s directory does not exist.
    #[error(
        "--table {path}: directory {dir} does not exist; create it first or choose another path"
    )]
    TableDirectory {
        /// The path given.
        path: PathBuf,
        /// Its parent.
        dir: PathBuf,
    },
    /// `--table` names the output file itself.
    #[error("--table {0} is the output file (-o); choose another path for the table")]
    TableIsOutput(PathBuf),
    /// The output cannot be read back.
    #[error("cannot read the output {path} to build the table: {source}")]
    ReadOutput {
        /// The output.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The table cannot be written.
    #[error("--table {path}: cannot write it: {source}")]
    WriteTable {
        /// The table.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}
