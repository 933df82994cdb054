//! Deterministic answers: what a simulated request generates, token by token.
//!
//! The text starts with `sim-` and the first 8 hex digits of the xxh3-64 digest of the last user
//! message (chat) or of the prompt (completions), so a test can check that each output belongs to
//! its input. Then come filler words, one token each, until the output length. With
//! `response_format` the text is a JSON instance of the schema ([`crate::schema`]) cut into
//! 4-character tokens; it finishes with "stop" when whole and "length" when `max_tokens` cut it.

use drover_server::{FinishReason, GenRequest, Prompt, ResponseFormat};
use xxhash_rust::xxh3::xxh3_64;

use crate::engine::mix64;
use crate::output_len::OutputLen;
use crate::schema;
use crate::tokens::CHARS_PER_TOKEN;

/// Filler vocabulary: one word per generated token.
const WORDS: &[&str] = &[
    "the",
    "model",
    "says",
    "that",
    "this",
    "answer",
    "is",
    "simulated",
    "and",
    "every",
    "token",
    "costs",
    "one",
    "step",
    "of",
    "a",
    "batch",
    "on",
    "an",
    "engine",
    "with",
    "paged",
    "cache",
    "blocks",
    "for",
    "prefix",
    "reuse",
    "while",
    "requests",
    "wait",
    "in",
    "line",
];

/// The text whose digest names the answer: the last user message, or the prompt.
pub fn digest_source(prompt: &Prompt) -> &str {
    match prompt {
        Prompt::Chat(messages) => messages
            .iter()
            .rev()
            .find(|m| m.role == "user")
            .or(messages.last())
            .map_or("", |m| m.content.as_str()),
        Prompt::Text(text) => text,
    }
}

/// `sim-` + the first 8 hex digits of xxh3-64 of `text`.
pub fn digest_label(text: &str) -> String {
    format!("sim-{:08x}", xxh3_64(text.as_bytes()) >> 32)
}

/// How output lengths are chosen when the request does not force one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LengthPolicy {
    /// Distribution of lengths for requests without `max_tokens`.
    pub output_len: OutputLen,
    /// Also end requests that have `max_tokens` at a length drawn from `output_len` (an EOS),
    /// unless they set `ignore_eos`. Off by default: `max_tokens` is then the exact length.
    pub sample_eos: bool,
}

/// What one request will generate.
#[derive(Debug, Clone, PartialEq)]
pub struct AnswerPlan {
    label: String,
    body: Body,
    /// Tokens to generate (≥ 1).
    pub tokens: u32,
    /// How the generation ends.
    pub finish: FinishReason,
    /// A stop string cut the text: (token index, bytes of that token kept); later tokens are empty.
    cut: Option<(u32, usize)>,
}

#[derive(Debug, Clone, PartialEq)]
enum Body {
    Filler {
        seed: u64,
    },
    /// JSON text and its token boundaries (byte offsets, one more than the tokens).
    Json {
        text: String,
        bounds: Vec<usize>,
    },
}

impl AnswerPlan {
    /// Plans the answer to `request`: `room` is how many tokens the context still holds after the
    /// prompt (≥ 1), `draw` a uniformly random 64-bit number for the length distribution.
    pub fn new(request: &GenRequest, room: u32, policy: LengthPolicy, draw: u64) -> AnswerPlan {
        let label = digest_label(digest_source(&request.prompt));
        let seed = xxh3_64(label.as_bytes());
        let limit = request.max_tokens.unwrap_or(room).min(room).max(1);
        let mut plan = match &request.response_format {
            Some(format) => {
                let value = match format {
                    ResponseFormat::JsonObject => schema::json_object(&label),
                    ResponseFormat::JsonSchema(s) => schema::instance(s, &label),
                };
                let text = value.to_string();
                let bounds = token_bounds(&text);
                let natural = (bounds.len() - 1) as u32;
                let (tokens, finish) = if natural > limit {
                    (limit, FinishReason::Length)
                } else {
                    (natural.max(1), FinishReason::Stop)
                };
                AnswerPlan {
                    label,
                    body: Body::Json { text, bounds },
                    tokens,
                    finish,
                    cut: None,
                }
            }
            None => {
                let drawn = policy.output_len.draw(draw).max(1);
                let (tokens, finish) = match request.max_tokens {
                    Some(m) if request.ignore_eos || !policy.sample_eos => {
                        (m, FinishReason::Length)
                    }
                    Some(m) if drawn < m => (drawn, FinishReason::Stop),
                    Some(m) => (m, FinishReason::Length),
                    None => (drawn, FinishReason::Stop),
                };
                let (tokens, finish) = if tokens > room {
                    (room, FinishReason::Length)
                } else {
                    (tokens, finish)
                };
                AnswerPlan {
                    label,
                    body: Body::Filler { seed },
                    tokens: tokens.max(1),
                    finish,
                    cut: None,
                }
            }
        };
        if !request.stop.is_empty() && !request.ignore_eos {
            plan.apply_stop(&request.stop);
        }
        plan
    }

    /// The `sim-xxxxxxxx` label of this answer.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The text of token `i` (0-based, `i < tokens`).
    pub fn token(&self, i: u32) -> String {
        let full = self.raw_token(i);
        match self.cut {
            Some((at, keep)) if i == at => full[..keep].to_string(),
            Some((at, _)) if i > at => String::new(),
            _ => full.into_owned(),
        }
    }

    /// The whole answer text.
    pub fn text(&self) -> String {
        (0..self.tokens).map(|i| self.token(i)).collect()
    }

    fn raw_token(&self, i: u32) -> std::borrow::Cow<'_, str> {
        match &self.body {
            Body::Filler { seed } => {
                if i == 0 {
                    std::borrow::Cow::Borrowed(self.label.as_str())
                } else {
                    let word = WORDS[(mix64(seed ^ u64::from(i)) % WORDS.len() as u64) as usize];
                    std::borrow::Cow::Owned(format!(" {word}"))
                }
            }
            Body::Json { text, bounds } => {
                let i = i as usize;
                std::borrow::Cow::Borrowed(&text[bounds[i]..bounds[i + 1]])
            }
        }
    }

    /// Ends the answer before the first stop string, as an engine does: the token that completes
    /// the stop string is the last one generated, and the text stops where the stop string begins.
    fn apply_stop(&mut self, stops: &[String]) {
        let longest = stops.iter().map(String::len).max().unwrap_or(0);
        let mut text = String::new();
        let mut starts = Vec::with_capacity(self.tokens as usize);
        for i in 0..self.tokens {
            starts.push(text.len());
            let piece = self.raw_token(i);
            let from = text.len().saturating_sub(longest);
            text.push_str(&piece);
            let window_start = (from..=from + 3)
                .find(|&k| text.is_char_boundary(k))
                .unwrap_or(from);
            let found = stops
                .iter()
                .filter(|s| !s.is_empty())
                .filter_map(|s| {
                    text[window_start..]
                        .find(s.as_str())
                        .map(|p| window_start + p)
                })
                .min();
            if let Some(at) = found {
                let token = starts.iter().rposition(|&s| s <= at).unwrap_or(0) as u32;
                self.cut = Some((token, at - starts[token as usize]));
                self.tokens = i + 1;
                self.finish = FinishReason::Stop;
                return;
            }
        }
    }
}

/// Byte offsets cutting `text` into tokens of [`CHARS_PER_TOKEN`] characters.
fn token_bounds(text: &str) -> Vec<usize> {
    let mut bounds: Vec<usize> = text
        .char_indices()
        .map(|(i, _)| i)
        .enumerate()
        .filter(|(n, _)| n % CHARS_PER_TOKEN == 0)
        .map(|(_, i)| i)
        .collect();
    bounds.push(text.len());
    if bounds.len() == 1 {
        bounds.insert(0, 0);
    }
    bounds
}

#[cfg(test)]
mod tests {
    use super::*;
    use drover_server::ChatMessage;
    use serde_json::{Value, json};

    fn request(prompt: Prompt, max_tokens: Option<u32>) -> GenRequest {
        GenRequest {
            id: "x".into(),
            prompt,
            max_tokens,
            temperature: None,
            top_p: None,
            seed: None,
            stop: Vec::new(),
            response_format: None,
            ignore_eos: false,
            raw: Value::Null,
        }
    }

    const POLICY: LengthPolicy = LengthPolicy {
        output_len: OutputLen::Fixed(128),
        sample_eos: false,
    };

    fn chat(text: &str) -> Prompt {
        Prompt::Chat(vec![
            ChatMessage {
                role: "system".into(),
                content: "sys".into(),
            },
            ChatMessage {
                role: "user".into(),
                content: text.into(),
            },
            ChatMessage {
                role: "assistant".into(),
                content: "earlier".into(),
            },
        ])
    }

    #[test]
    fn text_starts_with_the_digest_of_the_last_user_message() {
        let plan = AnswerPlan::new(&request(chat("hello"), Some(5)), 100, POLICY, 0);
        let expected = format!("sim-{}", &format!("{:016x}", xxh3_64(b"hello"))[..8]);
        assert_eq!(plan.label(), expected);
        assert_eq!((plan.tokens, plan.finish), (5, FinishReason::Length));
        assert_eq!(plan.token(0), expected);
        assert!(plan.token(1).starts_with(' '));
        assert!(plan.text().starts_with(&expected));
        assert_eq!(
            plan,
            AnswerPlan::new(&request(chat("hello"), Some(5)), 100, POLICY, 7),
            "deterministic"
        );
        let text = AnswerPlan::new(
            &request(Prompt::Text("hello".into()), Some(1)),
            100,
            POLICY,
            0,
        );
        assert_eq!(text.text(), expected, "completions digest the prompt");
    }

    #[test]
    fn lengths_follow_max_tokens_or_the_distribution() {
        let no_max = AnswerPlan::new(&request(chat("a"), None), 1000, POLICY, 0);
        assert_eq!((no_max.tokens, no_max.finish), (128, FinishReason::Stop));
        let capped = AnswerPlan::new(&request(chat("a"), None), 50, POLICY, 0);
        assert_eq!(
            (capped.tokens, capped.finish),
            (50, FinishReason::Length),
            "never past max_model_len"
        );
        let eos = LengthPolicy {
            output_len: OutputLen::Uniform(10, 20),
            sample_eos: true,
        };
        let early = AnswerPlan::new(&request(chat("a"), Some(100)), 1000, eos, 3);
        assert_eq!((early.tokens, early.finish), (13, FinishReason::Stop));
        let mut ignore = request(chat("a"), Some(100));
        ignore.ignore_eos = true;
        assert_eq!(AnswerPlan::new(&ignore, 1000, eos, 3).tokens, 100);
    }

    #[test]
    fn json_answers_validate_and_truncate() {
        let mut r = request(chat("q"), None);
        r.response_format = Some(ResponseFormat::JsonSchema(
            json!({"type":"object","properties":{"a":{"type":"string"}},"required":["a"]}),
        ));
        let plan = AnswerPlan::new(&r, 1000, POLICY, 0);
        let v: Value = serde_json::from_str(&plan.text()).unwrap();
        assert_eq!(v["a"], plan.label());
        assert_eq!(plan.finish, FinishReason::Stop);
        assert_eq!(
            plan.tokens as usize,
            plan.text().chars().count().div_ceil(4)
        );
        r.max_tokens = Some(3);
        let cut = AnswerPlan::new(&r, 1000, POLICY, 0);
        assert_eq!(
            (cut.tokens, cut.finish, cut.text().len()),
            (3, FinishReason::Length, 12)
        );
        r.response_format = Some(ResponseFormat::JsonObject);
        r.max_tokens = None;
        let obj: Value =
            serde_json::from_str(&AnswerPlan::new(&r, 1000, POLICY, 0).text()).unwrap();
        assert_eq!(obj["answer"], plan.label());
    }

    #[test]
    fn stop_strings_end_the_answer() {
        let base = AnswerPlan::new(&request(chat("z"), Some(40)), 1000, POLICY, 0);
        let full = base.text();
        // Stop at the third filler word (which spans the token that completes it).
        let word = base.token(3);
        let mut r = request(chat("z"), Some(40));
        r.stop = vec![word.clone()];
        let plan = AnswerPlan::new(&r, 1000, POLICY, 0);
        let at = full.find(&word).unwrap();
        assert_eq!(plan.text(), full[..at]);
        assert_eq!(plan.finish, FinishReason::Stop);
        assert!(plan.tokens <= 4);
        r.stop = vec!["never appears".into()];
        assert_eq!(AnswerPlan::new(&r, 1000, POLICY, 0).text(), full);
    }

    #[test]
    fn token_bounds_respect_characters() {
        assert_eq!(token_bounds("abcdefghi"), vec![0, 4, 8, 9]);
        assert_eq!(token_bounds(""), vec![0, 0]);
        assert_eq!(token_bounds("ééééé"), vec![0, 8, 10]);
    }
}
