"""gluon-face 1.0.2 (PyPI ``gluonfr==1.0.2``) parameter files and symbols written by ``export()``.

gluon-face saved its networks in two ways:

- ``net.save_parameters(path)`` (its train script: the whole ``FrBase`` with its ``output``
  cosine classifier), or ``net.features.save_parameters(path)`` (features only): MXNet
  ``.params`` files keyed by *structural* names (``features.0.0.weight``, ``output.weight``
  / ``0.0.weight``), which are the names of :mod:`gluonfr.model_zoo.gluonface`'s networks;
- ``net.export(prefix)`` (its test script, or ``net.features.export`` as its issue #12
  advised): ``prefix-symbol.json`` + ``prefix-0000.params`` keyed by *prefix* names that come
  from global counters (``mobilefacenet0_feature_stage0_conv0_weight``). Those are matched
  by position: the graph's parameters in its own topological order against the
  architecture's, every shape checked.

The architecture is recognised from the parameter names (or the order) and shapes alone:
each registered ``gluonface_*`` network is built (no memory is allocated for it) and
compared; the embedding size comes from the file. The classifier is dropped (its class count
is kept in ``net.import_info['classes']``). float16 files (gluon-face's ``--dtype float16``
cast the whole net) load as float32.
"""
import glob
import os
import re

import numpy as np

from . import ImportFormatError, register_format
from .insightface_mxnet import load_param_file

__all__ = ["import_gluon_face", "GLUON_FACE_INPUT"]

#: gluon-face's input convention: ToTensor, RGB / 255 (no mean, no std).
GLUON_FACE_INPUT = (0.0, 1.0 / 255)

_MAGIC = 0x112  # MXNet's NDArray-list file magic (little-endian uint64)
_SYMBOL_PREFIX = re.compile(r'"(mobilefacenet|se_resnetv2|attentionnetface)\d+_')
_CLASSIFIER = ("output.weight", "output_weight")


def _architectures():
    from ..gluonface import attention, mobilefacenet, se_resnet
    return {"gluonface_mobilefacenet": mobilefacenet.gluonface_mobilefacenet,
            "gluonface_l_se_resnet18v2": se_resnet.gluonface_l_se_resnet18v2,
            "gluonface_l_se_resnet50v2": se_resnet.gluonface_l_se_resnet50v2,
            "gluonface_l_se_resnet101v2": se_resnet.gluonface_l_se_resnet101v2,
            "gluonface_attentionfacenet56": attention.gluonface_attentionfacenet56,
            "gluonface_attentionfacenet92": attention.gluonface_attentionfacenet92,
            "gluonface_attention_facenet": attention.gluonface_attention_facenet}


def _symbol_path(source):
    if source.endswith("-symbol.json"):
        return source
    match = re.fullmatch(r"(.+),(\d+)", source)
    return f"{match.group(1)}-symbol.json" if match else None


def _detect(source):
    symbol = _symbol_path(source)
    if symbol is not None:
        try:
            with open(symbol, encoding="utf-8") as f:
                return bool(_SYMBOL_PREFIX.search(f.read(1 << 16)))
        except (OSError, UnicodeDecodeError):
            return False
    if not source.endswith(".params"):
        return False
    try:
        with open(source, "rb") as f:
            return int.from_bytes(f.read(8), "little") == _MAGIC
    except OSError:
        return False


def _load(path):
    # float16 files (gluon-face's --dtype float16 cast the whole net) load as float32
    return {k: v.asnumpy().astype(np.float32, copy=False)
            for k, v in load_param_file(path).items()}


def _candidates(embedding_size):
    """(name, kwargs, net) for every gluon-face architecture (built, not initialised)."""
    for name, build in _architectures().items():
        size = 128 if name == "gluonface_mobilefacenet" else embedding_size
        kwargs = {"embedding_size": size}
        yield name, kwargs, build(**kwargs)


def _mismatch(path, what, closest):
    """The error for a file that is no gluon-face network; names the nearest architecture."""
    lines = [f"{path}: not a gluon-face 1.0.2 network: its {what} match none of "
             f"{', '.join(sorted(_architectures()))}"]
    if closest is not None:
        lines.append(f"nearest: {closest[1]} ({closest[2]})")
    lines.append("expected a file written by gluon-face's save_parameters (whole net or "
                 "net.features) or export(), with fmt='gluon-face'")
    return ImportFormatError("; ".join(lines))


def _embedding_size(shapes):
    # the embedding Dense is the last 2-D weight of the body (MobileFaceNet has none: 128)
    dense = [s for k, s in shapes.items() if len(s) == 2 and k not in _CLASSIFIER]
    return dense[-1][0] if dense else 128


def _match_params(path, arrays):
    """Structural names: find the architecture; returns (name, kwargs, net, values, classes)."""
    classes = arrays["output.weight"].shape[0] if "output.weight" in arrays else None
    body = {k: v for k, v in arrays.items() if k != "output.weight"}
    if body and not all(k.startswith("features.") for k in body):
        body = {"features." + k: v for k, v in body.items()}  # net.features.save_parameters
    keys = sorted(body, key=_natural)
    size = _embedding_size({k: body[k].shape for k in keys})
    closest = None
    for name, kwargs, net in _candidates(size):
        want = net._collect_params_with_prefix()
        missing = sorted(set(want) - set(body), key=_natural)
        extra = sorted(set(body) - set(want), key=_natural)
        wrong = [k for k in want if k in body and tuple(want[k].shape) != body[k].shape]
        if not (missing or extra or wrong):
            return name, kwargs, net, {k: body[k] for k in want}, classes
        score = len(missing) + len(extra) + len(wrong)
        if closest is None or score < closest[0]:
            detail = (f"{len(missing)} parameters missing (first {missing[0]})" if missing else
                      f"{len(extra)} unexpected (first {extra[0]})" if extra else
                      f"{wrong[0]} has shape {body[wrong[0]].shape}, expected "
                      f"{tuple(want[wrong[0]].shape)}")
            closest = (score, name, detail)
    raise _mismatch(path, f"{len(body)} parameter names and shapes", closest)


def _natural(key):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", key)]


def _match_symbol(symbol_path, params_path, arrays):
    """Prefix names: parameters in the graph's topological order against each architecture's."""
    import mxnet as mx
    try:
        sym = mx.sym.load(symbol_path)
    except (mx.base.MXNetError, ValueError) as err:
        raise ImportFormatError(f"{symbol_path}: not an MXNet symbol JSON "
                                f"({str(err).splitlines()[0]})") from None
    stored = {k.split(":", 1)[1] if k.startswith(("arg:", "aux:")) else k: v
              for k, v in arrays.items()}
    order = [n for n in sym.list_arguments() if n != "data"] + sym.list_auxiliary_states()
    absent = [n for n in order if n not in stored]
    if absent:
        raise ImportFormatError(f"{params_path}: no parameter {absent[0]!r} of the graph "
                                f"{symbol_path} ({len(absent)} missing)")
    classes = None
    heads = [n for n in order if n.endswith(_CLASSIFIER[1]) and stored[n].ndim == 2
             and "output" in n]
    if heads:  # the whole FrBase was exported: its classifier weight is its last argument
        classes = stored[heads[-1]].shape[0]
        order = [n for n in order if n not in heads]
    shapes = [stored[n].shape for n in order]
    dense = [s for s in shapes if len(s) == 2]
    size = dense[-1][0] if dense else 128
    closest = None
    for name, kwargs, net in _candidates(size):
        count = len(net.collect_params().keys())
        if count != len(order):
            score = abs(count - len(order))
            if closest is None or score < closest[0]:
                closest = (score, name, f"{len(order)} parameters against {count}")
            continue
        mine = net(mx.sym.var("data"))
        mine_order = ([n for n in mine.list_arguments() if n != "data"]
                      + mine.list_auxiliary_states())
        by_prefix = net.collect_params()
        want = [by_prefix[n] for n in mine_order]
        if len(want) == len(order) and all(tuple(p.shape) == s for p, s in zip(want, shapes)):
            structural = {id(p): k for k, p in net._collect_params_with_prefix().items()}
            values = {structural[id(p)]: stored[n] for p, n in zip(want, order)}
            return name, kwargs, net, values, classes
        first = next(i for i, (p, s) in enumerate(zip(want, shapes)) if tuple(p.shape) != s)
        closest = (0, name, f"graph parameter {first} ({order[first]}) has shape "
                            f"{shapes[first]}, expected {tuple(want[first].shape)}")
    raise _mismatch(symbol_path, f"{len(order)} graph parameters (in order) and shapes",
                    closest)


def _import(source, ctx):
    import mxnet as mx

    symbol = _symbol_path(source)
    if symbol is not None:
        if not os.path.isfile(symbol):
            raise ImportFormatError(f"{source}: {symbol} does not exist")
        prefix = symbol[:-len("-symbol.json")]
        match = re.fullmatch(r"(.+),(\d+)", source)
        # the epoch asked for, else the last one beside the symbol (as export() numbers them)
        params = (f"{prefix}-{int(match.group(2)):04d}.params" if match else
                  max(glob.glob(glob.escape(prefix) + "-[0-9][0-9][0-9][0-9].params"),
                      default=None))
        if params is None or not os.path.isfile(params):
            raise ImportFormatError(f"{source}: no parameter file {prefix}-NNNN.params beside "
                                    f"the symbol")
        name, kwargs, net, values, classes = _match_symbol(symbol, params, _load(params))
        files = [symbol, params]
    else:
        if not os.path.isfile(source):
            raise ImportFormatError(f"{source}: does not exist")
        name, kwargs, net, values, classes = _match_params(source, _load(source))
        files = [source]
    params = net._collect_params_with_prefix()
    for key, value in values.items():
        params[key]._load_init(mx.nd.array(value, ctx=mx.cpu()), ctx)
    net.import_info = {"name": name, "kwargs": kwargs, "fmt": "gluon-face", "source": source,
                       "files": files, "classes": classes,
                       "preprocessing": "gluon-face preprocessing: RGB / 255 (ToTensor), no "
                                        "mean or std; the network divides by 255 itself",
                       "input": {"color": "RGB", "mean": GLUON_FACE_INPUT[0],
                                 "scale": GLUON_FACE_INPUT[1]}}
    return net


import_gluon_face = register_format("gluon-face", _detect)(_import)
