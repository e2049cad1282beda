//! TODO: testbed
