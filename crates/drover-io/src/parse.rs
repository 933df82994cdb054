//! One input line → one task, for every accepted shape (ARCHITECTURE.md §3):
//!
//! 1. an OpenAI batch request line `{"custom_id","method":"POST","url","body"}`: the body is
//!    passed through, with request defaults filled in under it;
//! 2. `{"id"|"custom_id", "messages": [...]}`;
//! 3. `{"id"|"custom_id", "prompt": "..."}`: one user message (system only with `--system`), or
//!    a `/v1/completions` prompt with `--endpoint completions`;
//! 4. with `--template`, any object, rendered into the user message or a messages list.
//!
//! In shapes 2–4 only OpenAI request parameters are taken from the task (`max_tokens`,
//! `temperature`, …); other fields are the task's own data and never reach the server, where
//! strict servers would reject them.

use std::sync::Arc;

use bytes::Bytes;
use drover_types::{Endpoint, Task};
use serde_json::{Map, Value};

use crate::template::{Rendered, Template};

/// Request fields set by flags; each task's own fields win over them.
#[derive(Debug, Clone, Default)]
pub struct RequestDefaults {
    /// `--model` (or the model discovered on the fleet); filled in when a body has none.
    pub model: Option<String>,
    /// `--max-tokens`.
    pub max_tokens: Option<u32>,
    /// `--temperature`.
    pub temperature: Option<f64>,
    /// `--extra-body`: any further fields, under everything else.
    pub extra_body: Map<String, Value>,
    /// `--system`: a system message before prompt/template tasks.
    pub system: Option<String>,
    /// `--endpoint completions`: prompt/template tasks go to /v1/completions.
    pub completions: bool,
}

/// Everything needed to turn a line into a task.
pub struct ParseConfig {
    /// Flag defaults.
    pub defaults: RequestDefaults,
    /// `--template`, when given.
    pub template: Option<Template>,
}

/// Why a line is not a task. `custom_id` is the line's id when it could be read.
#[derive(Debug, Clone, PartialEq)]
pub struct LineError {
    /// The line's custom_id, when it had a readable one.
    pub custom_id: Option<String>,
    /// What is wrong and how to fix it (the line number is added by the caller).
    pub message: String,
}

/// OpenAI request parameters a simple task may carry (shapes 2–4).
const REQUEST_PARAMS: &[&str] = &[
    "model",
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "top_p",
    "seed",
    "stop",
    "n",
    "presence_penalty",
    "frequency_penalty",
    "logit_bias",
    "logprobs",
    "top_logprobs",
    "response_format",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "user",
    "reasoning_effort",
];

/// Fields drover owns: batch output is never streamed.
const STRIPPED: &[&str] = &["stream", "stream_options"];

fn err(custom_id: Option<&str>, message: impl Into<String>) -> LineError {
    LineError {
        custom_id: custom_id.map(str::to_string),
        message: message.into(),
    }
}

/// The id a task without one gets: stable for an unchanged input, so resume works.
pub fn line_id(line: u64) -> String {
    format!("line-{line}")
}

/// Parses one non-empty line into a task.
pub fn parse_line(line: u64, bytes: &[u8], cfg: &ParseConfig) -> Result<Task, LineError> {
    if let Err(e) = std::str::from_utf8(bytes) {
        return Err(err(
            None,
            format!(
                "invalid UTF-8 at byte {}: the input must be UTF-8 JSONL",
                e.valid_up_to()
            ),
        ));
    }
    let value: Value = serde_json::from_slice(bytes).map_err(|e| {
        err(
            None,
            format!("invalid JSON: {e}: each line must be one JSON object"),
        )
    })?;
    let Value::Object(obj) = value else {
        return Err(err(
            None,
            format!("expected a JSON object, found {}", kind(&value)),
        ));
    };
    let custom_id = read_id(&obj)?;
    let id = custom_id.as_deref();

    let (endpoint, mut body) = if let Some(template) = &cfg.template {
        let rendered = template.render(&obj).map_err(|m| err(id, m))?;
        simple_request(obj, rendered_input(rendered, id)?, &cfg.defaults, id)?
    } else if obj.contains_key("body") || obj.contains_key("url") {
        batch_request(obj, id)?
    } else if obj.contains_key("messages") {
        let mut obj = obj;
        let messages = obj.remove("messages").expect("checked above");
        let messages = check_messages(messages, id)?;
        simple_request(obj, Input::Messages(messages), &cfg.defaults, id)?
    } else if obj.contains_key("prompt") {
        let mut obj = obj;
        let prompt = match obj.remove("prompt").expect("checked above") {
            Value::String(p) => p,
            other => {
                return Err(err(
                    id,
                    format!("\"prompt\" must be a string, found {}", kind(&other)),
                ));
            }
        };
        simple_request(obj, Input::Text(prompt), &cfg.defaults, id)?
    } else {
        return Err(err(
            id,
            "no \"prompt\", \"messages\" or batch \"body\": give one of them, or render the object with --template FILE",
        ));
    };

    apply_defaults(&mut body, &cfg.defaults);
    for key in STRIPPED {
        body.remove(*key);
    }
    let max_tokens = ["max_tokens", "max_completion_tokens"]
        .iter()
        .find_map(|k| body.get(*k).and_then(Value::as_u64))
        .map(|n| n.min(u64::from(u32::MAX)) as u32);
    let bytes =
        serde_json::to_vec(&body).map_err(|e| err(id, format!("cannot encode request: {e}")))?;
    let prompt_tokens_est = (bytes.len() / 4).min(u32::MAX as usize) as u32;
    Ok(Task {
        line,
        custom_id: Arc::from(custom_id.unwrap_or_else(|| line_id(line))),
        endpoint,
        body: Bytes::from(bytes),
        prompt_tokens_est,
        max_tokens,
        group: 0,
    })
}

/// Reads `custom_id` (or `id`): a string, or a number taken as its decimal text.
fn read_id(obj: &Map<String, Value>) -> Result<Option<String>, LineError> {
    let Some((key, v)) = obj
        .get_key_value("custom_id")
        .or_else(|| obj.get_key_value("id"))
    else {
        return Ok(None);
    };
    match v {
        Value::String(s) if !s.is_empty() => Ok(Some(s.clone())),
        Value::String(_) => Err(err(None, format!("\"{key}\" is empty"))),
        Value::Number(n) => Ok(Some(n.to_string())),
        other => Err(err(
            None,
            format!("\"{key}\" must be a string, found {}", kind(other)),
        )),
    }
}

fn batch_request(
    mut obj: Map<String, Value>,
    id: Option<&str>,
) -> Result<(Endpoint, Map<String, Value>), LineError> {
    if id.is_none() {
        return Err(err(None, "batch request line has no \"custom_id\""));
    }
    if let Some(m) = obj.get("method") {
        if m.as_str().map(|s| s.eq_ignore_ascii_case("POST")) != Some(true) {
            return Err(err(id, format!("\"method\" must be \"POST\", found {m}")));
        }
    }
    let url = match obj.get("url") {
        Some(Value::String(u)) => u.clone(),
        Some(other) => {
            return Err(err(
                id,
                format!("\"url\" must be a string, found {}", kind(other)),
            ));
        }
        None => {
            return Err(err(
                id,
                "batch request line has no \"url\" (e.g. \"/v1/chat/completions\")",
            ));
        }
    };
    let endpoint = Endpoint::from_url(&url).map_err(|e| err(id, e.to_string()))?;
    let body = match obj.remove("body") {
        Some(Value::Object(b)) => b,
        Some(other) => {
            return Err(err(
                id,
                format!("\"body\" must be an object, found {}", kind(&other)),
            ));
        }
        None => return Err(err(id, "batch request line has no \"body\"")),
    };
    match endpoint {
        Endpoint::ChatCompletions => {
            let m = body
                .get("messages")
                .ok_or_else(|| err(id, "chat request body has no \"messages\""))?;
            check_message_list(m, id)?;
        }
        Endpoint::Completions if !body.contains_key("prompt") => {
            return Err(err(id, "completion request body has no \"prompt\""));
        }
        Endpoint::Embeddings if !body.contains_key("input") => {
            return Err(err(id, "embedding request body has no \"input\""));
        }
        _ => {}
    }
    Ok((endpoint, body))
}

enum Input {
    Text(String),
    Messages(Vec<Value>),
}

fn rendered_input(r: Rendered, id: Option<&str>) -> Result<Input, LineError> {
    match r {
        Rendered::Text(t) if t.is_empty() => Err(err(id, "template rendered an empty prompt")),
        Rendered::Text(t) => Ok(Input::Text(t)),
        Rendered::Messages(m) => Ok(Input::Messages(check_messages(Value::Array(m), id)?)),
    }
}

fn simple_request(
    mut obj: Map<String, Value>,
    input: Input,
    defaults: &RequestDefaults,
    id: Option<&str>,
) -> Result<(Endpoint, Map<String, Value>), LineError> {
    // The task's own request parameters move into the body; the rest is the task's data.
    obj.retain(|k, _| REQUEST_PARAMS.contains(&k.as_str()));
    let mut body = obj;
    let endpoint = match input {
        Input::Text(text) if defaults.completions => {
            let prompt = match &defaults.system {
                Some(sys) => format!("{sys}\n\n{text}"),
                None => text,
            };
            body.insert("prompt".into(), Value::String(prompt));
            Endpoint::Completions
        }
        Input::Text(text) => {
            let mut messages = Vec::with_capacity(2);
            if let Some(sys) = &defaults.system {
                messages.push(message("system", sys));
            }
            messages.push(message("user", &text));
            body.insert("messages".into(), Value::Array(messages));
            Endpoint::ChatCompletions
        }
        Input::Messages(m) if defaults.completions => {
            return Err(err(
                id,
                format!(
                    "--endpoint completions takes a prompt, but this task has {} messages",
                    m.len()
                ),
            ));
        }
        Input::Messages(m) => {
            body.insert("messages".into(), Value::Array(m));
            Endpoint::ChatCompletions
        }
    };
    Ok((endpoint, body))
}

fn message(role: &str, content: &str) -> Value {
    let mut m = Map::with_capacity(2);
    m.insert("role".into(), Value::String(role.into()));
    m.insert("content".into(), Value::String(content.into()));
    Value::Object(m)
}

fn check_messages(v: Value, id: Option<&str>) -> Result<Vec<Value>, LineError> {
    check_message_list(&v, id)?;
    match v {
        Value::Array(items) => Ok(items),
        _ => unreachable!("checked to be an array"),
    }
}

fn check_message_list(v: &Value, id: Option<&str>) -> Result<(), LineError> {
    let Value::Array(items) = v else {
        return Err(err(
            id,
            format!("\"messages\" must be an array, found {}", kind(v)),
        ));
    };
    if items.is_empty() {
        return Err(err(id, "\"messages\" is empty"));
    }
    for (i, m) in items.iter().enumerate() {
        match m.get("role") {
            Some(Value::String(_)) => {}
            _ => {
                return Err(err(
                    id,
                    format!(
                        "messages[{i}] needs a string \"role\" (system, user, assistant, tool)"
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Fills in flag defaults under the task's own fields.
fn apply_defaults(body: &mut Map<String, Value>, d: &RequestDefaults) {
    for (k, v) in &d.extra_body {
        body.entry(k.clone()).or_insert_with(|| v.clone());
    }
    if let Some(m) = &d.model {
        body.entry("model")
            .or_insert_with(|| Value::String(m.clone()));
    }
    if let Some(n) = d.max_tokens {
        if !body.contains_key("max_tokens") && !body.contains_key("max_completion_tokens") {
            body.insert("max_tokens".into(), Value::from(n));
        }
    }
    if let Some(t) = d.temperature {
        body.entry("temperature").or_insert_with(|| Value::from(t));
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cfg() -> ParseConfig {
        ParseConfig {
            defaults: RequestDefaults::default(),
            template: None,
        }
    }

    fn body(t: &Task) -> Value {
        serde_json::from_slice(&t.body).unwrap()
    }

    #[test]
    fn batch_line_passes_body_through_and_fills_model() {
        let mut c = cfg();
        c.defaults.model = Some("m".into());
        c.defaults.max_tokens = Some(50);
        let line = br#"{"custom_id":"a1","method":"POST","url":"/v1/chat/completions","body":{"messages":[{"role":"user","content":"hi"}],"max_tokens":7,"logprobs":true,"stream":true}}"#;
        let t = parse_line(3, line, &c).unwrap();
        assert_eq!(&*t.custom_id, "a1");
        assert_eq!(t.line, 3);
        assert_eq!(t.endpoint, Endpoint::ChatCompletions);
        assert_eq!(t.max_tokens, Some(7));
        assert_eq!(
            body(&t),
            json!({"messages":[{"role":"user","content":"hi"}],"max_tokens":7,"logprobs":true,"model":"m"})
        );
    }

    #[test]
    fn batch_embeddings_and_completions() {
        let t = parse_line(1, br#"{"custom_id":"e","method":"POST","url":"/v1/embeddings","body":{"input":"x","model":"e5"}}"#, &cfg()).unwrap();
        assert_eq!(t.endpoint, Endpoint::Embeddings);
        assert_eq!(body(&t)["model"], "e5");
        let t = parse_line(
            1,
            br#"{"custom_id":"c","url":"/v1/completions","body":{"prompt":"x"}}"#,
            &cfg(),
        )
        .unwrap();
        assert_eq!(t.endpoint, Endpoint::Completions);
    }

    #[test]
    fn prompt_shape_is_one_user_message() {
        let t = parse_line(
            1,
            br#"{"id":"p1","prompt":"Hello","category":"x","temperature":0.5}"#,
            &cfg(),
        )
        .unwrap();
        assert_eq!(
            body(&t),
            json!({"messages":[{"role":"user","content":"Hello"}],"temperature":0.5})
        );
        let mut c = cfg();
        c.defaults.system = Some("Be terse.".into());
        c.defaults.temperature = Some(0.0);
        let t = parse_line(1, br#"{"id":"p1","prompt":"Hello"}"#, &c).unwrap();
        assert_eq!(
            body(&t),
            json!({"messages":[{"role":"system","content":"Be terse."},{"role":"user","content":"Hello"}],"temperature":0.0})
        );
    }

    #[test]
    fn prompt_shape_to_completions() {
        let mut c = cfg();
        c.defaults.completions = true;
        let t = parse_line(1, br#"{"custom_id":7,"prompt":"Once"}"#, &c).unwrap();
        assert_eq!(&*t.custom_id, "7");
        assert_eq!(t.endpoint, Endpoint::Completions);
        assert_eq!(body(&t), json!({"prompt":"Once"}));
    }

    #[test]
    fn messages_shape_and_missing_id() {
        let t = parse_line(
            9,
            br#"{"messages":[{"role":"user","content":"x"}]}"#,
            &cfg(),
        )
        .unwrap();
        assert_eq!(&*t.custom_id, "line-9");
    }

    #[test]
    fn task_wins_over_flags_and_extra_body_is_lowest() {
        let mut c = cfg();
        c.defaults.max_tokens = Some(100);
        c.defaults.extra_body = json!({"top_p": 0.9, "temperature": 1.0})
            .as_object()
            .unwrap()
            .clone();
        c.defaults.temperature = Some(0.2);
        let t = parse_line(
            1,
            br#"{"id":"a","prompt":"x","max_completion_tokens":5,"top_p":0.5}"#,
            &c,
        )
        .unwrap();
        let b = body(&t);
        assert_eq!(b["top_p"], 0.5);
        assert_eq!(
            b["temperature"], 1.0,
            "extra-body sits under the task, and a flag default does not override it"
        );
        assert!(b.get("max_tokens").is_none());
        assert_eq!(t.max_tokens, Some(5));
    }

    #[test]
    fn template_renders_user_message() {
        let mut c = cfg();
        c.template = Some(Template::from_source("t", "Review: {{ text }}".into()).unwrap());
        let t = parse_line(2, br#"{"id":"r1","text":"great"}"#, &c).unwrap();
        assert_eq!(body(&t)["messages"][0]["content"], "Review: great");
    }

    #[test]
    fn bad_lines_say_why() {
        let cases: &[(&[u8], &str)] = &[
            (b"{not json", "invalid JSON"),
            (b"[1,2]", "expected a JSON object, found an array"),
            (b"\"x\"", "found a string"),
            (br#"{"id":"a"}"#, "no \"prompt\""),
            (br#"{"id":"a","prompt":5}"#, "\"prompt\" must be a string"),
            (br#"{"id":["a"],"prompt":"x"}"#, "must be a string"),
            (br#"{"id":"a","messages":"hi"}"#, "must be an array"),
            (br#"{"id":"a","messages":[{"content":"x"}]}"#, "needs a string \"role\""),
            (br#"{"url":"/v1/chat/completions","body":{}}"#, "no \"custom_id\""),
            (br#"{"custom_id":"a","url":"/v1/responses","body":{}}"#, "unsupported url"),
            (br#"{"custom_id":"a","method":"GET","url":"/v1/completions","body":{"prompt":"x"}}"#, "POST"),
            (b"\xff\xfe{}", "invalid UTF-8"),
        ];
        for (line, want) in cases {
            let e = parse_line(1, line, &cfg()).unwrap_err();
            assert!(
                e.message.contains(want),
                "{:?}: {}",
                String::from_utf8_lossy(line),
                e.message
            );
        }
        let e = parse_line(1, br#"{"id":"k","prompt":5}"#, &cfg()).unwrap_err();
        assert_eq!(e.custom_id.as_deref(), Some("k"));
    }
}
