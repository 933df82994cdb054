//! Response bodies: the non-streaming JSON answers and the SSE chunks, in vLLM's shapes (vllm-facts §5).
//!
//! Streaming chunks are written by hand around a pre-rendered head, because a busy server writes
//! one chunk per token; only the token text goes through the JSON string escaper.

use serde::Serialize;

use crate::engine::FinishReason;
use crate::request::ApiKind;

/// Token counts of one answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct UsageCounts {
    pub prompt: u32,
    pub completion: u32,
    pub cached: u32,
}

#[derive(Serialize)]
struct UsageJson {
    prompt_tokens: u32,
    total_tokens: u32,
    completion_tokens: u32,
    prompt_tokens_details: CachedJson,
}

#[derive(Serialize)]
struct CachedJson {
    cached_tokens: u32,
}

impl UsageCounts {
    fn json(self) -> UsageJson {
        UsageJson {
            prompt_tokens: self.prompt,
            total_tokens: self.prompt + self.completion,
            completion_tokens: self.completion,
            prompt_tokens_details: CachedJson {
                cached_tokens: self.cached,
            },
        }
    }

    fn write(self, out: &mut String) {
        serde_json::to_writer(StringWriter(out), &self.json()).expect("usage serializes");
    }
}

/// `serde_json` writes to an `io::Write`; this adapter appends its (always UTF-8) output to a `String`.
struct StringWriter<'a>(&'a mut String);

impl std::io::Write for StringWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // serde_json only ever writes complete UTF-8 sequences.
        let s = std::str::from_utf8(buf)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        self.0.push_str(s);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn push_json_str(out: &mut String, s: &str) {
    serde_json::to_writer(StringWriter(out), s).expect("a string serializes");
}

/// What every body of one answer shares.
pub(crate) struct AnswerHead {
    pub kind: ApiKind,
    pub id: String,
    pub created: u64,
    pub model: String,
}

/// The non-streaming body.
pub(crate) fn full_body(
    head: &AnswerHead,
    text: &str,
    finish: FinishReason,
    usage: UsageCounts,
) -> String {
    #[derive(Serialize)]
    struct Body<'a, C> {
        id: &'a str,
        object: &'static str,
        created: u64,
        model: &'a str,
        choices: [C; 1],
        usage: UsageJson,
    }
    #[derive(Serialize)]
    struct ChatChoice<'a> {
        index: u32,
        message: Message<'a>,
        logprobs: Option<()>,
        finish_reason: &'static str,
        stop_reason: Option<()>,
    }
    #[derive(Serialize)]
    struct Message<'a> {
        role: &'static str,
        content: &'a str,
        tool_calls: [(); 0],
    }
    #[derive(Serialize)]
    struct TextChoice<'a> {
        index: u32,
        text: &'a str,
        logprobs: Option<()>,
        finish_reason: &'static str,
        stop_reason: Option<()>,
    }
    let finish_reason = finish.as_str();
    let result = match head.kind {
        ApiKind::Chat => serde_json::to_string(&Body {
            id: &head.id,
            object: "chat.completion",
            created: head.created,
            model: &head.model,
            choices: [ChatChoice {
                index: 0,
                message: Message {
                    role: "assistant",
                    content: text,
                    tool_calls: [],
                },
                logprobs: None,
                finish_reason,
                stop_reason: None,
            }],
            usage: usage.json(),
        }),
        ApiKind::Completion => serde_json::to_string(&Body {
            id: &head.id,
            object: "text_completion",
            created: head.created,
            model: &head.model,
            choices: [TextChoice {
                index: 0,
                text,
                logprobs: None,
                finish_reason,
                stop_reason: None,
            }],
            usage: usage.json(),
        }),
    };
    result.expect("a response body serializes")
}

/// Writes SSE chunks (`data: …\n\n`) for one streamed answer.
pub(crate) struct ChunkWriter {
    /// `{"id":…,"object":…,"created":…,"model":…,"choices":`
    prefix: String,
    kind: ApiKind,
}

impl ChunkWriter {
    pub(crate) fn new(head: &AnswerHead) -> ChunkWriter {
        let object = match head.kind {
            ApiKind::Chat => "chat.completion.chunk",
            ApiKind::Completion => "text_completion",
        };
        let mut prefix = String::with_capacity(128);
        prefix.push_str("data: {\"id\":");
        push_json_str(&mut prefix, &head.id);
        prefix.push_str(",\"object\":\"");
        prefix.push_str(object);
        prefix.push_str("\",\"created\":");
        prefix.push_str(&head.created.to_string());
        prefix.push_str(",\"model\":");
        push_json_str(&mut prefix, &head.model);
        prefix.push_str(",\"choices\":");
        ChunkWriter {
            prefix,
            kind: head.kind,
        }
    }

    /// The chat stream's opening chunk: `{"role":"assistant","content":""}`.
    pub(crate) fn role(&self, usage: Option<UsageCounts>) -> String {
        let mut out = self.start();
        out.push_str("[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"logprobs\":null,\"finish_reason\":null}]");
        self.end(out, usage)
    }

    /// One token's text; `finish` on the last one.
    pub(crate) fn content(
        &self,
        text: &str,
        finish: Option<FinishReason>,
        usage: Option<UsageCounts>,
    ) -> String {
        let mut out = self.start();
        match self.kind {
            ApiKind::Chat => {
                out.push_str("[{\"index\":0,\"delta\":{\"content\":");
                push_json_str(&mut out, text);
                out.push_str("},\"logprobs\":null,\"finish_reason\":");
            }
            ApiKind::Completion => {
                out.push_str("[{\"index\":0,\"text\":");
                push_json_str(&mut out, text);
                out.push_str(",\"logprobs\":null,\"finish_reason\":");
            }
        }
        match finish {
            Some(f) => {
                out.push('"');
                out.push_str(f.as_str());
                out.push('"');
            }
            None => out.push_str("null"),
        }
        out.push_str(",\"stop_reason\":null}]");
        self.end(out, usage)
    }

    /// The `stream_options.include_usage` chunk: no choices, only usage.
    pub(crate) fn usage(&self, usage: UsageCounts) -> String {
        let mut out = self.start();
        out.push_str("[]");
        self.end(out, Some(usage))
    }

    fn start(&self) -> String {
        let mut out = String::with_capacity(self.prefix.len() + 160);
        out.push_str(&self.prefix);
        out
    }

    fn end(&self, mut out: String, usage: Option<UsageCounts>) -> String {
        if let Some(usage) = usage {
            out.push_str(",\"usage\":");
            usage.write(&mut out);
        }
        out.push_str("}\n\n");
        out
    }
}

/// The stream's terminator.
pub(crate) const DONE: &str = "data: [DONE]\n\n";

/// An error in the middle of a stream: `data: {"error":{…}}`.
pub(crate) fn error_chunk(error: &crate::ApiError) -> String {
    format!("data: {}\n\n", error.body())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn head(kind: ApiKind) -> AnswerHead {
        AnswerHead {
            kind,
            id: "chatcmpl-1".into(),
            created: 5,
            model: "m\"x".into(),
        }
    }

    fn parse_chunk(chunk: &str) -> Value {
        let json = chunk
            .strip_prefix("data: ")
            .unwrap()
            .strip_suffix("\n\n")
            .unwrap();
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn full_bodies() {
        let usage = UsageCounts {
            prompt: 3,
            completion: 2,
            cached: 1,
        };
        let chat: Value = serde_json::from_str(&full_body(
            &head(ApiKind::Chat),
            "a\"b",
            FinishReason::Stop,
            usage,
        ))
        .unwrap();
        assert_eq!(chat["object"], "chat.completion");
        assert_eq!(chat["choices"][0]["message"]["content"], "a\"b");
        assert_eq!(chat["choices"][0]["message"]["role"], "assistant");
        assert_eq!(chat["choices"][0]["finish_reason"], "stop");
        assert_eq!(chat["usage"]["total_tokens"], 5);
        assert_eq!(chat["usage"]["prompt_tokens_details"]["cached_tokens"], 1);
        let text: Value = serde_json::from_str(&full_body(
            &head(ApiKind::Completion),
            "t",
            FinishReason::Length,
            usage,
        ))
        .unwrap();
        assert_eq!(text["object"], "text_completion");
        assert_eq!(text["choices"][0]["text"], "t");
        assert_eq!(text["choices"][0]["finish_reason"], "length");
    }

    #[test]
    fn chunks_are_valid_json() {
        let w = ChunkWriter::new(&head(ApiKind::Chat));
        let role = parse_chunk(&w.role(None));
        assert_eq!(role["object"], "chat.completion.chunk");
        assert_eq!(role["model"], "m\"x");
        assert_eq!(
            role["choices"][0]["delta"],
            serde_json::json!({"role":"assistant","content":""})
        );
        let last = parse_chunk(&w.content("x\n", Some(FinishReason::Length), None));
        assert_eq!(last["choices"][0]["delta"]["content"], "x\n");
        assert_eq!(last["choices"][0]["finish_reason"], "length");
        let usage = parse_chunk(&w.usage(UsageCounts {
            prompt: 1,
            completion: 2,
            cached: 0,
        }));
        assert_eq!(usage["choices"], serde_json::json!([]));
        assert_eq!(usage["usage"]["completion_tokens"], 2);
        let t = ChunkWriter::new(&head(ApiKind::Completion));
        let c = parse_chunk(&t.content("y", None, Some(UsageCounts::default())));
        assert_eq!(c["object"], "text_completion");
        assert_eq!(c["choices"][0]["text"], "y");
        assert!(c["choices"][0]["finish_reason"].is_null());
        assert_eq!(c["usage"]["total_tokens"], 0);
    }
}
