//! Dispatch loop: routing, concurrency limits, retries, breakers, hedging.
