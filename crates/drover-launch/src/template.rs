//! `--cmd` templates: any server, started per instance with `{port}`, `{gpu}`, `{model}`,
//! `{host}` and `{index}` filled in.
//!
//! The template is split into words shell-style *once*, when it is parsed; the values are then
//! put inside those words. So a value can never add, split or join arguments: a model named
//! `a b; rm -rf x` stays one argument, and no shell ever sees it.

use crate::error::LaunchError;

/// The placeholders, in the order the docs list them.
pub const PLACEHOLDERS: [&str; 5] = ["port", "gpu", "model", "host", "index"];

/// A parsed `--cmd` template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    /// The words, placeholders still in them; the first is the program.
    words: Vec<String>,
}

/// Values for one instance.
#[derive(Debug, Clone, Default)]
pub struct Values<'a> {
    /// `{port}`.
    pub port: u16,
    /// `{gpu}`: what `CUDA_VISIBLE_DEVICES` is set to, when GPUs are used.
    pub gpu: Option<&'a str>,
    /// `{model}`.
    pub model: Option<&'a str>,
    /// `{host}`.
    pub host: &'a str,
    /// `{index}`: 0, 1, … in instance order.
    pub index: usize,
}

impl Template {
    /// Splits `source` shell-style (quotes and backslashes as in `sh`; no expansion of any kind).
    pub fn parse(source: &str) -> Result<Template, LaunchError> {
        let invalid = |message: String| LaunchError::Invalid {
            flag: "--cmd",
            message,
        };
        let words = shlex::split(source).ok_or_else(|| {
            invalid(format!(
                "cannot split {source:?} into words: a quote is not closed or a backslash ends it"
            ))
        })?;
        if words.is_empty() || words[0].is_empty() {
            return Err(invalid(
                "the template is empty; write the server's command line, e.g. \
                 --cmd 'my-server --port {port} --model {model}'"
                    .into(),
            ));
        }
        if !words.iter().any(|w| w.contains("{port}")) {
            return Err(invalid(format!(
                "{source:?} has no {{port}}: each instance must be told its port, e.g. --cmd 'my-server --port {{port}}'"
            )));
        }
        Ok(Template { words })
    }

    /// Whether `{name}` appears anywhere.
    pub fn uses(&self, name: &str) -> bool {
        let token = format!("{{{name}}}");
        self.words.iter().any(|w| w.contains(&token))
    }

    /// The program word as written (placeholders not filled in).
    pub fn program(&self) -> &str {
        &self.words[0]
    }

    /// The words with `values` filled in. A placeholder without a value (`{gpu}` with no GPU) is
    /// left as written; [`crate::plan`] refuses such templates before anything starts.
    pub fn render(&self, values: &Values<'_>) -> Vec<String> {
        self.words.iter().map(|w| fill(w, values)).collect()
    }
}

/// Fills placeholders in one word, left to right in a single pass, so that a value containing
/// `{port}` (say, in a model name) is never expanded again.
pub(crate) fn fill(word: &str, v: &Values<'_>) -> String {
    let mut out = String::with_capacity(word.len());
    let mut rest = word;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        // '{' is one byte, so `open + 1` is a character boundary.
        let after = &rest[open + 1..];
        let hit = PLACEHOLDERS.iter().find_map(|name| {
            let tail = after.strip_prefix(name)?.strip_prefix('}')?;
            let value = match *name {
                "port" => v.port.to_string(),
                "gpu" => v.gpu?.to_string(),
                "model" => v.model?.to_string(),
                "host" => v.host.to_string(),
                _ => v.index.to_string(),
            };
            Some((value, tail))
        });
        match hit {
            Some((value, tail)) => {
                out.push_str(&value);
                rest = tail;
            }
            None => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values<'a>(model: Option<&'a str>, gpu: Option<&'a str>) -> Values<'a> {
        Values {
            port: 8002,
            gpu,
            model,
            host: "127.0.0.1",
            index: 1,
        }
    }

    #[test]
    fn splits_first_then_fills_so_values_stay_one_argument() {
        let t = Template::parse(
            r#"server --model {model} --port={port} --name "gpu {gpu}" --i {index} --h {host}"#,
        )
        .unwrap();
        let words = t.render(&values(Some("my model; rm -rf x $(id) {port}"), Some("3")));
        assert_eq!(
            words,
            [
                "server",
                "--model",
                "my model; rm -rf x $(id) {port}",
                "--port=8002",
                "--name",
                "gpu 3",
                "--i",
                "1",
                "--h",
                "127.0.0.1"
            ]
        );
    }

    #[test]
    fn other_braces_are_left_alone() {
        let t = Template::parse(r#"s --port {port} --json '{"a":{"port":1}}' {ports} {"#).unwrap();
        let w = t.render(&values(None, None));
        assert_eq!(w[2], "8002");
        assert_eq!(w[4], r#"{"a":{"port":1}}"#);
        assert_eq!(w[5], "{ports}");
        assert_eq!(w[6], "{");
        assert_eq!(
            fill("{gpu}", &values(None, None)),
            "{gpu}",
            "no value: left as written"
        );
    }

    #[test]
    fn bad_templates_name_the_flag_and_the_fix() {
        let e = Template::parse("server --port '{port}")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("--cmd: cannot split"), "{e}");
        let e = Template::parse("  ").unwrap_err().to_string();
        assert!(e.contains("empty"), "{e}");
        let e = Template::parse("server --port 8000")
            .unwrap_err()
            .to_string();
        assert!(e.contains("no {port}"), "{e}");
        let t = Template::parse("server -p {port} -m {model}").unwrap();
        assert!(t.uses("model") && t.uses("port") && !t.uses("gpu"));
    }
}
