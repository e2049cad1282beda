//! Link sessions: epochs, handshake decisions and the per-byte error estimate that
//! drives the adaptive frame size.
//!
//! Each side has a random non-zero `epoch` chosen by its caller. HELLO carries
//! `(version, my epoch, the epoch I last saw from you, my window, reply flag)`:
//!
//! ```text
//! A → B  HELLO{ea, seen 0}          B learns ea; B's epoch unknown to A → reply
//! B → A  HELLO{eb, seen ea}         A learns eb, sees its own epoch → established, Up
//! A → B  HELLO{ea, seen eb, reply}  B sees its own epoch → established, Up
//! ```
//!
//! Either side may start first, both may start at once, and a lost HELLO is resent on
//! a timer. A valid DATA/ACK frame also establishes the session, since its CRC is
//! keyed by both epochs. A HELLO with a new epoch for the peer means the peer
//! restarted: the old session's state is discarded (`PeerRestarted`) and a new one
//! negotiated; frames of the old session fail the keyed CRC and are never delivered.

use super::frame::Hello;

/// What to do after receiving a HELLO.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HelloAction {
    /// The peer's epoch changed: discard the old session.
    pub restart: bool,
    /// The peer knows our epoch: the session (ours, theirs) is agreed.
    pub agreed: bool,
    /// We must answer with a HELLO.
    pub reply: bool,
}

/// Decides how to react to `h` given our epoch and the peer epoch we knew.
pub fn on_hello(my_epoch: u32, known_peer: Option<u32>, h: &Hello) -> HelloAction {
    let restart = known_peer.is_some_and(|p| p != h.epoch);
    let agreed = h.seen == my_epoch;
    HelloAction {
        restart,
        agreed,
        reply: !agreed || !h.reply,
    }
}

/// EWMA estimate of the per-byte error probability `q` from frame outcomes.
#[derive(Debug, Clone)]
pub struct ErrorRate {
    frames: f64,
    losses: f64,
    bytes: f64,
    memory_bytes: f64,
    /// The prior's losses, forgotten after [`PRIOR_MEMORY`] bytes of traffic: the
    /// cautious start must not hold a clean line below large frames for the
    /// whole (256 KB) memory.
    prior_losses: f64,
}

/// Traffic over which the prior's losses fade (by e).
const PRIOR_MEMORY: f64 = 8.0 * 1024.0;

impl ErrorRate {
    /// Starts from `prior_frames` clean frames of `prior_len` bytes; remembers about
    /// `memory_bytes` of traffic.
    pub fn new(prior_frames: f64, prior_len: f64, memory_bytes: f64) -> Self {
        ErrorRate {
            frames: prior_frames,
            losses: 0.0,
            bytes: prior_frames * prior_len,
            memory_bytes,
            prior_losses: 0.0,
        }
    }

    /// Starts from the error rate for which `payload` is the optimal size given
    /// overhead `h`, as if `prior_frames` frames of `prior_len` bytes had been seen.
    pub fn with_prior(
        payload: f64,
        h: f64,
        prior_frames: f64,
        prior_len: f64,
        memory_bytes: f64,
    ) -> Self {
        // optimal payload L ≈ √(h/q)  ⇒  q ≈ h/(L+h)²·(1+h/L)… use the exact inverse
        // of the rule: total T = L + h satisfies T² − hT − h/q = 0 ⇒ q = h/(T² − hT).
        let t = payload + h;
        let q = h / (t * t - h * t);
        let mut e = Self::new(prior_frames, prior_len, memory_bytes);
        e.prior_losses = prior_frames * (1.0 - (1.0 - q).powf(prior_len));
        e
    }

    /// Records `frames` transmissions totalling `bytes`, of which `losses` were lost.
    pub fn record(&mut self, frames: u32, losses: u32, bytes: u64) {
        if frames == 0 {
            return;
        }
        let d = (-(bytes as f64) / self.memory_bytes).exp();
        self.frames = self.frames * d + frames as f64;
        self.losses = self.losses * d + losses as f64;
        self.bytes = self.bytes * d + bytes as f64;
        self.prior_losses *= (-(bytes as f64) / PRIOR_MEMORY).exp();
    }

    /// Estimated per-byte error probability.
    pub fn q(&self) -> f64 {
        if self.frames <= 0.0 || self.bytes <= 0.0 {
            return 0.0;
        }
        let p = ((self.losses + self.prior_losses) / self.frames).min(0.99);
        let avg = self.bytes / self.frames;
        -(1.0 - p).ln() / avg
    }
}

/// Payload size maximising `(L/(L+h))·(1−q)^(L+h)`: `(h+√(h²+4h/q))/2 − h`,
/// clamped to `[min, max]`.
pub fn optimal_payload(h: f64, q: f64, min: usize, max: usize) -> usize {
    if q <= 0.0 {
        return max;
    }
    let total = (h + (h * h + 4.0 * h / q).sqrt()) / 2.0;
    let l = (total - h).max(0.0);
    (l as usize).clamp(min, max.max(min))
}

/// Selective-repeat efficiency bound `(L/(L+h))·(1−q)^(L+h)`.
pub fn efficiency_bound(l: f64, h: f64, q: f64) -> f64 {
    l / (l + h) * (1.0 - q).powf(l + h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshake_decisions() {
        let h = |epoch, seen, reply| Hello {
            epoch,
            seen,
            window: 64,
            reply,
        };
        assert_eq!(
            on_hello(1, None, &h(2, 0, false)),
            HelloAction {
                restart: false,
                agreed: false,
                reply: true
            }
        );
        assert_eq!(
            on_hello(1, Some(2), &h(2, 1, false)),
            HelloAction {
                restart: false,
                agreed: true,
                reply: true
            }
        );
        assert_eq!(
            on_hello(1, Some(2), &h(2, 1, true)),
            HelloAction {
                restart: false,
                agreed: true,
                reply: false
            }
        );
        assert_eq!(
            on_hello(1, Some(2), &h(3, 0, false)),
            HelloAction {
                restart: true,
                agreed: false,
                reply: true
            }
        );
    }

    #[test]
    fn frame_size_rule() {
        // q = 8e-5 (BER 1e-5), h = 10: ≈ 349.
        let l = optimal_payload(10.0, 8e-5, 64, 512);
        assert!((340..360).contains(&l), "{l}");
        assert_eq!(optimal_payload(10.0, 0.0, 64, 512), 512);
        assert_eq!(optimal_payload(10.0, 0.1, 64, 512), 64);
        // The optimum beats its neighbours.
        let q = 8e-4;
        let l = optimal_payload(10.0, q, 1, 10_000) as f64;
        let e = efficiency_bound(l, 10.0, q);
        assert!(
            e >= efficiency_bound(l * 0.8, 10.0, q) && e >= efficiency_bound(l * 1.25, 10.0, q)
        );
        assert!(efficiency_bound(512.0, 10.0, 0.0) > 0.98);
    }

    #[test]
    fn error_rate_estimate() {
        let mut e = ErrorRate::new(32.0, 500.0, 256.0 * 1024.0);
        assert_eq!(e.q(), 0.0);
        // 10 % of 100-byte frames lost ⇒ q ≈ 1.05e-3.
        for i in 0..5000 {
            e.record(1, u32::from(i % 10 == 0), 100);
        }
        let q = e.q();
        assert!((0.9e-3..1.2e-3).contains(&q), "{q}");
        let p = ErrorRate::with_prior(256.0, 11.0, 32.0, 512.0, 256.0 * 1024.0);
        let l = optimal_payload(11.0, p.q(), 64, 512);
        assert!((250..262).contains(&l), "{l}");
    }
}
