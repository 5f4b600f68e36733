//! Log-probabilities from raw logits (the model's distribution, before sampling filters),
//! as OpenAI's `logprobs` reports them.

use kiln_model::Tokenizer;

use crate::output::TokenLogprob;

/// log_softmax(logits)[token], with the `top` most likely tokens.
pub fn token_logprob(logits: &[f32], token: u32, top: usize, tok: &Tokenizer) -> TokenLogprob {
    let max = logits.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
    let lse = max as f64
        + logits
            .iter()
            .map(|&x| ((x - max) as f64).exp())
            .sum::<f64>()
            .ln();
    let lp = |i: usize| (logits[i] as f64 - lse) as f32;
    let text = |id: u32| tok.decode(&[id]).unwrap_or_default();
    let mut best: Vec<(u32, String, f32)> = top_indices(logits, top)
        .into_iter()
        .map(|i| (i as u32, text(i as u32), lp(i)))
        .collect();
    best.sort_by(|a, b| b.2.total_cmp(&a.2));
    TokenLogprob {
        token,
        text: text(token),
        logprob: logits
            .get(token as usize)
            .map_or(f32::NEG_INFINITY, |_| lp(token as usize)),
        top: best,
    }
}

/// Indices of the n largest values (unordered), in one pass with a small sorted buffer.
fn top_indices(v: &[f32], n: usize) -> Vec<usize> {
    if n == 0 {
        return vec![];
    }
    let mut best: Vec<usize> = Vec::with_capacity(n + 1);
    for (i, &x) in v.iter().enumerate() {
        if best.len() == n && x <= v[best[n - 1]] {
            continue;
        }
        let at = best.partition_point(|&j| v[j] >= x);
        best.insert(at, i);
        best.truncate(n);
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_indices_match_a_full_sort() {
        let v: Vec<f32> = (0..200).map(|i| ((i * 37) % 101) as f32 * 0.5).collect();
        let mut want: Vec<usize> = (0..v.len()).collect();
        want.sort_by(|&a, &b| v[b].total_cmp(&v[a]).then(a.cmp(&b)));
        let got = top_indices(&v, 5);
        let vals = |ix: &[usize]| ix.iter().map(|&i| v[i]).collect::<Vec<_>>();
        assert_eq!(vals(&got), vals(&want[..5]));
        assert!(top_indices(&v, 0).is_empty());
        assert_eq!(top_indices(&v[..3], 10).len(), 3);
    }
}
