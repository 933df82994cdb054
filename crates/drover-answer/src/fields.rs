//! The answer fields that become table columns and summary entries, and how each is summarised:
//! counts per value for closed sets (enums, booleans, small integer ranges, short strings),
//! min/mean/max for numbers, presence only for free text and nested values.

use serde_json::Value;

use crate::error::AnswerError;

/// A string field is counted per value when the schema caps it at this many characters
/// (`maxLength`); longer free text would fill the summary with one count per answer.
pub const SHORT_STRING: u64 = 64;

/// An integer field is also counted per value when its declared range has at most this many
/// values (a 1–5 rating, not a price).
pub const COUNTED_RANGE: i64 = 20;

/// One answer field.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    /// Top-level key in the answer object.
    pub name: String,
    /// How it is summarised.
    pub kind: FieldKind,
}

/// How a field is summarised, from its schema.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldKind {
    /// `enum`/`const`: counted, every declared value listed even when never seen.
    Enum(Vec<Value>),
    /// Counted (`true`, `false`).
    Boolean,
    /// min/mean/max; counted too when the declared range is small (`range`).
    Integer {
        /// `minimum..=maximum` when both are declared and span at most [`COUNTED_RANGE`] values.
        range: Option<(i64, i64)>,
    },
    /// min/mean/max.
    Number,
    /// A string capped at [`SHORT_STRING`] characters: counted.
    ShortString,
    /// Free text: presence only.
    Text,
    /// Objects and arrays: presence only.
    Nested,
    /// Undeclared (`--fields` without `--schema`): numbers get min/mean/max, booleans and strings
    /// up to [`SHORT_STRING`] characters are counted.
    Any,
}

impl FieldKind {
    /// The kind a property schema declares; `root` resolves local `$ref`s.
    pub fn of(prop: &Value, root: &Value) -> FieldKind {
        let prop = resolve(prop, root, 0);
        if let Some(values) = prop.get("enum").and_then(Value::as_array) {
            return FieldKind::Enum(values.iter().filter(|v| !v.is_null()).cloned().collect());
        }
        if let Some(c) = prop.get("const") {
            return FieldKind::Enum(vec![c.clone()]);
        }
        let types: Vec<&str> = match prop.get("type") {
            Some(Value::String(t)) => vec![t.as_str()],
            Some(Value::Array(ts)) => ts
                .iter()
                .filter_map(Value::as_str)
                .filter(|t| *t != "null")
                .collect(),
            _ => Vec::new(),
        };
        match types.as_slice() {
            ["boolean"] => FieldKind::Boolean,
            ["integer"] => {
                let bound = |k: &str| prop.get(k).and_then(Value::as_f64);
                let range = match (bound("minimum"), bound("maximum")) {
                    (Some(lo), Some(hi)) if hi >= lo && hi - lo < COUNTED_RANGE as f64 => {
                        Some((lo.ceil() as i64, hi.floor() as i64))
                    }
                    _ => None,
                };
                FieldKind::Integer { range }
            }
            ["number"] | ["integer", "number"] | ["number", "integer"] => FieldKind::Number,
            ["string"] => match prop.get("maxLength").and_then(Value::as_u64) {
                Some(n) if n <= SHORT_STRING => FieldKind::ShortString,
                _ => FieldKind::Text,
            },
            ["object"] | ["array"] => FieldKind::Nested,
            _ => FieldKind::Any,
        }
    }

    /// Whether values are counted.
    pub fn counted(&self) -> bool {
        matches!(
            self,
            FieldKind::Enum(_)
                | FieldKind::Boolean
                | FieldKind::Integer { range: Some(_) }
                | FieldKind::ShortString
                | FieldKind::Any
        )
    }

    /// Whether min/mean/max are kept.
    pub fn numeric(&self) -> bool {
        matches!(
            self,
            FieldKind::Integer { .. } | FieldKind::Number | FieldKind::Any
        )
    }

    /// Values listed in the counts from the start (seen or not).
    pub fn declared_values(&self) -> Vec<String> {
        match self {
            FieldKind::Enum(values) => values.iter().map(value_key).collect(),
            FieldKind::Boolean => vec!["true".into(), "false".into()],
            FieldKind::Integer {
                range: Some((lo, hi)),
            } => (*lo..=*hi).map(|i| i.to_string()).collect(),
            _ => Vec::new(),
        }
    }
}

/// The key a value is counted under: strings as they are, everything else as JSON text.
pub fn value_key(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Follows the wrappers schema generators put around a property: a local `$ref`, a one-item
/// `allOf`, and `anyOf`/`oneOf` with a `null` branch (optional fields).
fn resolve<'a>(prop: &'a Value, root: &'a Value, depth: usize) -> &'a Value {
    if depth > 8 {
        return prop;
    }
    let target = prop
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix('#'));
    if let Some(t) = target.and_then(|t| root.pointer(t)) {
        return resolve(t, root, depth + 1);
    }
    if let Some([only]) = prop
        .get("allOf")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
    {
        return resolve(only, root, depth + 1);
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(options) = prop.get(key).and_then(Value::as_array) {
            let real: Vec<&Value> = options
                .iter()
                .filter(|o| o.get("type").and_then(Value::as_str) != Some("null"))
                .collect();
            if let [only] = real.as_slice() {
                return resolve(only, root, depth + 1);
            }
        }
    }
    prop
}

/// `--fields a,b,c`: the names, checked against the schema's fields when there is one.
pub fn select(given: &str, schema_fields: Option<&[Field]>) -> Result<Vec<Field>, AnswerError> {
    let invalid = |message: String| AnswerError::FieldsInvalid {
        given: given.to_string(),
        message,
    };
    let mut out: Vec<Field> = Vec::new();
    for name in given.split(',').map(str::trim) {
        if name.is_empty() {
            return Err(invalid(
                "empty field name; give names separated by commas, e.g. --fields sentiment,rating"
                    .into(),
            ));
        }
        if out.iter().any(|f| f.name == name) {
            return Err(invalid(format!("{name:?} is named twice")));
        }
        let field = match schema_fields {
            Some(fields) => fields
                .iter()
                .find(|f| f.name == name)
                .cloned()
                .ok_or_else(|| AnswerError::UnknownField {
                    field: name.to_string(),
                    known: if fields.is_empty() {
                        "it declares no properties".into()
                    } else {
                        fields
                            .iter()
                            .map(|f| f.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    },
                })?,
            None => Field {
                name: name.to_string(),
                kind: FieldKind::Any,
            },
        };
        out.push(field);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn kind(prop: Value) -> FieldKind {
        FieldKind::of(&prop, &json!({}))
    }

    #[test]
    fn kinds_from_property_schemas() {
        assert_eq!(kind(json!({"type": "boolean"})), FieldKind::Boolean);
        assert_eq!(
            kind(json!({"type": "integer", "minimum": 1, "maximum": 5})),
            FieldKind::Integer {
                range: Some((1, 5))
            }
        );
        assert_eq!(
            kind(json!({"type": "integer", "minimum": 0, "maximum": 1000})),
            FieldKind::Integer { range: None }
        );
        assert_eq!(kind(json!({"type": ["number", "null"]})), FieldKind::Number);
        assert_eq!(
            kind(json!({"type": "string", "maxLength": 24})),
            FieldKind::ShortString
        );
        assert_eq!(kind(json!({"type": "string"})), FieldKind::Text);
        assert_eq!(
            kind(json!({"type": "array", "items": {}})),
            FieldKind::Nested
        );
        assert_eq!(kind(json!({})), FieldKind::Any);
        assert_eq!(
            kind(json!({"enum": ["a", null, 2]})),
            FieldKind::Enum(vec![json!("a"), json!(2)])
        );
        assert_eq!(
            kind(json!({"const": true})),
            FieldKind::Enum(vec![json!(true)])
        );
    }

    #[test]
    fn refs_and_optional_wrappers_are_followed() {
        let root = json!({"$defs": {"Mood": {"enum": ["up", "down"]}}});
        let wrapped = json!({"anyOf": [{"allOf": [{"$ref": "#/$defs/Mood"}]}, {"type": "null"}]});
        assert_eq!(
            FieldKind::of(&wrapped, &root),
            FieldKind::Enum(vec![json!("up"), json!("down")])
        );
    }

    #[test]
    fn declared_values_are_listed_up_front() {
        assert_eq!(
            FieldKind::Integer {
                range: Some((1, 3))
            }
            .declared_values(),
            ["1", "2", "3"]
        );
        assert_eq!(
            FieldKind::Enum(vec![json!("a"), json!(1)]).declared_values(),
            ["a", "1"]
        );
        assert!(FieldKind::Number.declared_values().is_empty());
    }

    #[test]
    fn select_checks_names_against_the_schema() {
        let schema = vec![
            Field {
                name: "a".into(),
                kind: FieldKind::Boolean,
            },
            Field {
                name: "b".into(),
                kind: FieldKind::Number,
            },
        ];
        let picked = select("b, a", Some(&schema)).unwrap();
        assert_eq!(
            picked.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(),
            ["b", "a"]
        );
        assert_eq!(picked[0].kind, FieldKind::Number);
        let e = select("a,c", Some(&schema)).unwrap_err().to_string();
        assert_eq!(
            e,
            "--fields: \"c\" is not a property of the --schema (a, b); name fields from the schema's \"properties\""
        );
        assert!(
            select("a,,b", None)
                .unwrap_err()
                .to_string()
                .contains("empty field name")
        );
        assert!(
            select("a,a", None)
                .unwrap_err()
                .to_string()
                .contains("named twice")
        );
        assert_eq!(select("x", None).unwrap()[0].kind, FieldKind::Any);
    }
}
