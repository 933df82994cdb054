//! The continuous-batching loop on the engine thread.
//!
//! One llama.cpp context holds `parallel` sequence slots over a unified KV cache. Each step:
//! take in new requests, drop those whose client left, admit waiting requests into free slots,
//! build **one** batch with a decode token for every generating sequence plus prompt chunks of
//! new ones (up to `n_batch` tokens), call `decode` once, sample every sequence that got logits,
//! and free the slots of finished ones. New requests therefore join between steps without waiting
//! for the running batch to drain (the scheme llama-server and vLLM use).
//!
//! Decode tokens go into the batch before prompt chunks, so a long new prompt delays running
//! streams by at most one `n_batch` chunk per step instead of its whole prefill.

mod sequence;

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc::{Receiver, TryRecvError};

use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::token::LlamaToken;

use crate::gauges::Shared;
use crate::request::Admission;
use sequence::{Progress, Sequence};

/// The loop's fixed inputs.
pub(crate) struct Scheduler<'m> {
    pub model: &'m LlamaModel,
    pub ctx: LlamaContext<'m>,
    pub requests: Receiver<Admission>,
    pub shared: Arc<Shared>,
    /// Sequence slots.
    pub parallel: usize,
    /// Most tokens per `decode` call.
    pub n_batch: usize,
    /// Tokens that end a generation (banned when a request sets `ignore_eos`).
    pub eog_tokens: Vec<LlamaToken>,
}

impl Scheduler<'_> {
    /// Runs until every [`crate::LlamaEngine`] handle is gone and the last request has finished.
    pub fn run(mut self) {
        let mut slots: Vec<Option<Sequence>> = (0..self.parallel).map(|_| None).collect();
        let mut waiting: VecDeque<Admission> = VecDeque::new();
        let mut batch = LlamaBatch::new(self.n_batch, 1);
        let mut disconnected = false;
        loop {
            let idle = waiting.is_empty() && slots.iter().all(Option::is_none);
            if idle {
                if disconnected {
                    return;
                }
                // Sleep until a request arrives (or the engine is dropped).
                match self.requests.recv() {
                    Ok(admission) => waiting.push_back(admission),
                    Err(_) => return,
                }
            }
            loop {
                match self.requests.try_recv() {
                    Ok(admission) => waiting.push_back(admission),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        disconnected = true;
                        break;
                    }
                }
            }

            let before = waiting.len();
            waiting.retain(|a| !a.events.is_closed());
            self.shared
                .waiting
                .fetch_sub((before - waiting.len()) as u64, Relaxed);
            for slot in slots.iter_mut() {
                if slot.as_ref().is_some_and(Sequence::is_cancelled) {
                    let seq = slot.take().expect("checked above");
                    tracing::debug!(request = %seq.request_id, "client went away; freeing its sequence");
                    self.release(&seq);
                }
            }
            self.admit(&mut slots, &mut waiting);

            let participants = self.fill_batch(&mut batch, &mut slots);
            if batch.n_tokens() == 0 {
                self.publish_kv(&slots);
                continue;
            }
            if let Err(e) = self.ctx.decode(&mut batch) {
                tracing::error!(error = %e, tokens = batch.n_tokens(), "llama.cpp decode failed; failing the batch's requests");
                for id in participants {
                    if let Some(seq) = slots[id].take() {
                        seq.fail(format!("llama.cpp decode failed: {e}"));
                        self.release(&seq);
                    }
                }
                self.publish_kv(&slots);
                continue;
            }
            self.shared.steps.fetch_add(1, Relaxed);
            self.shared
                .peak_batch_sequences
                .fetch_max(participants.len() as u64, Relaxed);
            tracing::trace!(
                sequences = participants.len(),
                tokens = batch.n_tokens(),
                "decode step"
            );

            for id in participants {
                let Some(seq) = slots[id].as_mut() else {
                    continue;
                };
                let sampled = seq.row.is_some();
                if seq.sample(&self.ctx, self.model) == Progress::Finished {
                    let seq = slots[id].take().expect("just used");
                    self.release(&seq);
                }
                if sampled {
                    self.shared.generated_tokens.fetch_add(1, Relaxed);
                }
            }
            self.publish_kv(&slots);
        }
    }

    /// KV cells in use: every running sequence's position (its tokens in the cache).
    fn publish_kv(&self, slots: &[Option<Sequence>]) {
        let used: u64 = slots.iter().flatten().map(|s| s.pos.max(0) as u64).sum();
        self.shared.kv_used.store(used, Relaxed);
    }

    /// Moves waiting requests into free slots, oldest first.
    fn admit(&mut self, slots: &mut [Option<Sequence>], waiting: &mut VecDeque<Admission>) {
        while let Some(free) = slots.iter().position(Option::is_none) {
            let Some(admission) = waiting.pop_front() else {
                break;
            };
            self.shared.waiting.fetch_sub(1, Relaxed);
            if let Some(seq) = Sequence::start(admission, free as i32, self.model, &self.eog_tokens)
            {
                tracing::debug!(request = %seq.request_id, slot = free, prompt_tokens = seq.prompt_len(), "admitted");
                slots[free] = Some(seq);
                self.shared.running.fetch_add(1, Relaxed);
            }
        }
    }

    /// Builds the step's batch and returns the slots that take part in it. Decode tokens first
    /// (one per generating sequence), then prompt chunks in slot order until `n_batch` is full;
    /// a prompt's last token asks for logits so the sequence samples its first token this step.
    fn fill_batch(&self, batch: &mut LlamaBatch, slots: &mut [Option<Sequence>]) -> Vec<usize> {
        batch.clear();
        let mut participants = Vec::new();
        for (id, slot) in slots.iter_mut().enumerate() {
            let Some(seq) = slot.as_mut() else { continue };
            if let Some(token) = seq.take_pending() {
                batch
                    .add(token, seq.pos - 1, &[seq.id], true)
                    .expect("n_batch >= parallel");
                seq.row = Some(batch.n_tokens() - 1);
                participants.push(id);
            }
        }
        for (id, slot) in slots.iter_mut().enumerate() {
            let Some(seq) = slot.as_mut() else { continue };
            let room = self.n_batch - batch.n_tokens() as usize;
            let chunk_len = seq.unprefilled().len().min(room);
            if chunk_len == 0 {
                continue;
            }
            let start = seq.pos;
            let chunk: Vec<LlamaToken> = seq.unprefilled()[..chunk_len].to_vec();
            let complete = seq.advance_prefill(chunk_len);
            for (i, token) in chunk.iter().enumerate() {
                let last = complete && i + 1 == chunk_len;
                batch
                    .add(*token, start + i as i32, &[seq.id], last)
                    .expect("chunk fits the batch");
            }
            if complete {
                seq.row = Some(batch.n_tokens() - 1);
            }
            self.shared
                .prompt_tokens
                .fetch_add(chunk_len as u64, Relaxed);
            participants.push(id);
        }
        participants
    }

    /// Frees a finished sequence's KV cells and slot.
    fn release(&mut self, seq: &Sequence) {
        if let Err(e) = self.ctx.clear_kv_cache_seq(Some(seq.id as u32), None, None) {
            tracing::warn!(error = %e, slot = seq.id, "could not clear a sequence's KV cells");
        }
        self.shared.running.fetch_sub(1, Relaxed);
    }
}
