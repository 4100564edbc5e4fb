"""The table of losses: one decorator registers a loss class (or factory) under its name.

Same pattern as :mod:`gluonfr.model_zoo.registry`. Each entry also says what kind of loss it
is, which the training engine reads to wire it up:

* ``"cosine"`` -- a classification head over the cosines of :class:`gluonfr.nn.NormDense`,
  called ``loss(cos, label, *extra)`` where ``extra`` are the inputs named by the class
  attribute ``needs`` (e.g. ``("norms",)``: the unnormalised embedding norms);
* ``"embedding"`` -- a classification head that owns its classifier and takes the embedding
  (L2-softmax, LGM), ``loss(embedding, label) -> (loss, logits)``;
* ``"logits"`` -- plain softmax cross-entropy on the logits of a dense layer;
* ``"auxiliary"`` -- an extra term beside a classification head, ``loss(embedding, label)``
  (centre, ring, git, triplet);
* ``"pair"`` -- a loss on two embedding batches (contrastive, MPS).
"""
from ..utils.names import unknown_name_error

__all__ = ["register_loss", "get_loss", "get_loss_list", "get_loss_class", "loss_kind",
           "scale_and_margin_names", "KINDS"]

KINDS = ("cosine", "embedding", "logits", "auxiliary", "pair")

_LOSSES = {}


def register_loss(fn=None, *, name=None, kind="cosine"):
    """Register a loss class or factory so :func:`get_loss` can build it by name.

    Parameters
    ----------
    fn : callable
        ``fn(**kwargs) -> Block``; registered under ``fn.__name__`` lower-cased unless ``name``.
    name : str, optional
        Registry name (lower case).
    kind : str
        One of :data:`KINDS` (see the module docstring).

    Examples
    --------
    >>> @register_loss(name="my_margin")
    ... class MyMarginLoss(CombinedMarginLoss):
    ...     ...
    """
    if kind not in KINDS:
        raise ValueError(f"register_loss: kind must be one of {', '.join(KINDS)}, got {kind!r}")

    def wrap(f):
        key = (name or f.__name__).lower()
        if key in _LOSSES and _LOSSES[key][0] is not f:
            old = _LOSSES[key][0]
            raise ValueError(f"a loss named {key!r} is already registered "
                             f"(by {old.__module__}.{old.__name__})")
        _LOSSES[key] = (f, kind)
        return f

    return wrap(fn) if fn is not None else wrap


def _entry(name):
    key = str(name).lower()
    if key not in _LOSSES:
        raise unknown_name_error("loss", name, _LOSSES, plural="losses")
    return _LOSSES[key]


def get_loss_class(name):
    """The class (or factory) registered under ``name`` (case-insensitive).

    Raises
    ------
    ValueError
        For an unknown name; the message names the closest matches and every known loss.
    """
    return _entry(name)[0]


def scale_and_margin_names(name):
    """The constructor arguments ``--margin-s`` and ``--margin-m`` set for loss ``name``.

    ``("s", "m")`` unless the class names others in ``config_scale`` / ``config_margin``
    (L2-softmax's scale and LGM's margin are both called ``alpha``).
    """
    factory = get_loss_class(name)
    return getattr(factory, "config_scale", "s"), getattr(factory, "config_margin", "m")


def loss_kind(name):
    """The kind of the loss registered under ``name`` (one of :data:`KINDS`)."""
    return _entry(name)[1]


def get_loss(name, **kwargs):
    """Build the loss registered under ``name`` with ``kwargs``.

    Parameters
    ----------
    name : str
        A name of :func:`get_loss_list` (case-insensitive).
    **kwargs
        Passed to the loss's constructor.

    Returns
    -------
    Block

    Raises
    ------
    ValueError
        For an unknown name (the message names the closest matches).

    Examples
    --------
    >>> loss = get_loss("arcface", s=64.0, m=0.5)
    >>> loss = get_loss("contrastive", margin=1.0)  # loss(a, b, same) per pair
    """
    return _entry(name)[0](**kwargs)


def get_loss_list(kind=None):
    """Names of every registered loss (of one kind, or of several), sorted.

    Parameters
    ----------
    kind : str or sequence of str, optional
        Only losses of these kinds (see :data:`KINDS`).

    Returns
    -------
    list of str
    """
    if kind is None:
        return sorted(_LOSSES)
    kinds = (kind,) if isinstance(kind, str) else tuple(kind)
    for k in kinds:
        if k not in KINDS:
            raise ValueError(f"get_loss_list: kind must be one of {', '.join(KINDS)}, got {k!r}")
    return sorted(n for n, (_, k) in _LOSSES.items() if k in kinds)
