//! Turning a [`Generation`]'s events into an HTTP answer: a JSON body, or an SSE stream.
//!
//! Dropping either answer drops the `Generation`, which is how an engine learns that the client
//! went away (hyper drops the handler future, or the streaming body, when the connection closes).

use std::convert::Infallible;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use tokio::sync::mpsc::error::TryRecvError;

use crate::ApiError;
use crate::engine::{GenEvent, Generation};
use crate::metrics::RequestMeter;
use crate::response::{self, AnswerHead, ChunkWriter, UsageCounts};

/// Stop gathering queued events into one write past this size.
const BATCH_BYTES: usize = 64 * 1024;

fn closed_early() -> ApiError {
    ApiError::internal("the engine stopped before finishing the request")
}

/// Waits for the whole generation and answers with one JSON body.
pub(crate) async fn full(
    head: AnswerHead,
    mut generation: Generation,
    mut meter: RequestMeter,
) -> Response {
    let mut text = String::new();
    let mut usage = UsageCounts {
        prompt: generation.prompt_tokens,
        ..UsageCounts::default()
    };
    loop {
        match generation.events.recv().await {
            Some(GenEvent::Token { text: piece }) => {
                meter.token(Instant::now());
                text.push_str(&piece);
            }
            Some(GenEvent::Done {
                finish_reason,
                completion_tokens,
                cached_tokens,
            }) => {
                meter.finish(Instant::now(), finish_reason, completion_tokens);
                usage.completion = completion_tokens;
                usage.cached = cached_tokens;
                let body = response::full_body(&head, &text, finish_reason, usage);
                let mut response = body.into_response();
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                return response;
            }
            Some(GenEvent::Error(message)) => {
                meter.fail();
                return ApiError::internal(message).into_response();
            }
            None => {
                meter.fail();
                return closed_early().into_response();
            }
        }
    }
}

/// Answers with an SSE stream, one `data:` chunk per token.
pub(crate) fn streaming(
    head: AnswerHead,
    generation: Generation,
    meter: RequestMeter,
    include_usage: bool,
    continuous_usage: bool,
) -> Response {
    let state = StreamState {
        writer: ChunkWriter::new(&head),
        chat: head.kind == crate::request::ApiKind::Chat,
        usage: UsageCounts {
            prompt: generation.prompt_tokens,
            ..UsageCounts::default()
        },
        generation,
        meter,
        include_usage,
        continuous_usage,
        started: false,
        finished: false,
        pending: None,
    };
    let stream = futures::stream::unfold(state, |mut state| async move {
        let batch = state.next_batch().await?;
        Some((Ok::<_, Infallible>(Bytes::from(batch)), state))
    });
    let mut response = Body::from_stream(stream).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

struct StreamState {
    generation: Generation,
    meter: RequestMeter,
    writer: ChunkWriter,
    chat: bool,
    usage: UsageCounts,
    include_usage: bool,
    continuous_usage: bool,
    started: bool,
    finished: bool,
    /// A token not yet written: held only while more events are already queued, so that the
    /// last token's chunk can carry `finish_reason` without delaying any token.
    pending: Option<String>,
}

impl StreamState {
    /// Everything that is ready now, as one write; `None` once the stream is over.
    async fn next_batch(&mut self) -> Option<String> {
        if self.finished {
            return None;
        }
        let mut out = String::new();
        if !self.started {
            self.started = true;
            if self.chat {
                out.push_str(
                    &self
                        .writer
                        .role(self.continuous_usage.then_some(self.usage)),
                );
                return Some(out);
            }
        }
        let first = self.generation.events.recv().await;
        self.handle(first, &mut out);
        while !self.finished && out.len() < BATCH_BYTES {
            match self.generation.events.try_recv() {
                Ok(event) => self.handle(Some(event), &mut out),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => self.handle(None, &mut out),
            }
        }
        self.flush_pending(&mut out);
        Some(out)
    }

    fn flush_pending(&mut self, out: &mut String) {
        if let Some(text) = self.pending.take() {
            out.push_str(&self.writer.content(
                &text,
                None,
                self.continuous_usage.then_some(self.usage),
            ));
        }
    }

    fn handle(&mut self, event: Option<GenEvent>, out: &mut String) {
        match event {
            Some(GenEvent::Token { text }) => {
                self.meter.token(Instant::now());
                self.flush_pending(out);
                self.usage.completion += 1;
                self.pending = Some(text);
            }
            Some(GenEvent::Done {
                finish_reason,
                completion_tokens,
                cached_tokens,
            }) => {
                self.meter
                    .finish(Instant::now(), finish_reason, completion_tokens);
                self.usage.completion = completion_tokens;
                self.usage.cached = cached_tokens;
                let last = self.pending.take().unwrap_or_default();
                let usage = self.continuous_usage.then_some(self.usage);
                out.push_str(&self.writer.content(&last, Some(finish_reason), usage));
                if self.include_usage {
                    out.push_str(&self.writer.usage(self.usage));
                }
                out.push_str(response::DONE);
                self.finished = true;
            }
            Some(GenEvent::Error(message)) => self.fail(ApiError::internal(message), out),
            None => self.fail(closed_early(), out),
        }
    }

    fn fail(&mut self, error: ApiError, out: &mut String) {
        self.meter.fail();
        self.flush_pending(out);
        out.push_str(&response::error_chunk(&error));
        out.push_str(response::DONE);
        self.finished = true;
    }
}
