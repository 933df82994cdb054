//! Structured answers: extraction, schema validation, repair prompts, aggregation.
