#!/usr/bin/env bash
# The vLLM check on a GPU machine that has PyTorch and CUDA but no network and no vLLM.
#
# Here:   tests/gpu/pack.sh            wheels for vLLM 0.23 (the last with GGUF, pinned to the
#                                      machine's torch 2.11) and the app's imports, plus a tiny
#                                      GGUF (tests/gpu/tiny_gguf.py), as 60 MB parts in .gpu/
# There:  one call per part, back to back (the machine goes back 30 s after a call), carrying
#         .gpu/cNN: `mkdir -p /tmp/velox-gpu/parts && cp .gpu/cNN/* /tmp/velox-gpu/parts/`;
#         the last one then runs `bash tests/gpu/check.sh`, which unpacks the parts and runs the
#         GPU test of tests/integration/llm/test_vllm_slm.py through the same build_slm the Serve
#         graph uses, with SLM_MODEL_PATH at the tiny GGUF.
#         It runs the GPU tests, then bench/llm.py --slm vllm (start-up time, first-token latency,
#         tokens/s; on random weights only the engine's own speed means anything).
# Time it: on an H200 (2026-11-26, vLLM 0.23.0, torch 2.11): unpack ~10 s; imports and the
# tokenizer conversion ~40 s; the engine then spends 25 s spawning its process and 27 s loading
# the GGUF. Its first warm-up on a bare machine took ~100 s (kernel JIT builds, by the look of it:
# the next engine on the same machine did not pay them); then 16 s of torch.compile and 1 s of
# CUDA-graph capture (30 graphs, for 64 sequences). Warm, the engine was ready in 104 s and the
# two tests took 114 s: give the call 560 s.
set -uo pipefail
WORK=/tmp/velox-gpu
OUT=${OUT:-$WORK/out}
LIMIT_S=${LIMIT_S:-540}  # tests and benchmark together, so that what they wrote still comes back
mkdir -p "$OUT"
if [ ! -d "$WORK/site/vllm" ]; then
  cat "$WORK"/parts/part-* | xz -d -T0 | tar -x -C "$WORK" || exit 3
fi
export PYTHONPATH="$WORK/site:$PWD" HF_HUB_OFFLINE=1 VLLM_NO_USAGE_STATS=1 DO_NOT_TRACK=1
export SLM_MODEL_PATH="$WORK/model/tiny-qwen2.gguf" VELOX_DATA_DIR="$WORK/data" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, vllm, transformers; print('torch', torch.__version__, 'vllm', vllm.__version__, 'transformers', transformers.__version__)" || exit 4
echo "== GPU tests (at ${SECONDS} s)"
timeout $((LIMIT_S - 150 - SECONDS)) python3 -m pytest --noconftest -p no:cacheprovider -v -s -x \
  -m gpu tests/integration/llm/test_vllm_slm.py 2>&1 | tee "$OUT/pytest.log"
tests=${PIPESTATUS[0]}
echo "== bench/llm.py --slm vllm (at ${SECONDS} s)"
timeout $((LIMIT_S - SECONDS)) python3 bench/llm.py --slm vllm --repeats 3 2>&1 | tee "$OUT/bench.log"
cp bench/results/llm_vllm.json "$OUT/" 2>/dev/null
echo "== done at ${SECONDS} s: tests exit ${tests}"
exit "$tests"
