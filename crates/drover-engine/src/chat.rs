//! Chat formatting with the model's own Jinja template.
//!
//! GGUF files carry the Hugging Face `tokenizer.chat_template`. llama.cpp's
//! `llama_chat_apply_template` only pattern-matches well-known template families and, for SmolLM2,
//! drops the template's default system prompt; rendering the Jinja source the way `transformers`
//! does (`trim_blocks`, `lstrip_blocks`, Python string methods, `raise_exception`) gives the exact
//! prompt the model was trained on.

use drover_server::ChatMessage;
use minijinja::{Environment, Error, ErrorKind, Value};

/// Name the template is registered under in its environment.
const NAME: &str = "chat";

/// A compiled chat template and the special tokens it may refer to.
#[derive(Debug)]
pub struct ChatTemplate {
    env: Environment<'static>,
    /// Text of the model's BOS token (`bos_token` in templates).
    bos_token: String,
    /// Text of the model's EOS token (`eos_token` in templates).
    eos_token: String,
}

impl ChatTemplate {
    /// Compiles `source`; fails on Jinja syntax the renderer does not support.
    pub fn new(source: &str, bos_token: &str, eos_token: &str) -> Result<Self, Error> {
        let mut env = Environment::new();
        // transformers compiles chat templates with these two options; without them templates
        // that put `{% … %}` on their own lines leak newlines into the prompt.
        env.set_syntax(
            minijinja::syntax::SyntaxConfig::builder()
                .trim_blocks(true)
                .lstrip_blocks(true)
                .build()?,
        );
        // `message['content'].strip()`, `.startswith()` and friends are common in HF templates.
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function(
            "raise_exception",
            |message: String| -> Result<Value, Error> {
                Err(Error::new(ErrorKind::InvalidOperation, message))
            },
        );
        env.add_template_owned(NAME, source.to_owned())?;
        Ok(ChatTemplate {
            env,
            bos_token: bos_token.to_owned(),
            eos_token: eos_token.to_owned(),
        })
    }

    /// Renders `messages` followed by the assistant's generation prompt.
    pub fn render(&self, messages: &[ChatMessage]) -> Result<String, Error> {
        let messages: Vec<Value> = messages
            .iter()
            .map(|m| {
                let map: std::collections::BTreeMap<&str, Value> = [
                    ("role", Value::from(m.role.as_str())),
                    ("content", Value::from(m.content.as_str())),
                ]
                .into();
                Value::from(map)
            })
            .collect();
        self.env.get_template(NAME)?.render(minijinja::context! {
            messages => messages,
            add_generation_prompt => true,
            bos_token => self.bos_token.as_str(),
            eos_token => self.eos_token.as_str(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `tokenizer.chat_template` of SmolLM2-135M-Instruct.Q4_1.gguf, verbatim.
    const SMOLLM2: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

    fn msg(role: &str, content: &str) -> ChatMessage {
        ChatMessage {
            role: role.into(),
            content: content.into(),
        }
    }

    #[test]
    fn smollm2_adds_its_default_system_prompt() {
        let t = ChatTemplate::new(SMOLLM2, "<|im_start|>", "<|im_end|>").unwrap();
        assert_eq!(
            t.render(&[msg("user", "Hi")]).unwrap(),
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n\
             <|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn smollm2_keeps_a_given_system_prompt() {
        let t = ChatTemplate::new(SMOLLM2, "", "").unwrap();
        let out = t
            .render(&[
                msg("system", "Be terse."),
                msg("user", "Hi"),
                msg("assistant", "Hello"),
                msg("user", "Bye"),
            ])
            .unwrap();
        assert_eq!(
            out,
            "<|im_start|>system\nBe terse.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n\
             <|im_start|>assistant\nHello<|im_end|>\n<|im_start|>user\nBye<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn hf_conventions_are_supported() {
        // Llama-3-style: bos_token, .strip(), trim_blocks/lstrip_blocks, raise_exception.
        let src = "{{ bos_token }}\n{% for m in messages %}\n    {% if m['role'] == 'tool' %}{{ raise_exception('no tools') }}{% endif %}\n{{ '<|' + m['role'] + '|>' + m['content'].strip() + eos_token }}\n{% endfor %}\n{% if add_generation_prompt %}<|assistant|>{% endif %}";
        let t = ChatTemplate::new(src, "<s>", "</s>").unwrap();
        assert_eq!(
            t.render(&[msg("user", "  hi  ")]).unwrap(),
            "<s>\n<|user|>hi</s>\n<|assistant|>"
        );
        let err = t.render(&[msg("tool", "x")]).unwrap_err();
        assert!(err.to_string().contains("no tools"), "{err}");
    }

    #[test]
    fn broken_templates_are_reported_not_rendered() {
        assert!(ChatTemplate::new("{% for m in messages %}", "", "").is_err());
    }
}
