"""Embeddings of verification images, with insightface's flip test-time augmentation."""
import mxnet as mx
import numpy as np
from mxnet import autograd, gluon
from tqdm import tqdm

from ..utils.context import as_context_list
from ..utils.fusion import fuse as fused
from ..utils.fusion import fusion_available

__all__ = ["extract_embeddings", "forward_images", "forward_onnx", "combine_flip", "FLIP_MODES"]

#: 'sum': insightface's Accuracy-Flip (``emb(x) + emb(flip(x))``, normalised later);
#: 'concat': ``[emb(x), emb(flip(x))]`` (insightface's commented-out variant, gluon-face's).
FLIP_MODES = ("sum", "concat")
_CPU = mx.cpu()


def _check_params_on(net, ctx_list):
    """Fail early, and clearly, when the parameters are not where the batches will go."""
    params = list(net.collect_params().values())
    if not params:
        return
    try:
        have = params[0].list_ctx()
    except RuntimeError as e:
        raise ValueError(f"the network's parameters are not initialised ({e}); call "
                         "net.initialize() or net.load_parameters() first") from None
    missing = [c for c in ctx_list if c not in have]
    if missing:
        raise ValueError(f"the network's parameters live on {have} but ctx asks for {ctx_list}; "
                         "load or initialise them with ctx=<that list>, or call "
                         "net.collect_params().reset_ctx(ctx)")


def _check_images(images):
    shape = tuple(images.shape)
    if len(shape) != 4 or shape[3] != 3:
        raise ValueError(f"images must be (N, H, W, 3) RGB as returned by gluonfr.data.load_bin "
                         f"(channels last); got shape {shape}")
    if shape[0] == 0:
        raise ValueError("images is empty: nothing to embed")


def _to_nchw_float(batch):
    """HWC uint8 (NDArray or numpy) -> NCHW float32 NDArray on the CPU, values kept 0..255."""
    if not isinstance(batch, mx.nd.NDArray):
        batch = mx.nd.array(np.ascontiguousarray(batch), dtype=np.float32)
    return batch.astype(np.float32, copy=False).transpose((0, 3, 1, 2))


def cpu_fused(net, images, ctx, fuse=True):
    """``net`` in its oneDNN-fused form (:func:`gluonfr.utils.fuse`) when ``fuse`` and
    ``ctx`` is one CPU context of an MKLDNN build, else ``net``; ``images`` (HWC) give the
    example input. An already fused network comes back as it is, so a caller that embeds
    several image sets fuses once by passing the result on."""
    if fuse and fusion_available(as_context_list(ctx)):
        return fused(net, _to_nchw_float(images[:1]))
    return net


def _first_output(out):
    # Training-style networks may return (embedding, logits); the embedding comes first.
    return out[0] if isinstance(out, (list, tuple)) else out


def forward_images(net, images, ctx=_CPU, batch_size=64, flip=True, progress=True,
                   desc="embedding", fuse=True):
    """Run a network over verification images, and over their mirror images.

    Parameters
    ----------
    net : mxnet.gluon.Block
        Takes NCHW float32 RGB in 0..255 (the network normalises), returns (N, D) or a tuple
        whose first element is (N, D). Evaluated in inference mode (BatchNorm running
        statistics, no recording), even when called inside ``autograd.record()``.
    images : mxnet.nd.NDArray or numpy.ndarray, (N, H, W, 3)
        HWC RGB, as returned by :func:`gluonfr.data.load_bin`; converted batch by batch.
    ctx : mxnet.Context or list of Context
        With several, each batch is split across them (the parameters must live on all).
    batch_size : int
        Images per batch (before splitting). Any N works: the last batch is just smaller.
    flip : bool
        Also embed the horizontally flipped images.
    progress : bool
        Show a tqdm bar.
    desc : str
        Label of the bar.
    fuse : bool
        On one CPU context with MXNet's oneDNN backend, run the oneDNN-fused form of ``net``
        (:func:`gluonfr.utils.fuse`; ``net`` itself is not changed). ``False``: the graph as
        it is.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray or None)
        float32 (N, D) raw embeddings of the images, and of their mirror images (None
        without ``flip``).
    """
    ctx_list = as_context_list(ctx)
    _check_images(images)
    if int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    batch_size = int(batch_size)
    _check_params_on(net, ctx_list)
    num = int(images.shape[0])
    net = cpu_fused(net, images, ctx_list, fuse)
    outputs, flipped = [], []

    def collect(pending):
        outs, flips, n = pending
        outputs.append(np.concatenate([o.asnumpy() for o in outs]))
        if flip:
            flipped.append(np.concatenate([o.asnumpy() for o in flips]))
        bar.update(n)

    with autograd.pause(train_mode=False), \
            tqdm(total=num, desc=desc, unit="img", disable=not progress, leave=False) as bar:
        pending = None
        for start in range(0, num, batch_size):
            batch = _to_nchw_float(images[start:start + batch_size])
            n = batch.shape[0]
            # split_and_load needs at least one sample per device: a short last batch uses fewer.
            parts = gluon.utils.split_and_load(batch, ctx_list[:min(n, len(ctx_list))],
                                               even_split=False)
            # Queue every device's work, then wait for the previous batch only: the devices
            # overlap, and at most two batches are in flight.
            outs = [_first_output(net(x)) for x in parts]
            flips = [_first_output(net(mx.nd.flip(x, axis=3))) for x in parts] if flip else []
            if pending is not None:
                collect(pending)
            pending = (outs, flips, n)
        collect(pending)
    emb = np.concatenate(outputs).astype(np.float32, copy=False)
    if emb.ndim != 2 or emb.shape[0] != num:
        raise ValueError(f"the network must return one embedding vector per image, (N, D); "
                         f"got {emb.shape} for {num} images")
    return emb, (np.concatenate(flipped).astype(np.float32, copy=False) if flip else None)


def forward_onnx(session, images, batch_size=64, flip=True, mean=0.0, std=1.0, bgr=False):
    """:func:`forward_images` for an ONNX Runtime session.

    Parameters
    ----------
    session : onnxruntime.InferenceSession
        Of an NCHW float32 network. gluonfr's exports (:func:`gluonfr.utils.export_onnx`)
        take RGB 0..255 (the defaults); a third-party model gets its own preprocessing
        (see :func:`gluonfr.model_zoo.cards.onnx_input_convention`).
    images : numpy.ndarray or NDArray, (N, H, W, 3)
        HWC RGB (e.g. :func:`gluonfr.data.load_bin`'s images).
    batch_size : int
    flip : bool
        Also embed the horizontally flipped images.
    mean, std : float
        The network's input is ``(pixels - mean) / std``.
    bgr : bool
        Feed the channels in BGR order.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray or None)
        float32 (N, D) raw embeddings of the images and of their mirror images.
    """
    _check_images(images)
    if hasattr(images, "asnumpy"):  # np.asarray would read an NDArray element by element
        images = images.asnumpy()
    name = session.get_inputs()[0].name
    outs, flips = [], []
    for start in range(0, len(images), int(batch_size)):
        batch = np.asarray(images[start:start + int(batch_size)]).transpose(0, 3, 1, 2)
        if bgr:
            batch = batch[:, ::-1]
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        if mean != 0.0 or std != 1.0:
            batch = (batch - np.float32(mean)) / np.float32(std)
        outs.append(session.run(None, {name: batch})[0])
        if flip:
            flips.append(session.run(None, {name: np.ascontiguousarray(batch[:, :, :, ::-1])})[0])
    return (np.concatenate(outs).astype(np.float32, copy=False),
            np.concatenate(flips).astype(np.float32, copy=False) if flip else None)


def combine_flip(emb, emb_flip, mode="sum"):
    """Fuse the embeddings of images and of their mirror images.

    Parameters
    ----------
    emb, emb_flip : numpy.ndarray, (N, D)
        Raw (unnormalised) embeddings: as in insightface, the image with the larger norm
        weighs more in the sum.
    mode : {'sum', 'concat'}

    Returns
    -------
    numpy.ndarray
        (N, D) for 'sum', (N, 2D) for 'concat'.
    """
    if mode not in FLIP_MODES:
        raise ValueError(f"flip mode must be one of {FLIP_MODES}, got {mode!r}")
    emb, emb_flip = np.asarray(emb), np.asarray(emb_flip)
    if emb.shape != emb_flip.shape:
        raise ValueError(f"embeddings {emb.shape} and flipped embeddings {emb_flip.shape} must "
                         "have the same shape")
    return emb + emb_flip if mode == "sum" else np.concatenate([emb, emb_flip], axis=1)


def extract_embeddings(net, images, ctx=_CPU, batch_size=64, flip=True, mode="sum",
                       progress=True, fuse=True):
    """Embeddings of verification images, flip-fused as insightface does.

    Parameters
    ----------
    net : mxnet.gluon.Block
        Embedding network: NCHW float32 RGB in 0..255 in, (N, D) out.
    images : mxnet.nd.NDArray or numpy.ndarray, (N, H, W, 3)
        As returned by :func:`gluonfr.data.load_bin` (HWC uint8 RGB).
    ctx : mxnet.Context or list of Context
        A list splits each batch across the devices.
    batch_size : int
        Any N works, including N < batch_size and a short last batch.
    flip : bool
        Add (or concatenate) the embedding of the horizontally flipped image.
    mode : {'sum', 'concat'}
        How to fuse with the flipped embedding: 'sum' is insightface's "Accuracy-Flip".
    progress : bool
        Show a tqdm bar.
    fuse : bool
        Run the oneDNN-fused graph on the CPU (see :func:`forward_images`).

    Returns
    -------
    numpy.ndarray
        float32 (N, D), or (N, 2D) for ``mode='concat'``; raw, not normalised
        (:func:`gluonfr.metrics.verification` normalises).

    Examples
    --------
    >>> images, issame = gluonfr.data.load_bin('lfw.bin')
    >>> emb = extract_embeddings(net, images, ctx=mx.cpu(), batch_size=64)
    >>> verification(emb, issame)['accuracy']
    """
    if mode not in FLIP_MODES:
        raise ValueError(f"flip mode must be one of {FLIP_MODES}, got {mode!r}")
    emb, emb_flip = forward_images(net, images, ctx=ctx, batch_size=batch_size, flip=flip,
                                   progress=progress, fuse=fuse)
    return combine_flip(emb, emb_flip, mode) if flip else emb
