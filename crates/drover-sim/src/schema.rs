//! A deterministic small instance of a JSON schema: the simulator's answer to `response_format`.
//!
//! Handles what structured-output requests use in practice: `type` (one or a list), `object` with
//! `properties`/`required`, `enum`, `const`, `string` (`minLength`, `maxLength`, a few `format`s;
//! `pattern` is not honoured), `integer`/`number` (`minimum`, `maximum`, exclusive bounds),
//! `boolean`, `null`, `array` (`items`, `prefixItems`, `minItems`), `anyOf`/`oneOf` (first
//! non-null branch), `allOf` (merged), and `$ref` to `#/$defs/…` or `#/definitions/…`.
//! Every declared property is filled (not only the required ones) so that answers carry content;
//! the first string generated holds the request's digest (`sim-xxxxxxxx`), keys in sorted order.

use serde_json::{Map, Value, json};

/// Deepest nesting followed (recursive `$ref`s end in `null`).
const MAX_DEPTH: usize = 24;

/// An instance of `schema` whose first string is `digest`.
pub fn instance(schema: &Value, digest: &str) -> Value {
    Generator {
        root: schema,
        digest: Some(digest.to_string()),
    }
    .value(schema, 0)
}

/// The answer to `{"type":"json_object"}`.
pub fn json_object(digest: &str) -> Value {
    json!({ "answer": digest })
}

struct Generator<'r> {
    root: &'r Value,
    /// Taken by the first free-form string generated.
    digest: Option<String>,
}

impl<'r> Generator<'r> {
    fn resolve(&self, reference: &str) -> Option<&'r Value> {
        let path = reference.strip_prefix("#/")?;
        let mut node = self.root;
        for part in path.split('/') {
            node = node.get(part.replace("~1", "/").replace("~0", "~"))?;
        }
        Some(node)
    }

    fn value(&mut self, schema: &Value, depth: usize) -> Value {
        if depth > MAX_DEPTH {
            return Value::Null;
        }
        let Some(obj) = schema.as_object() else {
            // `true` (anything) or `false` (nothing is valid): null either way.
            return Value::Null;
        };
        if let Some(r) = obj.get("$ref").and_then(Value::as_str) {
            return match self.resolve(r) {
                Some(target) => self.value(target, depth + 1),
                None => Value::Null,
            };
        }
        if let Some(c) = obj.get("const") {
            return c.clone();
        }
        if let Some(first) = obj
            .get("enum")
            .and_then(Value::as_array)
            .and_then(|e| e.first())
        {
            return first.clone();
        }
        for key in ["anyOf", "oneOf"] {
            if let Some(options) = obj.get(key).and_then(Value::as_array) {
                let pick = options
                    .iter()
                    .find(|o| o.get("type").and_then(Value::as_str) != Some("null"));
                if let Some(option) = pick.or(options.first()) {
                    return self.value(option, depth + 1);
                }
            }
        }
        if let Some(parts) = obj.get("allOf").and_then(Value::as_array) {
            let merged = self.merge_all_of(obj, parts);
            return self.typed(&merged, depth);
        }
        self.typed(obj, depth)
    }

    /// `allOf`: one schema with every branch's properties and requirements.
    fn merge_all_of(&self, obj: &Map<String, Value>, parts: &[Value]) -> Map<String, Value> {
        let mut merged = obj.clone();
        merged.remove("allOf");
        for part in parts {
            let part = match part.get("$ref").and_then(Value::as_str) {
                Some(r) => self.resolve(r).unwrap_or(part),
                None => part,
            };
            let Some(p) = part.as_object() else { continue };
            for (k, v) in p {
                match (k.as_str(), merged.get_mut(k)) {
                    ("properties", Some(Value::Object(props))) => {
                        if let Some(more) = v.as_object() {
                            props.extend(more.clone());
                        }
                    }
                    ("required", Some(Value::Array(req))) => {
                        if let Some(more) = v.as_array() {
                            req.extend(more.iter().cloned());
                        }
                    }
                    (_, None) => {
                        merged.insert(k.clone(), v.clone());
                    }
                    _ => {}
                }
            }
        }
        merged
    }

    fn typed(&mut self, obj: &Map<String, Value>, depth: usize) -> Value {
        match schema_type(obj) {
            "object" => {
                let mut out = Map::new();
                if let Some(props) = obj.get("properties").and_then(Value::as_object) {
                    for (name, sub) in props {
                        let v = self.value(sub, depth + 1);
                        out.insert(name.clone(), v);
                    }
                }
                // Required names without a declared schema still have to be present.
                for name in obj
                    .get("required")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    if let Some(name) = name.as_str() {
                        out.entry(name.to_string()).or_insert(Value::Null);
                    }
                }
                Value::Object(out)
            }
            "array" => {
                let min = obj.get("minItems").and_then(Value::as_u64).unwrap_or(0) as usize;
                let mut out = Vec::new();
                for sub in obj
                    .get("prefixItems")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    out.push(self.value(sub, depth + 1));
                }
                let items = obj.get("items").filter(|i| i.is_object());
                while out.len() < min {
                    out.push(
                        items
                            .map(|i| self.value(i, depth + 1))
                            .unwrap_or(Value::Null),
                    );
                }
                Value::Array(out)
            }
            "string" => Value::String(self.string(obj)),
            "integer" => json!(number_in(obj).ceil() as i64),
            "number" => json!(number_in(obj)),
            "boolean" => Value::Bool(false),
            _ => Value::Null,
        }
    }

    fn string(&mut self, obj: &Map<String, Value>) -> String {
        let min = obj.get("minLength").and_then(Value::as_u64).unwrap_or(0) as usize;
        let max = obj
            .get("maxLength")
            .and_then(Value::as_u64)
            .map(|m| m as usize);
        let mut s = match obj.get("format").and_then(Value::as_str) {
            Some("date-time") => "2024-01-01T00:00:00Z".to_string(),
            Some("date") => "2024-01-01".to_string(),
            Some("time") => "00:00:00Z".to_string(),
            Some("email") => "sim@example.com".to_string(),
            Some("uri" | "url") => "https://example.com/".to_string(),
            Some("uuid") => "00000000-0000-4000-8000-000000000000".to_string(),
            // The digest goes to the first string long enough to hold it whole.
            _ => match self
                .digest
                .take_if(|d| max.is_none_or(|m| m >= d.chars().count()))
            {
                Some(digest) => digest,
                None => "sim".to_string(),
            },
        };
        while s.chars().count() < min {
            s.push('x');
        }
        if let Some(max) = max {
            s = s.chars().take(max).collect();
        }
        s
    }
}

/// The schema's type: the first non-null of `type`, or inferred from its keywords.
fn schema_type(obj: &Map<String, Value>) -> &str {
    match obj.get("type") {
        Some(Value::String(t)) => t,
        Some(Value::Array(types)) => {
            let names: Vec<&str> = types.iter().filter_map(Value::as_str).collect();
            names
                .iter()
                .find(|&&t| t != "null")
                .or(names.first())
                .copied()
                .unwrap_or("null")
        }
        _ if obj.contains_key("properties") || obj.contains_key("required") => "object",
        _ if obj.contains_key("items") || obj.contains_key("prefixItems") => "array",
        _ => "object",
    }
}

/// 0 moved into the schema's bounds.
fn number_in(obj: &Map<String, Value>) -> f64 {
    let get = |k: &str| obj.get(k).and_then(Value::as_f64);
    let mut x = 0.0f64;
    if let Some(min) = get("minimum") {
        x = x.max(min);
    }
    if let Some(min) = get("exclusiveMinimum") {
        x = x.max(min + 1.0);
    }
    if let Some(max) = get("maximum") {
        x = x.min(max);
    }
    if let Some(max) = get("exclusiveMaximum") {
        x = x.min(max - 1.0);
    }
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_fill_every_property_and_put_the_digest_first() {
        let schema = json!({
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "tag": {"type": "string", "minLength": 3},
                "age": {"type": "integer", "minimum": 18, "maximum": 99},
                "score": {"type": "number", "exclusiveMinimum": 0.5},
                "ok": {"type": "boolean"},
                "kind": {"enum": ["a", "b"]},
                "version": {"const": 2},
                "items": {"type": "array", "items": {"type": "integer"}, "minItems": 2},
                "maybe": {"anyOf": [{"type": "null"}, {"type": "string", "maxLength": 2}]}
            },
            "required": ["name", "extra"]
        });
        let v = instance(&schema, "sim-0123abcd");
        assert_eq!(
            v,
            json!({"age": 18, "extra": null, "items": [0, 0], "kind": "a", "maybe": "si", "name": "sim-0123abcd",
                   "ok": false, "score": 1.5, "tag": "sim", "version": 2})
        );
    }

    #[test]
    fn refs_all_of_and_recursion() {
        let schema = json!({
            "$defs": {"Node": {"type": "object", "properties": {"label": {"type": "string"}, "next": {"$ref": "#/$defs/Node"}}}},
            "definitions": {"Base": {"properties": {"id": {"type": "integer"}}, "required": ["id"]}},
            "type": "object",
            "properties": {
                "node": {"$ref": "#/$defs/Node"},
                "merged": {"allOf": [{"$ref": "#/definitions/Base"}, {"properties": {"when": {"type": "string", "format": "date"}}}]},
                "pair": {"type": "array", "prefixItems": [{"type": "string"}, {"type": ["integer", "null"]}]}
            }
        });
        let v = instance(&schema, "sim-1");
        assert_eq!(v["merged"], json!({"id": 0, "when": "2024-01-01"}));
        assert_eq!(v["node"]["label"], "sim-1");
        assert_eq!(v["pair"], json!(["sim", 0]));
        // The recursive chain ends in null instead of overflowing.
        let mut depth = 0;
        let mut node = &v["node"];
        while node.is_object() {
            node = &node["next"];
            depth += 1;
        }
        assert!(depth > 3 && depth < 30, "{depth}");
    }
}
