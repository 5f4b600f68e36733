#!/usr/bin/env python3
"""Scores OLMES multiple-choice request files with llama.cpp (llama-cpp-python), the way
`kiln eval run` scores them, as the reference for kiln's eval parity and speed.

Same questions (unconditional requests left out), same tokenization (lm-evaluation-
harness's split: the context's trailing whitespace moves to the continuation, the whole
text is tokenized once and the continuation is what follows the context's own tokens),
same metrics (acc: highest summed log-likelihood; acc_norm: per character of the
continuation; ties to the first choice). Each question's shared context is evaluated once
and every choice continues from it (the KV cache truncated back to the context).

Usage: olmes_llama_cpp.py MODEL.gguf REQUESTS.jsonl.gz [--offset K] [--limit N]
                          [--threads 2] [--samples OUT.jsonl]
       olmes_llama_cpp.py --count REQUESTS.jsonl.gz
Prints one JSON line: {"n", "acc", "acc_norm", "seconds", "items_per_second"} (seconds from
the first question, model loading left out), or with --count the number of questions.
"""
import argparse
import gzip
import json
import sys
import time
from collections import defaultdict

import numpy as np
from llama_cpp import Llama


def read_items(path):
    config = path.rsplit("/", 1)[0] + "/config.json"
    try:
        offset = json.load(open(config))["task_config"]["metric_kwargs"]["uncond_docid_offset"]
    except (OSError, KeyError, TypeError):
        offset = None
    docs = defaultdict(list)
    gold = {}
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt") as f:
        for line in f:
            r = json.loads(line)
            if offset is not None and r["doc_id"] >= offset:
                continue
            docs[r["doc_id"]].append((r["idx"], r["request"]["context"], r["request"]["continuation"]))
            gold[r["doc_id"]] = r["label"]
    return [(d, [c[1:] for c in sorted(docs[d])], gold[d]) for d in sorted(docs)]


def split(llm, context, continuation):
    trimmed = context.rstrip()
    continuation = context[len(trimmed):] + continuation
    whole = llm.tokenize((trimmed + continuation).encode("utf-8"), add_bos=True, special=False)
    n_ctx = max(1, len(llm.tokenize(trimmed.encode("utf-8"), add_bos=True, special=False)))
    return whole, n_ctx


def log_softmax(rows):
    m = rows.max(axis=1, keepdims=True)
    return rows - m - np.log(np.exp(rows - m).sum(axis=1, keepdims=True))


def continuation_logprob(llm, tokens, n_ctx):
    rows = llm.scores[n_ctx - 1:len(tokens) - 1].astype(np.float64)
    lp = log_softmax(rows)
    return float(lp[np.arange(len(tokens) - n_ctx), tokens[n_ctx:]].sum())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("requests", nargs="?")
    ap.add_argument("--count", action="store_true", help="print the number of questions")
    ap.add_argument("--offset", type=int, default=0, help="skip the first K questions")
    ap.add_argument("--limit", type=int)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--samples")
    a = ap.parse_args()
    if a.count:
        print(len(read_items(a.requests or a.model)))
        return 0
    items = read_items(a.requests)[a.offset:]
    items = items[: a.limit] if a.limit is not None else items
    llm = Llama(model_path=a.model, n_ctx=2048, n_threads=a.threads, n_threads_batch=a.threads,
                n_batch=512, logits_all=True, verbose=False)
    out = open(a.samples, "w") if a.samples else None
    acc = acc_norm = 0
    start = time.time()
    for doc_id, choices, gold in items:
        split_choices = [split(llm, c, k) for c, k in choices]
        shared = all(n == split_choices[0][1] and t[:n] == split_choices[0][0][:n]
                     for t, n in split_choices)
        lps = []
        for i, (tokens, n_ctx) in enumerate(split_choices):
            if shared and i > 0:
                llm.n_tokens = n_ctx  # keep the context, drop the last continuation
                llm.eval(tokens[n_ctx:])
            else:
                llm.reset()
                llm.eval(tokens)
            lps.append(continuation_logprob(llm, tokens, n_ctx))
        chars = [len(k) for _, k in choices]
        pred = int(np.argmax(lps))
        pred_norm = int(np.argmax([lp / max(c, 1) for lp, c in zip(lps, chars)]))
        acc += pred == gold
        acc_norm += pred_norm == gold
        if out:
            out.write(json.dumps({"doc_id": doc_id, "logprobs": lps, "pred": pred,
                                  "pred_norm": pred_norm, "gold": gold}) + "\n")
    seconds = time.time() - start
    n = len(items)
    print(json.dumps({"n": n, "acc": acc / n, "acc_norm": acc_norm / n, "seconds": seconds,
                      "items_per_second": n / seconds}))


if __name__ == "__main__":
    sys.exit(main())
