"""The local index of the model store: weights imported or published on this machine.

``index.json`` lives beside the parameter files in the cache folder (``root``, else
``$GLUONFR_HOME/models``, else ``~/.gluonfr/models``) and maps a model name and a tag to its
entry::

    {"version": 1, "models": {"iresnet50": {"w600k_r50": {
        "name": "iresnet50", "tag": "w600k_r50", "arch": "iresnet50",
        "kwargs": {"bn_eps": 1e-05, ...}, "sha1": "...", "file_name": "iresnet50-1a2b3c4d.params",
        "card": {...}}}}}

``get_model(name, pretrained=True | TAG)`` reads it together with the built-in table
(:data:`gluonfr.model_zoo.model_store._model_sha1`); ``gluonfr-import`` and
:func:`gluonfr.model_zoo.publish_model` write it. Every machine that shares the cache folder
shares the weights; the files are sha1-checked on every load.
"""
import contextlib
import json
import os
import re

from ..utils.fileio import atomic_open

__all__ = ["INDEX_NAME", "index_path", "read_index", "record", "lookup", "list_entries",
           "clean_tag"]

INDEX_NAME = "index.json"
_VERSION = 1


def _cache_dir(root):
    from .model_store import _cache_dir as cache_dir
    return cache_dir(root)


def index_path(root=None):
    """Path of the local index in the cache folder ``root`` (see the module docstring)."""
    return os.path.join(_cache_dir(root), INDEX_NAME)


def read_index(root=None):
    """The local index as a dict (empty when there is none).

    Raises
    ------
    ValueError
        The index exists but is not the JSON this module writes (the message names it).
    """
    path = index_path(root)
    if not os.path.exists(path):
        return {"version": _VERSION, "models": {}}
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError) as err:
        raise ValueError(f"{path}: unreadable model index ({err}); fix or delete it and "
                         f"re-import the weights") from None
    if not isinstance(data, dict) or not isinstance(data.get("models"), dict):
        raise ValueError(f"{path}: not a gluonfr model index (expected "
                         f'{{"version": 1, "models": {{...}}}})')
    return data


@contextlib.contextmanager
def _locked(root):
    """Serialise writers of one cache folder (two imports at once must both be recorded)."""
    folder = _cache_dir(root)
    os.makedirs(folder, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks; last writer wins
        yield
        return
    fd = os.open(folder, os.O_RDONLY)  # the folder itself is the lock: no lock file left
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def record(entry, root=None):
    """Add (or replace) ``entry`` (with ``name`` and ``tag``) in the index of ``root``."""
    with _locked(root):
        data = read_index(root)
        data["models"].setdefault(entry["name"], {})[entry["tag"]] = entry
        path = index_path(root)
        with atomic_open(path, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1, sort_keys=True)
            f.write("\n")
    return entry


def list_entries(root=None):
    """Every entry of the local index, sorted by name and tag."""
    models = read_index(root)["models"]
    return [models[n][t] for n in sorted(models) for t in sorted(models[n])]


def lookup(name, tag=None, root=None):
    """The entry of ``name`` (and ``tag``), or None when the index has none for ``name``.

    Raises
    ------
    ValueError
        ``tag`` is None and ``name`` has several tags, or ``tag`` is not one of them.
    """
    key = str(name).lower()
    tags = read_index(root)["models"].get(key, {})
    if not tags:
        return None
    if tag is None:
        if len(tags) == 1:
            return next(iter(tags.values()))
        raise ValueError(f"{len(tags)} stored weights for {key!r} ({', '.join(sorted(tags))}); "
                         f"choose one with pretrained='TAG'")
    if tag not in tags:
        raise ValueError(f"no weights tagged {tag!r} for {key!r}; stored tags: "
                         f"{', '.join(sorted(tags))} (in {index_path(root)})")
    return tags[tag]


def clean_tag(text):
    """A tag from free text (a file or folder name): lower case, ``[a-z0-9_.-]``."""
    tag = re.sub(r"[^a-z0-9_.-]+", "-", str(text).lower()).strip("-.")
    if not tag:
        raise ValueError(f"cannot make a tag from {text!r}")
    return tag
