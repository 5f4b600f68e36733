//! Tokenization and masks on real tokenizers: a byte-level BPE trained here (merges, so
//! tokens span several characters) and the tiny model's HF directory as the loader reads
//! it, both with ChatML special tokens.

use std::path::Path;

use kiln_model::{ChatMessage, ChatPrompt, ChatTemplate, Tokenizer};

use super::*;
use crate::data::tokenizer_train::{train_on_texts, TokenizerSpec};

/// SmolLM2-Instruct's template: ChatML plus a default system prompt.
const SMOLLM2: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

/// A BPE trained on chat-like text, saved and loaded as a model's tokenizer.json.
fn bpe(dir: &Path) -> Tokenizer {
    let mut spec = TokenizerSpec::bpe(600);
    spec.special_tokens = vec![
        "<|endoftext|>".into(),
        "<|im_start|>".into(),
        "<|im_end|>".into(),
    ];
    let corpus = [
        "user\nWhat is the capital of France?\nassistant\nThe capital of France is Paris.",
        "system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face",
        "user\nHow many legs does a spider have?\nassistant\nA spider has eight legs.",
    ];
    let tok = train_on_texts(&spec, &corpus).unwrap();
    let path = dir.join("tokenizer.json");
    tok.save(&path, false).unwrap();
    let t = Tokenizer::from_file(&path, None, vec![2]).unwrap();
    assert_eq!(t.token_to_id("<|im_end|>"), Some(2));
    t
}

/// The chat prompt of a model with `template`.
fn chat_prompt(tok: &Tokenizer, template: &ChatTemplate) -> ChatPrompt {
    ChatPrompt::new(Some(template), tok).unwrap()
}

fn record(example: SftExample) -> SftRecord {
    SftRecord { line: 4, example }
}

fn chat() -> SftExample {
    SftExample::Chat(vec![
        ChatMessage::new("user", "What is the capital of France?"),
        ChatMessage::new("assistant", "The capital of France is Paris."),
        ChatMessage::new("user", "How many legs does a spider have?"),
        ChatMessage::new("assistant", "A spider has eight legs."),
    ])
}

/// The decoded text of each maximal run of trained (`want = true`) or untrained tokens.
fn runs(tok: &Tokenizer, ex: &TokenizedExample, want: bool) -> Vec<String> {
    let mut out = vec![];
    let mut cur = vec![];
    for (&id, &m) in ex.input_ids.iter().zip(&ex.loss_mask) {
        if m == want {
            cur.push(id);
        } else if !cur.is_empty() {
            out.push(tok.decode(&std::mem::take(&mut cur)).unwrap());
        }
    }
    if !cur.is_empty() {
        out.push(tok.decode(&cur).unwrap());
    }
    out
}

fn check_chatml_mask(tok: &Tokenizer, template: &ChatTemplate) {
    let prompt = chat_prompt(tok, template);
    let st = SftTokenizer::new(tok, &prompt, TrainOn::Assistant);
    let ex = st.tokenize(&record(chat()), Path::new("t.jsonl")).unwrap();
    assert_eq!(
        runs(tok, &ex, true),
        [
            "The capital of France is Paris.<|im_end|>\n",
            "A spider has eight legs.<|im_end|>\n"
        ]
    );
    let untrained = runs(tok, &ex, false);
    assert_eq!(untrained.len(), 2);
    assert!(untrained[0].ends_with("France?<|im_end|>\n<|im_start|>assistant\n"));
    assert_eq!(
        untrained[1],
        "<|im_start|>user\nHow many legs does a spider have?<|im_end|>\n<|im_start|>assistant\n"
    );
    // The whole example is the template's rendering, end-of-turn markers as single tokens.
    let full = template
        .render(
            match &record(chat()).example {
                SftExample::Chat(m) => m,
                _ => unreachable!(),
            },
            false,
        )
        .unwrap();
    assert_eq!(tok.decode(&ex.input_ids).unwrap(), full);
    let im_end = tok.token_to_id("<|im_end|>").unwrap();
    let ends: Vec<bool> = ex
        .input_ids
        .iter()
        .zip(&ex.loss_mask)
        .filter(|(&id, _)| id == im_end)
        .map(|(_, &m)| m)
        .collect();
    // [system,] user, ASSISTANT, user, ASSISTANT
    let (head, turns) = ends.split_at(ends.len() - 4);
    assert_eq!(turns, [false, true, false, true]);
    assert!(head.iter().all(|&m| !m), "{ends:?}");

    let prompt = chat_prompt(tok, template);
    let all = SftTokenizer::new(tok, &prompt, TrainOn::All);
    let ex_all = all.tokenize(&record(chat()), Path::new("t.jsonl")).unwrap();
    assert_eq!(ex_all.input_ids, ex.input_ids);
    assert!(!ex_all.loss_mask[0] && ex_all.loss_mask[1..].iter().all(|&m| m));
}

#[test]
fn chatml_masks_exactly_the_assistant_turns_on_a_trained_bpe() {
    let dir = tempfile::tempdir().unwrap();
    let tok = bpe(dir.path());
    let template = ChatTemplate::new(SMOLLM2, "<|im_start|>", "<|im_end|>").unwrap();
    // Merges make tokens span characters: the test would not notice misplaced boundaries
    // on a one-byte-per-token vocabulary alone.
    let ids = tok.encode("The capital of France", false, true).unwrap();
    assert!(
        ids.len() < "The capital of France".len(),
        "no merges: {ids:?}"
    );
    let prompt = chat_prompt(&tok, &template);
    let st = SftTokenizer::new(&tok, &prompt, TrainOn::Assistant);
    let ex = st.tokenize(&record(chat()), Path::new("t.jsonl")).unwrap();
    // The template's default system prompt is context, not trained.
    assert!(runs(&tok, &ex, false)[0].starts_with("<|im_start|>system\nYou are a helpful"));
    check_chatml_mask(&tok, &template);
}

#[test]
fn chatml_masks_on_the_tiny_model_as_the_loader_reads_it() {
    let dir = tempfile::tempdir().unwrap();
    kiln_model::tiny::write_tiny_llama(dir.path(), &Default::default()).unwrap();
    let (tok, template) = kiln_model::load_tokenizer(dir.path()).unwrap();
    check_chatml_mask(&tok, &template.expect("the tiny model ships ChatML"));
}

#[test]
fn prompt_completion_trains_the_completion_and_eos() {
    let dir = tempfile::tempdir().unwrap();
    let tok = bpe(dir.path());
    let pc = SftExample::PromptCompletion {
        prompt: "What is the capital of France?".into(),
        completion: " Paris.".into(),
    };
    let prompt = ChatPrompt::plain_text();
    let st = SftTokenizer::new(&tok, &prompt, TrainOn::Assistant);
    let ex = st
        .tokenize(&record(pc.clone()), Path::new("t.jsonl"))
        .unwrap();
    assert_eq!(runs(&tok, &ex, true), [" Paris.<|im_end|>"]);
    assert_eq!(runs(&tok, &ex, false), ["What is the capital of France?"]);
    assert_eq!(
        ex.labels().iter().filter(|&&l| l == -100).count(),
        ex.len() - ex.trained_tokens()
    );

    let prompt = ChatPrompt::plain_text();
    let all = SftTokenizer::new(&tok, &prompt, TrainOn::All)
        .tokenize(&record(pc), Path::new("t.jsonl"))
        .unwrap();
    assert_eq!(all.trained_tokens(), all.len() - 1);

    let text = st
        .tokenize(
            &record(SftExample::Text("A spider has eight legs.".into())),
            Path::new("t.jsonl"),
        )
        .unwrap();
    assert_eq!(text.input_ids.last(), Some(&2));
    assert_eq!(text.trained_tokens(), text.len() - 1);
}

#[test]
fn a_chat_without_a_template_names_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let tok = bpe(dir.path());
    let prompt = ChatPrompt::plain_text();
    let st = SftTokenizer::new(&tok, &prompt, TrainOn::Assistant);
    let msg = st
        .tokenize(&record(chat()), Path::new("train.jsonl"))
        .unwrap_err()
        .to_string();
    assert!(
        msg.starts_with("train.jsonl:4: a chat example needs a chat template"),
        "{msg}"
    );
}

#[test]
fn max_len_truncates_counts_and_reports_drops() {
    let dir = tempfile::tempdir().unwrap();
    let tok = bpe(dir.path());
    let template = ChatTemplate::new(SMOLLM2, "<|im_start|>", "<|im_end|>").unwrap();
    let prompt = chat_prompt(&tok, &template);
    let st = SftTokenizer::new(&tok, &prompt, TrainOn::Assistant);
    let path = Path::new("train.jsonl");
    let long_prompt = "What is the capital of France? ".repeat(12);
    let text = format!(
        "{}\n{}\n{}\n{}\n",
        serde_json::json!({"prompt": long_prompt, "completion": " Paris."}),
        r#"{"messages":[{"role":"user","content":"How many legs does a spider have?"},{"role":"assistant","content":"A spider has eight legs."}]}"#,
        r#"{"messages":[{"role":"user","content":"Only a question, no reply"}]}"#,
        r#"{"text":"short"}"#,
    );
    let records = parse_sft_jsonl(&text, path).unwrap();
    let full: Vec<TokenizedExample> = records
        .iter()
        .map(|r| st.tokenize(r, path).unwrap())
        .collect();
    // A limit that cuts the chat 3 tokens into its reply, the prompt/completion before its
    // completion begins, and leaves the text whole.
    let first_trained = |e: &TokenizedExample| e.loss_mask.iter().position(|&m| m).unwrap();
    let max_len = first_trained(&full[1]) + 3;
    assert!(
        first_trained(&full[0]) >= max_len,
        "the long prompt is not long enough"
    );
    assert!(full[1].len() > max_len && full[3].len() < max_len);
    let (kept, report) = prepare_examples(&records, &st, max_len, path).unwrap();
    assert_eq!(report.examples, 2, "{report}");
    assert_eq!(kept.iter().map(|e| e.line).collect::<Vec<_>>(), [2, 4]);
    assert_eq!(report.truncated, 1);
    // Line 1 lost its completion to truncation; line 3 never had a reply.
    assert_eq!(report.dropped_lines, [1, 3]);
    assert_eq!(report.dropped_no_trainable_tokens, 2);
    assert_eq!(kept[0].len(), max_len);
    assert_eq!(kept[0].trained_tokens(), 3);
    assert_eq!(kept[1], full[3]);
    assert_eq!(report.total_tokens, max_len + full[3].len());
    assert_eq!(report.trained_tokens, 3 + full[3].trained_tokens());
    assert_eq!(report.longest, full[0].len());
    let shown = report.to_string();
    assert!(
        shown.contains("1 truncated, 2 dropped with no trained token (lines 1, 3)"),
        "{shown}"
    );
}
