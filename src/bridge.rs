//! TODO: bridge
