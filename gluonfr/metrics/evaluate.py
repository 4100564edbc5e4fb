"""Evaluate an embedding network on verification targets (training callback and scripts/eval.py)."""
import os

import mxnet as mx
import numpy as np

from .embeddings import FLIP_MODES, combine_flip, forward_images
from .protocol import verification

__all__ = ["evaluate_targets", "load_targets", "load_embedding_net", "KNOWN_TARGETS"]

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
                     far_target=1e-3, progress=True):
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
        emb, emb_flip = forward_images(net, images, ctx=ctx, batch_size=batch_size, flip=flip,
                                       progress=progress, desc=name)
        plain = verification(emb, issame, nfolds=nfolds, far_target=far_target)
        if flip:
            result = verification(combine_flip(emb, emb_flip, mode), issame, nfolds=nfolds,
                                  far_target=far_target)
            result["noflip"] = plain
        else:
            result = plain
        result.update(flip=bool(flip), flip_mode=mode if flip else None,
                      xnorm=_mean_norm(emb, emb_flip))
        results[name] = result
    return results


def load_embedding_net(model=None, params=None, symbol=None, ctx=_CPU, embedding_size=None,
                       input_name="data", output_layer=None, hybridize=True):
    """An embedding network from a model-zoo name and a parameter file, or from an exported
    ``-symbol.json`` and its parameters (gluon ``export`` or an insightface checkpoint).

    Parameters
    ----------
    model : str, optional
        Model-zoo name (:func:`gluonfr.model_zoo.get_model`), with ``params`` the backbone's
        parameters (as the trainer saves them); extra parameters in the file (a classifier)
        are ignored, missing ones are an error. Without ``params`` the published parameters.
    params : str, optional
    symbol : str, optional
        ``X-symbol.json``; then ``params`` is required.
    ctx : mxnet.Context or list of Context
    embedding_size : int, optional
        For ``model``: the embedding size it was trained with.
    input_name : str
        For ``symbol``: the data input (``data`` for gluon exports and insightface).
    output_layer : str, optional
        For ``symbol``: an internal output to use as the embedding (e.g. ``fc1_output`` for
        an insightface training checkpoint); default: the symbol's output.
    hybridize : bool
        Hybridize a zoo model (static memory) for faster inference.

    Returns
    -------
    mxnet.gluon.HybridBlock
    """
    ctx_list = [ctx] if isinstance(ctx, mx.Context) else list(ctx)
    if (model is None) == (symbol is None):
        raise ValueError("give a model-zoo name (model=...) or an exported symbol "
                         "(symbol=...), not both")
    if symbol is not None:
        if params is None:
            raise ValueError(f"symbol {symbol!r} needs its parameter file (params=...)")
        for path in (symbol, params):
            if not os.path.isfile(path):
                raise FileNotFoundError(f"{path!r} does not exist")
        sym = mx.sym.load(symbol)
        if output_layer is not None:
            internals = sym.get_internals()
            if output_layer not in internals.list_outputs():
                raise ValueError(f"{symbol}: no output {output_layer!r}; outputs ending in "
                                 f"'_output' include e.g. {internals.list_outputs()[-5:]}")
            sym = internals[output_layer]
        if input_name not in sym.list_inputs():
            raise ValueError(f"{symbol}: no input named {input_name!r}; inputs are "
                             f"{sym.list_inputs()[:5]}...")
        net = mx.gluon.SymbolBlock(sym, mx.sym.var(input_name, dtype="float32"))
        net.collect_params().load(params, ctx=ctx_list, allow_missing=False,
                                  ignore_extra=True, restore_prefix="")
        return net
    from ..model_zoo import get_model

    kwargs = {} if embedding_size is None else {"embedding_size": int(embedding_size)}
    if params is None:
        net = get_model(model, pretrained=True, ctx=ctx_list, **kwargs)
    else:
        if not os.path.isfile(params):
            raise FileNotFoundError(f"parameter file {params!r} does not exist")
        net = get_model(model, ctx=ctx_list, **kwargs)
        net.load_parameters(params, ctx=ctx_list, allow_missing=False, ignore_extra=True)
    if hybridize:
        net.hybridize(static_alloc=True)
    return net
