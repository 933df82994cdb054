//! `response_format` as a GBNF grammar for llama.cpp's grammar sampler.
//!
//! The grammar masks every token that would make the output invalid, so even a 135M model can
//! only produce text the schema accepts; the model still decides when a value is complete, so a
//! generation cut by `max_tokens` can end mid-object (finish_reason "length").
//!
//! Conversion uses llama.cpp's own `json_schema_to_grammar` (the code behind llama-server's
//! `json_schema`), which covers far more of JSON Schema than a home-grown subset: `$ref`/`$defs`,
//! `anyOf`/`oneOf`/`allOf`, `enum`/`const`, string formats and lengths, numeric bounds,
//! `minItems`/`maxItems`, `additionalProperties`, `pattern`.

use drover_server::{EngineError as Refusal, ResponseFormat};

/// The grammar for `format`, or a 400 saying why the schema cannot be enforced.
pub fn grammar_for(format: &ResponseFormat) -> Result<String, Refusal> {
    match format {
        // JSON mode: any object. `{"type":"object"}` without properties converts to a grammar for
        // an arbitrary JSON object (free keys, any JSON values).
        ResponseFormat::JsonObject => convert(&serde_json::json!({"type": "object"})),
        ResponseFormat::JsonSchema(schema) => convert(unwrap_schema(schema)),
    }
}

/// Accepts both the bare schema and OpenAI's `json_schema` envelope (`{"name", "schema",
/// "strict"}`): neither `name` nor `schema` is a JSON Schema keyword, so the envelope is
/// unambiguous.
fn unwrap_schema(value: &serde_json::Value) -> &serde_json::Value {
    match value.get("schema") {
        Some(inner) if value.get("name").is_some() || value.get("strict").is_some() => inner,
        _ => value,
    }
}

fn convert(schema: &serde_json::Value) -> Result<String, Refusal> {
    if !(schema.is_object() || schema.is_boolean()) {
        return Err(Refusal::BadRequest(format!(
            "response_format json_schema must be a JSON Schema object, got {}",
            kind(schema)
        )));
    }
    llama_cpp_2::json_schema_to_grammar(&schema.to_string()).map_err(|e| {
        Refusal::BadRequest(format!(
            "response_format json_schema cannot be enforced: llama.cpp's schema converter rejected it ({e}); \
             check $ref targets and keyword types"
        ))
    })
}

fn kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema(value: serde_json::Value) -> Result<String, Refusal> {
        grammar_for(&ResponseFormat::JsonSchema(value))
    }

    /// The body of the rule `name ::= …` (one line in llama.cpp's output).
    fn rule<'a>(grammar: &'a str, name: &str) -> &'a str {
        let prefix = format!("{name} ::= ");
        grammar
            .lines()
            .find_map(|l| l.strip_prefix(prefix.as_str()))
            .unwrap_or_else(|| panic!("no rule {name} in:\n{grammar}"))
    }

    #[test]
    fn json_object_is_a_generic_object() {
        let g = grammar_for(&ResponseFormat::JsonObject).unwrap();
        assert_eq!(rule(&g, "root"), "object", "{g}");
        assert!(rule(&g, "object").starts_with("\"{\""), "{g}");
        // Values may be any JSON: strings, numbers, arrays, nested objects, literals.
        for needed in ["string", "number", "array", "object", "boolean", "null"] {
            assert!(g.contains(needed), "{needed} missing:\n{g}");
        }
    }

    #[test]
    fn properties_required_and_enum_become_rules() {
        let g = schema(json!({
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "unit": {"enum": ["celsius", "fahrenheit"]},
                "days": {"type": "integer", "minimum": 1, "maximum": 7}
            },
            "required": ["city", "unit"],
            "additionalProperties": false
        }))
        .unwrap();
        let root = rule(&g, "root");
        // Property names appear as literal keys in the root rule, in order.
        let (city, unit) = (root.find("city").unwrap(), root.find("unit").unwrap());
        assert!(city < unit, "{root}");
        assert!(g.contains("celsius") && g.contains("fahrenheit"), "{g}");
        // `days` is optional: it sits in an optional group ( … )?.
        assert!(root.contains(")?"), "{root}");
    }

    #[test]
    fn refs_to_defs_any_of_and_arrays_are_supported() {
        let g = schema(json!({
            "$defs": {"point": {"type": "object", "properties": {"x": {"type": "number"}, "y": {"type": "number"}}, "required": ["x", "y"]}},
            "type": "object",
            "properties": {
                "points": {"type": "array", "items": {"$ref": "#/$defs/point"}, "minItems": 1},
                "label": {"anyOf": [{"type": "string"}, {"type": "null"}]},
                "ok": {"type": "boolean"},
                "kind": {"const": "polygon"}
            },
            "required": ["points", "label", "ok", "kind"]
        }))
        .unwrap();
        assert!(g.contains("point"), "{g}");
        assert!(g.contains("polygon"), "{g}");
        assert!(g.contains("null"), "{g}");
    }

    #[test]
    fn the_openai_envelope_is_unwrapped() {
        let inner = json!({"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]});
        let wrapped = json!({"name": "reply", "strict": true, "schema": inner.clone()});
        assert_eq!(schema(wrapped).unwrap(), schema(inner).unwrap());
        // A schema with a property called "schema" is not an envelope.
        let g = schema(json!({"type": "object", "properties": {"schema": {"type": "string"}}, "required": ["schema"]})).unwrap();
        assert!(g.contains("schema"), "{g}");
    }

    #[test]
    fn unusable_schemas_are_400s() {
        let err = schema(json!("object")).unwrap_err();
        assert!(matches!(err, Refusal::BadRequest(_)));
        assert!(
            err.to_string()
                .contains("must be a JSON Schema object, got a string"),
            "{err}"
        );
        let err =
            schema(json!({"type": "object", "properties": {"a": {"$ref": "#/$defs/missing"}}}))
                .unwrap_err();
        assert!(err.to_string().contains("cannot be enforced"), "{err}");
    }
}
