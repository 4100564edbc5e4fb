"""Import face models trained elsewhere as gluonfr networks: one entry, a registry of formats.

>>> net = import_model('model-y1-test2/model,0')        # insightface MXNet checkpoint
>>> net = import_model('glint360k_r50.pth')             # arcface_torch state dict
>>> net = import_model('w600k_r50.onnx')                # arcface_torch ONNX export

Every imported network takes 0..255 RGB (N, 3, 112, 112) like every gluonfr network; the
source's input convention ((x - 127.5) / 128 or / 127.5) lives inside the graph. A format is
one module whose reader carries :func:`register_format`.
"""
import os

import mxnet as mx

__all__ = ["import_model", "register_format", "detect_format", "get_format_list",
           "ImportFormatError"]

_FORMATS = {}
_CPU = mx.cpu()


class ImportFormatError(ValueError):
    """The source is not a model file of the requested (or any known) format."""


def register_format(name, detect):
    """Register a reader ``fn(source, ctx) -> HybridBlock`` under ``name``.

    Parameters
    ----------
    name : str
        Format name, e.g. ``'insightface-mxnet'``.
    detect : callable
        ``detect(source) -> bool``: whether ``source`` (a path string) looks like this
        format. It must be cheap and specific (it reads at most a file's head).

    Examples
    --------
    >>> @register_format('my-format', detect=lambda src: src.endswith('.my'))
    ... def read_my_format(source, ctx):
    ...     ...
    """
    def wrap(fn):
        if name in _FORMATS and _FORMATS[name][0] is not fn:
            raise ValueError(f"an import format named {name!r} is already registered")
        _FORMATS[name] = (fn, detect)
        return fn
    return wrap


def get_format_list():
    """Names of the registered import formats, sorted."""
    return sorted(_FORMATS)


def detect_format(source):
    """The format of ``source``, from its file names and contents.

    Raises
    ------
    ImportFormatError
        When no format (or more than one) recognises the source.
    """
    source = os.fspath(source)
    found = [name for name, (_, detect) in sorted(_FORMATS.items()) if detect(source)]
    if len(found) == 1:
        return found[0]
    if not found:
        raise ImportFormatError(
            f"{source}: not recognised as any import format ({', '.join(get_format_list())}); "
            f"expected an insightface checkpoint 'dir/model,EPOCH' or '...-symbol.json', an "
            f"arcface_torch '.pt'/'.pth'/'.onnx' file, a gluon-face '.params' or "
            f"'-symbol.json' file, or pass fmt=")
    raise ImportFormatError(f"{source}: matches several formats ({', '.join(found)}); "
                            f"pass fmt= to choose one")


def import_model(source, fmt=None, ctx=_CPU):
    """Rebuild a face model trained elsewhere as a gluonfr network with its weights.

    Parameters
    ----------
    source : str or os.PathLike
        ``'insightface-mxnet'``: a checkpoint prefix with epoch (``'dir/model,0'``) or the
        ``-symbol.json`` path. ``'arcface-torch'``: a ``.pt``/``.pth`` state dict or an
        ``.onnx`` export. ``'gluon-face'``: a gluon-face 1.0.2 ``save_parameters`` file
        (whole net or ``net.features``) or its ``-symbol.json`` written by ``export()``.
        Other registered formats take their own sources.
    fmt : str, optional
        One of :func:`get_format_list`; detected from the files when None.
    ctx : mxnet.Context
        Where the parameters live.

    Returns
    -------
    mxnet.gluon.HybridBlock
        A registered network (see ``net.import_info``: ``name`` and ``kwargs`` rebuild it with
        :func:`gluonfr.model_zoo.get_model`, plus ``fmt``, ``source`` and the input
        convention); input 0..255 RGB, output the source model's embedding.

    Raises
    ------
    ImportFormatError
        Unknown or undetectable format, unreadable files.
    gluonfr.model_zoo.importers.graph.GraphMismatch
        The model is not an architecture gluonfr can rebuild (the message names the first
        node that does not fit).
    """
    source = os.fspath(source)
    if fmt is None:
        fmt = detect_format(source)
    if fmt not in _FORMATS:
        raise ImportFormatError(f"unknown import format {fmt!r}; known: "
                                f"{', '.join(get_format_list())}")
    net = _FORMATS[fmt][0](source, ctx)
    net.import_info.setdefault("fmt", fmt)
    net.import_info.setdefault("source", source)
    return net


from . import arcface_torch, gluon_face, insightface_mxnet  # noqa: E402,F401  (registers the formats)
