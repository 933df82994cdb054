//! A whole batch job: input to output, with resume.
