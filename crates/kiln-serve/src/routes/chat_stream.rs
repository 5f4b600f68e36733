//! Chat streaming chunks: each choice opens with its role, then content deltas (with their
//! log-probabilities when asked), then a chunk with its finish reason.

use kiln_engine::EngineEvent;

use crate::generation::finish_reason;
use crate::openai::chat::{ChatChunk, ChatLogprobs, ChatTokenLogprob, ChunkChoice, Delta};
use crate::openai::common::{unix_now, UsageOut};
use crate::sse::ChunkFormat;

pub struct ChatChunkFormat {
    id: String,
    model: String,
    created: u64,
    choices: usize,
    include_usage: bool,
}

impl ChatChunkFormat {
    pub fn new(id: String, model: String, choices: usize, include_usage: bool) -> Self {
        Self {
            id,
            model,
            created: unix_now(),
            choices,
            include_usage,
        }
    }

    fn chunk(&self, choices: Vec<ChunkChoice>, usage: Option<UsageOut>) -> String {
        let chunk = ChatChunk {
            id: self.id.clone(),
            object: "chat.completion.chunk",
            created: self.created,
            model: self.model.clone(),
            choices,
            usage: self.include_usage.then_some(usage),
        };
        serde_json::to_string(&chunk).unwrap_or_default()
    }

    fn one(
        &self,
        index: usize,
        delta: Delta,
        logprobs: Option<ChatLogprobs>,
        finish: Option<&'static str>,
    ) -> String {
        let choice = ChunkChoice {
            index,
            delta,
            logprobs,
            finish_reason: finish,
        };
        self.chunk(vec![choice], None)
    }
}

impl ChunkFormat for ChatChunkFormat {
    fn opening(&mut self) -> Vec<String> {
        (0..self.choices)
            .map(|i| {
                let delta = Delta {
                    role: Some("assistant"),
                    content: Some(String::new()),
                };
                self.one(i, delta, None, None)
            })
            .collect()
    }

    fn event(&mut self, index: usize, ev: &EngineEvent) -> Vec<String> {
        match ev {
            EngineEvent::Token { text, logprob, .. } => {
                if text.is_empty() && logprob.is_none() {
                    return vec![];
                }
                let delta = Delta {
                    role: None,
                    content: Some(text.clone()),
                };
                let lp = logprob.as_ref().map(|lp| ChatLogprobs {
                    content: vec![ChatTokenLogprob::from_engine(lp)],
                });
                vec![self.one(index, delta, lp, None)]
            }
            EngineEvent::Finished { reason, .. } => {
                vec![self.one(index, Delta::default(), None, Some(finish_reason(*reason)))]
            }
            EngineEvent::PromptLogprobs(_) | EngineEvent::Error(_) => vec![],
        }
    }

    fn usage(&self, usage: UsageOut) -> String {
        self.chunk(vec![], Some(usage))
    }
}
