//! Overlap metrics of open-ended answers against references: BLEU (Papineni et al., 2002;
//! sentence-level, with add-one smoothing of the 2- to 4-gram precisions as Lin and Och,
//! 2004, so that one answer's score is defined and a run's figure is their mean) and
//! ROUGE-L (Lin, 2004: the F-measure of the longest common subsequence of words). BLEU
//! counts lower-cased words and punctuation marks (as sacreBLEU's 13a tokenizer splits
//! them), ROUGE-L lower-cased words alone (as Google's rouge-score); several references
//! take the best.

use std::collections::HashMap;

/// Words and single punctuation marks, lower-cased.
pub fn tokens(text: &str) -> Vec<String> {
    let mut out = vec![];
    let mut word = String::new();
    for c in text.to_lowercase().chars() {
        if c.is_alphanumeric() {
            word.push(c);
            continue;
        }
        if !word.is_empty() {
            out.push(std::mem::take(&mut word));
        }
        if !c.is_whitespace() {
            out.push(c.to_string());
        }
    }
    if !word.is_empty() {
        out.push(word);
    }
    out
}

fn ngram_counts(t: &[String], n: usize) -> HashMap<&[String], usize> {
    let mut m = HashMap::new();
    for g in t.windows(n) {
        *m.entry(g).or_insert(0) += 1;
    }
    m
}

/// Sentence BLEU-4 of `candidate` against `references` (clipped n-gram counts over all
/// references; brevity penalty from the reference closest in length), in [0, 1].
pub fn bleu(candidate: &str, references: &[&str]) -> f64 {
    let c = tokens(candidate);
    let refs: Vec<Vec<String>> = references.iter().map(|r| tokens(r)).collect();
    if c.is_empty() || refs.iter().all(Vec::is_empty) {
        return 0.0;
    }
    let mut log_p = 0.0;
    for n in 1..=4 {
        let cand = ngram_counts(&c, n);
        let mut max_ref: HashMap<&[String], usize> = HashMap::new();
        for r in &refs {
            for (g, k) in ngram_counts(r, n) {
                let e = max_ref.entry(g).or_insert(0);
                *e = (*e).max(k);
            }
        }
        let matched: usize = cand
            .iter()
            .map(|(g, k)| (*k).min(max_ref.get(g).copied().unwrap_or(0)))
            .sum();
        let total = c.len().saturating_sub(n - 1);
        let p = if n == 1 {
            if matched == 0 {
                return 0.0;
            }
            matched as f64 / total as f64
        } else {
            (matched as f64 + 1.0) / (total as f64 + 1.0)
        };
        log_p += p.ln() / 4.0;
    }
    let r_len = refs
        .iter()
        .map(Vec::len)
        .min_by_key(|&l| (l.abs_diff(c.len()), l))
        .unwrap_or(0);
    let bp = if c.len() >= r_len {
        1.0
    } else {
        (1.0 - r_len as f64 / c.len() as f64).exp()
    };
    bp * log_p.exp()
}

/// Length of the longest common subsequence (dynamic programming, one row).
fn lcs(a: &[String], b: &[String]) -> usize {
    let mut row = vec![0usize; b.len() + 1];
    for x in a {
        let mut diag = 0;
        for (j, y) in b.iter().enumerate() {
            let up = row[j + 1];
            row[j + 1] = if x == y { diag + 1 } else { up.max(row[j]) };
            diag = up;
        }
    }
    row[b.len()]
}

/// Lower-cased words, without punctuation.
fn words(text: &str) -> Vec<String> {
    let mut t = tokens(text);
    t.retain(|w| w.chars().all(char::is_alphanumeric));
    t
}

/// ROUGE-L F1 of `candidate` against the best of `references`, in [0, 1].
pub fn rouge_l(candidate: &str, references: &[&str]) -> f64 {
    let c = words(candidate);
    references
        .iter()
        .map(|r| {
            let r = words(r);
            let l = lcs(&c, &r) as f64;
            if l == 0.0 {
                return 0.0;
            }
            let (p, rec) = (l / c.len() as f64, l / r.len() as f64);
            2.0 * p * rec / (p + rec)
        })
        .fold(0.0, f64::max)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The LCS by its definition: the longest subsequence of `a` (all 2^n of them) that is
    /// also a subsequence of `b`.
    fn lcs_by_enumeration(a: &[String], b: &[String]) -> usize {
        let is_subseq = |s: &[&String]| {
            let mut it = b.iter();
            s.iter().all(|x| it.any(|y| y == *x))
        };
        (0u32..(1 << a.len()))
            .map(|mask| {
                let s: Vec<&String> = (0..a.len())
                    .filter(|i| mask & (1 << i) != 0)
                    .map(|i| &a[i])
                    .collect();
                if is_subseq(&s) {
                    s.len()
                } else {
                    0
                }
            })
            .max()
            .unwrap_or(0)
    }

    #[test]
    fn lcs_matches_the_enumeration() {
        let words = ["a", "b", "c", "a", "d", "b"];
        for seed in 0..60u64 {
            let pick = |k: u64, n: usize| -> Vec<String> {
                (0..n)
                    .map(|i| words[((seed * 31 + k * 7 + i as u64 * 13) % 6) as usize].to_string())
                    .collect()
            };
            let (a, b) = (
                pick(1, (seed % 9) as usize),
                pick(2, (seed % 7 + 1) as usize),
            );
            assert_eq!(lcs(&a, &b), lcs_by_enumeration(&a, &b), "{a:?} {b:?}");
        }
    }

    #[test]
    fn rouge_l_by_hand() {
        // LCS of "the cat sat on the mat" and "the cat lay on a mat" is "the cat on mat":
        // 4 of 6 words each way, so P = R = F = 2/3 (case and the full stops ignored).
        let f = rouge_l("The cat sat on the mat.", &["the cat lay on a mat."]);
        assert!((f - 2.0 / 3.0).abs() < 1e-12, "{f}");
        assert_eq!(rouge_l("x y", &["a b", "y"]), 2.0 * 0.5 * 1.0 / 1.5);
        assert_eq!(rouge_l("", &["a"]), 0.0);
    }

    #[test]
    fn bleu_by_hand() {
        assert!((bleu("the cat sat on the mat", &["the cat sat on the mat"]) - 1.0).abs() < 1e-12);
        assert_eq!(bleu("dog", &["the cat"]), 0.0);
        // Candidate "the cat the cat" (4 tokens) against "the cat sat on the mat" (6):
        // 1-grams: the x2 (ref has 2), cat x2 clipped to 1 -> 3/4; 2-grams: "the cat" x2
        // clipped to 1, "cat the" 0 -> (1+1)/(3+1); 3-grams 0 of 2 -> 1/3; 4-grams 0 of 1
        // -> 1/2; brevity penalty exp(1 - 6/4).
        let want = (1.0 - 6.0f64 / 4.0).exp()
            * ((0.75f64).ln() / 4.0
                + (0.5f64).ln() / 4.0
                + (1.0f64 / 3.0).ln() / 4.0
                + (0.5f64).ln() / 4.0)
                .exp();
        let got = bleu("the cat the cat", &["the cat sat on the mat"]);
        assert!((got - want).abs() < 1e-12, "{got} vs {want}");
        // The closest reference length sets the penalty; clipping uses the max over refs.
        assert!(
            bleu(
                "the cat the cat",
                &["the cat sat on the mat", "the cat the dog"]
            ) > got
        );
    }
}
