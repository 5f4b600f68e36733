#!/usr/bin/env bash
# The DPO example end to end on SmolLM2-135M-Instruct Q4_1 (QLoRA, 2 threads): generated
# word problems of two to four arithmetic steps (prepare.py, no download); the base is
# evaluated, LoRA-SFT on 1,000 worked solutions, evaluated again; then the SFT model samples
# four solutions per new problem, one ending in the right number is paired against one that
# does not, each pair is cut after its first differing line (step_pairs.py: Step-DPO), DPO
# continues the SFT adapter on the step pairs, and the DPO model is evaluated against the
# SFT model (paired differences with bootstrap intervals).
#
# Usage: examples/word-arithmetic/run.sh [OUT_DIR]     (default runs/word-arithmetic)
# Needs `kiln` on PATH (or KILN=path/to/kiln) and scripts/fetch-assets.sh's SmolLM2.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HERE/../pipeline.sh"
OUT="${1:-runs/word-arithmetic}"
need_assets "$MODEL"

mkdir -p "$OUT"
python3 "$HERE/prepare.py" "$OUT"
copy_configs "$HERE" sft dpo dpo_slips
# The last number of the answer counts, as for GSM8K.
EVAL=(finetune eval -m "$MODEL" --data "$OUT/test.jsonl" --scorer number --max-tokens 128)

base_then_sft
sample_pairs --scorer number --max-tokens 128
python3 "$HERE/step_pairs.py" "$OUT/prefs.jsonl" "$OUT/step_prefs.jsonl"
dpo_then_eval
