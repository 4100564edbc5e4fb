"""``FaceRecordDataset``: insightface training data (``train.rec`` / ``train.idx`` / ``property``).

Two layouts exist in the wild and both are read:

* **indexed** (MS1M, CASIA-WebFace, everything ``face2rec2`` / ``RecBuilder`` made): key 0 is a
  header whose label ``[a, b)`` is the key range of the identity records; image keys are
  ``1 .. a-1``; identity record ``a + j`` holds the ``[begin, end)`` image-key range of label j.
* **shuffled** (``rec2shufrec`` and friends): no header; every indexed key is an image.

A key-0 record counts as a header only when its label is an array *and* it carries no image
bytes, so a shuffled rec with array labels is not mistaken for an indexed one.
Unlike gluon-face 1.0.2, ``len()`` counts images only (never header or identity records), and
only the first line of ``property`` is parsed.
"""
import os

import numpy as np
from tqdm import tqdm

from ._io import DataFormatError
from .image import decode_image
from .recordio import RecordFile, read_property, unpack_payload

__all__ = ["FaceRecordDataset"]


def _key_pair(label, where):
    """The ``[begin, end)`` key range a header or identity record stores as float labels."""
    pair = np.asarray(label[:2], dtype=np.float64)
    if not (np.isfinite(pair).all() and (pair == np.floor(pair)).all()
            and (np.abs(pair) < 2 ** 53).all()):
        raise DataFormatError(f"{where}: key range {pair.tolist()} is not a pair of integer "
                              "record keys")
    return int(pair[0]), int(pair[1])


class FaceRecordDataset:
    """Face images and identity labels from an insightface RecordIO folder.

    Parameters
    ----------
    root : str
        Folder holding ``train.rec``, ``train.idx`` and ``property``.
    transform : callable, optional
        Applied to the image (HWC uint8 RGB NDArray) only; the label is returned unchanged.
    prefix : str
        Stem of the record files (``train``).

    Attributes
    ----------
    num_classes : int
        From the first line of ``property``.
    image_size : (int, int)
        (height, width) from ``property``.
    indexed : bool
        Whether the key-0 header with identity records is present.

    Notes
    -----
    ``__getitem__(i)`` returns ``(image, label)``: an HWC uint8 RGB ``mx.nd.NDArray`` and an
    int. The training loader (:func:`gluonfr.data.make_train_loader`) bypasses NDArrays and
    reads :meth:`read` / :meth:`decode` directly, in worker processes. The ``.rec`` is opened
    lazily in each process (see :class:`~gluonfr.data.recordio.RecordFile`), so the dataset can
    be handed to forked or spawned workers.
    """

    def __init__(self, root, transform=None, prefix="train"):
        self.root = str(root)
        self.transform = transform
        rec = os.path.join(self.root, prefix + ".rec")
        idx = os.path.join(self.root, prefix + ".idx")
        for path in (rec, idx):
            if not os.path.isfile(path):
                raise DataFormatError(f"{path}: not found; a training folder needs {prefix}.rec, "
                                      f"{prefix}.idx and property")
        self.num_classes, self.image_size = read_property(os.path.join(self.root, "property"))
        self._stored_classes = self.num_classes  # bound for labels as stored in the records
        self.records = RecordFile(rec, idx)
        self._labels = None
        self._ranges = None
        header = self._read_header()
        if header is not None:
            self.indexed = True
            self._init_indexed(*header)
        else:
            self.indexed = False
            self._keys = self.records.keys.copy()
            self._pos = np.arange(len(self._keys))
        self._label_map = None  # subset views: stored label -> new label

    # -- layout -----------------------------------------------------------------------------
    def _where(self, key):
        return f"{self.records.rec_path} record key {int(key)}"

    def _read_header(self):
        if 0 not in self.records:
            return None
        flag, label, img = unpack_payload(self.records.read(0), self._where(0))
        if flag < 2 or len(img):
            return None  # key 0 is an ordinary image (shuffled rec)
        return _key_pair(label, self._where(0))

    def _init_indexed(self, id_begin, id_end):
        rec = self.records
        if not 1 <= id_begin <= id_end:
            raise DataFormatError(f"{self._where(0)}: header range [{id_begin}, {id_end}) is not "
                                  "a valid identity-record key range")
        num_ids = id_end - id_begin
        if num_ids > self.num_classes:
            raise DataFormatError(f"{rec.rec_path}: {num_ids} identity records but "
                                  f"{os.path.join(self.root, 'property')} says num_classes="
                                  f"{self.num_classes}")
        ranges = np.empty((num_ids, 2), dtype=np.int64)
        for j in range(num_ids):
            key = id_begin + j
            if key not in rec:
                raise DataFormatError(f"{rec.idx_path}: identity record key {key} (label {j}) "
                                      f"is missing; the header announces [{id_begin}, {id_end})")
            flag, label, _ = unpack_payload(rec.read(key), self._where(key))
            if flag < 2:
                raise DataFormatError(f"{self._where(key)}: identity record has no "
                                      "[begin, end) label")
            ranges[j] = _key_pair(label, self._where(key))
        bad = (ranges[:, 0] < 1) | (ranges[:, 1] < ranges[:, 0]) | (ranges[:, 1] > id_begin)
        if bad.any():
            j = int(np.flatnonzero(bad)[0])
            raise DataFormatError(f"{self._where(id_begin + j)}: image-key range "
                                  f"{tuple(ranges[j])} of label {j} is outside [1, {id_begin})")
        self._ranges = ranges
        self._keys = np.arange(1, id_begin, dtype=np.int64)
        self._pos = rec.positions(self._keys)  # also checks every image key is indexed

    # -- sequence protocol ------------------------------------------------------------------
    def __len__(self):
        return len(self._keys)

    def _check_index(self, i):
        n = len(self._keys)
        i = int(i)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"index {i} out of range for a dataset of {n} images")
        return i

    def read(self, i):
        """Encoded image bytes and int label of image ``i`` (no decoding)."""
        i = self._check_index(i)
        key = self._keys[i]
        where = self._where(key)
        flag, label, img = unpack_payload(self.records.read_position(self._pos[i]), where)
        if flag > 0:
            label = label[0]  # face2rec2 packs [class_id, aligned_flag]
        if not (np.isfinite(label) and float(label).is_integer()):
            raise DataFormatError(f"{where}: label {label!r} is not an integer class id")
        label = int(label)
        if not 0 <= label < self._stored_classes:
            raise DataFormatError(f"{where}: label {label} is outside [0, num_classes="
                                  f"{self._stored_classes}) given by property")
        if self._label_map is not None:
            new = self._label_map.get(label)
            if new is None:
                raise DataFormatError(f"{where}: label {label} does not belong to this subset "
                                      "(identity record ranges and image labels disagree)")
            label = new
        if not len(img):
            raise DataFormatError(f"{where}: the record has no image bytes")
        return img, label

    def decode(self, i, bgr=False, strict=False):
        """Image ``i`` as a HWC uint8 numpy array (RGB, or cv2's BGR when ``bgr``) and its label.

        ``strict`` also rejects images the JPEG decoder only warns about (partly wrong pixels).
        """
        img, label = self.read(i)
        where = self._where(self._keys[self._check_index(i)])
        return decode_image(img, where, "bgr" if bgr else "rgb", strict), label

    def __getitem__(self, i):
        import mxnet as mx

        img, label = self.decode(i)
        img = mx.nd.from_numpy(img, zero_copy=True)  # cv2's fresh array: no copy needed
        if self.transform is not None:
            img = self.transform(img)
        return img, label

    # -- identities -------------------------------------------------------------------------
    @property
    def keys(self):
        """Record keys of the images, in dataset order."""
        return self._keys

    @property
    def labels(self):
        """Label of every image (numpy int64, dataset order).

        Indexed recs: taken from the identity ranges (no image is read). Shuffled recs: read
        from every record header once (with a progress bar) and cached.
        """
        if self._labels is None:
            if self._ranges is not None:
                self._labels = self._labels_from_ranges()
            else:
                self._labels = self._scan_labels()
        return self._labels

    def _labels_from_ranges(self):
        r = self._ranges
        counts = r[:, 1] - r[:, 0]
        if len(r) and r[0, 0] == 1 and np.array_equal(r[1:, 0], r[:-1, 1]) \
                and counts.sum() == len(self._keys):
            return np.repeat(np.arange(len(r)), counts)
        labels = np.full(len(self._keys), -1, dtype=np.int64)
        for j, (b, e) in enumerate(r):  # keys are sorted (1..N) in the indexed layout
            labels[np.searchsorted(self._keys, b):np.searchsorted(self._keys, e)] = j
        return labels

    def _scan_labels(self):
        out = np.empty(len(self._keys), dtype=np.int64)
        for i in tqdm(range(len(self._keys)), desc="reading labels", unit="rec",
                      disable=len(self._keys) < 20000, leave=False):
            out[i] = self.read(i)[1]
        return out

    @property
    def identity_ranges(self):
        """``{label: (begin_key, end_key)}``: the half-open image-key range of each identity.

        For an indexed rec these are the identity records themselves (identities without
        images included). Elsewhere they are derived from :attr:`labels` and exist only when
        each identity's images have consecutive keys; a shuffled rec raises ``ValueError``
        (use :meth:`identity_indices`, which works for every layout).
        """
        if self._ranges is not None:
            return {j: (int(b), int(e)) for j, (b, e) in enumerate(self._ranges)}
        out = {}
        for label, idx in self.identity_indices().items():
            keys = np.sort(self._keys[idx])
            if keys[-1] - keys[0] + 1 != len(keys):
                raise ValueError(f"{self.records.rec_path}: the images of label {label} do not "
                                 "have consecutive keys (shuffled rec); use identity_indices()")
            out[label] = (int(keys[0]), int(keys[-1]) + 1)
        return out

    def identity_indices(self):
        """``{label: numpy array of dataset indices}`` for every identity that has images."""
        labels = self.labels
        order = np.argsort(labels, kind="stable")
        present, starts = np.unique(labels[order], return_index=True)
        groups = np.split(order, starts[1:])
        return {int(c): g for c, g in zip(present, groups)}

    @property
    def num_identities(self):
        """Number of distinct labels that have at least one image."""
        return len(np.unique(self.labels))

    def subset(self, labels, relabel=True):
        """A view holding only the images of ``labels``.

        Parameters
        ----------
        labels : iterable of int
            Identities to keep (e.g. ``range(1000)`` for a 1,000-identity quick run).
        relabel : bool
            Renumber the kept identities 0..k-1 in the order given, so a classifier of k
            classes can be trained; ``num_classes`` becomes k. Otherwise labels and
            ``num_classes`` stay as they are.

        Returns
        -------
        FaceRecordDataset
            Shares the record file; reads stay lazy.
        """
        wanted = np.array([int(c) for c in labels], dtype=np.int64)
        if len(np.unique(wanted)) != len(wanted):
            raise ValueError("subset: labels contain duplicates")
        bad = wanted[(wanted < 0) | (wanted >= self.num_classes)]
        if len(bad):
            raise ValueError(f"subset: labels {bad[:5].tolist()} are outside "
                             f"[0, {self.num_classes})")
        groups = self.identity_indices()
        parts = [groups.get(int(c), np.empty(0, dtype=np.int64)) for c in wanted]
        idx = np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)
        lookup = np.full(self.num_classes, -1, dtype=np.int64)
        lookup[wanted] = np.arange(len(wanted)) if relabel else wanted
        view = object.__new__(FaceRecordDataset)
        view.__dict__.update(self.__dict__)
        view._keys = self._keys[idx]
        view._pos = self._pos[idx]
        view._labels = lookup[self.labels[idx]]
        view._ranges = None
        if relabel:
            view.num_classes = len(wanted)
        # stored label -> this view's label -> the new view's label
        old = self._label_map or {c: c for c in range(self.num_classes)}
        view._label_map = {s: int(lookup[t]) for s, t in old.items() if lookup[t] >= 0}
        return view

    def verify(self, strict=False):
        """Read and decode every image once (progress bar); raise on the first bad record.

        With ``strict`` the JPEG decoder's corrupt-data warnings count as errors too: a
        damaged file often decodes to partly wrong pixels with only that warning.
        Returns the number of images.
        """
        for i in tqdm(range(len(self)), desc="verifying", unit="img",
                      disable=len(self) < 2000):
            self.decode(i, bgr=True, strict=strict)
        return len(self)

    def __repr__(self):
        layout = "indexed" if self.indexed else "shuffled"
        return (f"FaceRecordDataset({self.root!r}: {len(self)} images, num_classes="
                f"{self.num_classes}, {layout})")
