//! Link tests driven by the deterministic simulation.
