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
KILN="${KILN:-kiln}"
ASSETS="${KILN_ASSETS:-$HOME/.cache/kiln/assets}"
MODEL="$ASSETS/SmolLM2-135M-Instruct.Q4_1.gguf"
DICT="$ASSETS/foldoc/foldoc.dict.dz"
OUT="${1:-runs/foldoc}"
for f in "$MODEL" "$DICT"; do
  [ -f "$f" ] || { echo "missing $f: run scripts/fetch-assets.sh" >&2; exit 1; }
done

mkdir -p "$OUT"
python3 "$HERE/prepare.py" "$DICT" "$OUT"
for c in sft dpo; do
  sed "s#\"MODEL\"#\"$MODEL\"#" "$HERE/$c.toml" > "$OUT/$c.toml"
done
run() { echo "+ $*" >&2; "$@"; }
# "contains" counts an answer given in a sentence, or among several: lenient to the base.
EVAL=(finetune eval -m "$MODEL" --data "$OUT/test.jsonl" --scorer contains --max-tokens 24)

run "$KILN" --threads 2 "${EVAL[@]}" --out "$OUT/base.json"
run "$KILN" --threads 2 finetune sft --config "$OUT/sft.toml" --out "$OUT/sft"
run "$KILN" --threads 2 "${EVAL[@]}" --adapter "$OUT/sft" --out "$OUT/sft.json" --compare "$OUT/base.json"
run "$KILN" --threads 2 data prefs -m "$MODEL" --adapter "$OUT/sft" --prompts "$OUT/dpo_prompts.jsonl" \
  --samples 4 --scorer exact --temperature 1.0 --top-k 0 --top-p 1 --min-p 0 --max-tokens 8 \
  --out "$OUT/prefs.jsonl"
run "$KILN" --threads 2 finetune dpo --config "$OUT/dpo.toml" --out "$OUT/dpo"
run "$KILN" --threads 2 "${EVAL[@]}" --adapter "$OUT/dpo" --out "$OUT/dpo.json" --compare "$OUT/sft.json"
