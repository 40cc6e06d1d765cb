#!/usr/bin/env bash
# The GPU checks of the fast path in one go, most important first; every step writes its
# results under $OUT as soon as it finishes (a step that fails does not stop the others).
#   OUT=bench/out bash bench/gpu_checks.sh
# Needs: PyTorch with CUDA, pytest, and the official sam2==1.1.0 (+ hydra-core, iopath)
# importable (PYTHONPATH). Budget: about 9 minutes on an H100.
set -u
cd "$(dirname "${BASH_SOURCE[0]}")/.."
OUT="${OUT:-bench/out}"
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
T0=$(date +%s)
left() { local l=$((${BUDGET:-540} - ($(date +%s) - T0))); echo $((l > 1 ? l : 1)); }
step() { echo "== $* (t=$(($(date +%s) - T0)) s)"; }

step "machine"
{ nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
  python3 -c 'import torch, sam2; print("torch", torch.__version__, "cuda", torch.version.cuda)'; } 2>&1 | tee "$OUT/machine.txt"

step "parity per precision"
python3 bench/gpu_parity.py --out "$OUT/parity.json" 2>&1 | grep -v "it/s\]" | tail -20 | tee "$OUT/parity.txt"

step "speed: tiny and large, official and eager"
python3 bench/gpu_fps.py --models sam2.1_hiera_tiny --modes official eager --objects 1 4 8 16 \
  --frames "${FRAMES:-300}" --deadline "$(left)" --out "$OUT/fps.jsonl" 2>&1 | grep -v "it/s\]" | tee "$OUT/fps_tiny.txt"
python3 bench/gpu_fps.py --models sam2.1_hiera_large --modes official eager --objects 1 8 \
  --frames "${FRAMES:-300}" --deadline "$(left)" --out "$OUT/fps.jsonl" 2>&1 | grep -v "it/s\]" | tee "$OUT/fps_large.txt"

step "speed: compiled"
python3 bench/gpu_fps.py --models sam2.1_hiera_tiny --modes compiled --objects 1 8 \
  --frames "${FRAMES:-300}" --deadline "$(left)" --out "$OUT/fps.jsonl" 2>&1 | grep -v "it/s\]" | tee "$OUT/fps_compiled.txt"

step "tests on the GPU"
timeout "$(left)" python3 -m pytest -q -p no:cacheprovider test/test_gpu.py 2>&1 | tail -25 | tee "$OUT/test_gpu.txt"

step "memory over a long stream"
timeout "$(left)" python3 bench/gpu_fps.py --models sam2.1_hiera_tiny --objects 4 --soak "${SOAK:-3000}" \
  --out "$OUT/fps.jsonl" 2>&1 | tail -3 | tee "$OUT/soak.txt"

step "speed: compiled large (if time is left)"
python3 bench/gpu_fps.py --models sam2.1_hiera_large --modes compiled --objects 1 \
  --frames "${FRAMES:-300}" --deadline "$(left)" --out "$OUT/fps.jsonl" 2>&1 | grep -v "it/s\]" | tee "$OUT/fps_compiled_large.txt"
step "done"
