"""gluon-face 1.0.2's dataset entry point, kept as a thin deprecated alias.

``get_recognition_dataset(name, root='~/.mxnet/datasets/face', **kwargs)`` opens gluon-face's
folder layout: a training set ``{root}/{name}/train.rec|train.idx|property`` or a
verification set ``{root}/{name}.bin``, with the item shapes gluon-face's datasets returned.
The reading is gluonfr's (:class:`~gluonfr.data.FaceRecordDataset`,
:func:`~gluonfr.data.load_bin`), which fixes what gluon-face got wrong:

- training: the insightface header and identity records are not counted in ``len()`` (gluon-
  face counted them and replaced each by a *random* image, so an epoch was not a
  permutation); labels are ints, array labels reduced to their class id;
- verification: the ``.bin`` is read with a restricted unpickler (gluon-face called plain
  ``pickle.load`` on it, so a ``.bin`` could run code);
- ``ms1m`` and ``casia`` are accepted beside gluon-face's ``emore`` and ``webface`` (its
  README showed an ``ms1m/`` folder it had no key for), and an unknown name is a
  ``ValueError`` listing the names, not a bare ``KeyError``.
"""
import os
import warnings

from .record_dataset import FaceRecordDataset
from .verification_bin import load_bin

__all__ = ["get_recognition_dataset", "GluonFaceTrainDataset", "GluonFaceValDataset",
           "TRAIN_NAMES", "VAL_NAMES"]

#: gluon-face's training names (folders under ``root``), plus ``ms1m`` and ``casia``.
TRAIN_NAMES = ("emore", "vgg", "webface", "asian_celeb", "deep_glint", "ms1m", "casia")
#: gluon-face's verification names (``{root}/{name}.bin``).
VAL_NAMES = ("lfw", "calfw", "cplfw", "cfp_fp", "agedb_30", "cfp_ff", "vgg2_fp")
DEFAULT_ROOT = os.path.join("~", ".mxnet", "datasets", "face")


class GluonFaceTrainDataset(FaceRecordDataset):
    """gluon-face's ``FRTrainRecordDataset``: ``{root}/{name}/train.rec`` as a dataset.

    Items are ``transform(image, label)`` when a transform is given (gluon-face called it
    with both), else ``(image, label)``: HWC uint8 RGB NDArray and int.

    Parameters
    ----------
    name : str
        Folder name under ``root``.
    root : str
    flag : int
        1 (colour, the only value gluon-face's networks took).
    transform : callable, optional
        ``transform(image, label) -> item``.
    """

    def __init__(self, name, root=DEFAULT_ROOT, flag=1, transform=None):
        if flag != 1:
            raise ValueError(f"get_recognition_dataset({name!r}): flag={flag!r}; only colour "
                             f"images (flag=1) are read")
        super().__init__(os.path.join(os.path.expanduser(root), name))
        self.name = name
        self._pair_transform = transform

    def __getitem__(self, i):
        img, label = super().__getitem__(i)
        if self._pair_transform is not None:
            return self._pair_transform(img, label)
        return img, label


class GluonFaceValDataset:
    """gluon-face's ``FRValDataset``: the pairs of ``{root}/{name}.bin``.

    ``dataset[i]`` is ``((image_a, image_b), issame)`` with HWC uint8 RGB NDArrays (each passed
    through ``transform`` when given) and an int 0/1; ``len`` is the number of pairs. As in
    gluon-face there is no flip here: gluonfr's verification does it
    (:func:`gluonfr.metrics.extract_embeddings`, ``flip=True``). ``image_size`` is
    :func:`~gluonfr.data.load_bin`'s (the published ``.bin`` files hold 112x112 images).
    """

    def __init__(self, name, root=DEFAULT_ROOT, transform=None, image_size=(112, 112)):
        self.name = name
        self.path = os.path.join(os.path.expanduser(root), f"{name}.bin")
        self.images, self.issame = load_bin(self.path, image_size=image_size)
        self.transform = transform

    def __len__(self):
        return len(self.issame)

    def __getitem__(self, i):
        if not -len(self) <= i < len(self):
            raise IndexError(f"{self.path}: pair {i} of {len(self)}")
        i %= len(self)
        a, b = self.images[2 * i], self.images[2 * i + 1]
        if self.transform is not None:
            a, b = self.transform(a), self.transform(b)
        return (a, b), int(self.issame[i])


def get_recognition_dataset(name, root=DEFAULT_ROOT, **kwargs):
    """Deprecated: gluon-face's dataset getter; use :class:`gluonfr.data.FaceRecordDataset`
    (training) or :func:`gluonfr.data.load_bin` (verification).

    Parameters
    ----------
    name : str
        A training name (:data:`TRAIN_NAMES`: folder ``{root}/{name}``) or a verification
        name (:data:`VAL_NAMES`: file ``{root}/{name}.bin``).
    root : str, default ``~/.mxnet/datasets/face``
        gluon-face's data folder.
    **kwargs
        ``transform`` (and ``flag`` for training sets), as in gluon-face; ``image_size``
        for verification sets.

    Returns
    -------
    GluonFaceTrainDataset or GluonFaceValDataset
    """
    new = "FaceRecordDataset(root)" if name in TRAIN_NAMES else "load_bin(path)"
    warnings.warn(f"get_recognition_dataset is gluon-face's name; use gluonfr.data.{new} "
                  f"instead", DeprecationWarning, stacklevel=2)
    if name in TRAIN_NAMES:
        return GluonFaceTrainDataset(name, root, **kwargs)
    if name in VAL_NAMES:
        return GluonFaceValDataset(name, root, **kwargs)
    raise ValueError(f"unknown dataset {name!r}; gluon-face's names are training "
                     f"{', '.join(TRAIN_NAMES)} (folders under {root}) and verification "
                     f"{', '.join(VAL_NAMES)} ({root}/NAME.bin)")
