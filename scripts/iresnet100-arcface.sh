#!/usr/bin/env bash
# IR-ResNet-100 (LResNet100E-IR, 512-d) + ArcFace s=64 m=0.5: insightface's MXNet recipe for the
# published r100 (LFW 99.77, CFP-FP 98.27, AgeDB-30 98.28 on MS1M-ArcFace). SGD momentum 0.9,
# lr 0.1, wd 5e-4, 128 per GPU on 4 GPUs (global 512), lr x0.1 at 100k, 160k and 220k
# iterations, 240k in all; verification every 2k iterations on lfw, cfp_fp and agedb_30.
# Add --dtype float16 for MXNet AMP (dynamic loss scaling) on GPUs with tensor cores.
#
#   DATA_DIR=data/faces_emore scripts/iresnet100-arcface.sh
#
# The hyperparameters live in gluonfr/engine/recipes/<this name>.toml (--config).
# Environment (defaults in brackets): DATA_DIR [data/faces_emore], GPUS [0,1,2,3]
# (empty: train on CTX [cpu:0] instead), BATCH_SIZE per device [128],
# SAVE_DIR [runs/iresnet100-arcface], PYTHON [python]. Extra arguments go to scripts/train.py
# after the recipe, so they override it (e.g. --resume, --max-iters 1000).
set -euo pipefail
DATA_DIR=${DATA_DIR:-data/faces_emore}
GPUS=${GPUS-0,1,2,3}
BATCH_SIZE=${BATCH_SIZE:-128}
SAVE_DIR=${SAVE_DIR:-runs/iresnet100-arcface}
PYTHON=${PYTHON:-python}
if [ -n "$GPUS" ]; then DEVICES=(--gpus "$GPUS"); else DEVICES=(--ctx "${CTX:-cpu:0}"); fi

exec "$PYTHON" "$(dirname "$0")/train.py" --config iresnet100-arcface \
  --data-dir "$DATA_DIR" "${DEVICES[@]}" --batch-size "$BATCH_SIZE" --save-dir "$SAVE_DIR" "$@"
