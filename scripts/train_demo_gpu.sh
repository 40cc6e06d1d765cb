#!/usr/bin/env bash
# Train the demo model further on a GPU within a time budget (a lent GPU's ~10-minute calls),
# then evaluate it on 30 validation videos (held-out seeds from the 500th: choose on these)
# and on the 30 held-out videos the README reports.
#   MINUTES=7 bash scripts/train_demo_gpu.sh [OUT_DIR]        (default runs/gpu)
# Environment (defaults): INIT (models/sam2_ros_demo.pt; empty: random weights), MINUTES (7),
# BATCH (16 clips per step), WORKERS (cores - 2 clip processes), CLIP (24 frames), LR (1e-4),
# EXTRA (more sam2-train flags), EVAL_VIDEOS (30), DEVICE (cuda).
# Trained as the demo model's last stage: the demo prompts, no memory-attention dropout.
# It times 20 steps first and sets --steps so the run fits MINUTES (the schedule's warm-up and
# cool-down then land inside the budget). The model goes to OUT_DIR/final.pt; copy it to
# models/sam2_ros_demo.pt only if its validation J&F is better than the committed model's.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-runs/gpu}"
INIT="${INIT-models/sam2_ros_demo.pt}"
MINUTES="${MINUTES:-7}"
BATCH="${BATCH:-16}"
WORKERS="${WORKERS:-$(($(nproc) > 3 ? $(nproc) - 2 : 1))}"
CLIP="${CLIP:-24}"
LR="${LR:-1e-4}"
DEVICE="${DEVICE:-cuda}"
EVAL_VIDEOS="${EVAL_VIDEOS:-30}"
PY="${PYTHON:-python3}"
read -r -a extra <<<"${EXTRA:-}"
args=(--data synthetic --model sam2_ros_demo --init-checkpoint "$INIT" --device "$DEVICE" --clip-length "$CLIP"
  --batch-clips "$BATCH" --num-workers "$WORKERS" --lr "$LR" --warmup-steps 20 --grad-clip 1.0
  --second-prompt-prob 0.2 --mask-prompt-prob 0.2 --click-prompt-prob 0.6 --box-prompt-prob 0.2
  --memory-attention-dropout 0 "${extra[@]}")

rm -rf "$OUT/calibrate"
mkdir -p "$OUT"
"$PY" -m sam2_model.training "${args[@]}" --steps 20 --log-every 1 --checkpoint-every 1000 \
  --out-dir "$OUT/calibrate" >"$OUT/calibrate.log" 2>&1 || { cat "$OUT/calibrate.log"; exit 1; }
# the median time of a step after the first 5 (start-up), and the steps that fit MINUTES
read -r sec steps < <("$PY" - "$OUT/calibrate/log.csv" "$MINUTES" <<'EOF'
import statistics, sys
from sam2_model.training.logcheck import read_log
rows = read_log(sys.argv[1])  # a LogError names the file and the row
sec = statistics.median(row["seconds_per_step"] for row in rows[5:] or rows)
print(f"{sec:.3f}", max(int(float(sys.argv[2]) * 60 / sec), 10))
EOF
)
[ -n "${steps:-}" ] || { echo "calibration: cannot read $OUT/calibrate/log.csv" >&2; exit 1; }
echo "calibration: $sec s per step of $BATCH clips; training $steps steps"
"$PY" -m sam2_model.training "${args[@]}" --steps "$steps" --log-every 20 --checkpoint-every 200 \
  --out-dir "$OUT/train"
cp "$OUT/train/final.pt" "$OUT/final.pt"
for first in 500 0; do
  echo "held-out videos from the ${first}th (500: validation, 0: reported):"
  "$PY" -m sam2_model.eval --checkpoint "$OUT/final.pt" --videos "$EVAL_VIDEOS" --first "$first" --device "$DEVICE" |
    tail -n 1
done
