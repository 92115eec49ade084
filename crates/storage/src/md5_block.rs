//! MD5 (RFC 1321) over several independent streams at once, one stream per SIMD lane.
//!
//! One MD5 stream is a chain, each 64-byte block waiting on the one before, so a lone stream
//! runs at the speed of one scalar chain. Streams of different uploads are independent, and the
//! same rounds computed over 4 or 8 of them in vector registers cost little more than over one.
//! The arithmetic is written once over the [`Word`] trait and instantiated for a scalar word and
//! for `wide`'s portable vectors (SSE2 on any x86-64, NEON on aarch64), all in safe code.

use std::num::Wrapping;
use std::ops::{Add, BitAnd, BitOr, BitXor, Not};

/// A 64-byte MD5 block.
pub(crate) type Block = [u8; 64];

/// The widest lane group: 8 streams share one compression.
pub(crate) const MAX_LANES: usize = 8;

const INITIAL: [u32; 4] = [0x6745_2301, 0xefcd_ab89, 0x98ba_dcfe, 0x1032_5476];

/// Per-step additive constants, `floor(abs(sin(i + 1)) * 2^32)`.
#[rustfmt::skip]
const K: [u32; 64] = [
    0xd76a_a478, 0xe8c7_b756, 0x2420_70db, 0xc1bd_ceee, 0xf57c_0faf, 0x4787_c62a, 0xa830_4613, 0xfd46_9501,
    0x6980_98d8, 0x8b44_f7af, 0xffff_5bb1, 0x895c_d7be, 0x6b90_1122, 0xfd98_7193, 0xa679_438e, 0x49b4_0821,
    0xf61e_2562, 0xc040_b340, 0x265e_5a51, 0xe9b6_c7aa, 0xd62f_105d, 0x0244_1453, 0xd8a1_e681, 0xe7d3_fbc8,
    0x21e1_cde6, 0xc337_07d6, 0xf4d5_0d87, 0x455a_14ed, 0xa9e3_e905, 0xfcef_a3f8, 0x676f_02d9, 0x8d2a_4c8a,
    0xfffa_3942, 0x8771_f681, 0x6d9d_6122, 0xfde5_380c, 0xa4be_ea44, 0x4bde_cfa9, 0xf6bb_4b60, 0xbebf_bc70,
    0x289b_7ec6, 0xeaa1_27fa, 0xd4ef_3085, 0x0488_1d05, 0xd9d4_d039, 0xe6db_99e5, 0x1fa2_7cf8, 0xc4ac_5665,
    0xf429_2244, 0x432a_ff97, 0xab94_23a7, 0xfc93_a039, 0x655b_59c3, 0x8f0c_cc92, 0xffef_f47d, 0x8584_5dd1,
    0x6fa8_7e4f, 0xfe2c_e6e0, 0xa301_4314, 0x4e08_11a1, 0xf753_7e82, 0xbd3a_f235, 0x2ad7_d2bb, 0xeb86_d391,
];

/// One 32-bit word of MD5 state for each lane of a group.
trait Word:
    Copy + Add<Output = Self> + BitAnd<Output = Self> + BitOr<Output = Self> + BitXor<Output = Self> + Not<Output = Self>
{
    fn splat(x: u32) -> Self;
    /// Lane `n` holds `value(n)`.
    fn from_fn(value: impl Fn(usize) -> u32) -> Self;
    fn rotl(self, s: u32) -> Self;
    fn lane(self, lane: usize) -> u32;
}

fn word(block: &Block, i: usize) -> u32 {
    u32::from_le_bytes([block[4 * i], block[4 * i + 1], block[4 * i + 2], block[4 * i + 3]])
}

impl Word for Wrapping<u32> {
    fn splat(x: u32) -> Self {
        Wrapping(x)
    }
    fn from_fn(value: impl Fn(usize) -> u32) -> Self {
        Wrapping(value(0))
    }
    fn rotl(self, s: u32) -> Self {
        Wrapping(self.0.rotate_left(s))
    }
    fn lane(self, _: usize) -> u32 {
        self.0
    }
}

macro_rules! vector_word {
    ($v:ty) => {
        impl Word for $v {
            fn splat(x: u32) -> Self {
                <$v>::splat(x)
            }
            fn from_fn(value: impl Fn(usize) -> u32) -> Self {
                <$v>::new(std::array::from_fn(value))
            }
            fn rotl(self, s: u32) -> Self {
                (self << s) | (self >> (32 - s))
            }
            fn lane(self, lane: usize) -> u32 {
                self.as_array()[lane]
            }
        }
    };
}
vector_word!(wide::u32x4);
vector_word!(wide::u32x8);

/// The 64 steps of one block, unrolled so every shift count and message index is a constant.
/// Each step adds `a + K + m`, which does not wait on the step before, to the round function,
/// which does: the chain from one step to the next is only F, one add, the rotate and one add.
macro_rules! md5_rounds {
    ($w:ident, $m:ident, $a:ident, $b:ident, $c:ident, $d:ident) => {
        md5_rounds!(@round $w, $m, f, $a, $b, $c, $d, 0, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15], [7, 12, 17, 22]);
        md5_rounds!(@round $w, $m, g, $a, $b, $c, $d, 16, [1, 6, 11, 0, 5, 10, 15, 4, 9, 14, 3, 8, 13, 2, 7, 12], [5, 9, 14, 20]);
        md5_rounds!(@round $w, $m, h, $a, $b, $c, $d, 32, [5, 8, 11, 14, 1, 4, 7, 10, 13, 0, 3, 6, 9, 12, 15, 2], [4, 11, 16, 23]);
        md5_rounds!(@round $w, $m, i, $a, $b, $c, $d, 48, [0, 7, 14, 5, 12, 3, 10, 1, 8, 15, 6, 13, 4, 11, 2, 9], [6, 10, 15, 21]);
    };
    (@round $w:ident, $m:ident, $f:ident, $a:ident, $b:ident, $c:ident, $d:ident, $k:literal,
     [$g0:literal, $g1:literal, $g2:literal, $g3:literal, $g4:literal, $g5:literal, $g6:literal, $g7:literal,
      $g8:literal, $g9:literal, $g10:literal, $g11:literal, $g12:literal, $g13:literal, $g14:literal, $g15:literal],
     [$s0:literal, $s1:literal, $s2:literal, $s3:literal]) => {
        md5_rounds!(@quad $w, $m, $f, $a, $b, $c, $d, $k, [$g0, $g1, $g2, $g3], [$s0, $s1, $s2, $s3]);
        md5_rounds!(@quad $w, $m, $f, $a, $b, $c, $d, $k + 4, [$g4, $g5, $g6, $g7], [$s0, $s1, $s2, $s3]);
        md5_rounds!(@quad $w, $m, $f, $a, $b, $c, $d, $k + 8, [$g8, $g9, $g10, $g11], [$s0, $s1, $s2, $s3]);
        md5_rounds!(@quad $w, $m, $f, $a, $b, $c, $d, $k + 12, [$g12, $g13, $g14, $g15], [$s0, $s1, $s2, $s3]);
    };
    (@quad $w:ident, $m:ident, $f:ident, $a:ident, $b:ident, $c:ident, $d:ident, $k:expr,
     [$g0:literal, $g1:literal, $g2:literal, $g3:literal], [$s0:literal, $s1:literal, $s2:literal, $s3:literal]) => {
        $a = $b + (($f($b, $c, $d) + ($a + $w::splat(K[$k]) + $m[$g0])).rotl($s0));
        $d = $a + (($f($a, $b, $c) + ($d + $w::splat(K[$k + 1]) + $m[$g1])).rotl($s1));
        $c = $d + (($f($d, $a, $b) + ($c + $w::splat(K[$k + 2]) + $m[$g2])).rotl($s2));
        $b = $c + (($f($c, $d, $a) + ($b + $w::splat(K[$k + 3]) + $m[$g3])).rotl($s3));
    };
}

fn f<W: Word>(x: W, y: W, z: W) -> W {
    z ^ (x & (y ^ z))
}
fn g<W: Word>(x: W, y: W, z: W) -> W {
    y ^ (z & (x ^ y))
}
fn h<W: Word>(x: W, y: W, z: W) -> W {
    x ^ y ^ z
}
fn i<W: Word>(x: W, y: W, z: W) -> W {
    y ^ (x | !z)
}

/// Runs `lanes` (the same count of blocks in each) through `states`, one stream per lane of `W`.
#[inline(always)]
#[expect(clippy::needless_range_loop, reason = "block n of every lane's run, not of one slice")]
fn compress_as<W: Word>(states: &mut [[u32; 4]], lanes: &[&[Block]]) {
    // Lanes beyond the streams given repeat the last one; their results are dropped.
    let last = lanes.len() - 1;
    let load = |word: usize| W::from_fn(|lane| states[lane.min(last)][word]);
    let (mut a, mut b, mut c, mut d) = (load(0), load(1), load(2), load(3));
    let runs: [&[Block]; MAX_LANES] = std::array::from_fn(|lane| lanes[lane.min(last)]);
    for n in 0..lanes[0].len() {
        // Read each lane's block once, then transpose its words into vectors.
        let words: [[u32; 16]; MAX_LANES] = std::array::from_fn(|lane| {
            let block = &runs[lane][n];
            std::array::from_fn(|i| word(block, i))
        });
        let m: [W; 16] = std::array::from_fn(|i| W::from_fn(|lane| words[lane][i]));
        let (a0, b0, c0, d0) = (a, b, c, d);
        md5_rounds!(W, m, a, b, c, d);
        (a, b, c, d) = (a + a0, b + b0, c + c0, d + d0);
    }
    for (lane, state) in states.iter_mut().enumerate() {
        *state = [a.lane(lane), b.lane(lane), c.lane(lane), d.lane(lane)];
    }
}

/// Runs the same number of blocks through each state, as many streams side by side as there are
/// states (at most [`MAX_LANES`]), choosing the narrowest lane group that holds them.
pub(crate) fn compress(states: &mut [[u32; 4]], lanes: &[&[Block]]) {
    debug_assert!(states.len() == lanes.len() && (1..=MAX_LANES).contains(&lanes.len()));
    debug_assert!(lanes.iter().all(|lane| lane.len() == lanes[0].len()));
    match lanes.len() {
        1 => compress_as::<Wrapping<u32>>(states, lanes),
        2..=4 => compress_as::<wide::u32x4>(states, lanes),
        _ => compress_as::<wide::u32x8>(states, lanes),
    }
}

/// The running MD5 of one stream: the chained state, the bytes of a block not yet complete,
/// and the length so far.
#[derive(Clone, Debug)]
pub(crate) struct Md5Stream {
    pub(crate) state: [u32; 4],
    pub(crate) partial: Vec<u8>,
    pub(crate) len: u64,
}

impl Default for Md5Stream {
    fn default() -> Self {
        Self { state: INITIAL, partial: Vec::with_capacity(64), len: 0 }
    }
}

impl Md5Stream {
    /// Pads the stream (RFC 1321 section 3.1-3.2) and returns its digest.
    pub(crate) fn finish(mut self) -> [u8; 16] {
        let bits = self.len.wrapping_mul(8);
        self.partial.push(0x80);
        let padded = if self.partial.len() <= 56 { 64 } else { 128 };
        self.partial.resize(padded - 8, 0);
        self.partial.extend_from_slice(&bits.to_le_bytes());
        let (blocks, rest) = self.partial.as_chunks::<64>();
        debug_assert!(rest.is_empty());
        compress(std::slice::from_mut(&mut self.state), &[blocks]);
        let mut digest = [0; 16];
        for (out, word) in digest.chunks_exact_mut(4).zip(self.state) {
            out.copy_from_slice(&word.to_le_bytes());
        }
        digest
    }
}
