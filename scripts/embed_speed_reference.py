#!/usr/bin/env python3
"""Speed peer for `kiln rag index`: sentence-transformers embedding the very chunks a kiln
index holds (title prefixed as kiln embeds them), on the same number of threads.

Usage: embed_speed_reference.py MODEL_DIR INDEX_DIR [--threads 2] [--batch-size 32]
Prints one JSON line: {"chunks", "documents", "seconds", "chunks_per_second",
"docs_per_second"} (encoding only: no chunking, no BM25, no writing, so it is a lower bound
on what the peer would take to build the same index).
"""
import argparse
import json
import sys
import time


def indexed_text(title, chunk):
    return chunk if not title or chunk.lstrip().startswith(title) else f"{title}\n{chunk}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("index")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=32)
    a = ap.parse_args()
    import torch
    torch.set_num_threads(a.threads)
    from sentence_transformers import SentenceTransformer

    gen = json.load(open(f"{a.index}/manifest.json"))["generation"]
    docs = [json.loads(l) for l in open(f"{a.index}/gen-{gen}/docs.jsonl")]
    chunks = [json.loads(l) for l in open(f"{a.index}/gen-{gen}/chunks.jsonl")]
    title = {d["id"]: d["title"] for d in docs}
    texts = [indexed_text(title[c["doc_id"]], c["text"]) for c in chunks]
    model = SentenceTransformer(a.model, device="cpu")
    model.encode(texts[:8])  # warm-up
    start = time.time()
    model.encode(texts, batch_size=a.batch_size, convert_to_numpy=True)
    s = time.time() - start
    print(json.dumps({"chunks": len(texts), "documents": len(docs), "seconds": s,
                      "chunks_per_second": len(texts) / s, "docs_per_second": len(docs) / s}))


if __name__ == "__main__":
    sys.exit(main())
