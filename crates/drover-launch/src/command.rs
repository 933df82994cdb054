//! The exact program, arguments and environment of one instance.

use std::fmt;
use std::path::PathBuf;

/// A process to start: no shell is involved, so each argument reaches the program as one `argv`
/// entry whatever it contains (spaces, `;`, quotes, `$(…)`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandLine {
    /// The program: a path, or a name looked up on `PATH`.
    pub program: PathBuf,
    /// Its arguments, `argv[1..]`.
    pub args: Vec<String>,
    /// Variables set for it on top of the inherited environment.
    pub env: Vec<(String, String)>,
}

impl CommandLine {
    /// A command without arguments or extra environment.
    pub fn new(program: impl Into<PathBuf>) -> CommandLine {
        CommandLine {
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
        }
    }

    /// Appends arguments.
    pub fn args<I, S>(mut self, args: I) -> CommandLine
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Sets an environment variable.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> CommandLine {
        self.env.push((key.into(), value.into()));
        self
    }
}

/// Shell-quoted, environment first, so that it can be pasted into a shell to reproduce a
/// failing start by hand.
impl fmt::Display for CommandLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (k, v) in &self.env {
            write!(f, "{k}={} ", quote(v))?;
        }
        f.write_str(&quote(&self.program.to_string_lossy()))?;
        for a in &self.args {
            write!(f, " {}", quote(a))?;
        }
        Ok(())
    }
}

/// Quotes one word for a POSIX shell (only when it needs it).
pub(crate) fn quote(word: &str) -> String {
    match shlex::try_quote(word) {
        Ok(q) => q.into_owned(),
        // A NUL byte cannot be in an argument at all; show it rather than fail.
        Err(_) => format!("{word:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_quotes_what_a_shell_would_split_and_round_trips() {
        let c = CommandLine::new("vllm")
            .args(["serve", "my/model; rm -rf x", "--port", "8001", "it's"])
            .env("CUDA_VISIBLE_DEVICES", "0,1");
        let shown = c.to_string();
        let words = shlex::split(&shown).unwrap();
        assert_eq!(
            words,
            [
                "CUDA_VISIBLE_DEVICES=0,1",
                "vllm",
                "serve",
                "my/model; rm -rf x",
                "--port",
                "8001",
                "it's"
            ],
            "{shown}"
        );
        assert!(shown.contains("'my/model; rm -rf x'"), "{shown}");
    }
}
