#!/usr/bin/env python3
"""Reference outputs from llama.cpp (via llama-cpp-python) for kiln's parity tests.

Reads one JSON request on stdin and prints one JSON answer:
  {"op": "tokenize", "model": PATH, "texts": [...], "add_special": bool, "parse_special": bool}
      -> {"ids": [[...], ...]}
  {"op": "greedy", "model": PATH, "prompts": [...], "n": 64}
      -> {"ids": [[...], ...]}          (prompt tokenized with add_special, parse_special)
  {"op": "logits", "model": PATH, "prompt": TEXT}
      -> {"ids": [...], "logits": [...]}  (last position)
"""
import json
import sys

import llama_cpp
from llama_cpp import Llama


def load(path, logits_all=False, vocab_only=False):
    return Llama(model_path=path, n_ctx=2048, n_threads=2, n_batch=512, verbose=False,
                 logits_all=logits_all, vocab_only=vocab_only, seed=0)


def main():
    req = json.load(sys.stdin)
    op = req["op"]
    if op == "tokenize":
        llm = load(req["model"], vocab_only=True)
        ids = [llm.tokenize(t.encode("utf-8"), add_bos=req.get("add_special", False),
                            special=req.get("parse_special", False)) for t in req["texts"]]
        print(json.dumps({"ids": ids}))
    elif op == "greedy":
        llm = load(req["model"])
        out = []
        for p in req["prompts"]:
            toks = llm.tokenize(p.encode("utf-8"), add_bos=True, special=True)
            llm.reset()
            gen = []
            for t in llm.generate(toks, temp=0.0, top_k=1, reset=True):
                gen.append(t)
                if len(gen) == req["n"]:
                    break
            out.append(gen)
        print(json.dumps({"ids": out}))
    elif op == "logits":
        llm = load(req["model"])
        toks = llm.tokenize(req["prompt"].encode("utf-8"), add_bos=True, special=True)
        llm.reset()
        llm.eval(toks)
        n_vocab = llm.n_vocab()
        ptr = llama_cpp.llama_get_logits_ith(llm.ctx, -1)
        logits = [float(ptr[i]) for i in range(n_vocab)]
        print(json.dumps({"ids": toks, "logits": logits}))
    else:
        raise SystemExit(f"unknown op {op}")


if __name__ == "__main__":
    main()
