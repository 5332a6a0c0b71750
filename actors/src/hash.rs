//! A fast hasher for the maps keyed by run ids (and actor ids) that every run passes through.
//!
//! Run ids are UUID v7: 62 of their bits are random, so a multiply-and-rotate hash (the
//! scheme of rustc's FxHash) spreads them well and costs a few instructions, where the
//! default SipHash costs tens of nanoseconds per lookup. The keys are made by runwarden, not
//! by callers, so resistance to chosen-key flooding is not needed; maps keyed by user text
//! (idempotency keys) keep the default hasher.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

/// Multiply-and-rotate hasher over 8-byte words.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct IdHasher(u64);

const K: u64 = 0xf135_7aea_2e62_a9c5;

impl IdHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(26) ^ word).wrapping_mul(K);
    }
}

impl Hasher for IdHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(w));
        }
    }

    #[inline]
    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }

    #[inline]
    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        // The multiply leaves the low bits weakest; hashbrown takes its bucket from them and
        // its tag from the top seven, so fold the high half down.
        self.0 ^ (self.0 >> 32)
    }
}

/// A `HashMap` with [`IdHasher`].
pub(crate) type IdMap<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;

/// A `HashSet` with [`IdHasher`].
pub(crate) type IdSet<K> = HashSet<K, BuildHasherDefault<IdHasher>>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::RunId;
    use std::hash::BuildHasher;

    #[test]
    fn run_ids_spread_over_buckets() {
        // 4,096 fresh ids into 256 buckets by the low bits: no bucket may be badly overfull.
        let build = BuildHasherDefault::<IdHasher>::default();
        let mut buckets = [0u32; 256];
        for _ in 0..4096 {
            buckets[(build.hash_one(RunId::new()) & 255) as usize] += 1;
        }
        let max = buckets.iter().copied().max().unwrap_or(0);
        assert!(max < 48, "fullest bucket holds {max} of an expected 16");
    }

    #[test]
    fn maps_find_what_they_hold() {
        let mut m: IdMap<RunId, u32> = IdMap::default();
        let ids: Vec<RunId> = (0..1000).map(|_| RunId::new()).collect();
        for (i, id) in ids.iter().enumerate() {
            m.insert(*id, i as u32);
        }
        for (i, id) in ids.iter().enumerate() {
            assert_eq!(m.get(id), Some(&(i as u32)));
        }
        assert!(!m.contains_key(&RunId::new()));
    }
}
