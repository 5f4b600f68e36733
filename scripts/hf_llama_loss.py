#!/usr/bin/env python3
"""Loads kiln run directories in Hugging Face transformers and scores one batch (issue 3,
acceptance 5: a llama-style run directory is a standard Llama directory).

Reads one JSON request on stdin:
    {"models": ["runs/llama-style", ...],
     "input_ids": [[...], ...],   # (batch, T) token ids
     "targets":   [[...], ...]}   # (batch, T) next-token ids
and prints one JSON object:
    {"losses": [mean cross-entropy per model], "transformers": "x.y.z", "torch": "x.y.z"}

Each model loads with `LlamaForCausalLM.from_pretrained(dir, dtype=float32)` (transformers
4.x calls the argument `torch_dtype`); loading must not report missing or unexpected weights.
The loss is the mean over all batch x T positions of -log softmax(logits)[target], computed
in float32 as the model runs, then reported as a Python float.

    echo '{"models": ["runs/llama-style"], "input_ids": [[1, 2]], "targets": [[2, 3]]}' \\
        | ~/.cache/kiln/venv/bin/python scripts/hf_llama_loss.py
"""

import json
import sys

import torch
import transformers
from transformers import LlamaForCausalLM


def load(path):
    major = int(transformers.__version__.split(".")[0])
    dtype_arg = {"dtype": torch.float32} if major >= 5 else {"torch_dtype": torch.float32}
    model, info = LlamaForCausalLM.from_pretrained(
        path, output_loading_info=True, **dtype_arg
    )
    bad = {k: v for k, v in info.items() if v and k in ("missing_keys", "unexpected_keys", "mismatched_keys")}
    if bad:
        raise SystemExit(f"{path}: weights do not match LlamaForCausalLM: {bad}")
    return model.eval()


def main():
    req = json.load(sys.stdin)
    torch.manual_seed(0)
    inputs = torch.tensor(req["input_ids"], dtype=torch.long)
    targets = torch.tensor(req["targets"], dtype=torch.long)
    losses = []
    with torch.no_grad():
        for path in req["models"]:
            model = load(path)
            logits = model(input_ids=inputs).logits  # (batch, T, vocab), float32
            loss = torch.nn.functional.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), targets.reshape(-1)
            )
            losses.append(loss.item())
    print(json.dumps({"losses": losses, "transformers": transformers.__version__, "torch": torch.__version__}))


if __name__ == "__main__":
    main()
