"""Atomic file writes: a reader sees the old file or the complete new one, never half of one.

Every writer in gluonfr (data packs, checkpoints, reports, plots, the model store, ONNX export,
the bench) goes through these two helpers:

- :func:`atomic_open` for code that writes through a file object;
- :func:`atomic_paths` for libraries that want a path (``save_parameters``, ``mx.nd.save``,
  ``cv2.imwrite``, ``onnx.save``, ``savefig``, ``np.savez``), and for several files that
  belong together (a ``.rec`` with its ``.idx``; a checkpoint whose ``.json`` goes last).

The recipe: write to a temporary name in the destination's folder (a rename is atomic only
within one file system), ``fsync`` the data, ``os.replace`` it onto the destination, then
``fsync`` the folder so the rename itself survives a power cut. On any exception the
temporaries are removed and the destinations are untouched.
"""
import contextlib
import glob
import os
import secrets

__all__ = ["atomic_open", "atomic_paths", "stale_temporaries"]

_WRITE_MODES = {"w", "wb", "wt", "w+", "wb+", "w+b", "wt+", "w+t"}


def _temp_path(path):
    """Create an empty, new temporary file beside ``path`` and return its name.

    The name keeps ``path``'s extension because some writers pick the format from it
    (``cv2.imwrite``, ``savefig``) or append their own otherwise (``np.savez``). The file is
    created with ``os.open(..., 0o666)`` rather than ``mkstemp`` so it gets the permissions
    of an ordinary ``open`` (umask applied), not mkstemp's owner-only 0600.
    """
    folder, name = os.path.split(path)
    ext = os.path.splitext(name)[1]
    while True:
        tmp = os.path.join(folder, f".{name}.{secrets.token_hex(4)}.tmp{ext}")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return tmp


def stale_temporaries(folder, name_pattern="*"):
    """Temporaries :func:`atomic_paths` left in ``folder`` (the writer was killed mid-write).

    ``name_pattern`` is a glob of the destination names, e.g. ``"mobilefacenet-*"``. Only
    call this when no writer can be active in the folder (a run cleaning its own save dir at
    start): a live writer's temporary matches too.
    """
    return sorted(glob.glob(os.path.join(glob.escape(os.fspath(folder)),
                                         f".{name_pattern}.*.tmp*")))


def _fsync_file(path):
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _fsync_dir(folder):
    """Make a rename in ``folder`` durable (no-op where folders cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems (and Windows) refuse fsync on a folder
        pass
    finally:
        os.close(fd)


class atomic_paths:  # noqa: N801 - used like a function: ``with atomic_paths(a, b) as (ta, tb)``
    """Context manager yielding temporary paths that replace ``paths`` on success.

    Parameters
    ----------
    *paths : str or os.PathLike
        Destinations. Their folders are created if missing.

    Yields
    ------
    list of str
        One temporary path per destination, in the same folder, already created (empty) so
        that the name is reserved; writers may overwrite or replace it.

    Notes
    -----
    On a normal exit every temporary is fsynced, then renamed onto its destination **in the
    order given** (put the file that marks the set complete last, e.g. a checkpoint's
    ``.json``), then each folder is fsynced. If the body raises, every temporary is removed and
    no destination changes. The object also offers :meth:`commit` and :meth:`discard` for
    writers whose lifetime is not one ``with`` block (``RecordWriter``).

    Examples
    --------
    >>> with atomic_paths("model.params") as (tmp,):     # doctest: +SKIP
    ...     net.save_parameters(tmp)
    """

    def __init__(self, *paths):
        if not paths:
            raise ValueError("atomic_paths: give at least one destination path")
        self.paths = [os.path.abspath(os.fspath(p)) for p in paths]
        self.temps = []

    def __enter__(self):
        try:
            for path in self.paths:
                os.makedirs(os.path.dirname(path), exist_ok=True)
                self.temps.append(_temp_path(path))
        except BaseException:
            self.discard()
            raise
        return list(self.temps)

    def commit(self):
        """fsync the temporaries, rename them into place in order, fsync their folders."""
        try:
            for tmp, path in zip(self.temps, self.paths):
                if not os.path.isfile(tmp):
                    raise FileNotFoundError(f"{path}: the writer left no file at its "
                                            f"temporary name {tmp}")
                _fsync_file(tmp)
            for tmp, path in zip(self.temps, self.paths):
                os.replace(tmp, path)
            for folder in dict.fromkeys(os.path.dirname(p) for p in self.paths):
                _fsync_dir(folder)
        finally:
            self.discard()
        return self.paths

    def discard(self):
        """Remove every temporary that still exists; destinations are left as they were."""
        temps, self.temps = self.temps, []
        for tmp in temps:
            with contextlib.suppress(OSError):
                os.remove(tmp)

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.commit()
        else:
            self.discard()
        return False


@contextlib.contextmanager
def atomic_open(path, mode="wb", **kwargs):
    """Open a file for writing that appears at ``path`` only when the block completes.

    Parameters
    ----------
    path : str or os.PathLike
        Destination; its folder is created if missing.
    mode : str
        A write mode: ``'wb'`` (default) or ``'w'`` (text; pass ``encoding=``).
    **kwargs
        Passed to :func:`open` (``encoding``, ``newline``, ...).

    Yields
    ------
    file object
        Open on a temporary file beside ``path``; flushed, fsynced and renamed onto ``path``
        on a normal exit, removed if the block raises (``path`` keeps its old content).

    Examples
    --------
    >>> with atomic_open("report.json", "w", encoding="utf-8") as f:   # doctest: +SKIP
    ...     json.dump(results, f)
    """
    if mode not in _WRITE_MODES:
        raise ValueError(f"atomic_open({os.fspath(path)!r}): mode {mode!r} is not a write "
                         f"mode; expected 'wb' or 'w'")
    with atomic_paths(path) as (tmp,):
        with open(tmp, mode, **kwargs) as f:
            yield f
        # closed here; atomic_paths fsyncs it before the rename
