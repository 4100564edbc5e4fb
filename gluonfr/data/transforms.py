"""Training-time augmentation driven by explicit random numbers (resumable, worker-independent).

Random draws do not come from a global RNG. Each sample's numbers are a hash of
``(seed, epoch, sample index, k)`` (:func:`sample_uniforms`), so a sample is augmented the
same way whichever worker process handles it, whatever the batch size, and after a resume.
That is why the stock ``mx.gluon.data.vision.transforms.Random*`` blocks (global RNG) are not
used here.

The insightface default is a random horizontal flip only; colour jitter and a random
crop-and-resize are optional.
"""
import cv2
import numpy as np

__all__ = ["sample_uniforms", "TrainAugmentation", "to_nchw_float32"]

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def _splitmix(z):
    z = z + _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


def sample_uniforms(seed, epoch, indices, count):
    """Uniform [0, 1) numbers that depend only on ``(seed, epoch, index)``.

    Parameters
    ----------
    seed, epoch : int
        Non-negative integers.
    indices : array-like of int
        Dataset indices of the samples.
    count : int
        Numbers per sample.

    Returns
    -------
    numpy.ndarray
        (len(indices), count) float64; row j belongs to ``indices[j]``.
    """
    idx = np.asarray(indices, dtype=np.int64).astype(np.uint64).reshape(-1, 1)
    with np.errstate(over="ignore"):
        h = _splitmix(_splitmix(np.uint64(int(seed) & (2 ** 64 - 1))) ^ np.uint64(int(epoch)))
        h = _splitmix(h ^ _splitmix(idx))
        z = _splitmix(h + np.arange(1, count + 1, dtype=np.uint64) * _GOLDEN)
    return (z >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


class TrainAugmentation:
    """Random flip, optional colour jitter and random crop-resize of HWC uint8 RGB images.

    Parameters
    ----------
    flip : bool
        Mirror left-right with probability 1/2 (insightface's only augmentation).
    brightness, contrast, saturation : float
        Jitter strengths: each factor is drawn from ``[1 - x, 1 + x]`` (0 disables).
    crop_scale : (float, float) or None
        Random crop whose area is this fraction of the image, resized back to full size.
        ``None`` disables. Faces are pre-aligned, so keep it mild, e.g. ``(0.8, 1.0)``.
    crop_ratio : (float, float)
        Range of the crop's aspect ratio (width / height), drawn log-uniformly.
    """

    num_uniforms = 8  # flip, brightness, contrast, saturation, area, ratio, x, y

    def __init__(self, flip=True, brightness=0.0, contrast=0.0, saturation=0.0,
                 crop_scale=None, crop_ratio=(3.0 / 4.0, 4.0 / 3.0)):
        self.flip = bool(flip)
        self.brightness, self.contrast, self.saturation = (float(brightness), float(contrast),
                                                           float(saturation))
        for name, v in (("brightness", self.brightness), ("contrast", self.contrast),
                        ("saturation", self.saturation)):
            if not 0 <= v < 1:
                raise ValueError(f"{name} jitter must be in [0, 1), got {v}")
        if crop_scale is not None:
            lo, hi = (float(x) for x in crop_scale)
            if not 0 < lo <= hi <= 1:
                raise ValueError(f"crop_scale must satisfy 0 < low <= high <= 1, got {crop_scale}")
            crop_scale = (lo, hi)
        self.crop_scale = crop_scale
        self.crop_ratio = tuple(float(x) for x in crop_ratio)
        self.jitter = self.brightness > 0 or self.contrast > 0 or self.saturation > 0

    @property
    def pixel_ops(self):
        """Whether anything beyond a flip is enabled (the loader's fast path skips them)."""
        return self.jitter or self.crop_scale is not None

    def flips(self, u):
        """Boolean flip decision per row of uniforms ``u``."""
        return (u[:, 0] < 0.5) if self.flip else np.zeros(len(u), dtype=bool)

    def __call__(self, img, u):
        """Augment one HWC uint8 RGB image with its uniforms ``u`` (length ``num_uniforms``)."""
        if self.crop_scale is not None:
            img = self._crop(img, u[4:8])
        if self.jitter:
            img = self._jitter(img, u[1:4])
        if self.flip and u[0] < 0.5:
            img = img[:, ::-1]
        return img

    def _crop(self, img, u):
        h, w = img.shape[:2]
        area = (self.crop_scale[0] + u[0] * (self.crop_scale[1] - self.crop_scale[0])) * h * w
        lo, hi = np.log(self.crop_ratio)
        ratio = np.exp(lo + u[1] * (hi - lo))
        cw = int(round(min(w, np.sqrt(area * ratio))))
        ch = int(round(min(h, np.sqrt(area / ratio))))
        x0 = int(u[2] * (w - cw + 1)) if cw < w else 0
        y0 = int(u[3] * (h - ch + 1)) if ch < h else 0
        crop = img[y0:y0 + ch, x0:x0 + cw]
        return cv2.resize(crop, (w, h), interpolation=cv2.INTER_LINEAR)

    def _jitter(self, img, u):
        x = img.astype(np.float32)
        if self.brightness:
            x *= 1.0 + self.brightness * (2.0 * u[0] - 1.0)
        gray = x @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        if self.contrast:
            c = 1.0 + self.contrast * (2.0 * u[1] - 1.0)
            x = x * c + (1.0 - c) * gray.mean()
            gray = gray * c + (1.0 - c) * gray.mean()
        if self.saturation:
            s = 1.0 + self.saturation * (2.0 * u[2] - 1.0)
            x = x * s + (1.0 - s) * gray[:, :, None]
        return np.clip(x + 0.5, 0, 255).astype(np.uint8)

    def __repr__(self):
        return (f"TrainAugmentation(flip={self.flip}, brightness={self.brightness}, contrast="
                f"{self.contrast}, saturation={self.saturation}, crop_scale={self.crop_scale})")


def to_nchw_float32(batch_nhwc):
    """(N, H, W, C) uint8 -> C-contiguous (N, C, H, W) float32 in 0..255 (one pass)."""
    out = np.empty((batch_nhwc.shape[0], batch_nhwc.shape[3]) + batch_nhwc.shape[1:3],
                   dtype=np.float32)
    for c in range(batch_nhwc.shape[3]):  # per channel: measured faster than one 4-D copy
        out[:, c] = batch_nhwc[..., c]
    return out
