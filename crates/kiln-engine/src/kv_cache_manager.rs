//! Block accounting for sequences (vLLM's `KVCacheManager`): prefix-cache lookups on
//! admission, slots for new tokens, and registering full blocks for reuse once computed.

use crate::block_hash::extend_hashes;
use crate::block_pool::{BlockId, BlockPool};
use crate::sequence::Sequence;

#[derive(Debug)]
pub struct KvCacheManager {
    pool: BlockPool,
    block_size: usize,
    enable_caching: bool,
    /// Prompt tokens looked up and found, for the hit rate.
    pub queried_tokens: u64,
    pub hit_tokens: u64,
}

impl KvCacheManager {
    pub fn new(num_blocks: usize, block_size: usize, enable_caching: bool) -> Self {
        Self {
            pool: BlockPool::new(num_blocks),
            block_size,
            enable_caching,
            queried_tokens: 0,
            hit_tokens: 0,
        }
    }

    pub fn pool(&self) -> &BlockPool {
        &self.pool
    }

    pub fn block_size(&self) -> usize {
        self.block_size
    }

    /// Cached blocks holding the longest prefix of `seq`'s tokens, and how many tokens they
    /// cover. At least one token is always left to compute: its logits are needed.
    pub fn cached_prefix(&self, seq: &mut Sequence) -> (Vec<BlockId>, usize) {
        if !self.enable_caching {
            return (vec![], 0);
        }
        extend_hashes(&mut seq.block_hashes, &seq.tokens, self.block_size);
        let servable = seq
            .prompt_logits_from
            .unwrap_or(usize::MAX)
            .min(seq.tokens.len() - 1);
        let max_blocks = servable / self.block_size;
        let hits: Vec<BlockId> = seq.block_hashes[..max_blocks.min(seq.block_hashes.len())]
            .iter()
            .map_while(|h| self.pool.lookup(h))
            .collect();
        let hit = hits.len() * self.block_size;
        (hits, hit)
    }

    /// Counts an admitted prompt of `queried` tokens of which `hit` came from the cache.
    pub fn record_lookup(&mut self, queried: usize, hit: usize) {
        if self.enable_caching {
            self.queried_tokens += queried as u64;
            self.hit_tokens += hit as u64;
        }
    }

    /// Gives `seq` blocks for `num_new` more tokens after its computed ones plus the
    /// `cached` prefix blocks (taken from [`Self::cached_prefix`]). All or nothing: returns
    /// false, changing nothing, when the pool cannot cover it.
    pub fn allocate_slots(&self, seq: &mut Sequence, num_new: usize, cached: &[BlockId]) -> bool {
        let tokens = seq.num_computed_tokens + cached.len() * self.block_size + num_new;
        let held = seq.blocks.len() + cached.len();
        let fresh = tokens.div_ceil(self.block_size).saturating_sub(held);
        if self.pool.num_free() < fresh + self.pool.count_free_among(cached) {
            return false;
        }
        self.pool.touch(cached);
        seq.blocks.extend(cached.iter().copied());
        seq.num_registered_blocks += cached.len();
        match self.pool.allocate(fresh) {
            Some(ids) => {
                seq.blocks.extend(ids);
                true
            }
            None => false, // unreachable: checked above
        }
    }

    /// Registers `seq`'s newly full, computed blocks in the prefix cache.
    pub fn cache_full_blocks(&self, seq: &mut Sequence) {
        if !self.enable_caching {
            return;
        }
        let full = seq.num_computed_tokens / self.block_size;
        if full <= seq.num_registered_blocks {
            return;
        }
        extend_hashes(
            &mut seq.block_hashes,
            &seq.tokens[..full * self.block_size],
            self.block_size,
        );
        for i in seq.num_registered_blocks..full {
            self.pool.cache(seq.blocks.ids()[i], seq.block_hashes[i]);
        }
        seq.num_registered_blocks = full;
    }
}
