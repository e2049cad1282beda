//! The parse error: a message and the byte it points at.

use std::fmt;

/// Why an address expression did not parse, and where.
///
/// Displays on three lines: the message, the address, and a caret under the
/// offending character:
///
/// ```text
/// invalid address: unknown option 'forkk' for TCP-LISTEN; valid: fork, bind, reuseaddr, max-children, backlog
///   TCP-LISTEN:2222,forkk
///                   ^
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressError {
    input: String,
    message: String,
    position: usize,
}

impl AddressError {
    /// An error about `input` at byte offset `position` (clamped to the input and
    /// moved back to a character boundary).
    pub fn new(input: &str, position: usize, message: impl Into<String>) -> Self {
        let mut position = position.min(input.len());
        while !input.is_char_boundary(position) {
            position -= 1;
        }
        AddressError {
            input: input.to_string(),
            message: message.into(),
            position,
        }
    }

    /// The message alone, without the address and caret.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Byte offset into the address of the offending character (the address length
    /// when something is missing at the end).
    pub fn position(&self) -> usize {
        self.position
    }

    /// The address that failed to parse.
    pub fn input(&self) -> &str {
        &self.input
    }
}

impl fmt::Display for AddressError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Control characters would break the layout; show them as '?'.
        let shown: String = self
            .input
            .chars()
            .map(|c| if c.is_control() { '?' } else { c })
            .collect();
        let column = self.input[..self.position].chars().count();
        write!(
            f,
            "invalid address: {}\n  {}\n  {}^",
            self.message,
            shown,
            " ".repeat(column)
        )
    }
}

impl std::error::Error for AddressError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_caret() {
        let e = AddressError::new("TCP-LISTEN:2222,forkk", 16, "unknown option 'forkk'");
        assert_eq!(
            e.to_string(),
            "invalid address: unknown option 'forkk'\n  TCP-LISTEN:2222,forkk\n                  ^"
        );
        assert_eq!(e.position(), 16);
        assert_eq!(e.message(), "unknown option 'forkk'");
    }

    #[test]
    fn caret_counts_characters_not_bytes() {
        let e = AddressError::new("SERIAL:/dév,x", 12, "m");
        assert!(e.to_string().ends_with("\n  SERIAL:/dév,x\n             ^"));
    }

    #[test]
    fn position_is_clamped_to_a_boundary() {
        let e = AddressError::new("é", 1, "m");
        assert_eq!(e.position(), 0);
        let e = AddressError::new("ab", 10, "m");
        assert_eq!(e.position(), 2);
        let e = AddressError::new("a\tb", 2, "m");
        assert!(e.to_string().ends_with("a?b\n    ^"));
    }
}
