//! Epochs of fine-tuning batches from a seeded, checkpointable RNG. Each epoch shuffles the
//! examples, then either sorts them by length within windows of a few batches (so a batch
//! pads little, while batches still come in random order) or packs them end to end into
//! rows of `max_len`. Every example is in exactly one batch per epoch; the last batch may be
//! smaller. [`SftSampler::position`] is what a checkpoint stores to resume mid-epoch.

use serde::{Deserialize, Serialize};

use super::batch::SftBatch;
use super::tokenize::TokenizedExample;
use crate::data::rng::{DataRng, DataRngState};
use crate::error::{Result, TrainError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "kind")]
pub enum Batching {
    /// Sort by length within shuffled windows of `window` batches; pad to each batch's
    /// longest row.
    Bucketed { window: usize },
    /// Concatenate examples into rows of `max_len` tokens.
    Packed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SamplerConfig {
    pub batch_size: usize,
    pub max_len: usize,
    pub pad_id: u32,
    pub batching: Batching,
    pub seed: u64,
}

/// Where a sampler is: enough to rebuild the epoch's plan and continue at the next batch,
/// plus what the plan depends on, so a resume with other data or settings is refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataPosition {
    pub epoch: u64,
    pub next_batch: usize,
    /// The RNG as it was when this epoch's plan was drawn.
    pub epoch_rng: DataRngState,
    pub examples: usize,
    /// FNV-1a of every example's tokens and mask.
    pub fingerprint: u64,
    pub batch_size: usize,
    pub max_len: usize,
    pub batching: Batching,
}

pub struct SftSampler {
    examples: Vec<TokenizedExample>,
    config: SamplerConfig,
    fingerprint: u64,
    rng: DataRng,
    epoch: u64,
    epoch_rng: DataRngState,
    /// This epoch's batches: rows of example indices.
    plan: Vec<Vec<Vec<usize>>>,
    next: usize,
}

impl SftSampler {
    pub fn new(examples: Vec<TokenizedExample>, config: SamplerConfig) -> Result<Self> {
        let invalid = |m: String| Err(TrainError::InvalidArgument(m));
        if examples.is_empty() {
            return invalid("no examples to sample batches from".into());
        }
        if config.batch_size == 0 {
            return invalid("batch_size must be at least 1".into());
        }
        if let Batching::Bucketed { window: 0 } = config.batching {
            return invalid("the bucketing window must be at least 1 batch".into());
        }
        if let Some(ex) = examples
            .iter()
            .find(|e| e.len() > config.max_len || e.is_empty())
        {
            return invalid(format!(
                "the example from line {} has {} tokens; examples must have 1..={} (prepare them with the same max_len)",
                ex.line,
                ex.len(),
                config.max_len
            ));
        }
        let rng = DataRng::seed_from_u64(config.seed);
        let mut sampler = Self {
            fingerprint: fingerprint(&examples),
            examples,
            config,
            epoch_rng: rng.state(),
            rng,
            epoch: 0,
            plan: Vec::new(),
            next: 0,
        };
        sampler.plan = sampler.draw_plan();
        Ok(sampler)
    }

    pub fn examples(&self) -> &[TokenizedExample] {
        &self.examples
    }

    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    pub fn batches_per_epoch(&self) -> usize {
        self.plan.len()
    }

    /// The next batch; a new epoch (a new shuffle) starts when this one is used up.
    pub fn next_batch(&mut self) -> SftBatch {
        if self.next == self.plan.len() {
            self.epoch += 1;
            self.epoch_rng = self.rng.state();
            self.plan = self.draw_plan();
            self.next = 0;
        }
        let rows: Vec<Vec<&TokenizedExample>> = self.plan[self.next]
            .iter()
            .map(|row| row.iter().map(|&i| &self.examples[i]).collect())
            .collect();
        self.next += 1;
        let seq_len = match self.config.batching {
            Batching::Packed => self.config.max_len,
            Batching::Bucketed { .. } => rows.iter().map(|r| r[0].len()).max().unwrap_or(0),
        };
        SftBatch::from_rows(&rows, seq_len, self.config.pad_id)
    }

    pub fn position(&self) -> DataPosition {
        DataPosition {
            epoch: self.epoch,
            next_batch: self.next,
            epoch_rng: self.epoch_rng,
            examples: self.examples.len(),
            fingerprint: self.fingerprint,
            batch_size: self.config.batch_size,
            max_len: self.config.max_len,
            batching: self.config.batching,
        }
    }

    /// Continues exactly where the sampler that gave `pos` was. Refuses a position taken
    /// with other data or settings, naming what changed.
    pub fn restore(&mut self, pos: &DataPosition) -> Result<()> {
        let now = self.position();
        let mut changed = Vec::new();
        if pos.examples != now.examples {
            changed.push(format!("examples {} -> {}", pos.examples, now.examples));
        } else if pos.fingerprint != now.fingerprint {
            changed.push("the examples' tokens differ".into());
        }
        if pos.batch_size != now.batch_size {
            changed.push(format!(
                "batch_size {} -> {}",
                pos.batch_size, now.batch_size
            ));
        }
        if pos.max_len != now.max_len {
            changed.push(format!("max_len {} -> {}", pos.max_len, now.max_len));
        }
        if pos.batching != now.batching {
            changed.push(format!("batching {:?} -> {:?}", pos.batching, now.batching));
        }
        if !changed.is_empty() {
            return Err(TrainError::DataPosition(format!(
                "cannot resume: the data changed since it was saved ({})",
                changed.join("; ")
            )));
        }
        self.rng = DataRng::from_state(pos.epoch_rng)?;
        self.epoch = pos.epoch;
        self.epoch_rng = pos.epoch_rng;
        self.plan = self.draw_plan();
        if pos.next_batch > self.plan.len() {
            return Err(TrainError::DataPosition(format!(
                "batch {} is past the end of epoch {} ({} batches)",
                pos.next_batch,
                pos.epoch,
                self.plan.len()
            )));
        }
        self.next = pos.next_batch;
        Ok(())
    }

    fn draw_plan(&mut self) -> Vec<Vec<Vec<usize>>> {
        let mut order: Vec<usize> = (0..self.examples.len()).collect();
        shuffle(&mut order, &mut self.rng);
        let b = self.config.batch_size;
        match self.config.batching {
            Batching::Bucketed { window } => {
                let mut batches: Vec<Vec<Vec<usize>>> = Vec::new();
                for chunk in order.chunks_mut(b * window) {
                    chunk.sort_by_key(|&i| self.examples[i].len());
                    batches.extend(
                        chunk
                            .chunks(b)
                            .map(|c| c.iter().map(|&i| vec![i]).collect()),
                    );
                }
                // Sorted windows would otherwise hand out batches short to long.
                shuffle(&mut batches, &mut self.rng);
                batches
            }
            Batching::Packed => {
                let mut rows: Vec<Vec<usize>> = Vec::new();
                let mut used = usize::MAX; // forces a first row
                for i in order {
                    let n = self.examples[i].len();
                    if used.saturating_add(n) > self.config.max_len {
                        rows.push(Vec::new());
                        used = 0;
                    }
                    if let Some(row) = rows.last_mut() {
                        row.push(i);
                    }
                    used += n;
                }
                rows.chunks(b).map(<[Vec<usize>]>::to_vec).collect()
            }
        }
    }
}

/// Fisher–Yates with the checkpointable RNG.
fn shuffle<T>(items: &mut [T], rng: &mut DataRng) {
    for i in (1..items.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        items.swap(i, j);
    }
}

fn fingerprint(examples: &[TokenizedExample]) -> u64 {
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |x: u64| {
        for b in x.to_le_bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(PRIME);
        }
    };
    for ex in examples {
        eat(ex.len() as u64);
        for (&id, &m) in ex.input_ids.iter().zip(&ex.loss_mask) {
            eat(u64::from(id) << 1 | u64::from(m));
        }
    }
    h
}
