//! The attention kernel at the engine's shapes (SmolLM2-135M: 9 query heads, 3 KV heads,
//! head size 64; 16-position blocks): eight decoding sequences, and prefill chunks.
//! `cargo bench -p kiln-model --bench attention`

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use half::f16;
use kiln_model::kernels::attention::{paged_attention, AttnDims, KvBlocks, SeqQueries};

const DIMS: AttnDims = AttnDims {
    n_head: 9,
    n_kv: 3,
    head_dim: 64,
};
const BLOCK: usize = 16;

fn val(i: usize) -> f32 {
    ((i.wrapping_mul(7919) % 1013) as f32 / 1013.0 - 0.5) * 3.0
}

/// `seqs` sequences of `len` cached positions with `t` new queries each, blocks scattered.
fn run(c: &mut Criterion, name: &str, seqs: usize, len: usize, t: usize) {
    let row = DIMS.n_kv * DIMS.head_dim;
    let per_seq = len.div_ceil(BLOCK);
    let num_blocks = seqs * per_seq;
    let k: Vec<f16> = (0..num_blocks * BLOCK * row)
        .map(|i| f16::from_f32(val(i)))
        .collect();
    let v: Vec<f16> = (0..num_blocks * BLOCK * row)
        .map(|i| f16::from_f32(val(i + 17)))
        .collect();
    // Interleave the sequences' blocks, as an engine's pool hands them out.
    let tables: Vec<Vec<u32>> = (0..seqs)
        .map(|s| (0..per_seq).map(|b| (b * seqs + s) as u32).collect())
        .collect();
    let q: Vec<f32> = (0..seqs * t * DIMS.n_head * DIMS.head_dim)
        .map(|i| val(i + 5) * 0.3)
        .collect();
    let sq: Vec<SeqQueries> = tables
        .iter()
        .enumerate()
        .map(|(s, table)| SeqQueries {
            q_row: s * t,
            t,
            len,
            blocks: table,
        })
        .collect();
    let kv = KvBlocks {
        k: &k,
        v: &v,
        block_size: BLOCK,
    };
    c.bench_with_input(BenchmarkId::new(name, len), &len, |b, _| {
        b.iter(|| paged_attention(&q, &sq, kv, DIMS))
    });
}

fn attention(c: &mut Criterion) {
    run(c, "decode_8seqs", 8, 256, 1);
    run(c, "decode_8seqs", 8, 1024, 1);
    run(c, "prefill_chunk_128", 1, 128, 128);
    run(c, "prefill_chunk_512", 1, 1024, 512);
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = attention
}
criterion_main!(benches);
