//! The in-process model on a tiny random Llama: each continuation's score is the sum of its
//! tokens' log-probabilities, checked against a plain full-sequence forward (contiguous
//! cache, every position's logits, log-softmax in f64), whether the requests share their
//! context (prefix-cache path) or not.

use candle_core::Device;
use kiln_lm::{split_request, EngineLm, LanguageModel, LoglikRequest};
use kiln_testing::engine::{start_engine, tiny_model};
use kiln_testing::reference::logprob_from;

fn reference(model: &kiln_model::LoadedModel, r: &LoglikRequest) -> f64 {
    let t = split_request(&model.tokenizer, r).unwrap();
    logprob_from(&model.model, &t.tokens, t.context_len)
}

fn requests(pairs: &[(&str, &str)]) -> Vec<LoglikRequest> {
    pairs
        .iter()
        .map(|(c, k)| LoglikRequest {
            context: c.to_string(),
            continuation: k.to_string(),
        })
        .collect()
}

#[test]
fn scores_are_continuation_log_likelihoods_with_and_without_a_shared_context() {
    let dir = tiny_model();
    let model = kiln_model::load(dir.path(), &Device::Cpu).unwrap();
    let lm = EngineLm::new(start_engine(dir.path(), "tiny"), serde_json::json!({}));
    // A context longer than one 16-token block, so the prefix cache serves part of it.
    let ctx = "The quick brown fox jumps over the lazy dog and then it runs away. Answer:";
    let shared = requests(&[(ctx, " yes"), (ctx, " no, never"), (ctx, " maybe so")]);
    let partial = requests(&[
        ("Sarah helped Maria so Sarah", " was thanked."),
        ("Sarah helped Maria so Maria", " was thanked."),
    ]);
    for reqs in [&shared, &partial, &shared] {
        let scores = lm.loglik(reqs).unwrap();
        assert_eq!(scores.len(), reqs.len());
        for (s, c) in scores.iter().zip(reqs) {
            let want = reference(&model, c);
            // f32 logits summed in f32 by the engine vs f64 here.
            assert!(
                (s.logprob - want).abs() < 1e-3 * (1.0 + want.abs()),
                "{c:?}: {} vs {want}",
                s.logprob
            );
            assert_eq!(
                s.tokens,
                split_request(&model.tokenizer, c).unwrap().tokens.len()
                    - split_request(&model.tokenizer, c).unwrap().context_len
            );
        }
    }
    let stats = lm.engine().stats();
    assert!(
        stats.prefix_hit_tokens > 0,
        "shared contexts came from the prefix cache: {stats:?}"
    );
}
