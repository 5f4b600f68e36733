//! Builds the legacy completions `logprobs` object token by token: parallel lists of token
//! texts, log-probabilities (null for the first prompt token, which nothing predicts), maps
//! of the top alternatives, and character offsets into the choice's text.

use kiln_engine::TokenLogprob;
use serde_json::{Map, Value};

use crate::openai::common::finite_logprob;
use crate::openai::completions::LegacyLogprobs;

#[derive(Debug, Default)]
pub struct LegacyBuilder {
    out: LegacyLogprobs,
    /// Characters of text before the next token.
    offset: usize,
}

impl LegacyBuilder {
    /// A token with no log-probability (the prompt's first).
    pub fn push_unscored(&mut self, text: &str) {
        self.push_text(text);
        self.out.token_logprobs.push(None);
        self.out.top_logprobs.push(None);
    }

    pub fn push(&mut self, lp: &TokenLogprob) {
        self.push_text(&lp.text);
        self.out
            .token_logprobs
            .push(Some(finite_logprob(lp.logprob)));
        let top: Map<String, Value> = lp
            .top
            .iter()
            .map(|(_, text, l)| (text.clone(), Value::from(finite_logprob(*l))))
            .collect();
        self.out.top_logprobs.push(Some(top));
    }

    fn push_text(&mut self, text: &str) {
        self.out.tokens.push(text.to_string());
        self.out.text_offset.push(self.offset);
        self.offset += text.chars().count();
    }

    /// The tokens pushed since the last take (offsets keep counting: a stream's chunks
    /// carry offsets into the whole text).
    pub fn take(&mut self) -> LegacyLogprobs {
        std::mem::take(&mut self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_run_on_across_takes() {
        let mut b = LegacyBuilder::default();
        b.push_unscored("Hé");
        let lp = TokenLogprob {
            token: 1,
            text: "llo".into(),
            logprob: f32::NEG_INFINITY,
            top: vec![(1, "llo".into(), -0.5)],
        };
        b.push(&lp);
        let first = b.take();
        assert_eq!(first.text_offset, vec![0, 2]);
        assert_eq!(first.token_logprobs, vec![None, Some(-9999.0)]);
        b.push(&lp);
        assert_eq!(b.take().text_offset, vec![5]);
    }
}
