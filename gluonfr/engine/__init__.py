"""The training engine behind ``scripts/train.py`` and ``make demo``.

>>> from gluonfr.engine import TrainConfig, train
>>> summary = train(TrainConfig(model="mobilefacenet", loss="arcface", data_dir="data/synthetic",
...                             max_iters=200, val_targets=["synth_val"]))   # doctest: +SKIP

- :mod:`.config`      ``TrainConfig``, the matching command line and ``--config`` recipes
- :mod:`.loop`        ``train`` / ``TrainLoop``: data -> backbone + head -> trainer -> callbacks
- :mod:`.head`        classifier + loss per training phase (NormFace warm-up, margin loss)
- :mod:`.optim`       weight-decay groups, the lr schedule, pickle-free optimiser states
- :mod:`.callbacks`   logging / TensorBoard, verification, checkpoints
- :mod:`.checkpoint`  atomic checkpoints, last K kept plus the best, ``--resume``, merging
                      a Partial FC classifier's slices
- :mod:`.distributed` kvstores and MXNet's multi-machine launcher
- :mod:`.collective`  all-gather / all-reduce between workers (model-parallel heads)
"""
from .callbacks import Callback, CheckpointCallback, LogCallback, VerificationCallback
from .checkpoint import CheckpointManager, find_checkpoint, merge_classifier
from .config import (
    CPU_MICRO_BATCH,
    TrainConfig,
    add_arguments,
    config_from_args,
    load_config_file,
    recipe_names,
)
from .loop import NonFiniteLossError, TrainLoop, build_backbone, train

__all__ = ["CPU_MICRO_BATCH", "Callback", "CheckpointCallback", "CheckpointManager", "LogCallback",
           "NonFiniteLossError", "TrainConfig", "TrainLoop", "VerificationCallback",
           "add_arguments", "build_backbone", "config_from_args", "find_checkpoint",
           "load_config_file", "merge_classifier", "recipe_names", "train"]
