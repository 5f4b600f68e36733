//! The index directory end to end on the real embedder: retrieval in each mode, re-indexing
//! that changes nothing, updates and deletes reaching BM25 and vectors both, an interrupted
//! commit leaving the last good generation, and the errors for another embedder, corrupt
//! files and unreadable input.

use std::path::Path;

use kiln_rag::index::{read_manifest, MANIFEST};
use kiln_rag::loaders::load_paths;
use kiln_rag::{
    delete_documents, index_documents, Document, Embedder, IndexOptions, Mode, RagIndex, Retriever,
};

fn embedder() -> Option<Embedder> {
    let w = kiln_testing::asset(
        "all-MiniLM-L6-v2/model.safetensors",
        "scripts/fetch-assets.sh",
    )?;
    Some(Embedder::load(w.parent().unwrap()).unwrap())
}

const CORPUS: [(&str, &str, &str); 8] = [
    ("volcano", "Volcanoes", "A volcano is a rupture in the crust of a planet where lava, ash and gases escape from a magma chamber below the surface."),
    ("espresso", "Espresso", "Espresso is coffee brewed by forcing a small amount of nearly boiling water under pressure through finely ground coffee beans."),
    ("tcp", "Transmission Control Protocol", "TCP provides reliable, ordered delivery of a stream of bytes between applications over an IP network, with retransmission of lost segments."),
    ("penguin", "Penguins", "Penguins are flightless seabirds of the southern hemisphere; their wings became flippers for swimming."),
    ("bm25", "Okapi BM25", "BM25 ranks documents by the frequency of query terms, saturated, weighted by inverse document frequency and normalised by document length."),
    ("sourdough", "Sourdough", "Sourdough bread is leavened by a starter of wild yeast and lactic acid bacteria instead of baker's yeast."),
    ("glacier", "Glaciers", "A glacier is a persistent body of dense ice that moves under its own weight, carving valleys as it flows."),
    ("rust", "Rust (programming language)", "Rust is a systems programming language whose ownership and borrowing rules give memory safety without a garbage collector."),
];

fn corpus() -> Vec<Document> {
    CORPUS
        .iter()
        .map(|(id, title, text)| Document {
            id: id.to_string(),
            title: title.to_string(),
            source: "corpus.jsonl".into(),
            offset: 0,
            text: text.to_string(),
            meta: [(
                "kind".to_string(),
                if *id == "rust" || *id == "tcp" || *id == "bm25" {
                    "computing"
                } else {
                    "nature"
                }
                .to_string(),
            )]
            .into_iter()
            .collect(),
        })
        .collect()
}

fn opts() -> IndexOptions {
    IndexOptions {
        commit_every: 3,
        ..Default::default()
    }
}

fn top_doc(index: &RagIndex, e: &Embedder, q: &str, mode: Mode) -> String {
    let r = Retriever::new(index, e).unwrap();
    let hits = r.search(q, mode, 3, &[]).unwrap();
    index.doc_of(hits[0].row).id.clone()
}

fn files_of(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let m = read_manifest(dir).unwrap().unwrap();
    let g = dir.join(format!("gen-{}", m.generation));
    ["docs.jsonl", "chunks.jsonl", "vectors.f32"]
        .iter()
        .map(|f| (f.to_string(), std::fs::read(g.join(f)).unwrap()))
        .collect()
}

#[test]
fn each_mode_finds_the_document_a_question_is_about() {
    let Some(e) = embedder() else { return };
    let dir = tempfile::tempdir().unwrap();
    let report = index_documents(dir.path(), &e, corpus(), &opts(), &|_, _| {}).unwrap();
    assert_eq!((report.added, report.documents), (8, 8));
    // Three commits of at most three documents each.
    assert_eq!(report.generation, Some(3));
    let index = RagIndex::open(dir.path()).unwrap();
    assert_eq!(index.bm25.len() as usize, index.chunks.len());
    for mode in [
        Mode::Bm25,
        Mode::Dense,
        Mode::Hybrid,
        Mode::Weighted { alpha: 0.5 },
    ] {
        assert_eq!(
            top_doc(&index, &e, "how does a magma chamber erupt lava", mode),
            "volcano",
            "{mode:?}"
        );
        assert_eq!(
            top_doc(&index, &e, "memory safety without garbage collection", mode),
            "rust",
            "{mode:?}"
        );
    }
    // Words absent from the corpus: only meaning can find it.
    assert_eq!(
        top_doc(
            &index,
            &e,
            "birds that cannot fly and live near Antarctica",
            Mode::Dense
        ),
        "penguin"
    );
    // Filters apply inside each search.
    let r = Retriever::new(&index, &e).unwrap();
    for mode in [Mode::Bm25, Mode::Dense, Mode::Hybrid] {
        let hits = r
            .search("bread coffee ice", mode, 10, &["kind=computing".into()])
            .unwrap();
        assert!(
            hits.iter()
                .all(|h| index.doc_of(h.row).meta["kind"] == "computing"),
            "{mode:?}"
        );
    }
}

#[test]
fn reindexing_is_idempotent_and_updates_and_deletes_reach_both_searches() {
    let Some(e) = embedder() else { return };
    let dir = tempfile::tempdir().unwrap();
    index_documents(dir.path(), &e, corpus(), &opts(), &|_, _| {}).unwrap();
    let before = files_of(dir.path());
    let again = index_documents(dir.path(), &e, corpus(), &opts(), &|_, _| {}).unwrap();
    assert_eq!(
        (
            again.unchanged,
            again.added,
            again.updated,
            again.chunks_embedded
        ),
        (8, 0, 0, 0)
    );
    assert_eq!(files_of(dir.path()), before);

    let mut changed = corpus();
    changed[1].text =
        "Espresso machines need descaling: limescale from hard water clogs the boiler.".into();
    let up = index_documents(dir.path(), &e, changed, &opts(), &|_, _| {}).unwrap();
    assert_eq!((up.updated, up.unchanged, up.chunks_embedded), (1, 7, 1));
    let index = RagIndex::open(dir.path()).unwrap();
    assert_eq!(
        top_doc(&index, &e, "limescale descaling", Mode::Bm25),
        "espresso"
    );

    let (del, missing) =
        delete_documents(dir.path(), &e, &["glacier".into(), "nope".into()]).unwrap();
    assert_eq!((del.deleted, del.documents), (1, 7));
    assert_eq!(missing, ["nope"]);
    let index = RagIndex::open(dir.path()).unwrap();
    let r = Retriever::new(&index, &e).unwrap();
    assert!(r
        .bm25("glacier ice valleys carving", 10, &[])
        .unwrap()
        .iter()
        .all(|h| index.doc_of(h.row).id != "glacier"));
    let dense = r.dense(
        &r.embed_query("a persistent body of dense ice").unwrap(),
        10,
        &[],
    );
    assert_eq!(dense.len(), index.chunks.len());
    assert!(dense.iter().all(|h| index.doc_of(h.row).id != "glacier"));
    assert_eq!(index.vectors.row(0).len(), 384);
}

#[test]
fn an_interrupted_commit_leaves_the_last_good_generation() {
    let Some(e) = embedder() else { return };
    let dir = tempfile::tempdir().unwrap();
    index_documents(
        dir.path(),
        &e,
        corpus()[..4].to_vec(),
        &IndexOptions::default(),
        &|_, _| {},
    )
    .unwrap();
    let good = files_of(dir.path());
    // What a crash mid-commit leaves: the next generation half written, the manifest not
    // yet replaced (and a stray temporary manifest).
    let g2 = dir.path().join("gen-2");
    std::fs::create_dir_all(g2.join("bm25")).unwrap();
    std::fs::write(g2.join("docs.jsonl"), "{\"id\": \"half").unwrap();
    std::fs::write(dir.path().join(format!("{MANIFEST}.tmp")), "{").unwrap();
    let index = RagIndex::open(dir.path()).unwrap();
    assert_eq!(index.docs.len(), 4);
    assert_eq!(files_of(dir.path()), good);
    // The next commit writes over the leftovers.
    let r = index_documents(
        dir.path(),
        &e,
        corpus(),
        &IndexOptions::default(),
        &|_, _| {},
    )
    .unwrap();
    assert_eq!((r.added, r.unchanged, r.generation), (4, 4, Some(2)));
    assert_eq!(RagIndex::open(dir.path()).unwrap().docs.len(), 8);
    assert!(!dir.path().join("gen-1").exists());
}

#[test]
fn another_embedder_and_corrupt_files_are_refused_with_reasons() {
    let Some(e) = embedder() else { return };
    let dir = tempfile::tempdir().unwrap();
    index_documents(
        dir.path(),
        &e,
        corpus()[..2].to_vec(),
        &IndexOptions::default(),
        &|_, _| {},
    )
    .unwrap();
    let m = dir.path().join(MANIFEST);
    let original = std::fs::read_to_string(&m).unwrap();

    let other = original
        .replace("all-MiniLM-L6-v2", "bge-small-en")
        .replace(&e.sha256, &"ab".repeat(32));
    std::fs::write(&m, other).unwrap();
    let index = RagIndex::open(dir.path()).unwrap();
    let err = Retriever::new(&index, &e).err().unwrap().to_string();
    assert!(
        err.contains("built with embedder bge-small-en")
            && err.contains("this is all-MiniLM-L6-v2"),
        "{err}"
    );
    let err = index_documents(
        dir.path(),
        &e,
        corpus(),
        &IndexOptions::default(),
        &|_, _| {},
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("bge-small-en"), "{err}");
    std::fs::write(&m, &original).unwrap();

    let g = dir.path().join("gen-1");
    let v = std::fs::read(g.join("vectors.f32")).unwrap();
    std::fs::write(g.join("vectors.f32"), &v[..v.len() - 4]).unwrap();
    let err = RagIndex::open(dir.path()).err().unwrap().to_string();
    assert!(err.contains("vector file holds"), "{err}");
    std::fs::write(g.join("vectors.f32"), &v).unwrap();

    let chunks = std::fs::read_to_string(g.join("chunks.jsonl")).unwrap();
    std::fs::write(g.join("chunks.jsonl"), chunks.replacen("{", "[", 1)).unwrap();
    let err = RagIndex::open(dir.path()).err().unwrap().to_string();
    assert!(err.contains("chunks.jsonl:1: corrupt index file"), "{err}");
    std::fs::write(g.join("chunks.jsonl"), &chunks).unwrap();

    std::fs::write(&m, "{\"format\": 1").unwrap();
    let err = RagIndex::open(dir.path()).err().unwrap().to_string();
    assert!(err.contains("manifest.json is corrupt"), "{err}");
    let err = RagIndex::open(&dir.path().join("nowhere"))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("not an index"), "{err}");
}

#[test]
fn unreadable_and_empty_inputs_are_listed_and_the_rest_load() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("a.txt"), "Plain text document.").unwrap();
    std::fs::write(d.join("b.md"), "# Heading\nMarkdown body.").unwrap();
    std::fs::write(
        d.join("c.html"),
        "<title>Page</title><p>Hello &amp; welcome</p>",
    )
    .unwrap();
    std::fs::write(d.join("empty.txt"), "  \n").unwrap();
    std::fs::write(d.join("binary.bin"), [0xff, 0xfe, 0x00, 0x81]).unwrap();
    std::fs::write(
        d.join("docs.jsonl"),
        "{\"id\": \"j1\", \"title\": \"J\", \"text\": \"first\"}\n{\"id\": 2, \"text\": }\n",
    )
    .unwrap();
    std::fs::write(
        d.join("more.jsonl"),
        "{\"id\": 7, \"text\": \"seven\", \"meta\": {\"year\": 2020}}\n",
    )
    .unwrap();
    let loaded = load_paths(&[d.to_path_buf()]).unwrap();
    let ids: Vec<&str> = loaded.documents.iter().map(|x| x.id.as_str()).collect();
    assert_eq!(ids.len(), 4, "{ids:?}");
    assert!(ids.contains(&"7") && ids.iter().any(|i| i.ends_with("c.html")));
    let html = loaded
        .documents
        .iter()
        .find(|x| x.id.ends_with("c.html"))
        .unwrap();
    assert_eq!(
        (html.title.as_str(), html.text.as_str()),
        ("Page", "Hello & welcome")
    );
    assert_eq!(
        loaded.documents.iter().find(|x| x.id == "7").unwrap().meta["year"],
        "2020"
    );
    let reasons: Vec<String> = loaded
        .skipped
        .iter()
        .map(|(p, r)| format!("{}: {r}", p.display()))
        .collect();
    assert_eq!(reasons.len(), 3, "{reasons:?}");
    assert!(reasons
        .iter()
        .any(|r| r.contains("binary.bin") && r.contains("not UTF-8")));
    assert!(reasons.iter().any(|r| r.contains("docs.jsonl:2")));
    assert!(reasons
        .iter()
        .any(|r| r.contains("empty.txt") && r.contains("is empty")));
    assert!(load_paths(&[d.join("missing")]).is_err());
}
