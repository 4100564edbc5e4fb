"""int8 post-training quantization (oneDNN) of embedding networks.

:func:`quantize_int8` turns any hybridizable gluonfr network (registered, imported or loaded
from an exported symbol) into an int8 :class:`mxnet.gluon.SymbolBlock` through
:mod:`mxnet.contrib.quantization`: the float32 graph is fused for oneDNN (convolution + BN +
activation), the fused convolutions and fully-connected layers are quantized, and each
quantized output gets a fixed threshold collected on aligned face crops (calibration).
:func:`save_quantized` / :func:`load_quantized` keep the result as symbol + params so the
calibration runs once.

What stays float32 and why: the network's input normalisation ((x - 127.5) / 128 inside the
graph: elementwise operators without an int8 form; its output is quantized), the last
fully-connected layer (the embedding itself, ``keep_last_fc``: its rounding error goes
straight into the embedding's angle, and it is a small share of the time) and the
embedding's 1-D BatchNorm (oneDNN's int8 batch normalisation is 4-D only). oneDNN has no
per-channel PReLU; the PReLUs read by cheap convolutions are folded into them before
quantizing (:mod:`gluonfr.utils.prelu_fold`: a 1x1 convolution and a second run of the
consumer, summed int8 into int8), so MobileFaceNet's int8 graph is convolutions only from the
first quantize to the one dequantize. The PReLUs left (IR-ResNet's, before 3x3 convolutions)
run as :class:`gluonfr.nn.PReLU`'s BatchNorm-scaling + ReLU + sum subgraph, which has int8
kernels too. (Keeping BatchNorm in float32, ``exclude_operators=("BatchNorm",)``, puts a
dequantize / quantize pair around each of those.)

Accuracy must be checked on the model at hand (:func:`quantize_int8` returns a network to
compare with the float32 one): on randomly initialised networks the int8 embeddings can be
far from float32 ones, as rounding noise dominates weights that carry no signal.
"""
import os

import numpy as np

__all__ = ["quantize_int8", "save_quantized", "load_quantized", "calibration_images", "as_int8",
           "compare_int8", "perturb", "noise_resolution", "matched_cosine",
           "flip_distances", "INT8_MAX_ACCURACY_DROP",
           "INT8_MIN_COSINE"]

#: The int8 acceptance bar (issue 18): accuracy at most this many points below float32 (a
#: higher int8 accuracy is not a loss; the signed difference is reported) ...
INT8_MAX_ACCURACY_DROP = 0.3
#: ... and this mean cosine between the int8 and the float32 embedding of each image.
INT8_MIN_COSINE = 0.99

_IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def _mx():
    from .. import _optional

    return _optional.import_optional("mxnet", "cpu", "gluonfr.utils.quantize_int8")


def calibration_images(source, num=None, image_size=(112, 112)):
    """Aligned face crops for calibration as one float32 NCHW RGB 0..255 array.

    Parameters
    ----------
    source : str or array-like
        A verification ``.bin`` file, a training folder (``train.rec`` / ``train.idx`` /
        ``property``), a folder of aligned crops (searched recursively), or an array of
        images (N, H, W, 3) RGB or (N, 3, H, W).
    num : int, optional
        Take at most this many images (the first ones in file order; a folder's files sorted).
    image_size : (int, int)
        (height, width) the images must have (a ``.bin`` is resized to it).

    Returns
    -------
    numpy.ndarray
        (N, 3, H, W) float32.
    """
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if os.path.isfile(path):
            if not path.endswith(".bin"):
                raise ValueError(f"calibration images {path!r}: a file must be a "
                                 "verification .bin (or give a .rec folder, an image folder "
                                 "or an array)")
            from ..data import load_bin

            images = load_bin(path, image_size=image_size)[0].asnumpy()
        elif os.path.isdir(path) and os.path.isfile(os.path.join(path, "train.rec")):
            from ..data import FaceRecordDataset

            dataset = FaceRecordDataset(path)
            count = len(dataset) if num is None else min(int(num), len(dataset))
            images = np.stack([dataset[i][0].asnumpy() for i in range(count)])
        elif os.path.isdir(path):
            from ..data.image import read_image

            files = sorted(os.path.join(d, f) for d, _, names in os.walk(path)
                           for f in names if f.lower().endswith(_IMAGE_EXTS))
            if not files:
                raise ValueError(f"calibration images {path!r}: no image files "
                                 f"({', '.join(_IMAGE_EXTS)}) in this folder")
            files = files if num is None else files[:int(num)]
            images = np.stack([read_image(f, color="rgb") for f in files])
        else:
            raise ValueError(f"calibration images {path!r}: no such file or folder")
    else:
        images = source.asnumpy() if hasattr(source, "asnumpy") else np.asarray(source)
    if images.ndim != 4 or 3 not in (images.shape[1], images.shape[3]):
        raise ValueError("calibration images: expected (N, H, W, 3) or (N, 3, H, W) images, "
                         f"got shape {images.shape}")
    if images.shape[-1] == 3 and images.shape[1] != 3:
        images = images.transpose(0, 3, 1, 2)
    if tuple(images.shape[2:]) != tuple(image_size):
        raise ValueError(f"calibration images: {images.shape[2:]} crops, the network "
                         f"takes {tuple(image_size)} (align them first)")
    if num is not None:
        images = images[:int(num)]
    if len(images) == 0:
        raise ValueError("calibration images: none given")
    return np.ascontiguousarray(images, dtype=np.float32)


def quantize_int8(net, calib_images, calib_mode="naive", num_calib=500, exclude=None,
                  keep_last_fc=True, batch_size=32, image_size=(112, 112), path=None,
                  granularity="channel-wise", exclude_operators=()):
    """Quantize an embedding network to int8 for CPU (oneDNN) inference.

    Parameters
    ----------
    net : mxnet.gluon.HybridBlock
        The float32 network (RGB 0..255 input, as every gluonfr network); it is hybridized.
    calib_images : str or array-like
        Aligned face crops to calibrate on: see :func:`calibration_images`.
    calib_mode : {'naive', 'entropy'}
        'naive' takes each layer's min / max over the calibration crops; 'entropy' picks the
        threshold minimising the KL divergence between float32 and int8 activations (it
        clips, and is much slower). With PReLU in int8, 'naive' is the one that kept the
        demo network's embeddings at float32's (see docs/deployment.rst).
    num_calib : int
        How many crops to calibrate on.
    exclude : list of str, optional
        Layer (symbol) names to keep in float32, in addition to the defaults.
    keep_last_fc : bool
        Keep the network's last fully-connected layer (the embedding) in float32.
    batch_size : int
        Calibration batch size.
    image_size : (int, int)
        The network's input size.
    path : str, optional
        Also save the result there (:func:`save_quantized`).
    granularity : {'channel-wise', 'tensor-wise'}
        One int8 scale per output channel of each weight, or one per tensor.
    exclude_operators : sequence of str
        Operator types kept in float32 everywhere (e.g. ``("BatchNorm",)`` keeps every PReLU
        in float32, see the module notes). BatchNorms over (N, C) features (the embedding's
        1-D BatchNorm) always stay float32: oneDNN's int8 batch normalisation is 4-D only.

    Returns
    -------
    mxnet.gluon.SymbolBlock
        The int8 network: same input, float32 embeddings out.
    """
    mx = _mx()
    from mxnet.contrib import quantization as q

    from .fusion import inference_graph
    from .prelu_fold import fold_prelu

    if calib_mode not in ("entropy", "naive"):
        raise ValueError(f"calib_mode must be 'entropy' or 'naive', got {calib_mode!r}")
    images = calibration_images(calib_images, num=num_calib, image_size=image_size)
    net.hybridize()
    net(mx.nd.array(images[:1]))  # deferred shapes
    sym, args, auxs = inference_graph(net)
    sym, args, auxs, _ = fold_prelu(sym, args, auxs)
    excluded = list(exclude or [])
    if keep_last_fc:
        fcs = [s.name for s in sym.get_internals()
               if s.list_attr().get("op_name", s.attr("op_name")) == "FullyConnected"]
        if not fcs:
            fcs = [n for n in sym.get_internals().list_outputs()
                   if "dense" in n and n.endswith("_fwd_output")]
            fcs = [n[:-len("_output")] for n in fcs]
        excluded += fcs[-1:]
    excluded += _feature_batchnorms(sym, image_size)
    sym = sym.get_backend_symbol("MKLDNN_QUANTIZE")
    qsym, qargs, qauxs, collector = q.quantize_graph(
        sym=sym, arg_params=args, aux_params=auxs, ctx=mx.cpu(), excluded_sym_names=excluded,
        excluded_op_names=list(exclude_operators or []), calib_mode=calib_mode,
        quantized_dtype="auto",
        quantize_mode="smart", quantize_granularity=granularity)
    _collect_statistics(sym, args, auxs, images, int(batch_size), collector)
    qsym, qargs, qauxs = q.calib_graph(qsym=qsym, arg_params=args, aux_params=auxs,
                                       collector=collector, calib_mode=calib_mode,
                                       quantized_dtype="auto")
    qsym = qsym.get_backend_symbol("MKLDNN_QUANTIZE")
    qnet = _symbol_block(qsym, qargs, qauxs)
    if path is not None:
        save_quantized(qnet, path)
    return qnet


def _feature_batchnorms(sym, image_size):
    """Names of the BatchNorm layers whose input is (N, C), not (N, C, H, W)."""
    internals = sym.get_internals()
    _, shapes, _ = internals.infer_shape_partial(data=(1, 3) + tuple(image_size))
    shape_of = dict(zip(internals.list_outputs(), shapes))
    return [s.name for s in internals
            if s.attr("op_name") == "BatchNorm"
            and len(shape_of.get(s.name + "_output", ()) or ()) == 2]


def _collect_statistics(sym, args, auxs, images, batch_size, collector):
    """Feed ``collector`` the float32 outputs of the layers it calibrates, batch by batch.

    MXNet's own collection reads every layer's output from an executor monitor callback,
    while the oneDNN graph runs; some of those reads fail in MXNet 1.9.1 ("We can't generate
    TBlob for MKLDNN data"), are dropped inside the callback, and the layer silently keeps a
    partial (or no) range. Here the layers to calibrate are the outputs of the graph
    instead, read once each batch is computed.
    """
    mx = _mx()

    internals = sym.get_internals()
    available = set(internals.list_outputs())
    names = [n for n in collector.include_layer if n in available]
    group = mx.sym.Group([internals[n] for n in names])
    it = mx.io.NDArrayIter(images, batch_size=min(batch_size, len(images)),
                           last_batch_handle="pad", data_name="data")
    mod = mx.mod.Module(symbol=group, context=mx.cpu(), data_names=["data"], label_names=None)
    mod.bind(for_training=False, data_shapes=it.provide_data)
    mod.set_params(args, auxs, allow_missing=False, force_init=True, allow_extra=True)
    for batch in it:
        mod.forward(batch, is_train=False)
        for name, out in zip(names, mod.get_outputs()):
            # through numpy: a plain-layout copy, without the last batch's padded images
            out = mx.nd.array(out.asnumpy()[:it.batch_size - batch.pad], ctx=mx.cpu())
            # the collector wraps the handle in an NDArray that frees it: hand it over
            handle, out.handle = out.handle, None
            collector.collect(name.encode(), handle)


def _symbol_block(sym, args, auxs):
    from .fusion import symbol_block

    qnet = symbol_block(sym, args, auxs)
    qnet.hybridize(static_alloc=True)  # not static_shape: see gluonfr.utils.fusion
    return qnet


def save_quantized(qnet, path):
    """Save a quantized network as ``<path>-symbol.json`` + ``<path>-0000.params``.

    Both files are written atomically (a crash leaves neither half-written).

    Returns
    -------
    (str, str)
        The symbol and params paths.
    """
    mx = _mx()
    from .fileio import atomic_paths

    sym_path, params_path = f"{path}-symbol.json", f"{path}-0000.params"
    out = qnet(mx.sym.var("data"))
    params = qnet.collect_params()
    arg_names = set(out.list_arguments())
    save = {("arg:" if n in arg_names else "aux:") + n: p.data(mx.cpu())
            for n, p in params.items()}
    with atomic_paths(sym_path, params_path) as (tmp_sym, tmp_params):
        out.save(tmp_sym, remove_amp_cast=False)
        mx.nd.save(tmp_params, save)
    return sym_path, params_path


def load_quantized(path):
    """Load a network saved by :func:`save_quantized` (no calibration needed).

    Parameters
    ----------
    path : str
        The prefix given to :func:`save_quantized` (or its ``-symbol.json`` file).
    """
    mx = _mx()

    if path.endswith("-symbol.json"):
        path = path[:-len("-symbol.json")]
    sym_path, params_path = f"{path}-symbol.json", f"{path}-0000.params"
    for p in (sym_path, params_path):
        if not os.path.isfile(p):
            raise FileNotFoundError(f"{p}: not found (save_quantized writes "
                                    "<prefix>-symbol.json and <prefix>-0000.params)")
    sym = mx.sym.load(sym_path)
    saved = mx.nd.load(params_path)
    args = {k[4:]: v for k, v in saved.items() if k.startswith("arg:")}
    auxs = {k[4:]: v for k, v in saved.items() if k.startswith("aux:")}
    return _symbol_block(sym, args, auxs)


def as_int8(net, calib, calib_mode="naive", path=None, image_size=(112, 112)):
    """The int8 form of ``net``: loaded when ``calib`` is a :func:`save_quantized` prefix,
    else quantized on the crops ``calib`` names (:func:`quantize_int8`; saved at ``path``)."""
    if isinstance(calib, (str, os.PathLike)) and os.path.isfile(
            os.fspath(calib).removesuffix("-symbol.json") + "-symbol.json"):
        return load_quantized(os.fspath(calib))
    return quantize_int8(net, calib, calib_mode=calib_mode, path=path, image_size=image_size)


def perturb(emb, cosine, rng):
    """``emb`` (N, D) plus random directions: each row's cosine to its original is ``cosine``.

    Each row gets a random vector orthogonal to it, of ``sqrt(1 / cosine**2 - 1)`` times its
    norm (then ``cos = 1 / sqrt(1 + r**2)`` exactly).
    """
    x = np.asarray(emb, dtype=np.float64)
    n = rng.normal(size=x.shape)
    norm = np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-30)
    n -= (n * x).sum(1, keepdims=True) / norm ** 2 * x
    n *= np.sqrt(1.0 / cosine ** 2 - 1.0) * norm / np.maximum(
        np.linalg.norm(n, axis=1, keepdims=True), 1e-30)
    return x + n


def flip_distances(emb, emb_flip):
    """The squared L2 distances of the pairs' unit flip-fused embeddings, as the protocol's."""
    from ..metrics.embeddings import combine_flip
    from ..metrics.protocol import pair_distances

    return pair_distances(np.asarray(combine_flip(emb, emb_flip), dtype=np.float64))


def matched_cosine(emb, emb_flip, distance_sd, seed=0, draws=2, rounds=4):
    """The cosine of random moves (:func:`perturb`) that change the pairs' distances by
    ``distance_sd``.

    An error the network's layers propagate is not isotropic: int8's moves the pairs'
    distances about three times as much as a random move of the same cosine does. A random
    move matched on the distance change is the fair stand-in for it.

    Parameters
    ----------
    emb, emb_flip : numpy.ndarray
        Embeddings of the pairs' images and of their mirror images, in pair order.
    distance_sd : float
        Standard deviation over the pairs of the change of :func:`flip_distances` to match
        (e.g. int8's against float32's).
    seed, draws, rounds : int
        The search: ``rounds`` rescalings of the move, each measured over ``draws`` draws
        (the change grows in proportion to the move's size while it is small).

    Returns
    -------
    float
    """
    if distance_sd <= 0:
        return 1.0
    rng = np.random.RandomState(seed)
    base = flip_distances(emb, emb_flip)
    size = 0.05  # the tangent of the move's angle: cosine 1 / sqrt(1 + size ** 2)
    for _ in range(int(rounds)):
        cosine = 1.0 / np.sqrt(1.0 + size ** 2)
        got = np.mean([np.std(flip_distances(perturb(emb, cosine, rng),
                                             perturb(emb_flip, cosine, rng)) - base)
                       for _ in range(int(draws))])
        if got <= 0:  # pairs of identical rows only: no move changes a distance
            return 1.0
        size *= distance_sd / got
    return float(1.0 / np.sqrt(1.0 + size ** 2))


def noise_resolution(images, issame, emb, emb_flip, cosine, draws=20, nfolds=10, seed=0,
                     base=None):
    """How far a set's accuracy moves when its embeddings move as far as int8's, at random.

    Each draw moves every float32 embedding (and its mirror image's) to cosine ``cosine`` of
    itself in a random direction (:func:`perturb`) and runs the verification protocol again.
    On a set of few or weakly separated pairs, noise much smaller than int8's already moves
    the accuracy by more than the int8 bar: there the int8 difference is no evidence either
    way. Random moves of a given cosine change the pairs' distances less than int8's
    errors of that cosine do (those follow the directions the network is sensitive to): match
    the cosine on the distances with :func:`matched_cosine`, as :func:`compare_int8` does.

    Parameters
    ----------
    images, issame
        The target (as :func:`gluonfr.metrics.load_targets` gives it).
    emb, emb_flip : numpy.ndarray
        Its float32 embeddings.
    cosine : float
        Cosine of each perturbed embedding to its original (e.g. int8's mean cosine).
    draws, nfolds, seed : int
    base : float, optional
        The unperturbed embeddings' accuracy, if the caller has it already.

    Returns
    -------
    (float, float)
        Mean and standard deviation of the accuracy change, in points.
    """
    from ..metrics import evaluate_targets

    def accuracy(e):
        return float(evaluate_targets(None, {"t": (images, issame)}, nfolds=nfolds,
                                      forward=lambda _images, _flip: e)["t"]["accuracy"])

    rng = np.random.RandomState(seed)
    base = accuracy((emb, emb_flip)) if base is None else base
    diffs = [100.0 * (accuracy((perturb(emb, cosine, rng), perturb(emb_flip, cosine, rng)))
                      - base) for _ in range(int(draws))]
    return float(np.mean(diffs)), float(np.std(diffs))


def compare_int8(net, qnet, targets, batch_size=64, nfolds=10, progress=False,
                 keep_embeddings=False, noise_draws=20):
    """float32 against int8 on verification targets: accuracies and embedding cosines.

    Parameters
    ----------
    net : mxnet.gluon.HybridBlock
        The float32 network.
    qnet : mxnet.gluon.HybridBlock
        Its int8 form (:func:`quantize_int8`).
    targets : dict
        ``{name: (images, issame)}`` (:func:`gluonfr.metrics.load_targets`).
    batch_size, nfolds, progress
        As :func:`gluonfr.metrics.evaluate_targets`.
    keep_embeddings : bool
        Also return each target's int8 ``(emb, emb_flip)`` as ``int8_embeddings`` (for an
        evaluation of the int8 network that should not embed the images again).
    noise_draws : int
        Draws of :func:`noise_resolution` (0: none), with random moves that change the pairs'
        distances as much as int8 does (:func:`matched_cosine`).

    Returns
    -------
    dict
        Per target: ``float32`` and ``int8`` (flip accuracy), ``difference`` (int8 - float32,
        in points), ``cosine_mean`` / ``cosine_min`` (int8 vs float32 embedding of every image
        and of its mirror image), ``met``: ``difference >= -``
        :data:`INT8_MAX_ACCURACY_DROP` and ``cosine_mean >=`` :data:`INT8_MIN_COSINE`, and
        ``distance_sd``: standard deviation over the pairs of the change int8 makes to each
        pair's distance (:func:`flip_distances`), ``noise_cosine``: the cosine of random moves
        that change them as much (:func:`matched_cosine`), and ``noise_mean`` /
        ``noise_sd``: the accuracy change those moves cause (:func:`noise_resolution`;
        ``noise_cosine``, ``noise_mean`` and ``noise_sd`` are ``None`` without draws).
    """
    from ..metrics import evaluate_targets, forward_images

    out = {}
    for name, (images, issame) in targets.items():
        embs, accuracy, raw, dist = [], {}, {}, {}
        for key, model in (("float32", net), ("int8", qnet)):
            emb, emb_flip = forward_images(model, images, batch_size=batch_size, flip=True,
                                           progress=progress, desc=f"{name} {key}")
            raw[key] = (emb, emb_flip)
            embs.append(np.concatenate([emb, emb_flip]).astype(np.float64))
            result = evaluate_targets(None, {name: (images, issame)}, nfolds=nfolds,
                                      return_distances=True,
                                      forward=lambda _images, _flip, e=(emb, emb_flip): e)[name]
            accuracy[key], dist[key] = float(result["accuracy"]), result["distances"]
        a, b = embs
        cos = (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1),
                                          1e-30)
        diff = 100.0 * (accuracy["int8"] - accuracy["float32"])
        distance_sd = float(np.std(dist["int8"].astype(np.float64) - dist["float32"]))
        noise_cos, noise = None, (None, None)
        if noise_draws:
            noise_cos = matched_cosine(*raw["float32"], distance_sd)
            noise = noise_resolution(images, issame, *raw["float32"], noise_cos,
                                     draws=noise_draws, nfolds=nfolds, base=accuracy["float32"])
        if keep_embeddings:
            accuracy["int8_embeddings"] = raw["int8"]
        out[name] = dict(accuracy, difference=diff, cosine_mean=float(cos.mean()),
                         cosine_min=float(cos.min()),
                         met=bool(diff >= -INT8_MAX_ACCURACY_DROP - 1e-9
                                  and cos.mean() >= INT8_MIN_COSINE),
                         distance_sd=distance_sd, noise_cosine=noise_cos,
                         noise_mean=noise[0], noise_sd=noise[1])
    return out
