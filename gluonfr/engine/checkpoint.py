"""Training checkpoints: atomic writes, the last K kept plus the best, and finding the latest.

A checkpoint at iteration ``I`` of model ``M`` is four files in ``save_dir``:

- ``M-I.params``       backbone parameters (``load_parameters`` on the model-zoo network)
- ``M-I-head.params``  classifier-head parameters (class centres)
- ``M-I.states``       optimiser states (``mx.nd.save`` dict, see :mod:`.optim`)
- ``M-I.json``         iteration, data position, lr and its schedule, seeds, validation
                       results and the configuration

The four files are written together with :func:`gluonfr.utils.fileio.atomic_paths`: all go
to temporary names first and are renamed into place only once every one is complete, the
``.json`` last, so a checkpoint exists only once all of its files do. A run killed at any
moment leaves either the previous checkpoint or the new one, never half of one (and
temporaries, which the next run in the folder removes: :meth:`CheckpointManager.clean_temporaries`).

Every checkpoint records the ``run_id`` of the run that wrote it. A run prunes only its own
checkpoints, newest-written first, never the one it has just written, and ``--resume latest``
refuses to guess between several runs' checkpoints.
"""
import glob
import json
import os
import re

import numpy as np

from ..nn.partial_fc import read_classifier_slices, shard_files
from ..utils.fileio import atomic_open, atomic_paths, stale_temporaries

__all__ = ["CheckpointManager", "find_checkpoint", "merge_classifier"]

FORMAT = "gluonfr-checkpoint/1"


def _dump_json(obj, f):
    json.dump(obj, f, indent=2, sort_keys=True)


def read_meta(json_path):
    """Load a checkpoint ``.json`` and check that its files exist."""
    try:
        with open(json_path, encoding="utf-8") as f:
            meta = json.load(f)
    except (OSError, ValueError) as err:
        raise ValueError(f"{json_path}: not a readable checkpoint description ({err})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"{json_path}: not a gluonfr checkpoint (expected format {FORMAT!r})")
    folder = os.path.dirname(os.path.abspath(json_path))
    for role, name in meta.get("files", {}).items():
        path = os.path.join(folder, name)
        if not os.path.isfile(path):
            raise ValueError(f"{json_path}: its {role} file {name} is missing")
        meta.setdefault("paths", {})[role] = path
    meta["json"] = os.path.abspath(json_path)
    return meta


def find_checkpoint(spec, save_dir, prefix=None):
    """Resolve ``--resume``: ``"latest"`` (newest in ``save_dir``) or a checkpoint file.

    A ``.params`` / ``.states`` path is mapped to its ``.json``.

    Returns
    -------
    dict
        The checkpoint description (see :func:`read_meta`), with absolute ``paths``.

    Raises
    ------
    FileNotFoundError
        When ``"latest"`` finds no complete checkpoint, or the named one does not exist.
    """
    if spec in (None, "", "latest", "auto"):
        entries = CheckpointManager(save_dir, prefix).entries()
        if not entries:
            raise FileNotFoundError(f"--resume: no complete checkpoint (*.json) in {save_dir}")
        runs = {}
        for e in entries:
            runs.setdefault(e["run_id"], []).append(e)
        if len(runs) > 1:
            listing = "; ".join(f"run {rid or '(no id)'}: latest {os.path.basename(v[-1]['json'])}"
                                for rid, v in runs.items())
            raise ValueError(f"--resume latest: {save_dir} holds checkpoints of {len(runs)} "
                             f"different runs ({listing}); name the checkpoint to resume "
                             "(--resume PATH.json)")
        return read_meta(entries[-1]["json"])
    path = spec
    for suffix in ("-head.params", ".params", ".states"):
        if path.endswith(suffix):
            path = path[: -len(suffix)] + ".json"
            break
    if not os.path.isfile(path):
        raise FileNotFoundError(f"--resume {spec}: no checkpoint description {path}")
    return read_meta(path)


def merge_classifier(source):
    """One (C, D) class-centre matrix from the slices a Partial FC run stored.

    Parameters
    ----------
    source : str or sequence of str
        A run folder (its latest checkpoint), a checkpoint ``.json`` or ``-head.params``
        (with the ``.rank<r>`` files of the other workers beside it), or the classifier
        files themselves.

    Returns
    -------
    numpy.ndarray
        (C, D) float32 rows in class order.

    Raises
    ------
    ValueError
        When the slices do not add up to the class count (a missing, overlapping or foreign
        slice: the message names the file) or the checkpoint has no Partial FC classifier.
    """
    if isinstance(source, (list, tuple)):
        files = list(source)
    elif os.path.isdir(source):
        files = shard_files(find_checkpoint("latest", source)["paths"]["head"])
    elif str(source).endswith(".json"):
        files = shard_files(read_meta(source)["paths"]["head"])
    elif os.path.isfile(source):
        files = shard_files(source)
    else:
        raise FileNotFoundError(f"merge_classifier: {source} is neither a run folder nor a "
                                "checkpoint or classifier file")
    slices = read_classifier_slices(files)
    return np.concatenate([s["weight"] for s in slices]).astype(np.float32, copy=False)


class CheckpointManager:
    """Save, list and prune the checkpoints of one run.

    Parameters
    ----------
    save_dir : str
        Folder of the run (created if missing).
    prefix : str
        Model tag, the first part of every file name; ``None`` matches any when listing.
    keep_last : int
        Newest checkpoints kept; the best one (see :meth:`mark_best`) is kept besides them.
    run_id : str or None
        The run's identity, stored in every checkpoint it writes; pruning touches only
        checkpoints of this run (``None``: checkpoints written without an id).
    """

    def __init__(self, save_dir, prefix=None, keep_last=3, run_id=None):
        self.save_dir = save_dir
        self.prefix = prefix
        self.keep_last = int(keep_last)
        self.run_id = run_id

    def _pattern(self):
        p = re.escape(self.prefix) if self.prefix else r".+?"
        return re.compile(r"^(" + p + r")-(\d+)\.json$")

    def list(self):
        """Complete checkpoints as ``[(iteration, json_path)]``, oldest first."""
        pat = self._pattern()
        found = []
        for path in glob.glob(os.path.join(self.save_dir, "*.json")):
            m = pat.match(os.path.basename(path))
            if m:
                found.append((int(m.group(2)), path))
        return sorted(found)

    def entries(self, any_prefix=False):
        """Complete checkpoints as dicts (``iteration``, ``json``, ``run_id``, ``time``),
        oldest-written first. ``any_prefix`` lists those of every model tag."""
        pat = self._pattern() if not any_prefix else re.compile(r"^(.+?)-(\d+)\.json$")
        out = []
        for path in glob.glob(os.path.join(glob.escape(self.save_dir), "*.json")):
            m = pat.match(os.path.basename(path))
            if not m:
                continue
            try:
                with open(path, encoding="utf-8") as f:
                    meta = json.load(f)
            except (OSError, ValueError):
                continue  # not ours to judge (or to delete)
            if not isinstance(meta, dict) or meta.get("format") != FORMAT:
                continue
            out.append({"iteration": int(m.group(2)), "json": path, "prefix": m.group(1),
                        "run_id": meta.get("run_id"), "time": float(meta.get("time", 0.0))})
        return sorted(out, key=lambda e: (e["time"], e["iteration"]))

    def others(self):
        """Checkpoints in ``save_dir`` (any model tag) that another run wrote."""
        return [e for e in self.entries(any_prefix=True) if e["run_id"] != self.run_id]

    def delete(self, entry):
        """Remove one checkpoint (its description first, then its files)."""
        # the description goes first: a checkpoint never outlives one of its files
        os.remove(entry["json"])
        base = os.path.join(self.save_dir, f"{entry['prefix']}-{entry['iteration']}")
        for suffix in (".params", "-head.params", ".states"):
            if os.path.exists(base + suffix):
                os.remove(base + suffix)
        for path in shard_files(base + "-head.params")[1:]:  # other workers' classifier slices
            os.remove(path)

    def clean_temporaries(self):
        """Remove what interrupted checkpoint writes left (call before the run writes any)."""
        found = stale_temporaries(self.save_dir, f"{self.prefix or ''}*")
        for path in found:
            os.remove(path)
        return found

    def names(self, iteration):
        base = f"{self.prefix}-{int(iteration)}"
        return {"backbone": base + ".params", "head": base + "-head.params",
                "states": base + ".states", "json": base + ".json"}

    def save(self, iteration, backbone, head, save_states, meta):
        """Write one checkpoint.

        Parameters
        ----------
        iteration : int
        backbone, head : Block
            Saved with ``save_parameters``.
        save_states : callable
            ``save_states(path)`` writes the optimiser states.
        meta : dict
            JSON-serialisable run state; ``format`` and ``files`` are added.

        Returns
        -------
        str
            Path of the checkpoint's ``.json``.
        """
        os.makedirs(self.save_dir, exist_ok=True)
        names = self.names(iteration)
        path = lambda key: os.path.join(self.save_dir, names[key])  # noqa: E731
        meta = dict(meta, format=FORMAT, iteration=int(iteration), run_id=self.run_id,
                    files={k: names[k] for k in ("backbone", "head", "states")})
        with atomic_paths(*(path(k) for k in ("backbone", "head", "states", "json"))) as tmp:
            backbone.save_parameters(tmp[0])
            head.save_parameters(tmp[1])
            save_states(tmp[2])
            with open(tmp[3], "w", encoding="utf-8") as f:
                _dump_json(meta, f)
        self.prune(protect=iteration)
        return path("json")

    # -- the best checkpoint ------------------------------------------------------------------
    @property
    def best_file(self):
        return os.path.join(self.save_dir, f"{self.prefix}-best.json")

    def mark_best(self, iteration, score, detail=None):
        """Record checkpoint ``iteration`` as the best (``score`` higher is better)."""
        record = {"iteration": int(iteration), "score": float(score),
                  "json": self.names(iteration)["json"], "detail": detail or {}}
        with atomic_open(self.best_file, "w", encoding="utf-8") as f:
            _dump_json(record, f)

    def best(self):
        """The best record written by :meth:`mark_best`, or ``None``."""
        if not os.path.isfile(self.best_file):
            return None
        with open(self.best_file, encoding="utf-8") as f:
            return json.load(f)

    def prune(self, protect=None):
        """Delete this run's checkpoints but the ``keep_last`` written last and the best one.

        "Last" is by write time, not iteration: a run resumed from an earlier checkpoint keeps
        what it writes over the later iterations it abandoned. ``protect`` (an iteration) is
        never deleted; other runs' checkpoints are never touched.
        """
        own = [e for e in self.entries() if e["run_id"] == self.run_id]
        best = self.best()
        keep = {e["iteration"] for e in own[-self.keep_last:]}
        if best is not None:
            keep.add(int(best["iteration"]))
        if protect is not None:
            keep.add(int(protect))
        for e in own:
            if e["iteration"] not in keep:
                self.delete(e)
