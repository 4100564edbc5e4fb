"""The official verification protocol files, as users download them, read into pair lists.

Each reader returns ``[(path_a, path_b, issame), ...]`` in the protocol's own order (the order
insightface's ``.bin`` files keep, so that the 10 folds of the protocol are the 10 folds of
the evaluation), with every image checked to exist. Malformed lines raise
:class:`~gluonfr.data.DataFormatError` naming the file and line.

- LFW ``pairs.txt`` (:func:`read_lfw_pairs`): a header ``S N`` (10 sets of 300; View 1's
  ``pairsDevTrain.txt`` / ``pairsDevTest.txt`` have a single count ``N``), then per set ``N``
  lines ``name n1 n2`` (same person) and ``N`` lines ``name1 n1 name2 n2`` (different
  people); images ``<root>/<name>/<name>_<nnnn>.jpg``.
- CFP's ``Protocol/`` folder (:func:`read_cfp_pairs`): ``Pair_list_F.txt`` and
  ``Pair_list_P.txt`` number the frontal and profile images (``index path``, paths relative to
  ``Protocol/``); ``Split/FF`` and ``Split/FP`` hold folders ``01`` .. ``10``, each with
  ``same.txt`` and ``diff.txt`` of ``i,j`` index lines (FF: frontal, frontal; FP: frontal,
  profile). Order: fold by fold, its same pairs then its different pairs.
- CALFW / CPLFW (:func:`read_xlfw_pairs`): ``pairs_CALFW.txt`` / ``pairs_CPLFW.txt``, one image
  per line ``file label``; lines 2k and 2k+1 are pair k, label 0 means different people and a
  positive label the same person (both lines of a pair carry the same label).
- AgeDB-30 (:func:`read_agedb_pairs`): ``04_FINAL_protocol_30_years.mat`` (MATLAB v5, read
  with scipy), variable ``splits``: 10 folds, each a struct whose first field is a (2, 600)
  cell of image structs (first field: the file stem in ``03_Protocol_Images/``, second: the
  age) and whose second field is a (1, 600) array of flags, 1 same and -1 different; pair
  ``c`` is column ``c``. Order: fold by fold, column by column.
- Any other set: the plain list ``image_a image_b 1|0`` (:func:`gluonfr.data.pack.read_pairs`).

:func:`detect_protocol` tells the layouts apart; :func:`read_protocol` reads any of them.
"""
import os
import re

import numpy as np

from .._optional import import_optional
from ._io import DataFormatError
from .pack import read_pairs

__all__ = ["read_lfw_pairs", "read_cfp_pairs", "read_xlfw_pairs", "read_agedb_pairs",
           "detect_protocol", "read_protocol", "PROTOCOLS"]

#: The layouts :func:`read_protocol` knows.
PROTOCOLS = ("lfw", "cfp_ff", "cfp_fp", "xlfw", "agedb", "list")

#: AgeDB's protocol file for AgeDB-30 (the 5/10/20-year files have the same layout) and the
#: folder of its images, as the dataset ships them.
AGEDB_MAT = "04_FINAL_protocol_30_years.mat"
AGEDB_IMAGES = "03_Protocol_Images"

_INT = re.compile(r"^\d+$")


def _lines(path):
    """``(lineno, fields)`` of the non-blank lines of a text file."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError as err:
        raise DataFormatError(f"{path}: cannot read the protocol file ({err})") from None
    for lineno, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if fields:
            yield lineno, fields


def _check_files(pairs, where):
    for (a, b, _), (path, lineno) in zip(pairs, where):
        for image in (a, b):
            if not os.path.isfile(image):
                raise DataFormatError(f"{path}:{lineno}: image {image} not found")


def read_lfw_pairs(pairs_file, image_root=None, ext=".jpg"):
    """LFW's ``pairs.txt`` (or View 1's ``pairsDevTrain/Test.txt``) as a pair list.

    Parameters
    ----------
    pairs_file : str
        The file as distributed.
    image_root : str, optional
        The folder of ``<name>/<name>_<nnnn>.jpg``; default ``lfw/`` beside the pairs file.
    ext : str
        Image extension (``.jpg`` for every LFW variant, aligned copies may use ``.png``).

    Returns
    -------
    list of (str, str, bool)
    """
    pairs_file = os.fspath(pairs_file)
    if image_root is None:
        image_root = os.path.join(os.path.dirname(os.path.abspath(pairs_file)), "lfw")
    lines = list(_lines(pairs_file))
    if not lines:
        raise DataFormatError(f"{pairs_file}: empty file, expected LFW's header 'S N'")
    head_no, head = lines[0]
    if not (1 <= len(head) <= 2 and all(_INT.match(v) for v in head)):
        raise DataFormatError(f"{pairs_file}:{head_no}: expected LFW's header 'sets pairs' "
                              f"(e.g. '10 300') or 'pairs', got {' '.join(head)!r}")
    sets, per = (int(head[0]), int(head[1])) if len(head) == 2 else (1, int(head[0]))
    expected = 2 * sets * per
    body = lines[1:]
    if len(body) != expected:
        raise DataFormatError(f"{pairs_file}: the header (line {head_no}) promises {sets} sets "
                              f"of {per} same and {per} different pairs ({expected} lines), "
                              f"the file has {len(body)} pair lines")

    def image(name, num, lineno):
        if not _INT.match(num) or int(num) < 1:
            raise DataFormatError(f"{pairs_file}:{lineno}: image number {num!r} is not a "
                                  "positive integer")
        return os.path.join(image_root, name, f"{name}_{int(num):04d}{ext}")

    pairs, where = [], []
    for k, (lineno, fields) in enumerate(body):
        same = (k // per) % 2 == 0
        block = k // (2 * per) + 1
        if same and len(fields) != 3:
            raise DataFormatError(f"{pairs_file}:{lineno}: expected 'name n1 n2' (a same-person "
                                  f"pair of set {block}), got {' '.join(fields)!r}")
        if not same and len(fields) != 4:
            raise DataFormatError(f"{pairs_file}:{lineno}: expected 'name1 n1 name2 n2' (a "
                                  f"different-people pair of set {block}), got "
                                  f"{' '.join(fields)!r}")
        if same:
            pair = (image(fields[0], fields[1], lineno), image(fields[0], fields[2], lineno))
        else:
            pair = (image(fields[0], fields[1], lineno), image(fields[2], fields[3], lineno))
        pairs.append(pair + (same,))
        where.append((pairs_file, lineno))
    _check_files(pairs, where)
    return pairs


def _cfp_list(path):
    table = {}
    for lineno, fields in _lines(path):
        if len(fields) != 2 or not _INT.match(fields[0]):
            raise DataFormatError(f"{path}:{lineno}: expected 'index image_path', got "
                                  f"{' '.join(fields)!r}")
        table[int(fields[0])] = os.path.normpath(os.path.join(os.path.dirname(path), fields[1]))
    if not table:
        raise DataFormatError(f"{path}: no images listed")
    return table


def _cfp_dir(path):
    """The ``Protocol`` folder given it or the dataset root above it."""
    path = os.fspath(path)
    for cand in (path, os.path.join(path, "Protocol")):
        if os.path.isfile(os.path.join(cand, "Pair_list_F.txt")):
            return cand
    return None


def read_cfp_pairs(protocol_dir, split="FP"):
    """CFP's ``Protocol/`` folder as the FF (frontal-frontal) or FP (frontal-profile) pairs.

    Parameters
    ----------
    protocol_dir : str
        ``cfp-dataset/Protocol`` (or ``cfp-dataset`` itself).
    split : {'FP', 'FF'}

    Returns
    -------
    list of (str, str, bool)
        7,000 pairs for the official protocol: folds 01..10, each 350 same then 350 different.
    """
    split = split.upper()
    if split not in ("FF", "FP"):
        raise ValueError(f"CFP split must be 'FF' or 'FP', got {split!r}")
    root = _cfp_dir(protocol_dir)
    if root is None:
        raise DataFormatError(f"{protocol_dir}: no Pair_list_F.txt (expected CFP's Protocol/ "
                              "folder)")
    frontal = _cfp_list(os.path.join(root, "Pair_list_F.txt"))
    second = frontal if split == "FF" else _cfp_list(os.path.join(root, "Pair_list_P.txt"))
    split_dir = os.path.join(root, "Split", split)
    if not os.path.isdir(split_dir):
        raise DataFormatError(f"{split_dir}: missing (expected CFP's Split/{split}/01..10)")
    folds = sorted((d for d in os.listdir(split_dir) if _INT.match(d)), key=int)
    if not folds:
        raise DataFormatError(f"{split_dir}: no numbered fold folders (01..10)")
    pairs, where = [], []
    for fold in folds:
        for name, same in (("same.txt", True), ("diff.txt", False)):
            path = os.path.join(split_dir, fold, name)
            if not os.path.isfile(path):
                raise DataFormatError(f"{path}: missing")
            for lineno, fields in _lines(path):
                fields = " ".join(fields).replace(",", " ").split()
                if len(fields) != 2 or not all(_INT.match(v) for v in fields):
                    raise DataFormatError(f"{path}:{lineno}: expected 'i,j' image indices, got "
                                          f"{','.join(fields)!r}")
                i, j = int(fields[0]), int(fields[1])
                if i not in frontal:
                    raise DataFormatError(f"{path}:{lineno}: frontal image {i} is not in "
                                          "Pair_list_F.txt")
                if j not in second:
                    raise DataFormatError(f"{path}:{lineno}: image {j} is not in "
                                          f"Pair_list_{'F' if split == 'FF' else 'P'}.txt")
                pairs.append((frontal[i], second[j], same))
                where.append((path, lineno))
    _check_files(pairs, where)
    return pairs


def _xlfw_images(pairs_file):
    folder = os.path.dirname(os.path.abspath(pairs_file))
    for sub in ("aligned images", "images", os.path.join("images&landmarks", "images")):
        if os.path.isdir(os.path.join(folder, sub)):
            return os.path.join(folder, sub)
    return folder


def read_xlfw_pairs(pairs_file, image_root=None):
    """CALFW's ``pairs_CALFW.txt`` or CPLFW's ``pairs_CPLFW.txt`` as a pair list.

    Parameters
    ----------
    pairs_file : str
    image_root : str, optional
        Folder of the image files; default the first of ``aligned images/``, ``images/``,
        ``images&landmarks/images/`` beside the pairs file, else its own folder.
    """
    pairs_file = os.fspath(pairs_file)
    root = image_root if image_root is not None else _xlfw_images(pairs_file)
    lines = list(_lines(pairs_file))
    if not lines:
        raise DataFormatError(f"{pairs_file}: empty file")
    if len(lines) % 2:
        raise DataFormatError(f"{pairs_file}: {len(lines)} image lines, expected an even number "
                              f"(two per pair); line {lines[-1][0]} has no partner")
    for lineno, fields in lines:
        if len(fields) != 2 or not _INT.match(fields[1]):
            raise DataFormatError(f"{pairs_file}:{lineno}: expected 'image_file label' (label "
                                  f"0 = different, >0 = same), got {' '.join(fields)!r}")
    pairs, where = [], []
    for (la, fa), (lb, fb) in zip(lines[0::2], lines[1::2]):
        if (fa[1] == "0") != (fb[1] == "0"):
            raise DataFormatError(f"{pairs_file}:{lb}: label {fb[1]} disagrees with line {la}'s "
                                  f"{fa[1]} (the two lines of a pair share the label)")
        pairs.append((os.path.join(root, fa[0]), os.path.join(root, fb[0]), int(fa[1]) > 0))
        where.append((pairs_file, la))
    _check_files(pairs, where)
    return pairs


def _agedb_mat(path):
    """The protocol .mat given it or the AgeDB folder holding it (``None``: neither)."""
    path = os.fspath(path)
    if os.path.isdir(path):
        cand = os.path.join(path, AGEDB_MAT)
        return cand if os.path.isfile(cand) else None
    return path if _is_matlab(path) else None


def _is_matlab(path):
    # MATLAB's level-5 (and 7.3) files open with this text header
    try:
        with open(path, "rb") as f:
            return f.read(6) == b"MATLAB"
    except OSError:
        return False


def _struct_record(value):
    """The one record of a 1x1 MATLAB struct as loadmat returns it, else ``None``."""
    if (isinstance(value, np.ndarray) and value.dtype.names and value.size == 1):
        return value.reshape(-1)[0]
    return None


def _matlab_string(value):
    """A MATLAB char array (loadmat: a (1,) str array, or a str) as ``str``, else ``None``."""
    if isinstance(value, np.ndarray):
        if value.dtype.kind != "U" or value.size != 1:
            return None
        value = value.reshape(-1)[0]
    return str(value) if isinstance(value, str) and value.strip() else None


def read_agedb_pairs(mat_file, image_root=None, ext=".jpg"):
    """AgeDB's protocol file (``04_FINAL_protocol_30_years.mat``) as a pair list.

    The structs are read by position (the first field of a fold is its image cell, the
    second its flags; the first field of an image is its file stem), not by field name.
    The label is the file's own flag (1 same, -1 different).

    Parameters
    ----------
    mat_file : str
        The ``.mat`` file, or the AgeDB folder holding ``04_FINAL_protocol_30_years.mat``.
    image_root : str, optional
        Folder of ``<stem>.jpg``; default ``03_Protocol_Images/`` beside the ``.mat``.
    ext : str
        Image extension.

    Returns
    -------
    list of (str, str, bool)
        6,000 pairs for AgeDB-30: fold 1's 600 pairs (column order), then fold 2's, ...

    Raises
    ------
    DataFormatError
        The file is not a readable MATLAB file with ``splits``, or a fold / pair has another
        structure (the message names the file, fold and pair, counted from 1).
    """
    path = _agedb_mat(mat_file)
    if path is None:
        raise DataFormatError(f"{mat_file}: not a MATLAB file and not a folder holding "
                              f"{AGEDB_MAT} (expected AgeDB's protocol)")
    sio = import_optional("scipy.io", "agedb", "reading AgeDB's .mat protocol")
    try:
        mat = sio.loadmat(path)
    except (OSError, ValueError, NotImplementedError, TypeError) as err:
        raise DataFormatError(f"{path}: cannot read it as a MATLAB v5 file ({err})") from None
    if "splits" not in mat:
        names = sorted(k for k in mat if not k.startswith("__"))
        raise DataFormatError(f"{path}: no variable 'splits' (AgeDB's folds); the file holds "
                              f"{names}")
    splits = mat["splits"]
    if splits.dtype != object or splits.ndim != 2 or 1 not in splits.shape:
        raise DataFormatError(f"{path}: 'splits' is a {splits.shape} {splits.dtype} array, "
                              "expected a column of fold structs, e.g. (10, 1)")
    if image_root is None:
        image_root = os.path.join(os.path.dirname(os.path.abspath(path)), AGEDB_IMAGES)
    pairs, where = [], []
    for i, fold in enumerate(splits.reshape(-1), 1):
        here = f"{path}: fold {i} of {splits.size}"
        rec = _struct_record(fold)
        if rec is None or len(rec) < 2:
            raise DataFormatError(f"{here}: expected a struct of (image cell, flags), got "
                                  f"{getattr(fold, 'shape', type(fold).__name__)}")
        cell, flags = rec[0], rec[1]
        if not (isinstance(cell, np.ndarray) and cell.dtype == object and cell.ndim == 2
                and cell.shape[0] == 2):
            raise DataFormatError(f"{here}: the first field is a "
                                  f"{getattr(cell, 'shape', '?')} array, expected a (2, pairs) "
                                  "cell of images")
        flags = np.asarray(flags)
        if flags.dtype.kind not in "iuf" or flags.size != cell.shape[1]:
            raise DataFormatError(f"{here}: the second field (the flags) is a {flags.shape} "
                                  f"{flags.dtype} array, expected {cell.shape[1]} numbers "
                                  "(one per pair of the image cell)")
        flags = flags.reshape(-1)
        for c in range(cell.shape[1]):
            if flags[c] not in (1, -1):
                raise DataFormatError(f"{here}, pair {c + 1}: flag {flags[c]:g}, expected 1 "
                                      "(same) or -1 (different)")
            images = []
            for r in range(2):
                img = _struct_record(cell[r, c])
                stem = _matlab_string(img[0]) if img is not None and len(img) else None
                if stem is None:
                    raise DataFormatError(f"{here}, pair {c + 1}, image {r + 1}: expected a "
                                          "struct whose first field is the file name")
                images.append(os.path.join(image_root, stem + ext))
            pairs.append((images[0], images[1], bool(flags[c] == 1)))
            where.append((path, f"fold {i} pair {c + 1}"))
    if not pairs:
        raise DataFormatError(f"{path}: 'splits' holds no pairs")
    _check_files(pairs, where)
    return pairs


def detect_protocol(path):
    """Which layout ``path`` has: one of :data:`PROTOCOLS` (``'cfp_fp'`` for a CFP folder).

    A folder with ``Pair_list_F.txt`` is CFP; a MATLAB file, or a folder holding
    ``04_FINAL_protocol_30_years.mat``, is AgeDB; a file whose first line is one or two integers
    is LFW; a file of ``file label`` lines is CALFW / CPLFW; ``a b 1|0`` lines are a plain list.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        if _cfp_dir(path) is not None:
            return "cfp_fp"
        if _agedb_mat(path) is not None:
            return "agedb"
        raise DataFormatError(f"{path}: a folder, but neither CFP's Protocol/ (no "
                              f"Pair_list_F.txt) nor AgeDB's (no {AGEDB_MAT})")
    if _is_matlab(path):
        return "agedb"
    first = next(iter(_lines(path)), None)
    if first is None:
        raise DataFormatError(f"{path}: empty file")
    lineno, fields = first
    if fields[0].startswith("#"):
        return "list"
    if 1 <= len(fields) <= 2 and all(_INT.match(v) for v in fields):
        return "lfw"
    if len(fields) == 2 and _INT.match(fields[1]):
        return "xlfw"
    if len(fields) == 3:
        return "list"
    raise DataFormatError(f"{path}:{lineno}: not a known protocol layout (LFW pairs.txt, CFP "
                          "Protocol/, CALFW/CPLFW pairs, or 'image_a image_b 1|0' lines)")


def read_protocol(path, image_root=None, fmt=None):
    """Read any supported protocol into ``(pairs, fmt)``; ``fmt`` detected when ``None``.

    ``image_root`` is where the images are for LFW, CALFW / CPLFW, AgeDB and plain lists (plain
    lists: default the paths as written); CFP's paths come from its own lists.
    """
    path = os.fspath(path)
    fmt = detect_protocol(path) if fmt is None else fmt
    if fmt == "lfw":
        return read_lfw_pairs(path, image_root), fmt
    if fmt in ("cfp_fp", "cfp_ff"):
        return read_cfp_pairs(path, split=fmt[-2:].upper()), fmt
    if fmt == "xlfw":
        return read_xlfw_pairs(path, image_root), fmt
    if fmt == "agedb":
        return read_agedb_pairs(path, image_root), fmt
    if fmt == "list":
        root = "" if image_root is None else image_root
        pairs = [(os.path.join(root, a), os.path.join(root, b), s) for a, b, s in
                 read_pairs(path)]
        return pairs, fmt
    raise ValueError(f"unknown protocol {fmt!r}; known: {', '.join(PROTOCOLS)}")
