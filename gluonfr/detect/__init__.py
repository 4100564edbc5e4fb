"""Face detection with 5 landmarks: raw photos in, faces ready for :func:`norm_crop` out.

:class:`FaceDetector` runs OpenCV's ``cv2.FaceDetectorYN`` with the YuNet 2023mar model
(OpenCV Zoo, MIT), a 0.23 MB network that gives a box, five landmarks and a score per face.
The model file is fetched once through the sha1-checked store
(:func:`gluonfr.model_zoo.model_store.get_third_party_file`) unless a path is given.

YuNet's five points come image-left eye first (the person's right eye), then the other eye,
the nose tip and the two mouth corners in the same image-left-first order: exactly the
arcface template's order (left eye, right eye, nose, left and right mouth corner *as seen in
the image*), so the landmarks go to ``norm_crop`` unchanged. The tests check this on a
photo and on its mirror image, and against the recorded landmarks of the real test photos.
"""
import functools
import os
from typing import NamedTuple

import cv2
import numpy as np

from ..data.image import read_image

__all__ = ["Face", "FaceDetector", "DEFAULT_MODEL", "pick_face", "detect_and_align",
           "no_face_error", "NoFaceError"]

#: The store's name of the default detector model (see ``model_store._third_party``).
DEFAULT_MODEL = "face_detection_yunet_2023mar.onnx"


class NoFaceError(ValueError):
    """No face was found in an image; the message names the image."""


class Face(NamedTuple):
    """One detected face (a named tuple ``(box, landmarks, score)``).

    - ``box``: (x, y, w, h) float32 in the original image's pixels.
    - ``landmarks``: (5, 2) float32 (x, y) of left eye, right eye, nose tip, left and right
      mouth corner as seen in the image (the arcface template's order, ready for
      ``norm_crop``).
    - ``score``: detector confidence in [0, 1].
    """

    box: np.ndarray
    landmarks: np.ndarray
    score: float

    @property
    def area(self):
        """Box area in pixels (the "most prominent face" is the largest)."""
        return float(self.box[2] * self.box[3])


def pick_face(faces, rule="largest"):
    """The index of the face to keep among several: ``'largest'`` box or best ``'score'``."""
    if not faces:
        raise ValueError("pick_face: no faces")
    if rule == "largest":
        return int(np.argmax([f.area for f in faces]))
    if rule == "score":
        return int(np.argmax([f.score for f in faces]))
    raise ValueError(f"pick rule must be 'largest' or 'score', got {rule!r}")


def detector_config(detector):
    """A hashable description of ``detector`` from which other processes rebuild it
    (:func:`detector_from_config`); ``'auto'`` stands for a default ``FaceDetector()``."""
    if detector == "auto":
        return ("auto",)
    return tuple(sorted({"model": detector.model, "min_size": detector.min_size,
                         "score_threshold": detector.score_threshold,
                         "nms_threshold": detector.nms_threshold,
                         "max_size": detector.max_size, "top_k": detector.top_k}.items()))


@functools.lru_cache(maxsize=4)
def detector_from_config(config):
    """The process's one detector for a :func:`detector_config` (built on first use)."""
    return FaceDetector() if config == ("auto",) else FaceDetector(**dict(config))


def no_face_error(detector, where):
    """The :class:`NoFaceError` for photo ``where``, with the thresholds that were used."""
    return NoFaceError(f"{where}: no face found (detector score threshold "
                       f"{detector.score_threshold}, minimum face size {detector.min_size:g} px)")


def detect_and_align(detector, image, where="image", size=112, rule="largest", color="bgr"):
    """Detect the faces of one photo and align the chosen one with ``norm_crop``.

    Parameters
    ----------
    detector : FaceDetector
    image : numpy.ndarray
        HWC uint8 photo in ``color`` order.
    where : str
        How errors name the photo (its path).
    size : int
        Side of the aligned crop.
    rule : {'largest', 'score'}
        Which face to keep when there are several (see :func:`pick_face`).

    Returns
    -------
    crop : numpy.ndarray
        ``size`` x ``size`` crop, same channel order as ``image``.
    index : int
        Position of the kept face in ``faces``.
    faces : list of Face
        Every face found, by score.

    Raises
    ------
    NoFaceError
        Naming ``where``.
    """
    from ..data.align import norm_crop

    faces = detector.detect(image, color=color)
    if not faces:
        raise no_face_error(detector, where)
    index = pick_face(faces, rule)
    return norm_crop(image, faces[index].landmarks, size), index, faces


def _is_single(image):
    return isinstance(image, (str, os.PathLike, bytes)) or (
        isinstance(image, np.ndarray) and image.ndim in (2, 3))


class FaceDetector:
    """Detect faces and their 5 landmarks in whole photos.

    Parameters
    ----------
    model : str, optional
        Path of a YuNet ``.onnx`` file; default: the store's YuNet 2023mar file.
    min_size : int
        Faces whose box is narrower or shorter than this (original pixels) are dropped.
    score_threshold : float
        Minimum detector confidence.
    nms_threshold : float
        IoU above which overlapping boxes are suppressed.
    max_size : int or None
        Photos whose longer side exceeds this are scaled down before detection (boxes and
        landmarks are mapped back to the original pixels). YuNet was trained at a few hundred
        pixels: its cost grows with the pixel count while larger inputs give no better
        boxes. ``None`` keeps every image at full size.
    top_k : int
        Candidates kept before NMS.
    ctx : mxnet.Context, optional
        ``gpu(i)`` runs the network on OpenCV's CUDA backend (needs an OpenCV built with
        CUDA); anything else runs on the CPU.
    root : str, optional
        Model cache folder (see :func:`gluonfr.model_zoo.model_store.get_third_party_file`).

    Examples
    --------
    >>> det = FaceDetector()
    >>> faces = det.detect("photo.jpg")              # doctest: +SKIP
    >>> crop = norm_crop(image, faces[0].landmarks)  # doctest: +SKIP
    """

    def __init__(self, model=None, min_size=20, score_threshold=0.6, nms_threshold=0.3,
                 max_size=1280, top_k=5000, ctx=None, root=None):
        if not hasattr(cv2, "FaceDetectorYN"):
            raise ImportError(f"FaceDetector needs cv2.FaceDetectorYN (OpenCV >= 4.8); this "
                              f"OpenCV is {cv2.__version__}")
        if model is None:
            from ..model_zoo.model_store import get_third_party_file

            model = get_third_party_file(DEFAULT_MODEL, root=root)
        model = os.fspath(model)
        if not os.path.isfile(model):
            raise FileNotFoundError(f"FaceDetector: model file {model!r} not found")
        if not 0.0 <= float(score_threshold) <= 1.0:
            raise ValueError(f"score_threshold must be in [0, 1], got {score_threshold}")
        if max_size is not None and int(max_size) < 32:
            raise ValueError(f"max_size must be >= 32 or None, got {max_size}")
        self.model = model
        self.min_size = float(min_size)
        self.score_threshold = float(score_threshold)
        self.nms_threshold = float(nms_threshold)
        self.max_size = None if max_size is None else int(max_size)
        self.top_k = int(top_k)
        backend, target = cv2.dnn.DNN_BACKEND_DEFAULT, cv2.dnn.DNN_TARGET_CPU
        if ctx is not None and getattr(ctx, "device_type", "cpu") == "gpu":
            backend, target = cv2.dnn.DNN_BACKEND_CUDA, cv2.dnn.DNN_TARGET_CUDA
        self._backend = (backend, target)
        try:
            self._create()
        except cv2.error as err:
            raise ValueError(f"FaceDetector: {model!r} is not a YuNet model OpenCV can load "
                             f"({str(err).strip().splitlines()[-1]})") from None

    def _create(self):
        self._net = cv2.FaceDetectorYN.create(self.model, "", (320, 320), self.score_threshold,
                                              self.nms_threshold, self.top_k, *self._backend)
        self._size = None

    def __getstate__(self):  # the cv2 object does not pickle: worker processes rebuild it
        state = self.__dict__.copy()
        state["_net"] = None
        state["_size"] = None
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._create()

    # -- inputs ---------------------------------------------------------------------------
    @staticmethod
    def _as_bgr(image, color, where):
        if isinstance(image, (str, os.PathLike, bytes, bytearray)):
            return read_image(image, color="bgr")  # decoded in BGR whatever ``color`` says
        arr = np.asarray(image)
        if arr.dtype != np.uint8 or arr.ndim not in (2, 3) or (
                arr.ndim == 3 and arr.shape[2] not in (1, 3)):
            raise ValueError(f"{where}: expected an HWC uint8 image with 1 or 3 channels (or "
                             f"HW grayscale), got dtype {arr.dtype} and shape {arr.shape}")
        if arr.ndim == 2 or arr.shape[2] == 1:
            return cv2.cvtColor(arr.reshape(arr.shape[:2]), cv2.COLOR_GRAY2BGR)
        return np.ascontiguousarray(arr[:, :, ::-1] if color == "rgb" else arr)

    def detect(self, image, color="bgr"):
        """Faces in one image, or in each image of a list.

        Parameters
        ----------
        image : str, path, bytes, numpy.ndarray or a list of them
            A file path (decoded by OpenCV), encoded bytes, or an HWC uint8 array.
        color : {'bgr', 'rgb'}
            Channel order of *arrays* (OpenCV's ``imread`` gives BGR); files and bytes are
            decoded in the right order whatever this says.

        Returns
        -------
        list of Face, or a list of such lists for a list of images
            Sorted by score, best first; empty when no face passes the thresholds.
        """
        if color not in ("bgr", "rgb"):
            raise ValueError(f"color must be 'bgr' or 'rgb', got {color!r}")
        if _is_single(image):
            return self._detect_one(self._as_bgr(image, color, "image"))
        return [self._detect_one(self._as_bgr(item, color, _name(item, i)))
                for i, item in enumerate(image)]

    def _detect_one(self, bgr):
        h, w = bgr.shape[:2]
        scale = 1.0
        if self.max_size is not None and max(h, w) > self.max_size:
            scale = self.max_size / float(max(h, w))
            bgr = cv2.resize(bgr, (max(1, round(w * scale)), max(1, round(h * scale))),
                             interpolation=cv2.INTER_AREA)
        size = (bgr.shape[1], bgr.shape[0])
        if size != self._size:
            self._net.setInputSize(size)
            self._size = size
        _, raw = self._net.detect(bgr)
        if raw is None:
            return []
        # rescale from the detector's pixels to the original's (resize maps x -> x * sw)
        sx, sy = size[0] / float(w), size[1] / float(h)
        faces = []
        for row in raw:
            box = (row[:4] / np.array([sx, sy, sx, sy])).astype(np.float32)
            if min(box[2], box[3]) < self.min_size:
                continue
            lmk = (row[4:14].reshape(5, 2) / np.array([sx, sy])).astype(np.float32)
            faces.append(Face(box, lmk, float(row[14])))
        faces.sort(key=lambda f: -f.score)
        return faces


def _name(item, i):
    return os.fspath(item) if isinstance(item, (str, os.PathLike)) else f"image {i}"
