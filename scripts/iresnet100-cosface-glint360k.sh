#!/usr/bin/env bash
# IR-ResNet-100 (512-d) + CosFace s=64 m=0.4 on Glint360K (360,232 identities) with Partial FC at
# sample rate 0.1 (arcface_torch's schedule: SGD lr 0.1, polynomial decay over 20 epochs,
# 128 per GPU on 8 GPUs); see gluonfr/engine/recipes/iresnet100-cosface-glint360k.toml for the sources.
#
#   DATA_DIR=data/glint360k scripts/iresnet100-cosface-glint360k.sh
#
# The hyperparameters live in gluonfr/engine/recipes/<this name>.toml (--config).
# Environment (defaults in brackets): DATA_DIR [data/glint360k], GPUS [0,1,2,3,4,5,6,7]
# (empty: train on CTX [cpu:0] instead), BATCH_SIZE per device [128], SAMPLE_RATE [0.1],
# SAVE_DIR [runs/iresnet100-cosface-glint360k], PYTHON [python]. Extra arguments go to scripts/train.py
# after the recipe, so they override it (e.g. --resume, --kvstore dist_device_sync).
set -euo pipefail
DATA_DIR=${DATA_DIR:-data/glint360k}
GPUS=${GPUS-0,1,2,3,4,5,6,7}
BATCH_SIZE=${BATCH_SIZE:-128}
SAMPLE_RATE=${SAMPLE_RATE:-0.1}
SAVE_DIR=${SAVE_DIR:-runs/iresnet100-cosface-glint360k}
PYTHON=${PYTHON:-python}
if [ -n "$GPUS" ]; then DEVICES=(--gpus "$GPUS"); else DEVICES=(--ctx "${CTX:-cpu:0}"); fi

exec "$PYTHON" "$(dirname "$0")/train.py" --config iresnet100-cosface-glint360k \
  --data-dir "$DATA_DIR" "${DEVICES[@]}" --batch-size "$BATCH_SIZE" \
  --sample-rate "$SAMPLE_RATE" --save-dir "$SAVE_DIR" "$@"
