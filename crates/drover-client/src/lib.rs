//! HTTP client to one OpenAI-compatible backend: addressing, error classification, discovery, metrics scraping.
