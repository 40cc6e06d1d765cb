#!/usr/bin/env bash
# The GPU checks of the fast path in one go, most important first; every step appends its
# summary to $OUT/checks.log as soon as it finishes (a step that fails does not stop the
# others, and no step starts after the budget).
#   OUT=bench/out bash bench/gpu_checks.sh
# Needs: PyTorch with CUDA, pytest, and the official sam2==1.1.0 (+ hydra-core, iopath)
# importable (PYTHONPATH). Budget: BUDGET seconds (default 540).
# Order (2026-11-27): the H200 run measured CUDA graphs for every model, parity, the
# 10,000-frame soak and passed test_gpu.py; what it did not reach comes first now.
set -u
cd "$(dirname "${BASH_SOURCE[0]}")/.."
OUT="${OUT:-bench/out}"
mkdir -p "$OUT"
LOG="$OUT/checks.log"  # every step's summary (the device tool brings back at most 8 files)
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
T0=$(date +%s)
left() { local l=$((${BUDGET:-540} - ($(date +%s) - T0))); echo $((l > 1 ? l : 1)); }
step() { echo "== $* (t=$(($(date +%s) - T0)) s)" | tee -a "$LOG"; }
fps() { python3 bench/gpu_fps.py --deadline "$(left)" --out "$OUT/fps.jsonl" "$@" 2>&1 | grep -v "it/s\]"; }
F="${FRAMES:-300}"

step "machine"
{ nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
  python3 -c 'import torch, sam2; print("torch", torch.__version__, "cuda", torch.version.cuda)'; } 2>&1 | tee -a "$LOG"

step "CUDA graph tests"
timeout "$(left)" python3 -m pytest -q -p no:cacheprovider test/test_gpu.py -k "graph and not compile" 2>&1 |
  tail -15 | tee -a "$LOG"

step "where the time goes: SDPA backends, graph replays, top kernels"
timeout "$(left)" python3 bench/gpu_profile.py --objects 1 8 --out "$OUT/profile.json" 2>&1 | tail -40 | tee -a "$LOG"

step "speed: tiny, CUDA graphs with and without torch.compile, and the official"
{ fps --models sam2.1_hiera_tiny --modes graphs compiled_graphs --objects 1 8 --frames "$F"
  fps --models sam2.1_hiera_tiny --modes official --objects 1 8 --frames $((F / 2)); } | tee -a "$LOG"

step "speed: tiny with cuDNN attention first (both sides; compare with the step above)"
{ fps --models sam2.1_hiera_tiny --modes graphs official --objects 1 8 --frames $((F / 2)) --sdpa cudnn flash efficient; } |
  tee -a "$LOG"

step "speed: large"
{ fps --models sam2.1_hiera_large --modes graphs --objects 1 8 --frames "$F"
  fps --models sam2.1_hiera_large --modes official --objects 1 8 --frames $((F / 2)); } | tee -a "$LOG"

step "parity: bf16 vs the official (PIL, device preprocessing, CUDA graphs)"
timeout "$(left)" python3 bench/gpu_parity.py --skip fp32 --out "$OUT/parity.json" 2>&1 | grep -v "it/s\]" |
  tail -5 | tee -a "$LOG"

step "speed: small and base_plus"
{ fps --models sam2.1_hiera_small sam2.1_hiera_base_plus --modes graphs official --objects 1 8 --frames $((F / 2)); } |
  tee -a "$LOG"

step "the other GPU tests"
timeout "$(left)" python3 -m pytest -q -p no:cacheprovider test/test_gpu.py -k "not (graph and not compile)" 2>&1 |
  tail -15 | tee -a "$LOG"

step "memory over a long stream (CUDA graphs, 4 objects)"
timeout "$(left)" python3 bench/gpu_fps.py --models sam2.1_hiera_tiny --modes graphs --objects 4 \
  --soak "${SOAK:-10000}" --out "$OUT/fps.jsonl" 2>&1 | tail -2 | tee -a "$LOG"
step "done"
