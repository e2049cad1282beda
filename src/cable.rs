//! TODO: cable
