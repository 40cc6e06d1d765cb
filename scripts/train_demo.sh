#!/usr/bin/env bash
# Train a demo model like models/sam2_ros_demo.pt from random weights on synthetic video.
#   bash scripts/train_demo.sh [OUT_DIR]      (default runs/demo; 2.3-4 h on 2 CPU cores)
# Environment: MODEL_OUT (where the final model is copied; default OUT_DIR/model.pt: the
# committed model is never overwritten unless asked), EVAL_VIDEOS (held-out videos evaluated at
# the end; default 30), STEPS (every stage runs this many steps instead of its own: a smoke run
# of the whole chain, as test_demo.py does), PROCS (processes of the video stages, each one clip
# a step; default 2, one per core), STAGE1_SEEDS (seeds stage 1 is tried with, in order, until
# one leaves the empty-mask plateau; default "31 32 33"), STAGE1_MAX_DICE (the mean dice loss
# over stage 1's last 500 steps below which it has left the plateau; default 0.5), VIDEO_SEED
# (seed of the video stages 2-5, which clips and prompts they draw; default 0, the committed
# model's).
# Each stage starts from the previous stage's final.pt; an interrupted stage resumes from its
# last.pt when the script is run again, and finished stages are skipped. The committed model was
# trained stage by stage with these settings, not by one run of this script, and a run is never
# bit-identical (thread scheduling changes float sums). Nor is its quality: the committed model
# scores J&F 0.893 on the 30 reported videos, three re-runs (2026-12-02/03: two from other
# stage-1 runs, one with VIDEO_SEED=1) 0.816, 0.793 and 0.767, below the 0.85 bar
# (docs/demo-model-experiments.md).
# Compare on the validation videos before replacing the committed model:
#   python -m sam2_model.eval --checkpoint OUT_DIR/model.pt --videos 100 --first 500
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck disable=SC1091
source scripts/env.sh
OUT="${1:-runs/demo}"
MODEL_OUT="${MODEL_OUT:-$OUT/model.pt}"
EVAL_VIDEOS="${EVAL_VIDEOS:-30}"
override=()
if [ -n "${STEPS:-}" ]; then
    override=(--steps "$STEPS")  # the last --steps wins
fi
PROCS="${PROCS:-2}"
STAGE1_SEEDS="${STAGE1_SEEDS:-31 32 33}"
STAGE1_MAX_DICE="${STAGE1_MAX_DICE:-0.5}"
VIDEO_SEED="${VIDEO_SEED:-0}"
case "$PROCS" in
  '' | *[!0-9]* | 0) echo "PROCS: a number of processes >= 1, got '$PROCS'" >&2; exit 2 ;;
esac
case "$VIDEO_SEED" in
  '' | *[!0-9]*) echo "VIDEO_SEED: a whole number, got '$VIDEO_SEED'" >&2; exit 2 ;;
esac
for seed in $STAGE1_SEEDS; do
  case "$seed" in
    *[!0-9]*) echo "STAGE1_SEEDS: whole numbers separated by spaces, got '$STAGE1_SEEDS'" >&2; exit 2 ;;
  esac
done
if [ -z "${STAGE1_SEEDS// /}" ]; then
  echo "STAGE1_SEEDS: at least one seed, got '$STAGE1_SEEDS'" >&2
  exit 2
fi
common=(--data synthetic --model sam2_ros_demo --grad-clip 1.0 --checkpoint-every 50)
video=(--seed "$VIDEO_SEED")  # stage 1 passes its own seed

stage() {  # stage NAME INIT NPROC ARGS... : train one stage into $OUT/NAME unless it is done
  local name="$1" init="$2" nproc="$3"
  shift 3
  if [ -f "$OUT/$name/final.pt" ]; then
    echo "stage $name: done ($OUT/$name/final.pt)"
    return
  fi
  echo "stage $name ($nproc process(es))"
  local launcher=(python)
  if [ "$nproc" -gt 1 ]; then  # a step averages the gradients of nproc clips, one per process
    launcher=(torchrun --standalone --nproc-per-node "$nproc")
  fi
  "${launcher[@]}" -m sam2_model.training "${common[@]}" --init-checkpoint "$init" --out-dir "$OUT/$name" "$@" \
        "${override[@]}"
}

# 1. Single frames (clip of 1), one process: learn to segment from clicks and boxes, no memory
#    yet. Training video from random weights collapses to empty masks; images first does not
#    (and one clip a step leaves the empty-mask plateau sooner than two). For its first few
#    thousand steps every run predicts nearly empty masks (dice loss ~0.65); seed 31 leaves that
#    plateau at step ~4,000, seed 33 at ~1,500, seed 32 never (in 8,000 steps). A run still on it
#    at the end (mean dice loss over its last 500 steps >= STAGE1_MAX_DICE) is kept aside and
#    stage 1 is trained again with the next seed of STAGE1_SEEDS.
image=""
for seed in $STAGE1_SEEDS; do
  stage "1_image_seed$seed" "" 1 --clip-length 1 --mask-prompt-prob 0 --click-prompt-prob 0.5 \
      --box-prompt-prob 0.5 --steps 8000 --lr 1e-3 --seed "$seed"
  left=0
  python -m sam2_model.training.logcheck "$OUT/1_image_seed$seed/log.csv" --term dice \
      --last 500 --below "$STAGE1_MAX_DICE" || left=$?
  case "$left" in
    0) image="$OUT/1_image_seed$seed/final.pt"; break ;;
    3) echo "stage 1_image_seed$seed: still on the empty-mask plateau; not trained on" >&2 ;;
    *) exit 2 ;;  # an unreadable log, a bad STAGE1_MAX_DICE or a crash: the error says which
  esac
done
if [ -z "$image" ]; then
  echo "stage 1 stayed on the empty-mask plateau with every seed of STAGE1_SEEDS ($STAGE1_SEEDS):" \
       "set STAGE1_SEEDS to other seeds and run again (finished runs are not repeated)" >&2
  exit 1
fi
# 2. The SAM 2 recipe: clips of 8 frames, mask/click/box prompts 50/25/25, corrective clicks
#    (from here on PROCS clips a step: 750 steps of 2 clips).
stage 2_video "$image" "$PROCS" "${video[@]}" --clip-length 8 --steps 750 --lr 5e-4 --warmup-steps 25
# 3. Longer clips, then clips in which an object vanishes and comes back (re-detection).
stage 3_clip10 "$OUT/2_video/final.pt" "$PROCS" "${video[@]}" --clip-length 10 --steps 300 --lr 3e-4 --warmup-steps 25
stage 4_reappear "$OUT/3_clip10/final.pt" "$PROCS" "${video[@]}" --clip-length 10 --reappear-clip-prob 0.5 \
    --steps 450 --lr 3e-4 --warmup-steps 25
# 5. Whole 24-frame videos: the long hides and late re-appearances of the evaluation videos.
stage 5_full "$OUT/4_reappear/final.pt" "$PROCS" "${video[@]}" --clip-length 24 --steps 300 --lr 3e-4 --warmup-steps 10

mkdir -p "$(dirname "$MODEL_OUT")"
cp "$OUT/5_full/final.pt" "$MODEL_OUT"
python -m sam2_model.eval --checkpoint "$MODEL_OUT" --videos "$EVAL_VIDEOS"
