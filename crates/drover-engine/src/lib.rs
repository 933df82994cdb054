//! Embedded llama.cpp engine with continuous batching.
