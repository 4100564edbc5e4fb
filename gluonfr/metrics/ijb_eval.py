"""The IJB-B / IJB-C evaluation run: align, embed (cached, resumable), pool, score, report.

- :func:`embed_ijb` aligns every loose crop from its 5 points
  (:func:`gluonfr.data.align.norm_crop`), embeds it and its mirror image, and caches the raw
  embeddings on disk in chunks: a killed run resumes at the first missing chunk, and every
  test mode is computed from the same cache without re-embedding;
- :func:`evaluate_ijb` scores the embeddings under each :class:`~gluonfr.metrics.ijb.TestMode`
  (1:1 and, when the 1:N files are there, 1:N);
- :func:`format_ijb_table`, :func:`ijb_results_to_json`, :func:`save_scores` /
  :func:`load_scores` and :func:`plot_ijb_roc` report them (saved scores give other FARs and
  plots without the network).
"""
import hashlib
import json
import os
import warnings
import zipfile
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from tqdm import tqdm

from ..data._io import DataFormatError
from ..data.align import norm_crop
from ..data.image import read_image
from ..utils.fileio import atomic_open
from .ijb import (
    DEFAULT_FPIRS,
    DEFAULT_MODE,
    identification_1n,
    image_features,
    parse_modes,
    template_features,
    verification_11,
    verification_from_scores,
)
from .protocol import DEFAULT_FARS

__all__ = ["embed_ijb", "ijb_forward", "aligned_crops", "evaluate_ijb", "format_ijb_table",
           "ijb_results_to_json", "save_scores", "load_scores", "rescore", "plot_ijb_roc",
           "CACHE_FORMAT"]

#: Written into every cache index; a cache of another format is refused, not misread.
CACHE_FORMAT = "gluonfr-ijb-embeddings/1"


def ijb_forward(net=None, onnx_path=None, ctx=None, batch_size=64):
    """A function ``crops -> (emb, emb_flip)`` over an MXNet network or an ONNX file.

    Parameters
    ----------
    net : mxnet.gluon.Block, optional
        Any gluonfr embedding network, e.g. from
        :func:`gluonfr.model_zoo.load_embedding_net` (zoo model, imported model or exported
        symbol): NCHW float32 RGB 0..255 in, (N, D) out.
    onnx_path : str, optional
        An ``.onnx`` file with the same input convention (``gluonfr-export-onnx`` writes
        such files), run with ONNX Runtime on the CPU.
    ctx : mxnet.Context or list of Context
        For ``net``: a list splits each batch over the devices.
    batch_size : int

    Returns
    -------
    callable
        ``f(crops)`` with crops (N, 112, 112, 3) uint8 RGB, returning two float32 (N, D)
        arrays: the embeddings of the crops and of their mirror images.
    """
    from .embeddings import forward_images, forward_onnx

    if (net is None) == (onnx_path is None):
        raise ValueError("give a network (net=...) or an ONNX file (onnx_path=...), not both")
    if net is not None:
        import mxnet as mx

        from ..utils.fusion import fuse, fusion_available

        ctx = mx.cpu() if ctx is None else ctx
        if fusion_available(ctx):  # once, not per chunk of crops
            net = fuse(net, (1, 3, 112, 112))
        return lambda crops: forward_images(net, crops, ctx=ctx, batch_size=batch_size,
                                            flip=True, progress=False)
    from .._optional import import_optional

    ort = import_optional("onnxruntime", "onnx", "ijb_forward(onnx_path=...)")
    if not os.path.isfile(onnx_path):
        raise FileNotFoundError(f"ONNX file {onnx_path!r} does not exist")
    session = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    return lambda crops: forward_onnx(session, crops, batch_size=batch_size, flip=True)


def _aligned(meta, i):
    path = meta.image_path(i)
    where = f"{path} (image {i + 1} of the {meta.target} meta files)"
    return norm_crop(read_image(path, color="rgb", where=where), meta.landmarks[i])


def aligned_crops(meta, indices, pool=None):
    """(n, 112, 112, 3) uint8 RGB crops of images ``indices``, aligned from their 5 points."""
    indices = list(indices)
    crops = (pool.map(lambda i: _aligned(meta, i), indices) if pool is not None
             else (_aligned(meta, i) for i in indices))
    return np.stack(list(crops))


def _meta_digest(meta):
    """sha1 of what the embeddings depend on: the image names, in order, and their points."""
    h = hashlib.sha1()
    h.update("\n".join(map(str, meta.names)).encode("utf-8"))
    h.update(np.ascontiguousarray(meta.landmarks, dtype=np.float32).tobytes())
    return h.hexdigest()


def _load_chunk(path, rows):
    """The (emb, emb_flip) of a cached chunk, or None when it is unusable."""
    try:
        with np.load(path, allow_pickle=False) as z:
            emb, emb_flip = z["emb"], z["emb_flip"]
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as err:
        warnings.warn(f"{path}: unreadable cached chunk ({err}); embedding it again",
                      stacklevel=3)
        return None
    if emb.shape != emb_flip.shape or emb.ndim != 2 or len(emb) != rows:
        warnings.warn(f"{path}: cached chunk has shape {emb.shape}, expected {rows} rows; "
                      "embedding it again", stacklevel=3)
        return None
    return emb, emb_flip


def embed_ijb(meta, forward, cache_dir, model_id, chunk_size=4096, progress=True,
              workers=2):
    """Raw embeddings of every IJB image and its mirror image, cached on disk in chunks.

    Chunk ``k`` (images ``k * chunk_size`` up to the next chunk) is written atomically to
    ``cache_dir/chunk-<k>.npz`` as soon as it is embedded, so a killed run loses at most the
    chunk in progress; run again with the same arguments to resume. ``cache_dir/index.json``
    records what the cache belongs to (the image list and its landmarks, ``model_id``, the
    chunk size): a cache of another model or benchmark is refused.

    Parameters
    ----------
    meta : gluonfr.data.ijb.IJBMeta
    forward : callable
        ``crops -> (emb, emb_flip)``, e.g. :func:`ijb_forward`.
    cache_dir : str
        Created if needed.
    model_id : str
        What identifies the network (e.g. a hash of its files): part of the cache's identity.
    chunk_size : int
        Images per chunk (a new cache only; a resumed cache keeps its own).
    progress : bool
        tqdm bar with images/s and the time left.
    workers : int
        Threads decoding and aligning the next chunk while the network runs.

    Returns
    -------
    emb, emb_flip : numpy.ndarray of float32, (N, D)
    """
    if int(chunk_size) != chunk_size or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    os.makedirs(cache_dir, exist_ok=True)
    index_path = os.path.join(cache_dir, "index.json")
    identity = {"format": CACHE_FORMAT, "target": meta.target, "num_images": len(meta),
                "images_sha1": _meta_digest(meta), "model": str(model_id)}
    if os.path.isfile(index_path):
        try:
            with open(index_path, encoding="utf-8") as f:
                index = json.load(f)
            int(index["chunk_size"])
        except (ValueError, KeyError, TypeError) as err:
            raise DataFormatError(f"{index_path}: not a gluonfr IJB embedding cache index "
                                  f"({err!r}); give another cache directory") from None
        for key, value in identity.items():
            if index.get(key) != value:
                raise ValueError(f"{index_path}: this embedding cache was made for {key} "
                                 f"{index.get(key)!r}, not {value!r}; give another cache "
                                 "directory (or delete this one)")
        chunk_size = int(index["chunk_size"])
    else:
        index = dict(identity, chunk_size=int(chunk_size))
        with atomic_open(index_path, "w", encoding="utf-8") as f:
            json.dump(index, f, indent=1)
    num = len(meta)
    chunks = [(k, range(start, min(start + chunk_size, num)))
              for k, start in enumerate(range(0, num, chunk_size))]
    done, todo = {}, []
    for k, rows in chunks:
        path = os.path.join(cache_dir, f"chunk-{k:05d}.npz")
        got = _load_chunk(path, len(rows)) if os.path.isfile(path) else None
        if got is None:
            todo.append((k, rows))
        else:
            done[k] = got
    emb = emb_flip = None

    def place(k, pair):
        nonlocal emb, emb_flip
        if emb is None:
            emb = np.empty((num, pair[0].shape[1]), dtype=np.float32)
            emb_flip = np.empty_like(emb)
        if pair[0].shape[1] != emb.shape[1]:
            raise ValueError(f"chunk {k} has {pair[0].shape[1]}-d embeddings, others "
                             f"{emb.shape[1]}-d: is the cache from another model?")
        rows = chunks[k][1]
        emb[rows.start:rows.stop] = pair[0]
        emb_flip[rows.start:rows.stop] = pair[1]

    for k in sorted(done):
        place(k, done.pop(k))
    initial = num - sum(len(rows) for _, rows in todo)
    with ThreadPoolExecutor(1) as prefetch, ThreadPoolExecutor(max(1, int(workers))) as pool, \
            tqdm(total=num, initial=initial, desc=f"{meta.target} images", unit="img",
                 disable=not progress, smoothing=0.1) as bar:
        # decode and align the next chunk while the network embeds this one
        pending = prefetch.submit(aligned_crops, meta, todo[0][1], pool) if todo else None
        for n, (k, rows) in enumerate(todo):
            crops = pending.result()
            pending = (prefetch.submit(aligned_crops, meta, todo[n + 1][1], pool)
                       if n + 1 < len(todo) else None)
            out, out_flip = forward(crops)
            out = np.asarray(out, dtype=np.float32)
            out_flip = np.asarray(out_flip, dtype=np.float32)
            path = os.path.join(cache_dir, f"chunk-{k:05d}.npz")
            with atomic_open(path, "wb") as f:
                np.savez(f, emb=out, emb_flip=out_flip)
            place(k, (out, out_flip))
            bar.update(len(rows))
    return emb, emb_flip


def evaluate_ijb(meta, emb, emb_flip, modes=(DEFAULT_MODE,), fars=DEFAULT_FARS,
                 fpirs=DEFAULT_FPIRS, one_to_n=True, keep_scores=True):
    """1:1 (and 1:N) results of embedded IJB images under each test mode.

    Parameters
    ----------
    meta : gluonfr.data.ijb.IJBMeta
    emb, emb_flip : numpy.ndarray, (N, D)
        From :func:`embed_ijb`.
    modes : sequence of TestMode or str
    fars, fpirs : sequence of float
    one_to_n : bool
        Also run 1:N when ``meta`` has galleries and probes.
    keep_scores : bool
        Keep each mode's pair scores in its ``verification`` entry (``scores``).

    Returns
    -------
    dict
        ``{mode name: {"mode": {flip, norm, faceness}, "verification": verification_11
        dict, "identification": identification_1n dict or None}}``.
    """
    results = {}
    for mode in parse_modes(modes):
        feats = image_features(emb, emb_flip, meta.faceness, mode)
        ids, tfeats = template_features(feats, meta.templates, meta.medias)
        del feats
        ver = verification_11(ids, tfeats, meta.t1, meta.t2, meta.labels, fars)
        if not keep_scores:
            ver.pop("scores")
        ident = None
        if one_to_n and meta.galleries and meta.probes is not None:
            ident = identification_1n(ids, tfeats, meta.galleries, meta.probes, fpirs=fpirs)
        results[mode.name] = {"mode": mode._asdict(), "verification": ver,
                              "identification": ident}
    return results


def _grid(header, rows):
    widths = [max(len(str(r[i])) for r in [header] + rows) + 2 for i in range(len(header))]

    def line(char):
        return "+" + "+".join(char * w for w in widths) + "+"

    def cells(values):
        return "|" + "|".join(f" {v}".ljust(w) for v, w in zip(values, widths)) + "|"

    return "\n".join([line("-"), cells(header), line("=")] +
                     [x for r in rows for x in (cells(r), line("-"))])


def _pct(value):
    return "-" if value is None or value != value else f"{100 * value:.2f}"


def format_ijb_table(results, target="IJBC", rule="nearest"):
    """The arcface_torch README's table: TAR (%) at each FAR, a row per test mode.

    Parameters
    ----------
    results : dict
        From :func:`evaluate_ijb`.
    target : str
        Named in the header.
    rule : {'nearest', 'strict'}
        ``nearest``: insightface's rule (published tables); ``strict``: best TAR with FAR
        <= the target.

    Returns
    -------
    str
        An RST grid table (1:1), followed by a 1:N table when there are 1:N results.
    """
    key = {"nearest": "tar_at_far", "strict": "tar_at_far_strict"}[rule]
    fars = next(iter(results.values()))["verification"]["fars"]
    header = [f"{target} 1:1 TAR (%), {rule} rule"] + [f"FAR={f:g}" for f in fars] + ["AUC"]
    rows = [[name] + [_pct(res["verification"][key][f]) for f in fars]
            + [f"{res['verification']['auc']:.5f}"] for name, res in results.items()]
    out = _grid(header, rows)
    ident = [(name, res["identification"]) for name, res in results.items()
             if res.get("identification")]
    if ident:
        first = ident[0][1]["mean"]
        ranks, fpirs = list(first["cmc"]), list(first["tpir_at_fpir"])
        header = [f"{target} 1:N (%)", "gallery"] + [f"top-{k}" for k in ranks] + \
            [f"TPIR@FPIR={f:g}" for f in fpirs]
        rows = []
        for name, res in ident:
            for gallery, r in list(res["galleries"].items()) + [("mean", res["mean"])]:
                rows.append([name, gallery] + [_pct(r["cmc"][k]) for k in ranks]
                            + [_pct(r["tpir_at_fpir"][f]) for f in fpirs])
        out += "\n\n" + _grid(header, rows)
    return out


def ijb_results_to_json(results, curves=True, **meta):
    """A JSON-ready dictionary of :func:`evaluate_ijb` results (scores left out: see
    :func:`save_scores`); ``meta`` entries go to the top level."""
    from .report import _plain

    modes = {}
    for name, res in results.items():
        ver = {k: v for k, v in res["verification"].items() if k != "scores"}
        if not curves:
            for k in ("roc_fpr", "roc_tpr", "roc_thresholds"):
                ver.pop(k, None)
        modes[name] = {"mode": res["mode"], "verification": ver,
                       "identification": res.get("identification")}
    return {**_plain(meta), "table_rule": "nearest (tar_at_far); tar_at_far_strict also given",
            "modes": _plain(modes)}


def save_scores(path, results, labels, t1=None, t2=None):
    """Write each mode's pair scores (and the labels) to ``path`` (``.npz``, atomically), so
    that :func:`load_scores` + :func:`gluonfr.metrics.ijb.verification_from_scores` give
    other FARs and plots without the network."""
    arrays = {"labels": np.asarray(labels, dtype=np.int8),
              "modes": np.array(list(results), dtype=str)}
    if t1 is not None:
        arrays.update(t1=np.asarray(t1), t2=np.asarray(t2))
    for k, res in enumerate(results.values()):
        if "scores" not in res["verification"]:
            raise ValueError("results have no scores: evaluate_ijb(keep_scores=True)")
        arrays[f"scores_{k}"] = res["verification"]["scores"]
    with atomic_open(path, "wb") as f:
        np.savez(f, **arrays)
    return path


def load_scores(path):
    """``({mode name: scores}, labels)`` from a :func:`save_scores` file."""
    try:
        with np.load(path, allow_pickle=False) as z:
            names = [str(n) for n in z["modes"]]
            return {n: z[f"scores_{k}"] for k, n in enumerate(names)}, z["labels"]
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as err:
        raise DataFormatError(f"{path}: not a gluonfr IJB score file ({err})") from None


def rescore(path, fars=DEFAULT_FARS):
    """:func:`evaluate_ijb`-shaped 1:1 results from a :func:`save_scores` file."""
    from .ijb import TestMode

    scores, labels = load_scores(path)
    return {name: {"mode": TestMode.parse(name)._asdict(),
                   "verification": dict(verification_from_scores(s, labels, fars), scores=s),
                   "identification": None} for name, s in scores.items()}


def plot_ijb_roc(results, path, title="IJB-C 1:1 ROC"):
    """ROC of each test mode (TAR against log FAR) into an image file; the FAR 1e-4 line."""
    from .roc_plot import plot_roc

    curves = {}
    for name, res in results.items():
        ver = res["verification"]
        tar = ver["tar_at_far"].get(1e-4)
        label = name + (f" (TAR@1e-4 {100 * tar:.2f}%" if tar is not None else " (") + \
            f", AUC {ver['auc']:.4f})"
        curves[name] = {"roc_fpr": ver["roc_fpr"], "roc_tpr": ver["roc_tpr"],
                        "num_diff": ver["num_impostor"], "label": label}
    return plot_roc(curves, path, title=title, far_target=1e-4)
