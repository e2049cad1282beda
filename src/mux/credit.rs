//! Per-channel credit flow control (pure arithmetic, no I/O, no clock).
//!
//! Each side grants the other a receive window per channel. The sender holds a
//! [`SendCredit`]: it may put at most that many DATA bytes on the wire, and
//! grows it by the deltas of CREDIT records. The receiver holds a
//! [`RecvWindow`]: every byte the peer may still send without more credit is
//! `remaining`; credit comes back only when the application reports bytes as
//! *consumed* (written onward), and only in worthwhile amounts, so a reader
//! that stalls stops exactly its own channel after `window` bytes.
//!
//! Invariant on the receive side (checked by tests):
//! `remaining + buffered + held_by_app + unannounced == window`, where
//! `buffered` is received-but-unread and `held_by_app` is read-but-not-consumed.

/// Credit the sender may spend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendCredit {
    avail: u32,
    /// The peer's advertised window: credit can never exceed it, since the
    /// peer only returns bytes it received.
    window: u32,
}

impl SendCredit {
    /// Start with the peer's advertised window.
    pub fn new(initial: u32) -> Self {
        SendCredit {
            avail: initial,
            window: initial,
        }
    }

    /// Bytes that may be sent now.
    pub fn available(&self) -> usize {
        self.avail as usize
    }

    /// Record that `n` bytes were put on the wire (`n <= available()`).
    pub fn spend(&mut self, n: usize) {
        debug_assert!(n <= self.avail as usize);
        self.avail -= n as u32;
    }

    /// Add a CREDIT delta. Credit above the peer's own window can only come
    /// from a peer that returns more than it was sent (CREDIT spam, which
    /// would let it make us send without bound): a protocol violation.
    pub fn grant(&mut self, delta: u32) -> Result<(), &'static str> {
        match self.avail.checked_add(delta) {
            Some(a) if a <= self.window => {
                self.avail = a;
                Ok(())
            }
            _ => Err("CREDIT beyond the window (peer returned more than it received)"),
        }
    }
}

/// The receive window of one channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecvWindow {
    window: u32,
    remaining: u32,
    unannounced: u32,
}

impl RecvWindow {
    /// A fresh window of `window` bytes (all of it granted to the peer).
    pub fn new(window: u32) -> Self {
        RecvWindow {
            window,
            remaining: window,
            unannounced: 0,
        }
    }

    /// The configured window.
    pub fn window(&self) -> u32 {
        self.window
    }

    /// Bytes the peer may still send before it needs more credit.
    pub fn remaining(&self) -> u32 {
        self.remaining
    }

    /// Consumed bytes not yet returned to the peer.
    pub fn unannounced(&self) -> u32 {
        self.unannounced
    }

    /// The peer sent `n` bytes. Err if that exceeds the credit it was given.
    pub fn on_data(&mut self, n: usize) -> Result<(), &'static str> {
        if n > self.remaining as usize {
            return Err("peer sent beyond its credit");
        }
        self.remaining -= n as u32;
        Ok(())
    }

    /// The application consumed `n` bytes (the caller guarantees `n` does not
    /// exceed what was read and not yet consumed).
    pub fn on_consumed(&mut self, n: usize) {
        debug_assert!(
            n as u64 + self.unannounced as u64 + self.remaining as u64 <= self.window as u64
        );
        self.unannounced += n as u32;
    }

    /// Is a CREDIT record worth sending now?
    ///
    /// Yes when at least half the window was consumed since the last one, or
    /// when the peer is close to blocked (less than a quarter of the window
    /// left) and at least an eighth is waiting to be returned. Small deltas are
    /// never sent (no silly-window syndrome); the first rule alone already
    /// guarantees progress: a blocked peer means `window` bytes sit on this side,
    /// and once the application consumes them the delta is the whole window.
    pub fn credit_due(&self) -> bool {
        let w = self.window;
        if self.unannounced == 0 {
            return false;
        }
        self.unannounced >= w.div_ceil(2)
            || (self.remaining < w / 4 && self.unannounced >= (w / 8).max(1))
    }

    /// Take the delta to announce (all unannounced consumed bytes) and count it
    /// as granted again.
    pub fn take_credit(&mut self) -> u32 {
        let d = self.unannounced;
        self.remaining += d;
        self.unannounced = 0;
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn send_credit_spends_and_grants() {
        let mut c = SendCredit::new(10);
        c.spend(4);
        assert_eq!(c.available(), 6);
        c.grant(3).unwrap();
        assert_eq!(c.available(), 9);
        // Only 1 byte is out: more than that back is CREDIT spam.
        assert!(c.grant(2).is_err());
        assert!(c.grant(u32::MAX).is_err());
        assert_eq!(c.available(), 9);
        c.grant(1).unwrap();
        assert_eq!(c.available(), 10);
    }

    #[test]
    fn data_beyond_window_is_refused() {
        let mut w = RecvWindow::new(100);
        w.on_data(60).unwrap();
        assert!(w.on_data(41).is_err());
        w.on_data(40).unwrap();
        assert!(w.on_data(1).is_err());
    }

    #[test]
    fn credit_only_after_half_window_consumed() {
        let mut w = RecvWindow::new(1000);
        w.on_data(400).unwrap();
        w.on_consumed(400);
        assert!(!w.credit_due(), "400 < 500 and the peer still has 600");
        w.on_data(100).unwrap();
        w.on_consumed(100);
        assert!(w.credit_due());
        assert_eq!(w.take_credit(), 500);
        assert_eq!(w.remaining(), 1000);
        assert!(!w.credit_due());
    }

    #[test]
    fn blocked_peer_gets_credit_sooner() {
        let mut w = RecvWindow::new(1000);
        w.on_data(900).unwrap(); // peer has 100 < 250 left
        w.on_consumed(100);
        assert!(!w.credit_due(), "100 < 125");
        w.on_consumed(25);
        assert!(w.credit_due());
        assert_eq!(w.take_credit(), 125);
    }

    #[test]
    fn nothing_consumed_means_no_credit() {
        let mut w = RecvWindow::new(1000);
        w.on_data(1000).unwrap();
        assert!(!w.credit_due());
        assert_eq!(w.remaining(), 0);
    }
}
