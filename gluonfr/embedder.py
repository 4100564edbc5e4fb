"""Embed and compare faces: images in, L2-normalised embeddings and decisions out.

:class:`FaceEmbedder` wraps a model-zoo network (or an exported one) behind one call that
accepts what people have at hand — file paths, RGB or BGR arrays, one image or many,
already-aligned 112x112 crops, photos with their 5 landmarks, or whole photos in which
:class:`gluonfr.detect.FaceDetector` finds the faces — and runs it through
MXNet or ONNX Runtime with the same flip test-time augmentation the verification protocol
uses.
"""
import json
import logging
import os
import tempfile
import warnings

import mxnet as mx
import numpy as np

from ._optional import import_optional
from .data.align import norm_crop
from .data.image import read_image
from .detect import detect_and_align, no_face_error
from .metrics.embeddings import combine_flip, forward_images, forward_onnx
from .model_zoo.loading import load_embedding_net
from .utils.fusion import fuse as fuse_graph
from .utils.fusion import fusion_available

logger = logging.getLogger(__name__)

__all__ = ["FaceEmbedder", "DEFAULT_THRESHOLD", "threshold_from_eval"]

#: cosine-similarity threshold used until one is calibrated; it corresponds to a squared-L2
#: threshold of 1.5, near where ArcFace-trained models put LFW's best threshold
DEFAULT_THRESHOLD = 0.25
_CPU = mx.cpu()


def threshold_from_eval(json_path, target=None):
    """The cosine threshold that ``scripts/eval.py --json`` found for a target.

    The protocol's threshold is on the squared L2 distance ``d`` of unit vectors
    (``d = 2 - 2 cos``), averaged over the folds; the cosine threshold is ``1 - d / 2``.

    Parameters
    ----------
    json_path : str
        Output of ``scripts/eval.py --json``.
    target : str, optional
        Which target's threshold (default: ``lfw`` if present, else the first one).
    """
    with open(json_path) as f:
        targets = json.load(f).get("targets", {})
    if not targets:
        raise ValueError(f"{json_path}: no targets in this eval result")
    if target is None:
        target = "lfw" if "lfw" in targets else next(iter(targets))
    if target not in targets:
        raise ValueError(f"{json_path}: no target {target!r}; it has {sorted(targets)}")
    entry = targets[target]
    variant = entry.get("flip") or entry.get("noflip")
    return 1.0 - float(variant["threshold"]) / 2.0


class FaceEmbedder:
    """Face embeddings and same/different decisions from one object.

    Parameters
    ----------
    model : str
        Model-zoo name (``mobilefacenet``, ``iresnet50``, ...).
    params : str, optional
        The backbone's parameter file (as training saves it). Without it, ``pretrained``
        decides: the published parameters, or (``pretrained=False``) a freshly initialised
        network, which is only useful for trying the API (a warning says so).
    pretrained : bool
        Load the published parameters from the model store.
    ctx : mxnet.Context
        Device for the MXNet backend.
    backend : {'mxnet', 'onnx'}
        ``'onnx'`` exports the network once and runs it with ONNX Runtime (usually faster on
        CPU); ``onnx_path`` reuses an exported file instead.
    symbol : str, optional
        An exported ``-symbol.json`` (with ``params``) instead of a zoo model.
    onnx_path : str, optional
        An ``.onnx`` file to run (backend ``'onnx'``); ``model``/``params`` are then unused.
    input_mean, input_std : float, optional
        ``onnx_path``: the model's input is ``(pixels - input_mean) / input_std``. By default
        read from the model's card or graph (see
        :func:`gluonfr.model_zoo.cards.onnx_input_convention`), logged and kept in
        ``input_convention``.
    bgr : bool, optional
        ``onnx_path``: the model takes BGR (default RGB).
    flip : bool
        Add the embedding of the mirror image (insightface's flip "sum") before normalising.
    threshold : float, optional
        Cosine similarity at or above which two faces are called the same person; default
        :data:`DEFAULT_THRESHOLD`. Calibrate it with :func:`threshold_from_eval`.
    batch_size : int
        Images per forward pass.
    embedding_size : int, optional
        For zoo models trained with a non-default embedding size.
    precision : {'float32', 'int8'}
        ``'int8'`` (MXNet backend on CPU) runs an oneDNN int8 network: the one saved at
        ``calib`` when it names a :func:`gluonfr.utils.save_quantized` prefix, else one
        quantized now with :func:`gluonfr.utils.quantize_int8` on the crops ``calib`` names
        (a ``.bin``, a ``.rec`` folder, an image folder or an array of aligned crops).
    calib : str or array-like, optional
        See ``precision``.
    fuse : bool
        float32 on one CPU context (MXNet backend): run the oneDNN-fused graph
        (:func:`gluonfr.utils.fuse`: PReLUs folded into the convolutions, conv + BatchNorm +
        activation as one primitive; the embeddings match the plain graph's to float
        rounding). ``False`` runs the plain graph.
    detector : gluonfr.detect.FaceDetector, optional
        Finds the faces of whole photos; default: a :class:`~gluonfr.detect.FaceDetector`
        with its defaults, built when the first whole photo arrives.
    """

    def __init__(self, model="mobilefacenet", params=None, pretrained=False, ctx=_CPU,
                 backend="mxnet", symbol=None, onnx_path=None, flip=True, threshold=None,
                 batch_size=32, embedding_size=None, detector=None, input_mean=None,
                 input_std=None, bgr=None, precision="float32", calib=None, fuse=True):
        if backend not in ("mxnet", "onnx"):
            raise ValueError(f"backend must be 'mxnet' or 'onnx', got {backend!r}")
        if precision not in ("float32", "int8"):
            raise ValueError(f"precision must be 'float32' or 'int8', got {precision!r}")
        if precision == "int8" and (backend != "mxnet" or calib is None):
            raise ValueError("precision='int8' needs backend='mxnet' and calib= (a "
                             "save_quantized prefix or calibration crops)")
        self.precision = precision
        self.backend = backend
        self.ctx = ctx
        self.flip = bool(flip)
        self.threshold = DEFAULT_THRESHOLD if threshold is None else float(threshold)
        self.batch_size = int(batch_size)
        self.net = None
        self._session = None
        self._detector = detector
        if onnx_path is None or backend == "mxnet":
            self.net = self._load_net(model, params, pretrained, ctx, symbol, embedding_size)
        if precision == "int8":
            from .utils.quantize import as_int8

            self.net = as_int8(self.net, calib)
        self.fuse = bool(fuse)
        if backend == "mxnet" and self.fuse and fusion_available(ctx):
            self.net = fuse_graph(self.net, (1, 3, 112, 112))  # int8 nets come back as they are
        # gluonfr networks (and their exports) take RGB 0..255 and normalise in the graph
        self.input_convention = {"mean": 0.0, "std": 1.0, "bgr": False,
                                 "reason": "gluonfr network: RGB 0..255, normalised inside"}
        if onnx_path is not None and backend == "onnx":
            from .model_zoo.cards import onnx_input_convention

            self.input_convention = onnx_input_convention(onnx_path, input_mean, input_std,
                                                          bgr)
            logger.info("%s: %s", onnx_path, self.input_convention["reason"])
        elif input_mean is not None or input_std is not None or bgr:
            raise ValueError("input_mean/input_std/bgr apply to onnx_path models only")
        if backend == "onnx":
            self._session = self._onnx_session(onnx_path)

    @staticmethod
    def _load_net(model, params, pretrained, ctx, symbol, embedding_size):
        if symbol is not None or params is not None or pretrained:
            return load_embedding_net(model=None if symbol else model, params=params,
                                      symbol=symbol, ctx=ctx, embedding_size=embedding_size)
        from .model_zoo import get_model

        warnings.warn(f"FaceEmbedder: {model!r} has neither params nor pretrained=True, so it "
                      "is randomly initialised: its embeddings mean nothing", stacklevel=3)
        kwargs = {} if embedding_size is None else {"embedding_size": embedding_size}
        net = get_model(model, ctx=ctx, **kwargs)
        net.hybridize(static_alloc=True, static_shape=True)
        return net

    def _onnx_session(self, onnx_path):
        ort = import_optional("onnxruntime", "onnx", "FaceEmbedder(backend='onnx')")

        if onnx_path is None:
            from .utils.onnx_export import export_onnx

            self._onnx_dir = tempfile.TemporaryDirectory(prefix="gluonfr-onnx-")
            onnx_path = export_onnx(self.net, os.path.join(self._onnx_dir.name, "net.onnx"))
        return ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])

    # -- inputs ---------------------------------------------------------------------------
    @property
    def detector(self):
        """The :class:`gluonfr.detect.FaceDetector` used for whole photos (built on first use)."""
        if self._detector is None:
            from .detect import FaceDetector

            self._detector = FaceDetector()
        return self._detector

    def align(self, images, color="rgb", landmarks=None, faces="largest", detect=None):
        """The aligned 112x112 RGB crops :meth:`embed` feeds the network, with their faces.

        Parameters
        ----------
        images, color, landmarks
            As :meth:`embed`.
        faces : {'largest', 'all'}
            For whole photos: keep the most prominent face (largest box) or every face.
        detect : bool, optional
            Find the faces with :attr:`detector`. Default (``None``): for every image that
            is not a 112x112 crop and has no landmarks given.

        Returns
        -------
        crops : numpy.ndarray
            (M, 112, 112, 3) uint8 RGB; M = number of images, or of faces with ``'all'``.
        sources : list of (int, Face or None)
            Per crop: the index of its image and the detected face (``None`` when the image
            was a crop or its landmarks were given).

        Raises
        ------
        gluonfr.detect.NoFaceError
            A photo in which the detector finds no face (the message names the file).
        """
        if color not in ("rgb", "bgr"):
            raise ValueError(f"color must be 'rgb' or 'bgr', got {color!r}")
        if faces not in ("largest", "all"):
            raise ValueError(f"faces must be 'largest' or 'all', got {faces!r}")
        if isinstance(images, (str, os.PathLike)):
            items = [images]
        elif isinstance(images, np.ndarray) and images.ndim == 3:
            items = [images]
        elif isinstance(images, mx.nd.NDArray):
            items = list(images.asnumpy()) if images.ndim == 4 else [images.asnumpy()]
        else:
            items = list(images)
        if landmarks is not None:
            landmarks = np.asarray(landmarks, dtype=np.float64)
            if landmarks.shape == (5, 2):
                landmarks = landmarks[None]
            if landmarks.shape != (len(items), 5, 2):
                raise ValueError(f"landmarks: expected shape ({len(items)}, 5, 2) (one set of "
                                 f"5 (x, y) points per image), got {landmarks.shape}")
        crops, sources = [], []
        for i, item in enumerate(items):
            if isinstance(item, (str, os.PathLike)):
                image = read_image(item)  # files are decoded to RGB whatever ``color`` says
                where = os.fspath(item)
            else:
                image = np.asarray(item)
                if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
                    raise ValueError(f"image {i}: expected HWC uint8 with 3 channels, got "
                                     f"dtype {image.dtype} and shape {image.shape}")
                if color == "bgr":
                    image = image[:, :, ::-1]
                where = f"image {i}"
            if landmarks is not None:
                crops.append(norm_crop(image, landmarks[i]))
                sources.append((i, None))
                continue
            is_crop = image.shape[:2] == (112, 112)
            if detect is False or (detect is None and is_crop):
                if not is_crop:
                    raise ValueError(f"{where}: {image.shape[1]}x{image.shape[0]} is not an "
                                     "aligned 112x112 crop; pass its 5 landmarks "
                                     "(landmarks=...) or let the detector find the face")
                crops.append(np.ascontiguousarray(image))
                sources.append((i, None))
                continue
            if faces == "largest":
                crop, k, found = detect_and_align(self.detector, image, where, color="rgb")
                crops.append(crop)
                sources.append((i, found[k]))
                continue
            found = self.detector.detect(image, color="rgb")
            if not found:
                raise no_face_error(self.detector, where)
            for face in found:
                crops.append(norm_crop(image, face.landmarks))
                sources.append((i, face))
        if not crops:
            raise ValueError("no images given")
        return np.stack([np.ascontiguousarray(c) for c in crops]), sources

    # -- outputs --------------------------------------------------------------------------
    def embed(self, images, color="rgb", landmarks=None, faces="largest", detect=None,
              return_faces=False, return_norm=False):
        """L2-normalised embeddings of one or several faces.

        Parameters
        ----------
        images : str, path, numpy.ndarray, NDArray or a list of them
            File paths (decoded to RGB), HWC uint8 arrays or an (N, H, W, 3) batch: aligned
            112x112 crops or whole photos.
        color : {'rgb', 'bgr'}
            Channel order of the *arrays* given (OpenCV's ``imread`` gives BGR).
        landmarks : array-like, optional
            (5, 2) for one image or (N, 5, 2): left eye, right eye, nose, left and right
            mouth corner as seen in the image. Images are then aligned with
            :func:`gluonfr.data.align.norm_crop`. Without landmarks, whole photos go through
            the face detector (see :meth:`align`).
        faces : {'largest', 'all'}
            Whole photos: embed the most prominent face (default) or every face found.
        detect : bool, optional
            Force (``True``) or forbid (``False``) detection; see :meth:`align`.
        return_faces : bool
            Also return :meth:`align`'s ``sources`` (image index and detected face per row).
        return_norm : bool
            Also return the feature norm of each face (see :meth:`embed_crops`): a quality
            score for networks trained with ``magface`` or ``adaface`` (larger = more
            recognisable).

        Returns
        -------
        numpy.ndarray
            (N, D) float32, each row of unit length; ``(embeddings, norms)`` with
            ``return_norm``, then ``sources`` last with ``return_faces``.
        """
        crops, sources = self.align(images, color, landmarks, faces, detect)
        out = self.embed_crops(crops, return_norm=return_norm)
        out = out if return_norm else (out,)
        out = out + (sources,) if return_faces else out
        return out if len(out) > 1 else out[0]

    def embed_crops(self, crops, return_norm=False):
        """Unit embeddings of an (N, 112, 112, 3) uint8 RGB batch of aligned crops.

        With ``return_norm`` also the (N,) float32 norms of the network's raw features: the
        mean of the image's and its mirror's when flipping (the norm of their sum would
        also measure how much the two agree), the image's otherwise.
        """
        if self.backend == "onnx":
            conv = self.input_convention
            emb, emb_flip = forward_onnx(self._session, crops, batch_size=self.batch_size,
                                         flip=self.flip, mean=conv["mean"], std=conv["std"],
                                         bgr=conv["bgr"])
        else:
            emb, emb_flip = forward_images(self.net, crops, ctx=self.ctx,
                                           batch_size=self.batch_size, flip=self.flip,
                                           progress=False, fuse=self.fuse)
        fused = combine_flip(emb, emb_flip, "sum") if self.flip else emb
        norms = np.linalg.norm(fused, axis=1, keepdims=True)
        unit = (fused / np.maximum(norms, 1e-12)).astype(np.float32)
        if not return_norm:
            return unit
        quality = np.linalg.norm(emb, axis=1)
        if self.flip:
            quality = 0.5 * (quality + np.linalg.norm(emb_flip, axis=1))
        return unit, quality.astype(np.float32)

    def compare(self, a, b, color="rgb", landmarks_a=None, landmarks_b=None, return_crops=False):
        """Cosine similarity of two faces and whether they pass the threshold.

        ``a`` and ``b`` are one image each (a path or an array): aligned crops, photos with
        their landmarks, or whole photos whose most prominent face is detected.

        Returns
        -------
        (float, bool)
            The similarity in [-1, 1] and ``similarity >= threshold``; with
            ``return_crops``, also the two aligned RGB crops that were compared.
        """
        crops = []
        for side, image, lmk in (("a", a, landmarks_a), ("b", b, landmarks_b)):
            crop, _ = self.align(image, color, lmk)
            if len(crop) != 1:
                raise ValueError(f"compare takes one image on each side, got {len(crop)} for "
                                 f"{side}; use embed() for batches")
            crops.append(crop[0])
        ea, eb = self.embed_crops(np.stack(crops))
        similarity = float(np.dot(ea, eb))
        if return_crops:
            return similarity, similarity >= self.threshold, crops
        return similarity, similarity >= self.threshold
