//! The data loader's random number generator: xoshiro256** (Blackman & Vigna), seeded
//! through SplitMix64 as its authors recommend.
//!
//! kiln owns this generator rather than using `rand::rngs::StdRng` because exact resume
//! needs the state in a checkpoint: four `u64`s that [`DataRng::state`] hands out and
//! [`DataRng::restore`] takes back, and a sequence that no dependency upgrade can change
//! (`StdRng` documents that its algorithm may change between `rand` versions).

use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataRng {
    s: [u64; 4],
}

/// A saved [`DataRng`]; serializes as `{"s": [u64, u64, u64, u64]}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataRngState {
    pub s: [u64; 4],
}

impl DataRng {
    /// Expands `seed` with SplitMix64, which never yields the all-zero state xoshiro cannot
    /// leave.
    pub fn seed_from_u64(seed: u64) -> Self {
        let mut x = seed;
        let mut next = || {
            x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        Self {
            s: [next(), next(), next(), next()],
        }
    }

    /// A generator that continues exactly where the one that gave `state` was.
    pub fn from_state(state: DataRngState) -> Result<Self> {
        if state.s == [0; 4] {
            return Err(TrainError::InvalidArgument(
                "RNG state is all zeros, which xoshiro256** can never reach (corrupt checkpoint?)"
                    .into(),
            ));
        }
        Ok(Self { s: state.s })
    }

    pub fn state(&self) -> DataRngState {
        DataRngState { s: self.s }
    }

    /// Rewinds (or fast-forwards) to a saved state.
    pub fn restore(&mut self, state: DataRngState) -> Result<()> {
        *self = Self::from_state(state)?;
        Ok(())
    }

    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in `0..n` without modulo bias (Lemire's multiply-and-reject). `n` must be > 0.
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "DataRng::below(0)");
        // Low products under `threshold` would over-represent some outputs; redraw them.
        let threshold = n.wrapping_neg() % n;
        loop {
            let m = u128::from(self.next_u64()) * u128::from(n);
            if (m as u64) >= threshold {
                return (m >> 64) as u64;
            }
        }
    }
}

/// So `rand`'s distributions and shuffles can draw from the same, checkpointable stream.
impl rand::RngCore for DataRng {
    fn next_u32(&mut self) -> u32 {
        // The high bits are xoshiro's strongest.
        (DataRng::next_u64(self) >> 32) as u32
    }

    fn next_u64(&mut self) -> u64 {
        DataRng::next_u64(self)
    }

    fn fill_bytes(&mut self, dst: &mut [u8]) {
        for chunk in dst.chunks_mut(8) {
            let bytes = DataRng::next_u64(self).to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_reference_xoshiro256starstar() {
        // The reference implementation's output from state [1, 2, 3, 4] (as in rand_xoshiro's
        // test vectors).
        let mut rng = DataRng::from_state(DataRngState { s: [1, 2, 3, 4] }).unwrap();
        let expected: [u64; 10] = [
            11520,
            0,
            1509978240,
            1215971899390074240,
            1216172134540287360,
            607988272756665600,
            16172922978634559625,
            8476171486693032832,
            10595114339597558777,
            2904607092377533576,
        ];
        for e in expected {
            assert_eq!(rng.next_u64(), e);
        }
    }

    #[test]
    fn restore_continues_the_same_sequence() {
        let mut a = DataRng::seed_from_u64(7);
        for _ in 0..100 {
            a.next_u64();
        }
        let saved = a.state();
        let json = serde_json::to_string(&saved).unwrap();
        let ahead: Vec<u64> = (0..50).map(|_| a.below(1000)).collect();
        let mut b = DataRng::seed_from_u64(999);
        b.restore(serde_json::from_str(&json).unwrap()).unwrap();
        let again: Vec<u64> = (0..50).map(|_| b.below(1000)).collect();
        assert_eq!(ahead, again);
        assert!(DataRng::from_state(DataRngState { s: [0; 4] }).is_err());
    }

    #[test]
    fn below_is_in_range_and_roughly_uniform() {
        let mut rng = DataRng::seed_from_u64(1);
        let mut counts = [0u32; 10];
        for _ in 0..100_000 {
            counts[rng.below(10) as usize] += 1;
        }
        // Each bucket expects 10,000 (sd ~95); 600 is > 6 sd.
        for c in counts {
            assert!((9_400..=10_600).contains(&c), "{counts:?}");
        }
        assert_eq!(rng.below(1), 0);
    }

    #[test]
    fn different_seeds_differ() {
        let a: Vec<u64> = {
            let mut r = DataRng::seed_from_u64(1);
            (0..4).map(|_| r.next_u64()).collect()
        };
        let mut r = DataRng::seed_from_u64(2);
        let b: Vec<u64> = (0..4).map(|_| r.next_u64()).collect();
        assert_ne!(a, b);
    }
}
