"""IJB-B / IJB-C: template pooling, the 1:1 verification and the 1:N identification protocols.

Functions on arrays (the files are read by :mod:`gluonfr.data.ijb`, the images embedded by
:mod:`gluonfr.metrics.ijb_eval`):

- :func:`image_features` turns raw image embeddings into pooling inputs under a named
  :class:`TestMode` (flip none / sum / concat, per-image normalisation on / off, faceness
  weighting on / off);
- :func:`template_features`: per template, the mean of each media's images, summed over the
  media, L2-normalised (insightface's ``image2template_feature``);
- :func:`verification_11`: cosine score of every listed template pair, the exact ROC,
  TAR at fixed FARs by insightface's nearest-point rule (``tar_at_far``) and by the strict
  rule (``tar_at_far_strict``: best TAR whose FAR does not exceed the target), AUC;
- :func:`identification_1n`: CMC (top-1 / 5 / 10) and TPIR at fixed FPIRs, per gallery and
  the mean over galleries.

Everything runs in blocks: IJB-C's 15.7 million pairs at 512-d are scored without a
pairs-by-dimension array, in bounded memory.
"""
from collections import namedtuple

import numpy as np

from .protocol import DEFAULT_FARS, _roc_of_ranked, _tar_from_roc, _thread_pool, l2_normalize

__all__ = ["TestMode", "DEFAULT_MODE", "FLIPS", "DEFAULT_FPIRS", "parse_modes",
           "image_features", "template_features", "pair_scores", "verification_11",
           "verification_from_scores", "identification_1n"]

#: How the mirror image's embedding joins the image's.
FLIPS = ("none", "sum", "concat")
#: The FPIRs of IJB 1:N tables.
DEFAULT_FPIRS = (1e-4, 1e-3, 1e-2, 1e-1)
# Pair scoring gathers template rows in blocks of about this many bytes per side: large
# enough to amortise numpy's per-call cost, small enough for the rows to stay in cache.
_BLOCK_BYTES = 1 << 20
_POOL_ROWS = 8192
# Pair scoring: first templates are taken in tiles of this many; a tile is scored as one
# matrix product (its first x its second templates) when its pairs are at least
# 1 / _DENSE_FACTOR of those products: gathering the two rows of a pair costs as much as
# tens of dot products inside a BLAS matrix product.
_TILE_ROWS = 512
_DENSE_FACTOR = 48


class TestMode(namedtuple("TestMode", ["flip", "norm", "faceness"])):
    """A named IJB test mode.

    Attributes
    ----------
    flip : {'none', 'sum', 'concat'}
        Mirror-image embedding: ignored, added (insightface's F2) or concatenated (F1).
    norm : bool
        L2-normalise each image's feature before pooling. Off (insightface arcface_torch's
        default, its "N1") keeps the raw norm, which weighs poor images down.
    faceness : bool
        Multiply each image's feature by its detector score (insightface's "D1").

    The name, e.g. ``flip=sum,norm=off,faceness=on``, is recorded with every result.
    """

    __slots__ = ()

    def __new__(cls, flip="sum", norm=False, faceness=True):
        if flip not in FLIPS:
            raise ValueError(f"flip must be one of {FLIPS}, got {flip!r}")
        return super().__new__(cls, flip, bool(norm), bool(faceness))

    @property
    def name(self):
        onoff = {True: "on", False: "off"}
        return f"flip={self.flip},norm={onoff[self.norm]},faceness={onoff[self.faceness]}"

    @classmethod
    def parse(cls, text):
        """``'flip=sum,norm=off,faceness=on'`` (any subset; the rest from the default)."""
        values = DEFAULT_MODE._asdict()
        for item in str(text).split(","):
            key, sep, value = item.strip().partition("=")
            key, value = key.strip().lower(), value.strip().lower()
            if not sep or key not in values:
                raise ValueError(f"test mode {text!r}: {item.strip()!r} is not flip=..., "
                                 "norm=on|off or faceness=on|off")
            if key == "flip":
                if value not in FLIPS:
                    raise ValueError(f"test mode {text!r}: flip must be one of {FLIPS}")
                values[key] = value
            else:
                if value not in ("on", "off"):
                    raise ValueError(f"test mode {text!r}: {key} must be on or off")
                values[key] = value == "on"
        return cls(**values)

    def __str__(self):
        return self.name


#: insightface's published tables: flip-sum, raw norms kept, faceness weighting.
DEFAULT_MODE = TestMode("sum", False, True)


def parse_modes(specs):
    """Test modes from their names: ``'default'``, ``'all'`` (the 12 combinations) or
    :meth:`TestMode.parse` strings; a list, or one string with ``;`` between modes."""
    if isinstance(specs, (str, TestMode)):
        specs = [specs]
    modes = []
    for spec in specs:
        if isinstance(spec, TestMode):
            modes.append(spec)
            continue
        for part in str(spec).split(";"):
            part = part.strip()
            if not part:
                continue
            if part.lower() == "default":
                modes.append(DEFAULT_MODE)
            elif part.lower() == "all":
                modes += [TestMode(f, n, d) for f in FLIPS for n in (False, True)
                          for d in (True, False)]
            else:
                modes.append(TestMode.parse(part))
    if not modes:
        raise ValueError("no test mode given")
    return list(dict.fromkeys(modes))  # unique, in order


def image_features(emb, emb_flip, faceness, mode=DEFAULT_MODE):
    """Per-image features under a test mode: the inputs of :func:`template_features`.

    Parameters
    ----------
    emb, emb_flip : numpy.ndarray, (N, D)
        Raw network outputs for the aligned crops and their mirror images (``emb_flip`` may
        be None for ``flip='none'``).
    faceness : numpy.ndarray, (N,)
        Detector scores.
    mode : TestMode or str

    Returns
    -------
    numpy.ndarray, float32, (N, D) or (N, 2D) for ``flip='concat'``
    """
    if not isinstance(mode, TestMode):
        mode = TestMode.parse(mode)
    emb = np.asarray(emb, dtype=np.float32)
    if emb.ndim != 2:
        raise ValueError(f"emb must be (N, D), got shape {emb.shape}")
    if mode.flip != "none":
        if emb_flip is None or np.shape(emb_flip) != emb.shape:
            raise ValueError(f"flip={mode.flip} needs emb_flip of shape {emb.shape}, got "
                             f"{None if emb_flip is None else np.shape(emb_flip)}")
        emb_flip = np.asarray(emb_flip, dtype=np.float32)
        feats = emb + emb_flip if mode.flip == "sum" else np.concatenate([emb, emb_flip], 1)
    else:
        feats = emb.copy()
    if mode.norm:
        l2_normalize(feats, out=feats)
    if mode.faceness:
        faceness = np.asarray(faceness, dtype=np.float32).ravel()
        if faceness.shape != (len(feats),):
            raise ValueError(f"faceness must have one score per image ({len(feats)}), got "
                             f"{faceness.size}")
        feats *= faceness[:, None]
    return feats


def _weighted_group_sums(values, weights, group, num_groups):
    """float64 sums of ``weights[i] * values[i]`` per group, in blocks of rows taken in group
    order (no copy of ``values``, which for IJB-C is 469,375 rows).

    Each group's rows are contiguous in a block and summed by one ``sum(axis=0)``: a loop
    over groups (about 23k for IJB-C), but ``np.add.reduceat`` along the rows measured
    several times slower than it.
    """
    order = np.argsort(group, kind="stable")
    ordered = group[order]
    sums = np.zeros((num_groups, values.shape[1]), dtype=np.float64)
    buf = np.empty((min(_POOL_ROWS, len(order)), values.shape[1]), dtype=np.float64)
    part = np.empty(values.shape[1], dtype=np.float64)
    for start in range(0, len(order), _POOL_ROWS):
        idx = order[start:start + _POOL_ROWS]
        rows = buf[:len(idx)]
        rows[...] = np.take(values, idx, axis=0)
        rows *= weights[idx, None]
        g = ordered[start:start + len(idx)]
        cuts = (np.flatnonzero(np.diff(g)) + 1).tolist()
        # a group split by the block boundary gets its two parts added separately
        for head, end in zip([0] + cuts, cuts + [len(idx)]):
            sums[g[head]] += np.sum(rows[head:end], axis=0, out=part)
    return sums


def template_features(img_feats, templates, medias):
    """Template features: per media the mean of its images, summed over media, L2-normalised.

    Parameters
    ----------
    img_feats : array_like, (N, D)
        Per-image features (see :func:`image_features`).
    templates, medias : array_like of int, (N,)
        Template and media id of each image.

    Returns
    -------
    template_ids : numpy.ndarray of int64, (T,)
        Sorted unique template ids.
    feats : numpy.ndarray of float32, (T, D)
        Unit rows (a template whose features sum to zero stays zero).
    """
    feats = np.asarray(img_feats)
    if feats.dtype not in (np.float32, np.float64):
        feats = feats.astype(np.float32)
    templates = np.asarray(templates).ravel()
    medias = np.asarray(medias).ravel()
    if feats.ndim != 2 or len(feats) == 0:
        raise ValueError(f"img_feats must be a non-empty (N, D) array, got shape {feats.shape}")
    if templates.shape != (len(feats),) or medias.shape != (len(feats),):
        raise ValueError(f"templates ({templates.size}) and medias ({medias.size}) need one "
                         f"entry per image ({len(feats)})")
    if templates.dtype.kind not in "iu" or medias.dtype.kind not in "iu":
        raise ValueError("templates and medias must be integer ids")
    template_ids, t_index = np.unique(templates, return_inverse=True)
    # one group per (template, media): media ids may repeat across templates
    span = int(medias.max()) - int(medias.min()) + 1
    _, m_index, m_count = np.unique(t_index.astype(np.int64) * span + (medias - medias.min()),
                                    return_inverse=True, return_counts=True)
    # sum over media of the media's mean = sum over images of image / (images in its media):
    # one weighted pass, without a media-by-dimension array (IJB-C has ~10^5 media)
    weights = 1.0 / m_count[m_index]
    pooled = _weighted_group_sums(feats, weights, t_index, len(template_ids))
    out = l2_normalize(pooled).astype(np.float32)
    if not np.isfinite(out).all():
        raise ValueError("image features contain NaN or inf (has the model diverged?)")
    return template_ids.astype(np.int64), out


def _template_rows(template_ids, ids, what):
    """Row of each id in the sorted ``template_ids``; an unknown id is an error."""
    rows = np.searchsorted(template_ids, ids)
    rows = np.minimum(rows, len(template_ids) - 1)
    bad = template_ids[rows] != ids
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{what}: template {int(ids[k])} (entry {k}) has no images "
                         f"({int(bad.sum())} unknown template references)")
    return rows


def _pair_rows(template_ids, t1, t2, chunk=1 << 20):
    """int32 rows of both templates of every pair (checked), computed in chunks so that no
    int64 copy of IJB-C's 15.7 million pairs is made."""
    dtype = np.int32 if len(template_ids) < 2 ** 31 else np.int64
    r1, r2 = np.empty(len(t1), dtype=dtype), np.empty(len(t2), dtype=dtype)
    for start in range(0, len(t1), chunk):
        part = slice(start, start + chunk)
        r1[part] = _template_rows(template_ids, t1[part], "t1")
        r2[part] = _template_rows(template_ids, t2[part], "t2")
    return r1, r2


def _gathered_scores(feats, r1, r2, out, pairs=None):
    """``out[k] = feats[r1[k]] . feats[r2[k]]`` (for ``k`` in ``pairs``, else all), in blocks
    of gathered rows, the blocks split over threads."""
    num = len(r1) if pairs is None else len(pairs)
    block = max(64, _BLOCK_BYTES // (feats.shape[1] * 4))
    starts = range(0, num, block)
    workers = max(1, min(4, len(starts)))

    def run(part):
        a = np.empty((block, feats.shape[1]), dtype=np.float32)
        b = np.empty_like(a)
        dots = np.empty(block, dtype=np.float32)
        for start in part:
            stop = min(start + block, num)
            n = stop - start
            if pairs is None:
                i1, i2 = r1[start:stop], r2[start:stop]
            else:
                which = pairs[start:stop]
                i1, i2 = r1[which], r2[which]
            np.take(feats, i1, axis=0, out=a[:n])
            np.take(feats, i2, axis=0, out=b[:n])
            if pairs is None:
                np.einsum("ij,ij->i", a[:n], b[:n], out=out[start:stop])
            else:
                np.einsum("ij,ij->i", a[:n], b[:n], out=dots[:n])
                out[which] = dots[:n]

    if workers == 1:
        run(starts)
    else:
        # take and einsum release the GIL: blocks split across threads scale with cores
        list(_thread_pool().map(run, [starts[k::workers] for k in range(workers)]))


def pair_scores(template_ids, feats, t1, t2):
    """Cosine score of each template pair, in bounded memory.

    The pairs are grouped in tiles of ``_TILE_ROWS`` distinct first templates. A tile whose
    pairs fill enough of the products of its first templates with its second templates
    (IJB-C has about 680 pairs per template) is scored as one matrix product, from which its
    pairs are read: BLAS computes a dot product far faster than two feature rows are
    gathered for it. Other tiles gather rows, in cache-sized blocks.

    Parameters
    ----------
    template_ids : numpy.ndarray, (T,)
        Sorted, as :func:`template_features` returns them.
    feats : numpy.ndarray, (T, D)
        Unit template features.
    t1, t2 : array_like of int, (P,)

    Returns
    -------
    numpy.ndarray of float32, (P,)
    """
    template_ids = np.asarray(template_ids)
    feats = np.ascontiguousarray(feats, dtype=np.float32)
    t1, t2 = np.asarray(t1).ravel(), np.asarray(t2).ravel()
    if t1.shape != t2.shape:
        raise ValueError(f"t1 has {t1.size} entries but t2 {t2.size}")
    if feats.ndim != 2 or len(feats) != len(template_ids):
        raise ValueError(f"feats must be (T, D) with T = {len(template_ids)} template ids, got "
                         f"shape {feats.shape}")
    if len(template_ids) > 1 and np.any(np.diff(template_ids) <= 0):
        raise ValueError("template_ids must be sorted and unique (as template_features "
                         "returns them)")
    scores = np.empty(len(t1), dtype=np.float32)
    if not len(t1):
        return scores
    r1, r2 = _pair_rows(template_ids, t1, t2)
    num_templates = len(template_ids)
    # tiles of _TILE_ROWS distinct first templates (in row order), whatever their ids
    present = np.zeros(num_templates, dtype=bool)
    present[r1] = True
    first_rows = np.flatnonzero(present)
    rank = np.cumsum(present) - 1
    tiles = -(-len(first_rows) // _TILE_ROWS)
    tile = (rank[r1] // _TILE_ROWS).astype(np.uint16 if tiles < 2 ** 16 else np.int64)
    sparse = []
    for k in range(tiles):
        # one scan of the small tile keys per tile instead of a sort: no pair-sized index
        pairs = np.flatnonzero(tile == k)
        rows = first_rows[k * _TILE_ROWS:(k + 1) * _TILE_ROWS]
        second = np.zeros(num_templates, dtype=bool)
        second[r2[pairs]] = True
        cols = np.flatnonzero(second)
        if len(pairs) * _DENSE_FACTOR < len(rows) * len(cols):
            sparse.append(pairs)
            continue
        # every product of the tile's first and second templates, then the pairs' entries
        sim = feats[rows] @ feats[cols].T
        col = np.cumsum(second) - 1
        scores[pairs] = sim[rank[r1[pairs]] - k * _TILE_ROWS, col[r2[pairs]]]
        del sim
    if sparse:
        _gathered_scores(feats, r1, r2, scores, np.concatenate(sparse))
    return scores


def verification_from_scores(scores, labels, fars=DEFAULT_FARS):
    """The 1:1 numbers from pair scores: exact ROC, TAR at each FAR by both rules, AUC.

    Parameters
    ----------
    scores : array_like, (P,)
        Higher means "same".
    labels : array_like of {0, 1}, (P,)
    fars : sequence of float

    Returns
    -------
    dict
        ``tar_at_far`` ``{far: tar}``
            insightface's rule: the ROC point whose FAR is nearest to the target (ties: the
            higher TAR). Published IJB tables use it.
        ``tar_at_far_strict`` ``{far: tar}``
            The best TAR among ROC points with FAR <= the target.
        ``threshold_at_far``, ``threshold_at_far_strict`` ``{far: score}``
            The thresholds of those points (a pair is accepted when score >= threshold).
        ``auc``
            Area under the exact ROC (trapezoids).
        ``roc_fpr``, ``roc_tpr``, ``roc_thresholds``
            The exact ROC (``sklearn.metrics.roc_curve``'s points).
        ``num_pairs``, ``num_genuine``, ``num_impostor``, ``fars``
            Counts, and the FARs asked for.
    """
    scores = np.asarray(scores).ravel()
    labels = np.asarray(labels).ravel()
    if scores.shape != labels.shape:
        raise ValueError(f"scores has {scores.size} entries but labels {labels.size}")
    if labels.dtype.kind not in "biu" or not ((labels == 0) | (labels == 1)).all():
        raise ValueError("labels must be 0 (impostor) or 1 (genuine)")
    if not np.isfinite(scores).all():
        raise ValueError("scores contain NaN or inf")
    genuine = labels.astype(bool)
    num_genuine = int(genuine.sum())
    if num_genuine == 0 or num_genuine == len(labels):
        raise ValueError("verification needs both genuine (label 1) and impostor (label 0) "
                         "pairs")
    order = np.argsort(scores, kind="stable")[::-1]
    fpr, tpr, thr = _roc_of_ranked(scores[order].astype(np.float64), genuine[order])
    del order
    fars = tuple(float(f) for f in fars)
    nearest, nearest_thr = _tar_from_roc(fpr, tpr, thr, fars)
    strict, strict_thr = {}, {}
    for far in fars:
        # the ROC is non-decreasing in both rates: the last point within the target is best
        k = int(np.searchsorted(fpr, far, side="right")) - 1
        strict[far], strict_thr[far] = float(tpr[k]), float(thr[k])
    return {
        "tar_at_far": nearest,
        "tar_at_far_strict": strict,
        "threshold_at_far": nearest_thr,
        "threshold_at_far_strict": strict_thr,
        "auc": float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2.0)),
        "roc_fpr": fpr,
        "roc_tpr": tpr,
        "roc_thresholds": thr,
        "num_pairs": int(len(labels)),
        "num_genuine": num_genuine,
        "num_impostor": int(len(labels) - num_genuine),
        "fars": list(fars),
    }


def verification_11(template_ids, feats, t1, t2, labels, fars=DEFAULT_FARS):
    """The IJB 1:1 verification protocol on template features.

    Parameters
    ----------
    template_ids, feats : numpy.ndarray
        From :func:`template_features`.
    t1, t2 : array_like of int, (P,)
        Template ids of each pair.
    labels : array_like of {0, 1}, (P,)
    fars : sequence of float

    Returns
    -------
    dict
        :func:`verification_from_scores`'s dictionary plus ``scores`` (float32, (P,), in pair
        order: save them to re-plot or read other FARs without re-embedding).

    Examples
    --------
    >>> ids, feats = template_features(img_feats, meta.templates, meta.medias)
    >>> res = verification_11(ids, feats, meta.t1, meta.t2, meta.labels)
    >>> res['tar_at_far'][1e-4]
    """
    scores = pair_scores(template_ids, feats, t1, t2)
    result = verification_from_scores(scores, labels, fars)
    result["scores"] = scores
    return result


def _subject_scores(sim, gallery_subjects):
    """Per probe, the best score over each gallery subject's templates; subjects sorted."""
    order = np.argsort(gallery_subjects, kind="stable")
    subjects = gallery_subjects[order]
    heads = np.r_[0, np.flatnonzero(np.diff(subjects)) + 1]
    if len(heads) == len(subjects):  # one template per subject: no reduction needed
        return sim[:, order], subjects
    return np.maximum.reduceat(sim[:, order], heads, axis=1), subjects[heads]


def _one_gallery(template_ids, feats, gallery, probes, ranks, fpirs, block=4096):
    g_ids, g_subjects = (np.asarray(a).ravel() for a in gallery)
    p_ids, p_subjects = probes
    if g_ids.shape != g_subjects.shape or not len(g_ids):
        raise ValueError("a gallery must be a non-empty pair (template_ids, subject_ids) of "
                         "equal length")
    g_feats = feats[_template_rows(template_ids, g_ids, "gallery")]
    p_rows = _template_rows(template_ids, p_ids, "probes")
    mate_rank, mate_score, nonmated_best = [], [], []
    for start in range(0, len(p_rows), block):
        sim = feats[p_rows[start:start + block]] @ g_feats.T
        sim, subjects = _subject_scores(sim, g_subjects)
        ps = p_subjects[start:start + block]
        col = np.minimum(np.searchsorted(subjects, ps), len(subjects) - 1)
        mated = subjects[col] == ps
        score = sim[np.arange(len(ps)), col]
        # rank 1 + gallery subjects scoring strictly higher than the mate (ties: the mate's)
        rank = 1 + np.count_nonzero(sim > score[:, None], axis=1)
        mate_rank.append(rank[mated])
        mate_score.append(score[mated])
        nonmated_best.append(sim[~mated].max(axis=1))
    mate_rank = np.concatenate(mate_rank)
    mate_score = np.concatenate(mate_score)
    nonmated_best = np.sort(np.concatenate(nonmated_best))[::-1]
    n_mated, n_nonmated = len(mate_rank), len(nonmated_best)
    cmc = {int(k): float(np.mean(mate_rank <= k)) if n_mated else float("nan") for k in ranks}
    tpir, thresholds = {}, {}
    for fpir in fpirs:
        if not n_nonmated or not n_mated:
            tpir[float(fpir)], thresholds[float(fpir)] = float("nan"), float("nan")
            continue
        thr = float(nonmated_best[max(int(n_nonmated * fpir) - 1, 0)])
        tpir[float(fpir)] = float(np.mean((mate_rank == 1) & (mate_score > thr)))
        thresholds[float(fpir)] = thr
    return {"cmc": cmc, "tpir_at_fpir": tpir, "threshold_at_fpir": thresholds,
            "num_gallery": int(len(g_ids)), "num_mated": int(n_mated),
            "num_nonmated": int(n_nonmated)}


def identification_1n(template_ids, feats, galleries, probes, ranks=(1, 5, 10),
                      fpirs=DEFAULT_FPIRS):
    """The IJB 1:N (open-set) identification protocol, per gallery and averaged.

    A probe is *mated* in a gallery when its subject has a template there. Scores are cosines
    of template features; a subject's score is its best template's.

    - CMC top-k: the fraction of mated probes whose mate ranks k or better (rank 1 + the
      number of gallery subjects scoring strictly higher than the mate).
    - TPIR at FPIR f: with the non-mated probes' best gallery scores sorted from the largest,
      the threshold is the ``max(int(n_nonmated * f) - 1, 0)``-th of them; TPIR is the
      fraction of mated probes whose mate is at rank 1 with a score strictly above it.

    Parameters
    ----------
    template_ids, feats : numpy.ndarray
        From :func:`template_features`.
    galleries : dict or tuple
        ``{name: (template_ids, subject_ids)}`` (IJB-C's G1 and G2), or one such pair.
    probes : tuple
        ``(template_ids, subject_ids)`` of the probe templates.
    ranks : sequence of int
    fpirs : sequence of float

    Returns
    -------
    dict
        ``galleries``: ``{name: {"cmc": {k: rate}, "tpir_at_fpir": {f: tpir},
        "threshold_at_fpir": {f: score}, "num_gallery", "num_mated", "num_nonmated"}}``, and
        ``mean``: the mean over galleries of ``cmc`` and ``tpir_at_fpir``.
    """
    template_ids = np.asarray(template_ids)
    feats = np.asarray(feats, dtype=np.float32)
    if not isinstance(galleries, dict):
        galleries = {"gallery": galleries}
    if not galleries:
        raise ValueError("identification_1n needs at least one gallery")
    p_ids, p_subjects = (np.asarray(a).ravel() for a in probes)
    if p_ids.shape != p_subjects.shape or not len(p_ids):
        raise ValueError("probes must be a non-empty pair (template_ids, subject_ids) of equal "
                         "length")
    out = {name: _one_gallery(template_ids, feats, g, (p_ids, p_subjects), ranks, fpirs)
           for name, g in galleries.items()}
    mean = {key: {k: float(np.mean([r[key][k] for r in out.values()]))
                  for k in next(iter(out.values()))[key]}
            for key in ("cmc", "tpir_at_fpir")}
    return {"galleries": out, "mean": mean}
