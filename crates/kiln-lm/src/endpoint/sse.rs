//! Server-sent events as OpenAI-compatible servers stream them: `data: <json>` lines,
//! events separated by a blank line, ending with `data: [DONE]`. Network reads split lines
//! anywhere (even inside a UTF-8 character), so bytes are buffered until a line is whole.

use serde_json::Value;

use super::stream::StreamError;

/// One `data:` payload.
#[derive(Debug, Clone, PartialEq)]
pub enum SseEvent {
    Data(String),
    Done,
}

/// Accumulates bytes from the network and yields complete `data:` events.
#[derive(Debug, Default)]
pub struct SseDecoder {
    buf: Vec<u8>,
}

impl SseDecoder {
    /// Feeds one network read; returns the events whose lines it completed.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<SseEvent> {
        self.buf.extend_from_slice(bytes);
        let mut events = vec![];
        while let Some(nl) = self.buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.buf.drain(..=nl).collect();
            if let Some(ev) = parse_line(&line) {
                events.push(ev);
            }
        }
        events
    }

    /// The last line if the stream ended without a newline after it.
    pub fn finish(&mut self) -> Option<SseEvent> {
        let line = std::mem::take(&mut self.buf);
        parse_line(&line)
    }
}

/// `data: x` → Data(x); comments (`:`), `event:`/`id:` fields and blank lines → None.
fn parse_line(line: &[u8]) -> Option<SseEvent> {
    let line = String::from_utf8_lossy(line);
    let line = line.trim_end_matches(['\r', '\n']);
    let data = line.strip_prefix("data:")?;
    let data = data.strip_prefix(' ').unwrap_or(data);
    if data.trim() == "[DONE]" {
        return Some(SseEvent::Done);
    }
    Some(SseEvent::Data(data.to_string()))
}

/// What one streamed completion chunk says.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Chunk {
    /// Generated text in this chunk (`choices[0].text`, or `.delta.content` for chat).
    pub text: String,
    /// Whether a choice carried a `finish_reason`.
    pub finished: bool,
    /// `usage.prompt_tokens` / `usage.completion_tokens`, when the server sent them.
    pub prompt_tokens: Option<u64>,
    pub completion_tokens: Option<u64>,
}

/// Reads a chunk in any of the shapes seen in the wild: OpenAI/vLLM completions (`text`),
/// chat (`delta.content`, or `delta.reasoning_content` from reasoning models), llama-server
/// (usage and `timings` on the last chunk, with its choice), OpenAI's trailing usage chunk
/// (`choices: []`), and `{"error": ...}` sent in place of a chunk.
pub fn parse_chunk(data: &str) -> Result<Chunk, StreamError> {
    let bad = |reason: &str| StreamError::BadChunk {
        reason: reason.to_string(),
        data: data.chars().take(200).collect(),
    };
    let v: Value = serde_json::from_str(data).map_err(|e| bad(&e.to_string()))?;
    if let Some(err) = v.get("error") {
        let msg = err.get("message").and_then(Value::as_str);
        return Err(StreamError::InStream(
            msg.map_or_else(|| err.to_string(), str::to_string),
        ));
    }
    let mut chunk = Chunk::default();
    let choices = match v.get("choices") {
        Some(Value::Array(c)) => c.as_slice(),
        Some(Value::Null) | None => &[],
        Some(_) => return Err(bad("`choices` is not an array")),
    };
    for c in choices {
        let text = c
            .get("text")
            .or_else(|| c.pointer("/delta/content"))
            .or_else(|| c.pointer("/delta/reasoning_content"))
            .and_then(Value::as_str);
        chunk.text.push_str(text.unwrap_or_default());
        chunk.finished |= c.get("finish_reason").is_some_and(|f| !f.is_null());
    }
    if let Some(u) = v.get("usage").filter(|u| !u.is_null()) {
        chunk.prompt_tokens = u.get("prompt_tokens").and_then(Value::as_u64);
        chunk.completion_tokens = u.get("completion_tokens").and_then(Value::as_u64);
    }
    Ok(chunk)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(s: &str) -> SseEvent {
        SseEvent::Data(s.to_string())
    }

    #[test]
    fn events_split_across_reads() {
        let stream =
            "data: {\"a\":1}\n\n: keep-alive\n\ndata: {\"b\":\"é\"}\r\n\r\ndata: [DONE]\n\n";
        let bytes = stream.as_bytes();
        let whole = SseDecoder::default().push(bytes);
        assert_eq!(
            whole,
            vec![data("{\"a\":1}"), data("{\"b\":\"é\"}"), SseEvent::Done]
        );
        // Every split point, including inside the two-byte 'é', gives the same events.
        for cut in 0..bytes.len() {
            let mut d = SseDecoder::default();
            let mut got = d.push(&bytes[..cut]);
            got.extend(d.push(&bytes[cut..]));
            assert_eq!(got, whole, "cut at {cut}");
        }
        // One byte at a time.
        let mut d = SseDecoder::default();
        let got: Vec<SseEvent> = bytes.iter().flat_map(|b| d.push(&[*b])).collect();
        assert_eq!(got, whole);
    }

    #[test]
    fn unterminated_last_line_and_other_fields() {
        let mut d = SseDecoder::default();
        assert_eq!(d.push(b"event: message\nid: 3\ndata:[DONE]"), vec![]);
        assert_eq!(d.finish(), Some(SseEvent::Done));
        assert_eq!(d.finish(), None);
    }

    #[test]
    fn openai_completion_and_trailing_usage_chunk() {
        let c = parse_chunk(
            r#"{"id":"cmpl-1","object":"text_completion","choices":[{"index":0,"text":" Paris","logprobs":null,"finish_reason":null}],"usage":null}"#,
        )
        .unwrap();
        assert_eq!(c.text, " Paris");
        assert!(!c.finished);
        assert_eq!(c.completion_tokens, None);
        let u = parse_chunk(
            r#"{"id":"cmpl-1","choices":[],"usage":{"prompt_tokens":12,"completion_tokens":128,"total_tokens":140}}"#,
        )
        .unwrap();
        assert_eq!(u.text, "");
        assert_eq!(
            (u.prompt_tokens, u.completion_tokens),
            (Some(12), Some(128))
        );
    }

    #[test]
    fn openai_chat_deltas() {
        let role = parse_chunk(
            r#"{"object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}"#,
        )
        .unwrap();
        assert_eq!(role.text, "");
        let c = parse_chunk(
            r#"{"choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}]}"#,
        )
        .unwrap();
        assert_eq!(c.text, "Hi");
        let end = parse_chunk(r#"{"choices":[{"index":0,"delta":{},"finish_reason":"length"}]}"#)
            .unwrap();
        assert!(end.finished);
        assert_eq!(end.text, "");
    }

    #[test]
    fn llama_server_final_chunk_with_usage_and_timings() {
        let c = parse_chunk(
            r#"{"choices":[{"text":"","index":0,"logprobs":null,"finish_reason":"length"}],"created":1,"model":"x","system_fingerprint":"b1","object":"text_completion","id":"chatcmpl-z","usage":{"completion_tokens":128,"prompt_tokens":130,"total_tokens":258},"timings":{"prompt_n":130,"predicted_n":128}}"#,
        )
        .unwrap();
        assert!(c.finished);
        assert_eq!(
            (c.prompt_tokens, c.completion_tokens),
            (Some(130), Some(128))
        );
    }

    #[test]
    fn errors_in_the_stream() {
        let e =
            parse_chunk(r#"{"error":{"code":500,"message":"context full","type":"server_error"}}"#)
                .unwrap_err();
        assert!(e.to_string().contains("context full"), "{e}");
        assert!(parse_chunk("{not json").is_err());
        assert!(parse_chunk(r#"{"choices":3}"#).is_err());
    }
}
