//! CRC32C (Castagnoli), slice-by-8, and the masking TensorFlow and LevelDB apply to stored
//! checksums (so that a CRC of data that embeds CRCs stays well distributed).

const POLY: u32 = 0x82f6_3b78;

const fn tables() -> [[u32; 256]; 8] {
    let mut t = [[0u32; 256]; 8];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 { (c >> 1) ^ POLY } else { c >> 1 };
            k += 1;
        }
        t[0][i] = c;
        i += 1;
    }
    let mut i = 0;
    while i < 256 {
        let mut j = 1;
        while j < 8 {
            t[j][i] = (t[j - 1][i] >> 8) ^ t[0][(t[j - 1][i] & 0xff) as usize];
            j += 1;
        }
        i += 1;
    }
    t
}

static T: [[u32; 256]; 8] = tables();

pub fn crc32c(data: &[u8]) -> u32 {
    extend(0, data)
}

/// The CRC of `a ++ data` from the CRC of `a`. Uses the CPU's CRC32C instruction where there
/// is one (x86-64 SSE4.2, several GB/s: the SavedModel reader checks every weight it reads,
/// the writer sums every weight it writes), else slice-by-8 tables.
pub fn extend(crc: u32, data: &[u8]) -> u32 {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("sse4.2") {
            // SAFETY: the CPU has SSE4.2 (checked just above).
            return unsafe { extend_sse42(crc, data) };
        }
    }
    extend_tables(crc, data)
}

/// [`extend`] with the SSE4.2 `crc32` instruction, which computes CRC32C (reflected, the same
/// polynomial as the tables) 8 bytes at a time. One chain of `crc32` instructions waits three
/// cycles per word; three independent chains over three adjacent blocks keep the unit busy every
/// cycle, and the three partial CRCs are joined by shifting (see [`shift_block`]).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse4.2")]
fn extend_sse42(crc: u32, data: &[u8]) -> u32 {
    use std::arch::x86_64::{_mm_crc32_u64, _mm_crc32_u8};
    let mut c = u64::from(!crc);
    let (rounds, data) = data.as_chunks::<{ 3 * BLOCK }>();
    for round in rounds {
        let (a, rest) = round.split_at(BLOCK);
        let (b, d) = rest.split_at(BLOCK);
        let (a, b, d) = (
            a.as_chunks::<8>().0,
            b.as_chunks::<8>().0,
            d.as_chunks::<8>().0,
        );
        let (mut cb, mut cd) = (0u64, 0u64);
        for ((wa, wb), wd) in a.iter().zip(b).zip(d) {
            c = _mm_crc32_u64(c, u64::from_le_bytes(*wa));
            cb = _mm_crc32_u64(cb, u64::from_le_bytes(*wb));
            cd = _mm_crc32_u64(cd, u64::from_le_bytes(*wd));
        }
        let ab = shift_block(c as u32) ^ cb as u32;
        c = u64::from(shift_block(ab) ^ cd as u32);
    }
    let (words, rest) = data.as_chunks::<8>();
    for w in words {
        c = _mm_crc32_u64(c, u64::from_le_bytes(*w));
    }
    let mut c = c as u32;
    for &b in rest {
        c = _mm_crc32_u8(c, b);
    }
    !c
}

/// Bytes per chain in [`extend_sse42`]'s rounds (a multiple of 8).
const BLOCK: usize = 4096;

/// The CRC register (without the final inversion) after `BLOCK` zero bytes more: the register
/// times x^(8·BLOCK) modulo the polynomial. Because the register is linear in its start value,
/// `register(c, A ++ B) = shift(register(c, A)) ^ register(0, B)` for a block B of that length.
fn shift_block(c: u32) -> u32 {
    gf2_mul_mod(c, SHIFT_BLOCK)
}

/// x^(8·BLOCK) modulo the polynomial, in the reflected representation (x^0 is the top bit).
const SHIFT_BLOCK: u32 = {
    let mut p = 1u32 << 31;
    let mut i = 0;
    while i < 8 * BLOCK {
        // times x: one step right, reduced by the polynomial when x^31 falls off.
        p = if p & 1 != 0 { (p >> 1) ^ POLY } else { p >> 1 };
        i += 1;
    }
    p
};

/// a · b modulo the polynomial, both reflected (bit 31 is x^0).
const fn gf2_mul_mod(a: u32, mut b: u32) -> u32 {
    let mut product = 0;
    let mut bit = 1u32 << 31;
    while bit != 0 {
        if a & bit != 0 {
            product ^= b;
        }
        b = if b & 1 != 0 { (b >> 1) ^ POLY } else { b >> 1 };
        bit >>= 1;
    }
    product
}

fn extend_tables(crc: u32, data: &[u8]) -> u32 {
    let mut c = !crc;
    let mut chunks = data.chunks_exact(8);
    for ch in &mut chunks {
        let lo = u32::from_le_bytes([ch[0], ch[1], ch[2], ch[3]]) ^ c;
        c = T[7][(lo & 0xff) as usize]
            ^ T[6][((lo >> 8) & 0xff) as usize]
            ^ T[5][((lo >> 16) & 0xff) as usize]
            ^ T[4][(lo >> 24) as usize]
            ^ T[3][ch[4] as usize]
            ^ T[2][ch[5] as usize]
            ^ T[1][ch[6] as usize]
            ^ T[0][ch[7] as usize];
    }
    for &b in chunks.remainder() {
        c = (c >> 8) ^ T[0][((c ^ u32::from(b)) & 0xff) as usize];
    }
    !c
}

const MASK_DELTA: u32 = 0xa282_ead8;

/// The checksum as stored: rotated and offset.
pub fn mask(crc: u32) -> u32 {
    crc.rotate_right(15).wrapping_add(MASK_DELTA)
}

/// The CRC that a stored, masked checksum stands for.
pub fn unmask(masked: u32) -> u32 {
    let rot = masked.wrapping_sub(MASK_DELTA);
    rot.rotate_left(15)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The instruction and the tables agree at every length and alignment.
    #[test]
    fn instruction_matches_tables() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 31 + i / 7) as u8).collect();
        for start in 0..9 {
            for len in [0, 1, 7, 8, 9, 63, 64, 100, 991 - start] {
                let d = &data[start..start + len];
                assert_eq!(extend(0x1234_5678, d), extend_tables(0x1234_5678, d));
                assert_eq!(crc32c(d), extend_tables(0, d));
            }
        }
    }

    /// Past the three-chain rounds too: whole rounds, a round and a tail, several rounds.
    #[test]
    fn interleaved_chains_match_tables() {
        let data: Vec<u8> = (0..7 * 3 * BLOCK as u32 + 77)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        for len in [
            3 * BLOCK - 1,
            3 * BLOCK,
            3 * BLOCK + 5,
            6 * BLOCK + 8,
            data.len() - 3,
        ] {
            for start in [0, 3] {
                let d = &data[start..start + len];
                assert_eq!(extend(0x89ab_cdef, d), extend_tables(0x89ab_cdef, d));
            }
        }
    }

    #[test]
    fn known_values() {
        // RFC 3720 test vectors.
        assert_eq!(crc32c(&[0u8; 32]), 0x8a91_36aa);
        assert_eq!(crc32c(&[0xffu8; 32]), 0x62a8_ab43);
        assert_eq!(crc32c(b"123456789"), 0xe306_9283);
        assert_eq!(extend(crc32c(b"1234"), b"56789"), 0xe306_9283);
        assert_eq!(unmask(mask(0x1234_5678)), 0x1234_5678);
    }
}
