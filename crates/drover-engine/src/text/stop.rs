//! Stop strings over streamed text.
//!
//! OpenAI semantics: generation ends at the first stop string and the stop string itself is not
//! returned. Because text is streamed, any tail that could still grow into a stop string (`"\n\n"`
//! after a single `"\n"`) is held back until the next token decides it; otherwise a client would
//! already have received the first half of a stop string.

/// What the matcher lets through after a piece of text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopOutcome {
    /// No stop string yet; emit this text (possibly empty: the rest is held back).
    Continue(String),
    /// A stop string was found; emit this text (everything before it) and end the generation.
    Stopped(String),
}

impl StopOutcome {
    /// The text to emit, whichever way it ended.
    pub fn into_text(self) -> String {
        match self {
            StopOutcome::Continue(t) | StopOutcome::Stopped(t) => t,
        }
    }
}

/// Finds the earliest stop string in streamed text.
#[derive(Debug, Default)]
pub struct StopMatcher {
    /// Non-empty stop strings.
    stops: Vec<String>,
    /// Text seen but not yet emitted: the longest tail that is a proper prefix of a stop string.
    held: String,
}

impl StopMatcher {
    /// A matcher for `stops`; empty strings are ignored (they would stop before any text).
    pub fn new(stops: &[String]) -> Self {
        StopMatcher {
            stops: stops.iter().filter(|s| !s.is_empty()).cloned().collect(),
            held: String::new(),
        }
    }

    /// Feeds newly generated text.
    pub fn push(&mut self, text: &str) -> StopOutcome {
        if self.stops.is_empty() {
            return StopOutcome::Continue(text.to_owned());
        }
        self.held.push_str(text);
        // Every possible start of a stop string is still in `held` (see `held_tail`), so the
        // earliest match is found here even when it spans tokens.
        if let Some(at) = self
            .stops
            .iter()
            .filter_map(|s| self.held.find(s.as_str()))
            .min()
        {
            let before = self.held[..at].to_owned();
            self.held.clear();
            return StopOutcome::Stopped(before);
        }
        let keep = self.held_tail();
        let emit = self.held[..self.held.len() - keep].to_owned();
        self.held.drain(..self.held.len() - keep);
        StopOutcome::Continue(emit)
    }

    /// Ends the stream (EOS or length): the held-back text was not a stop string after all.
    pub fn finish(&mut self) -> String {
        std::mem::take(&mut self.held)
    }

    /// Length in bytes of the longest suffix of `held` that is a proper prefix of a stop string.
    fn held_tail(&self) -> usize {
        let mut keep = 0;
        for stop in &self.stops {
            // Proper prefixes, longest first, cut on character boundaries.
            for (cut, _) in stop.char_indices().rev() {
                if cut <= keep {
                    break;
                }
                if self.held.ends_with(&stop[..cut]) {
                    keep = cut;
                    break;
                }
            }
        }
        keep
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matcher(stops: &[&str]) -> StopMatcher {
        StopMatcher::new(&stops.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    /// Feeds pieces and returns (emitted text, stopped?).
    fn run(stops: &[&str], pieces: &[&str]) -> (String, bool) {
        let mut m = matcher(stops);
        let mut out = String::new();
        for piece in pieces {
            match m.push(piece) {
                StopOutcome::Continue(t) => out += &t,
                StopOutcome::Stopped(t) => return (out + &t, true),
            }
        }
        (out + &m.finish(), false)
    }

    #[test]
    fn no_stops_is_a_pass_through() {
        assert_eq!(run(&[], &["a", "b"]), ("ab".into(), false));
        assert_eq!(run(&[""], &["a", "b"]), ("ab".into(), false));
    }

    #[test]
    fn stop_inside_one_piece_truncates_before_it() {
        assert_eq!(run(&["END"], &["hello END world"]), ("hello ".into(), true));
    }

    #[test]
    fn stop_spanning_pieces_is_found_and_never_partially_emitted() {
        let mut m = matcher(&["\n\n"]);
        assert_eq!(m.push("one\n"), StopOutcome::Continue("one".into()));
        assert_eq!(m.push("\ntwo"), StopOutcome::Stopped(String::new()));
        assert_eq!(
            run(&["STOP"], &["xS", "T", "O", "P", "y"]),
            ("x".into(), true)
        );
    }

    #[test]
    fn a_held_prefix_that_does_not_complete_is_released() {
        let mut m = matcher(&["STOP"]);
        assert_eq!(m.push("abST"), StopOutcome::Continue("ab".into()));
        assert_eq!(m.push("x"), StopOutcome::Continue("STx".into()));
        assert_eq!(run(&["STOP"], &["ab", "ST"]), ("abST".into(), false));
    }

    #[test]
    fn the_earliest_of_several_stops_wins() {
        assert_eq!(
            run(&["world", "lo"], &["hello world"]),
            ("hel".into(), true)
        );
        // By position in the text, not by order in the list: "abcdef" starts before "cd".
        assert_eq!(
            run(&["cd", "abcdef"], &["xxab", "cdef"]),
            ("xx".into(), true)
        );
    }

    #[test]
    fn overlapping_prefixes_keep_the_longest_candidate() {
        // "aab" after "aa": the held tail must be "aa" (prefix of "aab"), not just "a".
        assert_eq!(run(&["aab"], &["xa", "a", "b"]), ("x".into(), true));
        assert_eq!(run(&["aab"], &["xaa", "ab"]), ("xa".into(), true));
    }

    #[test]
    fn multibyte_stop_strings_cut_on_character_boundaries() {
        assert_eq!(
            run(&["日本"], &["今日", "は日", "本語"]),
            ("今日は".into(), true)
        );
        assert_eq!(run(&["🦀!"], &["a🦀", "b"]), ("a🦀b".into(), false));
    }
}
