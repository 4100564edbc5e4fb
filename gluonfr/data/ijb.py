"""IJB-B / IJB-C in insightface's ``IJB_release`` layout: readers, and a small generated copy.

The layout (one folder per benchmark, ``IJBB`` or ``IJBC``)::

    IJBC/loose_crop/<image>.jpg                 loose face crops, one face each
    IJBC/meta/ijbc_face_tid_mid.txt             image_name template_id media_id
    IJBC/meta/ijbc_name_5pts_score.txt          image_name x1 y1 ... x5 y5 faceness
    IJBC/meta/ijbc_template_pair_label.txt      template_1 template_2 label
    IJBC/meta/ijbc_1N_gallery_G1.csv            1:N gallery (header; TEMPLATE_ID, SUBJECT_ID, ..)
    IJBC/meta/ijbc_1N_gallery_G2.csv
    IJBC/meta/ijbc_1N_probe_mixed.csv           1:N probes

IJB-B uses the prefix ``ijbb_`` and the galleries ``S1`` / ``S2``. The two ``.txt`` image
tables are space separated without a header and list the images in the same order; the 5
points are in loose-crop pixels, in the arcface template's order (left eye, right eye, nose,
left and right mouth corner as seen in the image). The 1:N csvs have one row per image, so a
template appears on many rows, always with the same subject.

:func:`load_ijb` reads everything the evaluation needs into an :class:`IJBMeta`;
:func:`make_synthetic_ijb` writes the same layout from procedural faces (tests, smoke runs).
Malformed lines raise :class:`~gluonfr.data.DataFormatError` naming the file and line.
"""
import io
import os
import warnings

import numpy as np

from ..utils.fileio import atomic_open
from ._io import DataFormatError
from .image import encode_jpeg

__all__ = ["IJB_TARGETS", "IJBMeta", "ijb_dir", "ijb_paths", "read_face_tid_mid",
           "read_name_5pts_score", "read_template_pairs", "read_1n_csv", "load_ijb",
           "make_synthetic_ijb"]

#: target -> (file prefix, 1:N gallery names)
IJB_TARGETS = {"IJBC": ("ijbc", ("G1", "G2")), "IJBB": ("ijbb", ("S1", "S2"))}


def _check_target(target):
    key = str(target).upper().replace("-", "")
    if key not in IJB_TARGETS:
        raise ValueError(f"unknown IJB target {target!r}; expected one of {sorted(IJB_TARGETS)}")
    return key


def ijb_dir(root, target):
    """The benchmark folder: ``root/<target>`` (``root`` is ``IJB_release``), or ``root``
    itself when it already holds ``meta/``."""
    target = _check_target(target)
    root = os.fspath(root)
    for folder in (os.path.join(root, target), root):
        if os.path.isdir(os.path.join(folder, "meta")):
            return folder
    raise FileNotFoundError(f"{root!r} holds neither {target}/meta/ nor meta/: expected "
                            f"insightface's IJB_release layout ({target}/loose_crop, "
                            f"{target}/meta)")


def ijb_paths(root, target):
    """Paths of the layout's folders and files (existing or not), keyed by role.

    Returns
    -------
    dict
        ``images`` (loose_crop folder), ``tid_mid``, ``landmarks``, ``pairs``, ``probe``, and
        ``gallery`` (``{name: path}`` for the two 1:N galleries).
    """
    target = _check_target(target)
    folder = ijb_dir(root, target)
    prefix, galleries = IJB_TARGETS[target]
    meta = os.path.join(folder, "meta")
    return {
        "images": os.path.join(folder, "loose_crop"),
        "tid_mid": os.path.join(meta, f"{prefix}_face_tid_mid.txt"),
        "landmarks": os.path.join(meta, f"{prefix}_name_5pts_score.txt"),
        "pairs": os.path.join(meta, f"{prefix}_template_pair_label.txt"),
        "probe": os.path.join(meta, f"{prefix}_1N_probe_mixed.csv"),
        "gallery": {g: os.path.join(meta, f"{prefix}_1N_gallery_{g}.csv") for g in galleries},
    }


def _lines(path):
    """(line number, fields) of every non-blank line of a space-separated file."""
    if not os.path.isfile(path):
        raise DataFormatError(f"{path}: file not found")
    with open(path, encoding="utf-8", errors="strict") as f:
        try:
            for number, line in enumerate(f, 1):
                fields = line.split()
                if fields:
                    yield number, fields
        except UnicodeDecodeError as err:
            raise DataFormatError(f"{path}: not a UTF-8 text file ({err})") from None


def _int(text, path, number, what):
    try:
        return int(text)
    except ValueError:
        raise DataFormatError(f"{path}, line {number}: {what} {text!r} is not an integer") from None


def read_face_tid_mid(path):
    """Read ``*_face_tid_mid.txt``: ``image_name template_id media_id`` per line.

    Returns
    -------
    names : numpy.ndarray of str, (N,)
    templates, medias : numpy.ndarray of int64, (N,)
    """
    names, templates, medias = [], [], []
    for number, fields in _lines(path):
        if len(fields) != 3:
            raise DataFormatError(f"{path}, line {number}: expected 3 fields 'image_name "
                                  f"template_id media_id', got {len(fields)}")
        names.append(fields[0])
        templates.append(_int(fields[1], path, number, "template id"))
        medias.append(_int(fields[2], path, number, "media id"))
    if not names:
        raise DataFormatError(f"{path}: no images listed")
    return (np.array(names), np.array(templates, dtype=np.int64),
            np.array(medias, dtype=np.int64))


def read_name_5pts_score(path):
    """Read ``*_name_5pts_score.txt``: ``image_name x1 y1 ... x5 y5 faceness`` per line.

    Returns
    -------
    names : numpy.ndarray of str, (N,)
    landmarks : numpy.ndarray of float32, (N, 5, 2)
        Loose-crop pixel coordinates.
    faceness : numpy.ndarray of float32, (N,)
        The detector's score of each face.
    """
    names, values = [], []
    for number, fields in _lines(path):
        if len(fields) != 12:
            raise DataFormatError(f"{path}, line {number}: expected 12 fields 'image_name x1 y1 "
                                  f"... x5 y5 faceness', got {len(fields)}")
        try:
            row = [float(v) for v in fields[1:]]
        except ValueError:
            raise DataFormatError(f"{path}, line {number}: the 5 points and the faceness must "
                                  f"be numbers, got {' '.join(fields[1:])!r}") from None
        if not np.isfinite(row).all():
            raise DataFormatError(f"{path}, line {number}: NaN or infinite value")
        names.append(fields[0])
        values.append(row)
    if not names:
        raise DataFormatError(f"{path}: no images listed")
    values = np.array(values, dtype=np.float32)
    return np.array(names), values[:, :10].reshape(-1, 5, 2), values[:, 10].copy()


def read_template_pairs(path):
    """Read ``*_template_pair_label.txt``: ``template_1 template_2 label`` per line.

    IJB-C's file has 15.7 million lines: it is parsed in one pass by numpy, and only when
    that pass finds something wrong is the file scanned again line by line to name the line.

    Returns
    -------
    t1, t2 : numpy.ndarray of int64, (P,)
    labels : numpy.ndarray of int8, (P,)
        1 for a genuine (same subject) pair, 0 for an impostor pair.
    """
    if not os.path.isfile(path):
        raise DataFormatError(f"{path}: file not found")
    with open(path, "rb") as f:
        data = f.read()
    with warnings.catch_warnings():
        # numpy warns (and stops) at the first token that is not an integer: caught below
        warnings.simplefilter("ignore", DeprecationWarning)
        values = np.fromstring(data, dtype=np.int64, sep=" ")
    rows = data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)
    if rows and values.size == 3 * rows:
        values = values.reshape(-1, 3)
        if ((values[:, 2] == 0) | (values[:, 2] == 1)).all():
            return values[:, 0].copy(), values[:, 1].copy(), values[:, 2].astype(np.int8)
    # something is off (or blank lines): the slow pass names the line, or parses what is fine
    return _parse_pairs_by_line(path, data)


def _parse_pairs_by_line(path, data):
    t1, t2, labels = [], [], []
    for number, line in enumerate(io.StringIO(data.decode("utf-8", errors="replace")), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 3:
            raise DataFormatError(f"{path}, line {number}: expected 3 fields 'template_1 "
                                  f"template_2 label', got {len(fields)}")
        t1.append(_int(fields[0], path, number, "template id"))
        t2.append(_int(fields[1], path, number, "template id"))
        if fields[2] not in ("0", "1"):
            raise DataFormatError(f"{path}, line {number}: label must be 0 or 1, got "
                                  f"{fields[2]!r}")
        labels.append(int(fields[2]))
    if not labels:
        raise DataFormatError(f"{path}: no pairs listed")
    return (np.array(t1, dtype=np.int64), np.array(t2, dtype=np.int64),
            np.array(labels, dtype=np.int8))


def read_1n_csv(path):
    """Read a 1:N gallery or probe csv: the templates and their subjects.

    The file has a header row and one row per image; columns 0 and 1 are ``TEMPLATE_ID`` and
    ``SUBJECT_ID``.

    Returns
    -------
    template_ids, subject_ids : numpy.ndarray of int64
        One entry per template, ordered by template id.
    """
    if not os.path.isfile(path):
        raise DataFormatError(f"{path}: file not found")
    subject_of = {}
    with open(path, encoding="utf-8", errors="replace") as f:
        header = f.readline()
        if not header.strip():
            raise DataFormatError(f"{path}: empty file (expected a header row, then "
                                  "TEMPLATE_ID,SUBJECT_ID,... rows)")
        for number, line in enumerate(f, 2):
            if not line.strip():
                continue
            fields = line.rstrip("\r\n").split(",")
            if len(fields) < 2:
                raise DataFormatError(f"{path}, line {number}: expected comma-separated "
                                      f"TEMPLATE_ID,SUBJECT_ID,..., got {line.strip()!r}")
            template = _int(fields[0].strip(), path, number, "TEMPLATE_ID")
            subject = _int(fields[1].strip(), path, number, "SUBJECT_ID")
            known = subject_of.setdefault(template, subject)
            if known != subject:
                raise DataFormatError(f"{path}, line {number}: template {template} has subject "
                                      f"{subject} here but {known} on an earlier line")
    if not subject_of:
        raise DataFormatError(f"{path}: no templates listed")
    ids = np.array(sorted(subject_of), dtype=np.int64)
    return ids, np.array([subject_of[t] for t in ids.tolist()], dtype=np.int64)


class IJBMeta:
    """Everything the IJB evaluation reads from the meta files of one benchmark.

    Attributes
    ----------
    target : str
        ``'IJBC'`` or ``'IJBB'``.
    image_dir : str
        The ``loose_crop`` folder.
    names : numpy.ndarray of str, (N,)
    templates, medias : numpy.ndarray of int64, (N,)
    landmarks : numpy.ndarray of float32, (N, 5, 2)
    faceness : numpy.ndarray of float32, (N,)
    t1, t2 : numpy.ndarray of int64, (P,)
        The 1:1 template pairs.
    labels : numpy.ndarray of int8, (P,)
    galleries : dict
        ``{name: (template_ids, subject_ids)}`` of the 1:N galleries found (may be empty).
    probes : tuple or None
        ``(template_ids, subject_ids)`` of the 1:N mixed probes, when present.
    """

    def __init__(self, target, image_dir, names, templates, medias, landmarks, faceness,
                 t1, t2, labels, galleries=None, probes=None):
        self.target = target
        self.image_dir = image_dir
        self.names = names
        self.templates = templates
        self.medias = medias
        self.landmarks = landmarks
        self.faceness = faceness
        self.t1, self.t2, self.labels = t1, t2, labels
        self.galleries = dict(galleries or {})
        self.probes = probes

    def __len__(self):
        return len(self.names)

    def image_path(self, i):
        """Path of image ``i``'s loose crop."""
        return os.path.join(self.image_dir, str(self.names[i]))

    def __repr__(self):
        return (f"IJBMeta({self.target}: {len(self)} images, "
                f"{len(np.unique(self.templates))} templates, {len(self.labels)} pairs, "
                f"1:N galleries {sorted(self.galleries)})")


def load_ijb(root, target="IJBC", pairs=True, one_to_n=True):
    """Read the meta files of IJB-C or IJB-B.

    Parameters
    ----------
    root : str
        ``IJB_release`` (holding ``IJBC/`` or ``IJBB/``) or the benchmark folder itself.
    target : {'IJBC', 'IJBB'}
    pairs : bool
        Read the 1:1 pair file (the largest: 15.7 million lines for IJB-C).
    one_to_n : bool
        Read the 1:N gallery and probe csvs when they exist (they are optional).

    Returns
    -------
    IJBMeta

    Raises
    ------
    gluonfr.data.DataFormatError
        A missing or malformed meta file (the message names the file and line), or the two
        image tables disagreeing about an image.
    """
    target = _check_target(target)
    paths = ijb_paths(root, target)
    names, templates, medias = read_face_tid_mid(paths["tid_mid"])
    names_lmk, landmarks, faceness = read_name_5pts_score(paths["landmarks"])
    if len(names_lmk) != len(names):
        raise DataFormatError(f"{paths['landmarks']} lists {len(names_lmk)} images but "
                              f"{paths['tid_mid']} lists {len(names)}: they must list the same "
                              "images in the same order")
    mismatch = np.flatnonzero(names_lmk != names)
    if mismatch.size:
        k = int(mismatch[0])
        raise DataFormatError(f"{paths['landmarks']}, image {k + 1}: {names_lmk[k]!r} but "
                              f"{paths['tid_mid']} has {names[k]!r} there (same order expected)")
    if pairs:
        t1, t2, labels = read_template_pairs(paths["pairs"])
    else:
        t1 = t2 = np.zeros(0, dtype=np.int64)
        labels = np.zeros(0, dtype=np.int8)
    galleries, probes = {}, None
    if one_to_n and os.path.isfile(paths["probe"]):
        probes = read_1n_csv(paths["probe"])
        galleries = {g: read_1n_csv(p) for g, p in paths["gallery"].items() if os.path.isfile(p)}
    return IJBMeta(target, paths["images"], names, templates, medias, landmarks, faceness,
                   t1, t2, labels, galleries, probes)


def _write_text(path, lines):
    with atomic_open(path, "w", encoding="utf-8") as f:
        f.writelines(line + "\n" for line in lines)


def make_synthetic_ijb(root, target="IJBC", num_subjects=6, templates_per_subject=2,
                       medias_per_template=2, images_per_media=2, distractors=2, seed=0,
                       crop_size=(136, 128), quality=92):
    """Write a small IJB-layout benchmark of procedural faces (tests, smoke runs).

    Each subject is a procedural identity (:mod:`gluonfr.data.synthetic`); each image is one of
    its renders, placed into a larger loose crop by a random rotation, scale and shift, with
    the landmarks carried along and a random faceness. Templates have several media of
    several images. The 1:1 pairs are every pair of templates (label: same subject). The 1:N
    galleries hold the first template of each subject, split in two halves (G1 / G2, or S1 /
    S2); the probes are the other templates, plus ``distractors`` subjects that are in no
    gallery, so each gallery has mated and non-mated probes.

    Parameters
    ----------
    root : str
        Created if missing; the benchmark goes to ``root/<target>``.
    target : {'IJBC', 'IJBB'}
    num_subjects, templates_per_subject, medias_per_template, images_per_media : int
    distractors : int
        Extra probe-only subjects.
    seed : int
    crop_size : (int, int)
        (width, height) of the loose crops.
    quality : int
        JPEG quality.

    Returns
    -------
    str
        ``root/<target>``.
    """
    import cv2

    from .align import ARCFACE_TEMPLATE, transform_points
    from .synthetic import render_identity_image

    target = _check_target(target)
    prefix, gallery_names = IJB_TARGETS[target]
    if num_subjects < 2 or templates_per_subject < 2:
        raise ValueError("make_synthetic_ijb needs at least 2 subjects with at least 2 "
                         "templates each (a gallery template and a probe template)")
    folder = os.path.join(os.fspath(root), target)
    image_dir = os.path.join(folder, "loose_crop")
    os.makedirs(image_dir, exist_ok=True)
    rng = np.random.default_rng(seed)
    width, height = crop_size
    tid_mid, lmk_lines, rows_1n = [], [], {}
    template_subject = []
    image_count = media_id = 0
    total_subjects = num_subjects + distractors
    for subject in range(total_subjects):
        count = templates_per_subject if subject < num_subjects else 1
        for _ in range(count):
            template = len(template_subject) + 1
            template_subject.append(subject + 1)
            for _ in range(medias_per_template):
                media_id += 1
                for _ in range(images_per_media):
                    image_count += 1
                    face = render_identity_image(seed, subject, image_count, stream=2)
                    angle = rng.uniform(-20, 20)
                    scale = rng.uniform(0.8, 1.05)
                    centre = np.array([56.0, 60.0])
                    m = cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])), angle,
                                                scale)
                    m[:, 2] += np.array([width / 2.0, height / 2.0]) - centre
                    m[:, 2] += rng.uniform(-6, 6, size=2)
                    crop = cv2.warpAffine(face, m, (width, height), flags=cv2.INTER_LINEAR,
                                          borderMode=cv2.BORDER_REFLECT)
                    points = transform_points(m, ARCFACE_TEMPLATE)
                    name = f"{image_count}.jpg"
                    with atomic_open(os.path.join(image_dir, name), "wb") as f:
                        f.write(encode_jpeg(np.ascontiguousarray(crop[:, :, ::-1]), quality))
                    faceness = rng.uniform(0.5, 1.0)
                    tid_mid.append(f"{name} {template} {media_id}")
                    lmk_lines.append(name + " " + " ".join(f"{v:.3f}" for v in points.ravel())
                                     + f" {faceness:.6f}")
                    rows_1n.setdefault(template, []).append(name)
    meta = os.path.join(folder, "meta")
    os.makedirs(meta, exist_ok=True)
    _write_text(os.path.join(meta, f"{prefix}_face_tid_mid.txt"), tid_mid)
    _write_text(os.path.join(meta, f"{prefix}_name_5pts_score.txt"), lmk_lines)
    pairs = [f"{a + 1} {b + 1} {int(template_subject[a] == template_subject[b])}"
             for a in range(len(template_subject)) for b in range(a + 1, len(template_subject))]
    _write_text(os.path.join(meta, f"{prefix}_template_pair_label.txt"), pairs)
    firsts = {}
    for t, s in enumerate(template_subject, 1):
        firsts.setdefault(s, t)
    gallery_templates = [firsts[s] for s in range(1, num_subjects + 1)]
    halves = (gallery_templates[:num_subjects // 2], gallery_templates[num_subjects // 2:])
    probe_templates = [t for t in range(1, len(template_subject) + 1)
                       if t not in gallery_templates]
    header = "TEMPLATE_ID,SUBJECT_ID,FILENAME"
    for name, members in zip(gallery_names, halves):
        _write_text(os.path.join(meta, f"{prefix}_1N_gallery_{name}.csv"),
                    [header] + [f"{t},{template_subject[t - 1]},{img}" for t in members
                                for img in rows_1n[t]])
    _write_text(os.path.join(meta, f"{prefix}_1N_probe_mixed.csv"),
                [header] + [f"{t},{template_subject[t - 1]},{img}" for t in probe_templates
                            for img in rows_1n[t]])
    return folder
