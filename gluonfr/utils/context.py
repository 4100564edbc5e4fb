"""Devices: the one place that turns what a user passes as ``ctx`` into a list of contexts.

:func:`parse_ctx` reads command-line text (``cpu``, ``cpu:0,cpu:1``, ``gpu:0,gpu:1``, ``0,1``);
:func:`as_context_list` accepts everything a library call takes (a context, a list of them or
that text) and is what every ``ctx=`` argument goes through.
"""
import mxnet as mx

__all__ = ["as_context_list", "parse_ctx"]


def as_context_list(ctx):
    """A non-empty list of :class:`mxnet.Context` from ``ctx``.

    Parameters
    ----------
    ctx : mxnet.Context, sequence of mxnet.Context, or str
        A string is parsed by :func:`parse_ctx` (``'cpu'``, ``'gpu:0,gpu:1'``, ``'0,1'``);
        ``None`` means ``cpu``.

    Raises
    ------
    ValueError
        An empty list, or an item that is not an ``mxnet.Context``.

    Examples
    --------
    >>> as_context_list(mx.cpu())
    [cpu(0)]
    >>> as_context_list("cpu:0,cpu:1")
    [cpu(0), cpu(1)]
    """
    if ctx is None or isinstance(ctx, str):
        return parse_ctx(ctx)
    if isinstance(ctx, mx.Context):
        return [ctx]
    try:
        ctx = list(ctx)
    except TypeError:
        ctx = None
    if not ctx or not all(isinstance(c, mx.Context) for c in ctx):
        raise ValueError(f"ctx must be an mxnet Context, a non-empty list of them or a device "
                         f"string like 'cpu' or 'gpu:0,gpu:1', got {ctx!r}")
    return ctx


def parse_ctx(text, check=True):
    """Parse a device list as the scripts' ``--ctx`` flag spells it.

    Parameters
    ----------
    text : str
        Comma-separated devices. Each item is ``cpu``, ``gpu``, ``cpu:N``, ``gpu:N`` or a bare
        GPU number ``N`` (gluon-face / insightface ``--gpus 0,1`` style). ``cpu`` alone means
        ``cpu:0``, ``gpu`` alone ``gpu:0``. Spaces and case are ignored; an empty string or
        ``None`` means ``cpu``.
    check : bool
        Raise when a GPU is asked for but MXNet sees fewer GPUs (a CPU build, or no driver),
        instead of failing later inside the first forward pass.

    Returns
    -------
    list of mxnet.Context
        In the given order, duplicates rejected.

    Raises
    ------
    ValueError
        An item that is not a device, a negative or repeated device, or a missing GPU.

    Examples
    --------
    >>> parse_ctx("cpu:0,cpu:1")
    [cpu(0), cpu(1)]
    >>> parse_ctx("0,1", check=False)
    [gpu(0), gpu(1)]
    """
    if text is None or not str(text).strip():
        return [mx.cpu()]
    devices = []
    for raw in str(text).split(","):
        item = raw.strip().lower()
        if not item:
            raise ValueError(f"--ctx {text!r}: empty device between commas")
        kind, sep, index = item.partition(":")
        if not sep and kind.isdigit():  # a bare number is a GPU, as in --gpus 0,1
            kind, index = "gpu", kind
        if kind not in ("cpu", "gpu"):
            raise ValueError(f"--ctx {text!r}: {raw.strip()!r} is not a device; expected cpu, "
                             "gpu, cpu:N, gpu:N or a GPU number N")
        if sep and not index.isdigit():
            raise ValueError(f"--ctx {text!r}: {raw.strip()!r} needs a non-negative device "
                             "number after the colon")
        devices.append((kind, int(index) if index else 0))
    if len(set(devices)) != len(devices):
        raise ValueError(f"--ctx {text!r} names a device more than once")
    gpus = [i for kind, i in devices if kind == "gpu"]
    if check and gpus:
        available = mx.context.num_gpus()
        if max(gpus) >= available:
            raise ValueError(f"--ctx {text!r} asks for gpu({max(gpus)}) but MXNet sees "
                             f"{available} GPU(s); use --ctx cpu, or install a CUDA build of "
                             "mxnet")
    return [mx.gpu(i) if kind == "gpu" else mx.cpu(i) for kind, i in devices]
