//! TODO: link
