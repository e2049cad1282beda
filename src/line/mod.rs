//! TODO: line
