"""Face verification: embeddings with flip TTA, insightface's k-fold protocol, reports.

- :func:`extract_embeddings` runs a network over ``load_bin`` images (and their mirror
  images), on one device or several.
- :func:`verification` is insightface's protocol (10-fold accuracy, VAL@FAR), vectorised,
  plus ROC (:func:`roc_points`), AUC and EER; :func:`tar_at_far` gives IJB-style TAR at
  fixed FARs.
- :class:`FaceVerification` is the same as an ``mx.metric.EvalMetric``.
- :func:`evaluate_targets` evaluates a network on several targets (training callback,
  ``scripts/eval.py``); :func:`format_table`, :func:`results_to_json` and :func:`plot_roc`
  report the results.
- :mod:`gluonfr.metrics.ijb` is the IJB-B / IJB-C 1:1 and 1:N protocol (template pooling,
  TAR at FAR, CMC and TPIR at FPIR).
"""
from . import ijb
from .embeddings import FLIP_MODES, combine_flip, extract_embeddings, forward_images, forward_onnx
from .evaluate import KNOWN_TARGETS, evaluate_targets, load_targets
from .face_verification import FaceVerification
from .protocol import (
    ACC_THRESHOLDS,
    DEFAULT_FARS,
    VAL_THRESHOLDS,
    equal_error_rate,
    pair_distances,
    roc_points,
    tar_at_far,
    threshold_at_far,
    verification,
)
from .report import format_accuracy, format_table, results_to_json, write_json
from .roc_plot import plot_roc

__all__ = ["ACC_THRESHOLDS", "DEFAULT_FARS", "FLIP_MODES", "KNOWN_TARGETS", "VAL_THRESHOLDS",
           "FaceVerification", "combine_flip", "equal_error_rate", "evaluate_targets",
           "extract_embeddings", "format_accuracy", "ijb", "format_table", "forward_images",
           "forward_onnx", "load_targets", "pair_distances", "plot_roc",
           "results_to_json", "roc_points", "tar_at_far", "threshold_at_far", "verification",
           "write_json"]
