//! Which characters of a rendered conversation are the assistant's, found by rendering
//! prefixes with the model's own template: the assistant turn `i` spans from the end of
//! `render(messages[..i], add_generation_prompt = true)` (where the reply begins) to the end
//! of `render(messages[..=i], false)` (its end-of-turn marker included). This needs no
//! knowledge of the template's markers, so it works for ChatML, Llama 3, Mistral, ...

use std::ops::Range;

use kiln_model::{ChatMessage, ChatTemplate};

/// The full rendering and the byte ranges in it that belong to assistant turns (in order,
/// not overlapping). Errors are plain strings; the caller adds the file and line.
pub fn assistant_spans(
    template: &ChatTemplate,
    messages: &[ChatMessage],
) -> Result<(String, Vec<Range<usize>>), String> {
    let render = |m: &[ChatMessage], gen: bool| {
        template
            .render(m, gen)
            .map_err(|e| format!("chat template: {e}"))
    };
    let full = render(messages, false)?;
    let mut spans = Vec::new();
    let mut done = 0;
    for (i, m) in messages.iter().enumerate() {
        if m.role != "assistant" {
            continue;
        }
        let before = render(&messages[..i], true)?;
        let through = render(&messages[..=i], false)?;
        // A template that renders a prefix differently from the whole (say, a system prompt
        // it adds only when messages[0] is not one, with messages[..0] empty) cannot be
        // masked by prefixes; refuse it rather than train on shifted boundaries.
        if !full.starts_with(&before) || !full.starts_with(&through) || through.len() < before.len()
        {
            return Err(format!(
                "the chat template does not render message {} (assistant) as a continuation of the messages before it, so its tokens cannot be located",
                i + 1
            ));
        }
        if before.len() < done {
            return Err(format!(
                "the chat template renders message {} (assistant) overlapping the turn before it",
                i + 1
            ));
        }
        if through.len() > before.len() {
            spans.push(before.len()..through.len());
        }
        done = through.len();
    }
    Ok((full, spans))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_model::chat_template::CHATML;

    #[test]
    fn chatml_spans_cover_reply_and_end_of_turn() {
        let t = ChatTemplate::new(CHATML, "", "<|im_end|>").unwrap();
        let msgs = [
            ChatMessage::new("user", "Hi"),
            ChatMessage::new("assistant", "Hello!"),
            ChatMessage::new("user", "Bye"),
            ChatMessage::new("assistant", "Ciao."),
        ];
        let (full, spans) = assistant_spans(&t, &msgs).unwrap();
        let texts: Vec<&str> = spans.iter().map(|r| &full[r.clone()]).collect();
        assert_eq!(texts, ["Hello!<|im_end|>\n", "Ciao.<|im_end|>\n"]);
        assert!(full[..spans[0].start].ends_with("<|im_start|>assistant\n"));
    }

    #[test]
    fn a_template_that_is_not_prefix_consistent_is_refused() {
        // Puts a count of all messages up front, so no prefix render is a prefix of the whole.
        let src = "{{ messages|length }}{% for m in messages %}[{{ m['content'] }}]{% endfor %}";
        let t = ChatTemplate::new(src, "", "").unwrap();
        let msgs = [
            ChatMessage::new("user", "a"),
            ChatMessage::new("assistant", "b"),
        ];
        let err = assistant_spans(&t, &msgs).unwrap_err();
        assert!(err.contains("message 2 (assistant)"), "{err}");
    }
}
