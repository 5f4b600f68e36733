//! The sampler: every example once per epoch, bucketing that cuts padding, packing within
//! max_len, the same batches for the same seed, and resume from a saved position.

use super::*;

/// Examples of varied lengths whose first token is their index, so batches can be traced.
fn examples(n: usize) -> Vec<TokenizedExample> {
    (0..n)
        .map(|i| {
            let len = 2 + (i * 7919) % 23;
            let mut ids = vec![i as u32 + 1000; len];
            ids[0] = i as u32;
            TokenizedExample {
                input_ids: ids,
                loss_mask: (0..len).map(|j| j > 0).collect(),
                line: i + 1,
            }
        })
        .collect()
}

fn config(batching: Batching, seed: u64) -> SamplerConfig {
    SamplerConfig {
        batch_size: 4,
        max_len: 32,
        pad_id: 0,
        batching,
        seed,
    }
}

const BUCKETED: Batching = Batching::Bucketed { window: 4 };

/// Indices of the examples in a batch, in row and segment order.
fn members(b: &SftBatch) -> Vec<u32> {
    (0..b.rows)
        .flat_map(|r| b.segments[r].iter().map(move |s| b.row_ids(r)[s.start]))
        .collect()
}

/// The rest of the current epoch, or the whole next one when it is used up. (Packed epochs
/// differ in their number of batches, so the count is read after the first batch.)
fn epoch(s: &mut SftSampler) -> Vec<SftBatch> {
    let mut out = vec![s.next_batch()];
    while s.position().next_batch < s.batches_per_epoch() {
        out.push(s.next_batch());
    }
    out
}

#[test]
fn every_example_appears_once_per_epoch() {
    for batching in [BUCKETED, Batching::Packed] {
        let mut s = SftSampler::new(examples(50), config(batching, 1)).unwrap();
        for e in 0..2 {
            let mut seen: Vec<u32> = epoch(&mut s).iter().flat_map(members).collect();
            seen.sort();
            assert_eq!(
                seen,
                (0..50).collect::<Vec<u32>>(),
                "{batching:?} epoch {e}"
            );
        }
    }
}

#[test]
fn bucketing_pads_less_than_a_plain_shuffle() {
    let padding = |batches: &[SftBatch]| -> usize {
        batches
            .iter()
            .map(|b| b.rows * b.seq_len - b.real_tokens())
            .sum()
    };
    let mut bucketed = SftSampler::new(examples(64), config(BUCKETED, 3)).unwrap();
    // A one-batch window sorts nothing across batches: a plain shuffle.
    let plain = Batching::Bucketed { window: 1 };
    let mut shuffled = SftSampler::new(examples(64), config(plain, 3)).unwrap();
    let (b, s) = (epoch(&mut bucketed), epoch(&mut shuffled));
    assert!(
        padding(&b) * 2 < padding(&s),
        "bucketed {} vs shuffled {}",
        padding(&b),
        padding(&s)
    );
    for batch in &b {
        // Padded batches are as long as their longest row, never max_len by default.
        let longest = batch.segments.iter().map(|r| r[0].len()).max().unwrap();
        assert_eq!(batch.seq_len, longest);
    }
}

#[test]
fn packed_rows_fit_max_len_and_keep_masks() {
    let exs = examples(40);
    let mut s = SftSampler::new(exs.clone(), config(Batching::Packed, 5)).unwrap();
    let batches = epoch(&mut s);
    let rows: usize = batches.iter().map(|b| b.rows).sum();
    let tokens: usize = exs.iter().map(|e| e.len()).sum();
    assert!(
        rows < 40 && rows * 32 >= tokens,
        "{rows} rows for {tokens} tokens"
    );
    for b in &batches {
        assert_eq!(b.seq_len, 32);
        for r in 0..b.rows {
            for seg in &b.segments[r] {
                let ex = &exs[b.row_ids(r)[seg.start] as usize];
                assert_eq!(&b.row_ids(r)[seg.clone()], &ex.input_ids[..]);
                assert_eq!(&b.row_mask(r)[seg.clone()], &ex.loss_mask[..]);
                assert_eq!(b.position_ids[r * 32 + seg.end - 1] as usize, ex.len() - 1);
            }
            let end = b.segments[r].last().unwrap().end;
            assert!(b.row_mask(r)[end..].iter().all(|&m| !m), "padding trained");
        }
    }
}

#[test]
fn same_seed_same_batches_other_seed_other_batches() {
    for batching in [BUCKETED, Batching::Packed] {
        let run = |seed| {
            let mut s = SftSampler::new(examples(30), config(batching, seed)).unwrap();
            (0..20)
                .map(|_| members(&s.next_batch()))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(9), run(9));
        assert_ne!(run(9), run(10));
    }
}

#[test]
fn resume_continues_the_same_sequence_across_epochs() {
    for batching in [BUCKETED, Batching::Packed] {
        let mut a = SftSampler::new(examples(30), config(batching, 11)).unwrap();
        let per_epoch = a.batches_per_epoch();
        // Stop mid-epoch, and again later (for bucketed batches, exactly at an epoch's end).
        for stop in [per_epoch + 2, 2 * per_epoch] {
            let mut a = SftSampler::new(examples(30), config(batching, 11)).unwrap();
            for _ in 0..stop {
                a.next_batch();
            }
            let saved = serde_json::to_string(&a.position()).unwrap();
            let ahead: Vec<SftBatch> = (0..per_epoch + 3).map(|_| a.next_batch()).collect();
            let mut b = SftSampler::new(examples(30), config(batching, 999)).unwrap();
            b.restore(&serde_json::from_str(&saved).unwrap()).unwrap();
            let again: Vec<SftBatch> = (0..per_epoch + 3).map(|_| b.next_batch()).collect();
            assert_eq!(ahead, again, "{batching:?} stop {stop}");
        }
        a.next_batch();
    }
}

#[test]
fn resume_with_other_data_or_settings_says_what_changed() {
    let mut a = SftSampler::new(examples(30), config(BUCKETED, 1)).unwrap();
    a.next_batch();
    let pos = a.position();
    let mut fewer = SftSampler::new(examples(29), config(BUCKETED, 1)).unwrap();
    let msg = fewer.restore(&pos).unwrap_err().to_string();
    assert!(msg.contains("examples 30 -> 29"), "{msg}");
    let mut edited = examples(30);
    edited[5].input_ids[1] += 1;
    let msg = SftSampler::new(edited, config(BUCKETED, 1))
        .unwrap()
        .restore(&pos)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("tokens differ"), "{msg}");
    let bigger = SamplerConfig {
        batch_size: 8,
        ..config(Batching::Packed, 1)
    };
    let msg = SftSampler::new(examples(30), bigger)
        .unwrap()
        .restore(&pos)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("batch_size 4 -> 8") && msg.contains("batching"),
        "{msg}"
    );
}

#[test]
fn examples_over_max_len_are_refused() {
    let msg = SftSampler::new(
        examples(30),
        SamplerConfig {
            max_len: 10,
            ..config(BUCKETED, 1)
        },
    )
    .err()
    .unwrap()
    .to_string();
    assert!(msg.contains("tokens; examples must have 1..=10"), "{msg}");
}
