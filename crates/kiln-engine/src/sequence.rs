//! A request as the scheduler tracks it: its tokens so far, how many of them have keys and
//! values in the cache (`num_computed_tokens`), and the blocks that hold them.

use crate::block_hash::BlockHash;
use crate::block_pool::{BlockPool, BlockTable};
use crate::request::RequestId;

#[derive(Debug)]
pub struct Sequence {
    pub id: RequestId,
    /// Prompt, then generated tokens.
    pub tokens: Vec<u32>,
    pub prompt_len: usize,
    pub max_tokens: usize,
    /// Sampling one of these ends the request (EOS, unless the request ignores it).
    pub stop_token_ids: Vec<u32>,
    /// Tokens whose keys and values are in `blocks`.
    pub num_computed_tokens: usize,
    /// Prompt tokens served by the prefix cache when the request was admitted.
    pub num_cached_tokens: usize,
    pub blocks: BlockTable,
    /// Hashes of the full blocks of `tokens` computed so far.
    pub block_hashes: Vec<BlockHash>,
    /// Of `blocks`, how many leading ones are registered in the prefix cache.
    pub num_registered_blocks: usize,
    /// Prompt log-probabilities: return logits for the prompt positions from this one on
    /// until the prompt has been computed once. The prefix cache then serves at most this
    /// many tokens (cached positions have no logits).
    pub prompt_logits_from: Option<usize>,
}

impl Sequence {
    pub fn new(id: RequestId, prompt: Vec<u32>, max_tokens: usize, pool: &BlockPool) -> Self {
        Self {
            id,
            prompt_len: prompt.len(),
            tokens: prompt,
            max_tokens,
            stop_token_ids: vec![],
            num_computed_tokens: 0,
            num_cached_tokens: 0,
            blocks: BlockTable::new(pool),
            block_hashes: vec![],
            num_registered_blocks: 0,
            prompt_logits_from: None,
        }
    }

    pub fn num_generated(&self) -> usize {
        self.tokens.len() - self.prompt_len
    }

    /// Tokens still to compute before the next sample.
    pub fn num_pending(&self) -> usize {
        self.tokens.len() - self.num_computed_tokens
    }

    /// Forgets the cache (preemption by recompute): blocks go back, and every token is
    /// computed again on readmission.
    pub fn reset_computed(&mut self) {
        self.blocks.clear();
        self.num_computed_tokens = 0;
        self.num_registered_blocks = 0;
    }
}
