//! Start, watch and stop local fleets of inference servers.
