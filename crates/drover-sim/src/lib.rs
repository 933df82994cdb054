//! vLLM-faithful simulated inference engine with fault injection.
