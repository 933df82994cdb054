//! The request that asks again: the conversation so far, the model's bad answer, and what was
//! wrong with it. Chat bodies get an `assistant` and a `user` message; `/v1/completions` bodies
//! get both appended to the prompt. Earlier rounds stay in the conversation, so a model that
//! repeats a mistake sees every correction.

use bytes::Bytes;
use serde_json::{Map, Value};

use crate::problems::Problems;
use crate::text::shorten;

/// How every repair message starts (test servers look for it).
pub const REPAIR_LEAD: &str = "Your previous answer could not be used";

/// Bad answers echoed back are cut to this many characters: a model that rambled to
/// `max_tokens` does not need all of it repeated to be corrected.
const MAX_ECHO: usize = 4000;

/// Schemas up to this size are quoted in the repair message; larger ones only named.
const MAX_QUOTED_SCHEMA: usize = 4000;

/// What the answer should have been, for the repair message.
#[derive(Debug, Clone)]
pub enum Expected {
    /// An object matching this schema (compact JSON text).
    Schema(String),
    /// An object; these fields are wanted (`--fields` without `--schema`).
    Object(Vec<String>),
}

impl Expected {
    /// From a schema value (quoted when small enough).
    pub fn schema(schema: &Value) -> Expected {
        Expected::Schema(schema.to_string())
    }
}

/// The user message listing `problems` and asking for a valid object.
pub fn message(problems: &Problems, expected: &Expected) -> String {
    let mut m = String::from(REPAIR_LEAD);
    match expected {
        Expected::Schema(schema) => {
            m.push_str(": it does not match the required JSON schema.\n");
            m.push_str(&problems.bullets());
            if schema.len() <= MAX_QUOTED_SCHEMA {
                m.push_str(
                    "Reply with only a JSON object that matches this schema, and no other text:\n",
                );
                m.push_str(schema);
            } else {
                m.push_str(
                    "Reply with only a JSON object that matches the schema, and no other text.",
                );
            }
        }
        Expected::Object(fields) => {
            m.push_str(": it is not a JSON object.\n");
            m.push_str(&problems.bullets());
            m.push_str(&format!(
                "Reply with only a JSON object with the fields {}, and no other text.",
                fields.join(", ")
            ));
        }
    }
    m
}

/// Why a body cannot be extended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot ask for a repair: {0}")]
pub struct Unrepairable(pub String);

/// `body` with the bad `answer` and the `note` (from [`message`]) added to the conversation.
pub fn repaired_body(body: &[u8], answer: &str, note: &str) -> Result<Bytes, Unrepairable> {
    let mut obj: Map<String, Value> = serde_json::from_slice(body)
        .map_err(|e| Unrepairable(format!("the request body is not a JSON object ({e})")))?;
    let answer = shorten(answer, MAX_ECHO);
    if let Some(messages) = obj.get_mut("messages") {
        let Value::Array(list) = messages else {
            return Err(Unrepairable("\"messages\" is not an array".into()));
        };
        list.push(chat("assistant", &answer));
        list.push(chat("user", note));
    } else if let Some(prompt) = obj.get_mut("prompt") {
        // Completions: the model's text continued the prompt; the correction follows it.
        let tail = format!("{answer}\n\n{note}\n\n");
        match prompt {
            Value::String(p) => p.push_str(&tail),
            Value::Array(items) if items.len() == 1 && items[0].is_string() => {
                if let Value::String(p) = &mut items[0] {
                    p.push_str(&tail);
                }
            }
            _ => {
                return Err(Unrepairable(
                    "the prompt is not text (token ids or several prompts)".into(),
                ));
            }
        }
    } else {
        return Err(Unrepairable(
            "the request has neither \"messages\" nor \"prompt\"".into(),
        ));
    }
    Ok(Bytes::from(
        serde_json::to_vec(&obj).expect("a JSON map serializes"),
    ))
}

fn chat(role: &str, content: &str) -> Value {
    let mut m = Map::new();
    m.insert("role".into(), Value::String(role.into()));
    m.insert("content".into(), Value::String(content.into()));
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::problems::Problem;
    use serde_json::json;

    fn problems() -> Problems {
        Problems::one(Problem {
            path: "/rating".into(),
            message: "7 is greater than the maximum of 5".into(),
        })
    }

    #[test]
    fn message_lists_problems_and_quotes_the_schema() {
        let m = message(&problems(), &Expected::schema(&json!({"type": "object"})));
        assert_eq!(
            m,
            "Your previous answer could not be used: it does not match the required JSON schema.\n\
             - at /rating: 7 is greater than the maximum of 5\n\
             Reply with only a JSON object that matches this schema, and no other text:\n\
             {\"type\":\"object\"}"
        );
        let big = json!({"description": "x".repeat(MAX_QUOTED_SCHEMA)});
        assert!(!message(&problems(), &Expected::schema(&big)).contains("xxxx"));
        let obj = message(&problems(), &Expected::Object(vec!["a".into(), "b".into()]));
        assert!(
            obj.starts_with(REPAIR_LEAD)
                && obj.ends_with("with the fields a, b, and no other text."),
            "{obj}"
        );
    }

    #[test]
    fn chat_body_gets_assistant_and_user_turns() {
        let body = json!({"model": "m", "messages": [{"role": "user", "content": "rate it"}], "max_tokens": 64});
        let out = repaired_body(
            &serde_json::to_vec(&body).unwrap(),
            "{\"rating\": 7}",
            "fix it",
        )
        .unwrap();
        let out: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            out["messages"],
            json!([
                {"role": "user", "content": "rate it"},
                {"role": "assistant", "content": "{\"rating\": 7}"},
                {"role": "user", "content": "fix it"},
            ])
        );
        assert_eq!(
            (out["model"].as_str(), out["max_tokens"].as_u64()),
            (Some("m"), Some(64))
        );
        // A second round keeps the first.
        let again =
            repaired_body(&serde_json::to_vec(&out).unwrap(), "still bad", "fix it").unwrap();
        let again: Value = serde_json::from_slice(&again).unwrap();
        assert_eq!(again["messages"].as_array().unwrap().len(), 5);
    }

    #[test]
    fn completions_prompt_is_extended() {
        let body = json!({"prompt": "Review: meh\nJSON:", "max_tokens": 32});
        let out: Value = serde_json::from_slice(
            &repaired_body(&serde_json::to_vec(&body).unwrap(), " {bad", "fix it").unwrap(),
        )
        .unwrap();
        assert_eq!(out["prompt"], "Review: meh\nJSON: {bad\n\nfix it\n\n");
        let listed = json!({"prompt": ["p"]});
        let out: Value = serde_json::from_slice(
            &repaired_body(&serde_json::to_vec(&listed).unwrap(), "a", "b").unwrap(),
        )
        .unwrap();
        assert_eq!(out["prompt"], json!(["pa\n\nb\n\n"]));
    }

    #[test]
    fn bodies_that_cannot_be_extended_say_why() {
        let tokens = serde_json::to_vec(&json!({"prompt": [1, 2, 3]})).unwrap();
        assert!(
            repaired_body(&tokens, "a", "b")
                .unwrap_err()
                .0
                .contains("not text")
        );
        let neither = serde_json::to_vec(&json!({"input": "x"})).unwrap();
        assert!(
            repaired_body(&neither, "a", "b")
                .unwrap_err()
                .0
                .contains("neither")
        );
    }

    #[test]
    fn long_answers_are_cut_when_echoed() {
        let body = serde_json::to_vec(&json!({"messages": []})).unwrap();
        let out: Value =
            serde_json::from_slice(&repaired_body(&body, &"y".repeat(10_000), "n").unwrap())
                .unwrap();
        assert_eq!(
            out["messages"][0]["content"]
                .as_str()
                .unwrap()
                .chars()
                .count(),
            MAX_ECHO
        );
    }
}
