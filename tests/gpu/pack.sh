#!/usr/bin/env bash
# Build what tests/gpu/check.sh needs on a GPU machine without network: .gpu/cNN/part-NN, 60 MB
# each, one folder per call (the device tool carries at most 64 MB a call).
# Run from the repository root with the project's venv; .gpu/ is ignored by git.
set -euo pipefail
PY=${PY:-.venv/bin/python}
STAGE=.gpu/stage
rm -rf .gpu && mkdir -p "$STAGE/model" .gpu/wheels
platforms=()
for p in manylinux_2_35 manylinux_2_31 manylinux_2_28 manylinux_2_27 manylinux_2_17 manylinux2014 manylinux_2_5 manylinux1; do
  platforms+=(--platform "${p}_x86_64")
done
# The machine's python is 3.12; every wheel is fetched for it, not for this venv.
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 "${platforms[@]}" \
  --platform any -d .gpu/wheels -r tests/gpu/requirements.txt
"$PY" -m pip install -q --no-deps --no-compile --only-binary=:all: --python-version 3.12 \
  "${platforms[@]}" --target "$STAGE/site" .gpu/wheels/*.whl
# Kernels the check does not load (FlashAttention 2: Hopper runs FA3; MoE; the Rust frontend),
# dropped to fit fewer parts; vLLM imports each of them optionally. Also xgrammar's static library
# and Mistral's tokenizer tables, which nothing here loads.
rm -rf "$STAGE/site/vllm/vllm_flash_attn/_vllm_fa2_C.abi3.so" "$STAGE/site/vllm/_moe_C.abi3.so" \
  "$STAGE/site/vllm/vllm-rs" "$STAGE/site/bin" \
  "$STAGE/site/xgrammar/lib/libxgrammar.a" "$STAGE"/site/mistral_common/data/tekken_*.json
# llama-cpp-python is built from source here (no wheel to fetch): its ctypes library and the
# GBNF converter that the tool grammar uses travel as they are.
cp -r "$("$PY" -c 'import llama_cpp, os; print(os.path.dirname(llama_cpp.__file__))')" "$STAGE/site/"
find "$STAGE/site" -name __pycache__ -type d -prune -exec rm -rf {} +
# gguf alone on the path: the rest of the stage is built for 3.12, not for this venv.
mkdir -p .gpu/gguf && cp -r "$STAGE/site/gguf" .gpu/gguf/
PYTHONPATH=".gpu/gguf:." "$PY" tests/gpu/tiny_gguf.py "$STAGE/model/tiny-qwen2.gguf"
tar -C "$STAGE" -cf - site model | xz -T0 -6 | split -b 60M -d - .gpu/part-
rm -rf "$STAGE" .gpu/wheels .gpu/gguf
for part in .gpu/part-*; do
  mkdir -p ".gpu/c${part##*-}" && mv "$part" ".gpu/c${part##*-}/"
done
ls -lR .gpu
