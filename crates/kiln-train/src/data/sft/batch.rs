//! A batch of fine-tuning rows, padded or packed. Each row holds one example (padded
//! batches) or several laid end to end (packed); `segments` records where each example
//! sits so attention can be kept inside it, positions restart at 0 for every example, and
//! padding is never trained.

use std::ops::Range;

use super::tokenize::{labels_of, TokenizedExample};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SftBatch {
    pub rows: usize,
    pub seq_len: usize,
    /// (rows, seq_len), row-major; padding is `pad_id`.
    pub input_ids: Vec<u32>,
    /// (rows, seq_len): whether predicting this token counts in the loss. False on padding
    /// and on the first token of every example, so no example is trained to continue the
    /// one packed before it.
    pub loss_mask: Vec<bool>,
    /// (rows, seq_len): the position within its own example (0 on padding).
    pub position_ids: Vec<u32>,
    /// Per row, the token ranges of its examples in order; tokens past the last are padding.
    pub segments: Vec<Vec<Range<usize>>>,
}

impl SftBatch {
    /// Lays out `rows` (each a list of examples placed end to end) in rows of `seq_len`,
    /// padding with `pad_id`. Every row must fit: the caller plans rows within `seq_len`.
    pub fn from_rows(rows: &[Vec<&TokenizedExample>], seq_len: usize, pad_id: u32) -> Self {
        let n = rows.len() * seq_len;
        let mut batch = SftBatch {
            rows: rows.len(),
            seq_len,
            input_ids: vec![pad_id; n],
            loss_mask: vec![false; n],
            position_ids: vec![0; n],
            segments: Vec::with_capacity(rows.len()),
        };
        for (r, row) in rows.iter().enumerate() {
            let mut at = 0;
            let mut segments = Vec::with_capacity(row.len());
            for ex in row {
                let end = at + ex.len();
                assert!(
                    end <= seq_len,
                    "row {r} holds {end} tokens, more than seq_len {seq_len}"
                );
                let base = r * seq_len;
                batch.input_ids[base + at..base + end].copy_from_slice(&ex.input_ids);
                batch.loss_mask[base + at..base + end].copy_from_slice(&ex.loss_mask);
                // Even if an example's own mask trains its first token, here that token
                // would be predicted from the previous example.
                batch.loss_mask[base + at] = false;
                for (p, slot) in batch.position_ids[base + at..base + end]
                    .iter_mut()
                    .enumerate()
                {
                    *slot = p as u32;
                }
                segments.push(at..end);
                at = end;
            }
            batch.segments.push(segments);
        }
        batch
    }

    /// One example per row, padded to the longest.
    pub fn padded(examples: &[&TokenizedExample], pad_id: u32) -> Self {
        let seq_len = examples.iter().map(|e| e.len()).max().unwrap_or(0);
        let rows: Vec<Vec<&TokenizedExample>> = examples.iter().map(|&e| vec![e]).collect();
        Self::from_rows(&rows, seq_len, pad_id)
    }

    pub fn row_ids(&self, row: usize) -> &[u32] {
        &self.input_ids[row * self.seq_len..(row + 1) * self.seq_len]
    }

    pub fn row_mask(&self, row: usize) -> &[bool] {
        &self.loss_mask[row * self.seq_len..(row + 1) * self.seq_len]
    }

    /// Hugging Face's `labels` (unshifted; -100 where not trained).
    pub fn labels(&self) -> Vec<i64> {
        labels_of(&self.input_ids, &self.loss_mask)
    }

    pub fn trained_tokens(&self) -> usize {
        self.loss_mask.iter().filter(|&&m| m).count()
    }

    /// Tokens that are not padding.
    pub fn real_tokens(&self) -> usize {
        self.segments
            .iter()
            .flat_map(|row| row.iter().map(|s| s.len()))
            .sum()
    }
}

/// Fixed evaluation batches: `examples` in order, `batch_size` at a time, each padded to its
/// longest row. No randomness, so every eval sees the same batches.
pub fn eval_batches(
    examples: &[TokenizedExample],
    batch_size: usize,
    pad_id: u32,
) -> Vec<SftBatch> {
    examples
        .chunks(batch_size.max(1))
        .map(|chunk| {
            let refs: Vec<&TokenizedExample> = chunk.iter().collect();
            SftBatch::padded(&refs, pad_id)
        })
        .collect()
}

#[cfg(test)]
// `[0..4]` here is a list of one segment, which is what the lint takes for a mistake.
#[allow(clippy::single_range_in_vec_init)]
mod tests {
    use super::*;

    fn ex(ids: &[u32], mask: &[bool]) -> TokenizedExample {
        TokenizedExample {
            input_ids: ids.to_vec(),
            loss_mask: mask.to_vec(),
            line: 1,
        }
    }

    #[test]
    fn padding_is_never_trained_and_positions_restart() {
        let a = ex(&[1, 2, 3, 4], &[false, false, true, true]);
        let b = ex(&[5, 6], &[false, true]);
        let batch = SftBatch::padded(&[&a, &b], 0);
        assert_eq!((batch.rows, batch.seq_len), (2, 4));
        assert_eq!(batch.row_ids(1), [5, 6, 0, 0]);
        assert_eq!(batch.row_mask(1), [false, true, false, false]);
        assert_eq!(batch.position_ids, [0, 1, 2, 3, 0, 1, 0, 0]);
        assert_eq!(batch.labels(), [-100, -100, 3, 4, -100, 6, -100, -100]);
        assert_eq!(batch.segments, [vec![0..4], vec![0..2]]);
        assert_eq!((batch.trained_tokens(), batch.real_tokens()), (3, 6));
    }

    #[test]
    fn packed_rows_record_boundaries_and_never_train_across_them() {
        // `b` claims its first token is trained; packed after `a` it must not be.
        let a = ex(&[1, 2, 3], &[false, true, true]);
        let b = ex(&[4, 5], &[true, true]);
        let c = ex(&[6, 7, 8, 9], &[false, false, true, true]);
        let batch = SftBatch::from_rows(&[vec![&a, &b], vec![&c]], 6, 99);
        assert_eq!(batch.row_ids(0), [1, 2, 3, 4, 5, 99]);
        assert_eq!(batch.row_mask(0), [false, true, true, false, true, false]);
        assert_eq!(batch.position_ids[..6], [0, 1, 2, 0, 1, 0]);
        assert_eq!(batch.segments[0], [0..3, 3..5]);
        assert_eq!(batch.row_ids(1), [6, 7, 8, 9, 99, 99]);
        assert_eq!(batch.segments[1], [0..4]);
    }

    #[test]
    fn eval_batches_keep_file_order_and_every_example() {
        let exs: Vec<_> = (1..=5u32)
            .map(|n| ex(&vec![n; n as usize], &vec![true; n as usize]))
            .collect();
        let batches = eval_batches(&exs, 2, 0);
        assert_eq!(batches.len(), 3);
        assert_eq!(batches[2].rows, 1);
        let firsts: Vec<u32> = batches
            .iter()
            .flat_map(|b| (0..b.rows).map(move |r| b.row_ids(r)[0]))
            .collect();
        assert_eq!(firsts, [1, 2, 3, 4, 5]);
    }
}
