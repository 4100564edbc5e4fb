"""Pack an image folder (one sub-folder per identity) into insightface's RecordIO layout.

Bad images are handled as documented in :func:`pack_rec`: by default an unreadable image is
skipped, counted and reported in one warning (and in the returned summary); an image of the
wrong size without landmarks is a usage error and stops the run. Nothing is ever left
half-written: the output files appear only when packing succeeds.
"""
import os
import warnings

import numpy as np
from tqdm import tqdm

from ._io import DataFormatError
from .align import lookup_landmarks, norm_crop, read_landmarks
from .image import encode_jpeg, read_image
from .recordio import RecordWriter

__all__ = ["IMAGE_EXTENSIONS", "list_identity_folders",
           "pack_rec", "read_pairs", "sample_pairs", "aligned_rgb"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm")


def list_identity_folders(image_folder):
    """``[(identity name, [image paths...]), ...]`` sorted by name; hidden entries ignored."""
    image_folder = os.fspath(image_folder)
    if not os.path.isdir(image_folder):
        raise ValueError(f"pack_rec: {image_folder!r} is not a folder")
    out = []
    for name in sorted(os.listdir(image_folder)):
        sub = os.path.join(image_folder, name)
        if name.startswith(".") or not os.path.isdir(sub):
            continue
        files = [os.path.join(sub, f) for f in sorted(os.listdir(sub))
                 if not f.startswith(".") and f.lower().endswith(IMAGE_EXTENSIONS)]
        out.append((name, files))
    return out


def aligned_rgb(path, table, image_folder, size=112):
    """The aligned ``size`` x ``size`` RGB crop of ``path`` with its landmarks from ``table``.

    Raises :class:`DataFormatError` naming the file when it has no landmarks or cannot be read.
    """
    lmk = lookup_landmarks(table, path, root=image_folder)
    if lmk is None:
        raise DataFormatError(f"{path}: no landmarks in the landmark table")
    return norm_crop(read_image(path, "rgb"), lmk, size)


def _prepare(path, image_size, landmarks, quality, detector=None):
    """-> ('ok', jpeg bytes) | ('skip', reason) | ('error', message).

    ``detector`` is a :func:`gluonfr.detect.detector_config` (or ``None``): images that are
    not ``image_size`` crops and have no landmarks are then detected and aligned.
    """
    try:
        img = read_image(path, "bgr")
    except (OSError, DataFormatError):
        return "skip", "unreadable or not an image"
    h, w = image_size
    if landmarks is not None:
        img = norm_crop(img, landmarks, size=h)
    elif img.shape[:2] != (h, w):
        if detector is None:
            return "error", (f"pack_rec: {path} is {img.shape[1]}x{img.shape[0]}, expected an "
                             f"aligned {w}x{h} crop; pass a landmark file or a detector to "
                             "align on the fly")
        from ..detect import NoFaceError, detect_and_align, detector_from_config

        try:
            img = detect_and_align(detector_from_config(detector), img, path, h)[0]
        except NoFaceError:
            return "skip", "no face found"
    return "ok", encode_jpeg(img, quality)


def _prepare_star(args):
    return _prepare(*args)


def pack_rec(image_folder, out_dir, quality=95, landmarks=None, image_size=(112, 112),
             header=True, array_labels=False, on_error="skip", num_workers=0, identities=None,
             detector="auto"):
    """Pack ``image_folder/<identity>/<image>`` into ``out_dir/{train.rec,train.idx,property}``.

    Parameters
    ----------
    image_folder : str
        One sub-folder per identity; labels 0..C-1 follow the sorted folder names.
    out_dir : str
        Output folder (created if needed). Existing files there are replaced only on success.
    quality : int
        JPEG quality of the stored images (insightface used 95).
    landmarks : str or dict, optional
        A landmark file (see :func:`read_landmarks`) or ``{relative path: (5, 2)}``. When given,
        every image is aligned with :func:`~gluonfr.data.align.norm_crop`; an image without
        landmarks counts as unreadable. Without it, images of ``image_size`` are taken as
        aligned crops and the others go through ``detector``.
    image_size : (int, int)
        (height, width) of the stored crops (square when aligning).
    header : bool
        Write insightface's key-0 header and identity records (default) or a headerless rec.
    array_labels : bool
        Store labels as ``[label, 0]`` arrays like the old ``face2rec2`` packs.
    on_error : {'skip', 'raise'}
        What an unreadable image does: ``'skip'`` leaves it out, counts it and warns once at
        the end (identities left with no image are dropped and the labels stay contiguous);
        ``'raise'`` stops with a :class:`DataFormatError` naming the file, writing nothing.
    num_workers : int
        Processes decoding / aligning / encoding in parallel (0 = this process).
    identities : iterable of str, optional
        Pack only these identity sub-folders (labels 0..C-1 follow their sorted names), e.g.
        to hold some identities out for verification pairs (:func:`sample_pairs`).
    detector : FaceDetector, 'auto' or None
        Aligns raw photos on the fly when no landmarks are given: the most prominent face
        (largest box) is aligned with ``norm_crop``; a photo without a face is skipped like
        an unreadable one (reason ``'no face found'``). ``'auto'``: a default
        :class:`gluonfr.detect.FaceDetector`, built only when a photo needs it. ``None``: a
        photo that is not an aligned crop is an error. With workers, detection runs in
        spawned processes. For big raw sets, ``gluonfr-align`` (resumable, with a report)
        then ``pack_rec`` on the aligned tree is the better path.

    Returns
    -------
    dict
        ``rec``, ``idx``, ``property`` paths, ``num_images``, ``num_classes``,
        ``identities`` (folder name of each label) and ``skipped`` (``[(path, reason)]``).

    Raises
    ------
    ValueError
        The folder has no identity sub-folders or no usable image at all, or an image has the
        wrong size and no landmarks were given.
    """
    image_folder = os.fspath(image_folder)
    if on_error not in ("skip", "raise"):
        raise ValueError(f"on_error must be 'skip' or 'raise', got {on_error!r}")
    image_size = (int(image_size[0]), int(image_size[1]))
    if landmarks is not None and image_size[0] != image_size[1]:
        raise ValueError(f"alignment makes square crops; got image_size={image_size}")
    table = read_landmarks(landmarks) if isinstance(landmarks, (str, os.PathLike)) else landmarks
    folders = list_identity_folders(image_folder)
    if identities is not None:
        wanted = set(identities)
        unknown = sorted(wanted - {name for name, _ in folders})
        if unknown:
            raise ValueError(f"pack_rec: identities {unknown[:5]} are not sub-folders of "
                             f"{image_folder!r}")
        folders = [(name, files) for name, files in folders if name in wanted]
    identities = folders
    total = sum(len(files) for _, files in identities)
    if not total:
        raise ValueError(f"pack_rec: {image_folder!r} holds no images in identity sub-folders "
                         f"(expected {image_folder}/<identity>/<image>{IMAGE_EXTENSIONS[0]}); "
                         "nothing written")
    det = None
    if table is None and detector is not None:
        from ..detect import detector_config

        det = detector_config(detector)
    jobs, owners, skipped = [], [], []
    for ident, (_name, files) in enumerate(identities):
        for path in files:
            lmk = None
            if table is not None:
                lmk = lookup_landmarks(table, path, root=image_folder)
                if lmk is None:
                    if on_error == "raise":
                        raise DataFormatError(f"pack_rec: no landmarks for {path}")
                    skipped.append((path, "no landmarks"))
                    continue
            jobs.append((path, image_size, lmk, quality, det))
            owners.append(ident)
    kept_names = []
    with RecordWriter(out_dir, image_size=image_size, header=header,
                      array_labels=array_labels) as writer:
        results = _run_jobs(jobs, num_workers, spawn=det is not None)
        last_ident = None
        for (path, *_), ident, (status, payload) in zip(
                jobs, owners, tqdm(results, total=len(jobs), desc="packing", unit="img")):
            if status == "error":
                raise ValueError(payload)
            if status == "skip":
                if on_error == "raise":
                    raise DataFormatError(f"pack_rec: {path}: {payload}")
                skipped.append((path, payload))
                continue
            if ident != last_ident:
                kept_names.append(identities[ident][0])
                last_ident = ident
            writer.add(len(kept_names) - 1, payload)
        if not writer.num_images:
            raise ValueError(f"pack_rec: none of the {total} images under {image_folder!r} "
                             "could be read; nothing written")
        num_images = writer.num_images
    paths = writer.paths
    if skipped:
        warnings.warn(f"pack_rec: skipped {len(skipped)} of {total} images (first: "
                      f"{skipped[0][0]}: {skipped[0][1]}); {len(identities) - len(kept_names)} "
                      "identities were left without images", stacklevel=2)
    return {"rec": paths["rec"], "idx": paths["idx"], "property": paths["property"],
            "num_images": num_images, "num_classes": len(kept_names),
            "identities": kept_names, "skipped": skipped}


def _run_jobs(jobs, num_workers, spawn=False):
    if num_workers and num_workers > 0 and len(jobs) > 1:
        import multiprocessing as mp

        # the detector's OpenCV threads can deadlock in forked children: spawn them then
        method = "spawn" if spawn or os.name == "nt" else "fork"
        with mp.get_context(method).Pool(num_workers) as pool:
            yield from pool.imap(_prepare_star, jobs, chunksize=16)
    else:
        for job in jobs:
            yield _prepare(*job)


def sample_pairs(identities, num_pairs, seed=0, folds=10):
    """An LFW-style verification pair list from identity folders, for :func:`pack_bin`.

    Parameters
    ----------
    identities : list of (name, [image paths])
        As :func:`list_identity_folders` returns (possibly a held-out subset).
    num_pairs : int
        Even; half are same-identity pairs.
    seed : int
        The pairs are a pure function of the arguments.
    folds : int
        The list is cut into ``folds`` consecutive blocks, each holding its same pairs and then
        its different pairs (LFW's ``pairs.txt`` order), so that 10-fold cross-validation sees
        balanced folds.

    Returns
    -------
    list of (path_a, path_b, issame)
        Same pairs are two different images of one identity; no pair repeats while distinct
        pairs remain.
    """
    num_pairs = int(num_pairs)
    if num_pairs < 2 or num_pairs % 2:
        raise ValueError(f"sample_pairs: num_pairs must be even and >= 2, got {num_pairs}")
    usable = [files for _, files in identities if files]
    multi = [files for files in usable if len(files) >= 2]
    if len(usable) < 2 or not multi:
        raise ValueError("sample_pairs: need at least 2 identities with images and one with 2 "
                         f"or more images; got {len(usable)} identities, {len(multi)} with "
                         "2+ images")
    rng = np.random.default_rng(seed)
    half = num_pairs // 2
    capacity = {"same": sum(len(f) * (len(f) - 1) // 2 for f in multi),
                "diff": (sum(map(len, usable)) ** 2 - sum(len(f) ** 2 for f in usable)) // 2}
    seen = {"same": set(), "diff": set()}

    def draw(kind):
        while True:
            if kind == "same":
                files = multi[rng.integers(len(multi))]
                a, b = rng.choice(len(files), 2, replace=False)
                pair = (files[a], files[b])
            else:
                i, j = rng.choice(len(usable), 2, replace=False)
                pair = (usable[i][rng.integers(len(usable[i]))],
                        usable[j][rng.integers(len(usable[j]))])
            key = tuple(sorted(pair))
            if len(seen[kind]) >= capacity[kind]:
                seen[kind].clear()  # every distinct pair used: start repeating
            if key not in seen[kind]:
                seen[kind].add(key)
                return pair

    pairs = []
    blocks = np.array_split(np.arange(half), max(1, min(int(folds), half)))
    for block in blocks:
        pairs += [draw("same") + (True,) for _ in block]
        pairs += [draw("diff") + (False,) for _ in block]
    return pairs


_TRUE, _FALSE = {"1", "true", "yes", "same"}, {"0", "false", "no", "diff", "different"}


def read_pairs(path):
    """Read a pairs list (``gluonfr-pack-bin``'s input) into ``[(image_a, image_b, issame)]``.

    One pair per line, ``image_a image_b same`` with same = 1/0 (also true/false, yes/no,
    same/diff); ``#`` starts a comment and blank lines are skipped.

    Raises
    ------
    ValueError
        Naming the file and line of a malformed line, or when the file holds no pair.
    """
    path = os.fspath(path)
    pairs = []
    with open(path) as f:
        for lineno, line in enumerate(f, 1):
            fields = line.split("#", 1)[0].split()
            if not fields:
                continue
            if len(fields) != 3 or fields[2].lower() not in _TRUE | _FALSE:
                raise ValueError(f"{path}:{lineno}: expected 'image_a image_b 1|0', got "
                                 f"{line.strip()!r}")
            pairs.append((fields[0], fields[1], fields[2].lower() in _TRUE))
    if not pairs:
        raise ValueError(f"{path}: no pairs found")
    return pairs
