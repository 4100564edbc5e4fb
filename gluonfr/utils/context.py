"""Device lists from command-line text: ``cpu``, ``cpu:0,cpu:1``, ``gpu:0,gpu:1``, ``0,1``."""
import mxnet as mx

__all__ = ["parse_ctx"]


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
