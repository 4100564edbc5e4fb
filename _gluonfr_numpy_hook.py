"""Let mxnet 1.9.1 import under numpy >= 1.24, whatever the user imports first.

mxnet 1.9.1 (its last release) reads ``np.bool``, ``np.int`` and friends at import time;
numpy 1.24 removed those aliases, so a plain ``import mxnet`` fails there. gluonfr's wheel
installs ``gluonfr-numpy-hook.pth`` next to this module; Python runs it at start-up and it
calls :func:`install`, which only puts a finder first on ``sys.meta_path``. Nothing else
happens until something imports ``mxnet``: then, just before mxnet's own code runs, the
aliases are put back as the builtins they were in numpy < 1.24. An interpreter that never
imports mxnet never imports numpy because of this module (pip builds, pytest, other tools
see one cheap string comparison per import).

``import gluonfr`` also calls :func:`restore_numpy_aliases` itself, so a checkout used
through ``PYTHONPATH`` (no ``.pth`` processed) works when gluonfr comes first.

This module lives outside the ``gluonfr`` package on purpose: importing anything inside
``gluonfr`` runs ``gluonfr/__init__.py``, which imports mxnet.
"""
import sys

__all__ = ["REMOVED_ALIASES", "install", "restore_numpy_aliases"]

#: alias name -> the builtin numpy exposed under that name before 1.24
REMOVED_ALIASES = {
    "bool": bool,
    "int": int,
    "float": float,
    "complex": complex,
    "object": object,
    "str": str,
}


def restore_numpy_aliases():
    """Put back numpy's removed builtin aliases; return the names that were added.

    Checking ``np.__dict__`` rather than ``hasattr`` matters: numpy 1.20-1.23 still answers
    ``np.bool`` through a module ``__getattr__`` that emits a DeprecationWarning, and setting
    the attribute silences that too.
    """
    import numpy as np

    added = []
    for name, builtin in REMOVED_ALIASES.items():
        if name not in np.__dict__:
            setattr(np, name, builtin)
            added.append(name)
    return added


class MxnetImportHook:
    """``sys.meta_path`` finder that restores the aliases right before mxnet is executed.

    It finds nothing itself: on the first ``import mxnet`` it asks the finders behind it for
    mxnet's spec and wraps that loader's ``exec_module``. The aliases are restored when the
    module body is about to run, outside the finders' global import lock (importing numpy
    while holding that lock could deadlock against a thread importing numpy).
    """

    def __init__(self):
        self.done = False  # set once mxnet's code has run with the aliases in place
        self._finding = False

    def find_spec(self, fullname, path=None, target=None):
        """Return mxnet's spec with a patched loader until mxnet is loaded; else ``None``.

        A bare ``importlib.util.find_spec("mxnet")`` (a probe for whether mxnet exists)
        gets a patched spec too and does not use the hook up: only executing mxnet does.
        """
        if fullname != "mxnet" or self.done or self._finding:
            return None
        self._finding = True  # our own search below must not find us again
        try:
            finders = list(sys.meta_path)
            rest = finders[finders.index(self) + 1:] if self in finders else finders
            for finder in rest:
                find = getattr(finder, "find_spec", None)
                spec = find(fullname, path, target) if find is not None else None
                if spec is not None:
                    break
            else:
                return None  # not installed: Python raises its usual ModuleNotFoundError
        finally:
            self._finding = False
        loader = spec.loader
        if loader is None or not hasattr(loader, "exec_module"):
            _restore_quietly()
            return spec
        original = loader.exec_module

        def exec_module(module):
            self.done = True
            _restore_quietly()
            try:
                del loader.exec_module  # back to the class's method
            except AttributeError:
                pass
            original(module)

        loader.exec_module = exec_module
        return spec


def _restore_quietly():
    try:
        restore_numpy_aliases()
    except ImportError:  # no numpy: mxnet's own import error says so
        pass


def install():
    """Put the finder first on ``sys.meta_path`` (idempotent; a no-op once mxnet is loaded)."""
    if "mxnet" in sys.modules:
        return
    if any(isinstance(f, MxnetImportHook) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, MxnetImportHook())
