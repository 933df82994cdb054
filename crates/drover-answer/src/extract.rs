//! From a backend's response to the answer object: the answer text (`choices[0].message.content`
//! for chat, `choices[0].text` for completions), then the first JSON object in it.
//!
//! Models wrap JSON in prose and ```json fences, so the object is found by a balanced-brace scan
//! that skips braces inside JSON strings. Fenced blocks are searched first: prose before a fence
//! may hold braces of its own ("the format is {…}"). A balanced region that does not parse is
//! skipped whole, never searched inside: the object nested in a broken answer is not the answer.
//! Reasoning models served without a reasoning parser put their thinking in the content, inside
//! `<think>…</think>`; only the text after it is searched, so a draft object is not taken.

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::problems::Problem;

/// Balanced regions tried per answer, a bound on the work a pathological answer can cause.
const MAX_CANDIDATES: usize = 64;

/// The text of an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnswerText {
    /// What the model wrote.
    pub text: String,
    /// Whether it stopped at `max_tokens` (`finish_reason: "length"`).
    pub cut: bool,
}

#[derive(Deserialize)]
struct Response {
    #[serde(default)]
    choices: Vec<Choice>,
}

#[derive(Deserialize)]
struct Choice {
    #[serde(default)]
    message: Option<Message>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct Message {
    #[serde(default)]
    content: Option<Value>,
}

/// The first choice's text, or what is missing.
pub fn answer_text(response: &RawValue) -> Result<AnswerText, Problem> {
    let r: Response = serde_json::from_str(response.get()).map_err(|e| {
        Problem::whole(format!(
            "the response is not a chat or completions body ({e})"
        ))
    })?;
    let Some(choice) = r.choices.into_iter().next() else {
        return Err(Problem::whole("the response has no choices"));
    };
    let cut = choice.finish_reason.as_deref() == Some("length");
    let text = match (choice.message, choice.text) {
        (
            Some(Message {
                content: Some(Value::String(s)),
            }),
            _,
        ) => s,
        (
            Some(Message {
                content: Some(Value::Array(parts)),
            }),
            _,
        ) => {
            // Content parts: the text ones, joined.
            parts
                .iter()
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect::<Vec<_>>()
                .join("")
        }
        (_, Some(t)) => t,
        _ => {
            return Err(Problem::whole(
                "the answer has no text (choices[0].message.content is empty)",
            ));
        }
    };
    Ok(AnswerText { text, cut })
}

/// Why no object came out of a text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoObject {
    /// There is no `{` at all.
    Absent,
    /// An object starts but the text ends inside it.
    Unclosed,
    /// A balanced `{…}` is there but is not JSON (the parser's message).
    Invalid(String),
}

impl NoObject {
    /// As a problem for the model and the record; `cut` adds why an object may be unfinished.
    pub fn problem(&self, cut: bool) -> Problem {
        let why = if cut {
            " (the answer was cut at max_tokens: raise --max-tokens or the task's max_tokens)"
        } else {
            ""
        };
        Problem::whole(match self {
            NoObject::Absent => format!("the answer holds no JSON object{why}"),
            NoObject::Unclosed => {
                format!("the JSON object is not closed: the answer ends inside it{why}")
            }
            NoObject::Invalid(e) => format!("the JSON object is not valid JSON: {e}{why}"),
        })
    }
}

/// The first JSON object in `text`: in a fenced block if there is one, else anywhere.
pub fn first_object(text: &str) -> Result<Map<String, Value>, NoObject> {
    let text = text
        .rfind("</think>")
        .map_or(text, |end| &text[end + "</think>".len()..]);
    let mut first_failure: Option<NoObject> = None;
    for block in fenced_blocks(text) {
        match scan(block) {
            Ok(obj) => return Ok(obj),
            Err(e) => {
                first_failure.get_or_insert(e);
            }
        }
    }
    match scan(text) {
        Ok(obj) => Ok(obj),
        // A fence's own failure is the more telling one ("```json {broken```").
        Err(e) => Err(first_failure
            .filter(|f| *f != NoObject::Absent)
            .unwrap_or(e)),
    }
}

/// Contents of ``` fences, the info string (`json`) skipped; an unclosed fence runs to the end.
fn fenced_blocks(text: &str) -> Vec<&str> {
    let mut blocks = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find("```") {
        let after = &rest[open + 3..];
        let body_start = after.find('\n').map_or(after.len(), |n| n + 1);
        // "```{...}```" on one line: no info string, the body starts right after the fence.
        let body_start = if after[..body_start].trim_start().starts_with('{') {
            0
        } else {
            body_start
        };
        let body = &after[body_start..];
        match body.find("```") {
            Some(close) => {
                blocks.push(&body[..close]);
                rest = &body[close + 3..];
            }
            None => {
                blocks.push(body);
                break;
            }
        }
    }
    blocks
}

/// Balanced `{…}` regions in order; the first that parses as an object wins.
fn scan(text: &str) -> Result<Map<String, Value>, NoObject> {
    let bytes = text.as_bytes();
    let mut at = 0;
    let mut failure = NoObject::Absent;
    let mut tried = 0;
    while let Some(offset) = text[at..].find('{') {
        let start = at + offset;
        let Some(end) = balanced_end(&bytes[start..]) else {
            // Everything after `start` is inside the unfinished object.
            return Err(match failure {
                NoObject::Absent => NoObject::Unclosed,
                earlier => earlier,
            });
        };
        let candidate = &text[start..start + end];
        match serde_json::from_str::<Map<String, Value>>(candidate) {
            Ok(obj) => return Ok(obj),
            Err(e) => {
                if failure == NoObject::Absent {
                    failure = NoObject::Invalid(e.to_string());
                }
            }
        }
        tried += 1;
        if tried >= MAX_CANDIDATES {
            break;
        }
        at = start + end;
    }
    Err(failure)
}

/// Length of the balanced object starting at `b[0] == b'{'`, braces in strings ignored.
fn balanced_end(b: &[u8]) -> Option<usize> {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for (i, &c) in b.iter().enumerate() {
        if in_string {
            match c {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            b'"' => in_string = true,
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i + 1);
                }
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(text: &str) -> Value {
        Value::Object(first_object(text).unwrap_or_else(|e| panic!("{text:?}: {e:?}")))
    }

    #[test]
    fn bare_object_and_prose_around_it() {
        assert_eq!(obj(r#"{"a": 1}"#), json!({"a": 1}));
        assert_eq!(
            obj("Sure! Here it is: {\"a\": true} Hope that helps."),
            json!({"a": true})
        );
    }

    #[test]
    fn fences_with_and_without_info_string() {
        assert_eq!(obj("```json\n{\"a\": 1}\n```"), json!({"a": 1}));
        assert_eq!(
            obj("Result:\n```\n{\"b\": [1, 2]}\n```\n"),
            json!({"b": [1, 2]})
        );
        assert_eq!(obj("```{\"c\": null}```"), json!({"c": null}));
        // Prose braces before the fence are not the answer.
        assert_eq!(
            obj("Format is {sentiment}.\n```json\n{\"sentiment\": \"mixed\"}\n```"),
            json!({"sentiment": "mixed"})
        );
    }

    #[test]
    fn nested_braces_and_braces_in_strings() {
        assert_eq!(
            obj(r#"{"a": {"b": {"c": 1}}, "d": 2} trailing }"#),
            json!({"a": {"b": {"c": 1}}, "d": 2})
        );
        assert_eq!(
            obj(r#"{"t": "a } brace and a { brace", "q": "say \"}\""}"#),
            json!({"t": "a } brace and a { brace", "q": "say \"}\""})
        );
    }

    #[test]
    fn a_broken_object_is_skipped_whole_not_searched_inside() {
        // The inner {"x": 1} belongs to the broken answer; the next object is the answer.
        assert_eq!(
            obj(r#"{name: {"x": 1}} then {"name": "ok"}"#),
            json!({"name": "ok"})
        );
        assert_eq!(
            first_object(r#"{name: {"x": 1}}"#).unwrap_err(),
            NoObject::Invalid("key must be a string at line 1 column 2".into())
        );
    }

    #[test]
    fn thinking_is_skipped() {
        assert_eq!(
            obj("<think>maybe {\"a\": 1}?</think>\n{\"a\": 2}"),
            json!({"a": 2})
        );
        assert_eq!(
            first_object("<think>{\"a\": 1}</think> no answer"),
            Err(NoObject::Absent)
        );
    }

    #[test]
    fn no_object_unclosed_and_invalid_are_told_apart() {
        assert_eq!(
            first_object("I think it is positive."),
            Err(NoObject::Absent)
        );
        assert_eq!(
            first_object(r#"{"a": {"b": 1}, "c": "#),
            Err(NoObject::Unclosed)
        );
        assert_eq!(
            first_object("```json\n{\"a\": 1,\n"),
            Err(NoObject::Unclosed)
        );
        assert!(matches!(
            first_object("{'a': 1}"),
            Err(NoObject::Invalid(_))
        ));
        let p = NoObject::Unclosed.problem(true).to_string();
        assert!(p.contains("not closed") && p.contains("max_tokens"), "{p}");
    }

    #[test]
    fn answer_text_from_chat_and_completions() {
        let raw = |v: Value| serde_json::value::to_raw_value(&v).unwrap();
        let chat = raw(
            json!({"choices": [{"message": {"role": "assistant", "content": "{}"}, "finish_reason": "stop"}]}),
        );
        assert_eq!(
            answer_text(&chat).unwrap(),
            AnswerText {
                text: "{}".into(),
                cut: false
            }
        );
        let cmpl = raw(json!({"choices": [{"text": "{\"a\"", "finish_reason": "length"}]}));
        assert_eq!(
            answer_text(&cmpl).unwrap(),
            AnswerText {
                text: "{\"a\"".into(),
                cut: true
            }
        );
        let empty = raw(json!({"choices": [{"message": {"role": "assistant", "content": null}}]}));
        assert!(answer_text(&empty).unwrap_err().message.contains("no text"));
        assert!(
            answer_text(&raw(json!({"choices": []})))
                .unwrap_err()
                .message
                .contains("no choices")
        );
    }
}
