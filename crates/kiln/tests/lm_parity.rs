//! The `kiln-lm` contract through both of its implementations on SmolLM2-135M-Instruct Q4_1:
//! the model in this process (`EngineLm`) and the same model behind `kiln serve` on
//! loopback (`EndpointLm`). Greedy completions and chat replies are the same text, and the
//! log-likelihoods of continuations agree within 1e-4, whether the endpoint is sent token
//! ids (a local tokenizer) or text (continuations found by character offsets).

mod common;

use std::sync::Arc;

use candle_core::Device;
use common::{free_port, serve};
use kiln_lm::{EndpointLm, EndpointOptions, EngineLm, GenParams, LanguageModel, LoglikRequest};
use kiln_model::ChatMessage;

fn requests() -> Vec<LoglikRequest> {
    let ctx = "Question: What is the capital of France?\nAnswer:";
    [
        (ctx, " Paris"),
        (ctx, " London"),
        (ctx, " The capital of France is Paris."),
        ("The quick brown fox jumps over the", " lazy dog"),
    ]
    .iter()
    .map(|(c, k)| LoglikRequest {
        context: c.to_string(),
        continuation: k.to_string(),
    })
    .collect()
}

fn texts(lm: &dyn LanguageModel) -> (Vec<String>, Vec<String>) {
    let params = GenParams {
        stop: vec!["\n\n".into()],
        ..GenParams::greedy(24)
    };
    let generated = ["The capital of France is", "def fibonacci(n):"]
        .iter()
        .map(|p| lm.generate(p, &params).unwrap().remove(0).text)
        .collect();
    let chats = [
        vec![ChatMessage::new("user", "Name three colours.")],
        vec![
            ChatMessage::new("system", "Answer in one word."),
            ChatMessage::new("user", "What is frozen water called?"),
        ],
    ]
    .iter()
    .map(|m| lm.chat(m, &GenParams::greedy(24)).unwrap().remove(0).text)
    .collect();
    (generated, chats)
}

#[test]
fn in_process_and_served_models_agree_through_the_trait() {
    let Some(gguf) = common::smollm2() else {
        return;
    };
    let loaded = kiln_model::load(&gguf, &Device::Cpu).unwrap();
    let tokenizer = Arc::new(loaded.tokenizer.clone());
    let engine = kiln_engine::start(loaded, "smollm2", Default::default()).unwrap();
    let local = EngineLm::new(engine, serde_json::json!({"path": gguf}));
    let port = free_port();
    let _server = serve("smollm2", &gguf, port);
    let opts = EndpointOptions::new(&format!("http://127.0.0.1:{port}/v1"), "smollm2");
    let by_ids = EndpointLm::new(opts.clone(), Some(tokenizer)).unwrap();
    let by_text = EndpointLm::new(opts, None).unwrap();

    let (gen_local, chat_local) = texts(&local);
    let (gen_remote, chat_remote) = texts(&by_ids);
    assert_eq!(gen_local, gen_remote);
    assert_eq!(chat_local, chat_remote);
    assert!(
        gen_local.iter().chain(&chat_local).all(|t| !t.is_empty()),
        "{gen_local:?} {chat_local:?}"
    );

    let reqs = requests();
    let want = local.loglik(&reqs).unwrap();
    for remote in [&by_ids, &by_text] {
        let got = remote.loglik(&reqs).unwrap();
        assert_eq!(got.len(), want.len());
        for ((w, g), r) in want.iter().zip(&got).zip(&reqs) {
            assert!(
                (w.logprob - g.logprob).abs() < 1e-4,
                "{r:?}: in-process {} vs served {}",
                w.logprob,
                g.logprob
            );
            assert_eq!((w.tokens, w.is_greedy), (g.tokens, g.is_greedy), "{r:?}");
        }
    }
    // The scores mean something: the right answer is the likelier one.
    assert!(want[0].logprob > want[1].logprob, "{want:?}");
    // A continuation of nothing (scored after BOS, or from the second token): token ids only,
    // since an empty context has no character offset to find it by.
    let empty = [LoglikRequest {
        context: String::new(),
        continuation: "Water boils at one hundred degrees.".into(),
    }];
    let (w, g) = (
        local.loglik(&empty).unwrap(),
        by_ids.loglik(&empty).unwrap(),
    );
    assert!((w[0].logprob - g[0].logprob).abs() < 1e-4, "{w:?} {g:?}");
}
