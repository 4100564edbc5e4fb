"""Evaluate an embedding network on verification targets (training callback and gluonfr-eval).

Loading the network is the model zoo's job (:func:`gluonfr.model_zoo.load_embedding_net`).
"""
import os

import mxnet as mx
import numpy as np

from .embeddings import FLIP_MODES, combine_flip, cpu_fused, forward_images
from .protocol import pair_distances, verification

__all__ = ["evaluate_targets", "load_targets", "KNOWN_TARGETS"]

#: The insightface verification packs, in the order gluon-face's model-zoo table lists them.
KNOWN_TARGETS = ("lfw", "calfw", "cplfw", "cfp_fp", "agedb_30", "cfp_ff", "vgg2_fp")
_CPU = mx.cpu()


def load_targets(data_dir, names=KNOWN_TARGETS, image_size=(112, 112)):
    """Load ``<data_dir>/<name>.bin`` for each name that exists.

    Parameters
    ----------
    data_dir : str
    names : sequence of str
        Target names, e.g. ``('lfw', 'cfp_fp', 'agedb_30')``.
    image_size : (int, int)
        (height, width) passed to :func:`gluonfr.data.load_bin`.

    Returns
    -------
    targets : dict
        ``{name: (images, issame)}`` in the order of ``names``.
    missing : list of str
        The paths that do not exist (reported by the caller, not an error).
    """
    from ..data import load_bin

    if not os.path.isdir(data_dir):
        raise FileNotFoundError(f"data directory {data_dir!r} does not exist")
    targets, missing = {}, []
    for name in names:
        path = os.path.join(data_dir, f"{name}.bin")
        if os.path.isfile(path):
            targets[name] = load_bin(path, image_size=image_size)
        else:
            missing.append(path)
    return targets, missing


def _mean_norm(*arrays):
    # insightface's XNorm: mean L2 norm of every raw embedding (original and flipped images).
    rows = np.concatenate([a for a in arrays if a is not None])
    return float(np.mean(np.linalg.norm(rows.astype(np.float64), axis=1)))


def evaluate_targets(net, targets, ctx=_CPU, batch_size=64, flip=True, mode="sum", nfolds=10,
                     far_target=1e-3, progress=True, return_distances=False, forward=None,
                     fuse=True):
    """Verification results of a network on each target, every target on its own.

    Each target is embedded and scored independently of the others (no state carries over,
    so the order of ``targets`` does not change any number). With ``flip`` one forward pass
    over the images and their mirror images gives both the flip and the no-flip results.

    Parameters
    ----------
    net : mxnet.gluon.Block
        Embedding network (NCHW float32 RGB 0..255 in, (N, D) out).
    targets : dict
        ``{name: (images, issame)}``, e.g. from :func:`load_targets` or
        :func:`gluonfr.data.load_bin`.
    ctx : mxnet.Context or list of Context
    batch_size : int
    flip : bool
        Report the flip-fused result (insightface's "Accuracy-Flip").
    mode : {'sum', 'concat'}
        Flip fusion.
    nfolds : int
    far_target : float
    progress : bool
    return_distances : bool
        Also keep ``distances`` (P,) in each result: the squared L2 distances of the pairs'
        unit embeddings the numbers were computed from (e.g. for
        :func:`gluonfr.metrics.gallery.error_gallery`).
    forward : callable, optional
        ``forward(images, flip) -> (emb, emb_flip)`` replacing ``net`` (e.g.
        :func:`gluonfr.metrics.forward_onnx` with an ONNX Runtime session); ``net`` is then
        unused.
    fuse : bool
        Run the oneDNN-fused graph of ``net`` on the CPU (see
        :func:`gluonfr.metrics.forward_images`).

    Returns
    -------
    dict
        ``{name: result}`` in the order of ``targets``; ``result`` is the
        :func:`gluonfr.metrics.verification` dictionary of the flip-fused embeddings (of the
        plain ones without ``flip``), plus ``flip`` (bool), ``flip_mode``, ``xnorm`` (mean
        norm of the raw embeddings, insightface's XNorm) and, with ``flip``, ``noflip``: the
        verification dictionary of the original images alone.
    """
    if mode not in FLIP_MODES:
        raise ValueError(f"flip mode must be one of {FLIP_MODES}, got {mode!r}")
    results = {}
    for name, target in targets.items():
        try:
            images, issame = target
        except (TypeError, ValueError):
            raise ValueError(f"target {name!r} must be an (images, issame) pair as returned by "
                             "gluonfr.data.load_bin") from None
        issame = np.asarray(issame)
        if int(images.shape[0]) != 2 * len(issame):
            raise ValueError(f"target {name!r}: {images.shape[0]} images for {len(issame)} "
                             "pairs; expected two images per pair")
        if forward is not None:
            emb, emb_flip = forward(images, flip)
        else:
            # partitioned once per call (seconds for an IR-ResNet), not once per target
            net = cpu_fused(net, images, ctx, fuse)
            emb, emb_flip = forward_images(net, images, ctx=ctx, batch_size=batch_size,
                                           flip=flip, progress=progress, desc=name,
                                           fuse=fuse)
        plain = verification(emb, issame, nfolds=nfolds, far_target=far_target)
        fused = combine_flip(emb, emb_flip, mode) if flip else emb
        if flip:
            result = verification(fused, issame, nfolds=nfolds, far_target=far_target)
            result["noflip"] = plain
        else:
            result = plain
        if return_distances:
            result["distances"] = pair_distances(fused)
        result.update(flip=bool(flip), flip_mode=mode if flip else None,
                      xnorm=_mean_norm(emb, emb_flip))
        results[name] = result
    return results
