#!/usr/bin/env bash
# The fine-tuning example end to end on SmolLM2-135M-Instruct Q4_1 (QLoRA, 2 threads):
# FOLDOC entries -> 8-way category task; the base is evaluated, LoRA-SFT on 1,000 examples,
# evaluated again (paired difference with a bootstrap interval), then preference pairs are
# sampled from the SFT model and scored against the known category, DPO continues the SFT
# adapter on them, and the DPO model is evaluated against the SFT model.
#
# Usage: examples/foldoc-category/run.sh [OUT_DIR]     (default runs/foldoc)
# Needs `kiln` on PATH (or KILN=path/to/kiln) and scripts/fetch-assets.sh's SmolLM2 and
# FOLDOC. About 40 minutes of SFT, a few of evaluation and sampling, ~10 of DPO.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HERE/../pipeline.sh"
DICT="$ASSETS/foldoc/foldoc.dict.dz"
OUT="${1:-runs/foldoc}"
need_assets "$MODEL" "$DICT"

mkdir -p "$OUT"
python3 "$HERE/prepare.py" "$DICT" "$OUT"
copy_configs "$HERE" sft dpo
# "contains" counts an answer given in a sentence, or among several: lenient to the base.
EVAL=(finetune eval -m "$MODEL" --data "$OUT/test.jsonl" --scorer contains --max-tokens 24)

base_then_sft
sample_pairs --scorer exact --max-tokens 8
dpo_then_eval
