//! The sentence embedder against published and reference figures: all-MiniLM-L6-v2's known
//! cosine for a sentence pair, and (where sentence-transformers is installed) 20 sentences'
//! embeddings within 1e-4 of it, batched with mixed lengths and one text past the
//! 256-token truncation.

use std::io::Write;
use std::process::{Command, Stdio};

use kiln_rag::{cosine, Embedder};

fn embedder() -> Option<Embedder> {
    let dir = kiln_testing::asset(
        "all-MiniLM-L6-v2/model.safetensors",
        "scripts/fetch-assets.sh",
    )?;
    Some(Embedder::load(dir.parent().unwrap()).unwrap())
}

#[test]
fn the_published_similarity_of_the_bread_pair() {
    let Some(e) = embedder() else { return };
    let v = e
        .embed(
            &["A man is eating food.", "A man is eating a piece of bread."],
            8,
        )
        .unwrap();
    let c = cosine(&v[0], &v[1]);
    eprintln!("cosine(bread pair) = {c:.4}");
    assert!((c - 0.755).abs() <= 0.002, "cosine {c}");
    // Unit vectors, whatever the batch: the same sentence alone embeds the same.
    let alone = e.embed(&["A man is eating food."], 1).unwrap();
    assert!((cosine(&v[0], &v[0]) - 1.0).abs() < 1e-5);
    assert!(v[0]
        .iter()
        .zip(&alone[0])
        .all(|(a, b)| (a - b).abs() < 1e-5));
}

fn sentences() -> Vec<String> {
    let mut s: Vec<String> = [
        "A man is eating food.",
        "A man is eating a piece of bread.",
        "The girl is carrying a baby.",
        "A man is riding a horse.",
        "A woman is playing violin.",
        "Two men pushed carts through the woods.",
        "A man is riding a white horse on an enclosed ground.",
        "A monkey is playing drums.",
        "Someone in a gorilla costume is playing a set of drums.",
        "BM25 ranks documents by term frequency, saturated, and inverse document frequency.",
        "Retrieval-augmented generation grounds a language model's answer in passages.",
        "Café crème, naïve façade, résumé: accents are stripped by the uncased tokenizer.",
        "東京は日本の首都です。",
        "x",
        "",
        "FOLDOC is a searchable dictionary of acronyms, jargon, programming languages, tools, \
         architecture, operating systems, networking, theory, conventions, standards, \
         mathematics, telecoms, electronics, institutions, companies, projects, products and \
         history.",
        "Is the Eiffel Tower taller than the Statue of Liberty?",
        "def add(a, b):\n    return a + b",
        "The quick brown fox jumps over the lazy dog.",
        "",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    // Past max_seq_length (256 tokens): both sides must truncate the same way.
    s[19] = "kiln indexes every chunk twice, for words and for meaning. ".repeat(40);
    s
}

#[test]
fn twenty_sentences_match_sentence_transformers() {
    let Some(e) = embedder() else { return };
    let Some(py) = kiln_testing::python_importing("sentence_transformers") else {
        return;
    };
    let texts = sentences();
    let dir = kiln_testing::assets_dir().join("all-MiniLM-L6-v2");
    let script = kiln_testing::repo_root().join("scripts/embedder_reference.py");
    let mut child = Command::new(py)
        .arg(&script)
        .arg(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(serde_json::to_string(&texts).unwrap().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let want: Vec<Vec<f32>> = serde_json::from_slice(&out.stdout).unwrap();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let got = e.embed(&refs, 7).unwrap();
    let mut worst = 0f32;
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(g.len(), w.len(), "sentence {i}");
        let d = g
            .iter()
            .zip(w)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(
            d < 1e-4,
            "sentence {i} {:?}: max |diff| {d}",
            &texts[i][..texts[i].len().min(40)]
        );
        worst = worst.max(d);
    }
    eprintln!("embedder vs sentence-transformers: max |diff| {worst:.2e} over 20 sentences");
}
