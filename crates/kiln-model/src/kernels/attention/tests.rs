use super::*;

/// Attention written as loops, with llama.cpp's roundings applied explicitly and every
/// sum in f64.
fn naive(
    q: &[f32],
    k: &[f16],
    v: &[f16],
    b: usize,
    t: usize,
    total: usize,
    dims: AttnDims,
) -> Vec<f32> {
    let AttnDims {
        n_head,
        n_kv,
        head_dim: d,
    } = dims;
    let r = |x: f32| f16::from_f32(x).to_f32();
    let mut out = vec![0f32; b * t * n_head * d];
    for bi in 0..b {
        for i in 0..t {
            for h in 0..n_head {
                let g = h / (n_head / n_kv);
                let qi = &q[((bi * t + i) * n_head + h) * d..][..d];
                let at = |j: usize| ((bi * total + j) * n_kv + g) * d;
                let visible = total - t + i + 1;
                let s: Vec<f64> = (0..visible)
                    .map(|j| {
                        let dot: f64 = (0..d)
                            .map(|c| r(qi[c]) as f64 * k[at(j) + c].to_f64())
                            .sum();
                        dot / (d as f64).sqrt()
                    })
                    .collect();
                let m = s.iter().cloned().fold(f64::MIN, f64::max);
                let z: f64 = s.iter().map(|x| (x - m).exp()).sum();
                for c in 0..d {
                    let y: f64 = (0..visible)
                        .map(|j| r(((s[j] - m).exp() / z) as f32) as f64 * v[at(j) + c].to_f64())
                        .sum();
                    out[((bi * t + i) * n_head + h) * d + c] = y as f32;
                }
            }
        }
    }
    out
}

fn check(b: usize, t: usize, total: usize, dims: AttnDims) {
    let mut s = 12345u32;
    let mut rnd = || {
        s = s.wrapping_mul(1664525).wrapping_add(1013904223);
        (s >> 8) as f32 / (1u32 << 24) as f32 * 4.0 - 2.0
    };
    let row = dims.n_kv * dims.head_dim;
    let q: Vec<f32> = (0..b * t * dims.n_head * dims.head_dim)
        .map(|_| rnd())
        .collect();
    let k: Vec<f16> = (0..b * total * row).map(|_| f16::from_f32(rnd())).collect();
    let v: Vec<f16> = (0..b * total * row).map(|_| f16::from_f32(rnd())).collect();
    let kv = KvView {
        k: &k,
        v: &v,
        cap: total,
        len: total,
    };
    let got = causal_attention(&q, b, t, kv, dims);
    let want = naive(&q, &k, &v, b, t, total, dims);
    for (i, (a, w)) in got.iter().zip(&want).enumerate() {
        assert!(
            (a - w).abs() < 1e-4,
            "{dims:?} b={b} t={t} total={total} [{i}]: {a} vs {w}"
        );
    }
}

#[test]
fn matches_naive_multi_head_and_grouped_query() {
    let mha = AttnDims {
        n_head: 4,
        n_kv: 4,
        head_dim: 16,
    };
    let gqa = AttnDims {
        n_head: 9,
        n_kv: 3,
        head_dim: 64,
    };
    let odd = AttnDims {
        n_head: 2,
        n_kv: 1,
        head_dim: 6,
    };
    for dims in [mha, gqa, odd] {
        check(1, 7, 7, dims); // prefill, queries not a multiple of the block
        check(1, 1, 13, dims); // decode
        check(2, 3, 10, dims); // batched continuation
    }
}

/// Sequences of different lengths reading scattered blocks of one paged cache, in one
/// call, give exactly the bits each gives alone from a contiguous cache.
#[test]
fn paged_batch_equals_each_sequence_alone_bit_for_bit() {
    let dims = AttnDims {
        n_head: 6,
        n_kv: 2,
        head_dim: 16,
    };
    let (row, bs) = (dims.n_kv * dims.head_dim, 4);
    let val = |i: usize| ((i * 7919 % 1013) as f32 / 1013.0 - 0.5) * 3.0;
    // (positions cached in all, new queries): a prefill chunk, decodes, a continuation.
    let shapes = [(9usize, 9usize), (13, 1), (1, 1), (11, 3)];
    let num_blocks = 16;
    let mut k = vec![f16::ZERO; num_blocks * bs * row];
    let mut v = k.clone();
    // Hand out blocks in a scrambled order so tables are not contiguous.
    let mut free: Vec<u32> = (0..num_blocks as u32).map(|i| (i * 7) % 16).collect();
    let mut tables = vec![];
    let mut q = vec![];
    let mut alone = vec![];
    for (si, &(len, t)) in shapes.iter().enumerate() {
        let table: Vec<u32> = free.drain(..len.div_ceil(bs)).collect();
        let kc: Vec<f16> = (0..len * row)
            .map(|i| f16::from_f32(val(i + 31 * si)))
            .collect();
        let vc: Vec<f16> = (0..len * row)
            .map(|i| f16::from_f32(val(i + 57 * si)))
            .collect();
        for j in 0..len {
            let at = (table[j / bs] as usize * bs + j % bs) * row;
            k[at..at + row].copy_from_slice(&kc[j * row..(j + 1) * row]);
            v[at..at + row].copy_from_slice(&vc[j * row..(j + 1) * row]);
        }
        let qs: Vec<f32> = (0..t * dims.n_head * dims.head_dim)
            .map(|i| val(i + 11 * si))
            .collect();
        let kv = KvView {
            k: &kc,
            v: &vc,
            cap: len,
            len,
        };
        alone.extend(causal_attention(&qs, 1, t, kv, dims));
        q.extend(qs);
        tables.push(table);
    }
    let mut q_row = 0;
    let seqs: Vec<SeqQueries> = shapes
        .iter()
        .zip(&tables)
        .map(|(&(len, t), table)| {
            q_row += t;
            SeqQueries {
                q_row: q_row - t,
                t,
                len,
                blocks: table,
            }
        })
        .collect();
    let blocks = KvBlocks {
        k: &k,
        v: &v,
        block_size: bs,
    };
    let got = paged_attention(&q, &seqs, blocks, dims);
    let bits = |x: &[f32]| x.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&got), bits(&alone));
}

/// The AVX2 kernels must reproduce the lane-by-lane reference exactly, not
/// approximately: parity with llama.cpp depends on the last bit.
#[test]
fn simd_and_portable_sums_agree_bit_for_bit() {
    let d = 64;
    let n = 37;
    let val = |i: usize| ((i * 7919 % 1013) as f32 / 1013.0 - 0.5) * 3.0;
    let q: Vec<f32> = (0..d).map(|i| f16::from_f32(val(i)).to_f32()).collect();
    let kv: Vec<f16> = (0..n * d).map(|i| f16::from_f32(val(i + 99))).collect();
    let p: Vec<f32> = (0..n)
        .map(|j| f16::from_f32(val(j + 7).abs() / 10.0).to_f32())
        .collect();
    for order in [SumOrder::Tiled, SumOrder::VecDot] {
        // 37 keys: four groups of eight and a remainder, rows 64 apart.
        let mut fast = vec![0f32; n];
        key_scores(order, &q, &kv, d, 0.125, &mut fast);
        for (j, f) in fast.iter().enumerate() {
            let k = &kv[j * d..(j + 1) * d];
            let want = dot_f16_lanes(order, &q, k) * 0.125;
            assert_eq!(f.to_bits(), want.to_bits(), "{order:?} key {j}");
        }
        // Softmax over lengths with and without a partial chunk, scores spread wide
        // enough that some exponentials underflow.
        for len in [n, 32, 5] {
            let mut sc: Vec<f32> = (0..len).map(|j| val(j * 3) * 100.0).collect();
            let mut want = sc.clone();
            softmax_to_f16(&mut sc);
            softmax_to_f16_lanes(&mut want);
            let bits = |x: &[f32]| x.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&sc), bits(&want), "softmax of {len}");
        }
        let groups = if order == SumOrder::Tiled { 8 } else { 32 };
        // Value rows out of order, as a paged cache's blocks scatter them.
        let rows: Vec<usize> = (0..n).map(|j| ((j * 11) % n) * d).collect();
        let mut fast = Vec::new();
        let mut out = vec![0f32; d];
        weighted_values(order, &p, &kv, &rows, &mut fast, &mut out);
        let mut slow = vec![0f32; groups * d];
        accumulate_values(&p, &kv, &rows, groups, &mut slow);
        assert_eq!(fast, slow, "{order:?} value lanes");
        let mut want = vec![0f32; d];
        reduce_lanes(order, &slow, &mut want);
        assert_eq!(out, want, "{order:?} lane sums");
    }
}
