//! OpenAI Batch API server over a fleet.
