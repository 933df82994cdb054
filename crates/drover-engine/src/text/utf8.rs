//! Turning token bytes into text without splitting characters.
//!
//! A byte-level BPE token can end in the middle of a multi-byte character (emoji, CJK), so a
//! token's piece is not always valid UTF-8 on its own. Incomplete trailing bytes wait for the next
//! token; bytes that can never become valid are replaced by U+FFFD, as a lossy decode of the whole
//! output would do.

/// Accumulates token bytes and releases the longest complete UTF-8 prefix.
#[derive(Debug, Default)]
pub struct Utf8Buffer {
    /// At most three bytes of a character still waiting for its continuation.
    pending: Vec<u8>,
}

impl Utf8Buffer {
    /// Adds a token's bytes; returns the text that is now complete (possibly empty).
    pub fn push(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        let mut out = String::new();
        let mut rest: &[u8] = &self.pending;
        loop {
            match std::str::from_utf8(rest) {
                Ok(text) => {
                    out.push_str(text);
                    rest = &[];
                    break;
                }
                Err(e) => {
                    let (valid, after) = rest.split_at(e.valid_up_to());
                    // SAFETY-free: `valid_up_to` bytes were just checked to be UTF-8.
                    out.push_str(std::str::from_utf8(valid).unwrap_or_default());
                    match e.error_len() {
                        // Truncated character at the end: keep it for the next token.
                        None => {
                            rest = after;
                            break;
                        }
                        Some(bad) => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            rest = &after[bad..];
                        }
                    }
                }
            }
        }
        self.pending = rest.to_vec();
        out
    }

    /// Ends the stream: any incomplete character becomes U+FFFD.
    pub fn finish(&mut self) -> String {
        let out = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ascii_passes_straight_through() {
        let mut buf = Utf8Buffer::default();
        assert_eq!(buf.push(b"Hello"), "Hello");
        assert_eq!(buf.push(b", world"), ", world");
        assert_eq!(buf.finish(), "");
    }

    #[test]
    fn a_character_split_over_tokens_is_released_whole() {
        let crab = "🦀".as_bytes(); // 4 bytes
        let mut buf = Utf8Buffer::default();
        assert_eq!(buf.push(&[b'a', crab[0]]), "a");
        assert_eq!(buf.push(&crab[1..3]), "");
        assert_eq!(buf.push(&[crab[3], b'b']), "🦀b");
        assert_eq!(buf.finish(), "");
    }

    #[test]
    fn every_split_point_of_mixed_text_reassembles_exactly() {
        let text = "naïve café — 日本語 🦀 ok";
        let bytes = text.as_bytes();
        for cut in 0..=bytes.len() {
            for cut2 in cut..=bytes.len() {
                let mut buf = Utf8Buffer::default();
                let mut out = buf.push(&bytes[..cut]);
                out += &buf.push(&bytes[cut..cut2]);
                out += &buf.push(&bytes[cut2..]);
                out += &buf.finish();
                assert_eq!(out, text, "cuts at {cut}, {cut2}");
            }
        }
    }

    #[test]
    fn invalid_bytes_become_replacement_characters() {
        let mut buf = Utf8Buffer::default();
        assert_eq!(buf.push(b"a\xffb"), "a\u{FFFD}b");
        // A lead byte followed by a non-continuation byte is invalid, not pending.
        assert_eq!(buf.push(b"\xe6x"), "\u{FFFD}x");
    }

    #[test]
    fn a_truncated_character_at_the_end_is_replaced_on_finish() {
        let mut buf = Utf8Buffer::default();
        assert_eq!(buf.push(&"é".as_bytes()[..1]), "");
        assert_eq!(buf.finish(), "\u{FFFD}");
        assert_eq!(buf.push(b"x"), "x");
    }
}
