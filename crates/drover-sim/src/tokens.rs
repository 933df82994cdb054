//! The simulator's tokenizer: 1 token ≈ 4 characters, plus a chat template of 4 tokens per message.
//!
//! Real token ids do not matter to the model of time; what matters is the count and that equal
//! prompt prefixes give equal block hashes (prefix caching). So a token is a 4-character chunk of a
//! message's content, its id a hash of those characters, and each message starts with 4 template
//! tokens derived from its role, as a chat template would add.

use drover_server::{ChatMessage, Prompt};
use xxhash_rust::xxh3::xxh3_64;

use crate::engine::{chain_hash, mix64};

/// Characters per token.
pub const CHARS_PER_TOKEN: usize = 4;
/// Template tokens added per chat message (role markers, separators).
pub const TEMPLATE_TOKENS_PER_MESSAGE: u32 = 4;

/// A prompt as the scheduler sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromptTokens {
    /// Tokens.
    pub count: u32,
    /// Chain hashes of the full blocks.
    pub block_hashes: Vec<u64>,
    /// Ids of the tokens after the last full block.
    pub tail_ids: Vec<u64>,
}

fn content_tokens(text: &str) -> u32 {
    text.chars().count().div_ceil(CHARS_PER_TOKEN) as u32
}

/// The prompt's length in tokens, without hashing (the `instant` path).
pub fn count(prompt: &Prompt) -> u32 {
    match prompt {
        Prompt::Chat(messages) => messages
            .iter()
            .map(|m| content_tokens(&m.content) + TEMPLATE_TOKENS_PER_MESSAGE)
            .sum(),
        // An empty prompt is still one (BOS) token.
        Prompt::Text(text) => content_tokens(text).max(1),
    }
}

/// Counts the prompt and hashes its full blocks of `block_size` tokens.
pub fn tokenize(prompt: &Prompt, block_size: u32) -> PromptTokens {
    let mut b = BlockHasher::new(block_size);
    match prompt {
        Prompt::Chat(messages) => {
            for ChatMessage { role, content } in messages {
                let role_id = xxh3_64(role.as_bytes());
                for k in 0..u64::from(TEMPLATE_TOKENS_PER_MESSAGE) {
                    b.push(mix64(role_id.wrapping_add(k)));
                }
                push_text(&mut b, content);
            }
        }
        Prompt::Text(text) => {
            if text.is_empty() {
                b.push(mix64(0xb05));
            }
            push_text(&mut b, text);
        }
    }
    b.finish()
}

fn push_text(b: &mut BlockHasher, text: &str) {
    let mut start = 0;
    for (n, (i, _)) in text.char_indices().enumerate() {
        if n > 0 && n % CHARS_PER_TOKEN == 0 {
            b.push(xxh3_64(&text.as_bytes()[start..i]));
            start = i;
        }
    }
    if start < text.len() {
        b.push(xxh3_64(&text.as_bytes()[start..]));
    }
}

struct BlockHasher {
    block_size: usize,
    count: u32,
    pending: Vec<u64>,
    hashes: Vec<u64>,
}

impl BlockHasher {
    fn new(block_size: u32) -> BlockHasher {
        let block_size = block_size.max(1) as usize;
        BlockHasher {
            block_size,
            count: 0,
            pending: Vec::with_capacity(block_size),
            hashes: Vec::new(),
        }
    }

    fn push(&mut self, id: u64) {
        self.count += 1;
        self.pending.push(id);
        if self.pending.len() == self.block_size {
            let prev = self.hashes.last().copied().unwrap_or(0);
            self.hashes.push(chain_hash(prev, self.pending.drain(..)));
        }
    }

    fn finish(self) -> PromptTokens {
        PromptTokens {
            count: self.count,
            block_hashes: self.hashes,
            tail_ids: self.pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(text: &str) -> ChatMessage {
        ChatMessage {
            role: "user".into(),
            content: text.into(),
        }
    }

    #[test]
    fn counts_four_characters_per_token_plus_template() {
        assert_eq!(count(&Prompt::Text("abcdefgh".into())), 2);
        assert_eq!(count(&Prompt::Text("abcdefghi".into())), 3);
        assert_eq!(count(&Prompt::Text(String::new())), 1);
        assert_eq!(
            count(&Prompt::Text("ééé".into())),
            1,
            "characters, not bytes"
        );
        let chat = Prompt::Chat(vec![
            ChatMessage {
                role: "system".into(),
                content: "be brief".into(),
            },
            user("hello"),
        ]);
        assert_eq!(count(&chat), (2 + 4) + (2 + 4));
        for p in [
            Prompt::Text("x".repeat(130)),
            chat,
            Prompt::Text(String::new()),
            Prompt::Text("日本語のテキスト".repeat(9)),
        ] {
            assert_eq!(tokenize(&p, 16).count, count(&p), "{p:?}");
        }
    }

    #[test]
    fn equal_prefixes_share_block_hashes() {
        let long = "lorem ipsum dolor sit amet ".repeat(20);
        let a = tokenize(
            &Prompt::Chat(vec![user(&format!("{long} question one"))]),
            16,
        );
        let b = tokenize(
            &Prompt::Chat(vec![user(&format!("{long} question two, longer"))]),
            16,
        );
        let c = tokenize(
            &Prompt::Chat(vec![ChatMessage {
                role: "system".into(),
                content: long.clone(),
            }]),
            16,
        );
        let shared = a
            .block_hashes
            .iter()
            .zip(&b.block_hashes)
            .take_while(|(x, y)| x == y)
            .count();
        assert!(
            shared >= (4 + long.len() / 4) / 16 - 1,
            "long shared prefix: {shared} blocks"
        );
        assert!(shared < a.block_hashes.len().max(b.block_hashes.len()));
        assert_ne!(
            a.block_hashes[0], c.block_hashes[0],
            "the role is part of the prefix"
        );
        assert_eq!(
            a.count as usize,
            a.block_hashes.len() * 16 + a.tail_ids.len()
        );
    }
}
