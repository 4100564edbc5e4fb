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
# Environment (defaults in brackets): DATA_DIR [data/faces_emore], GPUS [0,1,2,3,4,5,6,7]
# (empty: train on CTX [cpu:0] instead), BATCH_SIZE per device [220],
# SAVE_DIR [runs/mobilefacenet-arcface], PYTHON [python]. Extra arguments go to scripts/train.py
# after the recipe's flags, so they override them (e.g. --resume, --max-iters 1000).
set -euo pipefail
DATA_DIR=${DATA_DIR:-data/faces_emore}
GPUS=${GPUS-0,1,2,3,4,5,6,7}
BATCH_SIZE=${BATCH_SIZE:-220}
SAVE_DIR=${SAVE_DIR:-runs/mobilefacenet-arcface}
PYTHON=${PYTHON:-python}
if [ -n "$GPUS" ]; then DEVICES=(--gpus "$GPUS"); else DEVICES=(--ctx "${CTX:-cpu:0}"); fi

exec "$PYTHON" "$(dirname "$0")/train.py" \
  --model mobilefacenet --embedding-size 128 \
  --loss arcface --margin-s 64 --margin-m 0.5 --loss-warmup-iters 35000 \
  --optimizer nag --momentum 0.9 --lr 0.35 --lr-mode cosine --warmup-iters 5000 \
  --wd 4e-5 --no-wd --head-wd-mult 10 --max-iters 86000 --dtype float32 --num-workers 48 \
  --val-targets lfw,agedb_30 --val-interval 500 --save-interval 500 --log-interval 50 \
  --data-dir "$DATA_DIR" "${DEVICES[@]}" --batch-size "$BATCH_SIZE" --save-dir "$SAVE_DIR" "$@"
