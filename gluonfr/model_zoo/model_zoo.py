"""``get_model``: build a registered network, initialised or with published parameters."""
import mxnet as mx

from .model_store import find_entry, get_model_file
from .registry import get_constructor, get_model_list

__all__ = ["get_model", "default_initializer"]

_CPU = mx.cpu()


def default_initializer():
    """insightface's initialisation for training from scratch: Xavier, gaussian, fan-out,
    magnitude 2 (He-like for PReLU nets). BatchNorm, biases and PReLU slopes keep their own
    initialisers (ones / zeros / 0.25)."""
    return mx.init.Xavier(rnd_type="gaussian", factor_type="out", magnitude=2)


def get_model(name, pretrained=False, ctx=_CPU, root=None, **kwargs):
    """Build an embedding network by name.

    Parameters
    ----------
    name : str
        A registered name (see :func:`get_model_list`), e.g. ``'mobilefacenet'``,
        ``'iresnet50'``, ``'se_iresnet100'``, or a name given to stored weights
        (``gluonfr-import --name``). Case-insensitive.
    pretrained : bool or str
        ``True``: load the weights stored for ``name`` — the built-in store table's, else the
        local index's (weights written by ``gluonfr-import`` or ``publish_model`` into the
        cache); a string picks the weights with that tag. Stored weights bring their
        constructor arguments (e.g. an imported model's BatchNorm epsilon and input
        normalisation). ``False``: initialise with :func:`default_initializer`.
    ctx : mxnet.Context or list of Context
        Where the parameters live.
    root : str, optional
        Cache folder of the model store.
    **kwargs
        Constructor arguments, e.g. ``embedding_size``; for MobileFaceNet also
        ``width_mult``.

    Returns
    -------
    mxnet.gluon.HybridBlock
        Input (N, 3, 112, 112) RGB float in 0..255, output (N, ``net.embedding_size``).

    Raises
    ------
    ValueError
        Unknown name (the message names the closest matches), or ``pretrained`` for a
        model with no weights (the message says how to get them).
    gluonfr.model_zoo.model_store.ChecksumError
        The stored file does not match its recorded sha1.
    """
    tag = pretrained if isinstance(pretrained, str) else None
    arch = name
    if pretrained or str(name).lower() not in get_model_list():
        entry = find_entry(name, tag, root)
        if entry is not None:
            arch = entry["arch"]
            kwargs = {**entry["kwargs"], **kwargs}
    net = get_constructor(arch)(**kwargs)
    if pretrained:
        net.load_parameters(get_model_file(name, root=root, tag=tag), ctx=ctx)
    else:
        net.initialize(default_initializer(), ctx=ctx)
    return net
