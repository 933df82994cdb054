//! Request bodies of `/v1/chat/completions` and `/v1/completions`, validated into a [`GenRequest`].
//!
//! The body is parsed once into a `serde_json::Value` (the engine gets it as `raw`), and the
//! typed view is read from that value. Unknown fields are ignored, as vLLM does.

use serde::Deserialize;
use serde_json::Value;

use crate::engine::{ChatMessage, GenRequest, Prompt, ResponseFormat};
use crate::error::ApiError;

/// Which OpenAI endpoint a request came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiKind {
    /// `/v1/chat/completions`.
    Chat,
    /// `/v1/completions`.
    Completion,
}

impl ApiKind {
    /// Prefix of response ids.
    pub(crate) fn id_prefix(self) -> &'static str {
        match self {
            ApiKind::Chat => "chatcmpl-",
            ApiKind::Completion => "cmpl-",
        }
    }
}

/// A validated request plus the options that shape the HTTP answer (not the generation).
#[derive(Debug, Clone)]
pub(crate) struct ParsedRequest {
    /// `model` as sent; `None` when absent (accepted, like vLLM).
    pub model: Option<String>,
    pub stream: bool,
    /// `stream_options.include_usage`: a final `"choices":[]` chunk with usage.
    pub include_usage: bool,
    /// `stream_options.continuous_usage_stats`: usage on every chunk.
    pub continuous_usage: bool,
    pub request: GenRequest,
}

#[derive(Deserialize)]
struct Common {
    model: Option<String>,
    max_tokens: Option<i64>,
    max_completion_tokens: Option<i64>,
    temperature: Option<f32>,
    top_p: Option<f32>,
    seed: Option<i64>,
    stop: Option<Stop>,
    response_format: Option<Value>,
    /// vLLM's pre-`response_format` way of asking for a JSON schema.
    guided_json: Option<Value>,
    ignore_eos: Option<bool>,
    n: Option<i64>,
    stream: Option<bool>,
    stream_options: Option<StreamOptions>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Stop {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
struct StreamOptions {
    include_usage: Option<bool>,
    continuous_usage_stats: Option<bool>,
}

#[derive(Deserialize)]
struct ChatBody {
    messages: Vec<WireMessage>,
}

#[derive(Deserialize)]
struct WireMessage {
    role: String,
    #[serde(default)]
    content: Option<Content>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Content {
    Text(String),
    Parts(Vec<Part>),
}

#[derive(Deserialize)]
struct Part {
    #[serde(rename = "type")]
    kind: String,
    text: Option<String>,
}

#[derive(Deserialize)]
struct CompletionBody {
    prompt: Value,
}

/// Parses and validates a request body for `kind`; `id` becomes the response id.
pub(crate) fn parse(kind: ApiKind, body: &[u8], id: String) -> Result<ParsedRequest, ApiError> {
    let raw: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))?;
    if !raw.is_object() {
        return Err(ApiError::bad_request(
            "the request body must be a JSON object",
        ));
    }
    let common = Common::deserialize(&raw)
        .map_err(|e| ApiError::bad_request(format!("invalid request: {e}")))?;
    let prompt = match kind {
        ApiKind::Chat => chat_prompt(&raw)?,
        ApiKind::Completion => completion_prompt(&raw)?,
    };
    if let Some(n) = common.n
        && n != 1
    {
        return Err(ApiError::bad_param(
            "n",
            format!("only n=1 is supported, got n={n}"),
        ));
    }
    // vLLM's chat endpoint prefers the newer name when both are given.
    let max_tokens = match (common.max_completion_tokens, common.max_tokens) {
        (Some(m), _) => Some(positive("max_completion_tokens", m)?),
        (None, Some(m)) => Some(positive("max_tokens", m)?),
        (None, None) => None,
    };
    if let Some(t) = common.temperature
        && !(t >= 0.0 && t.is_finite())
    {
        return Err(ApiError::bad_param(
            "temperature",
            format!("temperature must be >= 0, got {t}"),
        ));
    }
    if let Some(p) = common.top_p
        && !(p > 0.0 && p <= 1.0)
    {
        return Err(ApiError::bad_param(
            "top_p",
            format!("top_p must be in (0, 1], got {p}"),
        ));
    }
    let stop = match common.stop {
        None => Vec::new(),
        Some(Stop::One(s)) => vec![s],
        Some(Stop::Many(v)) => v,
    };
    let response_format = match (&common.response_format, &common.guided_json) {
        (Some(format), _) => response_format(format)?,
        (None, Some(schema)) => Some(ResponseFormat::JsonSchema(schema.clone())),
        (None, None) => None,
    };
    let stream = common.stream.unwrap_or(false);
    let (include_usage, continuous_usage) = match &common.stream_options {
        Some(o) => (
            o.include_usage.unwrap_or(false),
            o.continuous_usage_stats.unwrap_or(false),
        ),
        None => (false, false),
    };
    if common.stream_options.is_some() && !stream {
        return Err(ApiError::bad_param(
            "stream_options",
            "stream_options is only allowed when stream is true",
        ));
    }
    let request = GenRequest {
        id,
        prompt,
        max_tokens,
        temperature: common.temperature,
        top_p: common.top_p,
        // OpenAI's seed is a signed integer; engines take its bits.
        seed: common.seed.map(|s| s as u64),
        stop,
        response_format,
        ignore_eos: common.ignore_eos.unwrap_or(false),
        raw,
    };
    Ok(ParsedRequest {
        model: common.model,
        stream,
        include_usage,
        continuous_usage,
        request,
    })
}

fn positive(field: &str, value: i64) -> Result<u32, ApiError> {
    match u32::try_from(value) {
        Ok(v) if v >= 1 => Ok(v),
        _ => Err(ApiError::bad_param(
            field,
            format!("{field} must be at least 1, got {value}"),
        )),
    }
}

fn chat_prompt(raw: &Value) -> Result<Prompt, ApiError> {
    if raw.get("messages").is_none() {
        return Err(ApiError::bad_param(
            "messages",
            "field `messages` is required",
        ));
    }
    let body = ChatBody::deserialize(raw)
        .map_err(|e| ApiError::bad_param("messages", format!("invalid messages: {e}")))?;
    if body.messages.is_empty() {
        return Err(ApiError::bad_param(
            "messages",
            "`messages` must not be empty",
        ));
    }
    let mut messages = Vec::with_capacity(body.messages.len());
    for (i, m) in body.messages.into_iter().enumerate() {
        let content = match m.content {
            None => String::new(),
            Some(Content::Text(t)) => t,
            Some(Content::Parts(parts)) => flatten_parts(i, parts)?,
        };
        messages.push(ChatMessage {
            role: m.role,
            content,
        });
    }
    Ok(Prompt::Chat(messages))
}

/// Joins `{"type":"text"}` parts; other part types (images, audio) have no text to give.
fn flatten_parts(message: usize, parts: Vec<Part>) -> Result<String, ApiError> {
    let mut text = String::new();
    for (j, part) in parts.into_iter().enumerate() {
        match (part.kind.as_str(), part.text) {
            ("text", Some(t)) => {
                if !text.is_empty() {
                    text.push('\n');
                }
                text.push_str(&t);
            }
            ("text", None) => {
                return Err(ApiError::bad_param(
                    "messages",
                    format!("messages[{message}].content[{j}] has no `text`"),
                ));
            }
            (other, _) => {
                return Err(ApiError::bad_param(
                    "messages",
                    format!(
                        "messages[{message}].content[{j}] has type {other:?}; only \"text\" parts are supported"
                    ),
                ));
            }
        }
    }
    Ok(text)
}

fn completion_prompt(raw: &Value) -> Result<Prompt, ApiError> {
    let body = CompletionBody::deserialize(raw)
        .map_err(|_| ApiError::bad_param("prompt", "field `prompt` is required"))?;
    match body.prompt {
        Value::String(s) => Ok(Prompt::Text(s)),
        Value::Array(items) if items.len() == 1 && items[0].is_string() => Ok(Prompt::Text(
            items[0].as_str().unwrap_or_default().to_string(),
        )),
        Value::Array(items) if items.len() > 1 && items.iter().all(Value::is_string) => {
            Err(ApiError::bad_param(
                "prompt",
                format!(
                    "a list of {} prompts is not supported: send one request per prompt",
                    items.len()
                ),
            ))
        }
        _ => Err(ApiError::bad_param(
            "prompt",
            "`prompt` must be a string (token-id prompts are not supported)",
        )),
    }
}

fn response_format(format: &Value) -> Result<Option<ResponseFormat>, ApiError> {
    let kind = format.get("type").and_then(Value::as_str);
    match kind {
        Some("text") => Ok(None),
        Some("json_object") => Ok(Some(ResponseFormat::JsonObject)),
        Some("json_schema") => {
            let schema = format.get("json_schema").and_then(|j| j.get("schema"));
            match schema {
                Some(schema) if schema.is_object() || schema.is_boolean() => {
                    Ok(Some(ResponseFormat::JsonSchema(schema.clone())))
                }
                _ => Err(ApiError::bad_param(
                    "response_format",
                    "response_format of type json_schema needs a `json_schema.schema` object",
                )),
            }
        }
        _ => Err(ApiError::bad_param(
            "response_format",
            format!(
                "response_format.type must be \"text\", \"json_object\" or \"json_schema\", got {}",
                format
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat(body: &str) -> Result<ParsedRequest, ApiError> {
        parse(ApiKind::Chat, body.as_bytes(), "chatcmpl-1".into())
    }

    #[test]
    fn chat_content_parts_are_flattened() {
        let r = chat(
            r#"{"messages":[{"role":"system","content":"be brief"},
                {"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}]}"#,
        )
        .unwrap();
        assert_eq!(r.model, None);
        let Prompt::Chat(m) = r.request.prompt else {
            panic!("chat prompt")
        };
        assert_eq!(
            m[1],
            ChatMessage {
                role: "user".into(),
                content: "a\nb".into()
            }
        );
    }

    #[test]
    fn options_are_read() {
        let r = chat(
            r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"max_completion_tokens":5,"max_tokens":9,
                "stop":"x","seed":-1,"ignore_eos":true,"temperature":0,"stream":true,
                "stream_options":{"include_usage":true},
                "response_format":{"type":"json_schema","json_schema":{"name":"a","schema":{"type":"object"}}}}"#,
        )
        .unwrap();
        assert_eq!(r.model.as_deref(), Some("m"));
        assert_eq!(r.request.max_tokens, Some(5));
        assert_eq!(r.request.stop, vec!["x".to_string()]);
        assert_eq!(r.request.seed, Some(u64::MAX));
        assert!(r.request.ignore_eos && r.stream && r.include_usage && !r.continuous_usage);
        assert_eq!(
            r.request.response_format,
            Some(ResponseFormat::JsonSchema(
                serde_json::json!({"type":"object"})
            ))
        );
        assert_eq!(r.request.raw["model"], "m");
    }

    #[test]
    fn invalid_bodies_are_400() {
        for body in [
            "not json",
            "[1]",
            r#"{"messages":[]}"#,
            r#"{"model":"m"}"#,
            r#"{"messages":[{"role":"user","content":"x"}],"n":2}"#,
            r#"{"messages":[{"role":"user","content":"x"}],"max_tokens":0}"#,
            r#"{"messages":[{"role":"user","content":"x"}],"max_tokens":"many"}"#,
            r#"{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{}}]}]}"#,
            r#"{"messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_schema"}}"#,
            r#"{"messages":[{"role":"user","content":"x"}],"stream_options":{"include_usage":true}}"#,
        ] {
            let err = chat(body).unwrap_err();
            assert_eq!(err.status.as_u16(), 400, "{body}: {err:?}");
            assert_eq!(err.kind, "BadRequestError");
        }
    }

    #[test]
    fn completion_prompts() {
        let p = |b: &str| parse(ApiKind::Completion, b.as_bytes(), "cmpl-1".into());
        assert_eq!(
            p(r#"{"prompt":"abc"}"#).unwrap().request.prompt,
            Prompt::Text("abc".into())
        );
        assert_eq!(
            p(r#"{"prompt":["abc"]}"#).unwrap().request.prompt,
            Prompt::Text("abc".into())
        );
        assert!(
            p(r#"{"prompt":["a","b"]}"#)
                .unwrap_err()
                .message
                .contains("one request per prompt")
        );
        assert!(p(r#"{"prompt":[1,2]}"#).is_err());
        assert!(p(r#"{}"#).is_err());
        let json_object = p(r#"{"prompt":"a","response_format":{"type":"json_object"}}"#).unwrap();
        assert_eq!(
            json_object.request.response_format,
            Some(ResponseFormat::JsonObject)
        );
        assert_eq!(
            p(r#"{"prompt":"a","response_format":{"type":"text"}}"#)
                .unwrap()
                .request
                .response_format,
            None
        );
    }
}
