//! The frame checks: CRC-32C (Castagnoli) for frames of v1 sizes, CRC-32K
//! (Koopman) for the large frames peers may agree on.
//!
//! CRC-32C keeps Hamming distance 6 up to 5243 data bits (655 bytes) and runs on the
//! CPU's CRC instruction where there is one (SSE4.2 on x86-64, the CRC extension on
//! AArch64; the `crc32c` crate detects it at run time, with a table fallback), so
//! every frame whose covered length (session key + header + payload) is at most
//! [`CRC32C_MAX_COVERED`] uses it. Above that it only has HD 4, so larger frames use
//! Koopman's 0x741B8CD7 ("CRC-32K", 0xBA0DC66B in Koopman's notation), which keeps
//! HD 6 up to 16360 bits (2045 bytes) — Koopman, "32-Bit Cyclic Redundancy Codes for
//! Internet Applications", DSN 2002. The link keeps large frames within that. Which
//! check a frame carries follows from its length alone, so the trailer stays 4 bytes.

use crc::{Algorithm, Crc, Table};

/// Largest covered length checked with CRC-32C; longer frames use CRC-32K.
pub const CRC32C_MAX_COVERED: usize = 655;
/// Largest covered length for which CRC-32K keeps Hamming distance 6.
pub const CRC32K_MAX_COVERED: usize = 2045;

/// CRC-32K: Koopman's polynomial with the usual reflected, all-ones conventions.
const CRC_32_KOOPMAN: Algorithm<u32> = Algorithm {
    width: 32,
    poly: 0x741B_8CD7,
    init: 0xFFFF_FFFF,
    refin: true,
    refout: true,
    xorout: 0xFFFF_FFFF,
    check: 0x2D3D_D0AE,
    residue: 0x0000_0000,
};

const KOOPMAN: Crc<u32, Table<16>> = Crc::<u32, Table<16>>::new(&CRC_32_KOOPMAN);

/// CRC-32C of `key` followed by `data`. The key (session epochs) is never sent; it
/// only binds the checksum to a session.
pub fn crc32c(key: &[u8], data: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(key), data)
}

/// CRC-32K of `key` followed by `data`.
pub fn crc32k(key: &[u8], data: &[u8]) -> u32 {
    let mut d = KOOPMAN.digest();
    d.update(key);
    d.update(data);
    d.finalize()
}

/// The check of a frame: CRC-32C up to [`CRC32C_MAX_COVERED`] covered bytes,
/// CRC-32K above.
pub fn frame_check(key: &[u8], data: &[u8]) -> u32 {
    if key.len() + data.len() <= CRC32C_MAX_COVERED {
        crc32c(key, data)
    } else {
        crc32k(key, data)
    }
}

/// The table-driven CRC-32C the link used before the `crc32c` crate, kept for the
/// `crc` benchmark's before/after comparison.
#[doc(hidden)]
pub fn crc32c_table(key: &[u8], data: &[u8]) -> u32 {
    const CASTAGNOLI: Crc<u32> = Crc::<u32>::new(&crc::CRC_32_ISCSI);
    let mut d = CASTAGNOLI.digest();
    d.update(key);
    d.update(data);
    d.finalize()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bit-at-a-time reference of a reflected CRC-32 with init/xorout all ones.
    fn reference(poly: u32, data: &[u8]) -> u32 {
        let rpoly = poly.reverse_bits();
        let mut c = 0xFFFF_FFFFu32;
        for &b in data {
            c ^= b as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 { (c >> 1) ^ rpoly } else { c >> 1 };
            }
        }
        !c
    }

    #[test]
    fn check_values() {
        assert_eq!(crc32c(b"", b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(b"1234", b"56789"), 0xE306_9283);
        assert_eq!(crc32c_table(b"1234", b"56789"), 0xE306_9283);
        assert_eq!(
            crc32k(b"", b"123456789"),
            reference(0x741B_8CD7, b"123456789")
        );
        let data: Vec<u8> = (0..3000u32).map(|i| (i * 7 + i / 13) as u8).collect();
        for n in [0, 1, 7, 64, 655, 656, 2045, 3000] {
            assert_eq!(
                crc32c(&data[..3], &data[3..n.max(3)]),
                crc32c_table(&data[..3], &data[3..n.max(3)])
            );
            assert_eq!(crc32k(b"", &data[..n]), reference(0x741B_8CD7, &data[..n]));
            assert_eq!(crc32c(b"", &data[..n]), reference(0x1EDC_6F41, &data[..n]));
        }
        assert_eq!(
            frame_check(&[1; 8], &data[..647]),
            crc32c(&[1; 8], &data[..647])
        );
        assert_eq!(
            frame_check(&[1; 8], &data[..648]),
            crc32k(&[1; 8], &data[..648])
        );
    }
}
