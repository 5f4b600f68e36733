//! The golden-set builder: BoolQ requests parsed into passage and question, one relevant
//! passage per query, test and dev queries on disjoint passages, FOLDOC entries (read
//! through the dictd index) as distractors; and golden files with bad lines refused.

use std::collections::HashSet;
use std::io::Write;
use std::path::Path;

use kiln_rag::golden::{build_golden, read_boolq, read_golden, GoldenOptions};

const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn b64(mut n: usize) -> String {
    let mut s = vec![];
    loop {
        s.push(B64[n % 64]);
        n /= 64;
        if n == 0 {
            break;
        }
    }
    s.reverse();
    String::from_utf8(s).unwrap()
}

fn write_dictd(dir: &Path, entries: &[(&str, &str)]) -> std::path::PathBuf {
    let mut body = String::new();
    let mut index = String::from("00-database-short\tA\tB\n");
    body.push_str("x\n");
    for (head, text) in entries {
        let entry = format!("{head}\n\n   {text}\n\n");
        index.push_str(&format!(
            "{head}\t{}\t{}\n",
            b64(body.len()),
            b64(entry.len())
        ));
        body.push_str(&entry);
    }
    let dict = dir.join("toy.dict.dz");
    let mut gz = flate2::write::GzEncoder::new(
        std::fs::File::create(&dict).unwrap(),
        flate2::Compression::default(),
    );
    gz.write_all(body.as_bytes()).unwrap();
    gz.finish().unwrap();
    std::fs::write(dir.join("toy.index"), index).unwrap();
    dict
}

fn write_boolq(dir: &Path) -> std::path::PathBuf {
    let p = dir.join("boolq.jsonl.gz");
    let mut gz = flate2::write::GzEncoder::new(
        std::fs::File::create(&p).unwrap(),
        flate2::Compression::default(),
    );
    let passages = [
        "Alpha -- The alpha passage text.",
        "Beta -- Beta is about bees.",
        "Gamma -- Gamma rays are energetic.",
    ];
    for doc in 0..6usize {
        let ctx = format!(
            "{}\nQuestion: question number {doc}?\nAnswer:",
            passages[doc % 3]
        );
        for (idx, cont) in [" yes", " no"].iter().enumerate() {
            let line = serde_json::json!({"doc_id": doc, "idx": idx, "label": doc % 2,
                "request": {"context": ctx, "continuation": cont}});
            writeln!(gz, "{line}").unwrap();
        }
    }
    gz.finish().unwrap();
    p
}

#[test]
fn boolq_questions_point_at_their_passage_and_splits_do_not_share_passages() {
    let dir = tempfile::tempdir().unwrap();
    let items = read_boolq(&write_boolq(dir.path())).unwrap();
    assert_eq!(items.len(), 6);
    assert_eq!(items[1].title, "Beta");
    assert_eq!(items[1].passage, "Beta is about bees.");
    assert_eq!(items[1].question, "question number 1?");
    assert!(items[0].answer && !items[1].answer);

    let foldoc = write_dictd(
        dir.path(),
        &[
            (
                "daemon",
                "A program that runs in the background, waiting for requests to serve.",
            ),
            (
                "kludge",
                "A clumsy but working fix, held together with tape, hope and good luck.",
            ),
            ("tiny", "Too short."),
        ],
    );
    let g = build_golden(
        &items,
        &foldoc,
        GoldenOptions {
            distractors: 10,
            queries: 10,
            seed: 3,
        },
    )
    .unwrap();
    let ids: Vec<&str> = g.corpus.iter().map(|d| d.id.as_str()).collect();
    // Three distinct passages, then the FOLDOC entries long enough to be distractors
    // (the metadata entry and the too-short one are left out).
    assert_eq!(&ids[..3], ["boolq-0", "boolq-1", "boolq-2"]);
    let mut rest: Vec<&str> = ids[3..].to_vec();
    rest.sort();
    assert_eq!(rest, ["foldoc:daemon", "foldoc:kludge"]);
    assert!(g.corpus[3].text.contains("   "));
    let test_passages: HashSet<&String> = g.test.iter().flat_map(|q| &q.relevant).collect();
    let dev_passages: HashSet<&String> = g.dev.iter().flat_map(|q| &q.relevant).collect();
    assert!(test_passages.is_disjoint(&dev_passages));
    assert_eq!(g.test.len() + g.dev.len(), 3, "one query per passage");
    for q in g.test.iter().chain(&g.dev) {
        let n: usize = q.id.trim_start_matches("boolq-q").parse().unwrap();
        assert_eq!(q.relevant, [format!("boolq-{}", n % 3)]);
        assert_eq!(q.query, format!("question number {n}?"));
    }
}

#[test]
fn golden_files_with_bad_lines_are_refused_with_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("g.jsonl");
    std::fs::write(&p, "{\"id\": \"a\", \"query\": \"q\", \"relevant\": [\"d1\"]}\n{\"id\": \"b\", \"query\": \"q\", \"relevant\": []}\n").unwrap();
    let e = read_golden(&p).unwrap_err().to_string();
    assert!(
        e.contains("g.jsonl:2") && e.contains("at least one relevant"),
        "{e}"
    );
    std::fs::write(&p, "{\"id\": \"a\"}\n").unwrap();
    assert!(read_golden(&p)
        .unwrap_err()
        .to_string()
        .contains("g.jsonl:1"));
}
