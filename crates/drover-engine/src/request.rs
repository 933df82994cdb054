//! A request the engine accepted: validated, tokenised, and ready for a sequence slot.

use drover_server::{EngineError as Refusal, GenEvent};
use llama_cpp_2::token::LlamaToken;
use tokio::sync::mpsc;

use crate::sampling::SamplingParams;

/// What travels from [`crate::LlamaEngine::submit`] to the engine thread.
pub(crate) struct Admission {
    /// The front's request id (for logs).
    pub id: String,
    /// Prompt tokens.
    pub tokens: Vec<LlamaToken>,
    /// Most tokens to generate (already within the context).
    pub max_tokens: u32,
    /// How to pick tokens.
    pub sampling: SamplingParams,
    /// GBNF grammar from `response_format`.
    pub grammar: Option<String>,
    /// Stop strings.
    pub stop: Vec<String>,
    /// Keep generating past end-of-generation tokens.
    pub ignore_eos: bool,
    /// The generation's events; closed when the client goes away.
    pub events: mpsc::Sender<GenEvent>,
}

/// The completion budget for a prompt of `prompt_tokens` in a context of `ctx` tokens: the
/// request's `max_tokens`, else whatever the context has left (vLLM's default), with vLLM's
/// messages when the request does not fit.
pub(crate) fn completion_budget(
    prompt_tokens: u32,
    max_tokens: Option<u32>,
    ctx: u32,
) -> Result<u32, Refusal> {
    // At least one token must fit after the prompt.
    if prompt_tokens >= ctx {
        return Err(Refusal::ContextLength {
            max_model_len: ctx,
            prompt_tokens,
        });
    }
    match max_tokens {
        Some(0) => Err(Refusal::BadRequest(
            "max_tokens must be at least 1, got 0.".to_owned(),
        )),
        Some(m) if u64::from(prompt_tokens) + u64::from(m) > u64::from(ctx) => {
            Err(Refusal::MaxTokens {
                max_tokens: m,
                max_model_len: ctx,
                prompt_tokens,
            })
        }
        Some(m) => Ok(m),
        None => Ok(ctx - prompt_tokens),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_defaults_to_the_rest_of_the_context() {
        assert_eq!(completion_budget(100, None, 2048).unwrap(), 1948);
        assert_eq!(completion_budget(100, Some(16), 2048).unwrap(), 16);
        assert_eq!(completion_budget(2047, Some(1), 2048).unwrap(), 1);
    }

    #[test]
    fn prompts_that_fill_the_context_are_refused_with_vllms_message() {
        let err = completion_budget(2048, None, 2048).unwrap_err();
        assert!(matches!(
            err,
            Refusal::ContextLength {
                max_model_len: 2048,
                prompt_tokens: 2048
            }
        ));
        assert!(err.to_string().starts_with("This model's maximum context length is 2048 tokens. However, your request has 2048 input tokens."));
        let err = completion_budget(100, Some(2000), 2048).unwrap_err();
        assert!(
            matches!(
                err,
                Refusal::MaxTokens {
                    max_tokens: 2000,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("(2000 > 2048 - 100)"), "{err}");
        assert!(matches!(
            completion_budget(1, Some(0), 2048),
            Err(Refusal::BadRequest(_))
        ));
        assert!(matches!(
            completion_budget(1, Some(u32::MAX), 2048),
            Err(Refusal::MaxTokens { .. })
        ));
    }
}
