//! Round-trip time estimator and retransmission timeout (RFC 6298).
//!
//! SRTT/RTTVAR with α = 1/8, β = 1/4; RTO = SRTT + 4·RTTVAR, clamped between a floor
//! derived from the frame time at the line rate (not RFC 6298's 1 s) and a ceiling.
//! Samples come only from frames transmitted once (Karn). Exponential back-off doubles
//! the RTO on each expiry without progress, up to the ceiling.

use std::time::Duration;

/// RFC 6298 estimator with back-off.
#[derive(Clone, Debug)]
pub struct RttEstimator {
    srtt: Option<Duration>,
    rttvar: Duration,
    min_rto: Duration,
    max_rto: Duration,
    initial_rto: Duration,
    backoff: u32,
}

impl RttEstimator {
    /// A fresh estimator; `initial_rto` is used until the first sample.
    pub fn new(min_rto: Duration, max_rto: Duration, initial_rto: Duration) -> Self {
        RttEstimator {
            srtt: None,
            rttvar: Duration::ZERO,
            min_rto,
            max_rto,
            initial_rto,
            backoff: 0,
        }
    }

    /// Feeds one RTT sample (from a frame transmitted exactly once).
    pub fn sample(&mut self, rtt: Duration) {
        match self.srtt {
            None => {
                self.srtt = Some(rtt);
                self.rttvar = rtt / 2;
            }
            Some(srtt) => {
                let err = srtt.abs_diff(rtt);
                self.rttvar = (self.rttvar * 3 + err) / 4;
                self.srtt = Some((srtt * 7 + rtt) / 8);
            }
        }
    }

    /// Smoothed RTT, once there is a sample.
    pub fn srtt(&self) -> Option<Duration> {
        self.srtt
    }

    /// RTO without back-off.
    pub fn base_rto(&self) -> Duration {
        let rto = match self.srtt {
            Some(s) => s + 4 * self.rttvar,
            None => self.initial_rto,
        };
        rto.clamp(self.min_rto, self.max_rto)
    }

    /// Current RTO including back-off.
    pub fn rto(&self) -> Duration {
        let shift = self.backoff.min(16);
        self.base_rto()
            .saturating_mul(1 << shift)
            .clamp(self.min_rto, self.max_rto)
    }

    /// Number of consecutive expiries without progress.
    pub fn backoff(&self) -> u32 {
        self.backoff
    }

    /// Records an RTO expiry (doubles the RTO, capped).
    pub fn on_expiry(&mut self) {
        self.backoff = self.backoff.saturating_add(1);
    }

    /// Records progress (new data acknowledged): back-off ends.
    pub fn on_progress(&mut self) {
        self.backoff = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn rfc6298() {
        let mut r = RttEstimator::new(ms(10), ms(2000), ms(300));
        assert_eq!(r.rto(), ms(300));
        r.sample(ms(100));
        assert_eq!(r.srtt(), Some(ms(100)));
        assert_eq!(r.base_rto(), ms(300)); // 100 + 4*50
        r.sample(ms(200));
        // rttvar = 3/4*50 + 1/4*100 = 62.5; srtt = 112.5
        assert_eq!(r.srtt(), Some(Duration::from_micros(112_500)));
        assert_eq!(r.base_rto(), Duration::from_micros(112_500 + 250_000));
        for _ in 0..200 {
            r.sample(ms(5));
        }
        assert_eq!(r.base_rto(), ms(10), "floor");
    }

    #[test]
    fn backoff_caps() {
        let mut r = RttEstimator::new(ms(10), ms(2000), ms(300));
        r.sample(ms(100));
        r.on_expiry();
        assert_eq!(r.rto(), ms(600));
        r.on_expiry();
        r.on_expiry();
        assert_eq!(r.rto(), ms(2000));
        for _ in 0..100 {
            r.on_expiry();
        }
        assert_eq!(r.rto(), ms(2000));
        r.on_progress();
        assert_eq!(r.rto(), ms(300));
    }
}
