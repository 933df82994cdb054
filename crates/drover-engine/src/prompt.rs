//! From a request's prompt (chat messages or raw text) to prompt tokens.

use drover_server::{ChatMessage, EngineError as Refusal, Prompt};
use llama_cpp_2::model::{LlamaChatMessage, LlamaChatTemplate, LlamaModel};
use llama_cpp_2::token::LlamaToken;

use crate::chat::ChatTemplate;

/// Everything needed to turn a [`Prompt`] into tokens; built once at load.
pub(crate) struct PromptFormatter {
    /// The GGUF's Jinja template, if it has one that compiles.
    jinja: Option<ChatTemplate>,
    /// llama.cpp's built-in template matcher: the GGUF template, or ChatML when there is none.
    builtin: LlamaChatTemplate,
    /// Text of the BOS token, to avoid a double BOS when the template writes it too.
    bos_text: String,
}

impl PromptFormatter {
    pub fn new(model: &LlamaModel) -> Self {
        let vocab = model.vocab();
        let token_text = |t: LlamaToken| {
            String::from_utf8_lossy(&vocab.token_to_piece(t, true, None)).into_owned()
        };
        let (bos_text, eos_text) = (token_text(vocab.bos()), token_text(vocab.eos()));
        let source = model
            .chat_template(None)
            .ok()
            .and_then(|t| t.to_string().ok());
        let jinja = source.as_deref().and_then(|src| match ChatTemplate::new(src, &bos_text, &eos_text) {
            Ok(t) => Some(t),
            Err(e) => {
                tracing::warn!(error = %e, "the model's chat template does not compile; using llama.cpp's built-in matcher");
                None
            }
        });
        let builtin = model.chat_template(None).unwrap_or_else(|_| {
            LlamaChatTemplate::new("chatml").expect("a constant without NUL bytes")
        });
        PromptFormatter {
            jinja,
            builtin,
            bos_text,
        }
    }

    /// The text the model sees for `messages` (Jinja first, llama.cpp's matcher as the fallback).
    pub fn render_chat(
        &self,
        model: &LlamaModel,
        messages: &[ChatMessage],
    ) -> Result<String, Refusal> {
        let jinja_error = match &self.jinja {
            Some(t) => match t.render(messages) {
                Ok(text) => return Ok(text),
                Err(e) => Some(e),
            },
            None => None,
        };
        let chat: Vec<LlamaChatMessage> = messages
            .iter()
            .map(|m| LlamaChatMessage::new(m.role.clone(), m.content.clone()))
            .collect::<Result<_, _>>()
            .map_err(|_| {
                Refusal::BadRequest("message content must not contain NUL characters".to_owned())
            })?;
        model
            .apply_chat_template(&self.builtin, &chat, true)
            .map_err(|e| {
                Refusal::BadRequest(match &jinja_error {
                    Some(j) => {
                        format!("the model's chat template cannot format these messages: {j}")
                    }
                    None => format!("the model's chat template cannot format these messages: {e}"),
                })
            })
    }

    /// Prompt tokens; special-token text (`<|im_start|>`) becomes the special token, as in HF
    /// tokenizers and llama-server.
    pub fn tokens(&self, model: &LlamaModel, prompt: &Prompt) -> Result<Vec<LlamaToken>, Refusal> {
        let text = match prompt {
            Prompt::Chat(messages) => self.render_chat(model, messages)?,
            Prompt::Text(text) => text.clone(),
        };
        let vocab = model.vocab();
        // A template that writes `{{ bos_token }}` plus llama.cpp adding BOS would double it.
        let body = match text.strip_prefix(self.bos_text.as_str()) {
            Some(rest) if vocab.should_add_bos() && !self.bos_text.is_empty() => rest,
            _ => text.as_str(),
        };
        let tokens = vocab.tokenize(body.as_bytes(), true, true);
        if tokens.is_empty() {
            return Err(Refusal::BadRequest("the prompt is empty".to_owned()));
        }
        Ok(tokens)
    }
}
