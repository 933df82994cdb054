//! Streamed answers (`"stream": true`), reassembled into the body a non-streamed call returns.
//!
//! drover streams to backends that publish no load metrics, to watch their token rate live;
//! what it writes to the output is still the ordinary `chat.completion` / `text_completion`
//! object. Streams may end with `data: [DONE]` (vLLM, OpenAI) or just close after the chunk
//! carrying `finish_reason` and usage (transformers serve).

use drover_types::{Endpoint, Usage};
use serde_json::{Map, Value, json};

/// Splits a byte stream into SSE `data:` payloads.
#[derive(Default)]
pub struct SseParser {
    line: Vec<u8>,
    data: Vec<u8>,
    has_data: bool,
}

impl SseParser {
    /// Feeds bytes; calls `on_event` with each complete event's data.
    pub fn feed(&mut self, mut bytes: &[u8], on_event: &mut dyn FnMut(&[u8])) {
        while let Some(i) = bytes.iter().position(|&b| b == b'\n') {
            self.line.extend_from_slice(&bytes[..i]);
            bytes = &bytes[i + 1..];
            if self.line.last() == Some(&b'\r') {
                self.line.pop();
            }
            if self.line.is_empty() {
                if self.has_data {
                    on_event(&self.data);
                    self.data.clear();
                    self.has_data = false;
                }
            } else if let Some(rest) = self.line.strip_prefix(b"data:") {
                let rest = rest.strip_prefix(b" ").unwrap_or(rest);
                if self.has_data {
                    self.data.push(b'\n');
                }
                self.data.extend_from_slice(rest);
                self.has_data = true;
            }
            // Comments (":") and other fields (event:, id:, retry:) carry nothing we use.
            self.line.clear();
        }
        self.line.extend_from_slice(bytes);
    }

    /// Flushes an event left unterminated at end of stream.
    pub fn finish(&mut self, on_event: &mut dyn FnMut(&[u8])) {
        if !self.line.is_empty() {
            self.feed(b"\n", on_event);
        }
        if self.has_data {
            on_event(&self.data);
            self.data.clear();
            self.has_data = false;
        }
    }
}

#[derive(Default)]
struct ChoiceAcc {
    role: Option<String>,
    content: String,
    has_content: bool,
    reasoning: String,
    tool_calls: Vec<Map<String, Value>>,
    logprobs: Vec<Value>,
    finish_reason: Option<Value>,
    stop_reason: Option<Value>,
}

/// What one chunk did.
#[derive(Debug, PartialEq)]
pub enum Chunk {
    /// Generated pieces (roughly tokens) this chunk carried.
    Tokens(u32),
    /// `[DONE]`.
    Done,
}

/// Rebuilds a non-streamed body from stream chunks.
pub struct StreamAssembler {
    endpoint: Endpoint,
    head: Map<String, Value>,
    choices: Vec<ChoiceAcc>,
    usage: Option<Value>,
    finished: bool,
}

/// A chunk the stream should not contain.
#[derive(Debug, PartialEq)]
pub enum StreamError {
    /// Not JSON.
    Garbage(String),
    /// The server reported an error mid-stream.
    Server(String),
}

impl StreamAssembler {
    /// An assembler for one answer.
    pub fn new(endpoint: Endpoint) -> Self {
        StreamAssembler {
            endpoint,
            head: Map::new(),
            choices: Vec::new(),
            usage: None,
            finished: false,
        }
    }

    /// Whether a `finish_reason` arrived for every choice seen (a stream may then end without `[DONE]`).
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Absorbs one event's data.
    pub fn push(&mut self, data: &[u8]) -> Result<Chunk, StreamError> {
        if data == b"[DONE]" {
            return Ok(Chunk::Done);
        }
        let v: Value = serde_json::from_slice(data)
            .map_err(|e| StreamError::Garbage(format!("stream chunk is not JSON: {e}")))?;
        let Value::Object(mut obj) = v else {
            return Err(StreamError::Garbage(
                "stream chunk is not a JSON object".into(),
            ));
        };
        if let Some(err) = obj.get("error") {
            let msg = err
                .get("message")
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| err.to_string());
            return Err(StreamError::Server(msg));
        }
        if let Some(u) = obj.remove("usage") {
            if !u.is_null() {
                self.usage = Some(u);
            }
        }
        let choices = match obj.remove("choices") {
            Some(Value::Array(c)) => c,
            _ => Vec::new(),
        };
        if self.head.is_empty() {
            self.head = obj;
        }
        let mut pieces = 0u32;
        for c in choices {
            let idx = c.get("index").and_then(Value::as_u64).unwrap_or(0) as usize;
            if self.choices.len() <= idx {
                self.choices.resize_with(idx + 1, ChoiceAcc::default);
            }
            let acc = &mut self.choices[idx];
            pieces += absorb_choice(acc, &c, self.endpoint);
        }
        self.finished =
            !self.choices.is_empty() && self.choices.iter().all(|c| c.finish_reason.is_some());
        Ok(Chunk::Tokens(pieces))
    }

    /// The reassembled body and its usage (`streamed_pieces` stands in for completion tokens
    /// when the server sent no usage).
    pub fn finish(self, streamed_pieces: u64) -> (Value, Usage) {
        let usage: Usage = self
            .usage
            .as_ref()
            .and_then(|u| serde_json::from_value(u.clone()).ok())
            .unwrap_or(Usage {
                prompt_tokens: 0,
                completion_tokens: streamed_pieces,
            });
        let chat = self.endpoint == Endpoint::ChatCompletions;
        let mut body = self.head;
        body.insert(
            "object".into(),
            json!(if chat {
                "chat.completion"
            } else {
                "text_completion"
            }),
        );
        let choices: Vec<Value> = self
            .choices
            .into_iter()
            .enumerate()
            .map(|(i, c)| {
                let mut choice = Map::new();
                choice.insert("index".into(), json!(i));
                if chat {
                    let mut msg = Map::new();
                    msg.insert(
                        "role".into(),
                        json!(c.role.unwrap_or_else(|| "assistant".into())),
                    );
                    msg.insert(
                        "content".into(),
                        if c.has_content || c.tool_calls.is_empty() {
                            json!(c.content)
                        } else {
                            Value::Null
                        },
                    );
                    if !c.reasoning.is_empty() {
                        msg.insert("reasoning_content".into(), json!(c.reasoning));
                    }
                    if !c.tool_calls.is_empty() {
                        msg.insert(
                            "tool_calls".into(),
                            Value::Array(c.tool_calls.into_iter().map(Value::Object).collect()),
                        );
                    }
                    choice.insert("message".into(), Value::Object(msg));
                } else {
                    choice.insert("text".into(), json!(c.content));
                }
                choice.insert(
                    "logprobs".into(),
                    if c.logprobs.is_empty() {
                        Value::Null
                    } else {
                        json!({ "content": c.logprobs })
                    },
                );
                choice.insert(
                    "finish_reason".into(),
                    c.finish_reason.unwrap_or(Value::Null),
                );
                if let Some(s) = c.stop_reason {
                    choice.insert("stop_reason".into(), s);
                }
                Value::Object(choice)
            })
            .collect();
        body.insert("choices".into(), Value::Array(choices));
        let mut usage_v = self.usage.unwrap_or_else(|| {
            json!({"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
                   "total_tokens": usage.prompt_tokens + usage.completion_tokens})
        });
        if let Value::Object(u) = &mut usage_v {
            u.entry("total_tokens")
                .or_insert(json!(usage.prompt_tokens + usage.completion_tokens));
        }
        body.insert("usage".into(), usage_v);
        (Value::Object(body), usage)
    }
}

fn absorb_choice(acc: &mut ChoiceAcc, c: &Value, endpoint: Endpoint) -> u32 {
    let mut pieces = 0;
    if endpoint == Endpoint::ChatCompletions {
        if let Some(delta) = c.get("delta") {
            if let Some(r) = delta.get("role").and_then(Value::as_str) {
                acc.role = Some(r.to_string());
            }
            if let Some(t) = delta.get("content").and_then(Value::as_str) {
                acc.has_content = true;
                if !t.is_empty() {
                    acc.content.push_str(t);
                    pieces += 1;
                }
            }
            for key in ["reasoning_content", "reasoning"] {
                if let Some(t) = delta.get(key).and_then(Value::as_str) {
                    if !t.is_empty() {
                        acc.reasoning.push_str(t);
                        pieces += 1;
                    }
                }
            }
            if let Some(Value::Array(calls)) = delta.get("tool_calls") {
                for call in calls {
                    merge_tool_call(&mut acc.tool_calls, call);
                }
                pieces += 1;
            }
        }
    } else if let Some(t) = c.get("text").and_then(Value::as_str) {
        if !t.is_empty() {
            acc.content.push_str(t);
            pieces += 1;
        }
    }
    if let Some(Value::Array(lp)) = c.get("logprobs").and_then(|l| l.get("content")) {
        acc.logprobs.extend(lp.iter().cloned());
    }
    if let Some(f) = c.get("finish_reason") {
        if !f.is_null() {
            acc.finish_reason = Some(f.clone());
        }
    }
    if let Some(s) = c.get("stop_reason") {
        if !s.is_null() {
            acc.stop_reason = Some(s.clone());
        }
    }
    pieces
}

/// Tool-call deltas arrive by index: the first carries id, type and function name, later ones
/// pieces of the JSON arguments.
fn merge_tool_call(calls: &mut Vec<Map<String, Value>>, delta: &Value) {
    let idx = delta
        .get("index")
        .and_then(Value::as_u64)
        .unwrap_or(calls.len() as u64) as usize;
    while calls.len() <= idx {
        let mut m = Map::new();
        m.insert("type".into(), json!("function"));
        m.insert("function".into(), json!({"name": "", "arguments": ""}));
        calls.push(m);
    }
    let call = &mut calls[idx];
    for key in ["id", "type"] {
        if let Some(v) = delta.get(key) {
            if !v.is_null() {
                call.insert(key.into(), v.clone());
            }
        }
    }
    if let Some(f) = delta.get("function") {
        let func = call
            .get_mut("function")
            .and_then(Value::as_object_mut)
            .expect("inserted above");
        for key in ["name", "arguments"] {
            if let Some(piece) = f.get(key).and_then(Value::as_str) {
                let cur = func
                    .get(key)
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                func.insert(key.into(), json!(cur + piece));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(input: &[&[u8]]) -> Vec<String> {
        let mut p = SseParser::default();
        let mut out = Vec::new();
        for part in input {
            p.feed(part, &mut |d| {
                out.push(String::from_utf8_lossy(d).into_owned())
            });
        }
        p.finish(&mut |d| out.push(String::from_utf8_lossy(d).into_owned()));
        out
    }

    #[test]
    fn parses_events_across_arbitrary_splits() {
        assert_eq!(
            events(&[
                b"data: {\"a\"",
                b":1}\n\n: keep-alive\n\ndata: [DO",
                b"NE]\n\n"
            ]),
            vec!["{\"a\":1}", "[DONE]"]
        );
        assert_eq!(events(&[b"data: x\r\n\r\ndata: tail"]), vec!["x", "tail"]);
    }

    #[test]
    fn reassembles_chat_with_usage_and_no_done() {
        let mut a = StreamAssembler::new(Endpoint::ChatCompletions);
        let chunks = [
            r#"{"id":"c1","object":"chat.completion.chunk","created":5,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}"#,
            r#"{"id":"c1","object":"chat.completion.chunk","created":5,"model":"m","choices":[{"index":0,"delta":{"content":"Hel"}}]}"#,
            r#"{"id":"c1","object":"chat.completion.chunk","created":5,"model":"m","choices":[{"index":0,"delta":{"content":"lo"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}"#,
        ];
        let mut pieces = 0;
        for c in chunks {
            if let Chunk::Tokens(n) = a.push(c.as_bytes()).unwrap() {
                pieces += n;
            }
        }
        assert_eq!(pieces, 2);
        assert!(a.is_finished());
        let (body, usage) = a.finish(u64::from(pieces));
        assert_eq!(
            usage,
            Usage {
                prompt_tokens: 3,
                completion_tokens: 2
            }
        );
        assert_eq!(body["object"], "chat.completion");
        assert_eq!(body["id"], "c1");
        assert_eq!(body["choices"][0]["message"]["content"], "Hello");
        assert_eq!(body["choices"][0]["finish_reason"], "stop");
        assert_eq!(body["usage"]["total_tokens"], 5);
    }

    #[test]
    fn reassembles_tool_calls_and_completions() {
        let mut a = StreamAssembler::new(Endpoint::ChatCompletions);
        a.push(br#"{"choices":[{"index":0,"delta":{"role":"assistant","tool_calls":[{"index":0,"id":"t1","type":"function","function":{"name":"get","arguments":""}}]}}]}"#).unwrap();
        a.push(br#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"a\":"}}]}}]}"#).unwrap();
        a.push(br#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"1}"}}]},"finish_reason":"tool_calls"}]}"#).unwrap();
        let (body, _) = a.finish(0);
        let call = &body["choices"][0]["message"]["tool_calls"][0];
        assert_eq!(call["function"]["arguments"], "{\"a\":1}");
        assert_eq!(call["id"], "t1");
        assert!(body["choices"][0]["message"]["content"].is_null());

        let mut a = StreamAssembler::new(Endpoint::Completions);
        a.push(br#"{"id":"x","choices":[{"index":0,"text":"ab","finish_reason":null}]}"#)
            .unwrap();
        a.push(br#"{"id":"x","choices":[{"index":0,"text":"c","finish_reason":"length"}]}"#)
            .unwrap();
        let (body, usage) = a.finish(2);
        assert_eq!(body["choices"][0]["text"], "abc");
        assert_eq!(body["object"], "text_completion");
        assert_eq!(
            usage.completion_tokens, 2,
            "no usage sent: counted pieces stand in"
        );
    }

    #[test]
    fn errors_mid_stream_and_garbage() {
        let mut a = StreamAssembler::new(Endpoint::ChatCompletions);
        assert_eq!(
            a.push(br#"{"error":{"message":"engine died"}}"#),
            Err(StreamError::Server("engine died".into()))
        );
        assert!(matches!(a.push(b"<html>"), Err(StreamError::Garbage(_))));
        assert_eq!(a.push(b"[DONE]"), Ok(Chunk::Done));
    }
}
