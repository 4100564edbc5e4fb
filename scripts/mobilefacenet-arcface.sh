#!/usr/bin/env bash
# MobileFaceNet (128-d) + ArcFace: gluon-face's model-zoo recipe (LFW 99.56, CFP-FP 92.98,
# AgeDB-30 95.86 on MS1M-ArcFace "faces_emore"). Global batch 1760 = 220 per GPU x 8 GPUs, NAG
# lr 0.35 with a cosine schedule after 5k linear warmup iterations, wd 4e-5 (none on BatchNorm,
# biases, PReLU; x10 on the class centres), NormFace (s*cos) for the first 35k of 86k iterations,
# then ArcFace s=64 m=0.5; verification on lfw and agedb_30.
#
#   DATA_DIR=data/faces_emore scripts/mobilefacenet-arcface.sh
#   GPUS=0,1,2,3 BATCH_SIZE=440 scripts/mobilefacenet-arcface.sh      # same global batch
#
# The hyperparameters live in gluonfr/engine/recipes/<this name>.toml (--config).
# Environment (defaults in brackets): DATA_DIR [data/faces_emore], GPUS [0,1,2,3,4,5,6,7]
# (empty: train on CTX [cpu:0] instead), BATCH_SIZE per device [220],
# SAVE_DIR [runs/mobilefacenet-arcface], PYTHON [python]. Extra arguments go to scripts/train.py
# after the recipe, so they override it (e.g. --resume, --max-iters 1000).
set -euo pipefail
DATA_DIR=${DATA_DIR:-data/faces_emore}
GPUS=${GPUS-0,1,2,3,4,5,6,7}
BATCH_SIZE=${BATCH_SIZE:-220}
SAVE_DIR=${SAVE_DIR:-runs/mobilefacenet-arcface}
PYTHON=${PYTHON:-python}
if [ -n "$GPUS" ]; then DEVICES=(--gpus "$GPUS"); else DEVICES=(--ctx "${CTX:-cpu:0}"); fi

exec "$PYTHON" "$(dirname "$0")/train.py" --config mobilefacenet-arcface \
  --data-dir "$DATA_DIR" "${DEVICES[@]}" --batch-size "$BATCH_SIZE" --save-dir "$SAVE_DIR" "$@"
