//! `kiln rag ask` and the language-model steps of `kiln rag query` on the real embedder and
//! SmolLM2-135M-Instruct: answers come with sources that resolve to the documents' own text
//! (id and byte span), every citation and attribution names one of those sources, and the
//! reranker only reorders the first stage's best chunks; HyDE and decomposition report what
//! they searched with.

mod common;

use std::collections::HashMap;
use std::path::Path;

use common::{asset, kiln_json, run_kiln};

const DOCS: &[(&str, &str, &str)] = &[
    (
        "eiffel",
        "Eiffel Tower",
        "The Eiffel Tower is a wrought-iron lattice tower in Paris, France. It was built \
         from 1887 to 1889 as the entrance arch of the 1889 World's Fair. The tower is 330 \
         metres tall.",
    ),
    (
        "everest",
        "Mount Everest",
        "Mount Everest is Earth's highest mountain above sea level, in the Himalayas on the \
         border of Nepal and China. Its height is 8,849 metres.",
    ),
    (
        "python",
        "Python (programming language)",
        "Python is a high-level programming language created by Guido van Rossum and first \
         released in 1991. Its design emphasises code readability.",
    ),
    (
        "honey",
        "Honey",
        "Honey is a sweet, viscous substance made by honey bees from the nectar of flowers. \
         Sealed honey does not spoil.",
    ),
];

fn setup(dir: &Path) -> Option<(String, String)> {
    asset(
        "all-MiniLM-L6-v2/model.safetensors",
        "scripts/fetch-assets.sh",
    )?;
    asset("SmolLM2-135M-Instruct.Q4_1.gguf", "scripts/fetch-assets.sh")?;
    let lines: Vec<String> = DOCS
        .iter()
        .map(|(id, title, text)| {
            serde_json::json!({"id": id, "title": title, "text": text}).to_string()
        })
        .collect();
    let corpus = dir.join("corpus.jsonl");
    std::fs::write(&corpus, lines.join("\n") + "\n").unwrap();
    let index = dir.join("index");
    let out = run_kiln([
        "rag",
        "index",
        "--input",
        corpus.to_str().unwrap(),
        "--index",
        index.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some((
        index.to_str().unwrap().to_string(),
        corpus.to_str().unwrap().to_string(),
    ))
}

#[test]
fn ask_answers_with_sources_that_resolve_to_the_documents() {
    let dir = tempfile::tempdir().unwrap();
    let Some((index, _)) = setup(dir.path()) else {
        return;
    };
    let texts: HashMap<&str, &str> = DOCS.iter().map(|(id, _, t)| (*id, *t)).collect();
    let v = kiln_json([
        "rag",
        "ask",
        "--index",
        index.as_str(),
        "--question",
        "How tall is the Eiffel Tower?",
        "--top-k",
        "3",
        "--max-tokens",
        "64",
        "--json",
    ]);
    assert!(!v["answer"].as_str().unwrap().trim().is_empty(), "{v}");
    let sources = v["sources"].as_array().unwrap();
    assert_eq!(sources.len(), 3, "{v}");
    assert_eq!(sources[0]["doc_id"], "eiffel", "{v}");
    for (i, s) in sources.iter().enumerate() {
        assert_eq!(s["n"], i + 1);
        let doc = texts[s["doc_id"].as_str().unwrap()];
        let (a, b) = (
            s["start"].as_u64().unwrap() as usize,
            s["end"].as_u64().unwrap() as usize,
        );
        assert_eq!(&doc[a..b], s["text"].as_str().unwrap(), "span of {s}");
    }
    let sentences = v["sentences"].as_array().unwrap();
    assert!(!sentences.is_empty(), "{v}");
    let mut unsupported = 0;
    for s in sentences {
        for c in s["citations"].as_array().unwrap() {
            let n = c.as_u64().unwrap() as usize;
            assert!((1..=sources.len()).contains(&n), "{s}");
        }
        if let Some(n) = s["attributed"].as_u64() {
            assert!((1..=sources.len()).contains(&(n as usize)), "{s}");
            assert_eq!(s["support"]["supported"], true, "{s}");
        }
        unsupported += usize::from(s["support"]["supported"] == false);
    }
    assert_eq!(v["unsupported"], unsupported);
}

#[test]
fn query_reranks_the_first_stage_and_reports_rewrites() {
    let dir = tempfile::tempdir().unwrap();
    let Some((index, _)) = setup(dir.path()) else {
        return;
    };
    let q = |extra: &[&str]| {
        let mut args = vec![
            "rag",
            "query",
            "--index",
            index.as_str(),
            "--query",
            "Who created the Python language?",
            "--top-k",
            "3",
            "--json",
        ];
        args.extend_from_slice(extra);
        kiln_json(args)
    };
    let ids = |v: &serde_json::Value| -> Vec<String> {
        v["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["doc_id"].as_str().unwrap().to_string())
            .collect()
    };
    let first = q(&[]);
    let reranked = q(&["--rerank", "--rerank-depth", "3"]);
    let (mut a, mut b) = (ids(&first), ids(&reranked));
    a.sort();
    b.sort();
    assert_eq!(a, b, "reranking changed the set: {first} vs {reranked}");
    let scores: Vec<f64> = reranked["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["score"].as_f64().unwrap())
        .collect();
    assert!(
        scores.iter().all(|p| (0.0..=1.0).contains(p)) && scores.windows(2).all(|w| w[0] >= w[1]),
        "P(Yes) scores, best first: {scores:?}"
    );

    let hyde = q(&["--hyde", "--mode", "dense"]);
    assert!(
        hyde["hypothetical"].as_str().is_some_and(|h| !h.is_empty()),
        "{hyde}"
    );
    assert_eq!(hyde["results"].as_array().unwrap().len(), 3);
    let dec = q(&["--decompose"]);
    assert!(dec["sub_questions"].is_array(), "{dec}");

    let bad = run_kiln([
        "rag",
        "query",
        "--index",
        index.as_str(),
        "--query",
        "x",
        "--mode",
        "bm25",
        "--hyde",
    ]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--hyde"));
}
