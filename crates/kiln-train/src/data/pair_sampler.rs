//! Batches of preference pairs: each epoch a seeded shuffle of the pair indices, taken
//! `batch_size` at a time. Its position (epoch, next batch, the RNG at the epoch's start,
//! and what the order depends on) goes into checkpoints so a resume continues mid-epoch.

use serde::{Deserialize, Serialize};

use crate::data::rng::{DataRng, DataRngState};
use crate::error::{Result, TrainError};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PairPosition {
    pub epoch: u64,
    pub next: usize,
    pub epoch_rng: DataRngState,
    pub pairs: usize,
    pub batch_size: usize,
}

pub struct PairSampler {
    pairs: usize,
    batch_size: usize,
    rng: DataRng,
    epoch: u64,
    epoch_rng: DataRngState,
    order: Vec<usize>,
    next: usize,
}

impl PairSampler {
    pub fn new(pairs: usize, batch_size: usize, seed: u64) -> Result<Self> {
        if pairs == 0 || batch_size == 0 {
            return Err(TrainError::InvalidArgument(
                "DPO needs at least one pair and a batch size of at least 1".into(),
            ));
        }
        let rng = DataRng::seed_from_u64(seed);
        let mut s = Self {
            pairs,
            batch_size,
            epoch_rng: rng.state(),
            rng,
            epoch: 0,
            order: vec![],
            next: 0,
        };
        s.order = s.shuffle();
        Ok(s)
    }

    /// Fisher–Yates over the pair indices with the sampler's RNG.
    fn shuffle(&mut self) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.pairs).collect();
        for i in (1..order.len()).rev() {
            let j = self.rng.below(i as u64 + 1) as usize;
            order.swap(i, j);
        }
        order
    }

    /// The next batch's pair indices (the last of an epoch may be smaller).
    pub fn next_batch(&mut self) -> Vec<usize> {
        if self.next >= self.order.len() {
            self.epoch += 1;
            self.epoch_rng = self.rng.state();
            self.order = self.shuffle();
            self.next = 0;
        }
        let end = (self.next + self.batch_size).min(self.order.len());
        let batch = self.order[self.next..end].to_vec();
        self.next = end;
        batch
    }

    pub fn position(&self) -> PairPosition {
        PairPosition {
            epoch: self.epoch,
            next: self.next,
            epoch_rng: self.epoch_rng,
            pairs: self.pairs,
            batch_size: self.batch_size,
        }
    }

    pub fn restore(&mut self, p: &PairPosition) -> Result<()> {
        if (p.pairs, p.batch_size) != (self.pairs, self.batch_size) {
            return Err(TrainError::InvalidArgument(format!(
                "the checkpoint's data position is for {} pairs in batches of {}, this run has \
                 {} in batches of {}",
                p.pairs, p.batch_size, self.pairs, self.batch_size
            )));
        }
        self.rng.restore(p.epoch_rng)?;
        self.epoch = p.epoch;
        self.epoch_rng = p.epoch_rng;
        self.order = self.shuffle();
        self.next = p.next;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epochs_cover_every_pair_and_restore_continues_the_same_stream() {
        let mut a = PairSampler::new(10, 4, 9).unwrap();
        let epoch: Vec<usize> = (0..3).flat_map(|_| a.next_batch()).collect();
        let mut sorted = epoch.clone();
        sorted.sort();
        assert_eq!(sorted, (0..10).collect::<Vec<_>>());
        a.next_batch();
        let pos = a.position();
        let rest: Vec<Vec<usize>> = (0..5).map(|_| a.next_batch()).collect();
        let mut b = PairSampler::new(10, 4, 9).unwrap();
        b.restore(&pos).unwrap();
        let again: Vec<Vec<usize>> = (0..5).map(|_| b.next_batch()).collect();
        assert_eq!(rest, again);
        let mut c = PairSampler::new(11, 4, 9).unwrap();
        assert!(c.restore(&pos).is_err());
    }
}
