"""Face data: insightface RecordIO training sets, verification ``.bin`` files, the training
loader, packing tools, 5-point alignment and a procedural face generator.

- :class:`FaceRecordDataset` reads ``train.rec`` / ``train.idx`` / ``property``.
- :func:`make_train_loader` gives reproducible, resumable NCHW float32 batches.
- :func:`load_bin` / :func:`pack_bin` read and write verification pairs (safely unpickled).
- :func:`pack_rec` packs a folder of identity sub-folders; :func:`sample_pairs` draws
  verification pairs from such folders.
- :mod:`gluonfr.data.align` (``norm_crop``) and :mod:`gluonfr.data.synthetic`
  (``make_dataset``) are sub-modules, and so is :mod:`gluonfr.data.ijb` (the IJB-B / IJB-C
  ``IJB_release`` layout).
"""
from . import align, ijb, image, synthetic
from ._io import DataFormatError
from .compat import get_recognition_dataset  # gluon-face's name, deprecated
from .loader import TrainLoader, make_train_loader
from .pack import pack_rec, sample_pairs
from .preview import contact_sheet
from .record_dataset import FaceRecordDataset
from .sampler import PKSampler
from .transforms import TrainAugmentation
from .verification_bin import load_bin, pack_bin

__all__ = ["DataFormatError", "FaceRecordDataset", "PKSampler", "TrainAugmentation",
           "TrainLoader",
           "align", "contact_sheet", "ijb", "image", "load_bin", "make_train_loader", "pack_bin",
           "pack_rec", "sample_pairs", "synthetic", "get_recognition_dataset"]
