//! The pool of KV-cache blocks: reference counts, an LRU queue of free blocks, and the
//! prefix cache's index from block hash to block (vLLM's `BlockPool`). A block whose last
//! user lets go keeps its contents and its hash while it waits in the free queue, so a later
//! request with the same prefix can take it back; allocation evicts from the queue's old end.
//!
//! Sequences hold blocks through [`BlockTable`], which returns them on `Drop`.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

use crate::block_hash::BlockHash;

pub type BlockId = u32;

#[derive(Debug, Clone, Default)]
struct BlockMeta {
    ref_cnt: u32,
    hash: Option<BlockHash>,
    /// Key in the free queue while free.
    free_key: Option<u64>,
}

#[derive(Debug)]
struct PoolState {
    blocks: Vec<BlockMeta>,
    /// Free blocks, oldest-freed first (the next evicted).
    free: BTreeMap<u64, BlockId>,
    next_key: u64,
    cached: HashMap<BlockHash, BlockId>,
}

impl PoolState {
    fn push_free(&mut self, id: BlockId) {
        let key = self.next_key;
        self.next_key += 1;
        self.free.insert(key, id);
        self.blocks[id as usize].free_key = Some(key);
    }

    fn take_free(&mut self, id: BlockId) {
        if let Some(key) = self.blocks[id as usize].free_key.take() {
            self.free.remove(&key);
        }
    }
}

/// A cheap handle to the shared pool (the scheduler and every [`BlockTable`] hold one).
#[derive(Debug, Clone)]
pub struct BlockPool {
    state: Rc<RefCell<PoolState>>,
}

impl BlockPool {
    pub fn new(num_blocks: usize) -> Self {
        let mut state = PoolState {
            blocks: vec![BlockMeta::default(); num_blocks],
            free: BTreeMap::new(),
            next_key: 0,
            cached: HashMap::new(),
        };
        for id in 0..num_blocks as BlockId {
            state.push_free(id);
        }
        Self {
            state: Rc::new(RefCell::new(state)),
        }
    }

    pub fn num_blocks(&self) -> usize {
        self.state.borrow().blocks.len()
    }

    /// Blocks no sequence holds (cached or not).
    pub fn num_free(&self) -> usize {
        self.state.borrow().free.len()
    }

    pub fn num_used(&self) -> usize {
        self.num_blocks() - self.num_free()
    }

    /// Blocks kept for reuse by the prefix cache (held or free).
    pub fn num_cached(&self) -> usize {
        self.state.borrow().cached.len()
    }

    /// `n` fresh blocks (evicting the least recently freed cached ones), or `None` if fewer
    /// than `n` are free; nothing is taken then.
    pub fn allocate(&self, n: usize) -> Option<Vec<BlockId>> {
        let mut s = self.state.borrow_mut();
        if s.free.len() < n {
            return None;
        }
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let (_, id) = s.free.pop_first()?;
            let meta = &mut s.blocks[id as usize];
            meta.free_key = None;
            meta.ref_cnt = 1;
            if let Some(h) = meta.hash.take() {
                if s.cached.get(&h) == Some(&id) {
                    s.cached.remove(&h);
                }
            }
            out.push(id);
        }
        Some(out)
    }

    /// The cached block holding `hash`, if any.
    pub fn lookup(&self, hash: &BlockHash) -> Option<BlockId> {
        self.state.borrow().cached.get(hash).copied()
    }

    /// Takes a reference on cached blocks found by [`Self::lookup`] (out of the free queue
    /// if nobody held them).
    pub fn touch(&self, ids: &[BlockId]) {
        let mut s = self.state.borrow_mut();
        for &id in ids {
            s.take_free(id);
            s.blocks[id as usize].ref_cnt += 1;
        }
    }

    /// Of `ids`, those no sequence holds: touching them uses up free blocks.
    pub fn count_free_among(&self, ids: &[BlockId]) -> usize {
        let s = self.state.borrow();
        ids.iter()
            .filter(|&&id| s.blocks[id as usize].ref_cnt == 0)
            .count()
    }

    /// Records that block `id` now holds the full block `hash`, so later prompts can reuse
    /// it. A hash already cached elsewhere keeps its first block.
    pub fn cache(&self, id: BlockId, hash: BlockHash) {
        let mut s = self.state.borrow_mut();
        if s.blocks[id as usize].hash.is_some() {
            return;
        }
        s.blocks[id as usize].hash = Some(hash);
        s.cached.entry(hash).or_insert(id);
    }

    /// Drops one reference from each block; blocks nobody holds go to the free queue.
    /// Callers pass a sequence's blocks last first, so its tail is evicted before the
    /// prefix other requests are more likely to share.
    fn release(&self, ids: impl Iterator<Item = BlockId>) {
        let mut s = self.state.borrow_mut();
        for id in ids {
            let meta = &mut s.blocks[id as usize];
            debug_assert!(meta.ref_cnt > 0, "block {id} released twice");
            meta.ref_cnt = meta.ref_cnt.saturating_sub(1);
            if meta.ref_cnt == 0 {
                s.push_free(id);
            }
        }
    }
}

/// The blocks a sequence holds, in position order. Returned to the pool on `Drop`.
#[derive(Debug)]
pub struct BlockTable {
    pool: BlockPool,
    ids: Vec<BlockId>,
}

impl BlockTable {
    pub fn new(pool: &BlockPool) -> Self {
        Self {
            pool: pool.clone(),
            ids: Vec::new(),
        }
    }

    pub fn ids(&self) -> &[BlockId] {
        &self.ids
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Appends blocks already referenced for this table (allocated or touched).
    pub fn extend(&mut self, ids: impl IntoIterator<Item = BlockId>) {
        self.ids.extend(ids);
    }

    /// Returns every block to the pool.
    pub fn clear(&mut self) {
        let ids = std::mem::take(&mut self.ids);
        self.pool.release(ids.into_iter().rev());
    }
}

impl Drop for BlockTable {
    fn drop(&mut self) {
        self.clear();
    }
}
