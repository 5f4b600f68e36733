//! What one streamed request measured: time to first token, the gaps between tokens, and
//! how many tokens came back. Pure bookkeeping over (instant, chunk) pairs, so the
//! per-token arithmetic is tested without a server.

use std::time::{Duration, Instant};

use super::LoadgenError;
use kiln_lm::endpoint::sse::Chunk;

/// One successful request.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestRecord {
    /// Request sent → first chunk with text.
    pub ttft: Duration,
    /// Request sent → stream finished.
    pub latency: Duration,
    /// Inter-token latencies in milliseconds (see [`RequestTimer::finish`]).
    pub itl_ms: Vec<f64>,
    /// From the server's `usage`, else the number of chunks with text.
    pub completion_tokens: u64,
    /// From the server's `usage`, when it sent one.
    pub prompt_tokens: Option<u64>,
}

/// Collects chunk arrival times for one request.
#[derive(Debug)]
pub struct RequestTimer {
    sent: Instant,
    text_chunks: Vec<Instant>,
    finished: bool,
    prompt_tokens: Option<u64>,
    completion_tokens: Option<u64>,
}

impl RequestTimer {
    pub fn new(sent: Instant) -> RequestTimer {
        RequestTimer {
            sent,
            text_chunks: vec![],
            finished: false,
            prompt_tokens: None,
            completion_tokens: None,
        }
    }

    pub fn on_chunk(&mut self, at: Instant, chunk: &Chunk) {
        // Role-only and finish-only chunks carry no token: they must not end TTFT early.
        if !chunk.text.is_empty() {
            self.text_chunks.push(at);
        }
        self.finished |= chunk.finished;
        self.prompt_tokens = chunk.prompt_tokens.or(self.prompt_tokens);
        self.completion_tokens = chunk.completion_tokens.or(self.completion_tokens);
    }

    /// Whether a choice has reported a `finish_reason` (a stream may end without `[DONE]`
    /// then and still be complete).
    pub fn finished(&self) -> bool {
        self.finished
    }

    pub fn tokens_so_far(&self) -> u64 {
        self.completion_tokens
            .unwrap_or(self.text_chunks.len() as u64)
    }

    /// The record, with `end` the time the stream closed. Inter-token latency is the gap
    /// between text chunks; when `usage` counts more tokens than there were chunks (servers
    /// that send several tokens per chunk), each gap is divided by the mean tokens per gap,
    /// so the figure stays per token and comparable across servers.
    pub fn finish(self, end: Instant) -> Result<RequestRecord, LoadgenError> {
        let first = *self.text_chunks.first().ok_or(LoadgenError::NoTokens)?;
        let chunks = self.text_chunks.len() as u64;
        let tokens = self.completion_tokens.unwrap_or(chunks).max(chunks);
        let gaps = chunks - 1;
        let per_gap = if gaps > 0 && tokens > chunks {
            (tokens - 1) as f64 / gaps as f64
        } else {
            1.0
        };
        let itl_ms = self
            .text_chunks
            .windows(2)
            .map(|w| (w[1] - w[0]).as_secs_f64() * 1e3 / per_gap)
            .collect();
        Ok(RequestRecord {
            ttft: first - self.sent,
            latency: end - self.sent,
            itl_ms,
            completion_tokens: self.completion_tokens.unwrap_or(chunks),
            prompt_tokens: self.prompt_tokens,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> Chunk {
        Chunk {
            text: s.to_string(),
            ..Chunk::default()
        }
    }

    fn usage(prompt: u64, completion: u64) -> Chunk {
        Chunk {
            prompt_tokens: Some(prompt),
            completion_tokens: Some(completion),
            ..Chunk::default()
        }
    }

    #[test]
    fn one_token_per_chunk() {
        let t0 = Instant::now();
        let ms = |m| t0 + Duration::from_millis(m);
        let mut t = RequestTimer::new(t0);
        t.on_chunk(ms(5), &Chunk::default()); // a role-only chunk: not a token
        t.on_chunk(ms(50), &text("a"));
        t.on_chunk(ms(60), &text("b"));
        t.on_chunk(ms(75), &text("c"));
        t.on_chunk(ms(76), &usage(10, 3));
        let r = t.finish(ms(80)).unwrap();
        assert_eq!(r.ttft, Duration::from_millis(50));
        assert_eq!(r.latency, Duration::from_millis(80));
        assert_eq!(r.itl_ms.len(), 2);
        assert!((r.itl_ms[0] - 10.0).abs() < 1e-6 && (r.itl_ms[1] - 15.0).abs() < 1e-6);
        assert_eq!((r.completion_tokens, r.prompt_tokens), (3, Some(10)));
    }

    #[test]
    fn several_tokens_per_chunk_give_per_token_gaps() {
        let t0 = Instant::now();
        let ms = |m| t0 + Duration::from_millis(m);
        let mut t = RequestTimer::new(t0);
        // 3 chunks carrying 9 tokens: 8 token gaps over 2 chunk gaps, 4 per chunk gap.
        t.on_chunk(ms(100), &text("abc"));
        t.on_chunk(ms(140), &text("def"));
        t.on_chunk(ms(180), &text("ghi"));
        t.on_chunk(ms(181), &usage(5, 9));
        let r = t.finish(ms(181)).unwrap();
        assert_eq!(r.completion_tokens, 9);
        assert_eq!(r.itl_ms.len(), 2);
        assert!((r.itl_ms[0] - 10.0).abs() < 1e-6, "{:?}", r.itl_ms);
    }

    #[test]
    fn no_usage_falls_back_to_chunk_count_and_no_text_is_an_error() {
        let t0 = Instant::now();
        let mut t = RequestTimer::new(t0);
        t.on_chunk(t0, &text("x"));
        t.on_chunk(t0, &text("y"));
        assert_eq!(t.finish(t0).unwrap().completion_tokens, 2);
        let mut t = RequestTimer::new(t0);
        t.on_chunk(t0, &usage(3, 0));
        assert!(matches!(t.finish(t0), Err(LoadgenError::NoTokens)));
    }
}
