//! Reed-Solomon codes over GF(256) for the link's forward error correction
//! ([`super::fec`]): systematic encoding, and error decoding by syndromes,
//! Berlekamp-Massey, Chien search and Forney's formula.
//!
//! The field is GF(2⁸) modulo x⁸+x⁴+x³+x²+1 (0x11d, the polynomial of QR codes,
//! CCSDS-free "conventional" RS as in FX.25), α = 2, first consecutive root α⁰:
//! a code with `nsym` parity bytes has the generator ∏(x − αⁱ), i = 0..nsym, and
//! corrects up to `nsym / 2` byte errors at unknown places in a codeword of at
//! most 255 bytes (shorter codewords are shortened codes: the missing leading
//! bytes are zeros and never sent). Codeword byte 0 is the highest-degree
//! coefficient; the parity follows the message.
//!
//! No crate: the pure-Rust RS crates with an error (not only erasure) decoder
//! are unmaintained (`reed-solomon` 0.2, 2017), and the erasure crates
//! (`reed-solomon-erasure`, `-simd`, `-novelpoly`) cannot find unknown errors.
//! The tables are built at compile time; tests check the encoder against the
//! worked example of the QR standard and the decoder against random errors.

/// The field's reduction polynomial.
const PRIM: u16 = 0x11d;

/// `EXP[i] = αⁱ`, doubled so that `EXP[log a + log b]` needs no reduction.
static EXP: [u8; 512] = build_exp();
/// `LOG[a]` for a ≠ 0 (`LOG[0]` is unused).
static LOG: [u8; 256] = build_log();

const fn build_exp() -> [u8; 512] {
    let mut t = [0u8; 512];
    let mut x: u16 = 1;
    let mut i = 0;
    while i < 255 {
        t[i] = x as u8;
        t[i + 255] = x as u8;
        x <<= 1;
        if x & 0x100 != 0 {
            x ^= PRIM;
        }
        i += 1;
    }
    t[510] = t[0];
    t[511] = t[1];
    t
}

const fn build_log() -> [u8; 256] {
    let exp = build_exp();
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 255 {
        t[exp[i] as usize] = i as u8;
        i += 1;
    }
    t
}

/// a · b in GF(256).
#[inline]
pub fn mul(a: u8, b: u8) -> u8 {
    if a == 0 || b == 0 {
        0
    } else {
        EXP[LOG[a as usize] as usize + LOG[b as usize] as usize]
    }
}

/// a / b in GF(256) (b ≠ 0; 0 for b = 0, never reached by the decoder).
#[inline]
fn div(a: u8, b: u8) -> u8 {
    if a == 0 || b == 0 {
        0
    } else {
        EXP[LOG[a as usize] as usize + 255 - LOG[b as usize] as usize]
    }
}

/// αᵉ for any non-negative exponent.
#[inline]
fn pow_alpha(e: usize) -> u8 {
    EXP[e % 255]
}

/// Largest codeword.
pub const MAX_CODEWORD: usize = 255;
/// Most parity bytes a [`Code`] may have.
pub const MAX_NSYM: usize = 64;

/// Why a codeword could not be corrected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// More errors than the code can correct (detected).
    TooManyErrors,
}

/// A Reed-Solomon code with `nsym` parity bytes.
#[derive(Debug, Clone)]
pub struct Code {
    nsym: usize,
    /// Generator coefficients after the leading 1 (highest degree first), as logs
    /// (`None` for a zero coefficient).
    gen_log: Vec<Option<u8>>,
}

impl Code {
    /// The code with `nsym` parity bytes (2 ≤ nsym ≤ [`MAX_NSYM`], even).
    pub fn new(nsym: usize) -> Code {
        let nsym = nsym.clamp(2, MAX_NSYM) & !1;
        // g(x) = ∏ (x - αⁱ), highest degree first.
        let mut g = vec![1u8];
        for i in 0..nsym {
            let r = pow_alpha(i);
            let mut next = vec![0u8; g.len() + 1];
            for (j, &c) in g.iter().enumerate() {
                next[j] ^= c;
                next[j + 1] ^= mul(c, r);
            }
            g = next;
        }
        let gen_log = g[1..]
            .iter()
            .map(|&c| (c != 0).then(|| LOG[c as usize]))
            .collect();
        Code { nsym, gen_log }
    }

    /// Parity bytes per codeword.
    pub fn nsym(&self) -> usize {
        self.nsym
    }

    /// Byte errors per codeword it corrects.
    pub fn t(&self) -> usize {
        self.nsym / 2
    }

    /// Writes the parity of `msg` (≤ 255 − nsym bytes) into `parity`
    /// (`nsym` bytes long).
    pub fn encode(&self, msg: &[u8], parity: &mut [u8]) {
        debug_assert!(msg.len() + self.nsym <= MAX_CODEWORD);
        debug_assert_eq!(parity.len(), self.nsym);
        parity.fill(0);
        // Division of msg(x)·x^nsym by g(x), as a shift register.
        for &m in msg {
            let fb = m ^ parity[0];
            parity.copy_within(1.., 0);
            parity[self.nsym - 1] = 0;
            if fb != 0 {
                let lf = LOG[fb as usize] as usize;
                for (p, g) in parity.iter_mut().zip(&self.gen_log) {
                    if let Some(lg) = g {
                        *p ^= EXP[lf + *lg as usize];
                    }
                }
            }
        }
    }

    /// The syndromes of `cw`; all zero for a codeword.
    fn syndromes(&self, cw: &[u8], s: &mut [u8]) -> bool {
        let mut clean = true;
        for (i, si) in s.iter_mut().enumerate().take(self.nsym) {
            let li = i; // log of αⁱ
            let mut acc = 0u8;
            for &c in cw {
                // Horner: acc = acc·αⁱ + c
                acc = if acc == 0 {
                    c
                } else {
                    EXP[LOG[acc as usize] as usize + li] ^ c
                };
            }
            *si = acc;
            clean &= acc == 0;
        }
        clean
    }

    /// Corrects `cw` (message ‖ parity, at most 255 bytes) in place and returns
    /// how many bytes it changed. An error is returned, and `cw` left as it was,
    /// when the damage is beyond the code; a pattern of more than `t` errors may
    /// also be "corrected" into another codeword, which is why the link's CRC (or
    /// AEAD) always has the final word.
    pub fn decode(&self, cw: &mut [u8]) -> Result<usize, DecodeError> {
        let n = cw.len();
        if n > MAX_CODEWORD || n <= self.nsym {
            return Err(DecodeError::TooManyErrors);
        }
        let mut s = [0u8; MAX_NSYM];
        if self.syndromes(cw, &mut s) {
            return Ok(0);
        }
        let s = &s[..self.nsym];
        // Berlekamp-Massey: the error locator Λ(x), lowest degree first.
        let mut lam = [0u8; MAX_NSYM + 1];
        let mut prev = [0u8; MAX_NSYM + 1];
        lam[0] = 1;
        prev[0] = 1;
        let mut l = 0usize;
        let mut m = 1usize;
        let mut b = 1u8;
        for k in 0..self.nsym {
            let mut d = s[k];
            for i in 1..=l {
                d ^= mul(lam[i], s[k - i]);
            }
            if d == 0 {
                m += 1;
                continue;
            }
            let coef = div(d, b);
            let saved = lam;
            for i in 0..=MAX_NSYM - m {
                lam[i + m] ^= mul(coef, prev[i]);
            }
            if 2 * l <= k {
                l = k + 1 - l;
                prev = saved;
                b = d;
                m = 1;
            } else {
                m += 1;
            }
        }
        if l == 0 || l > self.t() {
            return Err(DecodeError::TooManyErrors);
        }
        // Chien search: position p (power of x, p = n-1-index) is in error when
        // Λ(α⁻ᵖ) = 0.
        let mut found = [0usize; MAX_NSYM / 2];
        let mut nfound = 0;
        for p in 0..n {
            let mut v = 0u8;
            for (i, &c) in lam.iter().enumerate().take(l + 1) {
                if c != 0 {
                    let e = (LOG[c as usize] as usize + (255 - p % 255) * i) % 255;
                    v ^= EXP[e];
                }
            }
            if v == 0 {
                if nfound == l {
                    return Err(DecodeError::TooManyErrors);
                }
                found[nfound] = p;
                nfound += 1;
            }
        }
        if nfound != l {
            return Err(DecodeError::TooManyErrors);
        }
        // Forney: Ω(x) = S(x)Λ(x) mod x^nsym; e = X·Ω(X⁻¹) / Λ'(X⁻¹) with X = αᵖ
        // (first consecutive root α⁰).
        let mut omega = [0u8; MAX_NSYM];
        for i in 0..self.nsym {
            let mut acc = 0u8;
            for j in 0..=i.min(l) {
                acc ^= mul(lam[j], s[i - j]);
            }
            omega[i] = acc;
        }
        let mut fixes = [(0usize, 0u8); MAX_NSYM / 2];
        for (k, &p) in found[..nfound].iter().enumerate() {
            let xinv = pow_alpha(255 - p % 255);
            let mut num = 0u8;
            let mut xp = 1u8;
            for &o in &omega[..self.nsym] {
                num ^= mul(o, xp);
                xp = mul(xp, xinv);
            }
            // Λ'(x): the odd-degree terms, each lowered by one degree.
            let mut den = 0u8;
            let mut i = 1;
            while i <= l {
                den ^= mul(lam[i], pow_alpha((255 - p % 255) * (i - 1)));
                i += 2;
            }
            if den == 0 {
                return Err(DecodeError::TooManyErrors);
            }
            let mag = mul(pow_alpha(p), div(num, den));
            fixes[k] = (n - 1 - p, mag);
        }
        for &(idx, mag) in &fixes[..nfound] {
            cw[idx] ^= mag;
        }
        let mut check = [0u8; MAX_NSYM];
        if !self.syndromes(cw, &mut check) {
            for &(idx, mag) in &fixes[..nfound] {
                cw[idx] ^= mag;
            }
            return Err(DecodeError::TooManyErrors);
        }
        Ok(fixes[..nfound].iter().filter(|f| f.1 != 0).count())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::line::rng::Rng;

    #[test]
    fn field_tables() {
        assert_eq!(EXP[0], 1);
        assert_eq!(EXP[8], 0x1d); // α⁸ = x⁴+x³+x²+1
        for a in 1..=255u8 {
            assert_eq!(mul(a, div(1, a)), 1, "inverse of {a}");
            assert_eq!(EXP[LOG[a as usize] as usize], a);
        }
        // mul agrees with carry-less multiplication reduced by 0x11d.
        for a in [3u8, 0x53, 0xCA, 0xFF] {
            for b in [7u8, 0x8E, 0x01, 0xFE] {
                let mut r: u16 = 0;
                for i in 0..8 {
                    if b & (1 << i) != 0 {
                        r ^= (a as u16) << i;
                    }
                }
                for bit in (8..16).rev() {
                    if r & (1 << bit) != 0 {
                        r ^= PRIM << (bit - 8);
                    }
                }
                assert_eq!(mul(a, b), r as u8);
            }
        }
    }

    /// The worked example of ISO/IEC 18004 (QR code "HELLO WORLD", version 1-M):
    /// the same field, generator and root convention.
    #[test]
    fn qr_reference_vector() {
        let msg = [
            0x40, 0xd2, 0x75, 0x47, 0x76, 0x17, 0x32, 0x06, 0x27, 0x26, 0x96, 0xc6, 0xc6, 0x96,
            0x70, 0xec,
        ];
        let mut parity = [0u8; 10];
        Code::new(10).encode(&msg, &mut parity);
        assert_eq!(
            parity,
            [0xbc, 0x2a, 0x90, 0x13, 0x6b, 0xaf, 0xef, 0xfd, 0x4b, 0xe0]
        );
    }

    fn codeword(code: &Code, rng: &mut Rng, k: usize) -> Vec<u8> {
        let mut cw: Vec<u8> = (0..k).map(|_| rng.byte()).collect();
        let mut p = vec![0u8; code.nsym()];
        code.encode(&cw, &mut p);
        cw.extend_from_slice(&p);
        cw
    }

    #[test]
    fn encoded_words_have_zero_syndromes() {
        let mut rng = Rng::new(7);
        for nsym in [2, 4, 8, 16, 32] {
            let code = Code::new(nsym);
            for k in [1, 10, 100, 255 - nsym] {
                let cw = codeword(&code, &mut rng, k);
                let mut s = [0u8; MAX_NSYM];
                assert!(code.syndromes(&cw, &mut s), "nsym {nsym} k {k}");
                let mut c = cw.clone();
                assert_eq!(code.decode(&mut c), Ok(0));
            }
        }
    }

    /// Up to t errors at random places, random values: always corrected exactly.
    #[test]
    fn corrects_up_to_t_errors() {
        let mut rng = Rng::new(0x5eed);
        for seed in 0..600u64 {
            let nsym = [4, 8, 16, 32][(seed % 4) as usize];
            let code = Code::new(nsym);
            let k = 1 + (rng.next_u64() as usize % (255 - nsym));
            let cw = codeword(&code, &mut rng, k);
            let nerr = rng.next_u64() as usize % (code.t() + 1);
            let mut bad = cw.clone();
            let mut places = Vec::new();
            while places.len() < nerr {
                let i = rng.next_u64() as usize % bad.len();
                if !places.contains(&i) {
                    places.push(i);
                    bad[i] ^= (rng.byte()).max(1);
                }
            }
            assert_eq!(code.decode(&mut bad), Ok(nerr), "seed {seed}");
            assert_eq!(bad, cw, "seed {seed}");
        }
    }

    /// Beyond t errors the decoder mostly says so; whatever it returns is either
    /// that error (word untouched) or a valid codeword (the CRC judges it then).
    #[test]
    fn beyond_t_is_detected_or_a_codeword() {
        let mut rng = Rng::new(99);
        let mut detected = 0;
        for seed in 0..300u64 {
            let code = Code::new(8);
            let cw = codeword(&code, &mut rng, 200);
            let mut bad = cw.clone();
            for _ in 0..(5 + seed as usize % 20) {
                let i = rng.next_u64() as usize % bad.len();
                bad[i] ^= rng.byte().max(1);
            }
            let before = bad.clone();
            match code.decode(&mut bad) {
                Err(DecodeError::TooManyErrors) => {
                    detected += 1;
                    assert_eq!(bad, before);
                }
                Ok(_) => {
                    let mut s = [0u8; MAX_NSYM];
                    assert!(code.syndromes(&bad, &mut s));
                }
            }
        }
        assert!(detected > 250, "{detected}");
    }
}
