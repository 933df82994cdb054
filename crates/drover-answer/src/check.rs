//! The [`AnswerCheck`] the dispatcher runs on every answer (off its loop): find the JSON object,
//! validate it, and accept it, ask again, or give up.

use std::sync::Arc;

use bytes::Bytes;
use drover_sched::{AnswerCheck, Verdict};
use drover_types::Task;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::extract::{answer_text, first_object};
use crate::problems::Problems;
use crate::repair::{Expected, message, repaired_body};
use crate::schema::AnswerSchema;
use crate::text::shorten;

/// The last answer is quoted in an `invalid_answer` record up to this many characters.
pub const MAX_QUOTED_ANSWER: usize = 1000;

/// What makes an answer acceptable.
#[derive(Debug, Clone)]
pub enum Rule {
    /// A JSON object valid against the schema (`--schema`).
    Schema(Arc<AnswerSchema>),
    /// Any JSON object (`--fields` without `--schema`); these are the fields wanted.
    Object(Vec<String>),
}

/// An answer that cannot be used: what the model wrote and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadAnswer {
    /// The answer text (empty when the response had none).
    pub text: String,
    /// What is wrong.
    pub problems: Problems,
}

/// Judges answers against a [`Rule`], repairing up to `max_repairs` times per task.
#[derive(Debug, Clone)]
pub struct Checker {
    rule: Rule,
    max_repairs: u32,
    expected: Expected,
}

impl Checker {
    /// A checker for `rule` with `max_repairs` repair rounds per task (`--repair`).
    pub fn new(rule: Rule, max_repairs: u32) -> Checker {
        let expected = match &rule {
            Rule::Schema(s) => Expected::schema(s.value()),
            Rule::Object(fields) => Expected::Object(fields.clone()),
        };
        Checker {
            rule,
            max_repairs,
            expected,
        }
    }

    /// The answer object in `response`, or why there is none.
    pub fn judge(&self, response: &RawValue) -> Result<Map<String, Value>, BadAnswer> {
        let answer = answer_text(response).map_err(|p| BadAnswer {
            text: String::new(),
            problems: Problems::one(p),
        })?;
        let object = first_object(&answer.text).map_err(|why| BadAnswer {
            text: answer.text.clone(),
            problems: Problems::one(why.problem(answer.cut)),
        })?;
        if let Rule::Schema(schema) = &self.rule {
            let value = Value::Object(object);
            let mut problems = schema.validate(&value);
            if !problems.is_empty() {
                if answer.cut {
                    problems.push(crate::problems::Problem::whole(
                        "the answer was cut at max_tokens: raise --max-tokens or the task's max_tokens",
                    ));
                }
                return Err(BadAnswer {
                    text: answer.text,
                    problems,
                });
            }
            let Value::Object(object) = value else {
                unreachable!("wrapped above")
            };
            return Ok(object);
        }
        Ok(object)
    }

    /// The verdict for `bad` after `repairs` repairs of the request `body`.
    pub fn verdict_for(&self, bad: BadAnswer, body: &Bytes, repairs: u32) -> Verdict {
        if repairs < self.max_repairs {
            let note = message(&bad.problems, &self.expected);
            match repaired_body(body, &bad.text, &note) {
                Ok(body) => return Verdict::Repair { body },
                Err(e) => {
                    return Verdict::Reject {
                        message: format!("{e}; {}", self.reject_text(&bad, repairs)),
                    };
                }
            }
        }
        Verdict::Reject {
            message: self.reject_text(&bad, repairs),
        }
    }

    fn reject_text(&self, bad: &BadAnswer, repairs: u32) -> String {
        let what = match self.rule {
            Rule::Schema(_) => "the answer does not match the schema",
            Rule::Object(_) => "the answer is not a JSON object",
        };
        let after = match (repairs, self.max_repairs) {
            (0, 0) => " (--repair 0)".to_string(),
            (0, _) => String::new(),
            (1, _) => " after 1 repair".to_string(),
            (n, _) => format!(" after {n} repairs"),
        };
        let last = if bad.text.is_empty() {
            "(no text)".to_string()
        } else {
            shorten(&bad.text, MAX_QUOTED_ANSWER)
        };
        format!(
            "{what}{after}: {}; last answer: {last}",
            bad.problems.inline()
        )
    }
}

impl AnswerCheck for Checker {
    fn check(&self, _task: &Task, body: &Bytes, response: &RawValue, repairs: u32) -> Verdict {
        match self.judge(response) {
            Ok(object) => {
                // Re-serialised compact: the model's own spacing may hold newlines, and the
                // answer goes into one JSONL line.
                let raw = serde_json::value::to_raw_value(&object).expect("a JSON map serializes");
                Verdict::Accept { answer: Some(raw) }
            }
            Err(bad) => self.verdict_for(bad, body, repairs),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repair::REPAIR_LEAD;
    use serde_json::json;

    fn schema() -> Arc<AnswerSchema> {
        let s = json!({
            "type": "object",
            "properties": {"rating": {"type": "integer", "minimum": 1, "maximum": 5}},
            "required": ["rating"],
            "additionalProperties": false
        });
        Arc::new(AnswerSchema::from_value(s, "test").unwrap())
    }

    fn chat_response(content: &str) -> Box<RawValue> {
        serde_json::value::to_raw_value(&json!({
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}]
        }))
        .unwrap()
    }

    fn task() -> Task {
        Task {
            line: 1,
            custom_id: "t1".into(),
            endpoint: drover_types::Endpoint::ChatCompletions,
            body: Bytes::new(),
            prompt_tokens_est: 1,
            max_tokens: None,
            group: 0,
        }
    }

    fn body() -> Bytes {
        Bytes::from(
            serde_json::to_vec(&json!({"messages": [{"role": "user", "content": "rate"}]}))
                .unwrap(),
        )
    }

    #[test]
    fn accepts_a_valid_object_inside_prose_compactly() {
        let c = Checker::new(Rule::Schema(schema()), 2);
        match c.check(
            &task(),
            &body(),
            &chat_response("Here:\n```json\n{\n  \"rating\": 4\n}\n```"),
            0,
        ) {
            Verdict::Accept { answer: Some(a) } => assert_eq!(a.get(), r#"{"rating":4}"#),
            v => panic!("{v:?}"),
        }
    }

    #[test]
    fn repairs_while_rounds_are_left_then_rejects() {
        let c = Checker::new(Rule::Schema(schema()), 2);
        let bad = chat_response(r#"{"rating": 9}"#);
        let Verdict::Repair { body: next } = c.check(&task(), &body(), &bad, 0) else {
            panic!("no repair")
        };
        let next: Value = serde_json::from_slice(&next).unwrap();
        let msgs = next["messages"].as_array().unwrap();
        assert_eq!(msgs.len(), 3);
        assert_eq!(
            msgs[1],
            json!({"role": "assistant", "content": "{\"rating\": 9}"})
        );
        let note = msgs[2]["content"].as_str().unwrap();
        assert!(
            note.starts_with(REPAIR_LEAD)
                && note.contains("at /rating: 9 is greater than the maximum of 5"),
            "{note}"
        );
        assert!(matches!(
            c.check(&task(), &body(), &bad, 1),
            Verdict::Repair { .. }
        ));
        match c.check(&task(), &body(), &bad, 2) {
            Verdict::Reject { message } => assert_eq!(
                message,
                "the answer does not match the schema after 2 repairs: at /rating: 9 is greater than the maximum of 5; last answer: {\"rating\": 9}"
            ),
            v => panic!("{v:?}"),
        }
    }

    #[test]
    fn no_repairs_rejects_at_once_and_quotes_a_shortened_answer() {
        let c = Checker::new(Rule::Schema(schema()), 0);
        let long = format!("no json here {}", "z".repeat(5000));
        match c.check(&task(), &body(), &chat_response(&long), 0) {
            Verdict::Reject { message } => {
                assert!(message.starts_with("the answer does not match the schema (--repair 0): the answer holds no JSON object; last answer: no json here"), "{message}");
                assert!(message.chars().count() < MAX_QUOTED_ANSWER + 200);
            }
            v => panic!("{v:?}"),
        }
    }

    #[test]
    fn object_rule_accepts_any_object() {
        let c = Checker::new(Rule::Object(vec!["a".into()]), 1);
        assert!(matches!(
            c.check(&task(), &body(), &chat_response(r#"{"zzz": 1}"#), 0),
            Verdict::Accept { answer: Some(_) }
        ));
        let Verdict::Repair { body } = c.check(&task(), &body(), &chat_response("nope"), 0) else {
            panic!()
        };
        assert!(String::from_utf8_lossy(&body).contains("with the fields a"));
    }

    #[test]
    fn an_unrepairable_body_is_rejected_with_the_reason() {
        let c = Checker::new(Rule::Schema(schema()), 2);
        let body = Bytes::from_static(br#"{"prompt": [1, 2]}"#);
        match c.check(&task(), &body, &chat_response("x"), 0) {
            Verdict::Reject { message } => assert!(
                message.starts_with("cannot ask for a repair: the prompt is not text (token ids or several prompts); the answer does not match the schema: the answer holds no JSON object"),
                "{message}"
            ),
            v => panic!("{v:?}"),
        }
    }
}
