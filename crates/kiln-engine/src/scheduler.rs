//! The continuous-batching scheduler, a pure state machine (no tensors, no threads):
//! `add_request`, `schedule() -> SchedulerOutput`, `update_from_output`. Each step spends a
//! token budget on running sequences first (one token per decode, prefill chunks for the
//! rest), then admits waiting requests first come, first served while the budget, the
//! sequence limit and the free blocks allow. When a running sequence cannot get a block,
//! the newest running sequence is preempted: its blocks go back and it recomputes later.

use std::collections::VecDeque;

use kiln_model::SeqLogits;

use crate::kv_cache_manager::KvCacheManager;
use crate::output::FinishReason;
use crate::request::RequestId;
use crate::sequence::Sequence;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchedulerConfig {
    pub max_num_seqs: usize,
    pub max_num_batched_tokens: usize,
    pub block_size: usize,
    pub num_blocks: usize,
    pub enable_prefix_caching: bool,
}

/// One sequence's work in a step: compute `tokens` at positions `start_pos..`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduledSeq {
    pub id: RequestId,
    pub start_pos: usize,
    pub tokens: Vec<u32>,
    pub block_table: Vec<u32>,
    pub logits: SeqLogits,
    /// This chunk reaches the last token: a new token is sampled from its last row.
    pub sample: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SchedulerOutput {
    pub seqs: Vec<ScheduledSeq>,
    /// Sequences that lost their cache this step (to recompute later).
    pub preempted: Vec<RequestId>,
    pub num_tokens: usize,
}

impl SchedulerOutput {
    pub fn is_empty(&self) -> bool {
        self.seqs.is_empty()
    }
}

pub struct Scheduler {
    config: SchedulerConfig,
    kv: KvCacheManager,
    waiting: VecDeque<Sequence>,
    running: Vec<Sequence>,
    pub num_preemptions: u64,
}

impl Scheduler {
    pub fn new(config: SchedulerConfig) -> Self {
        let kv = KvCacheManager::new(
            config.num_blocks,
            config.block_size,
            config.enable_prefix_caching,
        );
        Self {
            config,
            kv,
            waiting: VecDeque::new(),
            running: Vec::new(),
            num_preemptions: 0,
        }
    }

    pub fn kv(&self) -> &KvCacheManager {
        &self.kv
    }

    /// A new sequence for the waiting queue, holding blocks from this scheduler's pool.
    pub fn new_sequence(&self, id: RequestId, prompt: Vec<u32>, max_tokens: usize) -> Sequence {
        Sequence::new(id, prompt, max_tokens, self.kv.pool())
    }

    pub fn add_request(&mut self, seq: Sequence) {
        self.waiting.push_back(seq);
    }

    pub fn num_waiting(&self) -> usize {
        self.waiting.len()
    }

    pub fn num_running(&self) -> usize {
        self.running.len()
    }

    pub fn has_work(&self) -> bool {
        !self.waiting.is_empty() || !self.running.is_empty()
    }

    pub fn get(&self, id: RequestId) -> Option<&Sequence> {
        self.running
            .iter()
            .chain(self.waiting.iter())
            .find(|s| s.id == id)
    }

    /// Removes a request wherever it is (finished by a stop string, cancelled); its blocks
    /// return to the pool. Returns whether it was there.
    pub fn finish_request(&mut self, id: RequestId) -> bool {
        if let Some(i) = self.running.iter().position(|s| s.id == id) {
            self.running.remove(i);
            return true;
        }
        if let Some(i) = self.waiting.iter().position(|s| s.id == id) {
            self.waiting.remove(i);
            return true;
        }
        false
    }

    pub fn schedule(&mut self) -> SchedulerOutput {
        let mut out = SchedulerOutput::default();
        let mut budget = self.config.max_num_batched_tokens;
        let mut i = 0;
        while i < self.running.len() && budget > 0 {
            let num_new = self.running[i].num_pending().min(budget);
            if num_new == 0 {
                i += 1;
                continue;
            }
            if !self.make_room(i, num_new, &mut out) {
                break; // sequence i itself was preempted; those after it are gone too
            }
            out.seqs.push(chunk(&self.running[i], num_new));
            budget -= num_new;
            i += 1;
        }
        if out.preempted.is_empty() {
            self.admit_waiting(&mut budget, &mut out);
        }
        out.num_tokens = self.config.max_num_batched_tokens - budget;
        out
    }

    /// Allocates slots for `num_new` tokens of running sequence `i`, preempting from the
    /// back of the running list until they fit. False if `i` itself had to go.
    fn make_room(&mut self, i: usize, num_new: usize, out: &mut SchedulerOutput) -> bool {
        loop {
            if self.kv.allocate_slots(&mut self.running[i], num_new, &[]) {
                return true;
            }
            let Some(mut victim) = self.running.pop() else {
                return false;
            };
            victim.reset_computed();
            out.preempted.push(victim.id);
            self.num_preemptions += 1;
            let was_self = self.running.len() == i;
            self.waiting.push_front(victim);
            if was_self {
                return false;
            }
        }
    }

    fn admit_waiting(&mut self, budget: &mut usize, out: &mut SchedulerOutput) {
        while *budget > 0 && self.running.len() < self.config.max_num_seqs {
            let Some(seq) = self.waiting.front_mut() else {
                break;
            };
            let (cached, hit) = if seq.num_computed_tokens == 0 {
                self.kv.cached_prefix(seq)
            } else {
                (vec![], 0)
            };
            let num_new = (seq.tokens.len() - hit).min(*budget);
            if !self.kv.allocate_slots(seq, num_new, &cached) {
                break; // first come, first served: nobody overtakes the head
            }
            let Some(mut seq) = self.waiting.pop_front() else {
                break;
            };
            seq.num_computed_tokens = hit;
            if seq.num_generated() == 0 {
                seq.num_cached_tokens = hit;
                self.kv.record_lookup(seq.tokens.len(), hit);
            }
            out.seqs.push(chunk(&seq, num_new));
            *budget -= num_new;
            self.running.push(seq);
        }
    }

    /// Advances the sequences of `out` by the tokens they computed and appends each sampled
    /// token (`sampled` holds one per sequence with `sample`). Returns the requests that ended
    /// here (an end token, or `max_tokens`); they are removed and their blocks freed.
    pub fn update_from_output(
        &mut self,
        out: &SchedulerOutput,
        sampled: &[(RequestId, u32)],
    ) -> Vec<(RequestId, FinishReason)> {
        for s in &out.seqs {
            if let Some(seq) = self.running.iter_mut().find(|q| q.id == s.id) {
                seq.num_computed_tokens = s.start_pos + s.tokens.len();
                if seq.num_computed_tokens >= seq.prompt_len {
                    seq.prompt_logits_from = None;
                }
                self.kv.cache_full_blocks(seq);
            }
        }
        let mut finished = vec![];
        for &(id, token) in sampled {
            let Some(seq) = self.running.iter_mut().find(|q| q.id == id) else {
                continue;
            };
            seq.tokens.push(token);
            let reason = if seq.stop_token_ids.contains(&token) {
                Some(FinishReason::Stop)
            } else if seq.num_generated() >= seq.max_tokens {
                Some(FinishReason::Length)
            } else {
                None
            };
            if let Some(r) = reason {
                finished.push((id, r));
            }
        }
        for (id, _) in &finished {
            self.finish_request(*id);
        }
        finished
    }
}

/// The next `num_new` tokens of `seq` as a step's work item.
fn chunk(seq: &Sequence, num_new: usize) -> ScheduledSeq {
    let start = seq.num_computed_tokens;
    let end = start + num_new;
    let sample = end == seq.tokens.len();
    let logits = if let Some(from) = seq.prompt_logits_from.filter(|&f| end > f) {
        SeqLogits::Tail(end - start.max(from))
    } else if sample {
        SeqLogits::Last
    } else {
        SeqLogits::None
    };
    ScheduledSeq {
        id: seq.id,
        start_pos: start,
        tokens: seq.tokens[start..end].to_vec(),
        block_table: seq.blocks.ids().to_vec(),
        logits,
        sample,
    }
}
