"""The table of model constructors: one decorator registers a network under its name."""
from ..utils.names import unknown_name_error

__all__ = ["register_model", "get_constructor", "get_model_list"]

_MODELS = {}


def register_model(fn=None, *, name=None):
    """Register a model constructor so :func:`gluonfr.model_zoo.get_model` can build it.

    A new architecture needs one file whose constructor functions carry this decorator
    (and an import of that file in ``gluonfr/model_zoo/__init__.py``).

    Parameters
    ----------
    fn : callable
        ``fn(**kwargs) -> HybridBlock``; registered under ``fn.__name__`` unless ``name``.
    name : str, optional
        Registry name (lower case).

    Examples
    --------
    >>> @register_model
    ... def tiny_net(embedding_size=64, **kwargs):
    ...     ...
    """
    def wrap(f):
        key = (name or f.__name__).lower()
        if key in _MODELS and _MODELS[key] is not f:
            raise ValueError(f"a model named {key!r} is already registered "
                             f"(by {_MODELS[key].__module__}.{_MODELS[key].__name__})")
        _MODELS[key] = f
        return f

    return wrap(fn) if fn is not None else wrap


def get_constructor(name):
    """The constructor registered under ``name`` (case-insensitive).

    Raises
    ------
    ValueError
        For an unknown name; the message names the closest matches and every known model.
    """
    key = str(name).lower()
    if key not in _MODELS:
        raise unknown_name_error("model", name, _MODELS)
    return _MODELS[key]


def get_model_list():
    """Names of every registered model, sorted.

    Returns
    -------
    list of str
    """
    return sorted(_MODELS)
