//! The one trait for "a language model", local or remote.

use kiln_model::ChatMessage;

use crate::error::{LmError, Result};
use crate::request::{Completion, GenParams, LoglikRequest, LoglikScore};

/// A language model as its clients see it: text completions, chat replies through the
/// model's own template, and log-likelihoods of continuations. Calls may come from many
/// threads at once; an implementation batches what arrives together. A model that does not
/// offer a call (a base completion endpoint cannot chat) answers it with
/// [`LmError::Unsupported`], the default.
pub trait LanguageModel: Send + Sync {
    /// What results record as the model: a path and hash, or an endpoint and name.
    fn describe(&self) -> serde_json::Value;

    /// `params.n` completions of a text prompt (tokenized as given, BOS where the model
    /// wants it), each ended by a stop string (not included), an end-of-sequence token or
    /// `max_tokens`.
    fn generate(&self, prompt: &str, params: &GenParams) -> Result<Vec<Completion>> {
        let _ = (prompt, params);
        Err(unsupported(self, "generate text"))
    }

    /// `params.n` replies to a conversation, rendered through the model's chat prompt.
    fn chat(&self, messages: &[ChatMessage], params: &GenParams) -> Result<Vec<Completion>> {
        let _ = (messages, params);
        Err(unsupported(self, "chat (a chat model is needed)"))
    }

    /// Log-likelihoods of each request's continuation after its context, in order.
    /// Requests sent together are scored together (choices of one question share their
    /// context's computation where the model can).
    fn loglik(&self, requests: &[LoglikRequest]) -> Result<Vec<LoglikScore>> {
        let _ = requests;
        Err(unsupported(self, "score log-likelihoods"))
    }

    /// Embeddings of `texts`, one vector each.
    fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>> {
        let _ = texts;
        Err(unsupported(self, "embed"))
    }
}

/// The first completion's text, for the common one-completion call.
pub trait TextCompletion {
    /// The text of [`LanguageModel::generate`]'s first completion.
    fn generate_text(&self, prompt: &str, params: &GenParams) -> Result<String>;
    /// The text of [`LanguageModel::chat`]'s first reply.
    fn chat_text(&self, messages: &[ChatMessage], params: &GenParams) -> Result<String>;
}

impl<M: LanguageModel + ?Sized> TextCompletion for M {
    fn generate_text(&self, prompt: &str, params: &GenParams) -> Result<String> {
        first(self.generate(prompt, params)?)
    }
    fn chat_text(&self, messages: &[ChatMessage], params: &GenParams) -> Result<String> {
        first(self.chat(messages, params)?)
    }
}

fn first(completions: Vec<Completion>) -> Result<String> {
    completions
        .into_iter()
        .next()
        .map(|c| c.text)
        .ok_or_else(|| LmError::Request("the model returned no completion".into()))
}

fn unsupported<M: LanguageModel + ?Sized>(m: &M, what: &str) -> LmError {
    LmError::Unsupported(format!("this model ({}) cannot {what}", m.describe()))
}

/// A one-message conversation: what the judge, HyDE and question decomposition ask.
pub fn user(text: &str) -> [ChatMessage; 1] {
    [ChatMessage::new("user", text)]
}
