//! `--template FILE`: any JSON object rendered (minijinja) into the user message, or into a
//! whole messages list when the template renders a JSON array.

use std::path::Path;

use minijinja::{Environment, UndefinedBehavior, value::Serde};
use serde_json::{Map, Value};

/// A compiled task template.
pub struct Template {
    env: Environment<'static>,
}

/// The template file could not be read or compiled.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// The file could not be read.
    #[error("cannot read template {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The template does not compile.
    #[error("template {path} does not compile: {source:#}")]
    Compile {
        /// The file.
        path: String,
        /// minijinja's error, with its line.
        #[source]
        source: minijinja::Error,
    },
}

/// What a template produced for one task.
#[derive(Debug, PartialEq)]
pub enum Rendered {
    /// Text: the user message (or the completion prompt).
    Text(String),
    /// A JSON array: the whole messages list.
    Messages(Vec<Value>),
}

impl Template {
    /// Loads and compiles a template file.
    pub fn load(path: &Path) -> Result<Template, TemplateError> {
        let source = std::fs::read_to_string(path).map_err(|source| TemplateError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Template::from_source(&path.display().to_string(), source)
    }

    /// Compiles template source (`name` is used in messages).
    pub fn from_source(name: &str, source: String) -> Result<Template, TemplateError> {
        let mut env = Environment::new();
        // A field missing from a task is an error naming the field, not a silent empty string;
        // `{% if field %}` still works on absent fields.
        env.set_undefined_behavior(UndefinedBehavior::SemiStrict);
        env.add_filter("tojson_compact", |v: minijinja::Value| {
            serde_json::to_string(&v).unwrap_or_default()
        });
        env.add_template_owned("task", source)
            .map_err(|source| TemplateError::Compile {
                path: name.to_string(),
                source,
            })?;
        Ok(Template { env })
    }

    /// Renders one task object.
    pub fn render(&self, task: &Map<String, Value>) -> Result<Rendered, String> {
        let tmpl = self.env.get_template("task").map_err(|e| e.to_string())?;
        let text = tmpl
            .render(minijinja::Value::from(Serde(task)))
            .map_err(|e| render_error(&e))?;
        let trimmed = text.trim();
        if trimmed.starts_with('[') {
            if let Ok(Value::Array(items)) = serde_json::from_str::<Value>(trimmed) {
                return Ok(Rendered::Messages(items));
            }
            return Err(
                "template rendered text starting with '[' that is not a JSON array of messages"
                    .into(),
            );
        }
        Ok(Rendered::Text(trimmed.to_string()))
    }
}

fn render_error(e: &minijinja::Error) -> String {
    let mut msg = format!("template error: {}", e.kind());
    if let Some(detail) = e.detail() {
        msg.push_str(&format!(": {detail}"));
    }
    if let Some(line) = e.line() {
        msg.push_str(&format!(" (template line {line})"));
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn renders_text_from_fields() {
        let t =
            Template::from_source("t", "Classify: {{ text }} ({{ meta.lang }})".into()).unwrap();
        let r = t
            .render(&obj(
                json!({"text": "great product", "meta": {"lang": "en"}}),
            ))
            .unwrap();
        assert_eq!(r, Rendered::Text("Classify: great product (en)".into()));
    }

    #[test]
    fn renders_a_messages_list() {
        let src = r#"[{"role":"system","content":"Be brief."},{"role":"user","content":{{ text|tojson }}}]"#;
        let t = Template::from_source("t", src.into()).unwrap();
        let r = t.render(&obj(json!({"text": "say \"hi\""}))).unwrap();
        let Rendered::Messages(m) = r else {
            panic!("not messages")
        };
        assert_eq!(m[1]["content"], "say \"hi\"");
    }

    #[test]
    fn missing_field_names_the_field() {
        let t = Template::from_source("t", "{{ review.body }}".into()).unwrap();
        let e = t.render(&obj(json!({"text": "x"}))).unwrap_err();
        assert!(e.contains("undefined"), "{e}");
    }

    #[test]
    fn compile_errors_name_the_file() {
        let e = Template::from_source("tmpl.j2", "{{ oops".into())
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("tmpl.j2"), "{e}");
    }
}
