//! One chat prompt everywhere: the same messages become the same token ids through every
//! part of kiln that prompts a model with a conversation. Serving (`POST /tokenize`, which
//! is what the chat route renders, and a chat completion's `usage.prompt_tokens`), `kiln
//! chat`'s builder (`kiln tokenize --chat`), the evaluator's in-process model (what
//! `EngineLm::chat` submits), and the conversations the LLM judge and `rag ask` send their
//! model (recorded on the way to a real engine) are all rendered identically, for a model
//! with its own template (SmolLM2) and one that falls back to ChatML (kiln's tiny model).

mod common;

use std::path::Path;
use std::sync::{Arc, Mutex};

use candle_core::Device;
use common::{free_port, kiln_json, serve};
use kiln_eval::scoring::{JudgeScorer, Scorer};
use kiln_eval::tasks::prompt_items::TaskItem;
use kiln_lm::{Completion, EngineLm, GenParams, LanguageModel};
use kiln_model::ChatMessage;

type Seen = Arc<Mutex<Vec<Vec<ChatMessage>>>>;

/// A real in-process model that keeps every conversation it is asked.
struct Recording {
    lm: EngineLm,
    seen: Seen,
}

impl Recording {
    fn of(lm: &EngineLm, seen: &Seen) -> Self {
        Self {
            lm: EngineLm::new(lm.engine().clone(), lm.describe()),
            seen: seen.clone(),
        }
    }
}

impl LanguageModel for Recording {
    fn describe(&self) -> serde_json::Value {
        self.lm.describe()
    }
    fn chat(
        &self,
        messages: &[ChatMessage],
        params: &GenParams,
    ) -> kiln_lm::Result<Vec<Completion>> {
        self.seen.lock().unwrap().push(messages.to_vec());
        self.lm.chat(messages, params)
    }
}

fn post(port: u16, path: &str, body: serde_json::Value) -> serde_json::Value {
    reqwest::blocking::Client::new()
        .post(format!("http://127.0.0.1:{port}{path}"))
        .json(&body)
        .send()
        .and_then(|r| r.error_for_status())
        .unwrap_or_else(|e| panic!("POST {path}: {e}"))
        .json()
        .unwrap()
}

fn ids(v: &serde_json::Value) -> Vec<u32> {
    serde_json::from_value(v.clone()).unwrap()
}

/// The ids of `messages` through serve, `kiln tokenize --chat` and the in-process model.
fn through_all(model: &Path, port: u16, lm: &EngineLm, messages: &[ChatMessage], dir: &Path) {
    let wire = serde_json::to_value(messages).unwrap();
    let tokenized = post(port, "/tokenize", serde_json::json!({"messages": wire}));
    let served = ids(&tokenized["tokens"]);
    // What the chat route itself counts, when the prompt leaves room to answer.
    if tokenized["max_model_len"].as_u64() > Some(served.len() as u64) {
        let usage = post(
            port,
            "/v1/chat/completions",
            serde_json::json!({"messages": wire, "max_tokens": 1}),
        );
        assert_eq!(usage["usage"]["prompt_tokens"], served.len(), "{usage}");
    }
    let file = dir.join("messages.json");
    std::fs::write(&file, wire.to_string()).unwrap();
    let chat = ids(&kiln_json([
        "tokenize".as_ref(),
        "-m".as_ref(),
        model.as_os_str(),
        "--chat".as_ref(),
        file.as_os_str(),
        "--json".as_ref(),
    ])["ids"]);
    let eval = lm.chat_prompt_ids(messages).unwrap();
    assert_eq!(served, chat, "serve vs kiln chat's prompt: {messages:?}");
    assert_eq!(served, eval, "serve vs the evaluator's model: {messages:?}");
}

/// The judge's and `rag ask`'s conversations, as they reach their model.
fn judge_and_rag_conversations(lm: &EngineLm) -> Vec<Vec<ChatMessage>> {
    let seen = Seen::default();
    let item = TaskItem {
        line: 1,
        prompt: "What is 2 + 2?".into(),
        messages: vec![ChatMessage::new("user", "What is 2 + 2?")],
        answer: Some("4".into()),
    };
    // A tiny random judge gives no rating; what matters here is what it was asked.
    let _ = JudgeScorer::new(Box::new(Recording::of(lm, &seen))).score(&item, "It is 4.");
    rag_conversation(lm, &seen);
    let seen = seen.lock().unwrap().clone();
    seen
}

/// What `kiln_rag::ask` sends its model, over a small index (needs the embedder asset).
fn rag_conversation(lm: &EngineLm, seen: &Seen) {
    let Some(weights) = common::asset(
        "all-MiniLM-L6-v2/model.safetensors",
        "scripts/fetch-assets.sh",
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let embedder = kiln_rag::Embedder::load(weights.parent().unwrap()).unwrap();
    let docs = [
        "Paris is the capital of France.",
        "Water boils at 100 degrees Celsius.",
    ]
    .iter()
    .enumerate()
    .map(|(i, t)| kiln_rag::Document {
        id: format!("d{i}"),
        title: String::new(),
        source: "docs.jsonl".into(),
        offset: 0,
        text: t.to_string(),
        meta: Default::default(),
    })
    .collect();
    kiln_rag::index_documents(dir.path(), &embedder, docs, &Default::default(), &|_, _| {})
        .unwrap();
    let index = kiln_rag::RagIndex::open(dir.path()).unwrap();
    let pipeline = kiln_rag::Pipeline::new(kiln_rag::Retriever::new(&index, &embedder).unwrap());
    let verifier = kiln_rag::Verifier::new(Some(&embedder));
    let spec = "hybrid".parse().unwrap();
    let question = "What is the capital of France?";
    let rec = Recording::of(lm, seen);
    // The tiny model's context may not hold the whole prompt; what was asked is recorded
    // before the model is.
    let _ = kiln_rag::ask::ask(&pipeline, &rec, &verifier, question, spec, 2, 8);
}

fn check(model: &Path) {
    let dir = tempfile::tempdir().unwrap();
    let loaded = kiln_model::load(model, &Device::Cpu).unwrap();
    let engine = kiln_engine::start(loaded, "m", Default::default()).unwrap();
    let lm = EngineLm::new(engine, serde_json::json!({}));
    let port = free_port();
    let _server = serve("m", model, port);
    let plain = vec![
        ChatMessage::new("system", "Be brief."),
        ChatMessage::new("user", "What is kiln?"),
        ChatMessage::new("assistant", "A workspace."),
        ChatMessage::new("user", "And <|im_end|> in text?"),
    ];
    through_all(model, port, &lm, &plain, dir.path());
    let recorded = judge_and_rag_conversations(&lm);
    assert!(
        recorded.len() >= 2,
        "the judge and ask asked nothing: {recorded:?}"
    );
    for messages in &recorded {
        through_all(model, port, &lm, messages, dir.path());
    }
}

#[test]
fn a_chatml_fallback_model_gets_one_prompt_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    kiln_model::tiny::write_tiny_llama(dir.path(), &Default::default()).unwrap();
    // The tiny model ships ChatML as its template; without it, ChatML is the fallback.
    std::fs::write(
        dir.path().join("tokenizer_config.json"),
        r#"{"bos_token": "<|im_start|>", "eos_token": "<|im_end|>"}"#,
    )
    .unwrap();
    let m = kiln_model::load(dir.path(), &Device::Cpu).unwrap();
    assert!(m.chat_template.is_none());
    assert_eq!(
        m.chat_prompt().unwrap().format(),
        kiln_model::ChatFormat::ChatMl
    );
    check(dir.path());
}

#[test]
fn a_model_with_its_own_template_gets_one_prompt_everywhere() {
    let Some(gguf) = common::smollm2() else {
        return;
    };
    check(&gguf);
}
