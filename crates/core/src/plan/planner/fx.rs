//! The planner's hash maps: keyed by addresses and cloud ids, hashed with FxHash.

use std::collections::{HashMap, HashSet};
use std::hash::BuildHasherDefault;

/// The planner's hash: FxHash's word-at-a-time mix. Keys are addresses and cloud ids from the
/// user's own configuration and clouds, so flooding is not a threat, and this hashes those
/// short strings several times faster than the default SipHash.
#[derive(Clone, Copy, Default)]
pub(super) struct Fx(u64);

impl Fx {
    const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(Self::SEED);
    }
}

impl std::hash::Hasher for Fx {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(c);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word));
        }
    }

    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

pub(super) type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<Fx>>;
pub(super) type FastSet<K> = HashSet<K, BuildHasherDefault<Fx>>;
