#!/usr/bin/env bash
# MobileFaceNet (128-d) + L2-softmax (Ranjan et al.: features normalised to norm alpha=64 before
# an ordinary dense classifier) with the schedule of mobilefacenet-arcface.sh (global batch
# 1760, NAG lr 0.35 cosine, 5k warmup, 86k iterations, wd 4e-5 none on BN/bias/PReLU, x10 on
# the classifier weights). alpha=64 is far above the paper's bound log(0.9*(C-2)/0.1) = 13.6 for
# C = 85,742.
#
#   DATA_DIR=data/faces_emore scripts/mobilefacenet-l2softmax.sh
#
# The hyperparameters live in gluonfr/engine/recipes/<this name>.toml (--config).
# Environment (defaults in brackets): DATA_DIR [data/faces_emore], GPUS [0,1,2,3,4,5,6,7]
# (empty: train on CTX [cpu:0] instead), BATCH_SIZE per device [220],
# SAVE_DIR [runs/mobilefacenet-l2softmax], PYTHON [python]. Extra arguments go to scripts/train.py
# after the recipe, so they override it (e.g. --resume, --max-iters 1000).
set -euo pipefail
DATA_DIR=${DATA_DIR:-data/faces_emore}
GPUS=${GPUS-0,1,2,3,4,5,6,7}
BATCH_SIZE=${BATCH_SIZE:-220}
SAVE_DIR=${SAVE_DIR:-runs/mobilefacenet-l2softmax}
PYTHON=${PYTHON:-python}
if [ -n "$GPUS" ]; then DEVICES=(--gpus "$GPUS"); else DEVICES=(--ctx "${CTX:-cpu:0}"); fi

exec "$PYTHON" "$(dirname "$0")/train.py" --config mobilefacenet-l2softmax \
  --data-dir "$DATA_DIR" "${DEVICES[@]}" --batch-size "$BATCH_SIZE" --save-dir "$SAVE_DIR" "$@"
