//! TODO: mux
