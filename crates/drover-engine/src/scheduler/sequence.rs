//! One request while it holds a sequence slot: its prompt progress, sampler and output text.

use drover_server::{FinishReason, GenEvent};
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::token::LlamaToken;
use tokio::sync::mpsc;

use crate::request::Admission;
use crate::sampling::TokenPicker;
use crate::text::{StopOutcome, TextStream};

/// What a sampled token did to its sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Progress {
    /// The token goes into the next batch.
    Continue,
    /// The generation ended (or its client left); free the slot.
    Finished,
}

/// A request decoding in sequence slot `id`.
pub(super) struct Sequence {
    /// llama.cpp sequence id = slot index.
    pub id: i32,
    /// The front's request id.
    pub request_id: String,
    /// Prompt tokens.
    prompt: Vec<LlamaToken>,
    /// Prompt tokens already in a batch.
    prefilled: usize,
    /// Tokens in the KV cache for this sequence = position of the next token.
    pub pos: i32,
    /// The last sampled token, to be decoded in the next step.
    pending: Option<LlamaToken>,
    /// Row of this sequence's logits in the batch just decoded.
    pub row: Option<i32>,
    picker: TokenPicker,
    text: TextStream,
    /// Tokens sampled so far (an end-of-generation token included, as vLLM counts it).
    generated: u32,
    max_tokens: u32,
    ignore_eos: bool,
    events: mpsc::Sender<GenEvent>,
}

impl Sequence {
    /// Takes `admission` into slot `id`; `None` (after telling the client why) if its sampler
    /// cannot be built.
    pub fn start(
        admission: Admission,
        id: i32,
        model: &LlamaModel,
        eog_tokens: &[LlamaToken],
    ) -> Option<Self> {
        // With a grammar, end-of-generation is how a complete value ends: never ban it then.
        let ban: &[LlamaToken] = if admission.ignore_eos && admission.grammar.is_none() {
            eog_tokens
        } else {
            &[]
        };
        let picker = match TokenPicker::new(
            model,
            &admission.sampling,
            admission.grammar.as_deref(),
            ban,
        ) {
            Ok(s) => s,
            Err(e) => {
                let _ = admission.events.try_send(GenEvent::Error(format!(
                    "could not build the grammar sampler: {e}"
                )));
                return None;
            }
        };
        Some(Sequence {
            id,
            request_id: admission.id,
            text: TextStream::new(&admission.stop),
            prompt: admission.tokens,
            prefilled: 0,
            pos: 0,
            pending: None,
            row: None,
            picker,
            generated: 0,
            max_tokens: admission.max_tokens,
            ignore_eos: admission.ignore_eos,
            events: admission.events,
        })
    }

    /// The client dropped its receiver.
    pub fn is_cancelled(&self) -> bool {
        self.events.is_closed()
    }

    /// Prompt tokens not yet sent to llama.cpp.
    pub fn unprefilled(&self) -> &[LlamaToken] {
        &self.prompt[self.prefilled..]
    }

    /// Marks `n` more prompt tokens as batched; true when that completes the prompt.
    pub fn advance_prefill(&mut self, n: usize) -> bool {
        self.prefilled += n;
        self.pos += n as i32;
        self.prefilled == self.prompt.len()
    }

    /// The token this sequence feeds into the next batch, if it is decoding.
    pub fn take_pending(&mut self) -> Option<LlamaToken> {
        let token = self.pending.take()?;
        self.pos += 1;
        Some(token)
    }

    /// Prompt length.
    pub fn prompt_len(&self) -> usize {
        self.prompt.len()
    }

    /// Samples from this sequence's logits row and streams the result.
    pub fn sample(&mut self, ctx: &LlamaContext<'_>, model: &LlamaModel) -> Progress {
        let Some(row) = self.row.take() else {
            return Progress::Continue;
        };
        let vocab = model.vocab();
        let token = self.picker.pick(ctx, row);
        self.generated += 1;
        let (text, finish) = if vocab.is_eog(token) && !self.ignore_eos {
            (self.text.finish().into_text(), Some(FinishReason::Stop))
        } else {
            let piece = vocab.token_to_piece(token, false, None);
            match self.text.push(&piece) {
                StopOutcome::Stopped(text) => (text, Some(FinishReason::Stop)),
                StopOutcome::Continue(text) if self.generated >= self.max_tokens => {
                    match self.text.finish() {
                        StopOutcome::Continue(rest) => (text + &rest, Some(FinishReason::Length)),
                        StopOutcome::Stopped(rest) => (text + &rest, Some(FinishReason::Stop)),
                    }
                }
                StopOutcome::Continue(text) => (text, None),
            }
        };
        if !self.send(GenEvent::Token { text }) {
            return Progress::Finished;
        }
        match finish {
            Some(finish_reason) => {
                self.send(GenEvent::Done {
                    finish_reason,
                    completion_tokens: self.generated,
                    cached_tokens: 0,
                });
                Progress::Finished
            }
            None => {
                self.pending = Some(token);
                Progress::Continue
            }
        }
    }

    /// Ends the generation with an engine error.
    pub fn fail(&self, message: String) {
        self.send(GenEvent::Error(message));
    }

    /// False when the client is gone. The channel holds `max_tokens + 2` events, more than a
    /// generation ever sends, so it is never full and the engine thread never waits on a client.
    fn send(&self, event: GenEvent) -> bool {
        self.events.try_send(event).is_ok()
    }
}
