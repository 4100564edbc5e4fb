"""Make numpy >= 1.24 acceptable to mxnet 1.9.1.

mxnet 1.9.1 (its last release) reads ``np.bool``, ``np.int`` and friends at import time.
numpy removed those aliases in 1.24, so without this module ``import mxnet`` fails there.
The aliases are restored *before* mxnet is first imported; they point at the builtins,
exactly what they were in numpy < 1.24.
"""
import numpy as np

#: alias name -> the builtin numpy used to expose under that name (numpy < 1.24)
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

    Checking ``np.__dict__`` rather than ``hasattr`` matters: numpy 1.20-1.23 still
    answers ``np.bool`` through a module ``__getattr__`` that emits a DeprecationWarning,
    and setting the attribute silences that too.
    """
    added = []
    for name, builtin in REMOVED_ALIASES.items():
        if name not in np.__dict__:
            setattr(np, name, builtin)
            added.append(name)
    return added
