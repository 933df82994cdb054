//! Picking the next token of one sequence: the llama.cpp sampler chain, plus the grammar when
//! `response_format` asks for one.
//!
//! A grammar sampler checks every vocabulary entry against the grammar's parse stacks; over
//! SmolLM2's 49,152 tokens that costs more than the model's own decode. Like llama.cpp's
//! `common_sampler`, the picker therefore samples without the grammar first and only checks the
//! chosen token; when the grammar rejects it, it resamples from the logits with the grammar
//! applied. The output distribution is the same as grammar-first (a rejected token can never be
//! chosen), and the common case costs one token check instead of 49,152.

use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;
use llama_cpp_2::token::data::LlamaTokenData;
use llama_cpp_2::token::data_array::LlamaTokenDataArray;
use llama_cpp_2::token::logit_bias::LlamaLogitBias;

use super::SamplingParams;

/// How far back penalties look: vLLM penalises the whole output; a fixed window keeps the cost
/// per step bounded and is llama-server's default order of magnitude.
const PENALTY_WINDOW: i32 = 256;

/// One sequence's token picker. Not `Send` (llama.cpp samplers): it lives on the engine thread.
pub struct TokenPicker {
    /// Bias, penalties, filters, temperature and the final pick.
    chain: LlamaSampler,
    /// The `response_format` grammar, checked after the chain picks.
    grammar: Option<LlamaSampler>,
}

impl TokenPicker {
    /// Builds the picker; `ban_tokens` get a logit of −∞ (end-of-generation tokens under
    /// `ignore_eos`).
    pub fn new(
        model: &LlamaModel,
        params: &SamplingParams,
        grammar: Option<&str>,
        ban_tokens: &[LlamaToken],
    ) -> Result<Self, llama_cpp_2::GrammarError> {
        let grammar = grammar
            .map(|g| LlamaSampler::grammar(model, g, "root"))
            .transpose()?;
        let mut chain = Vec::new();
        if !ban_tokens.is_empty() {
            let biases: Vec<LlamaLogitBias> = ban_tokens
                .iter()
                .map(|&t| LlamaLogitBias::new(t, f32::NEG_INFINITY))
                .collect();
            chain.push(LlamaSampler::logit_bias(model.n_vocab(), &biases));
        }
        if params.has_penalties() {
            chain.push(LlamaSampler::penalties(
                model.n_vocab(),
                PENALTY_WINDOW,
                params.repetition_penalty,
                params.frequency_penalty,
                params.presence_penalty,
            ));
        }
        if params.is_greedy() {
            chain.push(LlamaSampler::greedy());
        } else {
            if params.top_k > 0 {
                chain.push(LlamaSampler::top_k(params.top_k));
            }
            if params.top_p < 1.0 {
                chain.push(LlamaSampler::top_p(params.top_p, 1));
            }
            if params.min_p > 0.0 {
                chain.push(LlamaSampler::min_p(params.min_p, 1));
            }
            chain.push(LlamaSampler::temp(params.temperature));
            chain.push(LlamaSampler::dist(params.seed));
        }
        Ok(TokenPicker {
            chain: LlamaSampler::chain_simple(chain),
            grammar,
        })
    }

    /// Picks the next token from logits row `row` of the last decode, and records it in the
    /// samplers' state (penalty history, grammar position).
    pub fn pick(&mut self, ctx: &LlamaContext<'_>, row: i32) -> LlamaToken {
        let Some(grammar) = self.grammar.as_mut() else {
            return self.chain.sample(ctx, row);
        };
        let mut candidates = ctx.token_data_array_ith(row);
        candidates.apply_sampler(&mut self.chain);
        let token = match candidates.selected_token() {
            Some(token) if grammar_allows(grammar, token) => token,
            _ => {
                let mut candidates = ctx.token_data_array_ith(row);
                candidates.apply_sampler(grammar);
                candidates.apply_sampler(&mut self.chain);
                candidates
                    .selected_token()
                    .expect("the final sampler selects a token")
            }
        };
        grammar.accept(token);
        self.chain.accept(token);
        token
    }
}

/// Whether the grammar, in its current state, lets `token` come next.
fn grammar_allows(grammar: &mut LlamaSampler, token: LlamaToken) -> bool {
    let mut single = LlamaTokenDataArray::new(vec![LlamaTokenData::new(token, 1.0, 0.0)], false);
    single.apply_sampler(grammar);
    single.data[0].logit().is_finite()
}
