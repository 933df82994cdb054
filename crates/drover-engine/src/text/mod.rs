//! From sampled tokens' bytes to the text a client receives: whole characters only, cut at stop
//! strings.

mod stop;
mod utf8;

pub use stop::{StopMatcher, StopOutcome};
pub use utf8::Utf8Buffer;

/// One generation's output text: UTF-8 reassembly followed by stop-string matching.
#[derive(Debug, Default)]
pub struct TextStream {
    utf8: Utf8Buffer,
    stop: StopMatcher,
}

impl TextStream {
    /// A stream that ends at the first of `stops`.
    pub fn new(stops: &[String]) -> Self {
        TextStream {
            utf8: Utf8Buffer::default(),
            stop: StopMatcher::new(stops),
        }
    }

    /// Feeds one token's bytes.
    pub fn push(&mut self, bytes: &[u8]) -> StopOutcome {
        let text = self.utf8.push(bytes);
        self.stop.push(&text)
    }

    /// Ends the stream for another reason (EOS, length); a stop string completed by the last
    /// bytes still counts.
    pub fn finish(&mut self) -> StopOutcome {
        let tail = self.utf8.finish();
        match self.stop.push(&tail) {
            StopOutcome::Continue(text) => StopOutcome::Continue(text + &self.stop.finish()),
            stopped => stopped,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stop_string_made_of_a_split_character_is_matched() {
        let crab = "🦀".as_bytes();
        let mut stream = TextStream::new(&["🦀".to_owned()]);
        assert_eq!(stream.push(b"hi "), StopOutcome::Continue("hi ".into()));
        assert_eq!(
            stream.push(&crab[..2]),
            StopOutcome::Continue(String::new())
        );
        assert_eq!(stream.push(&crab[2..]), StopOutcome::Stopped(String::new()));
    }

    #[test]
    fn finish_flushes_held_text() {
        let mut stream = TextStream::new(&["\n\n".to_owned()]);
        assert_eq!(stream.push(b"end\n"), StopOutcome::Continue("end".into()));
        assert_eq!(stream.finish(), StopOutcome::Continue("\n".into()));
    }
}
