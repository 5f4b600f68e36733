//! [`ChatPrompt`]: messages to prompt text and token ids, the same way everywhere. The
//! model's own template is used as is; a model without one gets the one documented
//! fallback: ChatML when its tokenizer has ChatML's marker tokens (SmolLM2, Qwen2 and kiln's
//! tiny test model have them), and otherwise (a base model, such as a `kiln train` run) the
//! messages as plain text, one per line, for the model to continue (`kiln chat` does;
//! `kiln serve`'s chat route refuses such a model, as OpenAI's API expects a chat model).
//!
//! Token ids: the rendered text is tokenized with its special-token text read as tokens
//! (`<|im_start|>` is one id), and BOS is put in front where the model wants one and the
//! template did not write it. Plain text is tokenized as `kiln generate` tokenizes a prompt.

use std::ops::Range;

use super::template::{ChatTemplate, CHATML};
use super::ChatMessage;
use crate::error::{ModelError, Result};
use crate::tokenizer::Tokenizer;

/// Which of the three ways a model's conversations are rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChatFormat {
    /// The model's own chat template.
    Template,
    /// No template, but ChatML's markers are tokens of the vocabulary.
    ChatMl,
    /// Neither: each message's text on its own line (a base model continues it).
    PlainText,
}

#[derive(Debug, Clone)]
pub struct ChatPrompt {
    format: ChatFormat,
    /// The model's template, or ChatML; `None` for plain text.
    template: Option<ChatTemplate>,
}

impl ChatPrompt {
    /// The builder for a model with `template` (its own, if any) and `tokenizer`.
    pub fn new(template: Option<&ChatTemplate>, tokenizer: &Tokenizer) -> Result<Self> {
        let (format, template) = match template {
            Some(t) => (ChatFormat::Template, Some(t.clone())),
            None if tokenizer.token_to_id("<|im_start|>").is_some() => {
                (ChatFormat::ChatMl, Some(ChatTemplate::new(CHATML, "", "")?))
            }
            None => (ChatFormat::PlainText, None),
        };
        Ok(Self { format, template })
    }

    /// A base model's builder: messages as plain text, no turns.
    pub fn plain_text() -> Self {
        Self {
            format: ChatFormat::PlainText,
            template: None,
        }
    }

    pub fn format(&self) -> ChatFormat {
        self.format
    }

    /// Whether conversations have turns the model knows (its template or ChatML).
    pub fn is_chat(&self) -> bool {
        self.template.is_some()
    }

    /// The prompt text; with `add_generation_prompt` it ends where the assistant's reply
    /// begins (plain text has no such marker).
    pub fn render(&self, messages: &[ChatMessage], add_generation_prompt: bool) -> Result<String> {
        match &self.template {
            Some(t) => t.render(messages, add_generation_prompt),
            None => Ok(messages
                .iter()
                .map(|m| format!("{}\n", m.content))
                .collect()),
        }
    }

    /// The prompt tokens of `messages`, ending where the assistant's reply begins: what
    /// the model is given to answer them.
    pub fn encode(&self, tokenizer: &Tokenizer, messages: &[ChatMessage]) -> Result<Vec<u32>> {
        let text = self.render(messages, true)?;
        if self.template.is_none() {
            return tokenizer.encode(&text, true, false);
        }
        let mut ids = tokenizer.encode(&text, false, true)?;
        tokenizer.ensure_bos(&mut ids);
        Ok(ids)
    }

    /// The whole conversation's tokens, and for each whether it belongs to an assistant
    /// turn (its end-of-turn marker included): what fine-tuning trains on. The text is
    /// tokenized in pieces cut at the turn boundaries, so no token straddles one.
    pub fn encode_turns(
        &self,
        tokenizer: &Tokenizer,
        messages: &[ChatMessage],
    ) -> Result<(Vec<u32>, Vec<bool>)> {
        let (full, spans) = self.assistant_spans(messages)?;
        let (mut ids, mut assistant) = (Vec::new(), Vec::new());
        let mut at = 0;
        let mut piece = |text: &str, theirs: bool| -> Result<()> {
            let p = tokenizer.encode(text, false, true)?;
            assistant.extend(std::iter::repeat_n(theirs, p.len()));
            ids.extend(p);
            Ok(())
        };
        for s in &spans {
            piece(&full[at..s.start], false)?;
            piece(&full[s.clone()], true)?;
            at = s.end;
        }
        piece(&full[at..], false)?;
        if tokenizer.ensure_bos(&mut ids) {
            assistant.insert(0, false);
        }
        Ok((ids, assistant))
    }

    /// The full rendering and the byte ranges in it that are assistant turns (in order, not
    /// overlapping), found by rendering prefixes: turn `i` spans from the end of
    /// `render(messages[..i], true)` (where the reply begins) to the end of
    /// `render(messages[..=i], false)`. This needs no knowledge of the template's markers.
    pub fn assistant_spans(&self, messages: &[ChatMessage]) -> Result<(String, Vec<Range<usize>>)> {
        if !self.is_chat() {
            return Err(ModelError::ChatTemplate(
                "a chat example needs a chat template, and the model has none".into(),
            ));
        }
        let full = self.render(messages, false)?;
        let mut spans = Vec::new();
        let mut done = 0;
        for (i, m) in messages.iter().enumerate() {
            if m.role != "assistant" {
                continue;
            }
            let before = self.render(&messages[..i], true)?;
            let through = self.render(&messages[..=i], false)?;
            // A template that renders a prefix differently from the whole (say, a system
            // prompt it adds only when messages[0] is not one, with messages[..0] empty)
            // cannot be masked by prefixes; refuse it rather than train on shifted
            // boundaries.
            if !full.starts_with(&before)
                || !full.starts_with(&through)
                || through.len() < before.len()
            {
                return Err(ModelError::ChatTemplate(format!(
                    "the chat template does not render message {} (assistant) as a continuation of the messages before it, so its tokens cannot be located",
                    i + 1
                )));
            }
            if before.len() < done {
                return Err(ModelError::ChatTemplate(format!(
                    "the chat template renders message {} (assistant) overlapping the turn before it",
                    i + 1
                )));
            }
            if through.len() > before.len() {
                spans.push(before.len()..through.len());
            }
            done = through.len();
        }
        Ok((full, spans))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(template: &str) -> ChatPrompt {
        ChatPrompt {
            format: ChatFormat::Template,
            template: Some(ChatTemplate::new(template, "", "<|im_end|>").unwrap()),
        }
    }

    #[test]
    fn chatml_spans_cover_reply_and_end_of_turn() {
        let msgs = [
            ChatMessage::new("user", "Hi"),
            ChatMessage::new("assistant", "Hello!"),
            ChatMessage::new("user", "Bye"),
            ChatMessage::new("assistant", "Ciao."),
        ];
        let (full, spans) = with(CHATML).assistant_spans(&msgs).unwrap();
        let texts: Vec<&str> = spans.iter().map(|r| &full[r.clone()]).collect();
        assert_eq!(texts, ["Hello!<|im_end|>\n", "Ciao.<|im_end|>\n"]);
        assert!(full[..spans[0].start].ends_with("<|im_start|>assistant\n"));
    }

    #[test]
    fn a_template_that_is_not_prefix_consistent_is_refused() {
        // Puts a count of all messages up front, so no prefix render is a prefix of the whole.
        let src = "{{ messages|length }}{% for m in messages %}[{{ m['content'] }}]{% endfor %}";
        let msgs = [
            ChatMessage::new("user", "a"),
            ChatMessage::new("assistant", "b"),
        ];
        let err = with(src).assistant_spans(&msgs).unwrap_err().to_string();
        assert!(err.contains("message 2 (assistant)"), "{err}");
    }

    #[test]
    fn plain_text_is_one_message_a_line_and_has_no_turns() {
        let p = ChatPrompt::plain_text();
        let msgs = [
            ChatMessage::new("system", "Be brief."),
            ChatMessage::new("user", "Hi"),
        ];
        assert_eq!(p.render(&msgs, true).unwrap(), "Be brief.\nHi\n");
        assert!(!p.is_chat());
        let err = p.assistant_spans(&msgs).unwrap_err().to_string();
        assert!(err.contains("needs a chat template"), "{err}");
    }
}
