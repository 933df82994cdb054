//! What is wrong with an answer, worded twice: as a bullet list for the model (repair prompts)
//! and on one line for people (the `invalid_answer` record).

use std::fmt;

/// Problems listed one by one; the rest are only counted, so that one badly broken answer
/// cannot turn a repair prompt into pages of errors.
pub const MAX_LISTED: usize = 8;

/// One thing wrong with an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// JSON Pointer into the answer (`/rating`); empty for the answer as a whole.
    pub path: String,
    /// What is wrong, e.g. `7 is greater than the maximum of 5`.
    pub message: String,
}

impl Problem {
    /// A problem with the answer as a whole (no JSON object, not JSON, …).
    pub fn whole(message: impl Into<String>) -> Problem {
        Problem {
            path: String::new(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "at {}: {}", self.path, self.message)
        }
    }
}

/// The problems of one answer: the first [`MAX_LISTED`] and how many more there were.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Problems {
    /// Listed problems, in the validator's order.
    pub listed: Vec<Problem>,
    /// Problems found beyond the listed ones.
    pub more: usize,
}

impl Problems {
    /// Collects problems, keeping the first [`MAX_LISTED`].
    pub fn collect(all: impl IntoIterator<Item = Problem>) -> Problems {
        let mut p = Problems::default();
        for problem in all {
            p.push(problem);
        }
        p
    }

    /// One problem.
    pub fn one(problem: Problem) -> Problems {
        Problems {
            listed: vec![problem],
            more: 0,
        }
    }

    /// Adds a problem (counted only once the list is full).
    pub fn push(&mut self, problem: Problem) {
        if self.listed.len() < MAX_LISTED {
            self.listed.push(problem);
        } else {
            self.more += 1;
        }
    }

    /// Whether nothing is wrong.
    pub fn is_empty(&self) -> bool {
        self.listed.is_empty() && self.more == 0
    }

    /// A bullet list (`- at /rating: …`), one problem a line, for a repair prompt.
    pub fn bullets(&self) -> String {
        let mut s = String::new();
        for p in &self.listed {
            s.push_str("- ");
            s.push_str(&p.to_string());
            s.push('\n');
        }
        if self.more > 0 {
            s.push_str(&format!("- … and {} more\n", self.more));
        }
        s
    }

    /// One line (`at /rating: …; at /topic: …`), for an error record.
    pub fn inline(&self) -> String {
        let mut parts: Vec<String> = self.listed.iter().map(Problem::to_string).collect();
        if self.more > 0 {
            parts.push(format!("… and {} more", self.more));
        }
        parts.join("; ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(path: &str, message: &str) -> Problem {
        Problem {
            path: path.into(),
            message: message.into(),
        }
    }

    #[test]
    fn formats_paths_and_whole_answer_problems() {
        let p = Problems::collect([
            at("/rating", "7 is greater than the maximum of 5"),
            Problem::whole("\"topic\" is a required property"),
        ]);
        assert_eq!(
            p.bullets(),
            "- at /rating: 7 is greater than the maximum of 5\n- \"topic\" is a required property\n"
        );
        assert_eq!(
            p.inline(),
            "at /rating: 7 is greater than the maximum of 5; \"topic\" is a required property"
        );
    }

    #[test]
    fn lists_the_first_few_and_counts_the_rest() {
        let p = Problems::collect((0..MAX_LISTED + 3).map(|i| at(&format!("/f{i}"), "bad")));
        assert_eq!(p.listed.len(), MAX_LISTED);
        assert_eq!(p.more, 3);
        assert!(p.bullets().ends_with("- … and 3 more\n"), "{}", p.bullets());
        assert!(p.inline().ends_with("; … and 3 more"));
        assert!(!p.is_empty());
        assert!(Problems::default().is_empty());
    }
}
