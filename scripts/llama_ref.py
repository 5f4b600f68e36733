#!/usr/bin/env python3
"""Reference outputs from llama.cpp (via llama-cpp-python) for kiln's parity tests.

Reads one JSON request on stdin and prints one JSON answer:
  {"op": "tokenize", "model": PATH, "texts": [...], "add_special": bool, "parse_special": bool}
      -> {"ids": [[...], ...]}
  {"op": "greedy", "model": PATH, "prompts": [...], "n": 64}
      -> {"ids": [[...], ...], "prompt_ids": [[...], ...]}
         (greedy, EOS ignored; prompt tokenized with add_special, parse_special)
  {"op": "logits", "model": PATH, "prompt": TEXT}   (or "ids": [...] instead of "prompt")
      -> {"ids": [...], "logits": [...]}  (last position)
"""
import json
import sys

import llama_cpp
import numpy as np
from llama_cpp import Llama


def load(path, logits_all=False, vocab_only=False):
    return Llama(model_path=path, n_ctx=2048, n_threads=2, n_batch=512, verbose=False,
                 logits_all=logits_all, vocab_only=vocab_only, seed=0)


def last_logits(llm, n_vocab):
    """The logits of the last evaluated position, as a numpy array (a copy)."""
    ptr = llama_cpp.llama_get_logits_ith(llm.ctx, -1)
    return np.ctypeslib.as_array(ptr, shape=(n_vocab,)).copy()


def main():
    req = json.load(sys.stdin)
    op = req["op"]
    if op == "tokenize":
        llm = load(req["model"], vocab_only=True)
        ids = [llm.tokenize(t.encode("utf-8"), add_bos=req.get("add_special", False),
                            special=req.get("parse_special", False)) for t in req["texts"]]
        print(json.dumps({"ids": ids}))
    elif op == "greedy":
        # Plain greedy continuation, EOS ignored: each prompt is a clean evaluation from an
        # empty cache, then argmax of the last logits, one token at a time.
        llm = load(req["model"])
        n_vocab = llm.n_vocab()
        out, prompts = [], []
        for p in req["prompts"]:
            toks = llm.tokenize(p.encode("utf-8"), add_bos=True, special=True)
            llm.reset()
            llm.eval(toks)
            gen = []
            while len(gen) < req["n"]:
                t = int(np.argmax(last_logits(llm, n_vocab)))
                gen.append(t)
                if len(gen) < req["n"]:
                    llm.eval([t])
            prompts.append(toks)
            out.append(gen)
        print(json.dumps({"ids": out, "prompt_ids": prompts}))
    elif op == "logits":
        llm = load(req["model"])
        if "ids" in req:
            toks = [int(t) for t in req["ids"]]
        else:
            toks = llm.tokenize(req["prompt"].encode("utf-8"), add_bos=True, special=True)
        llm.reset()
        llm.eval(toks)
        logits = [float(x) for x in last_logits(llm, llm.n_vocab())]
        print(json.dumps({"ids": toks, "logits": logits}))
    else:
        raise SystemExit(f"unknown op {op}")


if __name__ == "__main__":
    main()
