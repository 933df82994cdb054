//! The engine with the real default model (SmolLM2-135M-Instruct Q4_1): chat template, sampling
//! controls, stop strings, structured output, cancellation and continuous batching.
//!
//! Needs the model: `scripts/setup.sh --test` (or `scripts/fetch-model.sh`), or `DROVER_MODEL`.
//! Every generation is bounded by a small `max_tokens`, so each test takes seconds on 2 cores.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use drover_engine::{EngineConfig, LlamaEngine};
use drover_server::{
    ChatMessage, Engine, EngineError as Refusal, FinishReason, GenEvent, GenRequest, Generation,
    Prompt, ResponseFormat,
};
use serde_json::json;

const CTX: u32 = 1024;

fn model_path() -> PathBuf {
    EngineConfig::default_model_path().unwrap_or_else(|e| {
        panic!("{e}\nThe engine tests need the default model: run `scripts/setup.sh --test` (or set DROVER_MODEL).")
    })
}

/// One engine shared by the tests of this binary (they run concurrently, which is itself a
/// continuous-batching workout).
fn engine() -> &'static Arc<LlamaEngine> {
    static ENGINE: OnceLock<Arc<LlamaEngine>> = OnceLock::new();
    ENGINE.get_or_init(|| LlamaEngine::load(config(8, CTX)).expect("load the model"))
}

/// One llama.cpp thread per engine: the tests run several engines at once (and CI runs other
/// processes beside them), and ggml's spinning barriers collapse when threads outnumber free
/// cores (see docs/engine.md), while single-threaded engines just share the cores.
fn config(parallel: usize, ctx: u32) -> EngineConfig {
    EngineConfig {
        parallel,
        ctx,
        threads: Some(1),
        ..EngineConfig::new(model_path())
    }
}

fn chat(text: &str) -> Prompt {
    Prompt::Chat(vec![ChatMessage {
        role: "user".into(),
        content: text.into(),
    }])
}

fn request(prompt: Prompt, max_tokens: u32) -> GenRequest {
    GenRequest {
        id: "test".into(),
        prompt,
        max_tokens: Some(max_tokens),
        temperature: Some(0.0),
        top_p: None,
        seed: None,
        stop: vec![],
        response_format: None,
        ignore_eos: false,
        raw: json!({}),
    }
}

#[derive(Debug)]
struct Output {
    text: String,
    tokens: usize,
    finish: FinishReason,
    completion_tokens: u32,
}

fn collect(mut generation: Generation) -> Output {
    let mut text = String::new();
    let mut tokens = 0;
    while let Some(event) = generation.events.blocking_recv() {
        match event {
            GenEvent::Token { text: t } => {
                text += &t;
                tokens += 1;
            }
            GenEvent::Done {
                finish_reason,
                completion_tokens,
                ..
            } => {
                assert!(
                    generation.events.blocking_recv().is_none(),
                    "nothing may follow Done"
                );
                return Output {
                    text,
                    tokens,
                    finish: finish_reason,
                    completion_tokens,
                };
            }
            GenEvent::Error(e) => panic!("generation failed: {e}"),
        }
    }
    panic!("stream closed without Done")
}

fn generate(req: GenRequest) -> Output {
    collect(engine().submit(req).expect("accepted"))
}

#[test]
fn the_gguf_chat_template_is_rendered_with_its_default_system_prompt() {
    let text = engine().render_prompt(&chat("Hi")).unwrap();
    assert_eq!(
        text,
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n\
         <|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    );
    // Special-token text is parsed into single special tokens, not spelled out.
    assert_eq!(
        engine()
            .count_tokens(&Prompt::Text("<|im_start|>".into()))
            .unwrap(),
        1
    );
    let n = engine().count_tokens(&chat("Hi")).unwrap();
    assert!((20..40).contains(&n), "{n} tokens for a one-word chat");
}

#[test]
fn greedy_chat_answers_the_question() {
    let out = generate(request(
        chat("What is the capital of France? Answer in one sentence."),
        24,
    ));
    assert!(out.text.contains("Paris"), "{out:?}");
    assert_eq!(
        out.tokens as u32, out.completion_tokens,
        "one Token event per generated token"
    );
}

#[test]
fn max_tokens_ends_with_length_and_ignore_eos_fills_it() {
    let out = generate(GenRequest {
        ignore_eos: true,
        ..request(chat("Say hi."), 40)
    });
    assert_eq!(
        (out.finish, out.completion_tokens),
        (FinishReason::Length, 40),
        "{out:?}"
    );
    let out = generate(request(chat("Write a long story about a dragon."), 5));
    assert_eq!(
        (out.finish, out.completion_tokens),
        (FinishReason::Length, 5),
        "{out:?}"
    );
}

#[test]
fn eos_ends_with_stop() {
    let out = generate(request(
        chat("What is 2 + 2? Reply with just the number."),
        48,
    ));
    assert_eq!(out.finish, FinishReason::Stop, "{out:?}");
    assert!(out.completion_tokens < 48, "{out:?}");
    assert!(
        !out.text.contains("<|im_end|>"),
        "special tokens are not text: {out:?}"
    );
}

#[test]
fn stop_strings_truncate_the_output() {
    let prompt = chat("Count from 1 to 10, separated by commas.");
    let free = generate(request(prompt.clone(), 40));
    assert!(
        free.text.contains('5'),
        "the model should count past 5: {free:?}"
    );
    let stopped = generate(GenRequest {
        stop: vec!["5".into()],
        ..request(prompt, 40)
    });
    assert_eq!(stopped.finish, FinishReason::Stop, "{stopped:?}");
    // Everything up to the stop string, nothing of it.
    let cut = free.text.find('5').unwrap();
    assert_eq!(stopped.text, free.text[..cut], "free: {free:?}");
}

#[test]
fn seeded_sampling_is_reproducible() {
    // A private single-slot engine: batching with other tests' sequences changes float rounding.
    let engine = LlamaEngine::load(config(1, 256)).unwrap();
    let sampled = |seed: u64| {
        let req = GenRequest {
            temperature: Some(1.0),
            top_p: Some(0.95),
            seed: Some(seed),
            ..request(chat("Invent a name for a cat."), 16)
        };
        collect(engine.submit(req).unwrap()).text
    };
    let a = sampled(7);
    assert_eq!(a, sampled(7));
    let others: Vec<String> = (8..12).map(sampled).collect();
    assert!(
        others.iter().any(|o| *o != a),
        "different seeds should not all agree: {a:?} {others:?}"
    );
}

#[test]
fn json_schema_output_parses_and_validates() {
    let schema = json!({
        "type": "object",
        "properties": {
            "city": {"type": "string", "maxLength": 40},
            "country": {"type": "string", "maxLength": 40},
            "population_millions": {"type": "number"},
            "is_capital": {"type": "boolean"},
            "landmarks": {"type": "array", "items": {"type": "string", "maxLength": 40}, "maxItems": 3}
        },
        "required": ["city", "country", "population_millions", "is_capital", "landmarks"],
        "additionalProperties": false
    });
    let out = generate(GenRequest {
        response_format: Some(ResponseFormat::JsonSchema(
            json!({"name": "city", "schema": schema.clone()}),
        )),
        ..request(chat("Describe Paris as JSON."), 200)
    });
    assert_eq!(
        out.finish,
        FinishReason::Stop,
        "the grammar lets the model end only after a complete value: {out:?}"
    );
    let value: serde_json::Value =
        serde_json::from_str(&out.text).unwrap_or_else(|e| panic!("{e}: {:?}", out.text));
    assert!(
        jsonschema::is_valid(&schema, &value),
        "{value} does not validate"
    );
}

#[test]
fn json_object_mode_returns_an_object() {
    let out = generate(GenRequest {
        response_format: Some(ResponseFormat::JsonObject),
        ..request(
            chat("Return a JSON object with two keys: \"name\" (a string) and \"age\" (a number)."),
            200,
        )
    });
    assert_eq!(out.finish, FinishReason::Stop, "{out:?}");
    let value: serde_json::Value =
        serde_json::from_str(&out.text).unwrap_or_else(|e| panic!("{e}: {:?}", out.text));
    assert!(value.is_object(), "{value}");
}

#[test]
fn prompts_over_the_context_are_refused() {
    let long = "word ".repeat(CTX as usize * 2);
    match engine().submit(request(Prompt::Text(long), 8)) {
        Err(Refusal::ContextLength {
            max_model_len,
            prompt_tokens,
        }) => {
            assert_eq!(max_model_len, CTX);
            assert!(prompt_tokens > CTX);
        }
        other => panic!("expected ContextLength, got {other:?}"),
    }
    let err = engine().submit(request(chat("Hi"), CTX)).unwrap_err();
    assert!(matches!(err, Refusal::MaxTokens { .. }), "{err}");
    let err = engine()
        .submit(GenRequest {
            temperature: Some(-1.0),
            ..request(chat("Hi"), 8)
        })
        .unwrap_err();
    assert!(matches!(err, Refusal::BadRequest(_)), "{err}");
}

#[test]
fn a_dropped_receiver_frees_the_sequence() {
    let engine = LlamaEngine::load(config(2, 512)).unwrap();
    let mut generation = engine
        .submit(GenRequest {
            ignore_eos: true,
            ..request(chat("Tell me a story."), 400)
        })
        .unwrap();
    for _ in 0..3 {
        assert!(matches!(
            generation.events.blocking_recv(),
            Some(GenEvent::Token { .. })
        ));
    }
    assert_eq!(engine.gauges().running, 1);
    drop(generation);
    let deadline = Instant::now() + Duration::from_secs(10);
    while engine.gauges().running != 0 {
        assert!(
            Instant::now() < deadline,
            "the abandoned sequence was never freed"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let generated = engine.stats().generated_tokens;
    assert!(
        generated < 100,
        "generation should stop soon after the drop, made {generated} tokens"
    );
    assert_eq!(engine.gauges().kv_cache_usage, 0.0);
    // The freed slot serves the next request.
    let out = collect(engine.submit(request(chat("Say hi."), 8)).unwrap());
    assert!(!out.text.is_empty());
}

#[test]
fn concurrent_requests_share_decode_steps() {
    // A private engine so the step statistics belong to these 8 requests only.
    let engine = LlamaEngine::load(config(8, 512)).unwrap();
    let questions = [
        "What is the capital of France?",
        "Give me three tips for staying healthy.",
        "Explain what a computer is to a child.",
        "Write a short poem about the sea.",
        "What is photosynthesis?",
        "Name three famous painters.",
        "Why is the sky blue?",
        "How do I boil an egg?",
    ];
    let generations: Vec<Generation> = questions
        .iter()
        .map(|q| engine.submit(request(chat(q), 24)).unwrap())
        .collect();
    let outputs: Vec<Output> = generations.into_iter().map(collect).collect();
    for (q, out) in questions.iter().zip(&outputs) {
        assert!(!out.text.trim().is_empty(), "{q}: {out:?}");
    }
    let stats = engine.stats();
    let total: u64 = outputs.iter().map(|o| u64::from(o.completion_tokens)).sum();
    assert!(
        stats.peak_batch_sequences >= 4,
        "requests were not batched together: {stats:?}"
    );
    // Sequential decoding would need one step per token; shared steps need far fewer.
    assert!(
        stats.steps < total / 2,
        "{} steps for {total} tokens: {stats:?}",
        stats.steps
    );
    let gauges = engine.gauges();
    assert_eq!((gauges.running, gauges.waiting), (0, 0));
}
