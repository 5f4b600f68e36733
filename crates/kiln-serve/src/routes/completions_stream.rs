//! Legacy completions streaming: `text_completion` chunks; with `echo` the prompt comes
//! first (scored, with `logprobs`), then generated text, then each choice's finish reason.

use kiln_engine::EngineEvent;

use crate::generation::finish_reason;
use crate::openai::common::{unix_now, UsageOut};
use crate::openai::completions::{Completion, CompletionChoice, LegacyLogprobs};
use crate::routes::legacy_logprobs::LegacyBuilder;
use crate::sse::ChunkFormat;

/// What a choice echoes: the prompt's text and its first token's text.
#[derive(Debug, Clone)]
pub struct Echo {
    pub text: String,
    pub first_token: String,
}

pub struct CompletionChunkFormat {
    id: String,
    model: String,
    created: u64,
    /// Per choice, when echoing.
    echo: Vec<Option<Echo>>,
    logprobs: bool,
    builders: Vec<LegacyBuilder>,
    include_usage: bool,
}

impl CompletionChunkFormat {
    pub fn new(
        id: String,
        model: String,
        echo: Vec<Option<Echo>>,
        logprobs: bool,
        include_usage: bool,
    ) -> Self {
        let builders = echo.iter().map(|_| LegacyBuilder::default()).collect();
        Self {
            id,
            model,
            created: unix_now(),
            echo,
            logprobs,
            builders,
            include_usage,
        }
    }

    fn chunk(&self, choices: Vec<CompletionChoice>, usage: Option<UsageOut>) -> String {
        let c = Completion {
            id: self.id.clone(),
            object: "text_completion",
            created: self.created,
            model: self.model.clone(),
            choices,
            usage: self.include_usage.then_some(usage),
        };
        serde_json::to_string(&c).unwrap_or_default()
    }

    fn one(
        &self,
        index: usize,
        text: String,
        logprobs: Option<LegacyLogprobs>,
        finish: Option<&'static str>,
    ) -> String {
        let choice = CompletionChoice {
            index,
            text,
            logprobs,
            finish_reason: finish,
        };
        self.chunk(vec![choice], None)
    }
}

impl ChunkFormat for CompletionChunkFormat {
    fn opening(&mut self) -> Vec<String> {
        if self.logprobs {
            // The echo waits for the prompt's log-probabilities.
            return vec![];
        }
        self.echo
            .iter()
            .enumerate()
            .filter_map(|(i, e)| e.as_ref().map(|e| self.one(i, e.text.clone(), None, None)))
            .collect()
    }

    fn event(&mut self, index: usize, ev: &EngineEvent) -> Vec<String> {
        let Some(b) = self.builders.get_mut(index) else {
            return vec![];
        };
        match ev {
            EngineEvent::PromptLogprobs(lps) if self.logprobs => {
                let Some(Some(echo)) = self.echo.get(index).cloned() else {
                    return vec![];
                };
                b.push_unscored(&echo.first_token);
                lps.iter().for_each(|lp| b.push(lp));
                let lp = b.take();
                vec![self.one(index, echo.text, Some(lp), None)]
            }
            EngineEvent::Token { text, logprob, .. } => {
                if let Some(lp) = logprob {
                    b.push(lp);
                } else if text.is_empty() {
                    return vec![];
                }
                let lp = self.logprobs.then(|| b.take());
                vec![self.one(index, text.clone(), lp, None)]
            }
            EngineEvent::Finished { reason, .. } => {
                let lp = self.logprobs.then(LegacyLogprobs::default);
                vec![self.one(index, String::new(), lp, Some(finish_reason(*reason)))]
            }
            _ => vec![],
        }
    }

    fn usage(&self, usage: UsageOut) -> String {
        self.chunk(vec![], Some(usage))
    }
}
