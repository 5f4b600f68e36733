//! Context/continuation tokenization as lm-evaluation-harness does it: trailing whitespace
//! of the context moves to the continuation, the whole text is encoded once, and the
//! continuation is the tokens after the context's own encoding length. Tokens that merge
//! across the boundary are then scored as the continuation's, as in the harness.

use kiln_model::Tokenizer;

use crate::error::{LmError, Result};
use crate::request::LoglikRequest;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenizedRequest {
    /// Context then continuation tokens (BOS first when the model wants one).
    pub tokens: Vec<u32>,
    /// Index of the first continuation token in `tokens`.
    pub context_len: usize,
}

pub fn split_request(tokenizer: &Tokenizer, r: &LoglikRequest) -> Result<TokenizedRequest> {
    let trimmed = r.context.trim_end();
    let moved = &r.context[trimmed.len()..];
    let continuation = format!("{moved}{}", r.continuation);
    let whole = tokenizer.encode(&format!("{trimmed}{continuation}"), true, false)?;
    let mut context_len = tokenizer.encode(trimmed, true, false)?.len();
    if context_len == 0 {
        // An empty context: the harness scores after an end-of-text token; here after
        // BOS, or from the second token when the model has none.
        context_len = 1;
    }
    if context_len >= whole.len() {
        return Err(LmError::Request(format!(
            "continuation {:?} has no tokens of its own after context {:?}",
            r.continuation, r.context
        )));
    }
    Ok(TokenizedRequest {
        tokens: whole,
        context_len,
    })
}
