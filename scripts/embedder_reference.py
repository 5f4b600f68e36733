#!/usr/bin/env python3
"""Embeds sentences with sentence-transformers, the reference for kiln rag's embedder.

Usage: embedder_reference.py MODEL_DIR < sentences.json    (a JSON list of strings)
Prints a JSON list of embeddings (normalised, as the model's modules.json says).
"""
import json
import sys

from sentence_transformers import SentenceTransformer


def main():
    model = SentenceTransformer(sys.argv[1], device="cpu")
    sentences = json.load(sys.stdin)
    vectors = model.encode(sentences, batch_size=8, convert_to_numpy=True)
    json.dump([[float(x) for x in v] for v in vectors], sys.stdout)


if __name__ == "__main__":
    sys.exit(main())
