//! Content hashes of full KV blocks, chained so that a block's hash names its whole prefix:
//! hash(block i) = H(hash(block i - 1), tokens of block i). Two prompts share block i's
//! cached keys and values only if they agree on every token up to its end.

use std::hash::{DefaultHasher, Hash, Hasher};

/// 128 bits (two independently keyed 64-bit hashes), so an accidental collision, which
/// would serve one prompt another's keys and values, is out of reach in practice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlockHash(pub u128);

impl BlockHash {
    pub fn new(parent: Option<BlockHash>, tokens: &[u32]) -> Self {
        let half = |key: u64| {
            let mut h = DefaultHasher::new();
            key.hash(&mut h);
            parent.map(|p| p.0).hash(&mut h);
            tokens.hash(&mut h);
            h.finish()
        };
        BlockHash(((half(0x6b69_6c6e) as u128) << 64) | half(0x7072_6566) as u128)
    }
}

/// Hashes of the full blocks of `tokens`, given the hashes already known for its first
/// blocks (extended in place).
pub fn extend_hashes(hashes: &mut Vec<BlockHash>, tokens: &[u32], block_size: usize) {
    let full = tokens.len() / block_size;
    while hashes.len() < full {
        let i = hashes.len();
        let parent = hashes.last().copied();
        hashes.push(BlockHash::new(
            parent,
            &tokens[i * block_size..(i + 1) * block_size],
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_block_hash_depends_on_its_whole_prefix() {
        let a = [1, 2, 3, 4, 5, 6, 7, 8];
        let b = [9, 2, 3, 4, 5, 6, 7, 8];
        let (mut ha, mut hb) = (vec![], vec![]);
        extend_hashes(&mut ha, &a, 4);
        extend_hashes(&mut hb, &b, 4);
        assert_eq!(ha.len(), 2);
        assert_ne!(ha[0], hb[0]);
        assert_ne!(ha[1], hb[1], "same tokens after a different prefix");
        let mut again = vec![ha[0]];
        extend_hashes(&mut again, &a[..7], 4);
        assert_eq!(again.len(), 1, "a partial block has no hash");
        extend_hashes(&mut again, &a, 4);
        assert_eq!(again, ha);
    }
}
