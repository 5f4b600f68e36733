//! OpenAI request parameters checked (400 naming the parameter) and mapped onto kiln's
//! sampler with OpenAI's semantics: temperature 1 and top-p 1 unless given, no top-k or
//! min-p filtering unless asked (vLLM's `top_k`/`min_p` extensions), temperature 0 greedy.

use kiln_model::SamplingParams;

use crate::openai::error::ApiError;

/// Sampling fields as they arrive (both APIs have the same ones). Each request body lists
/// them itself rather than `#[serde(flatten)]`ing this struct: flattened fields lose their
/// name in type errors, and a 400 must name the parameter.
#[derive(Debug, Clone, Copy, Default)]
pub struct SamplingFields {
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub top_k: Option<i64>,
    pub min_p: Option<f64>,
    pub presence_penalty: Option<f64>,
    pub frequency_penalty: Option<f64>,
    pub repetition_penalty: Option<f64>,
    pub seed: Option<i64>,
}

/// Most choices (`n`) one request may ask for.
pub const MAX_N: i64 = 128;
/// Most alternatives per token in `logprobs`/`top_logprobs`.
pub const MAX_TOP_LOGPROBS: i64 = 20;

fn in_range(name: &str, v: Option<f64>, lo: f64, hi: f64) -> Result<Option<f32>, ApiError> {
    match v {
        None => Ok(None),
        Some(x) if x.is_finite() && (lo..=hi).contains(&x) => Ok(Some(x as f32)),
        Some(x) => Err(ApiError::invalid(
            name,
            format!("'{name}' must be between {lo} and {hi}, got {x}."),
        )),
    }
}

/// The sampler settings of a request, before its per-choice seed.
pub fn sampling_params(f: &SamplingFields, context: usize) -> Result<SamplingParams, ApiError> {
    let mut temperature = in_range("temperature", f.temperature, 0.0, 2.0)?.unwrap_or(1.0);
    let mut top_p = in_range("top_p", f.top_p, 0.0, 1.0)?.unwrap_or(1.0);
    if top_p == 0.0 {
        // Only the most likely token survives: greedy.
        (temperature, top_p) = (0.0, 1.0);
    }
    let top_k = match f.top_k {
        None => 0,
        Some(k) if k <= 0 => 0,
        Some(k) => usize::try_from(k).unwrap_or(usize::MAX),
    };
    Ok(SamplingParams {
        temperature,
        top_k,
        top_p,
        min_p: in_range("min_p", f.min_p, 0.0, 1.0)?.unwrap_or(0.0),
        repetition_penalty: match f.repetition_penalty {
            None => 1.0,
            Some(x) if x.is_finite() && x > 0.0 && x <= 10.0 => x as f32,
            Some(x) => {
                return Err(ApiError::invalid(
                    "repetition_penalty",
                    format!("'repetition_penalty' must be in (0, 10], got {x}."),
                ))
            }
        },
        presence_penalty: in_range("presence_penalty", f.presence_penalty, -2.0, 2.0)?
            .unwrap_or(0.0),
        frequency_penalty: in_range("frequency_penalty", f.frequency_penalty, -2.0, 2.0)?
            .unwrap_or(0.0),
        // OpenAI's penalties look at the whole text so far.
        penalty_last_n: context,
        // A request without a seed gets a fresh one: OpenAI sampling is not reproducible
        // unless asked.
        seed: f.seed.map_or_else(rand::random, |s| s as u64),
    })
}

/// The seed of choice `i`: the request's seed plus i, so choices differ but replay.
pub fn choice_seed(base: &SamplingParams, i: usize) -> SamplingParams {
    SamplingParams {
        seed: base.seed.wrapping_add(i as u64),
        ..base.clone()
    }
}

/// `n`: 1 when absent, at most [`MAX_N`].
pub fn check_n(n: Option<i64>) -> Result<usize, ApiError> {
    match n {
        None => Ok(1),
        Some(n) if (1..=MAX_N).contains(&n) => Ok(n as usize),
        Some(n) => Err(ApiError::invalid(
            "n",
            format!("'n' must be between 1 and {MAX_N}, got {n}."),
        )),
    }
}

/// A token budget (`max_tokens`): at least `min`, and no larger than the context
/// (`context_length_exceeded`, naming both limits, is reported by the caller when the
/// prompt is known; a value beyond any context is refused here so sums cannot overflow).
pub fn check_max_tokens(
    name: &str,
    v: Option<i64>,
    min: i64,
    context: usize,
) -> Result<Option<usize>, ApiError> {
    match v {
        None => Ok(None),
        Some(x) if x < min => Err(ApiError::invalid(
            name,
            format!("'{name}' must be at least {min}, got {x}."),
        )),
        Some(x) => match usize::try_from(x) {
            Ok(x) if x <= context => Ok(Some(x)),
            _ => Err(ApiError::invalid(
                name,
                format!(
                    "'{name}' is {x}, but this model's maximum context length is {context} \
                     tokens (prompt and completion together)."
                ),
            )
            .with_code("context_length_exceeded")),
        },
    }
}

/// A count of log-probability alternatives, 0..=[`MAX_TOP_LOGPROBS`].
pub fn check_top_logprobs(name: &str, v: Option<i64>) -> Result<Option<usize>, ApiError> {
    match v {
        None => Ok(None),
        Some(x) if (0..=MAX_TOP_LOGPROBS).contains(&x) => Ok(Some(x as usize)),
        Some(x) => Err(ApiError::invalid(
            name,
            format!("'{name}' must be between 0 and {MAX_TOP_LOGPROBS}, got {x}."),
        )),
    }
}

/// Checks prompt + completion against the context. `what` is the prompt's field name.
pub fn check_context(
    prompt: usize,
    max_tokens: usize,
    context: usize,
    what: &str,
) -> Result<(), ApiError> {
    if prompt.saturating_add(max_tokens) > context {
        return Err(ApiError::context_length(prompt, max_tokens, context, what));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openai_defaults_do_not_filter() {
        let p = sampling_params(&SamplingFields::default(), 256).unwrap();
        assert_eq!(
            (p.temperature, p.top_p, p.top_k, p.min_p),
            (1.0, 1.0, 0, 0.0)
        );
        let g = sampling_params(
            &SamplingFields {
                top_p: Some(0.0),
                seed: Some(-1),
                ..Default::default()
            },
            256,
        )
        .unwrap();
        assert_eq!((g.temperature, g.seed), (0.0, u64::MAX));
        assert_eq!(choice_seed(&g, 2).seed, 1);
    }

    #[test]
    fn bad_values_name_the_parameter() {
        let bad = SamplingFields {
            temperature: Some(3.0),
            ..Default::default()
        };
        let e = sampling_params(&bad, 256).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("temperature"));
        let e = check_max_tokens("max_tokens", Some(-1), 1, 256).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("max_tokens"));
        let e = check_max_tokens("max_tokens", Some(i64::MAX), 1, 256).unwrap_err();
        assert!(e.message.contains("256"), "{}", e.message);
        assert_eq!(check_max_tokens("max_tokens", Some(0), 0, 256), Ok(Some(0)));
        assert_eq!(check_n(Some(0)).unwrap_err().param.as_deref(), Some("n"));
        let e = check_context(250, 10, 256, "messages").unwrap_err();
        assert!(e.message.contains("256") && e.message.contains("260"));
        assert_eq!(e.code, Some("context_length_exceeded"));
    }
}
