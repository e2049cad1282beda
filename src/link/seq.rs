//! Wrapping 16-bit sequence numbers.

use std::fmt;

/// A 16-bit link sequence number with wrapping arithmetic and comparisons.
///
/// Comparisons are only meaningful between numbers less than 2¹⁵ apart; the window
/// (≤ 256 frames) keeps every live pair far closer than that.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Seq(pub u16);

impl Seq {
    /// `self + n`, wrapping.
    pub fn plus(self, n: u16) -> Seq {
        Seq(self.0.wrapping_add(n))
    }

    /// Signed distance `self - other` (wrapping, in `-32768..32768`).
    pub fn diff(self, other: Seq) -> i32 {
        self.0.wrapping_sub(other.0) as i16 as i32
    }

    /// `self` comes strictly before `other`.
    pub fn before(self, other: Seq) -> bool {
        self.diff(other) < 0
    }
}

impl fmt::Debug for Seq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapping() {
        let a = Seq(65530);
        let b = a.plus(10);
        assert_eq!(b, Seq(4));
        assert_eq!(b.diff(a), 10);
        assert_eq!(a.diff(b), -10);
        assert!(a.before(b));
        assert!(!b.before(a));
        assert!(!a.before(a));
    }
}
