//! `--schema FILE`: the JSON Schema answers must match, compiled once, and what its top-level
//! properties say about how to summarise each field.

use std::path::Path;

use serde::Deserialize;
use serde::de::{IgnoredAny, MapAccess, Visitor};
use serde_json::{Value, json};

use crate::error::AnswerError;
use crate::fields::{Field, FieldKind};
use crate::problems::{Problem, Problems};
use crate::text::shorten;

/// A validator error quotes the offending value; a long string must not flood the prompt.
const MAX_PROBLEM_CHARS: usize = 300;

/// A compiled answer schema.
pub struct AnswerSchema {
    value: Value,
    validator: jsonschema::Validator,
    fields: Vec<Field>,
    name: String,
}

impl std::fmt::Debug for AnswerSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnswerSchema")
            .field("name", &self.name)
            .field("fields", &self.fields)
            .finish()
    }
}

impl AnswerSchema {
    /// Reads and compiles `path`.
    pub fn load(path: &Path) -> Result<AnswerSchema, AnswerError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| AnswerError::SchemaRead {
            path: origin.clone(),
            source,
        })?;
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("answer");
        AnswerSchema::parse(&text, &origin, stem)
    }

    /// Compiles schema text; `origin` names it in messages, `fallback_name` names it in
    /// `response_format` when it has no `title`.
    pub fn parse(
        text: &str,
        origin: &str,
        fallback_name: &str,
    ) -> Result<AnswerSchema, AnswerError> {
        let value: Value =
            serde_json::from_str(text).map_err(|source| AnswerError::SchemaJson {
                path: origin.to_string(),
                source,
            })?;
        // serde_json's map sorts keys; the table's columns follow the file's order instead.
        let order = serde_json::from_str::<TopLevel>(text)
            .ok()
            .and_then(|t| t.properties)
            .map(|p| p.0);
        AnswerSchema::build(value, order, origin, fallback_name)
    }

    /// Compiles a schema value (properties in the map's order).
    pub fn from_value(value: Value, origin: &str) -> Result<AnswerSchema, AnswerError> {
        AnswerSchema::build(value, None, origin, "answer")
    }

    fn build(
        value: Value,
        order: Option<Vec<String>>,
        origin: &str,
        fallback_name: &str,
    ) -> Result<AnswerSchema, AnswerError> {
        let invalid = |message: String| AnswerError::SchemaInvalid {
            path: origin.to_string(),
            message,
        };
        let Some(obj) = value.as_object() else {
            return Err(invalid(format!(
                "the schema must be a JSON object describing the answer object, found {}",
                crate::text::kind(&value)
            )));
        };
        match obj.get("type") {
            None => {}
            Some(Value::String(t)) if t == "object" => {}
            Some(Value::Array(ts)) if ts.iter().any(|t| t == "object") => {}
            Some(other) => {
                return Err(invalid(format!(
                    "the top level has \"type\": {other}, but answers are JSON objects: use \"type\": \"object\" \
                     with \"properties\" for the fields you want"
                )));
            }
        }
        let validator = jsonschema::validator_for(&value).map_err(|e| {
            let at = e.instance_path().as_str();
            invalid(format!(
                "not a valid JSON Schema: {e}{}",
                if at.is_empty() {
                    String::new()
                } else {
                    format!(" (at {at})")
                }
            ))
        })?;
        let props = obj.get("properties").and_then(Value::as_object);
        let names: Vec<String> = match (order, props) {
            (Some(order), Some(props)) => order
                .into_iter()
                .filter(|k| props.contains_key(k))
                .collect(),
            (None, Some(props)) => props.keys().cloned().collect(),
            (_, None) => Vec::new(),
        };
        let fields = names
            .into_iter()
            .map(|name| {
                let kind =
                    FieldKind::of(&props.expect("names come from properties")[&name], &value);
                Field { name, kind }
            })
            .collect();
        let name = obj
            .get("title")
            .and_then(Value::as_str)
            .map(sanitize_name)
            .filter(|n| !n.is_empty());
        let name = name.unwrap_or_else(|| {
            let n = sanitize_name(fallback_name);
            if n.is_empty() { "answer".into() } else { n }
        });
        Ok(AnswerSchema {
            value,
            validator,
            fields,
            name,
        })
    }

    /// The schema itself.
    pub fn value(&self) -> &Value {
        &self.value
    }

    /// Top-level properties, in the file's order.
    pub fn fields(&self) -> &[Field] {
        &self.fields
    }

    /// The name sent in `response_format` (`title`, else the file name).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Everything wrong with `answer` (empty when it is valid).
    pub fn validate(&self, answer: &Value) -> Problems {
        Problems::collect(self.validator.iter_errors(answer).map(|e| Problem {
            path: e.instance_path().as_str().to_string(),
            message: shorten(&e.to_string(), MAX_PROBLEM_CHARS),
        }))
    }

    /// OpenAI's structured-output request field for this schema.
    pub fn response_format(&self) -> Value {
        json!({
            "type": "json_schema",
            "json_schema": {"name": self.name, "schema": self.value, "strict": true},
        })
    }
}

/// OpenAI accepts `[a-zA-Z0-9_-]{1,64}` as a schema name.
fn sanitize_name(raw: &str) -> String {
    let mut out: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    while out.ends_with('_') {
        out.pop();
    }
    out
}

/// Just the `properties` keys, in document order.
#[derive(Deserialize)]
struct TopLevel {
    #[serde(default)]
    properties: Option<KeyOrder>,
}

struct KeyOrder(Vec<String>);

impl<'de> Deserialize<'de> for KeyOrder {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Keys;
        impl<'de> Visitor<'de> for Keys {
            type Value = KeyOrder;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<KeyOrder, A::Error> {
                let mut keys = Vec::new();
                while let Some(k) = map.next_key::<String>()? {
                    map.next_value::<IgnoredAny>()?;
                    keys.push(k);
                }
                Ok(KeyOrder(keys))
            }
        }
        d.deserialize_map(Keys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REVIEW: &str = r#"{
        "title": "review analysis",
        "type": "object",
        "properties": {
            "sentiment": {"enum": ["positive", "negative", "mixed"]},
            "rating": {"type": "integer", "minimum": 1, "maximum": 5},
            "recommend": {"type": "boolean"},
            "topic": {"type": "string", "maxLength": 24}
        },
        "required": ["sentiment", "rating", "recommend", "topic"],
        "additionalProperties": false
    }"#;

    fn review() -> AnswerSchema {
        AnswerSchema::parse(REVIEW, "schema.json", "schema").unwrap()
    }

    #[test]
    fn fields_keep_the_file_order_and_kinds() {
        let s = review();
        let names: Vec<&str> = s.fields().iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["sentiment", "rating", "recommend", "topic"]);
        assert!(matches!(s.fields()[0].kind, FieldKind::Enum(ref v) if v.len() == 3));
        assert_eq!(
            s.fields()[1].kind,
            FieldKind::Integer {
                range: Some((1, 5))
            }
        );
        assert_eq!(s.fields()[2].kind, FieldKind::Boolean);
        assert_eq!(s.fields()[3].kind, FieldKind::ShortString);
        assert_eq!(s.name(), "review_analysis");
    }

    #[test]
    fn validation_errors_name_the_path() {
        let s = review();
        assert!(
            s.validate(
                &json!({"sentiment": "mixed", "rating": 3, "recommend": true, "topic": "fit"})
            )
            .is_empty()
        );
        let p = s.validate(&json!({"sentiment": "great", "rating": 7, "recommend": "yes", "topic": "x", "extra": 1}));
        let text = p.inline();
        assert_eq!(p.listed.len(), 4, "{text}");
        assert!(
            text.contains("at /sentiment: \"great\" is not one of"),
            "{text}"
        );
        assert!(
            text.contains("at /rating: 7 is greater than the maximum of 5"),
            "{text}"
        );
        assert!(
            text.contains("at /recommend: \"yes\" is not of type \"boolean\""),
            "{text}"
        );
        assert!(
            text.contains("Additional properties are not allowed"),
            "{text}"
        );
        let missing = s.validate(&json!({"sentiment": "mixed", "rating": 3, "recommend": true}));
        assert_eq!(missing.inline(), "\"topic\" is a required property");
    }

    #[test]
    fn long_values_are_shortened_in_messages() {
        let s = review();
        let long = "x".repeat(5000);
        let p = s.validate(
            &json!({"sentiment": "mixed", "rating": long, "recommend": true, "topic": "a"}),
        );
        assert!(
            p.listed[0].message.chars().count() <= MAX_PROBLEM_CHARS,
            "{}",
            p.listed[0].message
        );
    }

    #[test]
    fn bad_schemas_say_what_to_fix() {
        let e = AnswerSchema::parse("{\"type\": ", "s.json", "s")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("--schema s.json: not JSON"), "{e}");
        let e = AnswerSchema::parse(r#"{"type": "array"}"#, "s.json", "s")
            .unwrap_err()
            .to_string();
        assert!(e.contains("answers are JSON objects"), "{e}");
        let e = AnswerSchema::parse(
            r#"{"type": "object", "properties": {"a": {"type": "strin"}}}"#,
            "s.json",
            "s",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("--schema s.json: not a valid JSON Schema"),
            "{e}"
        );
        let e = AnswerSchema::parse("[1]", "s.json", "s")
            .unwrap_err()
            .to_string();
        assert!(e.contains("must be a JSON object"), "{e}");
    }

    #[test]
    fn response_format_envelope() {
        let rf = review().response_format();
        assert_eq!(rf["type"], "json_schema");
        assert_eq!(rf["json_schema"]["name"], "review_analysis");
        assert_eq!(rf["json_schema"]["strict"], true);
        assert_eq!(
            rf["json_schema"]["schema"]["properties"]["rating"]["maximum"],
            5
        );
        let untitled = AnswerSchema::parse(r#"{"type":"object"}"#, "x", "my schema.v2").unwrap();
        assert_eq!(untitled.name(), "my_schema_v2");
        assert!(untitled.fields().is_empty());
    }
}
