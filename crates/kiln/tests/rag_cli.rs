//! `kiln rag` end to end on the real embedder: index a JSONL corpus, query it as JSON with
//! the corpus's own ids, SIGKILL an indexing run midway and find the last commit intact
//! (and the rerun finishing it), re-index to no change, delete by id.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{asset, kiln, kiln_json, run_kiln};
use kiln_rag::index::read_manifest;
use kiln_rag::RagIndex;

fn corpus(dir: &Path, n: usize) -> std::path::PathBuf {
    let topics = [
        "harbour", "volcano", "violin", "compiler", "glacier", "orchard",
    ];
    let lines: Vec<String> = (0..n)
        .map(|i| {
            let t = topics[i % topics.len()];
            serde_json::json!({
                "id": format!("doc-{i}"),
                "title": format!("Note {i} on the {t}"),
                "text": format!(
                    "Entry {i} describes the {t} in detail. Marker word zq{i}x appears only \
                     here. The {t} has a long history, and this note records one more fact \
                     about it: item {i}."
                ),
            })
            .to_string()
        })
        .collect();
    let p = dir.join("corpus.jsonl");
    std::fs::write(&p, lines.join("\n") + "\n").unwrap();
    p
}

fn ok(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "kiln failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn index_query_reindex_and_delete() {
    if asset(
        "all-MiniLM-L6-v2/model.safetensors",
        "scripts/fetch-assets.sh",
    )
    .is_none()
    {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let input = corpus(dir.path(), 12);
    let index = dir.path().join("index");
    let idx = |extra: &[&str]| {
        let mut args = vec![
            "rag",
            "index",
            "--input",
            input.to_str().unwrap(),
            "--index",
            index.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        ok(&run_kiln(&args))
    };
    let first = idx(&[]);
    assert!(
        first.contains("12 documents") && first.contains("12 added"),
        "{first}"
    );

    let q = |query: &str, mode: &str| {
        kiln_json([
            "rag",
            "query",
            "--index",
            index.to_str().unwrap(),
            "--query",
            query,
            "--mode",
            mode,
            "--top-k",
            "3",
            "--json",
        ])
    };
    for mode in ["bm25", "dense", "hybrid"] {
        let v = q("zq7x", mode);
        let results = v["results"].as_array().unwrap();
        assert!(!results.is_empty() && results.len() <= 3, "{v}");
        for r in results {
            for field in ["doc_id", "chunk_id", "score", "text"] {
                assert!(!r[field].is_null(), "{mode}: {field} missing in {r}");
            }
        }
        if mode != "dense" {
            assert_eq!(results[0]["doc_id"], "doc-7", "{mode}");
            assert_eq!(results[0]["chunk_id"], "doc-7#0");
        }
    }

    let again = idx(&[]);
    assert!(
        again.contains("0 added, 0 updated, 12 unchanged"),
        "{again}"
    );

    let del = ok(&run_kiln([
        "rag",
        "delete",
        "--index",
        index.to_str().unwrap(),
        "--id",
        "doc-7",
    ]));
    assert!(
        del.contains("deleted 1") && del.contains("11 documents"),
        "{del}"
    );
    let v = q("zq7x", "bm25");
    assert!(
        v["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["doc_id"] != "doc-7"),
        "{v}"
    );

    let bad = run_kiln([
        "rag",
        "query",
        "--index",
        index.to_str().unwrap(),
        "--query",
        "x",
        "--mode",
        "bm42",
    ]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("expected bm25, dense, hybrid"));
    let missing = run_kiln([
        "rag",
        "index",
        "--input",
        "/nonexistent/docs",
        "--index",
        index.to_str().unwrap(),
    ]);
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/nonexistent/docs"));
}

#[test]
fn killing_indexing_midway_keeps_the_last_commit() {
    if asset(
        "all-MiniLM-L6-v2/model.safetensors",
        "scripts/fetch-assets.sh",
    )
    .is_none()
    {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let n = 400;
    let input = corpus(dir.path(), n);
    let index = dir.path().join("index");
    let mut child = kiln()
        .args([
            "rag",
            "index",
            "--input",
            input.to_str().unwrap(),
            "--index",
            index.to_str().unwrap(),
        ])
        .args(["--commit-every", "25", "--batch-size", "8"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Kill once a second commit is in place (more are still to come).
    let start = Instant::now();
    loop {
        let g = read_manifest(&index)
            .ok()
            .flatten()
            .map_or(0, |m| m.generation);
        if g >= 2 {
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "indexing finished before it could be killed"
        );
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "no second commit after 5 minutes"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();

    let opened = RagIndex::open(&index).unwrap();
    let committed = opened.docs.len();
    assert!(
        committed > 0 && committed < n && committed.is_multiple_of(25),
        "{committed} documents"
    );
    assert_eq!(opened.bm25.len() as usize, opened.chunks.len());
    assert_eq!(opened.manifest.documents, committed);
    let rest = ok(&run_kiln([
        "rag",
        "index",
        "--input",
        input.to_str().unwrap(),
        "--index",
        index.to_str().unwrap(),
    ]));
    assert!(
        rest.contains(&format!(
            "{} added, 0 updated, {committed} unchanged",
            n - committed
        )),
        "{rest}"
    );
    assert_eq!(RagIndex::open(&index).unwrap().docs.len(), n);
}
